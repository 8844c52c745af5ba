"""Tests for scripts/ts_interop.py against the real TensorStore."""

import base64
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorstore as ts

SCRIPTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, SCRIPTS)

import ts_interop  # noqa: E402


def run(*args):
    """Run ts_interop.py in a subprocess and return its standard output."""
    out = subprocess.run(
        [sys.executable, os.path.join(SCRIPTS, "ts_interop.py"), *args],
        check=True, capture_output=True, text=True,
    )
    return out.stdout


def decode(case_or_array, dtype):
    raw = base64.b64decode(case_or_array["data"])
    return np.frombuffer(raw, dtype=dtype)


def test_read_matches_hand_written_array(tmp_path):
    """read returns the bytes of a zarr array written without TensorStore.

    The .zarray and the chunk files are written by hand, so the check does
    not depend on TensorStore's writer. The [3, 2] array is cut into [2, 2]
    chunks. Its second chunk row is an edge chunk, stored full size.
    """
    d = tmp_path / "a"
    d.mkdir()
    (d / ".zarray").write_text(json.dumps({
        "zarr_format": 2, "shape": [3, 2], "chunks": [2, 2], "dtype": "<i4",
        "compressor": None, "fill_value": 0, "order": "C", "filters": None,
    }))
    (d / "0.0").write_bytes(np.array([1, 2, 3, 4], dtype="<i4").tobytes())
    (d / "1.0").write_bytes(np.array([5, 6, 99, 99], dtype="<i4").tobytes())

    got = json.loads(run("read", str(d)))
    assert got["shape"] == [3, 2]
    assert got["dtype"] == "int32"
    assert decode(got, "<i4").tolist() == [1, 2, 3, 4, 5, 6]


def test_read_reports_errors_per_array(tmp_path):
    lines = run("read", str(tmp_path / "absent"), str(tmp_path)).splitlines()
    assert len(lines) == 2
    for line in lines:
        assert "NOT_FOUND" in json.loads(line)["error"]


def test_read_bfloat16(tmp_path):
    path = str(tmp_path / "bf")
    values = np.array([1.0, -2.5, 0.015625], dtype=ts.bfloat16.numpy_dtype)
    store = ts.open(ts_interop.spec(path, {"shape": [3], "chunks": [2], "dtype": "bfloat16"}), create=True).result()
    store[...] = values
    got = json.loads(run("read", path))
    assert got["dtype"] == "bfloat16"
    assert base64.b64decode(got["data"]) == values.tobytes()
    with open(os.path.join(path, ".zarray")) as f:
        assert json.load(f)["dtype"] == "bfloat16"


def test_write_cases_cover_every_compressor(tmp_path):
    cases = json.loads(run("write-cases", str(tmp_path)))
    compressors = {c["compressor"] for c in cases}
    assert compressors == {"raw", "gzip", "zlib", "bz2", "zstd", "blosc"}
    assert any("missing" in c["name"] for c in cases)
    assert any("slash" in c["name"] for c in cases)


def test_write_cases_data_matches_tensorstore(tmp_path):
    """The expected bytes of every case are what TensorStore reads back."""
    for case in ts_interop.write_cases(str(tmp_path)):
        got = ts_interop.read_array(case["path"])
        assert "error" not in got, got
        assert got["data"] == case["data"], case["name"]
        assert got["shape"] == case["shape"]


def test_write_cases_leave_chunks_missing(tmp_path):
    """Missing-chunk cases really lack chunk files, and read as the fill value."""
    by_name = {c["name"]: c for c in ts_interop.write_cases(str(tmp_path))}
    case = by_name["f16-missing-fill"]
    assert sorted(os.listdir(case["path"])) == [".zarray", "0.0"]
    data = decode(case, "<f2").reshape(6, 4)
    assert np.all(data[2:] == 0.5)
    case = by_name["bf16-missing-null"]
    assert sorted(os.listdir(case["path"])) == [".zarray", "1"]


def test_write_cases_slash_separator(tmp_path):
    by_name = {c["name"]: c for c in ts_interop.write_cases(str(tmp_path))}
    path = by_name["bf16-gzip-slash"]["path"]
    assert os.path.isfile(os.path.join(path, "3", "1"))
    with open(os.path.join(path, ".zarray")) as f:
        assert json.load(f)["dimension_separator"] == "/"


def test_codec_stats_small():
    stats = {s["codec"]: s for s in json.loads(run("codec-stats", "--mib", "1", "--repeat", "1"))}
    assert stats["raw"]["ratio"] == pytest.approx(1.0, abs=0.001)
    # Entropy coding saves a few percent on float16 weights; blosc's
    # default lz4 with byte shuffle saves next to nothing.
    assert stats["zstd-1"]["ratio"] > 1.03
    assert stats["gzip-1"]["ratio"] > 1.03
    assert stats["blosc-lz4-shuffle"]["ratio"] < 1.03
    for s in stats.values():
        assert s["write_MBps"] > 0
        assert s["read_MBps"] > 0
