"""The registry's logical storage: blobs, repository links, uploads, manifests, tags, referrers.

Layout (keys on any :class:`~dockyard.registry.storage.base.Driver`)::

    blobs/<alg>/<hex[:2]>/<hex>                       content, stored once for every repository
    repositories/<name>/_layers/<alg>/<hex>            "this repository has this blob" (empty link)
    repositories/<name>/_manifests/revisions/<alg>/<hex>   {"mediaType", "size", "subject"}
    repositories/<name>/_manifests/tags/<tag>          the digest the tag points to
    repositories/<name>/_referrers/<alg>/<subject-hex>/<alg>-<hex>   descriptor JSON

A blob is only readable through a repository that links it, so a private repository's layers are
never served through another one. Uploads are staged locally (``<local>/uploads/<id>/data``), hashed
while they arrive, verified, then handed to the driver: a blob is visible only once complete.

Garbage collection can run while the registry serves. Every write that makes a blob needed
(commit, mount, manifest put) runs under a *shared* lock and records the digests it needs in a
journal; the collector deletes only under the *exclusive* lock, after adding the journal's entries
to what it marked. So a blob is either marked, journaled, or not needed by anyone.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Protocol

from dockyard.content import digest as dg
from dockyard.registry import manifests as mf
from dockyard.registry.errors import NO_DETAIL, RegistryError
from dockyard.registry.names import check_digest, split_reference
from dockyard.registry.storage.base import Driver, RangeReader, Stat

BUFFER_SIZE = 1 << 20
_buffers = threading.local()


def _buffer() -> memoryview:
    """One reusable 1 MiB receive buffer per thread: memory stays flat however big the blob."""
    buf = getattr(_buffers, "buf", None)
    if buf is None:
        buf = _buffers.buf = memoryview(bytearray(BUFFER_SIZE))
    return buf


class Body(Protocol):
    """A request body being received (Content-Length or chunked)."""

    def readinto(self, buf: memoryview) -> int: ...


@dataclass
class Upload:
    id: str
    repo: str
    size: int
    started: float


@dataclass
class ManifestInfo:
    digest: str
    media_type: str
    size: int
    subject: str | None
    mtime: float


@dataclass
class TagInfo:
    name: str
    digest: str
    mtime: float


def blob_key(digest: str) -> str:
    alg, hex_ = dg.parse(digest)
    return f"blobs/{alg}/{hex_[:2]}/{hex_}"


def _repo(name: str) -> str:
    return f"repositories/{name}"


def layer_key(repo: str, digest: str) -> str:
    alg, hex_ = dg.parse(digest)
    return f"{_repo(repo)}/_layers/{alg}/{hex_}"


def revision_key(repo: str, digest: str) -> str:
    alg, hex_ = dg.parse(digest)
    return f"{_repo(repo)}/_manifests/revisions/{alg}/{hex_}"


def tag_key(repo: str, tag: str) -> str:
    return f"{_repo(repo)}/_manifests/tags/{tag}"


def tagged_marker_key(repo: str) -> str:
    """Present once ``repo`` has had a tag: its tag list exists (maybe empty), as CNCF's tags dir."""
    return f"{_repo(repo)}/_manifests/tagged"


def referrer_key(repo: str, subject: str, digest: str) -> str:
    salg, shex = dg.parse(subject)
    alg, hex_ = dg.parse(digest)
    return f"{_repo(repo)}/_referrers/{salg}/{shex}/{alg}-{hex_}"


