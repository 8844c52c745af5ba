"""State dicts as the peers pass them around, and the dtypes they support.

A state dict is a plain dict from tensor name to a contiguous CPU
torch.Tensor. Dicts keep insertion order, which is the saved order.
"""

from __future__ import annotations

import dataclasses
import zlib
from typing import Dict

import numpy as np
import tensorstore as ts
import torch

StateDict = Dict[str, torch.Tensor]


class PeerError(Exception):
    """An error the command line reports as one message, without a traceback.

    The message names the file, the tensor and the fix where they apply.
    """


@dataclasses.dataclass(frozen=True)
class DType:
    """One element type under the names each library uses for it."""

    torch: torch.dtype
    # Name in PyTorch without "torch.", which is also the Go suite's name
    # and TensorStore's dtype name.
    name: str
    # safetensors header code.
    safetensors: str
    # numpy dtype for TensorStore reads and writes. bfloat16 has no numpy
    # dtype of its own, so TensorStore's extension type is used.
    numpy: np.dtype


DTYPES = [
    DType(torch.float16, "float16", "F16", np.dtype("<f2")),
    DType(torch.bfloat16, "bfloat16", "BF16", ts.bfloat16.numpy_dtype),
    DType(torch.float32, "float32", "F32", np.dtype("<f4")),
    DType(torch.float64, "float64", "F64", np.dtype("<f8")),
    DType(torch.int8, "int8", "I8", np.dtype("i1")),
    DType(torch.uint8, "uint8", "U8", np.dtype("u1")),
    DType(torch.int16, "int16", "I16", np.dtype("<i2")),
    DType(torch.int32, "int32", "I32", np.dtype("<i4")),
    DType(torch.int64, "int64", "I64", np.dtype("<i8")),
    DType(torch.bool, "bool", "BOOL", np.dtype("?")),
]

_BY_TORCH = {d.torch: d for d in DTYPES}
_BY_SAFETENSORS = {d.safetensors: d for d in DTYPES}
_BY_NAME = {d.name: d for d in DTYPES}
_SUPPORTED = ", ".join(d.name for d in DTYPES)


def dtype_of(tensor: torch.Tensor, name: str) -> DType:
    """Return the DType of tensor, or raise PeerError naming the tensor."""
    try:
        return _BY_TORCH[tensor.dtype]
    except KeyError:
        raise PeerError(
            f"tensor {name}: dtype {tensor.dtype} is not supported (supported: {_SUPPORTED})"
        ) from None


def dtype_from_safetensors(code: str) -> DType | None:
    return _BY_SAFETENSORS.get(code)


def dtype_from_name(name: str) -> DType | None:
    return _BY_NAME.get(name)


def byte_view(tensor: torch.Tensor) -> torch.Tensor:
    """Return the payload of a contiguous tensor as a 1-D uint8 view.

    The view shares memory with tensor, so no bytes are copied. A 0-d
    tensor gives its element's bytes, an empty tensor an empty view.
    """
    if not tensor.is_contiguous():
        raise ValueError("byte_view needs a contiguous tensor")
    return tensor.reshape(-1).view(torch.uint8)


def to_numpy(tensor: torch.Tensor, dtype: DType) -> np.ndarray:
    """Return a numpy array that shares tensor's memory, typed for TensorStore."""
    if dtype.torch is torch.bfloat16:
        return tensor.view(torch.int16).numpy().view(dtype.numpy)
    return tensor.numpy()


def from_numpy(array: np.ndarray) -> torch.Tensor:
    """Return a torch tensor that shares array's memory.

    TensorStore's bfloat16 arrays are reinterpreted through int16, because
    torch.from_numpy does not know TensorStore's bfloat16 type.
    """
    if not array.flags.c_contiguous:
        # np.ascontiguousarray would turn a 0-d array into a 1-d one.
        array = array.copy(order="C")
    if array.dtype == ts.bfloat16.numpy_dtype:
        return torch.from_numpy(array.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(array)


def num_bytes(sd: StateDict) -> int:
    """Return the payload bytes of all tensors, the figure MB/s divides."""
    return sum(t.numel() * t.element_size() for t in sd.values())


def metas(sd: StateDict) -> list[tuple[str, str, tuple[int, ...]]]:
    """Return (name, dtype, shape) of every tensor, in order."""
    return [(name, str(t.dtype).removeprefix("torch."), tuple(t.shape)) for name, t in sd.items()]


def checksums(sd: StateDict) -> dict[str, int]:
    """Return the CRC-32 of every tensor's payload, to verify a load outside timing."""
    return {name: zlib.crc32(byte_view(t).numpy()) for name, t in sd.items()}


def check_same(want_metas, want_sums, got: StateDict, what: str) -> None:
    """Raise PeerError unless got has the wanted tensors, in order, with the wanted payloads.

    want_sums may be None to compare only names, dtypes and shapes.
    """
    got_metas = metas(got)
    if got_metas != want_metas:
        for i, (want, have) in enumerate(zip(want_metas, got_metas)):
            if want != have:
                raise PeerError(f"{what}: tensor {i} is {have}, expected {want}")
        raise PeerError(f"{what}: {len(got_metas)} tensors, expected {len(want_metas)}")
    if want_sums is None:
        return
    for name, t in got.items():
        if zlib.crc32(byte_view(t).numpy()) != want_sums[name]:
            raise PeerError(f"{what}: payload of tensor {name} differs from the handover")


def check_array_name(name: str) -> None:
    """Raise PeerError unless name can be one directory name in a checkpoint.

    Formats that store each tensor as a directory named after it reject
    names that would escape the checkpoint or hide as dot files.
    """
    problem = None
    if not name:
        problem = "is empty"
    elif "/" in name or "\0" in name:
        problem = "contains '/' or NUL"
    elif name.startswith("."):
        problem = "starts with '.'"
    elif len(name.encode()) > 255:
        problem = "is longer than 255 bytes"
    if problem:
        raise PeerError(
            f"tensor name {name!r} {problem}, so it cannot be a directory name in the "
            "checkpoint. Rename the tensor."
        )
