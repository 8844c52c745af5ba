"""py-safetensors: safetensors.torch.save_file and load_file.

safetensors 0.4.5 sorts tensors by dtype and name when it writes, so the
saved order is lost. save therefore records the state dict's order as a
JSON list under the "tensor_order" metadata key, beside the "format": "pt"
entry that transformers writes. load_file maps the file without reading
it, so load touches every page before it returns.
"""

from __future__ import annotations

import json

import safetensors
import safetensors.torch

from .. import durable
from ..measure import touch_pages
from ..statedict import PeerError, StateDict

ORDER_KEY = "tensor_order"


class SafetensorsFile:
    name = "py-safetensors"
    file_name = "py-safetensors.safetensors"
    bench_saves = True

    def save(self, path: str, sd: StateDict) -> None:
        metadata = {"format": "pt", ORDER_KEY: json.dumps(list(sd))}
        with durable.atomic_save(path) as tmp:
            safetensors.torch.save_file(sd, tmp, metadata=metadata)

    def load(self, path: str) -> StateDict:
        try:
            loaded = safetensors.torch.load_file(path)
            with safetensors.safe_open(path, framework="pt") as f:
                metadata = f.metadata() or {}
        except FileNotFoundError as e:
            raise PeerError(f"checkpoint {path} not found") from e
        except (safetensors.SafetensorError, OSError) as e:
            raise PeerError(f"{path}: safetensors failed to read the file ({e})") from e
        order = _order(path, metadata, loaded)
        sd = {name: loaded[name] for name in order}
        touch_pages(sd)
        return sd


def _order(path: str, metadata: dict, loaded: StateDict) -> list[str]:
    """Return the saved order from metadata, or the file's order when it has none."""
    raw = metadata.get(ORDER_KEY)
    if raw is None:
        return list(loaded)
    try:
        order = json.loads(raw)
    except json.JSONDecodeError as e:
        raise PeerError(f"{path}: metadata {ORDER_KEY} is not a JSON list ({e})") from e
    names_ok = isinstance(order, list) and all(isinstance(n, str) for n in order)
    if not names_ok or sorted(order) != sorted(loaded):
        raise PeerError(
            f"{path}: metadata {ORDER_KEY} does not list exactly the file's tensors, "
            "so the file was changed after it was saved"
        )
    return order
