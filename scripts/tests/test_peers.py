"""Tests of the Python peers (scripts/peers) against the real torch,
safetensors and TensorStore, on a tiny synthetic model."""

from __future__ import annotations

import errno
import glob
import io
import json
import os
import re
import shutil
import struct
import subprocess

import msgpack
import pytest
import safetensors
import safetensors.torch
import torch

from peers import bench, cli, durable, gobench, handover, measure
from peers.formats import FORMATS, lookup
from peers.formats import t5x as t5x_format
from peers.formats import tensorstore_zarr
from peers.statedict import PeerError

FORMAT_NAMES = list(FORMATS)
DTYPES = [torch.float16, torch.bfloat16, torch.float32]
BENCHSTAT = "golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da"

# A result line as Go's testing package prints one benchmark iteration.
RESULT_LINE = re.compile(
    r"^(?P<name>Benchmark(?P<op>Save|Load)/format=(?P<format>[^/\s]+)/model=(?P<model>[^/\s]+?)"
    r"(?:/cache=(?P<cache>cold|warm))?(?:-(?P<procs>\d+))?)"
    r"\t *(?P<n>\d+)"
    r"\t *(?P<ns>\d+) ns/op"
    r"\t *(?P<mbs>\d+\.\d\d) MB/s"
    r"\t *(?P<disk>[\d.]+) disk-B"
    r"\t *(?P<files>[\d.]+) files"
    r"\t *(?P<rss>[\d.]+) peak-RSS-B$"
)
CONFIG_LINE = re.compile(r"^[a-z][a-z0-9-]*: \S.*$")


def leftovers(path) -> list[str]:
    """Return temporary or moved-aside siblings of a checkpoint path."""
    return glob.glob(f"{path}.tmp-*") + glob.glob(f"{path}.old-*")


def mixed_state_dict(make_state_dict):
    """Return bfloat16 weights with float32 norms, as mixed-precision checkpoints have."""
    sd = make_state_dict(torch.bfloat16)
    norms = make_state_dict(torch.float32)
    for name in sd:
        if name.endswith("norm.weight"):
            sd[name] = norms[name]
    return sd


# Round trips


@pytest.mark.parametrize("dtype", DTYPES + ["mixed"], ids=str)
@pytest.mark.parametrize("format_name", FORMAT_NAMES)
def test_round_trip_bit_exact(tmp_path, make_state_dict, assert_same_tensors, format_name, dtype):
    sd = mixed_state_dict(make_state_dict) if dtype == "mixed" else make_state_dict(dtype)
    fmt = lookup(format_name)
    path = str(tmp_path / "ckpt")
    fmt.save(path, sd)
    got = fmt.load(path)
    assert_same_tensors(sd, got)
    assert leftovers(path) == []


@pytest.mark.parametrize("format_name", FORMAT_NAMES)
def test_cli_save_load_round_trip(tmp_path, make_state_dict, assert_same_tensors, format_name):
    """save from a handover written by safetensors itself, load back to safetensors."""
    sd = make_state_dict(torch.bfloat16)
    handover_path = str(tmp_path / "handover.safetensors")
    safetensors.torch.save_file(sd, handover_path)
    ckpt = str(tmp_path / "ckpt")
    out = str(tmp_path / "out.safetensors")

    assert cli.main(["save", "--format", format_name, "--handover", handover_path, "--out", ckpt]) == 0
    assert cli.main(["load", "--format", format_name, "--in", ckpt, "--out", out]) == 0

    # safetensors' writer sorts tensors, so the handover's order is its data order.
    want_order = handover.read_order(handover_path)
    with safetensors.safe_open(handover_path, "pt") as f:
        want = {name: f.get_tensor(name) for name in want_order}
    with safetensors.safe_open(out, "pt") as f:
        got = {name: f.get_tensor(name) for name in handover.read_order(out)}
    assert_same_tensors(want, got)


