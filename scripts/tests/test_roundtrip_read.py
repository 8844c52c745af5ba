"""Tests for scripts/roundtrip_read.py on small synthetic checkpoints,
written here with the real libraries in the layouts that the Go formats
document: safetensors, formats/zarr's index.json, formats/t5x's msgpack
index and torchsave's TorchScript archive."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import msgpack
import numpy as np
import pytest
import tensorstore as ts
import torch
from safetensors.torch import load_file, save_file

import roundtrip_read

REPO_ROOT = Path(__file__).resolve().parents[2]

ZARR_DTYPES = {torch.float16: "<f2", torch.bfloat16: "bfloat16", torch.float32: "<f4", torch.int64: "<i8"}


def mixed_state_dict(make_state_dict) -> dict[str, torch.Tensor]:
    """Return the tiny LLaMA in float16 (random bytes, NaN payloads
    included) plus tensors of other dtypes and awkward shapes."""
    sd = make_state_dict(torch.float16, seed=3)
    g = torch.Generator().manual_seed(4)
    sd["extra.bf16"] = torch.randn(5, 7, generator=g).bfloat16()
    sd["extra.f32_3d"] = torch.randn(2, 3, 4, generator=g)
    sd["extra.steps"] = torch.arange(-3, 6, dtype=torch.int64)
    return sd


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """Return t's values as numpy, bfloat16 as TensorStore's numpy dtype."""
    if t.dtype == torch.bfloat16:
        return t.contiguous().view(torch.int16).numpy().view(ts.bfloat16.numpy_dtype)
    return t.contiguous().numpy()


def write_zarr_array(path: Path, t: torch.Tensor, chunks: list[int], compressor: dict | None) -> None:
    """Write t as a zarr v2 array at path with TensorStore."""
    metadata = {
        "shape": list(t.shape),
        # A zero-size dimension still needs a chunk length of at least 1.
        "chunks": [max(1, c) for c in chunks],
        "dtype": ZARR_DTYPES[t.dtype],
        "compressor": compressor,
    }
    spec = {"driver": "zarr", "kvstore": {"driver": "file", "path": str(path)}, "metadata": metadata}
    store = ts.open(spec, create=True).result()
    store.write(to_numpy(t)).result()


def edge_chunks(shape) -> list[int]:
    """Return chunks that cut the first dimension unevenly, so the last
    chunk along it is an edge chunk stored full size."""
    chunks = list(shape)
    if chunks and chunks[0] > 2:
        chunks[0] = chunks[0] // 2 + 1
    return chunks


def write_zarr_checkpoint(ckpt: Path, sd: dict) -> None:
    """Write sd in formats/zarr's layout: one array per tensor at its
    dotted name turned into directories, and index.json listing them."""
    ckpt.mkdir()
    compressors = [None, {"id": "gzip", "level": 1}, {"id": "zstd", "level": 1}]
    entries = []
    for i, (name, t) in enumerate(sd.items()):
        path = name.replace(".", "/")
        write_zarr_array(ckpt / path, t, edge_chunks(t.shape), compressors[i % 3])
        entries.append({"name": name, "path": path, "dtype": str(t.dtype).removeprefix("torch."), "shape": list(t.shape)})
    index = {"format": "ckptbench-zarr", "version": 1, "tensors": entries}
    (ckpt / "index.json").write_text(json.dumps(index))


def t5x_spec(path: str, t: torch.Tensor, chunks: list[int], compressor: str | None) -> dict:
    return {
        "driver": "zarr",
        "dtype": str(t.dtype).removeprefix("torch."),
        "kvstore": {"driver": "file", "path": path},
        "metadata": {"chunks": chunks, "compressor": None if compressor is None else {"id": compressor}, "shape": list(t.shape)},
    }


def write_t5x_checkpoint(ckpt: Path, sd: dict, order: list[str], flat_paths: bool = False) -> None:
    """Write sd in formats/t5x's layout: zarr arrays and a msgpack index
    named checkpoint with the nested parameter tree and tensor_order.

    The index records a compressor and chunks that differ from each
    .zarray, which a reader must follow instead, as T5X's restore does.
    With flat_paths, arrays sit in one directory named by the dotted name,
    as real T5X stores them.
    """
    ckpt.mkdir()
    tree: dict = {}
    for name, t in sd.items():
        path = name if flat_paths else name.replace(".", "/")
        write_zarr_array(ckpt / path, t, edge_chunks(t.shape), {"id": "zstd", "level": 1})
        *parents, leaf = name.split(".")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = t5x_spec(path, t, list(t.shape), "gzip")
    index = {"version": 3, "optimizer": {"target": tree}, "every_chunk_stored": True, "tensor_order": order}
    (ckpt / "checkpoint").write_bytes(msgpack.packb(index, use_bin_type=True))


def write_torchsave(path: Path, sd: dict) -> None:
    """Save sd as the parameters of nested modules, one module level per
    dot-separated part of each name, with torch.jit.save."""
    root = torch.nn.Module()
    for name, t in sd.items():
        *parents, leaf = name.split(".")
        module = root
        for part in parents:
            if not hasattr(module, part):
                module.add_module(part, torch.nn.Module())
            module = getattr(module, part)
        module.register_parameter(leaf, torch.nn.Parameter(t, requires_grad=False))
    torch.jit.save(torch.jit.script(root), str(path))


def by_name(sd: dict) -> dict:
    return {name: sd[name] for name in sorted(sd)}


def sha256(t: torch.Tensor) -> str:
    flat = t.contiguous().reshape(-1)
    return hashlib.sha256(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"").hexdigest()


def run(capsys, *args: str) -> tuple[int, list[dict], str]:
    """Run roundtrip_read.main in this process; return its exit status, its
    JSON lines and its standard error."""
    status = roundtrip_read.main(list(args))
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in captured.out.splitlines()]
    return status, lines, captured.err


def check_round_trip(capsys, assert_same_tensors, fmt: str, ckpt: Path, want: dict, tmp_path: Path) -> dict:
    """Read ckpt as fmt, and check both the printed digests and the
    safetensors file written against want. Returns the printed line."""
    out = tmp_path / f"{fmt}.safetensors"
    status, lines, err = run(capsys, "--read", fmt, str(ckpt), str(out))
    assert status == 0, err
    assert len(lines) == 1
    line = lines[0]
    assert (line["format"], line["checkpoint"], line["out"]) == (fmt, str(ckpt), str(out))
    printed = {d["name"]: d for d in line["tensors"]}
    assert sorted(printed) == sorted(want)
    for name, t in want.items():
        d = printed[name]
        assert (d["dtype"], d["shape"]) == (str(t.dtype).removeprefix("torch."), list(t.shape)), name
        assert d["sha256"] == sha256(t), name
    assert_same_tensors(by_name(want), by_name(load_file(str(out))))
    return line


def test_safetensors_round_trip(tmp_path, make_state_dict, capsys, assert_same_tensors):
    sd = mixed_state_dict(make_state_dict)
    ckpt = tmp_path / "go.safetensors"
    save_file(sd, str(ckpt), metadata={"format": "pt"})
    check_round_trip(capsys, assert_same_tensors, "safetensors", ckpt, sd, tmp_path)


def test_zarr_round_trip(tmp_path, make_state_dict, capsys, assert_same_tensors):
    sd = mixed_state_dict(make_state_dict)
    ckpt = tmp_path / "go-zarr"
    write_zarr_checkpoint(ckpt, sd)
    line = check_round_trip(capsys, assert_same_tensors, "zarr", ckpt, sd, tmp_path)
    # TensorStore reads in index order, which is the saved order.
    assert [d["name"] for d in line["tensors"]] == list(sd)


@pytest.mark.parametrize("flat_paths", [False, True], ids=["nested-dirs", "t5x-flat-dirs"])
def test_t5x_round_trip(tmp_path, make_state_dict, capsys, assert_same_tensors, flat_paths):
    sd = mixed_state_dict(make_state_dict)
    # A saved order unlike the tree's grouping by prefix: tensor_order wins.
    order = list(reversed(sd))
    ckpt = tmp_path / "checkpoint_1"
    write_t5x_checkpoint(ckpt, sd, order, flat_paths)
    line = check_round_trip(capsys, assert_same_tensors, "t5x", ckpt, sd, tmp_path)
    assert [d["name"] for d in line["tensors"]] == order


def test_torchsave_round_trip(tmp_path, make_state_dict, capsys, assert_same_tensors):
    sd = make_state_dict(torch.bfloat16, seed=5)
    # A transposed view: the archive stores it with its strides, and the
    # script must write C-order bytes.
    sd["extra.transposed"] = torch.arange(12, dtype=torch.float32).reshape(3, 4).t()
    ckpt = tmp_path / "go.pt"
    write_torchsave(ckpt, sd)
    check_round_trip(capsys, assert_same_tensors, "torchsave", ckpt, sd, tmp_path)


def test_several_checkpoints_one_process(tmp_path, make_state_dict, capsys):
    """Each --read prints its own line, in order, and a failing checkpoint
    does not stop the ones after it."""
    sd = make_state_dict(torch.float16, seed=6, extras=False)
    good = tmp_path / "good.safetensors"
    save_file(sd, str(good))
    missing = tmp_path / "never-written"
    status, lines, err = run(
        capsys,
        "--read", "zarr", str(missing), str(tmp_path / "a.safetensors"),
        "--read", "safetensors", str(good), str(tmp_path / "b.safetensors"),
    )
    assert status == 1
    assert [line["checkpoint"] for line in lines] == [str(good)]
    assert f"zarr {missing}: {missing}: checkpoint not found" in err
    assert (tmp_path / "b.safetensors").is_file()
    assert not (tmp_path / "a.safetensors").exists()


def test_unknown_format_is_rejected(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        roundtrip_read.main(["--read", "pickle", str(tmp_path), str(tmp_path / "out.safetensors")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "no Python reader for format 'pickle'" in err
    assert "safetensors, zarr, t5x, torchsave" in err


def test_config_needs_against(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        roundtrip_read.main(["--config", str(tmp_path), "--read", "zarr", str(tmp_path), str(tmp_path / "o")])
    assert exit_info.value.code == 2
    assert "--config and --against must be given together" in capsys.readouterr().err


def damaged_zarr(tmp_path, make_state_dict) -> tuple[Path, dict]:
    sd = make_state_dict(torch.float16, seed=7, extras=False)
    ckpt = tmp_path / "zarr"
    write_zarr_checkpoint(ckpt, sd)
    return ckpt, json.loads((ckpt / "index.json").read_text())


@pytest.mark.parametrize(
    "damage, message",
    [
        ("no-index", "index.json: not found; a zarr checkpoint from formats/zarr has its index there"),
        ("wrong-version", "format 'ckptbench-zarr' version 2, expected 'ckptbench-zarr' version 1"),
        ("shape", "tensor model.norm.weight: the array at"),
        ("escape", "tensor model.norm.weight: array path '../outside' is not a relative path inside"),
        ("missing-array", "tensor model.norm.weight: TensorStore cannot open the array at"),
    ],
)
def test_damaged_zarr_names_the_problem(tmp_path, make_state_dict, capsys, damage, message):
    ckpt, index = damaged_zarr(tmp_path, make_state_dict)
    norm = next(e for e in index["tensors"] if e["name"] == "model.norm.weight")
    if damage == "no-index":
        (ckpt / "index.json").unlink()
    elif damage == "wrong-version":
        index["version"] = 2
    elif damage == "shape":
        norm["shape"] = [norm["shape"][0] + 1]
    elif damage == "escape":
        norm["path"] = "../outside"
    elif damage == "missing-array":
        for f in (ckpt / norm["path"]).iterdir():
            f.unlink()
    if damage != "no-index":
        (ckpt / "index.json").write_text(json.dumps(index))
    out = tmp_path / "out.safetensors"
    status, lines, err = run(capsys, "--read", "zarr", str(ckpt), str(out))
    assert status == 1
    assert lines == []
    assert message in err
    assert err.startswith(f"roundtrip_read.py: zarr {ckpt}: ")
    assert not out.exists()


def test_t5x_inline_parameter_is_rejected(tmp_path, make_state_dict, capsys):
    sd = make_state_dict(torch.float16, seed=8, extras=False)
    ckpt = tmp_path / "checkpoint_2"
    write_t5x_checkpoint(ckpt, sd, list(sd))
    index = msgpack.unpackb((ckpt / "checkpoint").read_bytes(), raw=False)
    # T5X can store small parameters in the msgpack file itself.
    index["optimizer"]["target"]["model"]["norm"]["weight"] = b"\x00\x3c"
    (ckpt / "checkpoint").write_bytes(msgpack.packb(index, use_bin_type=True))
    status, _, err = run(capsys, "--read", "t5x", str(ckpt), str(tmp_path / "out.safetensors"))
    assert status == 1
    assert "parameter model.norm.weight is stored inline as bytes" in err


def test_t5x_order_must_match_tree(tmp_path, make_state_dict, capsys):
    sd = make_state_dict(torch.float16, seed=9, extras=False)
    ckpt = tmp_path / "checkpoint_3"
    write_t5x_checkpoint(ckpt, sd, list(sd)[1:])
    status, _, err = run(capsys, "--read", "t5x", str(ckpt), str(tmp_path / "out.safetensors"))
    assert status == 1
    assert "tensor_order and the parameter tree list different tensors" in err


def test_torchsave_rejects_pickle(tmp_path, capsys):
    ckpt = tmp_path / "pickle.pt"
    torch.save({"weight": torch.ones(2, dtype=torch.float16)}, str(ckpt))
    status, _, err = run(capsys, "--read", "torchsave", str(ckpt), str(tmp_path / "out.safetensors"))
    assert status == 1
    assert "torch.jit.load failed" in err


def smollm2_dir() -> Path:
    path = Path(os.environ.get("SMOLLM2_DIR", REPO_ROOT / "models" / "smollm2-135m"))
    if not (path / "conversion.json").is_file():
        pytest.skip(f"{path} has no converted SmolLM2; run `make smollm2`")
    return path


def test_logits_check_catches_one_bit(tmp_path, capsys):
    """The logits check passes the converted weights and fails them after
    a single bit of one weight flips."""
    model_dir = smollm2_dir()
    weights = load_file(str(model_dir / "model.safetensors"))
    original = tmp_path / "original.safetensors"
    save_file(weights, str(original), metadata={"format": "pt"})
    name = "model.layers.7.mlp.down_proj.weight"
    weights[name] = weights[name].clone()
    weights[name].view(-1).view(torch.int16)[12345] ^= 1
    flipped = tmp_path / "flipped.safetensors"
    save_file(weights, str(flipped), metadata={"format": "pt"})
    del weights

    status, lines, err = run(
        capsys,
        "--config", str(model_dir), "--against", str(model_dir),
        "--read", "safetensors", str(original), str(tmp_path / "a.safetensors"),
        "--read", "safetensors", str(flipped), str(tmp_path / "b.safetensors"),
    )
    assert status == 1
    reference, same, changed = lines
    assert reference["against"] == str(model_dir)
    assert reference["logits"]["next_token"] == " Paris"
    assert same["logits"]["identical"] is True
    assert same["logits"]["sha256"] == reference["logits"]["sha256"]
    assert changed["logits"]["identical"] is False
    assert f"safetensors {flipped}: logits differ from {model_dir}" in err
    assert str(original) not in err
