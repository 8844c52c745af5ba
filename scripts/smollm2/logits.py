#!/usr/bin/env python3
"""Compute SmolLM2's logits for a fixed prompt from a set of weights, so a
checkpoint that went through any format can be checked against the
original converted weights.

  logits.py --config models/smollm2-135m [--weights PATH]
            [--out F.npy] [--expect F.npy] [--against PATH]

--config is the directory convert.py wrote (config.json and tokenizer).
--weights defaults to it and may also name a .safetensors file, a
torch.save file of a {name: tensor} dict, a sharded *.index.json, or a
directory holding one of those. Tensors may be float16, bfloat16 or
float32. Any of them is widened to float32 exactly, so weights whose
bytes round-tripped through a format give bit-identical logits. The
forward pass runs in float32 on one CPU thread with eager attention so
that repeated runs match bit for bit.

Prints one JSON line: the prompt's token ids, the logits' shape, the
SHA-256 of their float32 bytes, and the greedy next token. --out saves
the logits as .npy. --expect compares them with a saved .npy, and
--against with the logits of a second set of weights computed in the same
run (saving a Python start-up). Either exits 1 unless every value is
bit-identical, and prints the max abs diff.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import torch

from smollm2_weights import EMBED, LM_HEAD, CheckpointError, check_weights, read_weights

PROMPT = "The capital of France is"


def load_model(config_dir: Path, weights_path: Path):
    """Build a float32 LlamaForCausalLM from config_dir's config and the
    tensors that weights_path names, after checking their names and shapes."""
    from transformers import AutoConfig, LlamaForCausalLM
    from transformers.modeling_utils import no_init_weights

    config = AutoConfig.from_pretrained(config_dir)
    config._attn_implementation = "eager"
    weights = check_weights(read_weights(weights_path), config, weights_path)

    # Random initialization of 135 M parameters takes seconds and every
    # value is overwritten below.
    with no_init_weights():
        model = LlamaForCausalLM(config)
    model.to(torch.float32)
    missing, unexpected = model.load_state_dict(weights, strict=False)
    allowed_missing = [LM_HEAD] if config.tie_word_embeddings else []
    if sorted(missing) != allowed_missing or unexpected:
        raise CheckpointError(f"{weights_path}: state_dict mismatch: missing {missing}, unexpected {unexpected}")
    model.tie_weights()
    if config.tie_word_embeddings and model.lm_head.weight.data_ptr() != model.get_input_embeddings().weight.data_ptr():
        raise CheckpointError(f"{config_dir}: {LM_HEAD} was not tied to {EMBED}")
    model.eval()
    return model


def compute_logits(config_dir: Path, weights_path: Path, tokenizer, prompt: str = PROMPT) -> tuple[list[int], np.ndarray]:
    """Return the prompt's token ids and the float32 logits, shape
    [1, tokens, vocab]."""
    torch.set_num_threads(1)
    ids = tokenizer(prompt, return_tensors="pt").input_ids
    model = load_model(config_dir, weights_path)
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    return ids[0].tolist(), logits.numpy()


def summarize(ids: list[int], logits: np.ndarray, weights_path: Path, tokenizer) -> dict:
    next_id = int(logits[0, -1].argmax())
    return {
        "weights": str(weights_path),
        "prompt": PROMPT,
        "input_ids": ids,
        "shape": list(logits.shape),
        "dtype": str(logits.dtype),
        "sha256": hashlib.sha256(np.ascontiguousarray(logits).tobytes()).hexdigest(),
        "next_token_id": next_id,
        "next_token": tokenizer.decode([next_id]),
    }


def compare(logits: np.ndarray, expect_path: Path) -> str | None:
    """Return None when logits are bit-identical to the saved array, else
    a message with the max abs diff."""
    return compare_arrays(logits, np.load(expect_path), str(expect_path))


def compare_arrays(got: np.ndarray, want: np.ndarray, source: str) -> str | None:
    """Return None when got is bit-identical to want, else a message that
    names source and gives the max abs diff."""
    if want.shape != got.shape or want.dtype != got.dtype:
        return f"logits differ from {source}: shape {list(got.shape)} {got.dtype}, expected {list(want.shape)} {want.dtype}"
    if np.array_equal(want.view(np.uint32), got.view(np.uint32)):
        return None
    diff = np.abs(want.astype(np.float64) - got.astype(np.float64))
    bad = int((want.view(np.uint32) != got.view(np.uint32)).sum())
    return f"logits differ from {source}: {bad} of {got.size} values, max abs diff {diff.max():.6g}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, required=True, help="directory written by convert.py")
    parser.add_argument("--weights", type=Path, help="weights file or directory (default: --config)")
    parser.add_argument("--out", type=Path, help="save the float32 logits to this .npy file")
    parser.add_argument("--expect", type=Path, help="exit 1 unless the logits equal this .npy bit for bit")
    parser.add_argument(
        "--against", type=Path, help="exit 1 unless the logits equal those from these weights bit for bit"
    )
    args = parser.parse_args(argv)
    weights_path = args.weights or args.config
    if not (args.config / "config.json").is_file():
        print(f"logits.py: {args.config}: no config.json; pass the directory that convert.py wrote", file=sys.stderr)
        return 1

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(args.config)
    try:
        ids, logits = compute_logits(args.config, weights_path, tokenizer)
        reference = compute_logits(args.config, args.against, tokenizer)[1] if args.against else None
    except CheckpointError as err:
        print(f"logits.py: {err}", file=sys.stderr)
        return 1
    if args.out:
        np.save(args.out, logits)
    print(json.dumps(summarize(ids, logits, weights_path, tokenizer)))

    problems = []
    if args.expect:
        problems.append(compare(logits, args.expect))
    if reference is not None:
        problems.append(compare_arrays(logits, reference, str(args.against)))
    for problem in filter(None, problems):
        print(f"logits.py: {problem}", file=sys.stderr)
    return 1 if any(problems) else 0


if __name__ == "__main__":
    sys.exit(main())
