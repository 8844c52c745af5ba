"""py-t5x: a checkpoint as T5X's Checkpointer writes it with TensorStore.

Layout of a checkpoint directory (T5X calls it checkpoint_<step>):

    checkpoint        msgpack index, written last:
                      {"version": 3, "optimizer": {"target": {name: spec},
                                                   "state": {"step": 0}}}
    <name>/.zarray    zarr v2 metadata, gzip compressor
    <name>/<i>.<j>    chunks

Each spec is the TensorStore spec T5X stores in place of a parameter: the
zarr driver, the dtype, the file kvstore with the path relative to the
checkpoint directory, and the shape, chunks and compressor.

What follows T5X (google-research/t5x, t5x/checkpoints.py):
- chunk shape: chunk_shape below, for a 64 MiB target;
- one TensorStore context with file_io_concurrency limited to 128;
- every parameter is opened and written concurrently, then the index;
- the directory is written under a temporary name and renamed;
- restore drops the stored chunks and compressor from each spec, checks
  the shape, and reads all parameters concurrently.

Where this peer differs: parameters keep the model's dtype, while T5X
casts them to its save_dtype, float32 by default. The whole state dict is
written at once, because T5X's concurrent_gb byte budget (128 GB by
default) does not bind at these model sizes. A tensor name is one
directory name, where T5X joins nested parameter names with ".".
"""

from __future__ import annotations

import asyncio
import copy
import os

import msgpack
import tensorstore as ts

from .. import durable
from ..statedict import (
    PeerError,
    StateDict,
    check_array_name,
    dtype_from_name,
    dtype_of,
    from_numpy,
    to_numpy,
)

INDEX = "checkpoint"
# T5X's index version since June 2021, where bfloat16 arrays use
# TensorStore's native bfloat16 instead of uint16.
VERSION = 3
# T5X's target chunk size.
CHUNK_BYTES = 64 * 1024 * 1024
FILE_IO_CONCURRENCY = 128


