"""Tests of scripts/fetch_model.py against local servers only.

HF_ENDPOINT points every run at 127.0.0.1: a closed port (offline), a
server that accepts connections but never responds, and a small fake hub
that serves a model repository the way huggingface_hub 0.26 requests it.
Proxy variables are removed, so nothing leaves the machine.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import fetch_model

SCRIPT = Path(fetch_model.__file__)
PROXY_VARS = ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"]


def run_fetch(endpoint: str, out: Path, *args: str, timeout: float = 60) -> tuple[subprocess.CompletedProcess, float]:
    """Run fetch_model.py with HF_ENDPOINT=endpoint; return the result and its duration in seconds."""
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS and not k.startswith("HF_")}
    env["HF_ENDPOINT"] = endpoint
    # Keep huggingface_hub's cache out of the user's home.
    env["HF_HOME"] = str(out.parent / "hf-home")
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--repo", "owner/tiny", "--out", str(out), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return proc, time.monotonic() - start


def closed_port() -> int:
    """Return a localhost port that nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_offline_fails_fast_with_one_line(tmp_path):
    out = tmp_path / "model"
    proc, seconds = run_fetch(f"http://127.0.0.1:{closed_port()}", out)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "offline" in lines[0]
    assert "synthetic weights" in lines[0]
    assert "Connection refused" in lines[0]
    assert seconds < 5, f"took {seconds:.1f} s"
    assert not out.exists()


@pytest.fixture
def silent_server():
    """Yield the port of a server that accepts connections and never responds."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    connections = []
    stop = threading.Event()

    def accept():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                connections.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for conn in connections:
        conn.close()
    listener.close()


def test_silent_hub_times_out(tmp_path, silent_server):
    proc, seconds = run_fetch(f"http://127.0.0.1:{silent_server}", tmp_path / "model", "--timeout", "1")
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "did not respond within 1 s" in lines[0]
    # Python start-up and the huggingface_hub import take a few seconds on
    # a loaded machine; without the timeout the run would hang.
    assert seconds < 20, f"took {seconds:.1f} s"


def test_rejects_malformed_arguments(tmp_path):
    proc, _ = run_fetch(f"http://127.0.0.1:{closed_port()}", tmp_path / "m", "--repo", "no-owner")
    assert proc.returncode == 2
    assert "must be owner/name" in proc.stderr
    proc, _ = run_fetch("ftp://127.0.0.1", tmp_path / "m")
    assert proc.returncode == 1
    assert "HF_ENDPOINT='ftp://127.0.0.1' is not an http(s) URL" in proc.stderr


def test_probe_goes_through_proxy(monkeypatch):
    for name in PROXY_VARS + ["NO_PROXY", "no_proxy"]:
        monkeypatch.delenv(name, raising=False)
    assert fetch_model.probe_address("https://huggingface.co") == ("huggingface.co", 443)
    assert fetch_model.probe_address("http://127.0.0.1:8080") == ("127.0.0.1", 8080)
    monkeypatch.setenv("https_proxy", "http://proxy.internal:3128")
    assert fetch_model.probe_address("https://huggingface.co") == ("proxy.internal", 3128)
    monkeypatch.setenv("no_proxy", "huggingface.co")
    assert fetch_model.probe_address("https://huggingface.co") == ("huggingface.co", 443)


# The fake hub's repository: a config, a tokenizer file, and the weights
# as both safetensors and PyTorch files, of which only the safetensors
# copy should be downloaded.
FILES = {
    "config.json": b'{"model_type": "llama"}',
    "tokenizer.model": b"tokenizer bytes",
    "model.safetensors": b"safetensors bytes",
    "pytorch_model.bin": b"pickle bytes",
    "README.md": b"not needed",
}
COMMIT = "0123456789abcdef0123456789abcdef01234567"


class FakeHub(http.server.BaseHTTPRequestHandler):
    """Serve owner/tiny at COMMIT through the endpoints huggingface_hub
    0.26 uses: the file tree, the revision info and resolve URLs."""

    requests: list[str] = []

    def log_message(self, *args):
        pass

    def send_json(self, value):
        body = json.dumps(value).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def file_for(self, path):
        prefix = f"/owner/tiny/resolve/{COMMIT}/"
        if path.startswith("/owner/tiny/resolve/main/"):
            prefix = "/owner/tiny/resolve/main/"
        name = path[len(prefix):] if path.startswith(prefix) else None
        return name, FILES.get(name)

    def send_file_headers(self, data):
        self.send_response(200)
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("ETag", '"' + hashlib.sha1(data).hexdigest() + '"')
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()

    def do_HEAD(self):
        self.requests.append("HEAD " + self.path)
        name, data = self.file_for(self.path.split("?")[0])
        if data is None:
            self.send_error(404)
            return
        self.send_file_headers(data)

    def do_GET(self):
        self.requests.append("GET " + self.path)
        path = self.path.split("?")[0]
        if path == "/api/models/owner/tiny/tree/main":
            self.send_json([{"type": "file", "path": n, "size": len(d), "oid": "0" * 40} for n, d in FILES.items()])
        elif path in ("/api/models/owner/tiny/revision/main", "/api/models/owner/tiny"):
            self.send_json({"id": "owner/tiny", "sha": COMMIT, "siblings": [{"rfilename": n} for n in FILES]})
        else:
            name, data = self.file_for(path)
            if data is None:
                self.send_error(404)
                return
            self.send_file_headers(data)
            self.wfile.write(data)


@pytest.fixture
def fake_hub():
    FakeHub.requests = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_downloads_config_tokenizer_and_safetensors(tmp_path, fake_hub):
    out = tmp_path / "model"
    proc, _ = run_fetch(fake_hub, out)
    assert proc.returncode == 0, proc.stderr
    assert f"MODEL_DIR={out}" in proc.stdout
    for name in ["config.json", "tokenizer.model", "model.safetensors"]:
        assert (out / name).read_bytes() == FILES[name], name
    assert not (out / "pytorch_model.bin").exists(), "downloaded the .bin copy of safetensors weights"
    assert not (out / "README.md").exists()