class RegistryStore:
    """Everything the HTTP API, GC and retention do to storage goes through here."""

    def __init__(self, driver: Driver, *, max_blob_size: int = 0) -> None:
        self.driver = driver
        self.max_blob_size = max_blob_size
        self.uploads_dir = driver.local_dir / "uploads"
        self.uploads_dir.mkdir(parents=True, exist_ok=True)
        self._lock_path = driver.local_dir / "gc.lock"
        self._journal_path = driver.local_dir / "gc-journal"
        self._hashes: dict[str, tuple[int, "hashlib._Hash"]] = {}
        self._hashes_lock = threading.Lock()
        self._tag_locks: dict[str, threading.Lock] = {}

    # ---- concurrency with the garbage collector ---------------------------------------
    @contextmanager
    def _flock(self, mode: int) -> Iterator[None]:
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, mode)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def writing(self):
        """Shared lock held by every write that makes blobs needed (many at once)."""
        return self._flock(fcntl.LOCK_SH)

    def collecting(self):
        """Exclusive lock held by the garbage collector while it deletes."""
        return self._flock(fcntl.LOCK_EX)

    def journal(self, repo: str, digests: list[str]) -> None:
        """Record that ``repo`` needs ``digests`` (call under :meth:`writing`)."""
        line = "".join(f"{repo} {d}\n" for d in digests).encode()
        fd = os.open(self._journal_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    def rotate_journal(self) -> Path:
        """Start a new journal (call under :meth:`collecting`); returns the old one's path."""
        old = self._journal_path.with_name(f"gc-journal.{uuid.uuid4().hex}")
        try:
            os.rename(self._journal_path, old)
        except FileNotFoundError:
            old.touch()
        return old

    def read_journal(self) -> set[tuple[str, str]]:
        try:
            text = self._journal_path.read_text()
        except FileNotFoundError:
            return set()
        out = set()
        for line in text.splitlines():
            repo, _, digest = line.partition(" ")
            if digest:
                out.add((repo, digest))
        return out

    # ---- blobs ----------------------------------------------------------------------------
    def blob_stat(self, digest: str) -> Stat | None:
        return self.driver.stat(blob_key(digest))

    def repo_blob_stat(self, repo: str, digest: str) -> Stat | None:
        """The blob's stat if ``repo`` links it and its bytes exist."""
        if self.driver.stat(layer_key(repo, digest)) is None:
            return None
        return self.blob_stat(digest)

    def open_blob(self, digest: str, start: int, length: int) -> RangeReader:
        return self.driver.open_range(blob_key(digest), start, length)

    def mount_blob(self, repo: str, digest: str, from_repo: str) -> bool:
        """Link a blob of ``from_repo`` into ``repo`` without copying; False if it is not there."""
        with self.writing():
            if self.repo_blob_stat(from_repo, digest) is None:
                return False
            self.journal(repo, [digest])
            self.driver.put(layer_key(repo, digest), b"")
        return True

    def unlink_blob(self, repo: str, digest: str) -> bool:
        """DELETE of a blob: drop the repository's link (GC frees the bytes when unused)."""
        return self.driver.delete(layer_key(repo, digest))

    # ---- uploads --------------------------------------------------------------------------
    def _upload_dir(self, upload_id: str) -> Path:
        return self.uploads_dir / upload_id

    def start_upload(self, repo: str) -> Upload:
        upload_id = str(uuid.uuid4())
        d = self._upload_dir(upload_id)
        d.mkdir()
        started = time.time()
        (d / "meta.json").write_text(json.dumps({"repo": repo, "started": started}))
        (d / "data").touch()
        return Upload(upload_id, repo, 0, started)

    def get_upload(self, repo: str, upload_id: str) -> Upload:
        try:
            uuid.UUID(upload_id)
            meta = json.loads((self._upload_dir(upload_id) / "meta.json").read_text())
            if meta.get("failed") and meta.get("repo") == repo:
                raise RegistryError("BLOB_UPLOAD_INVALID", "upload failed its digest check", status=404,
                                    detail=NO_DETAIL)
            size = os.stat(self._upload_dir(upload_id) / "data").st_size
        except (ValueError, OSError):
            raise RegistryError("BLOB_UPLOAD_UNKNOWN", f"upload {upload_id!r} not found",
                                detail={}) from None
        if meta.get("repo") != repo:
            raise RegistryError("BLOB_UPLOAD_UNKNOWN", f"upload {upload_id!r} not found in {repo}",
                                detail={})
        return Upload(upload_id, repo, size, float(meta.get("started", 0)))

    def uploads(self) -> list[tuple[Upload, float]]:
        """Every upload in progress with the time its data last changed (for GC)."""
        out = []
        for name in os.listdir(self.uploads_dir):
            try:
                meta = json.loads((self.uploads_dir / name / "meta.json").read_text())
                st = os.stat(self.uploads_dir / name / ("meta.json" if meta.get("failed") else "data"))
            except (OSError, ValueError):
                continue
            out.append((Upload(name, meta.get("repo", ""), st.st_size, meta.get("started", 0)),
                        st.st_mtime))
        return out

    def append(self, upload: Upload, body: Body, start: int | None = None) -> int:
        """Append a request body to an upload, hashing as it arrives; returns the new size.

        ``start`` is the offset the client says this chunk begins at (``Content-Range``); a chunk
        that does not continue the upload exactly is refused with 416 and the current range. Bytes
        received before a broken connection stay, so the client can ask where to resume.
        """
        path = self._upload_dir(upload.id) / "data"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        except FileNotFoundError:
            raise RegistryError("BLOB_UPLOAD_UNKNOWN", detail={}) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
            if start is not None and start != size:
                raise RegistryError("BLOB_UPLOAD_INVALID", f"chunk starts at {start} but the upload "
                                    f"has {size} bytes", status=416, headers=_range_headers(upload, size))
            hasher = self._hasher(upload.id, path, size)
            buf = _buffer()
            limit = self.max_blob_size
            try:
                while True:
                    n = body.readinto(buf)
                    if not n:
                        break
                    chunk = buf[:n]
                    while chunk:
                        chunk = chunk[os.write(fd, chunk):]
                    hasher.update(buf[:n])
                    size += n
                    if limit and size > limit:
                        raise RegistryError("SIZE_INVALID", f"blob exceeds the registry's limit of "
                                            f"{limit} bytes", status=413)
            finally:
                with self._hashes_lock:
                    self._hashes[upload.id] = (size, hasher)
            upload.size = size
            return size
        finally:
            os.close(fd)

    def _hasher(self, upload_id: str, path: Path, size: int) -> "hashlib._Hash":
        """The running sha256 of an upload; re-hashed from disk if this process lost track."""
        with self._hashes_lock:
            cached = self._hashes.pop(upload_id, None)
        if cached is not None and cached[0] == size:
            return cached[1]
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while size and (chunk := f.read(min(BUFFER_SIZE, size))):
                h.update(chunk)
                size -= len(chunk)
        return h

    def finish_upload(self, upload: Upload, digest: str, body: Body | None = None) -> Stat:
        """Append the last chunk, verify the digest and make the blob visible in the repository."""
        check_digest(digest)
        if body is not None:
            self.append(upload, body)
        path = self._upload_dir(upload.id) / "data"
        alg, _ = dg.parse(digest)
        try:
            size = os.stat(path).st_size
        except FileNotFoundError:
            raise RegistryError("BLOB_UPLOAD_UNKNOWN", detail={}) from None
        if alg == "sha256":
            actual = "sha256:" + self._hasher(upload.id, path, size).hexdigest()
        else:
            with open(path, "rb") as f:
                actual, _ = dg.from_stream(f, alg)
        if actual != digest:
            self.cancel_upload(upload)
            # as the CNCF registry, the failed upload's URL stays known as invalid (not unknown);
            # GC removes the leftover directory with the abandoned uploads
            d = self._upload_dir(upload.id)
            d.mkdir(exist_ok=True)
            (d / "meta.json").write_text(json.dumps({"repo": upload.repo, "started": upload.started,
                                                     "failed": True}))
            raise RegistryError("DIGEST_INVALID", f"upload content has digest {actual}, not {digest}",
                                detail={"Digest": digest, "Reason": {}})
        key = blob_key(digest)
        with self.writing():
            self.journal(upload.repo, [digest])
            if self.driver.stat(key) is None:
                self.driver.ingest(str(path), key, size, digest.split(":", 1)[1] if alg == "sha256" else None)
            else:
                self.driver.touch(key)
            self.driver.put(layer_key(upload.repo, digest), b"")
        self.cancel_upload(upload)
        return Stat(size, time.time())

    def put_blob(self, repo: str, body: Body | None, digest: str) -> Stat:
        """A monolithic upload (POST with ``?digest=``): a one-shot upload session."""
        upload = self.start_upload(repo)
        try:
            return self.finish_upload(upload, digest, body)
        finally:
            self.cancel_upload(upload)

    def cancel_upload(self, upload: Upload) -> None:
        with self._hashes_lock:
            self._hashes.pop(upload.id, None)
        shutil.rmtree(self._upload_dir(upload.id), ignore_errors=True)

    # ---- manifests and tags ---------------------------------------------------------------
    def _tag_lock(self, repo: str) -> threading.Lock:
        with self._hashes_lock:
            return self._tag_locks.setdefault(repo, threading.Lock())

    def put_manifest(self, repo: str, reference: str, data: bytes, content_type: str | None,
                     is_immutable: Callable[[str], bool] = lambda tag: False) -> mf.ParsedManifest:
        """Verify and store a manifest, then point ``reference`` (tag or digest) at it."""
        tag, ref_digest = split_reference(reference)
        parsed = mf.parse(data, content_type)
        if ref_digest is not None:
            alg, _ = dg.parse(ref_digest)
            actual = parsed.digest if alg == "sha256" else dg.from_bytes(data, alg)
            if actual != ref_digest:
                raise RegistryError("DIGEST_INVALID", f"manifest digest is {actual}, not {ref_digest}")
        digest = ref_digest or parsed.digest
        with self.writing(), self._tag_lock(repo):
            missing = []
            for d in parsed.blobs:
                st = self.repo_blob_stat(repo, d.digest)
                if st is None:
                    missing.append(d.digest)
                elif st.size != d.size:
                    raise RegistryError("MANIFEST_INVALID", f"blob {d.digest} has {st.size} bytes, "
                                        f"the manifest says {d.size}", detail={"digest": d.digest})
            for d in parsed.manifests:
                if self.driver.stat(revision_key(repo, d.digest)) is None:
                    missing.append(d.digest)
            if missing:
                raise RegistryError("MANIFEST_BLOB_UNKNOWN", f"manifest references {missing[0]}, "
                                    f"which is not in repository {repo}"
                                    + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""),
                                    detail=missing[0])
            if tag is not None:
                current = self.driver.get(tag_key(repo, tag))
                if current is not None and current.decode() != digest and is_immutable(tag):
                    raise RegistryError("DENIED", public=True, message=f"tag {tag!r} of {repo} is immutable: it cannot be "
                                        "overwritten", detail={"tag": tag})
            self.journal(repo, [digest, *(d.digest for d in parsed.blobs),
                                *(d.digest for d in parsed.manifests)])
            key = blob_key(digest)
            if self.driver.stat(key) is None:
                self.driver.put(key, data)
            meta = {"mediaType": parsed.media_type, "size": len(data)}
            if parsed.subject is not None:
                meta["subject"] = parsed.subject.digest
            self.driver.put(revision_key(repo, digest), json.dumps(meta).encode())
            if parsed.subject is not None:
                desc = parsed.descriptor()
                desc["digest"] = digest
                self.driver.put(referrer_key(repo, parsed.subject.digest, digest),
                                json.dumps(desc).encode())
            if tag is not None:
                self.driver.put(tag_key(repo, tag), digest.encode())
                if self.driver.stat(tagged_marker_key(repo)) is None:
                    self.driver.put(tagged_marker_key(repo), b"")
        return parsed

    def resolve(self, repo: str, reference: str) -> str | None:
        """The digest a tag or digest reference names in ``repo``, or None."""
        tag, digest = split_reference(reference)
        if tag is not None:
            raw = self.driver.get(tag_key(repo, tag))
            if raw is None:
                return None
            digest = raw.decode().strip()
        return digest

    def manifest_info(self, repo: str, digest: str) -> ManifestInfo | None:
        key = revision_key(repo, digest)
        raw = self.driver.get(key)
        if raw is None:
            return None
        try:
            meta = json.loads(raw)
        except ValueError:
            return None
        st = self.driver.stat(key)
        return ManifestInfo(digest, meta.get("mediaType", mf.OCI_MANIFEST), int(meta.get("size", 0)),
                            meta.get("subject"), st.mtime if st else 0.0)

    def get_manifest(self, repo: str, reference: str) -> tuple[ManifestInfo, bytes]:
        digest = self.resolve(repo, reference)
        info = self.manifest_info(repo, digest) if digest else None
        data = self.driver.get(blob_key(digest)) if info else None
        if info is None or data is None:
            raise RegistryError("MANIFEST_UNKNOWN", f"manifest {reference!r} not found in {repo}",
                                detail={"Name": repo, "Revision": reference} if ":" in reference
                                else {"Tag": reference})
        return info, data

    def tags(self, repo: str) -> list[TagInfo]:
        out = []
        prefix = f"{_repo(repo)}/_manifests/tags/"
        for key, st in self.driver.walk(prefix.rstrip("/")):
            name = key[len(prefix):]
            raw = self.driver.get(key)
            if raw is not None and "/" not in name:
                out.append(TagInfo(name, raw.decode().strip(), st.mtime))
        return out

    def tag_names(self, repo: str) -> list[str]:
        return sorted(self.driver.list_dir(f"{_repo(repo)}/_manifests/tags"))

    def manifests(self, repo: str) -> list[ManifestInfo]:
        out = []
        prefix = f"{_repo(repo)}/_manifests/revisions/"
        for key, _st in self.driver.walk(prefix.rstrip("/")):
            alg, _, hex_ = key[len(prefix):].partition("/")
            info = self.manifest_info(repo, f"{alg}:{hex_}") if dg.is_digest(f"{alg}:{hex_}") else None
            if info is not None:
                out.append(info)
        return out

    def delete_tag(self, repo: str, tag: str, is_immutable: Callable[[str], bool]) -> None:
        with self._tag_lock(repo):
            if self.driver.stat(tag_key(repo, tag)) is None:
                raise RegistryError("MANIFEST_UNKNOWN", f"tag {tag!r} not found in {repo}",
                                    detail={"name": repo, "reference": tag})
            if is_immutable(tag):
                raise RegistryError("DENIED", public=True, message=f"tag {tag!r} of {repo} is immutable: it cannot be "
                                    "deleted", detail={"tag": tag})
            self.driver.delete(tag_key(repo, tag))

    def delete_manifest(self, repo: str, digest: str, is_immutable: Callable[[str], bool]) -> None:
        """Delete a manifest and every tag pointing at it (refused if one of them is immutable)."""
        with self._tag_lock(repo):
            info = self.manifest_info(repo, digest)
            if info is None:
                raise RegistryError("MANIFEST_UNKNOWN", f"manifest {digest} not found in {repo}")
            pointing = [t.name for t in self.tags(repo) if t.digest == digest]
            protected = [t for t in pointing if is_immutable(t)]
            if protected:
                raise RegistryError("DENIED", public=True, message=f"manifest {digest} is tagged {protected[0]!r}, an "
                                    "immutable tag: it cannot be deleted", detail={"tags": protected})
            for t in pointing:
                self.driver.delete(tag_key(repo, t))
            if info.subject:
                self.driver.delete(referrer_key(repo, info.subject, digest))
            self.driver.delete(revision_key(repo, digest))

    def referrers(self, repo: str, subject: str) -> list[dict]:
        salg, shex = dg.parse(subject)
        prefix = f"{_repo(repo)}/_referrers/{salg}/{shex}"
        out = []
        for name in sorted(self.driver.list_dir(prefix)):
            raw = self.driver.get(f"{prefix}/{name}")
            if raw is None:
                continue
            try:
                desc = json.loads(raw)
            except ValueError:
                continue
            if self.driver.stat(revision_key(repo, desc.get("digest", ""))) is not None:
                out.append(desc)
        return out

    # ---- repositories -------------------------------------------------------------------
    def has_tag_list(self, repo: str) -> bool:
        """Whether ``repo`` has ever been tagged (the CNCF registry's NAME_UNKNOWN otherwise)."""
        return self.driver.stat(tagged_marker_key(repo)) is not None

    def repository_exists(self, repo: str) -> bool:
        children = self.driver.list_dir(_repo(repo))
        return "_manifests" in children or "_layers" in children

    def repositories(self) -> list[str]:
        out: list[str] = []

        def visit(prefix: str, name: str) -> None:
            children = self.driver.list_dir(prefix)
            if "_manifests" in children or "_layers" in children:
                out.append(name)
            for child in children:
                if not child.startswith("_"):
                    visit(f"{prefix}/{child}", f"{name}/{child}" if name else child)

        visit("repositories", "")
        return sorted(out)

    def layer_links(self, repo: str) -> list[tuple[str, float]]:
        prefix = f"{_repo(repo)}/_layers/"
        out = []
        for key, st in self.driver.walk(prefix.rstrip("/")):
            alg, _, hex_ = key[len(prefix):].partition("/")
            out.append((f"{alg}:{hex_}", st.mtime))
        return out

    def all_blobs(self) -> list[tuple[str, Stat]]:
        out = []
        for key, st in self.driver.walk("blobs"):
            parts = key.split("/")
            if len(parts) == 4:
                out.append((f"{parts[1]}:{parts[3]}", st))
        return out

    def remove_repository_if_empty(self, repo: str) -> bool:
        if not self.driver.list_dir(f"{_repo(repo)}/_manifests/revisions") and \
                not self.driver.list_dir(f"{_repo(repo)}/_layers"):
            for sub in ("_manifests", "_layers", "_referrers"):
                self.driver.delete_tree(f"{_repo(repo)}/{sub}")
            return True
        return False


def _range_headers(upload: Upload, size: int) -> dict[str, str]:
    return {"Location": f"/v2/{upload.repo}/blobs/uploads/{upload.id}",
            "Range": f"0-{max(size - 1, 0)}", "Docker-Upload-UUID": upload.id}


def upload_headers(upload: Upload) -> dict[str, str]:
    return _range_headers(upload, upload.size)
