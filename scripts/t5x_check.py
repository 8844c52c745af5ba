"""Check formats/t5x checkpoints against the real TensorStore.

Subcommands:

  read CKPT           open every array that the msgpack index of the
                      checkpoint directory CKPT lists, with TensorStore's
                      zarr driver, and print one JSON object per line:
                      name, dtype, shape, the .zarray chunks and
                      compressor id, and the SHA-256 of the array's bytes
                      (C order, little-endian).
  write CKPT MANIFEST RAW [--chunk-bytes N]
                      write a T5X-style checkpoint directory CKPT with
                      TensorStore from tensors given as a JSON manifest
                      (a list of {name, dtype, shape, offset}) and a file
                      RAW holding their bytes. It follows T5X's rules: the
                      64 MiB divisor chunk rule (N bytes when given), gzip,
                      a nested parameter tree in the msgpack index with
                      each array at the tensor's dotted name as one flat
                      directory, as T5X names them. Unlike T5X it sets
                      fill_value 0, so TensorStore skips chunks that are
                      all zeros and a reader must fill them in.

Reading mirrors T5X's restore: the spec from the index, minus its chunks
and compressor, so TensorStore uses what each .zarray specifies.
"""

import argparse
import asyncio
import copy
import hashlib
import json
import os
import sys

import msgpack
import numpy as np
import tensorstore as ts

INDEX = "checkpoint"
VERSION = 3
CHUNK_BYTES = 64 * 1024 * 1024


def numpy_dtype(name):
    """Return the numpy dtype for a dtype name such as float16 or bfloat16."""
    if name == "bfloat16":
        return ts.bfloat16.numpy_dtype
    return np.dtype(name)


def is_spec(node):
    """Report whether an index node is a TensorStore spec, by T5X's test."""
    return isinstance(node, dict) and {"driver", "kvstore", "metadata"} <= node.keys()


def walk(tree, prefix=()):
    """Yield (name, spec) for every array in the parameter tree, in stored order."""
    for key, node in tree.items():
        path = prefix + (key,)
        if is_spec(node):
            yield ".".join(path), node
        elif isinstance(node, dict):
            yield from walk(node, path)
        else:
            raise SystemExit(f"parameter {'.'.join(path)} is {type(node).__name__}, not a TensorStore spec")


def read_index(ckpt):
    """Return the arrays of the checkpoint's index as (name, spec) pairs, in tensor order."""
    with open(os.path.join(ckpt, INDEX), "rb") as f:
        index = msgpack.unpackb(f.read(), raw=False)
    if index.get("version") != VERSION:
        raise SystemExit(f"{ckpt}: index version {index.get('version')!r}, want {VERSION}")
    arrays = dict(walk(index["optimizer"]["target"]))
    order = index.get("tensor_order", list(arrays))
    if sorted(order) != sorted(arrays):
        raise SystemExit(f"{ckpt}: tensor_order does not list the tree's arrays")
    return [(name, arrays[name]) for name in order]


def absolute(ckpt, spec):
    """Return a copy of spec with its kvstore path under ckpt and no chunks or compressor."""
    spec = copy.deepcopy(spec)
    spec["kvstore"]["path"] = os.path.join(os.path.abspath(ckpt), spec["kvstore"]["path"])
    spec["metadata"].pop("chunks", None)
    spec["metadata"].pop("compressor", None)
    return spec


def read(args):
    context = ts.Context({"file_io_concurrency": {"limit": 128}})
    for name, spec in read_index(args.ckpt):
        store = ts.open(absolute(args.ckpt, spec), open=True, read=True, context=context).result()
        array = np.ascontiguousarray(store.read().result())
        with open(os.path.join(store.kvstore.path, ".zarray")) as f:
            zarray = json.load(f)
        compressor = zarray["compressor"]["id"] if zarray["compressor"] else "raw"
        print(json.dumps({
            "name": name,
            "dtype": str(store.dtype.numpy_dtype),
            "shape": list(store.shape),
            "chunks": zarray["chunks"],
            "compressor": compressor,
            "sha256": hashlib.sha256(array.tobytes()).hexdigest(),
        }))


def chunk_shape(shape, itemsize, target_bytes):
    """Return T5X's chunk shape.

    From the full shape, cut the largest chunk dimension (the first on ties)
    to its next smaller divisor until the chunk has at most
    target_bytes // itemsize elements.
    """
    target = max(1, target_bytes // itemsize)
    divisors = [[k for k in range(1, d + 1) if d % k == 0] or [1] for d in shape]
    while int(np.prod([d[-1] for d in divisors], dtype=np.int64)) > target:
        largest = max(range(len(shape)), key=lambda i: (divisors[i][-1], -i))
        divisors[largest].pop()
    return [d[-1] for d in divisors]


def insert(tree, name, spec):
    """Put spec into the nested parameter tree at the dotted name."""
    *parents, leaf = name.split(".")
    for part in parents:
        tree = tree.setdefault(part, {})
    tree[leaf] = spec


async def write_all(ckpt, tensors, raw, chunk_bytes):
    context = ts.Context({"file_io_concurrency": {"limit": 128}})
    target = {}

    async def write(t):
        dtype = numpy_dtype(t["dtype"])
        count = int(np.prod(t["shape"], dtype=np.int64))
        data = np.frombuffer(raw, dtype=dtype, count=count, offset=t["offset"]).reshape(t["shape"])
        spec = {
            "driver": "zarr",
            "dtype": t["dtype"],
            "kvstore": {"driver": "file", "path": t["name"]},
            "metadata": {
                "compressor": {"id": "gzip"},
                "shape": list(t["shape"]),
                "chunks": chunk_shape(list(t["shape"]), dtype.itemsize, chunk_bytes),
            },
        }
        full = copy.deepcopy(spec)
        full["kvstore"]["path"] = os.path.join(ckpt, t["name"])
        # TensorStore takes a fill value only with the zarr dtype string.
        full["metadata"]["dtype"] = "bfloat16" if t["dtype"] == "bfloat16" else dtype.str
        full["metadata"]["fill_value"] = False if t["dtype"] == "bool" else 0
        store = await ts.open(full, create=True, context=context)
        await store.write(data)
        return spec

    specs = await asyncio.gather(*(write(t) for t in tensors))
    for t, spec in zip(tensors, specs):
        insert(target, t["name"], spec)
    return target


def write(args):
    with open(args.manifest) as f:
        tensors = json.load(f)
    with open(args.raw, "rb") as f:
        raw = f.read()
    tmp = os.path.abspath(args.ckpt) + ".tmp-python"
    os.mkdir(tmp)
    target = asyncio.run(write_all(tmp, tensors, raw, args.chunk_bytes))
    index = {"version": VERSION, "optimizer": {"target": target, "state": {"step": 1}}}
    with open(os.path.join(tmp, INDEX), "wb") as f:
        f.write(msgpack.packb(index, use_bin_type=True))
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, args.ckpt)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("read", help="read every array of a checkpoint with TensorStore")
    r.add_argument("ckpt", help="checkpoint directory")
    w = sub.add_parser("write", help="write a T5X-style checkpoint with TensorStore")
    w.add_argument("ckpt", help="checkpoint directory to create")
    w.add_argument("manifest", help="JSON list of {name, dtype, shape, offset}")
    w.add_argument("raw", help="file holding the tensors' bytes")
    w.add_argument("--chunk-bytes", type=int, default=CHUNK_BYTES, help="target chunk size in bytes (default 64 MiB)")
    args = parser.parse_args()
    {"read": read, "write": write}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
