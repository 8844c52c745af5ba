"""Tensor layout of the converted SmolLM2 checkpoint, shared by convert.py,
logits.py and the tests.

The layout is the one transformers' LlamaForCausalLM uses: tensor names,
shapes and order follow its state_dict. Because SmolLM2 ties lm_head to
the token embedding, the converted files omit lm_head.weight.
"""

from __future__ import annotations

import json
import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

SAFETENSORS = "model.safetensors"
PYTORCH_BIN = "pytorch_model.bin"
LM_HEAD = "lm_head.weight"
EMBED = "model.embed_tokens.weight"

# Float dtypes whose values float32 represents exactly, so logits
# computed from them depend only on the stored values.
EXACT_IN_FLOAT32 = (torch.float16, torch.bfloat16, torch.float32)


class CheckpointError(Exception):
    """A weights file that does not match the converted model."""


def expected_shapes(config) -> "OrderedDict[str, tuple[int, ...]]":
    """Return each stored tensor's name and shape for a LLaMA config, in
    LlamaForCausalLM's state_dict order, leaving out lm_head when it is tied."""
    hidden = config.hidden_size
    head_dim = getattr(config, "head_dim", None) or hidden // config.num_attention_heads
    q_rows = config.num_attention_heads * head_dim
    kv_rows = config.num_key_value_heads * head_dim
    inter = config.intermediate_size

    shapes = OrderedDict()
    shapes[EMBED] = (config.vocab_size, hidden)
    for n in range(config.num_hidden_layers):
        p = f"model.layers.{n}."
        shapes[p + "self_attn.q_proj.weight"] = (q_rows, hidden)
        shapes[p + "self_attn.k_proj.weight"] = (kv_rows, hidden)
        shapes[p + "self_attn.v_proj.weight"] = (kv_rows, hidden)
        shapes[p + "self_attn.o_proj.weight"] = (hidden, q_rows)
        shapes[p + "mlp.gate_proj.weight"] = (inter, hidden)
        shapes[p + "mlp.up_proj.weight"] = (inter, hidden)
        shapes[p + "mlp.down_proj.weight"] = (hidden, inter)
        shapes[p + "input_layernorm.weight"] = (hidden,)
        shapes[p + "post_attention_layernorm.weight"] = (hidden,)
    shapes["model.norm.weight"] = (hidden,)
    if not config.tie_word_embeddings:
        shapes[LM_HEAD] = (config.vocab_size, hidden)
    return shapes


def to_gguf_rows(weight: np.ndarray, n_heads: int) -> np.ndarray:
    """Reorder the rows of a q_proj or k_proj weight into llama.cpp's layout.

    transformers' rotary embedding rotates element j of each head together
    with element j + head_dim/2, while llama.cpp rotates adjacent pairs
    (2j, 2j+1). llama.cpp's converter therefore interleaves the two halves
    of every head's rows. n_heads is the query head count for q_proj and
    the key/value head count for k_proj.
    """
    rows = weight.shape[0]
    half = rows // n_heads // 2
    w = weight.reshape(n_heads, 2, half, *weight.shape[1:])
    return w.swapaxes(1, 2).reshape(weight.shape)


def weight_files(path: Path) -> list[Path]:
    """Return the weight files that path names: a file, a *.index.json of
    shards, or a directory holding model.safetensors or pytorch_model.bin
    (or their sharded index)."""
    if path.is_dir():
        for name in (SAFETENSORS, SAFETENSORS + ".index.json", PYTORCH_BIN, PYTORCH_BIN + ".index.json"):
            if (path / name).is_file():
                return weight_files(path / name)
        raise CheckpointError(
            f"{path}: no weights found; expected {SAFETENSORS} or {PYTORCH_BIN} "
            "(or a sharded *.index.json), or pass the weights file itself"
        )
    if not path.is_file():
        raise CheckpointError(f"{path}: weights file not found")
    if path.name.endswith(".index.json"):
        with open(path) as f:
            weight_map = json.load(f).get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise CheckpointError(f"{path}: missing or empty \"weight_map\" in the shard index")
        shards = list(OrderedDict.fromkeys(weight_map.values()))
        return [path.parent / s for s in shards]
    return [path]


