"""Helpers for the client's tests: the CNCF registry (open and htpasswd), dockyard's own, and
tiny hand-written HTTP servers that misbehave on purpose (wrong bytes, cut connections, redirects).
"""
from __future__ import annotations

import hashlib
import http.server
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 20) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except urllib.error.HTTPError:
            return  # 401 from an auth registry: it is up
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


class CncfRegistry:
    """``docker-registry serve`` on a free loopback port with its own storage."""

    def __init__(self, work: Path, htpasswd: Path | None = None, addr: str = "127.0.0.1") -> None:
        self.port = free_port()
        self.host = f"localhost:{self.port}" if addr == "127.0.0.1" else f"{addr}:{self.port}"
        self.url = f"http://{addr}:{self.port}"
        work.mkdir(parents=True, exist_ok=True)
        auth = (f"auth:\n  htpasswd:\n    realm: basic-realm\n    path: {htpasswd}\n" if htpasswd else "")
        cfg = work / "config.yml"
        cfg.write_text(f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n"
                       f"    rootdirectory: {work / 'data'}\n  delete:\n    enabled: true\n"
                       f"http:\n  addr: {addr}:{self.port}\n{auth}")
        self.log = open(work / "registry.log", "w")
        self.proc = subprocess.Popen(["docker-registry", "serve", str(cfg)], stdout=self.log, stderr=self.log)
        try:
            wait_http(self.url + "/v2/")
        except RuntimeError:
            self.stop()
            raise

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def _need(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed (apt-get install {'docker-registry' if tool == 'docker-registry' else tool})")


@pytest.fixture(scope="module")
def cncf(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CncfRegistry]:
    """An open CNCF registry for the module."""
    _need("docker-registry")
    reg = CncfRegistry(tmp_path_factory.mktemp("cncf"))
    yield reg
    reg.stop()


USER, PASSWORD = "alice", "s3cret-pw"


@pytest.fixture(scope="module")
def cncf_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CncfRegistry]:
    """A CNCF registry with htpasswd (bcrypt) Basic auth: alice / s3cret-pw."""
    _need("docker-registry")
    import bcrypt

    work = tmp_path_factory.mktemp("cncf-auth")
    htpasswd = work / "htpasswd"
    htpasswd.write_text(f"{USER}:{bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(5)).decode()}\n")
    reg = CncfRegistry(work, htpasswd)
    yield reg
    reg.stop()