def test_peers_script_entry_point(tmp_path, make_state_dict, run_script, assert_same_tensors):
    """peers.py runs as a script; the other tests call the package in-process."""
    sd = make_state_dict(torch.float16, extras=False)
    handover_path = str(tmp_path / "handover.safetensors")
    handover.write_safetensors(handover_path, sd)
    ckpt = str(tmp_path / "ckpt")

    saved = run_script("peers.py", "save", "--format", "py-t5x", "--handover", handover_path, "--out", ckpt)
    assert saved.returncode == 0, saved.stderr

    assert_same_tensors(sd, lookup("py-t5x").load(ckpt))


# The handover file


def test_handover_keeps_data_order(tmp_path, make_state_dict, assert_same_tensors):
    sd = make_state_dict(torch.float16)
    # Go writes in state dict order, which is not safetensors' sorted order.
    reordered = dict(reversed(list(sd.items())))
    path = str(tmp_path / "h.safetensors")
    handover.write_safetensors(path, reordered, metadata={"format": "pt"})

    assert_same_tensors(reordered, handover.read_handover(path))
    # The real safetensors library reads the file the same way.
    with safetensors.safe_open(path, "pt") as f:
        assert f.metadata() == {"format": "pt"}
        assert_same_tensors(reordered, {name: f.get_tensor(name) for name in reordered})
    with open(path, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
    assert header_len % 8 == 0


def _header_file(path, header: dict, data: bytes = b"") -> str:
    raw = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw + data)
    return str(path)


def _entry(dtype, shape, offsets) -> dict:
    return {"w": {"dtype": dtype, "shape": shape, "data_offsets": offsets}}


# Case: (header, data bytes, expected message).
BAD_HEADERS = {
    "bad dtype": (_entry("C64", [1], [0, 8]), bytes(8), "tensor w: dtype 'C64'"),
    "list dtype": (_entry(["F16"], [1], [0, 2]), bytes(2), "tensor w: dtype ['F16']"),
    "size mismatch": (_entry("F16", [3], [0, 4]), bytes(4), "tensor w: data_offsets [0, 4] hold 4 bytes"),
    "past the end": (_entry("F16", [4], [0, 8]), bytes(4), "tensor w: data_offsets [0, 8] are not a range"),
    "negative size": (_entry("F16", [-1], [0, 0]), b"", "tensor w: shape [-1]"),
    "bool size": (_entry("F16", [True], [0, 2]), bytes(2), "tensor w: shape [True]"),
    "not an object": (["w"], b"", "header is not a JSON object"),
}


@pytest.mark.parametrize("case", list(BAD_HEADERS))
def test_handover_rejects_bad_header(tmp_path, case):
    header, data, message = BAD_HEADERS[case]
    path = _header_file(tmp_path / "bad.safetensors", header, data)
    with pytest.raises(PeerError) as e:
        handover.read_handover(path)
    assert path in str(e.value)
    assert message in str(e.value)


def test_handover_rejects_truncated_file(tmp_path):
    path = tmp_path / "short.safetensors"
    path.write_bytes(struct.pack("<Q", 1 << 20) + b"{}")
    with pytest.raises(PeerError, match="header length 1048576 exceeds the file"):
        handover.read_handover(str(path))
    path.write_bytes(b"abc")
    with pytest.raises(PeerError, match="too short"):
        handover.read_handover(str(path))


def test_handover_missing_file(tmp_path):
    missing = str(tmp_path / "nope.safetensors")
    with pytest.raises(PeerError, match="failed to read the safetensors file .*nope.safetensors"):
        handover.read_handover(missing)


# T5X specifics


