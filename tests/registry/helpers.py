"""Registry test helpers: a requests session bound to a running server, push helpers, digests."""
from __future__ import annotations

import hashlib
import json
import os
import socket
from typing import Any

import requests

from dockyard.registry.server import RegistryServer

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
# distribution-spec v1.1: a 4xx JSON error body "MUST" use one of these codes
SPEC_CODES = {"BLOB_UNKNOWN", "BLOB_UPLOAD_INVALID", "BLOB_UPLOAD_UNKNOWN", "DIGEST_INVALID",
              "MANIFEST_BLOB_UNKNOWN", "MANIFEST_INVALID", "MANIFEST_UNKNOWN", "NAME_INVALID",
              "NAME_UNKNOWN", "SIZE_INVALID", "UNAUTHORIZED", "DENIED", "UNSUPPORTED", "TOOMANYREQUESTS"}


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Reg:
    """A running registry plus a requests session pointed at it."""

    def __init__(self, server: RegistryServer) -> None:
        self.server = server
        self.url = server.url
        self.http = requests.Session()
        # as docker/containerd: every manifest type (the CNCF registry's Accept rules apply)
        self.http.headers["Accept"] = f"{OCI_MANIFEST}, {OCI_INDEX}, {DOCKER_MANIFEST}, " \
            "application/vnd.docker.distribution.manifest.list.v2+json, */*"
        self.host = self.url.split("://", 1)[1]

    def __call__(self, method: str, path: str, **kw: Any) -> requests.Response:
        url = path if path.startswith("http") else self.url + path  # Locations are absolute
        r = self.http.request(method, url, allow_redirects=False, **kw)
        if 400 <= r.status_code < 500 and r.content and \
                r.headers.get("Content-Type", "").startswith("application/json"):
            codes = {e["code"] for e in r.json()["errors"]}
            assert codes <= SPEC_CODES, f"{method} {path}: non-spec error codes {codes - SPEC_CODES}"
        return r

    def raw(self, method: str, path: str, body: bytes = b"") -> tuple[int, dict]:
        """A request whose path is sent exactly as given (requests would normalise ``..``)."""
        import http.client

        conn = http.client.HTTPConnection(self.host, timeout=30)
        try:
            conn.request(method, path, body=body)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, json.loads(data) if data else {}
        finally:
            conn.close()

    def push_blob(self, repo: str, data: bytes, **kw: Any) -> str:
        digest = sha(data)
        r = self("POST", f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, data=data, **kw)
        assert r.status_code == 201, r.text
        return digest

    def push_image(self, repo: str, tag: str | None, layers: list[bytes] | None = None,
                   media_type: str = OCI_MANIFEST, extra: dict | None = None, **kw: Any) -> tuple[str, bytes]:
        """Push config + layers + manifest; returns (manifest digest, manifest bytes)."""
        layers = layers if layers is not None else [os.urandom(1000)]
        config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers",
                             "diff_ids": [sha(l) for l in layers]}}).encode()
        cfg_type = ("application/vnd.oci.image.config.v1+json" if media_type == OCI_MANIFEST
                    else "application/vnd.docker.container.image.v1+json")
        layer_type = ("application/vnd.oci.image.layer.v1.tar" if media_type == OCI_MANIFEST
                      else "application/vnd.docker.image.rootfs.diff.tar.gzip")
        manifest = {"schemaVersion": 2, "mediaType": media_type,
                    "config": {"mediaType": cfg_type, "digest": self.push_blob(repo, config, **kw),
                               "size": len(config)},
                    "layers": [{"mediaType": layer_type, "digest": self.push_blob(repo, l, **kw),
                                "size": len(l)} for l in layers]}
        manifest.update(extra or {})
        body = json.dumps(manifest).encode()
        ref = tag or sha(body)
        r = self("PUT", f"/v2/{repo}/manifests/{ref}", data=body,
                 headers={"Content-Type": media_type, **kw.pop("headers", {})}, **kw)
        assert r.status_code == 201, r.text
        return sha(body), body


def error_code(r: requests.Response) -> str:
    return r.json()["errors"][0]["code"]




def make_oci_layout(dest: "os.PathLike[str] | str", layer_tar: "os.PathLike[str] | str", tag: str = "1") -> str:
    """An OCI image layout holding one gzip layer made from ``layer_tar``; returns the manifest digest."""
    import gzip
    from pathlib import Path

    dest = Path(dest)
    blobs = dest / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    raw = Path(layer_tar).read_bytes()
    layer = gzip.compress(raw, mtime=0)

    def put(data: bytes) -> str:
        digest = sha(data)
        (blobs / digest.split(":")[1]).write_bytes(data)
        return digest

    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
                         "rootfs": {"type": "layers", "diff_ids": [sha(raw)]}}).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": put(config), "size": len(config)},
                           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                       "digest": put(layer), "size": len(layer)}]}).encode()
    digest = put(manifest)
    (dest / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (dest / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": digest, "size": len(manifest),
         "annotations": {"org.opencontainers.image.ref.name": tag}}]}))
    return digest
