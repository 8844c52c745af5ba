"""Shared fixtures for the tests of the Python scripts: synthetic state dicts,
tensor comparison, script runs and page-cache residency."""

from __future__ import annotations

import ctypes
import mmap
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPTS = Path(__file__).resolve().parents[1]
# The scripts import their packages (peers, ...) from scripts/.
sys.path.insert(0, str(SCRIPTS))


def synthetic_state_dict(dtype: torch.dtype, seed: int = 0, extras: bool = True) -> dict[str, torch.Tensor]:
    """Return a tiny LLaMA-shaped state dict with random payload bytes.

    The model has grouped-query attention (k_proj and v_proj smaller than
    q_proj) and sizes that are not powers of two. Payloads are random
    bytes, so float tensors hold every bit pattern, NaNs with payloads
    included, and a lossy round trip cannot pass by accident. With extras,
    a 0-d tensor and a zero-size tensor follow the weights.
    """
    generator = torch.Generator().manual_seed(seed)
    hidden, intermediate, kv, vocab = 64, 172, 32, 250
    shapes = {"model.embed_tokens.weight": [vocab, hidden]}
    for layer in range(2):
        prefix = f"model.layers.{layer}."
        shapes[prefix + "self_attn.q_proj.weight"] = [hidden, hidden]
        shapes[prefix + "self_attn.k_proj.weight"] = [kv, hidden]
        shapes[prefix + "self_attn.v_proj.weight"] = [kv, hidden]
        shapes[prefix + "self_attn.o_proj.weight"] = [hidden, hidden]
        shapes[prefix + "mlp.gate_proj.weight"] = [intermediate, hidden]
        shapes[prefix + "mlp.up_proj.weight"] = [intermediate, hidden]
        shapes[prefix + "mlp.down_proj.weight"] = [hidden, intermediate]
        shapes[prefix + "input_layernorm.weight"] = [hidden]
        shapes[prefix + "post_attention_layernorm.weight"] = [hidden]
    shapes["model.norm.weight"] = [hidden]
    shapes["lm_head.weight"] = [vocab, hidden]
    if extras:
        shapes["extra.scalar"] = []
        shapes["extra.empty"] = [0, hidden]
    itemsize = torch.empty(0, dtype=dtype).element_size()
    sd = {}
    for name, shape in shapes.items():
        numel = 1
        for d in shape:
            numel *= d
        raw = torch.randint(0, 256, (numel * itemsize,), dtype=torch.uint8, generator=generator)
        sd[name] = raw.view(dtype).reshape(shape)
    return sd


@pytest.fixture
def make_state_dict():
    """Factory for synthetic_state_dict(dtype, seed=0, extras=True)."""
    return synthetic_state_dict


def state_dict_diff(want: dict, got: dict) -> str:
    """Return "" when got has want's tensors in want's order with equal dtypes,
    shapes and payload bytes, else a description of the first difference."""
    if list(want) != list(got):
        return f"names or order differ:\n want {list(want)}\n  got {list(got)}"
    for name, w in want.items():
        g = got[name]
        if w.dtype != g.dtype or tuple(w.shape) != tuple(g.shape):
            return f"{name}: got {g.dtype} {list(g.shape)}, want {w.dtype} {list(w.shape)}"
        wb = w.contiguous().reshape(-1).view(torch.uint8)
        gb = g.contiguous().reshape(-1).view(torch.uint8)
        if not torch.equal(wb, gb):
            first = int((wb != gb).nonzero()[0])
            return f"payload of {name} differs first at byte {first} of {wb.numel()}"
    return ""


@pytest.fixture
def assert_same_tensors():
    """assert_same_tensors(want, got) fails with the first tensor and byte that differ."""

    def check(want: dict, got: dict) -> None:
        diff = state_dict_diff(want, got)
        assert diff == "", diff

    return check


@pytest.fixture
def run_script():
    """run_script("peers.py", *args) runs a script from scripts/ with this interpreter
    and returns the CompletedProcess, with stdout and stderr as text."""

    def run(script: str, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(SCRIPTS / script), *args],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            timeout=300,
        )

    return run


_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [
    ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long
]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]


def resident_pages(path: str) -> tuple[int, int]:
    """Return how many of the file's pages are in the page cache, and its page count.

    mincore(2) on a fresh shared read-only mapping reports page-cache
    residency without reading anything.
    """
    size = os.path.getsize(path)
    pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
    if size == 0:
        return 0, 0
    fd = os.open(path, os.O_RDONLY)
    try:
        addr = _libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        if addr in (None, ctypes.c_void_p(-1).value):
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code), path)
        try:
            vec = (ctypes.c_ubyte * pages)()
            if _libc.mincore(addr, size, vec) != 0:
                code = ctypes.get_errno()
                raise OSError(code, os.strerror(code), path)
            return sum(b & 1 for b in vec), pages
        finally:
            _libc.munmap(addr, size)
    finally:
        os.close(fd)


@pytest.fixture
def page_residency():
    """page_residency(path) returns (resident pages, total pages) of a file."""
    return resident_pages


def filesystem_type(path: str) -> str:
    """Return the type of the file system that contains path, from /proc/self/mounts."""
    path = os.path.realpath(path)
    best, fs_type = "", "unknown"
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            # Mount points escape spaces as \040.
            mount = fields[1].replace("\\040", " ")
            inside = path == mount or path.startswith(mount.rstrip("/") + "/")
            if inside and len(mount) >= len(best):
                best, fs_type = mount, fields[2]
    return fs_type


@pytest.fixture
def disk_tmp_path(tmp_path):
    """tmp_path, skipping the test where it is in memory (tmpfs, ramfs), because
    there the page cache is the only copy and cannot be dropped."""
    fs_type = filesystem_type(str(tmp_path))
    if fs_type in ("tmpfs", "ramfs"):
        pytest.skip(f"{tmp_path} is on {fs_type}, whose pages cannot be dropped; set --basetemp to a disk")
    return tmp_path