@pytest.mark.parametrize(
    "shape, itemsize, target, want",
    [
        # OpenLLaMA-3B in float16: the embedding splits in 4, the rest stays whole.
        ([32000, 3200], 2, 64 << 20, [8000, 3200]),
        ([8640, 3200], 2, 64 << 20, [8640, 3200]),
        ([3200], 2, 64 << 20, [3200]),
        # In float32 the target is 16 Mi elements: 32000 drops to 16000,
        # 8000, 6400 and 4000, its divisors in turn.
        ([32000, 3200], 4, 64 << 20, [4000, 3200]),
        # Ties go to the first dimension.
        ([6, 6], 1, 18, [3, 6]),
        # A prime size can only drop to 1.
        ([7919], 1, 100, [1]),
        ([], 2, 64 << 20, []),
        ([0, 64], 2, 64, [1, 32]),
    ],
)
def test_t5x_chunk_shape(shape, itemsize, target, want):
    assert t5x_format.chunk_shape(shape, itemsize, target) == want


def test_t5x_layout_and_chunks(tmp_path, make_state_dict, assert_same_tensors):
    sd = make_state_dict(torch.bfloat16)
    # A 1 KiB target splits the tiny model's weights into many chunks.
    fmt = t5x_format.T5X(chunk_bytes=1024)
    path = str(tmp_path / "checkpoint_0")
    fmt.save(path, sd)

    with open(os.path.join(path, "checkpoint"), "rb") as f:
        index = msgpack.unpackb(f.read())
    assert index["version"] == 3
    target = index["optimizer"]["target"]
    assert list(target) == list(sd)
    embed = target["model.embed_tokens.weight"]
    assert embed["kvstore"] == {"driver": "file", "path": "model.embed_tokens.weight"}
    assert embed["dtype"] == "bfloat16"
    assert embed["metadata"]["compressor"] == {"id": "gzip"}
    # 250 x 64 bfloat16 within 512 elements: 250 drops to 125, then 50,
    # 64 to 32, 50 to 25 and 32 to 16, giving [25, 16].
    assert embed["metadata"]["chunks"] == [25, 16]

    with open(os.path.join(path, "model.embed_tokens.weight", ".zarray")) as f:
        zarray = json.load(f)
    assert zarray["chunks"] == [25, 16]
    assert zarray["dtype"] == "bfloat16"
    assert zarray["compressor"]["id"] == "gzip"
    chunks = [n for n in os.listdir(os.path.join(path, "model.embed_tokens.weight")) if n != ".zarray"]
    assert len(chunks) == 10 * 4

    # The index is written after every array.
    index_mtime = os.stat(os.path.join(path, "checkpoint")).st_mtime_ns
    for p in durable.regular_files(path):
        assert os.stat(p).st_mtime_ns <= index_mtime, p

    # The reader ignores the stored chunking, as T5X's restore does.
    assert_same_tensors(sd, t5x_format.T5X().load(path))


def test_t5x_rejects_shape_mismatch(tmp_path, make_state_dict):
    sd = make_state_dict(torch.float16, extras=False)
    path = str(tmp_path / "ckpt")
    lookup("py-t5x").save(path, sd)
    index_path = os.path.join(path, "checkpoint")
    with open(index_path, "rb") as f:
        index = msgpack.unpackb(f.read())
    index["optimizer"]["target"]["model.norm.weight"]["metadata"]["shape"] = [65]
    with open(index_path, "wb") as f:
        f.write(msgpack.packb(index))
    with pytest.raises(PeerError, match=r"tensor model.norm.weight: .*\[64\].*\[65\]"):
        lookup("py-t5x").load(path)


@pytest.mark.parametrize("bad_path", ["../outside", "/etc", ".hidden", ""])
def test_t5x_rejects_paths_outside_checkpoint(tmp_path, make_state_dict, bad_path):
    sd = make_state_dict(torch.float16, extras=False)
    path = str(tmp_path / "ckpt")
    lookup("py-t5x").save(path, sd)
    index_path = os.path.join(path, "checkpoint")
    with open(index_path, "rb") as f:
        index = msgpack.unpackb(f.read())
    index["optimizer"]["target"]["model.norm.weight"]["kvstore"]["path"] = bad_path
    with open(index_path, "wb") as f:
        f.write(msgpack.packb(index))
    with pytest.raises(PeerError, match="cannot be a directory name"):
        lookup("py-t5x").load(path)