@pytest.fixture
def docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private DOCKER_CONFIG directory (never the real ~/.docker)."""
    d = tmp_path / "docker-config"
    monkeypatch.setenv("DOCKER_CONFIG", str(d))
    monkeypatch.delenv("DOCKYARD_CONFIG", raising=False)
    return d


# -- hand-written servers -----------------------------------------------------------------------
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.server.requests.append((self.command, self.path, dict(self.headers.items())))  # type: ignore[attr-defined]
        self.server.app(self)  # type: ignore[attr-defined]

    do_HEAD = do_PUT = do_POST = do_PATCH = do_GET

    def reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
              length: int | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class AppServer:
    """A threaded HTTP server on a free loopback port calling ``app(handler)`` for each request."""

    def __init__(self, app: Callable[[Handler], None]) -> None:
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.httpd.daemon_threads = True
        self.httpd.app = app  # type: ignore[attr-defined]
        self.httpd.requests = self.requests  # type: ignore[attr-defined]
        self.port = self.httpd.server_address[1]
        self.host = f"127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def app_server() -> Iterator[Callable[[Callable[[Handler], None]], AppServer]]:
    servers: list[AppServer] = []

    def start(app: Callable[[Handler], None]) -> AppServer:
        s = AppServer(app)
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.stop()


class Forwarder:
    """An app that forwards every request to ``upstream`` (host:port), with faults on demand.

    ``cut_blobs_after``: blob GET bodies stop after that many bytes (the connection is closed
    while the client still expects the rest). ``redirect_blobs_to``: blob GETs answer 307 to the
    same path on that host:port instead.
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.cut_blobs_after: int | None = None
        self.redirect_blobs_to: str | None = None

    def __call__(self, h: Handler) -> None:
        import http.client

        is_blob_get = h.command == "GET" and "/blobs/sha256:" in h.path
        if is_blob_get and self.redirect_blobs_to:
            h.reply(307, headers={"Location": f"http://{self.redirect_blobs_to}{h.path}"})
            return
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else None
        conn = http.client.HTTPConnection(self.upstream, timeout=30)
        headers = {k: v for k, v in h.headers.items() if k.lower() not in ("host", "connection")}
        conn.request(h.command, h.path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        h.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("content-length", "connection", "transfer-encoding"):
                if k.lower() == "location":
                    v = v.replace(self.upstream, h.headers.get("Host", self.upstream))
                h.send_header(k, v)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        if h.command == "HEAD":
            return
        if is_blob_get and self.cut_blobs_after is not None and len(data) > self.cut_blobs_after:
            h.wfile.write(data[: self.cut_blobs_after])
            h.wfile.flush()
            h.close_connection = True
            h.connection.shutdown(socket.SHUT_RDWR)
            return
        h.wfile.write(data)


class FakeImage:
    """An image in memory: config, gzip-named layers and the manifest naming them."""

    def __init__(self, layers: list[bytes], arch: str = "amd64") -> None:
        self.layers = layers
        self.config = json.dumps({"architecture": arch, "os": "linux", "config": {},
                                  "rootfs": {"type": "layers", "diff_ids": [sha(l) for l in layers]}}).encode()
        self.manifest = json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha(self.config), "size": len(self.config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha(l), "size": len(l)}
                       for l in layers]}).encode()
        self.blobs = {sha(self.config): self.config, **{sha(l): l for l in layers}}


def tar_layer(name: str, data: bytes) -> bytes:
    """An uncompressed tar holding one file (a real layer, so it unpacks)."""
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        ti = tarfile.TarInfo(name)
        ti.size = len(data)
        ti.mode = 0o644
        tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def content_blobs(root: Path) -> set[str]:
    d = root / "content" / "blobs" / "sha256"
    return {f"sha256:{p.name}" for p in d.iterdir()} if d.is_dir() else set()


def write_oci_layout(dest: Path, manifests: list[tuple[bytes, dict | None]], blobs: dict[str, bytes],
                     index_ref: str = "latest") -> None:
    """An OCI layout whose index.json lists ``manifests`` ((bytes, platform)) under one ref name."""
    b = dest / "blobs" / "sha256"
    b.mkdir(parents=True)
    (dest / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    for digest, data in blobs.items():
        (b / digest.split(":")[1]).write_bytes(data)
    entries = []
    for data, platform in manifests:
        (b / sha(data).split(":")[1]).write_bytes(data)
        e: dict[str, Any] = {"mediaType": OCI_MANIFEST, "digest": sha(data), "size": len(data)}
        if platform:
            e["platform"] = platform
        entries.append(e)
    if len(entries) == 1:
        entries[0]["annotations"] = {"org.opencontainers.image.ref.name": index_ref}
        (dest / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": entries}))
        return
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}).encode()
    (b / sha(index).split(":")[1]).write_bytes(index)
    (dest / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": OCI_INDEX, "digest": sha(index), "size": len(index),
         "annotations": {"org.opencontainers.image.ref.name": index_ref}}]}))


