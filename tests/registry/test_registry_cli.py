"""The ``dockyard registry`` verbs: serve (and its graceful shutdown), gc, retention, user, check-config."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from .helpers import free_port, sha

REPO = Path(__file__).resolve().parents[2]


def _wait_up(url: str, proc: subprocess.Popen, timeout: float = 20) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"registry exited {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}")
        try:
            requests.get(url + "/v2/", timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise AssertionError("registry did not start")


@pytest.fixture
def served(tmp_path: Path, root: Path):
    """``dockyard registry serve --addr --storage`` as a subprocess."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "dockyard", "registry", "serve", "--addr",
                             f"127.0.0.1:{port}", "--storage", str(tmp_path / "data")],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_up(url, proc)
        yield proc, url, port
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def test_serve_logs_json_and_shuts_down_gracefully_on_sigterm(served) -> None:
    proc, url, port = served
    data = os.urandom(200_000)
    loc = requests.post(url + "/v2/grace/app/blobs/uploads/").headers["Location"]
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(f"PATCH {loc} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data[:1000])
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)   # a request is in flight: it must still complete
        time.sleep(0.3)
        assert proc.poll() is None
        s.sendall(data[1000:])
        reply = s.recv(4096).decode()
    assert reply.startswith("HTTP/1.1 202"), reply
    assert f"Range: 0-{len(data) - 1}" in reply
    assert proc.wait(timeout=15) == 0
    with pytest.raises(requests.ConnectionError):
        requests.get(url + "/v2/", timeout=2)
    logs = [line for line in proc.stderr.read().splitlines() if line.startswith("{")]
    import json

    records = [json.loads(line) for line in logs]
    patch = [r for r in records if r.get("method") == "PATCH"]
    assert patch and patch[0]["status"] == 202 and patch[0]["bytes_in"] == len(data)
    assert records[-1]["msg"] == "stopped" and records[-1]["clean"] is True


def test_health_and_metrics(served) -> None:
    _proc, url, _port = served
    assert requests.get(url + "/healthz").json()["status"] == "ok"
    requests.post(url + "/v2/m/x/blobs/uploads/", params={"digest": sha(b"abc")}, data=b"abc")
    wanted = 'dockyard_registry_http_requests_total{code="201",method="POST",route="blob_upload_start"} 1'
    for _ in range(50):  # the request is counted just after its response goes out
        text = requests.get(url + "/metrics").text
        if wanted in text:
            break
        time.sleep(0.05)
    assert wanted in text
    assert "dockyard_registry_http_request_duration_seconds_bucket" in text
    assert "process_resident_memory_bytes" in text


def test_user_add_ls_rm(cli, tmp_path: Path) -> None:
    cfg = tmp_path / "registry.yml"
    cfg.write_text("auth:\n  htpasswd: users.htpasswd\n  roles:\n    dev: [alice]\n")
    r = cli("registry", "user", "add", "alice", "--config", str(cfg), "--password-stdin", "--cost", "4",
            input="s3cret\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"Added user alice in {tmp_path / 'users.htpasswd'}"
    line = (tmp_path / "users.htpasswd").read_text()
    assert line.startswith("alice:$2b$04$")
    assert oct((tmp_path / "users.htpasswd").stat().st_mode & 0o777) == "0o600"
    r = cli("registry", "user", "ls", "--config", str(cfg))
    assert r.stdout.splitlines()[1].split() == ["alice", "htpasswd", "dev"]
    r = cli("registry", "user", "rm", "bob", "--config", str(cfg))
    assert r.returncode == 1 and r.stderr.strip() == "Error: no such user: bob"
    assert cli("registry", "user", "rm", "alice", "--config", str(cfg)).returncode == 0
    assert (tmp_path / "users.htpasswd").read_text() == ""


def test_check_config(cli, tmp_path: Path) -> None:
    good = tmp_path / "good.yml"
    good.write_text("http: {addr: '127.0.0.1:5999'}\nstorage: {filesystem: {rootdirectory: data}}\n"
                    "repositories:\n  - pattern: 'prod/**'\n    immutable_tags: ['v*']\n"
                    "    retention: {keep_last: 5, untagged_older_than: 7d}\n")
    r = cli("registry", "check-config", "--config", str(good))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("configuration OK: listen 127.0.0.1:5999")
    bad = tmp_path / "bad.yml"
    bad.write_text("repositories:\n  - pattern: 'x'\n    imutable_tags: ['v*']\n")
    r = cli("registry", "check-config", "--config", str(bad))
    assert r.returncode == 1
    assert r.stderr.startswith("Error: repositories[0]: unknown key 'imutable_tags'")
    assert len(r.stderr.strip().splitlines()) == 1
    exposed = tmp_path / "exposed.yml"
    exposed.write_text("http: {addr: '0.0.0.0:5000'}\n")
    r = cli("registry", "check-config", "--config", str(exposed))
    assert r.returncode == 1 and "refusing to serve an open registry" in r.stderr


def test_gc_and_retention_verbs(cli, tmp_path: Path) -> None:
    from dockyard.registry import config as cfgmod
    from dockyard.registry.server import open_store

    cfg = tmp_path / "registry.yml"
    cfg.write_text(f"storage: {{filesystem: {{rootdirectory: '{tmp_path / 'data'}'}}}}\n"
                   "repositories:\n  - pattern: '**'\n    retention: {keep_last: 0}\n")
    store = open_store(cfgmod.load(cfg))
    upload = store.start_upload("cli/app")

    class Body:
        def __init__(self, data: bytes) -> None:
            self.data = data

        def readinto(self, buf: memoryview) -> int:
            n = len(self.data)
            buf[:n] = self.data
            self.data = b""
            return n

    store.finish_upload(upload, sha(b"orphan"), Body(b"orphan"))
    r = cli("registry", "gc", "--config", str(cfg), "--dry-run", "--grace", "0")
    assert r.returncode == 0, r.stderr
    assert f"Would delete blob {sha(b'orphan')} (6B)" in r.stdout
    assert store.blob_stat(sha(b"orphan")) is not None
    r = cli("registry", "gc", "--config", str(cfg), "--grace", "0")
    assert f"Deleted blob {sha(b'orphan')}" in r.stdout
    assert store.blob_stat(sha(b"orphan")) is None
    r = cli("registry", "retention", "--config", str(cfg), "--dry-run")
    assert r.returncode == 0 and r.stdout.strip() == "Would delete 0 item(s)"


def test_connection_limit(start_registry) -> None:
    reg = start_registry({"http": {"max_connections": 1}})
    with socket.create_connection(("127.0.0.1", reg.server.port)) as held:
        held.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
        assert held.recv(4096).startswith(b"HTTP/1.1 200")   # keep-alive: the slot stays taken
        r = requests.get(reg.url + "/v2/")
        assert r.status_code == 429 and r.json()["errors"][0]["code"] == "TOOMANYREQUESTS"
    # once the held connection is closed its slot comes back (its thread must notice the close;
    # each probe's own connection also holds the one slot until the server sees it go)
    statuses = []
    for _ in range(200):
        statuses.append(requests.get(reg.url + "/v2/", headers={"Connection": "close"}).status_code)
        if statuses[-1] == 200:
            break
        time.sleep(0.05)
    assert statuses[-1] == 200, statuses