def test_t5x_rejects_damaged_index(tmp_path, make_state_dict):
    path = str(tmp_path / "ckpt")
    lookup("py-t5x").save(path, make_state_dict(torch.float16, extras=False))
    index_path = os.path.join(path, "checkpoint")
    with open(index_path, "wb") as f:
        f.write(msgpack.packb({"version": 2, "optimizer": {}}))
    with pytest.raises(PeerError, match="index version 2 is not supported"):
        lookup("py-t5x").load(path)
    os.remove(index_path)
    with pytest.raises(PeerError, match="not a complete T5X checkpoint"):
        lookup("py-t5x").load(path)


# TensorStore zarr specifics


def test_tensorstore_layout(tmp_path, make_state_dict):
    sd = make_state_dict(torch.bfloat16)
    path = str(tmp_path / "ckpt.zarr")
    lookup("py-tensorstore").save(path, sd)
    with open(os.path.join(path, "index.json")) as f:
        assert json.load(f) == {"tensors": list(sd)}
    with open(os.path.join(path, "model.layers.0.mlp.up_proj.weight", ".zarray")) as f:
        zarray = json.load(f)
    assert zarray["dtype"] == "bfloat16"
    assert zarray["compressor"]["id"] == "blosc"
    assert zarray["shape"] == [172, 64]


@pytest.mark.parametrize("format_name", ["py-tensorstore", "py-t5x"])
@pytest.mark.parametrize("bad_name", ["a/b", "..", ".zarray", "x" * 256])
def test_directory_formats_reject_unsafe_names(tmp_path, format_name, bad_name):
    sd = {"ok": torch.zeros(2), bad_name: torch.zeros(2)}
    path = str(tmp_path / "ckpt")
    with pytest.raises(PeerError, match="cannot be a directory name"):
        lookup(format_name).save(path, sd)
    assert not os.path.exists(path)
    assert leftovers(path) == []


def test_tensorstore_missing_index(tmp_path, make_state_dict):
    path = str(tmp_path / "ckpt.zarr")
    lookup("py-tensorstore").save(path, make_state_dict(torch.float16, extras=False))
    os.remove(os.path.join(path, "index.json"))
    with pytest.raises(PeerError, match="index.json not found"):
        lookup("py-tensorstore").load(path)


def test_tensorstore_missing_array(tmp_path, make_state_dict):
    path = str(tmp_path / "ckpt.zarr")
    lookup("py-tensorstore").save(path, make_state_dict(torch.float16, extras=False))
    shutil.rmtree(os.path.join(path, "model.norm.weight"))
    with pytest.raises(PeerError, match="tensor model.norm.weight: TensorStore read failed"):
        lookup("py-tensorstore").load(path)


@pytest.mark.parametrize("format_name", ["py-torch", "py-torch-mmap", "py-safetensors"])
def test_single_file_formats_reject_garbage(tmp_path, format_name):
    path = tmp_path / "garbage"
    path.write_bytes(b"this is not a checkpoint" * 100)
    with pytest.raises(PeerError, match=str(path)):
        lookup(format_name).load(str(path))


# Durability and atomicity


@pytest.mark.parametrize("format_name", FORMAT_NAMES)
def test_failed_sync_keeps_old_checkpoint(
    tmp_path, monkeypatch, make_state_dict, assert_same_tensors, format_name
):
    fmt = lookup(format_name)
    old, new = make_state_dict(torch.float16, seed=1), make_state_dict(torch.float16, seed=2)
    path = str(tmp_path / "ckpt")
    fmt.save(path, old)

    def failing_sync(p):
        raise OSError(errno.EIO, "injected fsync failure", p)

    monkeypatch.setattr(durable, "sync_tree", failing_sync)
    with pytest.raises(OSError, match="injected fsync failure"):
        fmt.save(path, new)
    monkeypatch.undo()

    assert_same_tensors(old, fmt.load(path))
    assert leftovers(path) == []


