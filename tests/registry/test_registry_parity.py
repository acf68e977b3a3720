"""Side by side with the CNCF registry: the same request sequences must get the same answers.

A differential harness: every scenario below is a list of HTTP requests run once against the
CNCF ``docker-registry`` this module starts on a free port (plain HTTP, no auth, deletes on) and
once against a dockyard registry this module starts (open, deletes on, no immutable tags: the CNCF
defaults). Each answer is reduced to what clients rely on -- status, the headers docker/containerd/
skopeo read (digest, type, length, Location shape, Range, upload UUID, Link, API version) and the
error codes -- and the two reductions must be equal. Repository names are unique per run, so the
shared CNCF registry's other content never enters a comparison.

Run by hand against any two registries (prints every difference)::

    python tests/registry/test_registry_parity.py http://127.0.0.1:5000 http://127.0.0.1:5001
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
# the headers clients act on; compared after normalising what is legitimately per-server
HEADERS = ("Docker-Content-Digest", "Content-Type", "Content-Length", "Location", "Range",
           "Docker-Upload-UUID", "Link", "Docker-Distribution-API-Version", "Content-Range",
           "WWW-Authenticate", "Accept-Ranges", "Allow", "ETag", "Cache-Control", "OCI-Chunk-Min-Length",
           "X-Content-Type-Options")
_UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# ---- one side: a base URL, a session, the repository prefix and what it learnt ----------------
@dataclass
class Side:
    url: str
    prefix: str
    http: requests.Session = field(default_factory=requests.Session)
    log: list[tuple[str, dict[str, Any], str | None]] = field(default_factory=list)
    touched: set[str] = field(default_factory=set)
    last: requests.Response | None = None

    def repo(self, name: str) -> str:
        return f"{self.prefix}/{name}"

    def call(self, label: str, method: str, path: str, *, body: bool = True, known: str | None = None,
             ignore: tuple[str, ...] = (), **kw: Any) -> requests.Response:
        """Send one request (``path`` relative or an absolute Location) and record its reduction.

        ``known`` names a deliberate difference (see KNOWN in docs/registry.md): the answer is
        recorded but not compared. ``ignore`` drops reduced fields that depend on the registry's
        other content (a shared CNCF registry's catalog).
        """
        target = path if path.startswith("http") else self.url + path
        m = re.search(rf"/v2/({re.escape(self.prefix)}/.+?)/(?:blobs|manifests|tags)/", target)
        if m:
            self.touched.add(m.group(1))
        r = self.http.request(method, target, allow_redirects=False, timeout=30, stream=True, **kw)
        try:
            r.content
        except requests.RequestException:  # Go's 416 announces the blob's length, sends less
            r._content = b"<cut short>"
        self.last = r
        reduced = {k: v for k, v in reduce(r, self, body=body).items() if k not in ignore}
        self.log.append((label, reduced, known))
        return r

    def cleanup(self, digests: list[str]) -> None:
        """Unlink what the scenarios pushed from every repository they touched (not compared).

        The distribution API cannot delete a repository: its name stays in the catalog.
        """
        for repo in sorted(self.touched):
            for digest in digests:
                try:
                    self.http.delete(f"{self.url}/v2/{repo}/blobs/{digest}", timeout=10)
                except requests.RequestException:
                    pass

    def location(self) -> str:
        assert self.last is not None
        loc = self.last.headers.get("Location", "")
        return loc if loc.startswith("http") else self.url + loc


def _norm_location(value: str, side: Side) -> str:
    """Location's shape: the path (upload ids masked) and the query's keys, host dropped."""
    parts = urlsplit(value)
    host = urlsplit(side.url).netloc
    shape = "abs" if parts.netloc == host else ("rel" if not parts.netloc else "other-host")
    path = _UUID_RE.sub("<uuid>", parts.path.replace(side.prefix, "<p>"))
    keys = ",".join(sorted(k for k in parse_qs(parts.query, keep_blank_values=True) if k != "_state"))
    return f"{shape}:{path}?{keys}"


def reduce(r: requests.Response, side: Side, *, body: bool = True) -> dict[str, Any]:
    """What a client sees of an answer, minus what differs legitimately between servers."""
    out: dict[str, Any] = {"status": r.status_code}
    for name in HEADERS:
        value = r.headers.get(name)
        if value is None:
            continue
        if name == "Location":
            value = _norm_location(value, side)
        elif name == "Docker-Upload-UUID":
            value = "<uuid>" if _UUID_RE.fullmatch(value) else value
        elif name == "Link":
            value = value.replace(side.prefix, "<p>")
        elif name == "Content-Type":
            value = re.sub(r"boundary=\w+", "boundary=<b>", value.replace("; charset=utf-8", ""))
        elif name == "Content-Length" and (r.status_code == 416 or (
                r.headers.get("Content-Type", "").startswith("application/json") and r.status_code >= 400)):
            continue  # error prose has no fixed length; Go's 416 announces the blob's length
        out[name.lower()] = value
    ctype = r.headers.get("Content-Type", "")
    if body and r.content and ctype.startswith("application/json") and r.status_code >= 400:
        try:
            # the code and its fixed message (what docker prints: "manifest unknown: manifest unknown")
            out["errors"] = [(e.get("code"), e.get("message")) for e in r.json().get("errors", [])]
            # the details (digests, tags, the access records a client asks a token for)
            out["details"] = json.loads(json.dumps([e.get("detail", "<absent>") for e in r.json()["errors"]])
                                        .replace(side.prefix, "<p>"))
        except ValueError:
            out["errors"] = "<not json>"
    elif body and r.content and r.status_code < 300 and ctype.startswith("application/json"):
        doc = json.loads(r.text.replace(side.prefix, "<p>"))
        if isinstance(doc, dict) and isinstance(doc.get("tags"), list):
            doc["tags"] = sorted(doc["tags"])  # the CNCF registry lists tags in directory order
            out.pop("content-length", None)
        out["json"] = doc
    elif body and r.status_code < 300:
        boundary = re.search(r"boundary=(\w+)", ctype)
        content = r.content.replace(boundary.group(1).encode(), b"<b>") if boundary else r.content
        out["body-sha"] = sha(content)[:19]
    elif body and r.status_code >= 400 and r.status_code != 416 and ctype.startswith("text/"):
        out["text"] = r.content[:40]
    return out


# ---- content shared by both sides (deterministic, so digests match) ----------------------------
LAYER = b"layer-bytes " * 300
LAYER2 = b"second-layer " * 123
CONFIG = json.dumps({"architecture": "amd64", "os": "linux",
                     "rootfs": {"type": "layers", "diff_ids": [sha(LAYER)]}}).encode()


# every blob a scenario may push, for the cleanup
PUSHED = [sha(d) for d in (LAYER, LAYER2, CONFIG, b"mono", b"stream-part-1 tail", b"", b"abcdef",
                           b"abc", b"xyz")]


def image_manifest(media_type: str, layers: list[bytes] = (LAYER,), **extra: Any) -> bytes:
    oci = media_type == OCI_MANIFEST
    doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": media_type,
                           "config": {"mediaType": OCI_CONFIG if oci else DOCKER_CONFIG,
                                      "digest": sha(CONFIG), "size": len(CONFIG)},
                           "layers": [{"mediaType": OCI_LAYER if oci else DOCKER_LAYER,
                                       "digest": sha(l), "size": len(l)} for l in layers]}
    doc.update(extra)
    return json.dumps(doc, indent=3).encode()


def index_manifest(media_type: str, manifests: list[bytes], child_type: str) -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": media_type, "manifests": [
        {"mediaType": child_type, "digest": sha(m), "size": len(m),
         "platform": {"architecture": "amd64", "os": "linux"}} for m in manifests]}, indent=2).encode()


def push_blob(s: Side, repo: str, data: bytes, label: str = "push blob") -> None:
    """POST then PUT: the two-step upload both servers support."""
    s.call(f"{label}: start", "POST", f"/v2/{repo}/blobs/uploads/")
    s.call(f"{label}: put", "PUT", s.location(), params={"digest": sha(data)}, data=data)


# ---- deliberate differences (docs/registry.md, "Differences from the CNCF registry") ----------
MONOLITHIC = "POST ?digest= stores the blob (201), as the spec allows; CNCF v2.8 ignores it (202)"
CONTENT_RANGE = "a PATCH whose Content-Range does not continue the upload is 416 (spec MUST); CNCF v2.8 ignores Content-Range"
TAG_PAGES = "tags/list honours n and last (spec); CNCF v2.8 ignores both"
REFERRERS = "dockyard serves the v1.1 referrers API; CNCF v2.8 has no such route (404)"
NAMES = "names outside the spec grammar are 400 NAME_INVALID; CNCF v2.8 answers 404/301/202/500 by route"


# ---- scenarios ---------------------------------------------------------------------------------
def sc_base(s: Side) -> None:
    s.call("GET /v2/", "GET", "/v2/")
    s.call("GET /v2 (no slash)", "GET", "/v2")
    s.call("HEAD /v2/", "HEAD", "/v2/")
    s.call("unknown path", "GET", "/nothing-here")
    s.call("unknown v2 path", "GET", "/v2/a/b/nothing")


def sc_blobs_read(s: Side) -> None:
    repo = s.repo("blobs")
    missing = sha(b"never pushed")
    s.call("HEAD missing blob", "HEAD", f"/v2/{repo}/blobs/{missing}")
    s.call("GET missing blob", "GET", f"/v2/{repo}/blobs/{missing}")
    s.call("GET bad digest", "GET", f"/v2/{repo}/blobs/sha256:xyz")
    s.call("HEAD bad digest", "HEAD", f"/v2/{repo}/blobs/sha256:xyz")
    s.call("GET unknown algorithm", "GET", f"/v2/{repo}/blobs/md5:{'0' * 32}")
    s.call("GET not a digest", "GET", f"/v2/{repo}/blobs/latest")
    push_blob(s, repo, LAYER)
    d = sha(LAYER)
    s.call("HEAD blob", "HEAD", f"/v2/{repo}/blobs/{d}")
    s.call("GET blob", "GET", f"/v2/{repo}/blobs/{d}")
    s.call("GET blob range 0-9", "GET", f"/v2/{repo}/blobs/{d}", headers={"Range": "bytes=0-9"})
    s.call("GET blob range 10-", "GET", f"/v2/{repo}/blobs/{d}", headers={"Range": "bytes=10-"})
    s.call("GET blob range suffix", "GET", f"/v2/{repo}/blobs/{d}", headers={"Range": "bytes=-5"})
    s.call("GET blob range past end", "GET", f"/v2/{repo}/blobs/{d}",
           headers={"Range": f"bytes={len(LAYER) + 10}-"})
    s.call("GET blob range end past end", "GET", f"/v2/{repo}/blobs/{d}",
           headers={"Range": f"bytes=5-{len(LAYER) + 10}"})
    s.call("GET blob range garbage", "GET", f"/v2/{repo}/blobs/{d}", headers={"Range": "lines=1-2"})
    for rng in ("bytes=0-0,2-3", "bytes=0-0, 10-19 ,-5", "bytes=", "bytes=-99999", "bytes=0-,0-",
                "bytes=3-1", "bytes=a-b", "bytes=99999-,0-1", "bytes=99999-,99998-", "bytes=5"):
        s.call(f"GET blob Range {rng}", "GET", f"/v2/{repo}/blobs/{d}", headers={"Range": rng})
    s.call("HEAD blob range", "HEAD", f"/v2/{repo}/blobs/{d}", headers={"Range": "bytes=0-9"})
    s.call("GET blob other repo", "GET", f"/v2/{s.repo('elsewhere')}/blobs/{d}")
    s.call("DELETE blob", "DELETE", f"/v2/{repo}/blobs/{d}")
    s.call("HEAD deleted blob", "HEAD", f"/v2/{repo}/blobs/{d}")
    s.call("DELETE deleted blob", "DELETE", f"/v2/{repo}/blobs/{d}")
    s.call("DELETE bad digest", "DELETE", f"/v2/{repo}/blobs/sha256:xyz")


def sc_uploads(s: Side) -> None:
    repo = s.repo("uploads")
    data = LAYER2
    # monolithic POST ?digest=
    s.call("POST ?digest= monolithic", "POST", f"/v2/{repo}/blobs/uploads/",
           params={"digest": sha(b"mono")}, data=b"mono", known=MONOLITHIC)
    s.call("POST ?digest= bad digest", "POST", f"/v2/{repo}/blobs/uploads/",
           params={"digest": "sha256:nope"}, data=b"mono")
    # POST + PUT with the wrong digest, then the right one
    s.call("POST start", "POST", f"/v2/{repo}/blobs/uploads/")
    loc = s.location()
    s.call("GET upload status (empty)", "GET", loc)
    s.call("PUT wrong digest", "PUT", loc, params={"digest": sha(b"other")}, data=data)
    s.call("PUT after failed PUT", "PUT", loc, params={"digest": sha(data)}, data=data)
    s.call("GET after failed PUT", "GET", loc)
    s.call("DELETE after failed PUT", "DELETE", loc)
    s.call("POST start 2", "POST", f"/v2/{repo}/blobs/uploads/")
    loc = s.location()
    s.call("PUT no digest", "PUT", loc, data=data)
    s.call("PUT malformed digest", "PUT", loc, params={"digest": "sha256:zz"}, data=data)
    s.call("POST start 3", "POST", f"/v2/{repo}/blobs/uploads/")
    s.call("PUT right digest", "PUT", s.location(), params={"digest": sha(data)}, data=data)
    s.call("HEAD uploaded", "HEAD", f"/v2/{repo}/blobs/{sha(data)}")
    # chunked PATCH uploads
    a, b, c = data[:500], data[500:1000], data[1000:]
    s.call("chunked: start", "POST", f"/v2/{repo}/blobs/uploads/")
    s.call("chunked: patch 1", "PATCH", s.location(), data=a,
           headers={"Content-Range": f"0-{len(a) - 1}", "Content-Type": "application/octet-stream"})
    s.call("chunked: status", "GET", s.location())
    s.call("chunked: patch 2", "PATCH", s.location(), data=b,
           headers={"Content-Range": f"500-{999}", "Content-Type": "application/octet-stream"})
    s.call("chunked: patch 3 (no range)", "PATCH", s.location(), data=c,
           headers={"Content-Type": "application/octet-stream"})
    last_loc = s.location()
    s.call("chunked: put final", "PUT", last_loc, params={"digest": sha(data)})
    s.call("chunked: GET blob", "GET", f"/v2/{repo}/blobs/{sha(data)}")
    s.call("chunked: status after finish", "GET", last_loc)
    # a chunk out of order: the spec's 416 (the CNCF registry v2.8 ignores Content-Range)
    s.call("ooo: start", "POST", f"/v2/{repo}/blobs/uploads/")
    s.call("ooo: patch 1", "PATCH", s.location(), data=a,
           headers={"Content-Range": f"0-{len(a) - 1}", "Content-Type": "application/octet-stream"})
    s.call("ooo: patch out of order", "PATCH", s.location(), data=c, known=CONTENT_RANGE,
           headers={"Content-Range": f"2000-{2000 + len(c) - 1}", "Content-Type": "application/octet-stream"})
    s.call("ooo: cancel", "DELETE", s.location())
    # streamed PATCH without Content-Range, then PUT with the last chunk
    s.call("stream: start", "POST", f"/v2/{repo}/blobs/uploads/")
    s.call("stream: patch", "PATCH", s.location(), data=b"stream-part-1 ")
    s.call("stream: put with body", "PUT", s.location(), params={"digest": sha(b"stream-part-1 tail")},
           data=b"tail")
    # PATCH with a Content-Range that does not match the body
    s.call("badrange: start", "POST", f"/v2/{repo}/blobs/uploads/")
    loc = s.location()
    s.call("badrange: patch length mismatch", "PATCH", loc, data=b"abc", known=CONTENT_RANGE,
           headers={"Content-Range": "0-9", "Content-Type": "application/octet-stream"})
    s.call("badrange: patch malformed", "PATCH", loc, data=b"abc", known=CONTENT_RANGE,
           headers={"Content-Range": "x-y", "Content-Type": "application/octet-stream"})
    # cancel
    s.call("cancel: start", "POST", f"/v2/{repo}/blobs/uploads/")
    loc = s.location()
    s.call("cancel: DELETE upload", "DELETE", loc)
    s.call("cancel: status after delete", "GET", loc)
    s.call("cancel: DELETE again", "DELETE", loc)
    s.call("cancel: PATCH after delete", "PATCH", loc, data=b"x")
    s.call("cancel: PUT after delete", "PUT", loc, params={"digest": sha(b"x")}, data=b"x")
    # unknown upload ids
    s.call("unknown upload GET", "GET", f"/v2/{repo}/blobs/uploads/{uuid.UUID(int=1)}")
    s.call("unknown upload PATCH", "PATCH", f"/v2/{repo}/blobs/uploads/{uuid.UUID(int=1)}", data=b"x")
    s.call("unknown upload PUT", "PUT", f"/v2/{repo}/blobs/uploads/{uuid.UUID(int=1)}",
           params={"digest": sha(b"x")}, data=b"x")
    s.call("unknown upload DELETE", "DELETE", f"/v2/{repo}/blobs/uploads/{uuid.UUID(int=1)}")
    s.call("garbage upload id", "GET", f"/v2/{repo}/blobs/uploads/not-a-uuid")
    # an upload is bound to its repository
    s.call("other repo: start", "POST", f"/v2/{repo}/blobs/uploads/")
    other = s.location().replace(f"/v2/{repo}/", f"/v2/{s.repo('uploads2')}/")
    s.call("other repo: status", "GET", other)


def sc_mount(s: Side) -> None:
    src, dst = s.repo("mount-src"), s.repo("mount-dst")
    push_blob(s, src, LAYER)
    s.call("mount existing", "POST", f"/v2/{dst}/blobs/uploads/", params={"mount": sha(LAYER), "from": src})
    s.call("HEAD mounted", "HEAD", f"/v2/{dst}/blobs/{sha(LAYER)}")
    s.call("mount missing blob", "POST", f"/v2/{dst}/blobs/uploads/",
           params={"mount": sha(b"absent"), "from": src})
    s.call("mount from missing repo", "POST", f"/v2/{dst}/blobs/uploads/",
           params={"mount": sha(LAYER), "from": s.repo("no-such-repo")})
    s.call("mount from invalid repo", "POST", f"/v2/{dst}/blobs/uploads/",
           params={"mount": sha(LAYER), "from": "Bad//Name"})
    s.call("mount bad digest", "POST", f"/v2/{dst}/blobs/uploads/", params={"mount": "sha256:zz", "from": src})
    s.call("mount without from", "POST", f"/v2/{dst}/blobs/uploads/", params={"mount": sha(LAYER2)})
    s.call("mount from itself", "POST", f"/v2/{src}/blobs/uploads/", params={"mount": sha(LAYER), "from": src})
    s.call("mount from a repo without the blob", "POST", f"/v2/{s.repo('mount-third')}/blobs/uploads/",
           params={"mount": sha(LAYER), "from": s.repo("mount-empty")})


def _push_image(s: Side, repo: str, media_type: str, layers: list[bytes] = (LAYER,)) -> bytes:
    push_blob(s, repo, CONFIG, "config")
    for layer in layers:
        push_blob(s, repo, layer, "layer")
    return image_manifest(media_type, layers)


def sc_manifests(s: Side) -> None:
    repo = s.repo("manifests")
    oci = _push_image(s, repo, OCI_MANIFEST)
    docker = image_manifest(DOCKER_MANIFEST)
    s.call("PUT OCI by tag", "PUT", f"/v2/{repo}/manifests/v1", data=oci,
           headers={"Content-Type": OCI_MANIFEST})
    s.call("PUT docker by tag", "PUT", f"/v2/{repo}/manifests/docker", data=docker,
           headers={"Content-Type": DOCKER_MANIFEST})
    s.call("PUT OCI by digest", "PUT", f"/v2/{repo}/manifests/{sha(oci)}", data=oci,
           headers={"Content-Type": OCI_MANIFEST})
    s.call("PUT digest mismatch", "PUT", f"/v2/{repo}/manifests/{sha(b'other')}", data=oci,
           headers={"Content-Type": OCI_MANIFEST})
    s.call("PUT invalid JSON", "PUT", f"/v2/{repo}/manifests/bad", data=b"{not json",
           headers={"Content-Type": OCI_MANIFEST})
    s.call("PUT empty body", "PUT", f"/v2/{repo}/manifests/empty", data=b"",
           headers={"Content-Type": OCI_MANIFEST})
    s.call("PUT schemaVersion 1", "PUT", f"/v2/{repo}/manifests/sv1",
           data=json.dumps({"schemaVersion": 1, "name": repo, "tag": "sv1"}).encode(),
           headers={"Content-Type": "application/vnd.docker.distribution.manifest.v1+json"})
    missing = image_manifest(OCI_MANIFEST, [b"not pushed layer"])
    s.call("PUT missing layer", "PUT", f"/v2/{repo}/manifests/missing", data=missing,
           headers={"Content-Type": OCI_MANIFEST})
    missing_d = image_manifest(DOCKER_MANIFEST, [b"not pushed layer"])
    s.call("PUT docker missing layer", "PUT", f"/v2/{repo}/manifests/missing", data=missing_d,
           headers={"Content-Type": DOCKER_MANIFEST})
    s.call("PUT invalid tag", "PUT", f"/v2/{repo}/manifests/-bad-tag", data=oci,
           headers={"Content-Type": OCI_MANIFEST})
    s.call("PUT bad digest ref", "PUT", f"/v2/{repo}/manifests/sha256:zz", data=oci,
           headers={"Content-Type": OCI_MANIFEST}, known="CNCF answers 500 UNKNOWN, dockyard 400 DIGEST_INVALID")
    # indexes
    idx = index_manifest(OCI_INDEX, [oci], OCI_MANIFEST)
    s.call("PUT OCI index", "PUT", f"/v2/{repo}/manifests/index", data=idx, headers={"Content-Type": OCI_INDEX})
    lst = index_manifest(DOCKER_LIST, [docker], DOCKER_MANIFEST)
    s.call("PUT docker list", "PUT", f"/v2/{repo}/manifests/list", data=lst, headers={"Content-Type": DOCKER_LIST})
    bad_idx = index_manifest(OCI_INDEX, [b"unknown child"], OCI_MANIFEST)
    s.call("PUT index missing child", "PUT", f"/v2/{repo}/manifests/badindex", data=bad_idx,
           headers={"Content-Type": OCI_INDEX})
    # reads and negotiation
    for ref in ("v1", "docker", sha(oci), "index", "list", "nope", sha(b"nope")):
        s.call(f"GET {ref[:12]}", "GET", f"/v2/{repo}/manifests/{ref}")
        s.call(f"HEAD {ref[:12]}", "HEAD", f"/v2/{repo}/manifests/{ref}")
    for ref in ("v1", "docker", "index", "list"):
        for accept in (OCI_MANIFEST, DOCKER_MANIFEST, f"{OCI_MANIFEST}, {DOCKER_MANIFEST}",
                       OCI_INDEX, DOCKER_LIST, "application/json", "*/*"):
            s.call(f"GET {ref} Accept {accept[:40]}", "GET", f"/v2/{repo}/manifests/{ref}",
                   headers={"Accept": accept})
    s.call("GET bad reference", "GET", f"/v2/{repo}/manifests/-x")
    s.call("GET unknown repo manifest", "GET", f"/v2/{s.repo('nothing-here')}/manifests/latest")
    # deletes
    s.call("DELETE by tag", "DELETE", f"/v2/{repo}/manifests/docker")
    s.call("DELETE by digest", "DELETE", f"/v2/{repo}/manifests/{sha(docker)}")
    s.call("GET tag of deleted", "GET", f"/v2/{repo}/manifests/docker")
    s.call("DELETE missing digest", "DELETE", f"/v2/{repo}/manifests/{sha(b'nope')}")
    s.call("DELETE bad digest", "DELETE", f"/v2/{repo}/manifests/sha256:zz")
    s.call("tags after delete", "GET", f"/v2/{repo}/tags/list")
    for ref in (sha(lst), sha(idx), sha(oci)):
        s.call("cleanup", "DELETE", f"/v2/{repo}/manifests/{ref}")


def sc_tags(s: Side) -> None:
    repo = s.repo("tags")
    m = _push_image(s, repo, OCI_MANIFEST)
    for tag in ("b", "a", "c", "latest", "1.0", "A", "z_9"):
        s.call(f"tag {tag}", "PUT", f"/v2/{repo}/manifests/{tag}", data=m, headers={"Content-Type": OCI_MANIFEST})
    s.call("tags", "GET", f"/v2/{repo}/tags/list")
    for q in ("n=100", "n=7", "n=-1", "n=abc", "last=", "n="):
        s.call(f"tags {q}", "GET", f"/v2/{repo}/tags/list?{q}")
    for q in ("n=2", "n=2&last=a", "last=b", "n=0", "n=3&last=latest", "last=zzz"):
        s.call(f"tags {q}", "GET", f"/v2/{repo}/tags/list?{q}", known=TAG_PAGES)
    s.call("tags unknown repo", "GET", f"/v2/{s.repo('nothing-here')}/tags/list")
    s.call("tags trailing slash", "GET", f"/v2/{repo}/tags/list/")
    s.call("cleanup", "DELETE", f"/v2/{repo}/manifests/{sha(m)}")
    s.call("tags after all deleted", "GET", f"/v2/{repo}/tags/list")
    untagged = s.repo("untagged")
    u = _push_image(s, untagged, OCI_MANIFEST)
    s.call("tags of blobs-only repo", "GET", f"/v2/{untagged}/tags/list")
    s.call("PUT by digest only", "PUT", f"/v2/{untagged}/manifests/{sha(u)}", data=u,
           headers={"Content-Type": OCI_MANIFEST})
    s.call("tags of digest-only repo", "GET", f"/v2/{untagged}/tags/list")
    s.call("cleanup", "DELETE", f"/v2/{untagged}/manifests/{sha(u)}")


def sc_catalog(s: Side) -> None:
    for name in ("cat-b", "cat-a", "cat-c/sub", "cat-d", "cat-a-z", "cat-a/y"):
        push_blob(s, s.repo(name), LAYER2)
    p = s.prefix
    # our repositories are the first ones after the bare prefix (it is unique to this run)
    s.call("catalog n=3 last=prefix", "GET", f"/v2/_catalog?n=3&last={p}")
    s.call("catalog n=6 last=prefix", "GET", f"/v2/_catalog?n=6&last={p}")
    s.call("catalog n=2 last=cat-a/y", "GET", f"/v2/_catalog?n=2&last={p}/cat-a/y")
    s.call("catalog n=2 last=prefix", "GET", f"/v2/_catalog?n=2&last={p}")
    s.call("catalog n=1 last=cat-a", "GET", f"/v2/_catalog?n=1&last={p}/cat-a")
    s.call("catalog n=0", "GET", "/v2/_catalog?n=0")
    s.call("catalog n=1001", "GET", "/v2/_catalog?n=1001")
    s.call("catalog n=1000 last=prefix", "GET", f"/v2/_catalog?n=1000&last={p}", body=False,
           ignore=("link", "content-length", "body-sha"))
    # the shared CNCF registry holds other repositories: compare only the answer's shape
    for q in ("", "?n=abc", "?n=-1"):
        s.call(f"catalog {q}", "GET", f"/v2/_catalog{q}", body=False,
               ignore=("link", "content-length", "body-sha"))


def sc_names(s: Side) -> None:
    d = sha(b"x")
    for name in ("Upper/case", "a//b", "-lead", "a/.hidden", "x" * 256, "a/-b", "a__b", "a___b", "a..b",
                 "a/b_c-d.e/f__g"):
        known = None if name in ("a__b", "a/b_c-d.e/f__g") else NAMES
        s.call(f"name {name[:12]} upload", "POST", f"/v2/{name}/blobs/uploads/", known=known)
        s.call(f"name {name[:12]} tags", "GET", f"/v2/{name}/tags/list", known=known)
        s.call(f"name {name[:12]} manifest", "GET", f"/v2/{name}/manifests/latest", known=known)
        s.call(f"name {name[:12]} blob", "HEAD", f"/v2/{name}/blobs/{d}", known=known)


def sc_methods(s: Side) -> None:
    repo = s.repo("methods")
    s.call("PUT blob", "PUT", f"/v2/{repo}/blobs/{sha(b'x')}", data=b"x")
    s.call("POST manifest", "POST", f"/v2/{repo}/manifests/latest", data=b"{}")
    s.call("DELETE tags", "DELETE", f"/v2/{repo}/tags/list")
    s.call("POST catalog", "POST", "/v2/_catalog")
    s.call("PATCH uploads base", "PATCH", f"/v2/{repo}/blobs/uploads/")
    s.call("POST base", "POST", "/v2/")


def sc_edges(s: Side) -> None:
    repo = s.repo("edges")
    oci = _push_image(s, repo, OCI_MANIFEST)
    d = sha(oci)
    s.call("PUT OCI", "PUT", f"/v2/{repo}/manifests/{d}", data=oci, headers={"Content-Type": OCI_MANIFEST})
    # digests: upper-case hex, another algorithm, the empty blob
    s.call("HEAD upper-case digest", "HEAD", f"/v2/{repo}/blobs/sha256:{sha(LAYER)[7:].upper()}")
    s.call("GET upper-case digest", "GET", f"/v2/{repo}/blobs/sha256:{sha(LAYER)[7:].upper()}")
    s.call("GET sha512 digest", "GET", f"/v2/{repo}/blobs/sha512:{hashlib.sha512(LAYER).hexdigest()}")
    s.call("empty blob: start", "POST", f"/v2/{repo}/blobs/uploads/")
    s.call("empty blob: HEAD status", "HEAD", s.location())
    s.call("empty blob: zero PATCH", "PATCH", s.location(), data=b"")
    s.call("empty blob: put", "PUT", s.location(), params={"digest": sha(b"")})
    s.call("empty blob: GET", "GET", f"/v2/{repo}/blobs/{sha(b'')}")
    s.call("stream: start", "POST", f"/v2/{repo}/blobs/uploads/")
    s.call("stream: chunked PATCH", "PATCH", s.location(), data=iter([b"ab", b"cd", b"ef"]))
    s.call("stream: put", "PUT", s.location(), params={"digest": sha(b"abcdef")})
    # manifest media types: from Content-Type, from the body, or in conflict
    for label, ctype in (("no Content-Type", None), ("application/json", "application/json"),
                         ("docker type for OCI body", DOCKER_MANIFEST)):
        hdrs = {"Content-Type": ctype} if ctype else {}
        s.call(f"PUT OCI, {label}", "PUT", f"/v2/{repo}/manifests/ct", data=oci, headers=hdrs)
        s.call(f"GET after PUT OCI, {label}", "GET", f"/v2/{repo}/manifests/ct",
               headers={"Accept": f"{OCI_MANIFEST}, {DOCKER_MANIFEST}"})
    bare = json.loads(oci)
    del bare["mediaType"]
    bare_body = json.dumps(bare).encode()
    s.call("PUT OCI without mediaType", "PUT", f"/v2/{repo}/manifests/bare", data=bare_body,
           headers={"Content-Type": OCI_MANIFEST})
    s.call("GET OCI without mediaType", "GET", f"/v2/{repo}/manifests/bare", headers={"Accept": OCI_MANIFEST})
    # conditional GET, HEAD of the unknown
    s.call("GET If-None-Match", "GET", f"/v2/{repo}/manifests/{d}",
           headers={"Accept": OCI_MANIFEST, "If-None-Match": f'"{d}"'})
    s.call("GET If-None-Match other", "GET", f"/v2/{repo}/manifests/{d}",
           headers={"Accept": OCI_MANIFEST, "If-None-Match": '"sha256:0"'})
    s.call("GET Accept with q-values", "GET", f"/v2/{repo}/manifests/{d}",
           headers={"Accept": f"{DOCKER_MANIFEST};q=0.9, {OCI_MANIFEST} ; q=0.5"})
    s.call("HEAD Accept */*", "HEAD", f"/v2/{repo}/manifests/{d}", headers={"Accept": "*/*"})
    s.call("PUT Content-Type with parameter", "PUT", f"/v2/{repo}/manifests/param", data=oci,
           headers={"Content-Type": f"{OCI_MANIFEST}; charset=utf-8"})
    s.call("GET blob If-None-Match", "GET", f"/v2/{repo}/blobs/{sha(LAYER)}",
           headers={"If-None-Match": f'"{sha(LAYER)}"'})
    s.call("GET blob If-Range", "GET", f"/v2/{repo}/blobs/{sha(LAYER)}",
           headers={"Range": "bytes=0-3", "If-Range": '"sha256:0"'})
    s.call("PATCH text/plain", "POST", f"/v2/{repo}/blobs/uploads/")
    s.call("PATCH text/plain: patch", "PATCH", s.location(), data=b"xyz", headers={"Content-Type": "text/plain"},
           known="CNCF answers 500 UNKNOWN to a chunk that is not application/octet-stream; dockyard takes it")
    wrong_size = json.loads(oci)
    wrong_size["layers"][0]["size"] += 1
    s.call("PUT layer size mismatch", "PUT", f"/v2/{repo}/manifests/wrongsize",
           data=json.dumps(wrong_size).encode(), headers={"Content-Type": OCI_MANIFEST},
           known="dockyard refuses a descriptor whose size is not the blob's (MANIFEST_INVALID); CNCF stores it")
    s.call("GET uploads base", "GET", f"/v2/{repo}/blobs/uploads/")
    s.call("DELETE uploads base", "DELETE", f"/v2/{repo}/blobs/uploads/")
    s.call("HEAD unknown tag", "HEAD", f"/v2/{repo}/manifests/unknown", headers={"Accept": OCI_MANIFEST})
    s.call("HEAD unknown digest", "HEAD", f"/v2/{repo}/manifests/{sha(b'?')}", headers={"Accept": OCI_MANIFEST})
    # a manifest with a subject (referrers): stored as any other manifest by both
    art = image_manifest(OCI_MANIFEST, subject={"mediaType": OCI_MANIFEST, "digest": d, "size": len(oci)})
    s.call("PUT manifest with subject", "PUT", f"/v2/{repo}/manifests/{sha(art)}", data=art,
           headers={"Content-Type": OCI_MANIFEST}, ignore=("oci-subject",))
    s.call("referrers", "GET", f"/v2/{repo}/referrers/{d}", known=REFERRERS)
    # an index whose child goes away: the index stays readable
    idx = index_manifest(OCI_INDEX, [oci], OCI_MANIFEST)
    s.call("PUT index", "PUT", f"/v2/{repo}/manifests/idx", data=idx, headers={"Content-Type": OCI_INDEX})
    s.call("DELETE child of index", "DELETE", f"/v2/{repo}/manifests/{d}")
    s.call("GET index after child delete", "GET", f"/v2/{repo}/manifests/idx", headers={"Accept": OCI_INDEX})
    s.call("GET deleted child", "GET", f"/v2/{repo}/manifests/{d}", headers={"Accept": OCI_MANIFEST})
    s.call("re-PUT deleted child", "PUT", f"/v2/{repo}/manifests/{d}", data=oci,
           headers={"Content-Type": OCI_MANIFEST})
    # a Docker list fetched by tag by a client that only takes Docker manifests: its amd64 entry
    docker = image_manifest(DOCKER_MANIFEST)
    s.call("PUT docker", "PUT", f"/v2/{repo}/manifests/{sha(docker)}", data=docker,
           headers={"Content-Type": DOCKER_MANIFEST})
    lst = index_manifest(DOCKER_LIST, [docker], DOCKER_MANIFEST)
    s.call("PUT list", "PUT", f"/v2/{repo}/manifests/lst", data=lst, headers={"Content-Type": DOCKER_LIST})
    s.call("GET list as docker manifest", "GET", f"/v2/{repo}/manifests/lst", headers={"Accept": DOCKER_MANIFEST})
    s.call("GET list by digest as docker manifest", "GET", f"/v2/{repo}/manifests/{sha(lst)}",
           headers={"Accept": DOCKER_MANIFEST})
    for ref in (sha(lst), sha(idx), sha(art), sha(docker), sha(bare_body), d):
        s.call("cleanup", "DELETE", f"/v2/{repo}/manifests/{ref}")


ALICE = ("alice", "alice-pw")


def sc_basic_auth(s: Side) -> None:
    """Against registries with HTTP Basic auth (htpasswd, realm "dockyard-registry") only."""
    repo = s.repo("auth")
    bad = ("alice", "wrong")
    for label, auth in (("anonymous", None), ("wrong password", bad), ("unknown user", ("bob", "x"))):
        s.call(f"{label}: GET /v2/", "GET", "/v2/", auth=auth)
        s.call(f"{label}: catalog", "GET", "/v2/_catalog", auth=auth)
        s.call(f"{label}: tags", "GET", f"/v2/{repo}/tags/list", auth=auth)
        s.call(f"{label}: HEAD blob", "HEAD", f"/v2/{repo}/blobs/{sha(LAYER)}", auth=auth)
        s.call(f"{label}: GET manifest", "GET", f"/v2/{repo}/manifests/latest", auth=auth)
        s.call(f"{label}: POST upload", "POST", f"/v2/{repo}/blobs/uploads/", auth=auth)
    s.call("alice: GET /v2/", "GET", "/v2/", auth=ALICE)
    s.call("alice: POST upload", "POST", f"/v2/{repo}/blobs/uploads/", auth=ALICE)
    loc = s.location()
    s.call("anonymous: PUT upload", "PUT", loc, params={"digest": sha(LAYER)}, data=LAYER)
    s.call("alice: PUT upload", "PUT", loc, params={"digest": sha(LAYER)}, data=LAYER, auth=ALICE)
    s.call("alice: HEAD blob", "HEAD", f"/v2/{repo}/blobs/{sha(LAYER)}", auth=ALICE)
    s.call("alice: tags of blob-only repo", "GET", f"/v2/{repo}/tags/list", auth=ALICE)


SCENARIOS: dict[str, Callable[[Side], None]] = {
    "base": sc_base, "blobs_read": sc_blobs_read, "uploads": sc_uploads, "mount": sc_mount,
    "manifests": sc_manifests, "tags": sc_tags, "catalog": sc_catalog, "names": sc_names,
    "methods": sc_methods, "edges": sc_edges,
}
AUTH_SCENARIOS: dict[str, Callable[[Side], None]] = {"basic_auth": sc_basic_auth}


def differences(cncf: Side, ours: Side) -> list[str]:
    out = []
    if len(cncf.log) != len(ours.log):
        out.append(f"request count differs: {len(cncf.log)} vs {len(ours.log)}")
    for (label, a, known), (_, b, _k) in zip(cncf.log, ours.log):
        if known is None and a != b:
            keys = sorted(set(a) | set(b))
            diff = {k: (a.get(k), b.get(k)) for k in keys if a.get(k) != b.get(k)}
            out.append(f"{label}: " + "; ".join(f"{k}: cncf={v[0]!r} dockyard={v[1]!r}" for k, v in diff.items()))
    return out


def run_pair(name: str, cncf_url: str, ours_url: str) -> list[str]:
    # the catalog pages must end with its own repositories: they sort after every other scenario's
    # (the CNCF registry lists a repository for ever, dockyard drops one that nothing is left in)
    prefix = f"{'zz-' if name == 'catalog' else ''}parity-{uuid.uuid4().hex[:10]}"
    cncf, ours = Side(cncf_url, prefix), Side(ours_url, prefix)
    scenario = SCENARIOS.get(name) or AUTH_SCENARIOS[name]
    scenario(cncf)
    scenario(ours)
    try:
        return differences(cncf, ours)
    finally:
        for side in (cncf, ours):
            side.cleanup(PUSHED)


# ---- pytest --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cncf_url(tmp_path_factory: pytest.TempPathFactory):
    """The CNCF registry of this module's own: open, deletes on, filesystem storage, no cache."""
    from distribution.helpers import CncfRegistry

    if shutil.which("docker-registry") is None:
        pytest.skip("docker-registry (the CNCF registry) is not installed: nothing to compare with")
    reg = CncfRegistry(tmp_path_factory.mktemp("parity-cncf"))
    try:
        yield reg.url
    finally:
        reg.stop()


@pytest.fixture(scope="module")
def dockyard_url(tmp_path_factory: pytest.TempPathFactory):
    from dockyard.registry import config as cfgmod
    from dockyard.registry.server import RegistryServer

    tmp = tmp_path_factory.mktemp("parity")
    cfg = cfgmod.from_dict({"http": {"addr": "127.0.0.1:0"}, "log": {"access": "off"},
                            "storage": {"filesystem": {"rootdirectory": str(tmp / "data")},
                                        "delete": {"enabled": True}}}, tmp)
    server = RegistryServer(cfg).start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.mark.interop
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_same_answers_as_cncf_registry(cncf_url: str, dockyard_url: str, scenario: str) -> None:
    diffs = run_pair(scenario, cncf_url, dockyard_url)
    assert not diffs, "\n".join(diffs)


def _wait_up(url: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            requests.get(url + "/v2/", timeout=1)
            return
        except requests.RequestException:
            if proc is not None and proc.poll() is not None:
                break
            time.sleep(0.1)
    pytest.fail(f"registry at {url} did not start")


@pytest.fixture(scope="module")
def basic_auth_pair(tmp_path_factory: pytest.TempPathFactory):
    """A CNCF registry and a dockyard registry, both with Basic auth from one htpasswd file."""
    exe = shutil.which("docker-registry")
    if exe is None:
        pytest.skip("docker-registry (the CNCF registry) is not installed: nothing to compare with")
    import bcrypt

    from dockyard.registry import config as cfgmod
    from dockyard.registry.server import RegistryServer

    from .helpers import free_port

    tmp = tmp_path_factory.mktemp("parity-auth")
    htpasswd = tmp / "htpasswd"
    htpasswd.write_text(f"alice:{bcrypt.hashpw(ALICE[1].encode(), bcrypt.gensalt(5)).decode()}\n")
    port = free_port()
    (tmp / "cncf.yml").write_text(json.dumps({  # YAML is a superset of JSON
        "version": 0.1, "log": {"level": "warn"}, "http": {"addr": f"127.0.0.1:{port}"},
        "storage": {"filesystem": {"rootdirectory": str(tmp / "cncf-data")}, "delete": {"enabled": True}},
        "auth": {"htpasswd": {"realm": "dockyard-registry", "path": str(htpasswd)}}}))
    log = open(tmp / "cncf.log", "w")
    proc = subprocess.Popen([exe, "serve", str(tmp / "cncf.yml")], stdout=log, stderr=log)
    server = None
    try:
        _wait_up(f"http://127.0.0.1:{port}", proc)
        cfg = cfgmod.from_dict({"http": {"addr": "127.0.0.1:0"}, "log": {"access": "off"},
                                "storage": {"filesystem": {"rootdirectory": str(tmp / "data")}},
                                "auth": {"scheme": "basic", "htpasswd": str(htpasswd),
                                         "roles": {"admin": ["alice"]}}}, tmp)
        server = RegistryServer(cfg).start()
        yield f"http://127.0.0.1:{port}", server.url
    finally:
        if server is not None:
            server.stop()
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


@pytest.mark.interop
@pytest.mark.parametrize("scenario", list(AUTH_SCENARIOS))
def test_same_auth_answers_as_cncf_registry(basic_auth_pair: tuple[str, str], scenario: str) -> None:
    diffs = run_pair(scenario, *basic_auth_pair)
    assert not diffs, "\n".join(diffs)


if __name__ == "__main__":
    a, b = sys.argv[1], sys.argv[2]
    names = sys.argv[3:] or list(SCENARIOS)  # basic_auth needs two registries with Basic auth
    total = 0
    for n in names:
        d = run_pair(n, a, b)
        total += len(d)
        print(f"== {n}: {len(d)} differences")
        for line in d:
            print("  " + line)
    sys.exit(1 if total else 0)
