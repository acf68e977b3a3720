"""The OCI distribution API of one registry: ping, manifests, blobs, uploads, mounts, tags.

``RegistryClient`` is one registry (a reference's domain): it finds out how to reach it (the
``/v2/`` ping, trying HTTPS and, for insecure registries, plain HTTP), and authenticates each
request for the scopes it needs. ``Repository`` is one repository on it, with the calls pull and
push are made of. Nothing here decides *what* to transfer; it only speaks the protocol and
turns every non-success answer into an error that names the request.
"""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Callable, Iterable
from urllib.parse import urlencode, urljoin, urlsplit

from dockyard.content import digest as dg
from dockyard.distribution.auth import Authorizer
from dockyard.distribution.credentials import Credentials
from dockyard.distribution.errors import RegistryError, TransferError, Unauthorized, describe_body
from dockyard.distribution.hosts import api_host, split_host_port
from dockyard.distribution.transport import FileBody, Response, Transport, quote_url
from dockyard.errors import DigestMismatch
from dockyard.image import mediatypes as mt

MANIFEST_ACCEPT = ", ".join([mt.OCI_INDEX, mt.DOCKER_LIST, mt.OCI_MANIFEST, mt.DOCKER_MANIFEST])
MANIFEST_MAX = 4 << 20
_ERROR_BODY_MAX = 1 << 20
_TAGS_MAX = 16 << 20
MONOLITHIC_MAX = 16 << 20
_UPLOAD_RETRIES = 3


@dataclass(frozen=True)
class Manifest:
    """A manifest or index exactly as the registry served it."""

    data: bytes
    media_type: str
    digest: str


def error_for(resp: Response, what: str) -> RegistryError:
    """The error for a failed response (its body read and the connection released)."""
    try:
        body = resp.read(_ERROR_BODY_MAX)
    except TransferError:
        body = b""
    code, text = describe_body(resp.status, resp.reason, body)
    cls = Unauthorized if resp.status == 401 else RegistryError
    return cls(f"{what}: {text}", resp.status, code, text)


class RegistryClient:
    """One registry: how to reach it, and authenticated requests to it."""

    def __init__(self, domain: str, transport: Transport,
                 credentials: Callable[[], Credentials | None]) -> None:
        self.domain = domain
        self.host = api_host(domain)
        self.transport = transport
        self.auth = Authorizer(transport, credentials)
        self._base: str | None = None
        self._ping_status = 0
        self._lock = threading.Lock()

    # -- reaching it --------------------------------------------------------------------------
    def _schemes(self) -> list[str]:
        if not self.transport.is_insecure(self.host):
            return ["https"]
        host, _ = split_host_port(self.host)
        loopback = host == "localhost" or host.startswith("127.") or host == "::1"
        # on loopback plain HTTP first: nothing leaves the machine, and a TLS-only server
        # rejects it at once; elsewhere TLS first so credentials never go out in clear text
        return ["http", "https"] if loopback else ["https", "http"]

    def ping(self) -> int:
        """GET /v2/ once, choosing the scheme that answers; returns its status (200 or 401)."""
        with self._lock:
            if self._base is not None:
                return self._ping_status
            last: TransferError | None = None
            plain: TransferError | None = None  # docker reports the plain-HTTP attempt's failure
            for scheme in self._schemes():
                url = f"{scheme}://{self.host}/v2/"
                try:
                    resp = self.transport.request("GET", url)
                except TransferError as exc:
                    last = exc
                    if scheme == "http":
                        plain = exc
                    continue
                if resp.status == 400 and scheme == "http" and len(self._schemes()) > 1:
                    resp.close()  # "Client sent an HTTP request to an HTTPS server"
                    last = TransferError(f"Get {quote_url(url)}: the server speaks HTTPS")
                    continue
                if resp.status == 401:
                    self.auth.learn(resp, ())
                resp.close()
                self._base = f"{scheme}://{self.host}"
                self._ping_status = resp.status
                return resp.status
            assert last is not None
            raise plain or last

    @property
    def base(self) -> str:
        if self._base is None:
            self.ping()
        assert self._base is not None
        return self._base

    def request(self, method: str, path: str, scopes: Iterable[str], headers: dict[str, str] | None = None,
                body: "bytes | FileBody | None" = None, follow_redirects: bool = True) -> Response:
        """An authenticated request (a path on this registry, or an absolute URL it gave us)."""
        scopes = list(scopes)
        url = path if path.startswith(("http://", "https://")) else self.base + path
        ours = urlsplit(url).netloc == urlsplit(self.base).netloc
        for attempt in range(2):
            h = dict(headers or {})
            if ours:
                h.update(self.auth.headers(scopes))
            resp = self.transport.request(method, url, h, body, follow_redirects)
            if resp.status == 401 and attempt == 0 and ours and self.auth.learn(resp, scopes):
                resp.close()
                continue
            return resp
        raise AssertionError("unreachable")

    def repository(self, path: str, push: bool = False) -> "Repository":
        return Repository(self, path, push)