@pytest.mark.parametrize(
    "format_name, module",
    [("py-tensorstore", tensorstore_zarr), ("py-t5x", t5x_format)],
)
def test_failed_write_keeps_old_checkpoint(
    tmp_path, monkeypatch, make_state_dict, assert_same_tensors, format_name, module
):
    """A failure after some arrays are written leaves the old checkpoint and no temporary files."""
    fmt = lookup(format_name)
    old, new = make_state_dict(torch.float16, seed=1), make_state_dict(torch.float16, seed=2)
    path = str(tmp_path / "ckpt")
    fmt.save(path, old)

    real_to_numpy = module.to_numpy
    calls = []

    def failing_to_numpy(t, dtype):
        calls.append(1)
        if len(calls) == 5:
            raise PeerError("injected conversion failure")
        return real_to_numpy(t, dtype)

    monkeypatch.setattr(module, "to_numpy", failing_to_numpy)
    with pytest.raises(PeerError, match="injected conversion failure"):
        fmt.save(path, new)
    monkeypatch.undo()

    assert len(calls) >= 5
    assert_same_tensors(old, fmt.load(path))
    assert leftovers(path) == []


def test_failed_safetensors_write_keeps_old_checkpoint(tmp_path, make_state_dict, assert_same_tensors):
    fmt = lookup("py-safetensors")
    old = make_state_dict(torch.float16, seed=1)
    path = str(tmp_path / "ckpt")
    fmt.save(path, old)
    # safetensors cannot store tensors that share memory.
    shared = torch.zeros(4)
    with pytest.raises(RuntimeError):
        fmt.save(path, {"a": shared, "b": shared})
    assert_same_tensors(old, fmt.load(path))
    assert leftovers(path) == []


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "fallback"])
@pytest.mark.parametrize("format_name", FORMAT_NAMES)
def test_save_replaces_existing_checkpoint(
    tmp_path, monkeypatch, make_state_dict, assert_same_tensors, format_name, exchange
):
    if not exchange:
        def no_exchange(a, b):
            raise OSError(errno.EINVAL, "exchange disabled by the test", a)

        monkeypatch.setattr(durable, "_exchange", no_exchange)
    fmt = lookup(format_name)
    path = str(tmp_path / "ckpt")
    fmt.save(path, make_state_dict(torch.float16, seed=1))
    new = make_state_dict(torch.float16, seed=2)
    fmt.save(path, new)
    assert_same_tensors(new, fmt.load(path))
    assert leftovers(path) == []
    assert os.listdir(tmp_path) == ["ckpt"]


def test_atomic_save_syncs_before_commit(tmp_path, monkeypatch):
    events = []
    real_sync, real_commit = durable.sync_tree, durable.commit

    def spy_sync(path):
        events.append(("sync", path))
        real_sync(path)

    def spy_commit(tmp, dst):
        events.append(("commit", tmp))
        real_commit(tmp, dst)

    monkeypatch.setattr(durable, "sync_tree", spy_sync)
    monkeypatch.setattr(durable, "commit", spy_commit)
    dst = str(tmp_path / "out")
    with durable.atomic_save(dst) as tmp:
        with open(tmp, "w") as f:
            f.write("x")

    assert events == [("sync", tmp), ("commit", tmp)]
    assert re.fullmatch(re.escape(dst) + r"\.tmp-\d+-[0-9a-z]+", tmp)
    with open(dst) as f:
        assert f.read() == "x"


# Page cache and memory


