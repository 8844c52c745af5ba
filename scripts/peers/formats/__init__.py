"""The peers, one module each, and the registry that the command line uses.

Every peer implements the same contract as the Go suite's formats.Format:

- save(path, sd) is durable and atomic. It writes under a temporary
  sibling of path, fsyncs every file and directory written, and publishes
  with one rename. A failed save leaves whatever was at path untouched.
- load(path) returns the tensors in saved order with every byte in
  memory. Loads that memory-map the file touch every page before they
  return.
"""

from __future__ import annotations

from typing import Protocol

from ..statedict import PeerError, StateDict
from .safetensors_file import SafetensorsFile
from .t5x import T5X
from .tensorstore_zarr import TensorStoreZarr
from .torchsave import TorchMmap, TorchSave


class Format(Protocol):
    # Value of the format= key in benchmark names.
    name: str
    # Checkpoint name inside the benchmark's scratch directory.
    file_name: str
    # False for peers that only load (py-torch-mmap loads py-torch's file),
    # whose save lines the benchmark omits.
    bench_saves: bool

    def save(self, path: str, sd: StateDict) -> None: ...

    def load(self, path: str) -> StateDict: ...


FORMATS: dict[str, Format] = {
    f.name: f for f in (TorchSave(), TorchMmap(), SafetensorsFile(), TensorStoreZarr(), T5X())
}


def lookup(name: str) -> Format:
    try:
        return FORMATS[name]
    except KeyError:
        raise PeerError(f"unknown format {name!r} (known: {', '.join(FORMATS)})") from None
