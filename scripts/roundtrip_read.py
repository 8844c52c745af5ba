#!/usr/bin/env python3
"""Read checkpoints that the Go formats wrote, with each format's own
Python reader, and write their tensors back as one safetensors file each.

  roundtrip_read.py [--config DIR --against WEIGHTS]
                    --read FORMAT CHECKPOINT OUT [--read ...]

FORMAT is the Go format's name (the format= key of benchmark names), and
it picks the reader:

  safetensors  safetensors.torch.load_file of the file CHECKPOINT.
  zarr         TensorStore's zarr driver on every array that
               CHECKPOINT/index.json lists (formats/zarr's layout).
  t5x          TensorStore's zarr driver on every array of the msgpack
               index CHECKPOINT/checkpoint, opened as T5X restores them:
               the spec from the index with the kvstore path made
               absolute and without chunks and compressor, so each
               .zarray decides those (formats/t5x's layout).
  torchsave    torch.jit.load of the TorchScript archive CHECKPOINT and
               its named parameters and buffers (formats/torchsave).

Every --read runs in this one process, so torch, TensorStore and
transformers are imported once. For each, the script writes OUT with
safetensors.torch.save_file and prints one JSON line: the format, the
paths, and every tensor read (name, dtype, shape and the SHA-256 of its
little-endian C-order bytes).

With --config (the directory scripts/smollm2/convert.py wrote) and
--against (weights in any form logits.py reads), it also runs logits.py's
check on each OUT: the logits of a fixed prompt from OUT must be bit
for bit those from --against. The reference logits are computed once and
printed first as {"against": ..., "logits": ...}. Each line then gains a
"logits" object with logits.py's summary and "identical".

The script tries every --read, then exits 1 if a checkpoint could not be
read or its logits differ. Each problem goes to standard error with the
format and the checkpoint.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import hashlib
import json
import os
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

SCRIPTS = Path(__file__).resolve().parent

# formats/zarr's index file and the schema it declares.
ZARR_INDEX = "index.json"
ZARR_INDEX_FORMAT = "ckptbench-zarr"
ZARR_INDEX_VERSION = 1

# formats/t5x's msgpack index file and the T5X checkpoint version it records.
T5X_INDEX = "checkpoint"
T5X_INDEX_VERSION = 3


class ReadError(Exception):
    """A checkpoint that its format's reader cannot read or that does not
    match its own index."""


def to_torch(array: np.ndarray) -> torch.Tensor:
    """Return a torch tensor with array's dtype and bytes.

    numpy has no bfloat16, so TensorStore returns bfloat16 as its own
    2-byte numpy dtype. Those bytes are reinterpreted through int16,
    because torch 2.1 has no uint16.
    """
    import tensorstore as ts

    # Not np.ascontiguousarray, which turns a 0-d array into shape [1].
    array = np.asarray(array)
    if not array.flags.c_contiguous:
        array = array.copy(order="C")
    if array.dtype == ts.bfloat16.numpy_dtype:
        return torch.from_numpy(array.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(array)


def dtype_name(tensor: torch.Tensor) -> str:
    """Return the dtype as formats write it: "float16", "bfloat16", ..."""
    return str(tensor.dtype).removeprefix("torch.")


def inside(root: Path, relative: str, source: str) -> Path:
    """Return root/relative, rejecting a path that is absolute or leaves root,
    because an index must only name arrays inside its own checkpoint."""
    if not isinstance(relative, str) or not relative or os.path.isabs(relative) or ".." in relative.split("/"):
        raise ReadError(f"{source}: array path {relative!r} is not a relative path inside {root}; the index is damaged, so save the checkpoint again")
    return root / relative


def read_safetensors(path: Path) -> "OrderedDict[str, torch.Tensor]":
    from safetensors.torch import load_file

    if not path.is_file():
        raise ReadError(f"{path}: not a file; a safetensors checkpoint is one file")
    return OrderedDict(load_file(str(path)))


def open_arrays(specs: list[tuple[str, dict, list[int], str]]) -> "OrderedDict[str, torch.Tensor]":
    """Open and read TensorStore specs given as (name, spec, shape, dtype),
    all reads in flight at once, and check each array against the shape and
    dtype its index records."""
    import tensorstore as ts

    context = ts.Context({"file_io_concurrency": {"limit": 128}})
    opened = []
    for name, spec, _, _ in specs:
        path = spec["kvstore"]["path"]
        try:
            opened.append(ts.open(spec, open=True, read=True, context=context).result())
        except Exception as err:  # TensorStore raises ValueError and others, so name the tensor.
            raise ReadError(f"tensor {name}: TensorStore cannot open the array at {path}: {err}") from err
    futures = [store.read() for store in opened]
    tensors = OrderedDict()
    for (name, spec, shape, dtype), store, future in zip(specs, opened, futures):
        path = spec["kvstore"]["path"]
        try:
            array = future.result()
        except Exception as err:  # A missing or corrupt chunk surfaces here.
            raise ReadError(f"tensor {name}: TensorStore cannot read the array at {path}: {err}") from err
        if list(store.shape) != list(shape) or store.dtype.name != dtype:
            raise ReadError(
                f"tensor {name}: the array at {path} is {store.dtype.name} {list(store.shape)}, "
                f"but the index records {dtype} {list(shape)}; the checkpoint is damaged, so save it again"
            )
        tensors[name] = to_torch(array)
    return tensors


def read_zarr(ckpt: Path) -> "OrderedDict[str, torch.Tensor]":
    index_path = ckpt / ZARR_INDEX
    if not index_path.is_file():
        raise ReadError(f"{index_path}: not found; a zarr checkpoint from formats/zarr has its index there (an interrupted save leaves none)")
    with open(index_path) as f:
        index = json.load(f)
    if index.get("format") != ZARR_INDEX_FORMAT or index.get("version") != ZARR_INDEX_VERSION:
        raise ReadError(
            f"{index_path}: format {index.get('format')!r} version {index.get('version')!r}, "
            f"expected {ZARR_INDEX_FORMAT!r} version {ZARR_INDEX_VERSION}; this reader follows formats/zarr's index"
        )
    specs = []
    for entry in index.get("tensors") or []:
        name = entry["name"]
        path = inside(ckpt, entry["path"], f"{index_path}: tensor {name}")
        spec = {"driver": "zarr", "kvstore": {"driver": "file", "path": str(path)}}
        specs.append((name, spec, entry["shape"], entry["dtype"]))
    if not specs:
        raise ReadError(f"{index_path}: the index lists no tensors")
    return open_arrays(specs)


def is_t5x_spec(node) -> bool:
    """Report whether a node of T5X's parameter tree is a TensorStore spec
    (T5X's own test: a dict with driver, kvstore and metadata)."""
    return isinstance(node, dict) and {"driver", "kvstore", "metadata"} <= node.keys()


def walk_t5x(tree: dict, index_path: Path, prefix: tuple = ()):
    """Yield (dotted name, spec) for every array in the parameter tree."""
    for key, node in tree.items():
        path = prefix + (key,)
        if is_t5x_spec(node):
            yield ".".join(path), node
        elif isinstance(node, dict):
            yield from walk_t5x(node, index_path, path)
        else:
            raise ReadError(
                f"{index_path}: parameter {'.'.join(path)} is stored inline as {type(node).__name__}, "
                "not as a TensorStore array; formats/t5x writes every parameter as a zarr array"
            )


def read_t5x(ckpt: Path) -> "OrderedDict[str, torch.Tensor]":
    import msgpack

    index_path = ckpt / T5X_INDEX
    if not index_path.is_file():
        raise ReadError(f"{index_path}: not found; a T5X checkpoint has its msgpack index there (an interrupted save leaves none)")
    with open(index_path, "rb") as f:
        index = msgpack.unpackb(f.read(), raw=False)
    if index.get("version") != T5X_INDEX_VERSION:
        raise ReadError(f"{index_path}: checkpoint version {index.get('version')!r}, expected {T5X_INDEX_VERSION}")
    target = index.get("optimizer", {}).get("target")
    if not isinstance(target, dict):
        raise ReadError(f"{index_path}: no optimizer.target parameter tree")
    arrays = dict(walk_t5x(target, index_path))
    # tensor_order is formats/t5x's addition that keeps the saved order,
    # which the tree, grouped by name prefix, cannot.
    order = index.get("tensor_order") or list(arrays)
    if sorted(order) != sorted(arrays):
        raise ReadError(f"{index_path}: tensor_order and the parameter tree list different tensors")

    specs = []
    for name in order:
        spec = dict(arrays[name])
        spec["kvstore"] = dict(spec["kvstore"])
        spec["kvstore"]["path"] = str(inside(ckpt, spec["kvstore"]["path"], f"{index_path}: tensor {name}"))
        metadata = dict(spec["metadata"])
        shape = metadata.get("shape")
        # T5X's restore leaves chunking and compression to the .zarray.
        metadata.pop("chunks", None)
        metadata.pop("compressor", None)
        spec["metadata"] = metadata
        specs.append((name, spec, shape, spec.get("dtype")))
    if not specs:
        raise ReadError(f"{index_path}: the parameter tree has no arrays")
    return open_arrays(specs)


def read_torchsave(path: Path) -> "OrderedDict[str, torch.Tensor]":
    if not path.is_file():
        raise ReadError(f"{path}: not a file; a torchsave checkpoint is one TorchScript archive")
    try:
        module = torch.jit.load(str(path), map_location="cpu")
    except RuntimeError as err:
        raise ReadError(f"{path}: torch.jit.load failed ({err}); torchsave checkpoints are TorchScript archives") from err
    tensors = OrderedDict()
    for name, value in [*module.named_parameters(), *module.named_buffers()]:
        tensors[name] = value.detach()
    return tensors


READERS = {
    "safetensors": read_safetensors,
    "zarr": read_zarr,
    "t5x": read_t5x,
    "torchsave": read_torchsave,
}


def digest(name: str, tensor: torch.Tensor) -> dict:
    """Return name, dtype, shape and the SHA-256 of the tensor's bytes."""
    flat = tensor.contiguous().reshape(-1)
    raw = flat.view(torch.uint8).numpy() if flat.numel() else b""
    return {
        "name": name,
        "dtype": dtype_name(tensor),
        "shape": list(tensor.shape),
        "sha256": hashlib.sha256(raw).hexdigest(),
    }


def read_checkpoint(fmt: str, ckpt: Path) -> "OrderedDict[str, torch.Tensor]":
    """Read every tensor of the checkpoint with the reader for fmt."""
    reader = READERS.get(fmt)
    if reader is None:
        raise ReadError(f"no Python reader for format {fmt!r}; known: {', '.join(READERS)}; add one to {Path(__file__).name}")
    if not ckpt.exists():
        raise ReadError(f"{ckpt}: checkpoint not found")
    return reader(ckpt)


def write_safetensors(tensors: dict, out: Path) -> None:
    """Write tensors as one safetensors file, with the metadata that
    transformers expects."""
    from safetensors.torch import save_file

    # save_file rejects non-contiguous tensors and tensors that share
    # memory, so a second view of the same storage gets its own copy.
    storages = set()
    plain = {}
    for name, t in tensors.items():
        t = t.contiguous()
        if t.numel() and t.untyped_storage().data_ptr() in storages:
            t = t.clone()
        storages.add(t.untyped_storage().data_ptr())
        plain[name] = t
    save_file(plain, str(out), metadata={"format": "pt"})


class LogitsCheck:
    """logits.py's --against check, with its imports, its tokenizer and the
    reference logits shared by every checkpoint."""

    def __init__(self, config: Path, against: Path):
        sys.path.insert(0, str(SCRIPTS / "smollm2"))
        import logits
        from transformers import AutoTokenizer

        self.logits = logits
        self.config = config
        self.against = against
        self.tokenizer = AutoTokenizer.from_pretrained(config)
        self.ids, self.reference = logits.compute_logits(config, against, self.tokenizer)

    def reference_summary(self) -> dict:
        return self.logits.summarize(self.ids, self.reference, self.against, self.tokenizer)

    def check(self, weights: Path) -> tuple[dict, str | None]:
        """Return the summary of the logits from weights, and None when they
        equal the reference bit for bit, else a message with the max abs diff."""
        ids, values = self.logits.compute_logits(self.config, weights, self.tokenizer)
        problem = self.logits.compare_arrays(values, self.reference, str(self.against))
        result = self.logits.summarize(ids, values, weights, self.tokenizer)
        result["identical"] = problem is None
        return result, problem


def release_memory() -> None:
    """Return freed memory to the system between checkpoints.

    Most of the model's tensors are a few MB, below glibc's mmap threshold,
    so malloc keeps them in its heap after they are freed. Without a trim,
    the heap grew with every checkpoint read and every model built: eight
    SmolLM2 checkpoints peaked at 2.2 GB, against 1.3 GB with it.
    """
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc, so there is nothing to trim
        pass


def round_trip(fmt: str, ckpt: Path, out: Path, check: LogitsCheck | None) -> tuple[dict, str | None]:
    """Read one checkpoint, write it to out and check its logits, returning
    the JSON line and the problem found, or None."""
    tensors = read_checkpoint(fmt, ckpt)
    line = {
        "format": fmt,
        "checkpoint": str(ckpt),
        "out": str(out),
        "tensors": [digest(name, t) for name, t in tensors.items()],
    }
    write_safetensors(tensors, out)
    del tensors  # A 135M-parameter model needs its memory for the logits.
    release_memory()
    if check is None:
        return line, None
    try:
        line["logits"], problem = check.check(out)
    except check.logits.CheckpointError as err:
        # The tensors read do not make up the model: wrong names or shapes.
        return line, str(err)
    return line, problem


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--read", nargs=3, action="append", required=True, metavar=("FORMAT", "CHECKPOINT", "OUT"),
        help=f"read CHECKPOINT written by the Go format FORMAT ({', '.join(READERS)}) and write OUT as safetensors",
    )
    parser.add_argument("--config", type=Path, help="SmolLM2 directory that convert.py wrote; enables the logits check")
    parser.add_argument("--against", type=Path, help="weights whose logits every OUT must match bit for bit (needs --config)")
    args = parser.parse_args(argv)
    if (args.config is None) != (args.against is None):
        parser.error("--config and --against must be given together")
    for fmt, _, _ in args.read:
        if fmt not in READERS:
            parser.error(f"no Python reader for format {fmt!r}; known: {', '.join(READERS)}")

    check = None
    if args.config is not None:
        check = LogitsCheck(args.config, args.against)
        release_memory()
        print(json.dumps({"against": str(args.against), "logits": check.reference_summary()}), flush=True)

    problems = []
    for fmt, ckpt, out in args.read:
        try:
            line, problem = round_trip(fmt, Path(ckpt), Path(out), check)
        except ReadError as err:
            problems.append(f"{fmt} {ckpt}: {err}")
            continue
        finally:
            release_memory()
        print(json.dumps(line), flush=True)
        if problem:
            problems.append(f"{fmt} {ckpt}: {problem}")
    for problem in problems:
        print(f"roundtrip_read.py: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
