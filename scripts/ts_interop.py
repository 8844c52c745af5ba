"""Check zarr v2 arrays against the real TensorStore, for formats/zarr.

Subcommands (each prints JSON on standard output):

  read DIR...         open each zarr array with TensorStore and print one
                      JSON object per line: path, shape, dtype and the
                      array's bytes (C order, little-endian, base64), or
                      the error TensorStore raised.
  write-cases OUT     write one small array per case into OUT with
                      TensorStore (every compressor it offers, edge chunks,
                      missing chunks, "/" separators) and print a JSON list
                      of the cases with the bytes a reader must return.
  codec-stats         compress synthetic float16 weights with each
                      TensorStore zarr v2 compressor and print size and
                      speed per compressor.

Arrays are tiny in read and write-cases: the bytes travel as base64.
"""

import argparse
import base64
import json
import os
import sys
import time

import numpy as np
import tensorstore as ts

# Compressor objects as they go into .zarray; None is stored as null.
COMPRESSORS = {
    "raw": None,
    "gzip": {"id": "gzip", "level": 1},
    "zlib": {"id": "zlib", "level": 1},
    "bz2": {"id": "bz2", "level": 1},
    "zstd": {"id": "zstd", "level": 1},
    "blosc": {"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": -1},
}


def spec(path, metadata=None):
    """Return the TensorStore spec of the zarr v2 array in directory path."""
    s = {"driver": "zarr", "kvstore": {"driver": "file", "path": os.path.abspath(path)}}
    if metadata is not None:
        s["metadata"] = metadata
    return s


def encode(array):
    """Return the array's bytes, C order and little-endian, as base64."""
    a = np.ascontiguousarray(array)
    if a.dtype.byteorder == ">":
        a = a.byteswap().view(a.dtype.newbyteorder("<"))
    return base64.b64encode(a.tobytes()).decode("ascii")


def read_array(path):
    """Return a JSON-ready description of the array at path, read by TensorStore."""
    try:
        store = ts.open(spec(path), open=True, read=True).result()
        data = store.read().result()
    except Exception as e:  # Report every TensorStore failure to the Go test.
        return {"path": path, "error": f"{type(e).__name__}: {e}"}
    return {
        "path": path,
        "shape": list(store.shape),
        "dtype": str(store.dtype.numpy_dtype),
        "data": encode(data),
    }


def values(rng, dtype, shape):
    """Return deterministic values of dtype that look like weights."""
    if dtype in ("bfloat16", "<f2", "<f4", "<f8"):
        v = rng.normal(0.0, 0.02, size=shape)
        if dtype == "bfloat16":
            return v.astype(ts.bfloat16.numpy_dtype)
        return v.astype(np.dtype(dtype))
    if dtype == "|b1":
        return rng.integers(0, 2, size=shape).astype(bool)
    info = np.iinfo(np.dtype(dtype))
    return rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=np.dtype(dtype))


def cases():
    """Yield (name, metadata, region) for every array write-cases writes.

    region is the index expression TensorStore writes; chunks outside it
    are never stored, so a reader must return the fill value there.
    """
    full = (Ellipsis,)
    for codec, comp in COMPRESSORS.items():
        # [5, 7] in [2, 3] chunks: edge chunks along both dimensions.
        yield f"f16-{codec}-edge", {"shape": [5, 7], "chunks": [2, 3], "dtype": "<f2", "compressor": comp}, full
    for codec in ("raw", "gzip", "zstd", "bz2"):
        comp = COMPRESSORS[codec]
        yield f"bf16-{codec}-slash", {
            "shape": [10, 3], "chunks": [3, 2], "dtype": "bfloat16", "compressor": comp,
            "dimension_separator": "/",
        }, full
        yield f"f32-{codec}-3d", {"shape": [4, 5, 6], "chunks": [3, 2, 4], "dtype": "<f4", "compressor": comp}, full
    # Missing chunks: only the first chunk row is written.
    yield "f16-missing-fill", {
        "shape": [6, 4], "chunks": [2, 4], "dtype": "<f2", "compressor": None, "fill_value": 0.5,
    }, (slice(0, 2),)
    yield "f32-missing-nan-slash", {
        "shape": [4, 6], "chunks": [2, 2], "dtype": "<f4", "compressor": COMPRESSORS["gzip"],
        "fill_value": "NaN", "dimension_separator": "/",
    }, (slice(0, 2), slice(2, 4))
    yield "bf16-missing-null", {
        "shape": [7], "chunks": [3], "dtype": "bfloat16", "compressor": COMPRESSORS["zstd"],
    }, (slice(3, 6),)
    for dtype in ("<f8", "|i1", "|u1", "<i4", "<i8", "|b1"):
        yield f"{dtype[1:]}-raw", {"shape": [9, 2], "chunks": [4, 2], "dtype": dtype, "compressor": None}, full
    yield "f16-scalar", {"shape": [], "chunks": [], "dtype": "<f2", "compressor": COMPRESSORS["gzip"]}, full