def read_weights(path: Path) -> "OrderedDict[str, torch.Tensor]":
    """Read every tensor that path names (see weight_files) into memory.

    safetensors files are read with safetensors; anything else goes to
    torch.load with weights_only=True, so a pickle can only rebuild tensors.
    """
    from safetensors.torch import load_file

    weights = OrderedDict()
    for file in weight_files(path):
        if not file.is_file():
            raise CheckpointError(f"{file}: shard listed in the index not found")
        if file.suffix == ".safetensors":
            part = load_file(str(file))
        else:
            try:
                part = torch_load(file)
            except Exception as err:
                raise CheckpointError(
                    f"{file}: torch.load failed ({err}); logits.py reads safetensors files and "
                    "torch.save archives of a flat {name: tensor} dict"
                ) from err
            if not isinstance(part, dict) or not all(isinstance(v, torch.Tensor) for v in part.values()):
                raise CheckpointError(f"{file}: expected a flat {{name: tensor}} dict, got {type(part).__name__}")
        for name, tensor in part.items():
            if name in weights:
                raise CheckpointError(f"{file}: tensor {name} appears in more than one shard")
            weights[name] = tensor
    return weights


def torch_load(path: Path):
    """Load a torch.save file onto the CPU, allowing only tensors and plain
    containers (weights_only). Zip-format files are memory-mapped, so their
    tensors use page cache rather than a private copy."""
    with warnings.catch_warnings():
        # torch 2.1's weights_only unpickler touches the deprecated
        # TypedStorage API itself; the warning is not about the caller.
        warnings.filterwarnings("ignore", message="TypedStorage is deprecated")
        try:
            return torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as err:
            # Files in torch's pre-1.6 legacy format cannot be mapped.
            if "mmap" not in str(err):
                raise
            return torch.load(str(path), map_location="cpu", weights_only=True)


def check_weights(weights: dict, config, source: Path) -> "OrderedDict[str, torch.Tensor]":
    """Check weights against the tensors a config expects and return them
    in state_dict order.

    A stored lm_head.weight is accepted for a tied config only when it is
    bit-identical to the embedding, because the model would ignore it.
    """
    expected = expected_shapes(config)
    missing = [n for n in expected if n not in weights]
    if missing:
        raise CheckpointError(
            f"{source}: {len(missing)} tensors missing, first {missing[0]}; "
            "a checkpoint must hold every tensor of the converted model"
        )
    extra = [n for n in weights if n not in expected and not (n == LM_HEAD and config.tie_word_embeddings)]
    if extra:
        raise CheckpointError(
            f"{source}: {len(extra)} unexpected tensors, first {extra[0]}; "
            "the names must be transformers' LlamaForCausalLM state_dict names"
        )

    ordered = OrderedDict()
    for name, shape in expected.items():
        tensor = weights[name]
        if tuple(tensor.shape) != shape:
            raise CheckpointError(f"{source}: tensor {name} has shape {list(tensor.shape)}, expected {list(shape)}")
        if tensor.dtype not in EXACT_IN_FLOAT32:
            raise CheckpointError(
                f"{source}: tensor {name} has dtype {tensor.dtype}; expected float16, bfloat16 or float32"
            )
        ordered[name] = tensor

    if LM_HEAD in weights and config.tie_word_embeddings:
        head, embed = weights[LM_HEAD], weights[EMBED]
        if head.dtype != embed.dtype or head.shape != embed.shape or not same_bits(head, embed):
            raise CheckpointError(
                f"{source}: tensor {LM_HEAD} differs from {EMBED}, but the config ties them; "
                f"drop {LM_HEAD} or store the embedding under both names"
            )
    return ordered


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Report whether two tensors have the same dtype, shape and bytes.
    Unlike torch.equal, it distinguishes -0.0 from 0.0 and treats equal NaN
    payloads as equal."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    a = a.contiguous().view(torch.uint8) if a.numel() else a
    b = b.contiguous().view(torch.uint8) if b.numel() else b
    return torch.equal(a, b)