def test_drop_cache_evicts_pages(disk_tmp_path, page_residency):
    path = str(disk_tmp_path / "blob")
    with open(path, "wb") as f:
        f.write(os.urandom(8 << 20))
    with open(path, "rb") as f:
        f.read()
    resident, pages = page_residency(path)
    assert resident == pages

    durable.drop_cache(path)
    resident, pages = page_residency(path)
    assert resident == 0, f"{resident} of {pages} pages still cached"

    durable.fill_cache(path)
    resident, pages = page_residency(path)
    assert resident == pages, f"{resident} of {pages} pages cached after fill_cache"


@pytest.mark.parametrize("format_name", ["py-torch-mmap", "py-safetensors"])
def test_mmap_loads_read_every_page(disk_tmp_path, make_state_dict, page_residency, format_name):
    fmt = lookup(format_name)
    path = str(disk_tmp_path / "ckpt")
    sd = make_state_dict(torch.float32)
    sd["model.embed_tokens.weight"] = torch.randn(1024, 256)  # 1 MiB, 256 pages
    fmt.save(path, sd)
    durable.drop_cache(path)
    assert page_residency(path)[0] == 0

    loaded = fmt.load(path)
    resident, pages = page_residency(path)
    # Pages holding only the header or zip metadata may stay unread.
    assert resident >= pages - 2, f"{resident} of {pages} pages read"
    del loaded


def test_mmap_without_touch_reads_nothing(disk_tmp_path, page_residency):
    """Control for the test above: a bare torch.load(mmap=True) leaves the payload unread."""
    path = str(disk_tmp_path / "ckpt")
    torch.save({"w": torch.randn(1024, 256)}, path)
    durable.drop_cache(path)
    loaded = torch.load(path, mmap=True, weights_only=True)
    resident, pages = page_residency(path)
    assert resident < pages // 4, f"{resident} of {pages} pages read without touching"
    measure.touch_pages(loaded)
    assert page_residency(path)[0] >= pages - 2


def test_peak_rss_follows_allocation():
    measure.reset_peak_rss()
    before = measure.peak_rss_bytes()
    big = torch.ones(256 << 20, dtype=torch.uint8)
    grown = measure.peak_rss_bytes()
    assert grown - before >= 240 << 20
    del big
    measure.reset_peak_rss()
    assert measure.peak_rss_bytes() <= grown - (200 << 20)


def test_prime_memory_touches_and_frees():
    n = 128 << 20
    if measure.mem_free_bytes() < n + measure.PRIME_SLACK:
        pytest.skip("not enough free memory to prime 128 MiB")
    measure.reset_peak_rss()
    before = measure.peak_rss_bytes()
    assert measure.prime_memory(n) == n
    # The pages were resident while primed ...
    assert measure.peak_rss_bytes() - before >= n * 9 // 10
    # ... and are gone afterwards.
    measure.reset_peak_rss()
    assert measure.peak_rss_bytes() - before <= n // 10


@pytest.mark.parametrize(
    ("n", "free", "want"),
    [
        (1 << 30, 8 << 30, 1 << 30),
        (8 << 30, 1 << 30, (1 << 30) - measure.PRIME_SLACK),
        (1 << 30, measure.PRIME_SLACK, 0),
        (0, 8 << 30, 0),
    ],
)
def test_prime_memory_leaves_free_memory(monkeypatch, n, free, want):
    monkeypatch.setattr(measure, "mem_free_bytes", lambda: free)
    monkeypatch.setattr(measure.mmap, "mmap", _small_mmap(measure.mmap.mmap))
    assert measure.prime_memory(n) == want


def _small_mmap(real):
    """Return an mmap stand-in that maps at most 1 MiB, so the cases above need no real gigabytes."""

    def small(fileno, length, **kwargs):
        return real(fileno, min(length, 1 << 20), **kwargs)

    return small


# Benchmark output