def chunk_shape(shape: list[int], itemsize: int, target_bytes: int = CHUNK_BYTES) -> list[int]:
    """Return T5X's chunk shape for an array: the largest that divides shape evenly
    within target_bytes, found greedily.

    Starting from the full shape, while the chunk has more elements than
    target_bytes // itemsize, the currently largest chunk dimension (the
    first one on ties) drops to the next smaller divisor of that array
    dimension. A zero-size dimension gets chunk size 1, the smallest zarr
    accepts, where T5X would fail.
    """
    target = max(1, target_bytes // itemsize)
    # divisors[i] lists the divisors of shape[i] in ascending order, and the
    # chunk uses the last one.
    divisors = [[k for k in range(1, d + 1) if d % k == 0] or [1] for d in shape]
    elements = 1
    for ds in divisors:
        elements *= ds[-1]
    while elements > target:
        dim = max(range(len(shape)), key=lambda i: (divisors[i][-1], -i))
        old = divisors[dim].pop()
        elements = elements // old * divisors[dim][-1]
    return [ds[-1] for ds in divisors]


class T5X:
    name = "py-t5x"
    file_name = os.path.join("py-t5x", "checkpoint_0")
    bench_saves = True

    def __init__(self, chunk_bytes: int = CHUNK_BYTES):
        # Tests lower chunk_bytes to get several chunks from tiny tensors.
        self.chunk_bytes = chunk_bytes

    def save(self, path: str, sd: StateDict) -> None:
        specs = {}
        for name, t in sd.items():
            check_array_name(name)
            if name == INDEX:
                raise PeerError(
                    f"tensor name {name!r} clashes with the checkpoint's index file. Rename the tensor."
                )
            dtype = dtype_of(t, name)
            specs[name] = {
                "driver": "zarr",
                "dtype": dtype.name,
                "kvstore": {"driver": "file", "path": name},
                "metadata": {
                    "compressor": {"id": "gzip"},
                    "shape": list(t.shape),
                    "chunks": chunk_shape(list(t.shape), t.element_size(), self.chunk_bytes),
                },
            }
        with durable.atomic_save(path) as tmp:
            os.mkdir(tmp)
            asyncio.run(_write_all(tmp, sd, specs))
            index = {"version": VERSION, "optimizer": {"target": specs, "state": {"step": 0}}}
            with open(os.path.join(tmp, INDEX), "wb") as f:
                f.write(msgpack.packb(index, use_bin_type=True))

    def load(self, path: str) -> StateDict:
        specs = _read_index(path)
        arrays = asyncio.run(_read_all(path, specs))
        return {name: from_numpy(a) for name, a in zip(specs, arrays)}


def _context() -> ts.Context:
    return ts.Context({"file_io_concurrency": {"limit": FILE_IO_CONCURRENCY}})


async def _write_all(directory: str, sd: StateDict, specs: dict) -> None:
    context = _context()

    async def write(name: str) -> None:
        t = sd[name]
        spec = _absolute(directory, specs[name])
        try:
            store = await ts.open(spec, create=True, open=True, context=context)
            await store.write(to_numpy(t, dtype_of(t, name)))
        except ValueError as e:
            raise PeerError(f"{directory}: tensor {name}: TensorStore write failed: {e}") from e

    # Wait for every write, failed or not, so that none is still writing
    # into the directory when a failed save removes it.
    results = await asyncio.gather(*(write(name) for name in sd), return_exceptions=True)
    for r in results:
        if isinstance(r, BaseException):
            raise r


async def _read_all(directory: str, specs: dict) -> list:
    context = _context()

    async def read(name: str):
        spec = _absolute(directory, specs[name])
        # Like T5X's restore, open with whatever chunks and compressor the
        # arrays have.
        spec["metadata"].pop("chunks", None)
        spec["metadata"].pop("compressor", None)
        shape = tuple(spec["metadata"]["shape"])
        try:
            store = await ts.open(spec, open=True, context=context)
            if tuple(store.shape) != shape:
                raise PeerError(
                    f"{directory}: tensor {name}: the array has shape {list(store.shape)}, "
                    f"the index says {list(shape)}"
                )
            return await store.read()
        except ValueError as e:
            raise PeerError(f"{directory}: tensor {name}: TensorStore read failed: {e}") from e

    results = await asyncio.gather(*(read(name) for name in specs), return_exceptions=True)
    for r in results:
        if isinstance(r, BaseException):
            raise r
    return results


def _absolute(directory: str, spec: dict) -> dict:
    spec = copy.deepcopy(spec)
    spec["kvstore"]["path"] = os.path.join(directory, spec["kvstore"]["path"])
    return spec


def _read_index(path: str) -> dict:
    """Read the msgpack index and return its validated specs by tensor name, in order."""
    index_path = os.path.join(path, INDEX)
    try:
        with open(index_path, "rb") as f:
            index = msgpack.unpackb(f.read(), raw=False)
    except FileNotFoundError as e:
        raise PeerError(f"{index_path} not found, so {path} is not a complete T5X checkpoint") from e
    except (OSError, ValueError, msgpack.UnpackException) as e:
        raise PeerError(f"{index_path}: failed to decode the msgpack index ({e})") from e
    if not isinstance(index, dict) or index.get("version") != VERSION:
        version = index.get("version") if isinstance(index, dict) else None
        raise PeerError(f"{index_path}: index version {version!r} is not supported (expected {VERSION})")
    optimizer = index.get("optimizer")
    target = optimizer.get("target") if isinstance(optimizer, dict) else None
    if not isinstance(target, dict):
        raise PeerError(f"{index_path}: the index has no optimizer.target parameters")
    specs = {}
    for name, spec in target.items():
        specs[name] = _check_spec(index_path, name, spec)
    return specs


def _check_spec(index_path: str, name, spec) -> dict:
    if not isinstance(name, str):
        raise PeerError(f"{index_path}: parameter key {name!r} is not a string")
    ok = (
        isinstance(spec, dict)
        and spec.get("driver") == "zarr"
        and isinstance(spec.get("kvstore"), dict)
        and spec["kvstore"].get("driver") == "file"
        and isinstance(spec["kvstore"].get("path"), str)
        and isinstance(spec.get("metadata"), dict)
        and isinstance(spec["metadata"].get("shape"), list)
    )
    if not ok:
        raise PeerError(
            f"{index_path}: tensor {name}: entry is not a zarr TensorStore spec on the file kvstore. "
            "This reader handles flat checkpoints written by py-t5x."
        )
    if dtype_from_name(spec.get("dtype")) is None:
        raise PeerError(f"{index_path}: tensor {name}: dtype {spec.get('dtype')!r} is not supported")
    # The path must stay inside the checkpoint directory.
    check_array_name(spec["kvstore"]["path"])
    return spec
