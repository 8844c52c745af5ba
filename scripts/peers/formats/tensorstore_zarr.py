"""py-tensorstore: one TensorStore zarr v2 array per tensor, with TensorStore's defaults.

Layout of a checkpoint directory:

    index.json        {"tensors": [names in saved order]}, written last
    <name>/.zarray    zarr v2 metadata
    <name>/<i>.<j>    one chunk file per chunk, named by chunk indices

The arrays use the file kvstore and what TensorStore 0.1.69 picks when
only dtype and shape are given: blosc with lz4 at level 5 and shuffle -1
(byte shuffle for multi-byte types), and chunks of about a million
elements (1024 x 1024 for OpenLLaMA's 2-D weights, whole for its 1-D
norms). bfloat16 is stored under TensorStore's "bfloat16" zarr dtype,
which zarr-python does not read. Arrays are written and read one after
another in a plain loop, the way a script without T5X's machinery would.
zarr itself has no tensor order, so index.json keeps it.
"""

from __future__ import annotations

import json
import os

import tensorstore as ts

from .. import durable
from ..statedict import PeerError, StateDict, check_array_name, dtype_of, from_numpy, to_numpy

INDEX = "index.json"


class TensorStoreZarr:
    name = "py-tensorstore"
    file_name = "py-tensorstore.zarr"
    bench_saves = True

    def save(self, path: str, sd: StateDict) -> None:
        dtypes = {}
        for name, t in sd.items():
            check_array_name(name)
            if name == INDEX:
                raise PeerError(
                    f"tensor name {name!r} clashes with the checkpoint's index file. Rename the tensor."
                )
            dtypes[name] = dtype_of(t, name)
        with durable.atomic_save(path) as tmp:
            os.mkdir(tmp)
            context = ts.Context()
            for name, t in sd.items():
                spec = {
                    "driver": "zarr",
                    "kvstore": {"driver": "file", "path": os.path.join(tmp, name)},
                    "dtype": dtypes[name].name,
                    "metadata": {"shape": list(t.shape)},
                }
                try:
                    store = ts.open(spec, create=True, context=context).result()
                    store.write(to_numpy(t, dtypes[name])).result()
                except ValueError as e:
                    raise PeerError(f"{path}: tensor {name}: TensorStore write failed: {e}") from e
            with open(os.path.join(tmp, INDEX), "w") as f:
                json.dump({"tensors": list(sd)}, f)

    def load(self, path: str) -> StateDict:
        names = _read_index(path)
        context = ts.Context()
        sd: StateDict = {}
        for name in names:
            spec = {"driver": "zarr", "kvstore": {"driver": "file", "path": os.path.join(path, name)}}
            try:
                array = ts.open(spec, open=True, context=context).result().read().result()
            except ValueError as e:
                raise PeerError(f"{path}: tensor {name}: TensorStore read failed: {e}") from e
            sd[name] = from_numpy(array)
        return sd


def _read_index(path: str) -> list[str]:
    index_path = os.path.join(path, INDEX)
    try:
        with open(index_path) as f:
            index = json.load(f)
    except FileNotFoundError as e:
        raise PeerError(
            f"{index_path} not found, so {path} is not a complete py-tensorstore checkpoint"
        ) from e
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PeerError(f"{index_path}: failed to read the index ({e})") from e
    names = index.get("tensors") if isinstance(index, dict) else None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise PeerError(f"{index_path}: \"tensors\" must be a list of tensor names")
    for name in names:
        check_array_name(name)
    return names