class Repository:
    """One repository's manifests, blobs and tags (scoped for pull, or pull+push)."""

    def __init__(self, client: RegistryClient, path: str, push: bool = False) -> None:
        self.client = client
        self.path = path
        self.scope = f"repository:{path}:{'pull,push' if push else 'pull'}"

    def _request(self, method: str, path: str, headers: dict[str, str] | None = None,
                 body: "bytes | FileBody | None" = None, extra_scopes: Iterable[str] = (),
                 follow_redirects: bool = True) -> Response:
        if not path.startswith(("http://", "https://")):
            path = f"/v2/{self.path}{path}"
        return self.client.request(method, path, [self.scope, *extra_scopes], headers, body, follow_redirects)

    def _what(self, method: str, url_path: str) -> str:
        return f"{method.title()} {quote_url(self.client.base + f'/v2/{self.path}{url_path}')}"

    # -- manifests ----------------------------------------------------------------------------
    def get_manifest(self, reference: str) -> Manifest:
        """A manifest by tag or digest, verified against the digest we asked for or were told."""
        resp = self._request("GET", f"/manifests/{reference}", {"Accept": MANIFEST_ACCEPT})
        if resp.status != 200:
            raise error_for(resp, self._what("GET", f"/manifests/{reference}"))
        data = resp.read(MANIFEST_MAX)
        media_type = (resp.header("Content-Type") or "").split(";", 1)[0].strip()
        if dg.is_digest(reference):
            alg = dg.parse(reference)[0]
            digest = dg.from_bytes(data, alg)
            if digest != reference:
                raise DigestMismatch(f"manifest verification failed for digest {reference}: "
                                     f"the registry sent content that hashes to {digest}")
        else:
            digest = dg.from_bytes(data)
            announced = resp.header("Docker-Content-Digest") or ""
            if announced.startswith("sha256:") and dg.is_digest(announced) and announced != digest:
                raise DigestMismatch(f"manifest verification failed for digest {announced}: "
                                     f"the registry sent content that hashes to {digest}")
        return Manifest(data, media_type, digest)

    def put_manifest(self, reference: str, data: bytes, media_type: str) -> str:
        resp = self._request("PUT", f"/manifests/{reference}", {"Content-Type": media_type}, data)
        if resp.status not in (200, 201):
            raise error_for(resp, self._what("PUT", f"/manifests/{reference}"))
        resp.close()
        digest = dg.from_bytes(data)
        announced = resp.header("Docker-Content-Digest")
        if announced and announced.startswith("sha256:") and announced != digest:
            raise DigestMismatch(f"the registry stored manifest {reference} as {announced}, "
                                 f"but its content hashes to {digest}")
        return digest

    # -- blobs --------------------------------------------------------------------------------
    def blob_size(self, digest: str) -> int | None:
        """The size of a blob the repository has (HEAD), or None when it has not."""
        resp = self._request("HEAD", f"/blobs/{digest}")
        resp.close()
        if resp.status == 200:
            return resp.length if resp.length is not None else -1
        if resp.status == 404:
            return None
        raise error_for(resp, self._what("HEAD", f"/blobs/{digest}"))

    def open_blob(self, digest: str, offset: int = 0) -> Response:
        """A blob's body (200), or its rest from ``offset`` (206) when the server honours Range."""
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        resp = self._request("GET", f"/blobs/{digest}", headers)
        if resp.status in (200, 206):
            return resp
        raise error_for(resp, self._what("GET", f"/blobs/{digest}"))

    # -- uploads ------------------------------------------------------------------------------
    def _location(self, resp: Response, what: str) -> str:
        location = resp.header("Location")
        if not location:
            raise RegistryError(f"{what}: the registry did not say where to upload (no Location header)")
        url = urljoin(self.client.base + "/", location)
        if urlsplit(url).scheme not in ("http", "https"):
            raise RegistryError(f"{what}: unusable upload location {location!r}")
        return url

    def mount_or_start(self, digest: str | None = None, source: str | None = None) -> str | None:
        """Mount ``digest`` from repository ``source`` (None: it worked), else start an upload (its URL)."""
        query = f"?{urlencode({'mount': digest, 'from': source})}" if digest and source else ""
        extra = [f"repository:{source}:pull"] if source else []
        resp = self._request("POST", f"/blobs/uploads/{query}", extra_scopes=extra)
        what = self._what("POST", "/blobs/uploads/")
        if resp.status == 201 and query:
            resp.close()
            return None
        if resp.status != 202:
            raise error_for(resp, what)
        resp.close()
        return self._location(resp, what)

    def _with_digest(self, location: str, digest: str) -> str:
        return location + ("&" if urlsplit(location).query else "?") + urlencode({"digest": digest})

    def upload(self, location: str, digest: str, path: str, size: int,
               on_progress: Callable[[int], None] | None = None) -> None:
        """Send a blob from a file: one PUT when small, else a streaming PATCH (resumed after a
        broken connection from the offset the registry reports) and a closing PUT."""
        what = self._what("PUT", "/blobs/uploads/")
        if size <= MONOLITHIC_MAX:
            resp = self._request("PUT", self._with_digest(location, digest),
                                 {"Content-Type": "application/octet-stream"},
                                 FileBody(path, 0, size, on_progress))
            self._check_committed(resp, digest, what)
            return
        offset = 0
        reported = [0]

        def progress(n: int) -> None:
            reported[0] += n
            if on_progress is not None:
                on_progress(n)

        for attempt in range(_UPLOAD_RETRIES + 1):
            headers = {"Content-Type": "application/octet-stream"}
            if offset:
                headers["Content-Range"] = f"{offset}-{size - 1}"
            try:
                resp = self._request("PATCH", location, headers, FileBody(path, offset, size - offset, progress))
            except TransferError:
                if attempt == _UPLOAD_RETRIES:
                    raise
                try:
                    location, offset = self.upload_status(location)
                except RegistryError:
                    offset = 0
                if offset <= 1:
                    # nothing kept (a registry reports "0-0" for both 0 and 1 byte): a new session
                    location, offset = self.mount_or_start() or location, 0
                progress(offset - reported[0])  # the bar goes back to what the registry kept
                continue
            if resp.status != 202:
                raise error_for(resp, self._what("PATCH", "/blobs/uploads/"))
            resp.close()
            location = self._location(resp, what)
            break
        resp = self._request("PUT", self._with_digest(location, digest))
        self._check_committed(resp, digest, what)

    def upload_status(self, location: str) -> tuple[str, int]:
        """Where an interrupted upload continues: (its URL, the next byte the registry expects)."""
        resp = self._request("GET", location)
        what = self._what("GET", "/blobs/uploads/")
        if resp.status != 204:
            raise error_for(resp, what)
        resp.close()
        m = re.fullmatch(r"(?:bytes=)?0-(\d+)", (resp.header("Range") or "").strip())
        return self._location(resp, what), int(m.group(1)) + 1 if m else 0

    def _check_committed(self, resp: Response, digest: str, what: str) -> None:
        if resp.status != 201:
            raise error_for(resp, what)
        resp.close()
        announced = resp.header("Docker-Content-Digest")
        if announced and announced != digest:
            raise DigestMismatch(f"the registry stored blob {digest} as {announced}")

    # -- tags ---------------------------------------------------------------------------------
    def tags(self) -> list[str]:
        """Every tag, following ``Link: <...>; rel="next"`` pagination."""
        from dockyard.image.reference import validate_tag
        import json

        out: list[str] = []
        path = "/tags/list"
        for _ in range(10000):
            resp = self._request("GET", path)
            if resp.status != 200:
                raise error_for(resp, self._what("GET", "/tags/list"))
            body = resp.read(_TAGS_MAX)
            try:
                tags = json.loads(body).get("tags") or []
            except (ValueError, AttributeError):
                raise RegistryError(f"{self._what('GET', '/tags/list')}: not a tag list") from None
            for t in tags:
                if not isinstance(t, str):
                    raise RegistryError(f"{self._what('GET', '/tags/list')}: not a tag list")
                out.append(validate_tag(t))
            m = re.search(r'<([^>]+)>\s*;\s*rel="?next"?', resp.header("Link") or "")
            if not m:
                break
            nxt = urljoin(self.client.base + "/", m.group(1))
            if urlsplit(nxt).netloc != urlsplit(self.client.base).netloc:
                break
            path = nxt
        return out

