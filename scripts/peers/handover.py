"""The handover file: a safetensors file that carries a model between Go and Python.

The Go harness writes the model once as safetensors, outside any timed
region, and every peer starts from it. The safetensors layout is an 8-byte
little-endian header length, a JSON header mapping each tensor name to
{dtype, shape, data_offsets} (plus an optional "__metadata__" object of
strings), then the raw little-endian C-order payloads.

safetensors' own writer (0.4.5) sorts tensors by dtype and name, so the
file order is not the state dict order. This module reads tensors in the
order of their data offsets, which is the saved order for files from the
Go suite, and writes files in the state dict's order.
"""

from __future__ import annotations

import dataclasses
import json
import os
import struct

import torch

from . import durable
from .statedict import DType, PeerError, StateDict, byte_view, dtype_from_safetensors, dtype_of

# safetensors rejects headers above 100 MB, so a larger length means a
# corrupt or foreign file.
MAX_HEADER_BYTES = 100_000_000


def read_order(path: str) -> list[str]:
    """Validate the header of the safetensors file at path and return its tensor names
    in the order of their data offsets.

    Raises PeerError naming the file and the tensor when the header is
    malformed or a tensor's offsets disagree with its dtype and shape.
    """
    return [entry.name for entry in _read_header(path)[0]]


@dataclasses.dataclass
class _Entry:
    name: str
    dtype: DType
    shape: list[int]
    start: int
    end: int


def _read_header(path: str) -> tuple[list[_Entry], int]:
    """Validate the header and return its entries in data order and the file offset
    where the data starts."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            prefix = f.read(8)
            if len(prefix) < 8:
                raise PeerError(f"{path}: {size} bytes is too short for a safetensors file")
            (header_len,) = struct.unpack("<Q", prefix)
            if header_len > min(MAX_HEADER_BYTES, size - 8):
                raise PeerError(
                    f"{path}: header length {header_len} exceeds the file ({size} bytes). "
                    "The file is not safetensors or is truncated. Write it again."
                )
            raw = f.read(header_len)
    except OSError as e:
        raise PeerError(f"failed to read the safetensors file {path}: {e.strerror}") from e
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PeerError(f"{path}: header is not valid JSON ({e})") from e
    if not isinstance(header, dict):
        raise PeerError(f"{path}: header is not a JSON object")

    data_len = size - 8 - header_len
    entries = []
    for name, fields in header.items():
        if name == "__metadata__":
            continue
        entries.append(_check_entry(path, name, fields, data_len))
    # sort is stable, so tensors at one offset (zero-size ones) keep header order.
    entries.sort(key=lambda e: e.start)
    return entries, 8 + header_len


def _check_entry(path: str, name: str, entry, data_len: int) -> _Entry:
    """Validate one header entry and return it."""
    if not isinstance(entry, dict):
        raise PeerError(f"{path}: tensor {name}: header entry is not a JSON object")

    code = entry.get("dtype")
    dtype = dtype_from_safetensors(code) if isinstance(code, str) else None
    if dtype is None:
        raise PeerError(f"{path}: tensor {name}: dtype {code!r} is not supported")

    shape = entry.get("shape")
    # bool is an int subclass in Python, but true is not a size in JSON.
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise PeerError(f"{path}: tensor {name}: shape {shape!r} is not a list of sizes")

    offsets = entry.get("data_offsets")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(type(o) is int for o in offsets)
        or not 0 <= offsets[0] <= offsets[1] <= data_len
    ):
        raise PeerError(
            f"{path}: tensor {name}: data_offsets {offsets!r} are not a range within the "
            f"{data_len} data bytes"
        )

    numel = 1
    for d in shape:
        numel *= d
    want = numel * dtype.torch.itemsize
    if offsets[1] - offsets[0] != want:
        raise PeerError(
            f"{path}: tensor {name}: data_offsets {offsets} hold {offsets[1] - offsets[0]} "
            f"bytes, but {dtype.name} {shape} needs {want}"
        )
    return _Entry(name, dtype, shape, offsets[0], offsets[1])


def read_handover(path: str) -> StateDict:
    """Read every tensor of the safetensors file at path into memory, in saved order.

    Each tensor gets a storage of its own in anonymous memory, filled with
    plain reads. So a later save neither reads the file nor writes a
    storage that several tensors share, and reading takes no more memory
    than the tensors. safetensors' own loader maps the file, and copying
    out of the map would hold both copies until the file is closed.
    """
    entries, data_start = _read_header(path)
    sd: StateDict = {}
    try:
        with open(path, "rb") as f:
            for entry in entries:
                size = entry.end - entry.start
                buffer = torch.empty(size, dtype=torch.uint8)
                f.seek(data_start + entry.start)
                if f.readinto(buffer.numpy()) != size:
                    raise PeerError(f"{path}: tensor {entry.name}: the file ends inside the tensor's data")
                sd[entry.name] = buffer.view(entry.dtype.torch).reshape(entry.shape)
    except OSError as e:
        raise PeerError(f"failed to read the safetensors file {path}: {e.strerror}") from e
    return sd


def write_safetensors(path: str, sd: StateDict, metadata: dict[str, str] | None = None) -> None:
    """Write sd as a safetensors file at path, keeping the state dict's order.

    The write is durable and atomic: the file appears at path complete and
    synced, or not at all.
    """
    header: dict = {}
    if metadata:
        header["__metadata__"] = dict(metadata)
    offset = 0
    for name, t in sd.items():
        size = t.numel() * t.element_size()
        header[name] = {
            "dtype": dtype_of(t, name).safetensors,
            "shape": list(t.shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    # Pad the header with spaces so the payloads start 8-byte aligned, as
    # safetensors' own writer does.
    raw += b" " * (-len(raw) % 8)
    with durable.atomic_save(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(raw)))
            f.write(raw)
            for t in sd.values():
                f.write(byte_view(t.contiguous()).numpy())