def run_bench(tmp_path, sd, format_name, count=2, caches=("cold", "warm"), keep=True):
    handover_path = str(tmp_path / "handover.safetensors")
    handover.write_safetensors(handover_path, sd)
    out, log = io.StringIO(), io.StringIO()
    opts = bench.Options(
        format=lookup(format_name),
        handover=handover_path,
        directory=str(tmp_path / "scratch"),
        count=count,
        model="tiny_llama",
        caches=list(caches),
        keep=keep,
    )
    bench.run(opts, out=out, log=log)
    return out.getvalue(), log.getvalue(), os.path.join(opts.directory, opts.format.file_name)


@pytest.mark.parametrize("format_name", FORMAT_NAMES)
def test_bench_prints_go_benchmark_format(tmp_path, make_state_dict, format_name):
    sd = make_state_dict(torch.float16)
    nbytes = sum(t.numel() * t.element_size() for t in sd.values())
    out, log, path = run_bench(tmp_path, sd, format_name, count=2)
    lines = out.splitlines()

    config = [line for line in lines if not line.startswith("Benchmark")]
    results = [RESULT_LINE.match(line) for line in lines if line.startswith("Benchmark")]
    assert all(CONFIG_LINE.match(line) for line in config), config
    assert "pkg: peers" in config
    # The harness's configuration lines carry these; repeating them could disagree.
    for key in ("model", "dtype", "device", "weights"):
        assert not [line for line in config if line.startswith(key + ":")], key
    assert f"torch: {torch.__version__.split('+')[0]}" in [c.split("+")[0] for c in config]
    assert all(results), [line for line in lines if line.startswith("Benchmark")]
    # Configuration comes before every result.
    assert lines.index(config[-1]) < lines.index(results[0].group(0))

    saves = 0 if format_name == "py-torch-mmap" else 2
    kinds = [(m["op"], m["cache"]) for m in results]
    assert kinds == [("Save", None)] * saves + [("Load", "cold")] * 2 + [("Load", "warm")] * 2

    files, disk = durable.usage(path)
    procs = gobench.procs()
    for m in results:
        assert m["format"] == format_name
        assert m["model"] == "tiny_llama"
        assert m["n"] == "1"
        assert m["procs"] == (str(procs) if procs > 1 else None)
        ns = int(m["ns"])
        assert ns > 0
        assert float(m["mbs"]) == pytest.approx(nbytes / ns * 1e3, abs=0.006)
        assert float(m["disk"]) == disk
        assert float(m["files"]) == files
        assert float(m["rss"]) > 50e6  # the interpreter with torch loaded
    assert "peers: Benchmark" in log


def test_bench_sets_cache_state_before_loads(tmp_path, monkeypatch, make_state_dict):
    events = []
    fmt = lookup("py-safetensors")
    real_drop, real_fill, real_load = durable.drop_cache, durable.fill_cache, fmt.load

    def spy_drop(path):
        events.append(("drop", path))
        real_drop(path)

    def spy_fill(path):
        events.append(("fill", path))
        real_fill(path)

    def spy_load(path):
        events.append(("load", path))
        return real_load(path)

    real_prime = measure.prime_memory

    def spy_prime(n):
        events.append(("prime", n))
        return real_prime(n)

    monkeypatch.setattr(durable, "drop_cache", spy_drop)
    monkeypatch.setattr(durable, "fill_cache", spy_fill)
    monkeypatch.setattr(fmt, "load", spy_load)
    monkeypatch.setattr(measure, "prime_memory", spy_prime)
    sd = make_state_dict(torch.float16)
    nbytes = sum(t.numel() * t.element_size() for t in sd.values())
    _, _, path = run_bench(tmp_path, sd, "py-safetensors", count=3)

    prime = ("prime", nbytes)
    saves = [prime] * 3
    cold = [prime, ("drop", path), ("load", path)] * 3
    # Warm: one untimed load that checks the payload, then three timed
    # ones, each after a read of every file through the page cache.
    warm = [("load", path)] + [prime, ("fill", path), ("load", path)] * 3
    assert events == saves + cold + warm