def dockyard_env(root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["DOCKYARD_ROOT"] = str(root)
    return env


class FakeRegistry:
    """A registry app serving one repository's manifests and blobs, with faults on demand.

    ``manifests``: reference (tag or digest) -> (bytes, media type). ``blobs``: digest -> bytes.
    ``tamper``: digest -> bytes served instead. ``truncate``: digest -> bytes to send before
    closing the connection (the announced length stays the full one). ``bearer``: require
    ``Authorization: Bearer <bearer>`` and offer a token realm on ``/token`` that hands out
    ``token_given``. ``redirect_blobs``: blob GETs answer 307 to that base URL.
    """

    def __init__(self, repo: str, image: "FakeImage | None" = None) -> None:
        self.repo = repo
        self.manifests: dict[str, tuple[bytes, str]] = {}
        self.blobs: dict[str, bytes] = {}
        self.tamper: dict[str, bytes] = {}
        self.truncate: dict[str, int] = {}
        self.bearer: str | None = None
        self.token_given = ""
        self.redirect_blobs: str | None = None
        self.slow: dict[str, float] = {}   # digest -> seconds to pause half-way through its body
        self.host = ""
        if image is not None:
            self.add(image, "latest")

    def add(self, image: "FakeImage", tag: str) -> None:
        self.manifests[tag] = self.manifests[sha(image.manifest)] = (image.manifest, OCI_MANIFEST)
        self.blobs.update(image.blobs)

    def __call__(self, h: Handler) -> None:
        path = h.path.split("?", 1)[0]
        if path == "/token":
            h.reply(200, json.dumps({"token": self.token_given, "expires_in": 300}).encode(),
                    {"Content-Type": "application/json"})
            return
        if self.bearer is not None and h.headers.get("Authorization") != f"Bearer {self.bearer}":
            h.reply(401, b'{"errors":[{"code":"UNAUTHORIZED","message":"token not valid for this repository"}]}',
                    {"WWW-Authenticate": f'Bearer realm="http://{self.host}/token",service="fake"',
                     "Content-Type": "application/json"})
            return
        if path == "/v2/":
            h.reply(200, b"{}")
            return
        prefix = f"/v2/{self.repo}/"
        if path.startswith(prefix + "manifests/"):
            ref = path[len(prefix + "manifests/"):]
            if ref not in self.manifests:
                h.reply(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}')
                return
            data, media_type = self.manifests[ref]
            h.reply(200, data, {"Content-Type": media_type, "Docker-Content-Digest": sha(data)})
            return
        if path.startswith(prefix + "blobs/"):
            digest = path[len(prefix + "blobs/"):]
            if digest not in self.blobs:
                h.reply(404, b'{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]}')
                return
            if self.redirect_blobs and h.command == "GET":
                h.reply(307, headers={"Location": f"{self.redirect_blobs}{path}"})
                return
            data = self.tamper.get(digest, self.blobs[digest])
            start = 0
            rng = h.headers.get("Range")
            if rng and h.command == "GET":
                start = int(rng.split("=", 1)[1].split("-", 1)[0])
            part = data[start:]
            status = 206 if start else 200
            headers = {"Content-Type": "application/octet-stream", "Docker-Content-Digest": digest}
            if start:
                headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            cut = self.truncate.get(digest)
            if cut is not None and h.command == "GET":
                h.reply(status, part[:cut], headers, length=len(part))
                h.close_connection = True
                h.connection.shutdown(socket.SHUT_RDWR)
                return
            pause = self.slow.get(digest)
            if pause and h.command == "GET":
                h.reply(status, part[: len(part) // 2], headers, length=len(part))
                h.wfile.flush()
                time.sleep(pause)
                h.wfile.write(part[len(part) // 2:])
                return
            h.reply(status, part, headers)
            return
        h.reply(404, b'{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known"}]}')


class StorageServer:
    """An app serving blobs by path (a registry's redirect target) and recording the headers."""

    def __init__(self, blobs: dict[str, bytes]) -> None:
        self.blobs = blobs
        self.seen: list[dict[str, str]] = []

    def __call__(self, h: Handler) -> None:
        self.seen.append(dict(h.headers.items()))
        digest = h.path.split("?", 1)[0].rsplit("/", 1)[-1]
        if digest in self.blobs:
            h.reply(200, self.blobs[digest], {"Content-Type": "application/octet-stream"})
        else:
            h.reply(404)