def fill_array(md):
    """Return an array of md's shape and dtype holding its fill value."""
    dtype = ts.bfloat16.numpy_dtype if md["dtype"] == "bfloat16" else np.dtype(md["dtype"])
    fill = md.get("fill_value")
    if fill is None:
        fill = 0
    elif isinstance(fill, str):
        fill = {"NaN": np.nan, "Infinity": np.inf, "-Infinity": -np.inf}[fill]
    return np.full(md["shape"], fill, dtype=dtype)


def write_cases(out):
    """Write every case into out and return their descriptions."""
    rng = np.random.default_rng(7)
    result = []
    for name, md, region in cases():
        path = os.path.join(out, name)
        store = ts.open(spec(path, md), create=True).result()
        want = fill_array(md)
        patch = values(rng, md["dtype"], want[region].shape)
        store[region] = patch
        want[region] = patch
        comp = md["compressor"]
        result.append({
            "name": name,
            "path": path,
            "compressor": "raw" if comp is None else comp["id"],
            "dtype": md["dtype"],
            "shape": md["shape"],
            "data": encode(want),
        })
    return result


def codec_stats(mib, repeat):
    """Time each compressor on mib MiB of normal(0, 0.02) float16 values.

    The arrays go to TensorStore's in-memory kvstore, so the figures are
    the codec's cost with no disk in the way. Each figure is the best of
    repeat runs.
    """
    rows = int(mib * (1 << 20) // (2 * 3200))
    data = np.random.default_rng(1).normal(0.0, 0.02, size=(rows, 3200)).astype(np.float16)
    nbytes = data.nbytes
    variants = {
        "raw": None,
        "gzip-1": {"id": "gzip", "level": 1},
        "gzip-6": {"id": "gzip", "level": 6},
        "zlib-1": {"id": "zlib", "level": 1},
        "zstd-1": {"id": "zstd", "level": 1},
        "zstd-3": {"id": "zstd", "level": 3},
        "blosc-lz4-shuffle": {"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1},
        "blosc-lz4-noshuffle": {"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 0},
        "blosc-lz4-bitshuffle": {"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 2},
        "blosc-zstd-shuffle": {"id": "blosc", "cname": "zstd", "clevel": 1, "shuffle": 1},
    }
    context = ts.Context({"data_copy_concurrency": {"limit": 1}})
    stats = []
    for name, comp in variants.items():
        md = {"shape": list(data.shape), "chunks": list(data.shape), "dtype": "<f2", "compressor": comp}
        best_write = best_read = float("inf")
        stored = 0
        for i in range(repeat):
            kv = {"driver": "memory", "path": f"{name}-{i}/"}
            store = ts.open({"driver": "zarr", "kvstore": kv, "metadata": md}, create=True, context=context).result()
            start = time.perf_counter()
            store.write(data).result()
            best_write = min(best_write, time.perf_counter() - start)
            start = time.perf_counter()
            back = store.read().result()
            best_read = min(best_read, time.perf_counter() - start)
            if not np.array_equal(back.view(np.uint16), data.view(np.uint16)):
                raise SystemExit(f"codec-stats: {name} did not round-trip")
            kvs = ts.KvStore.open(kv, context=context).result()
            stored = sum(len(kvs.read(k).result().value) for k in kvs.list().result() if not k.endswith(b".zarray"))
        stats.append({
            "codec": name,
            "bytes": nbytes,
            "stored_bytes": stored,
            "ratio": nbytes / stored,
            "write_MBps": nbytes / best_write / 1e6,
            "read_MBps": nbytes / best_read / 1e6,
        })
    return stats


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    read = sub.add_parser("read", help="read zarr arrays with TensorStore")
    read.add_argument("paths", nargs="+", help="array directories")
    write = sub.add_parser("write-cases", help="write the interop arrays with TensorStore")
    write.add_argument("out", help="directory to write the arrays into; created if missing")
    stats = sub.add_parser("codec-stats", help="measure TensorStore's compressors on float16 weights")
    stats.add_argument("--mib", type=float, default=64, help="size of the test array in MiB (default 64)")
    stats.add_argument("--repeat", type=int, default=3, help="runs per compressor; the best is kept (default 3)")
    args = parser.parse_args(argv)

    if args.command == "read":
        for p in args.paths:
            print(json.dumps(read_array(p)))
    elif args.command == "write-cases":
        os.makedirs(args.out, exist_ok=True)
        print(json.dumps(write_cases(args.out)))
    else:
        print(json.dumps(codec_stats(args.mib, args.repeat), indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
