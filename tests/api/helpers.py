"""Engine API test helpers: the service as a subprocess, raw HTTP on its socket, the peers."""
from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKER = shutil.which("docker")


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over a unix socket (what the docker CLI and docker-py use)."""

    def __init__(self, path: str, timeout: float = 60) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


class ApiService:
    """A running ``dockyard system service`` and helpers to talk to it."""

    def __init__(self, root: Path, sock: Path, log: Path) -> None:
        self.root = root
        self.sock = sock
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"unix://{self.sock}"

    def start(self, *extra: str, wait: bool = True) -> None:
        env = dict(os.environ, DOCKYARD_ROOT=str(self.root))
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "dockyard", "--root", str(self.root), "system",
                                          "service", "-H", self.host, *extra], stdout=log, stderr=log,
                                         stdin=subprocess.DEVNULL, env=env, cwd=str(REPO))
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None and self.proc.poll() is None, f"service died:\n{self.log.read_text()}"
            try:
                if self.request("GET", "/_ping")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"service did not answer:\n{self.log.read_text()}")

    def stop(self, timeout: float = 15) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("the service did not stop on SIGTERM")

    # -- peers -----------------------------------------------------------------------------------
    def request(self, method: str, path: str, body: Any = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        """One raw HTTP request: (status, headers, body)."""
        conn = UnixHTTPConnection(str(self.sock))
        try:
            data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
            conn.request(method, path, body=data, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def docker(self, *args: str, input: str | bytes | None = None, timeout: float = 60,
               env: dict[str, str] | None = None, check: bool = False) -> subprocess.CompletedProcess:
        """The real docker CLI against this service."""
        assert DOCKER is not None
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        full_env.update(env or {})
        proc = subprocess.run([DOCKER, "-H", self.host, *args], input=input, capture_output=True,
                              text=not isinstance(input, bytes), timeout=timeout, env=full_env)
        if check and proc.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
        return proc

    def dockerpy(self) -> Any:
        import docker

        return docker.DockerClient(base_url=self.host, timeout=120)


def make_service(base: Path, busybox_tar: Path) -> ApiService:
    """A fresh root with ``busybox:latest`` and a service for it (not started)."""
    from dockyard import Client
    from dockyard.image.busybox import BUSYBOX_CHANGES

    root = base / "root"
    root.mkdir()
    with Client(root) as c:
        c.images.import_rootfs(str(busybox_tar), "busybox:latest", changes=BUSYBOX_CHANGES)
    return ApiService(root, base / "api.sock", base / "service.log")


def split_frames(data: bytes) -> list[tuple[int, bytes]]:
    """A multiplexed stream as (stream, bytes) frames (docker's 8-byte headers)."""
    frames = []
    while data:
        kind, size = struct.unpack(">B3xI", data[:8])
        frames.append((kind, data[8:8 + size]))
        data = data[8 + size:]
    return frames


def read_frames(sock: socket.socket, already: bytes = b"") -> list[tuple[int, bytes]]:
    """Read a multiplexed stream to its end."""
    data = already
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return split_frames(data)
        data += chunk


need_docker = pytest.mark.skipif(DOCKER is None, reason="the docker CLI is not installed (apt-get install docker.io)")


def _has_dockerpy() -> bool:
    try:
        import docker  # noqa: F401
    except ImportError:
        return False
    return True


need_dockerpy = pytest.mark.skipif(not _has_dockerpy(), reason="docker-py is not installed (pip install docker)")