def test_bench_rejects_bad_options(tmp_path):
    def run(handover_path, model="m", caches=("cold",)):
        opts = bench.Options(lookup("py-torch"), handover_path, str(tmp_path), 1, model, caches=list(caches))
        bench.run(opts, out=io.StringIO(), log=io.StringIO())

    with pytest.raises(PeerError, match="handover file .*nope not found"):
        run(str(tmp_path / "nope"))
    with pytest.raises(PeerError, match="model 'open llama' cannot be part of a benchmark name"):
        run("x", model="open llama")
    with pytest.raises(PeerError, match="--cache 'hot'"):
        run("x", caches=["hot"])


def test_bench_drops_model_owner(tmp_path, make_state_dict):
    handover_path = str(tmp_path / "handover.safetensors")
    handover.write_safetensors(handover_path, make_state_dict(torch.float16, extras=False))
    out = io.StringIO()
    opts = bench.Options(
        lookup("py-torch"), handover_path, str(tmp_path / "scratch"), 1,
        "openlm-research/open_llama_3b", ops=["save"],
    )
    bench.run(opts, out=out, log=io.StringIO())
    names = [line.split("\t")[0] for line in out.getvalue().splitlines() if line.startswith("Benchmark")]
    procs = gobench.procs()
    suffix = f"-{procs}" if procs > 1 else ""
    assert names == ["BenchmarkSave/format=py-torch/model=open_llama_3b" + suffix]


@pytest.mark.parametrize(
    "value, want",
    # Expected strings printed by Go 1.26's testing.BenchmarkResult.String.
    [
        (0, "         0 x"),
        (1, "         1.000 x"),
        (7.5, "         7.500 x"),
        (12.25, "        12.25 x"),
        (123.456, "       123.5 x"),
        (999.96, "      1000 x"),
        (0.5, "         0.5000 x"),
        (0.05, "         0.05000 x"),
        (0.005, "         0.005000 x"),
        (0.0005, "         0.0005000 x"),
        (1234567.8, "   1234568 x"),
        (6852947200, "6852947200 x"),
    ],
)
def test_pretty_matches_go(value, want):
    assert gobench.pretty(value, "x") == want


def test_result_line_matches_go():
    # Go prints "       1\t  41820908 ns/op\t   0.69 MB/s\t         0 x"
    # for N=1, T=41820908ns, SetBytes(29064) and ReportMetric(0, "x").
    line = gobench.result_line("BenchmarkX", 41820908, 29064, {"x": 0})
    assert line == "BenchmarkX\t       1\t  41820908 ns/op\t   0.69 MB/s\t         0 x"


def test_benchstat_reads_bench_output(tmp_path, make_state_dict):
    go = shutil.which("go")
    if go is None:
        pytest.skip("go not on PATH; benchstat needs it")
    out, _, _ = run_bench(tmp_path, make_state_dict(torch.float16), "py-torch", count=2)
    bench_file = tmp_path / "peers.txt"
    bench_file.write_text(out)

    stat = subprocess.run(
        [go, "run", BENCHSTAT, "-format", "csv", str(bench_file)],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )
    assert stat.returncode == 0, stat.stderr
    # benchstat exits 0 even when it parses nothing, so look for the rows.
    assert "syntax error" not in stat.stderr
    for unit in ("sec/op", "B/s", "disk-B", "files", "peak-RSS-B"):
        assert unit in stat.stdout, stat.stdout
    for row in ("Save/format=py-torch/model=tiny_llama", "Load/format=py-torch/model=tiny_llama/cache=cold",
                "Load/format=py-torch/model=tiny_llama/cache=warm"):
        assert row in stat.stdout, stat.stdout


def test_cli_reports_errors_without_traceback(tmp_path, capsys):
    missing = str(tmp_path / "missing_ckpt")
    code = cli.main(["load", "--format", "py-t5x", "--in", missing, "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("peers.py: error: ")
    assert missing in err
    assert not os.path.exists(tmp_path / "o")
