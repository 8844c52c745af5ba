"""Write small PyTorch and Hugging Face fixtures for the Go tests.

Each subcommand writes files into DIR with the real libraries of
llama-venv and prints, as JSON on stdout, a digest of every tensor it
wrote or read: name, dtype, shape and the SHA-256 of its little-endian,
C-order bytes. The Go tests compare those digests with what their readers
load, so no payload has to cross the process boundary.

  safetensors DIR  read every DIR/go-*.safetensors with the safetensors
                   package, then write DIR/py-mixed.safetensors
  torch-save DIR   write torch.save files: float16/bfloat16/float32 state
                   dicts, shared storages, parameters, the legacy format,
                   and files the Go reader must reject
  hf-dirs DIR      save a tiny LlamaForCausalLM with save_pretrained, as
                   safetensors and as pytorch_model.bin, whole and sharded
"""

import argparse
import hashlib
import json
import os
import sys
from collections import OrderedDict

import torch


def digest(tensor):
    """Return the JSON digest of one tensor."""
    t = tensor.detach().contiguous()
    raw = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
    return {
        "name": None,
        "dtype": str(t.dtype).removeprefix("torch."),
        "shape": list(t.shape),
        "sha256": hashlib.sha256(raw).hexdigest(),
    }


def digests(tensors):
    """Return digests of a name-to-tensor mapping, in its order."""
    out = []
    for name, t in tensors.items():
        d = digest(t)
        d["name"] = name
        out.append(d)
    return out


def mixed_tensors():
    """Return tensors of every dtype the Go side stores, with awkward shapes."""
    g = torch.Generator().manual_seed(7)
    return {
        "f16": torch.randn(3, 5, generator=g).half(),
        "bf16": torch.randn(4, 4, generator=g).bfloat16(),
        "f32": torch.randn(7, generator=g),
        "f64": torch.randn(2, 2, generator=g).double(),
        "i64": torch.arange(-3, 3, dtype=torch.int64),
        "i32": torch.arange(5, dtype=torch.int32),
        "i8": torch.tensor([-128, 0, 127], dtype=torch.int8),
        "u8": torch.tensor([0, 255], dtype=torch.uint8),
        "flags": torch.tensor([True, False, True]),
        "scalar": torch.tensor(3.5),
        "empty": torch.zeros(0, 3, dtype=torch.float16),
    }


def cmd_safetensors(out_dir):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    result = {"read": {}, "written": {}}
    for name in sorted(os.listdir(out_dir)):
        if not (name.startswith("go-") and name.endswith(".safetensors")):
            continue
        path = os.path.join(out_dir, name)
        with safe_open(path, framework="pt") as f:
            metadata = f.metadata()
        result["read"][name] = {"metadata": metadata, "tensors": digests(load_file(path))}

    tensors = mixed_tensors()
    name = "py-mixed.safetensors"
    metadata = {"format": "pt", "written_by": "make_hf_fixture.py"}
    save_file(tensors, os.path.join(out_dir, name), metadata=metadata)
    result["written"][name] = {"metadata": metadata, "tensors": digests(tensors)}
    return result


def cmd_torch_save(out_dir):
    g = torch.Generator().manual_seed(11)
    files = {}

    def save(name, obj, tensors=None, **kwargs):
        torch.save(obj, os.path.join(out_dir, name), **kwargs)
        if tensors is not None:
            files[name] = digests(tensors)

    # A real module's state_dict: an OrderedDict with _metadata attached.
    lin = torch.nn.Linear(6, 4)
    for dtype, tag in [(torch.float16, "f16"), (torch.bfloat16, "bf16"), (torch.float32, "f32")]:
        sd = lin.to(dtype).state_dict()
        save(f"linear-{tag}.bin", sd, sd)

    # Tied weights share one storage; a row slice is a view at an offset.
    emb = torch.randn(10, 4, generator=g).half()
    tied = OrderedDict(
        [("embed_tokens.weight", emb), ("lm_head.weight", emb), ("rows", emb[3:5]), ("norm", torch.ones(4).half())]
    )
    save("tied.bin", tied, tied)
    # The same contents in the pre-1.6 format.
    save("legacy.bin", tied, tied, _use_new_zipfile_serialization=False)

    # nn.Parameter values, pickled through _rebuild_parameter, in a plain dict.
    params = {"w": torch.nn.Parameter(torch.randn(3, 2, generator=g)), "b": torch.nn.Parameter(torch.zeros(2))}
    save("params.bin", params, {k: v.data for k, v in params.items()})

    odd = mixed_tensors()
    save("mixed.bin", odd, odd)
    # A column slice is not contiguous.
    save("noncontiguous.bin", {"ok": emb, "cols": emb[:, 1:3]})
    save("transposed.bin", {"t": emb.t()})
    save("nested.bin", {"model": {"w": emb}, "step": 3})
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), os.path.join(out_dir, "torchscript.pt"))
    return files


def tiny_config(**overrides):
    from transformers import LlamaConfig

    # The sizes of model.Tiny in Go: grouped-query attention (2 key/value
    # heads for 4 query heads) and an intermediate size that is not a
    # power of two.
    kwargs = dict(
        vocab_size=320,
        hidden_size=64,
        intermediate_size=172,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        rms_norm_eps=1e-6,
        tie_word_embeddings=False,
    )
    kwargs.update(overrides)
    return LlamaConfig(**kwargs)


def cmd_hf_dirs(out_dir):
    from transformers import LlamaForCausalLM

    torch.manual_seed(3)
    variants = [
        # name, dtype, config overrides, save_pretrained arguments
        ("safe", torch.float16, {}, {"safe_serialization": True}),
        ("bin", torch.float16, {}, {"safe_serialization": False}),
        ("safe-sharded", torch.float16, {}, {"safe_serialization": True, "max_shard_size": "60KB"}),
        ("bin-sharded", torch.float16, {}, {"safe_serialization": False, "max_shard_size": "60KB"}),
        ("safe-bf16", torch.bfloat16, {}, {"safe_serialization": True}),
        ("safe-tied", torch.float16, {"tie_word_embeddings": True}, {"safe_serialization": True}),
        ("bin-tied", torch.float16, {"tie_word_embeddings": True}, {"safe_serialization": False}),
    ]
    result = {}
    for name, dtype, overrides, save_kwargs in variants:
        model = LlamaForCausalLM(tiny_config(**overrides)).to(dtype)
        model.save_pretrained(os.path.join(out_dir, name), **save_kwargs)
        sd = model.state_dict()
        # The tensors a loader must return: the weights, without
        # lm_head.weight when it is tied to the input embedding.
        if model.config.tie_word_embeddings:
            sd.pop("lm_head.weight", None)
        result[name] = {"files": sorted(os.listdir(os.path.join(out_dir, name))), "tensors": digests(sd)}
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["safetensors", "torch-save", "hf-dirs"])
    parser.add_argument("dir", help="directory to write into (created if missing)")
    args = parser.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    run = {"safetensors": cmd_safetensors, "torch-save": cmd_torch_save, "hf-dirs": cmd_hf_dirs}[args.command]
    json.dump(run(args.dir), sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
