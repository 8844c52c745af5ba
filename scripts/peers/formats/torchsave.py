"""py-torch and py-torch-mmap: torch.save and torch.load of a plain dict of tensors.

torch.save (PyTorch 2.1) writes a zip archive: data.pkl, a pickle that
rebuilds the dict and refers to storages by key, and one record
data/<key> of raw little-endian bytes per storage. Python's torch.load
reads it, libtorch's C++ loader and gotch do not.

Loads pass weights_only=True, the restricted unpickler that PyTorch
recommends for files from elsewhere and the default since PyTorch 2.6.
"""

from __future__ import annotations

import os
import pickle
import warnings
import zipfile

import torch

from .. import durable
from ..measure import touch_pages
from ..statedict import PeerError, StateDict


class TorchSave:
    name = "py-torch"
    file_name = "py-torch.pt"
    bench_saves = True

    def save(self, path: str, sd: StateDict) -> None:
        with durable.atomic_save(path) as tmp:
            # A path, not a file object, lets torch write through its own
            # C++ file writer, as users calling torch.save(sd, "x.pt") get.
            torch.save(sd, tmp)

    def load(self, path: str) -> StateDict:
        return _load(path, mmap=False)


class TorchMmap(TorchSave):
    """torch.load(mmap=True) of py-torch's file, with every page touched."""

    name = "py-torch-mmap"
    bench_saves = False

    def load(self, path: str) -> StateDict:
        sd = _load(path, mmap=True)
        touch_pages(sd)
        return sd


def _load(path: str, mmap: bool) -> StateDict:
    # torch.save has written zip archives since PyTorch 1.6. Checking first
    # gives a clear error, where torch.load fails on other input with
    # whatever its legacy unpickler hits (IndexError, for one).
    if os.path.isfile(path) and not zipfile.is_zipfile(path):
        raise PeerError(f"{path}: not a zip archive, so not a torch.save file (PyTorch 1.6 or later)")
    try:
        with warnings.catch_warnings():
            # torch 2.1's own unpickler reads the deprecated TypedStorage
            # and warns about it on every load.
            warnings.filterwarnings("ignore", message="TypedStorage is deprecated", category=UserWarning)
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except FileNotFoundError as e:
        raise PeerError(f"checkpoint {path} not found") from e
    except (RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, EOFError) as e:
        raise PeerError(
            f"{path}: torch.load failed ({e}). The file is not a torch.save archive "
            "of a dict of tensors, or it is damaged."
        ) from e
    if not isinstance(obj, dict):
        raise PeerError(f"{path}: torch.load returned a {type(obj).__name__}, expected a dict of tensors")
    for name, value in obj.items():
        if not isinstance(value, torch.Tensor):
            raise PeerError(
                f"{path}: entry {name!r} is a {type(value).__name__}, expected a tensor"
            )
    return dict(obj)
