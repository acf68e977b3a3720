"""``pull``: a manifest from a registry becomes a local image, its bytes kept exactly as served.

1. GET the manifest (by tag or digest), verified against the digest asked for or announced. An
   index (multi-platform) is resolved to the manifest for ``--platform`` (default: the host's).
2. GET the config, check the platform, then the layers, several at a time, each straight into
   the content store under an ingest ref named after its digest: a transfer that breaks keeps
   its partial data, and the next attempt (in this pull, or a later one) continues with
   ``Range: bytes=<offset>-``. A blob the store already has is not fetched at all. Every blob is
   committed only if it has the announced size and digest.
3. While later layers still download, earlier ones are unpacked into snapshots in order (as
   docker extracts), then the image is registered with its tag and ``name@digest``.

Compressed layers stay compressed in the store, so digests stay the registry's and a later
``push`` sends the same bytes. A failure other than a broken connection (a digest mismatch, a
missing blob, a refusal) removes what this pull stored; a broken connection keeps it to resume.
"""
from __future__ import annotations

import json
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dockyard.content import digest as dg
from dockyard.distribution.follow import BlobFeed, FeedBroken, FollowingReader
from dockyard.distribution.errors import RegistryError, TransferError, Unauthorized
from dockyard.distribution.operation import Operation
from dockyard.distribution.progress import Progress
from dockyard.distribution.transport import quote_url
from dockyard.errors import DigestMismatch, DockyardError, InvalidContent, NotFound
from dockyard.image import mediatypes as mt
from dockyard.image import platform as plat

if TYPE_CHECKING:  # pragma: no cover
    from dockyard.content.store import Lease, Writer
    from dockyard.distribution.registry import Manifest, Repository
    from dockyard.distribution.service import DistributionService
    from dockyard.image.reference import Reference
    from dockyard.image.service import Image

CONCURRENCY = 3  # docker's max-concurrent-downloads
_BUFFER = 1 << 20
_LOCK_WAIT = 3600.0


def _retries() -> int:
    try:
        return max(0, int(os.environ.get("DOCKYARD_PULL_RETRIES", "4")))
    except ValueError:
        return 4


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int


def descriptor(obj: Any, where: str) -> Descriptor:
    """A descriptor from a remote document, checked before it is used as a file name or a size."""
    if not isinstance(obj, dict):
        raise InvalidContent(f"{where} is not a descriptor")
    digest, size, media_type = obj.get("digest"), obj.get("size"), obj.get("mediaType") or ""
    if not isinstance(digest, str) or not dg.is_digest(digest):
        raise InvalidContent(f"{where} has an invalid digest: {digest!r}")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InvalidContent(f"{where} has an invalid size: {size!r}")
    if not isinstance(media_type, str):
        raise InvalidContent(f"{where} has an invalid media type")
    return Descriptor(media_type, digest, size)


@dataclass
class PullOutcome:
    image: "Image"
    digest: str          # what the registry served for the reference (index or manifest)
    updated: bool        # False: the name already pointed at this image


@dataclass
class _Blob:
    """One blob being downloaded: what it is, its progress line, and who follows its bytes."""

    desc: Descriptor
    layer_id: str | None
    feed: BlobFeed


class _Cancelled(TransferError):
    """Another blob of the same pull failed; this transfer stops (its partial data is kept)."""


class Puller(Operation):
    """Pulls references from registries into one client's stores."""

    def __init__(self, service: "DistributionService", progress: Progress, platform: str | None = None) -> None:
        super().__init__(service, progress, platform)
        self._stop = threading.Event()

    # -- one reference ------------------------------------------------------------------------
    def pull(self, ref: "Reference") -> PullOutcome:
        registry = self.svc.registry(ref.domain)
        repo = registry.repository(ref.path)
        previous = self._previous(ref)
        committed: list[str] = []
        self._stop.clear()
        try:
            with self.content.lease() as lease:
                top, image = self._pull(ref, repo, lease, committed)
        except TransferError:
            raise  # keep what arrived: the next pull resumes from it
        except DockyardError:
            self._forget(committed)  # refused or corrupt: keep nothing (Ctrl-C keeps it, to resume)
            raise
        self.progress.message(f"Digest: {top.digest}")
        return PullOutcome(image, top.digest, previous != image.id)

    def _previous(self, ref: "Reference") -> str | None:
        try:
            return self.client.images.resolve_id(str(ref))
        except DockyardError:
            return None

    def _pull(self, ref: "Reference", repo: "Repository", lease: "Lease",
              committed: list[str]) -> tuple["Manifest", "Image"]:
        top = self._manifest(ref, repo, ref.digest or ref.tag or "latest")
        self.progress.message(f"{ref.familiar if ref.digest else ref.tag}: Pulling from {ref.path}")
        self._store(top, lease, committed)
        doc = _json(top.data, f"manifest {top.digest}")
        kind = mt.detect_manifest_type(doc)
        manifest_digest, manifest = top.digest, doc
        if mt.is_index(kind):
            entries = doc.get("manifests")
            if not isinstance(entries, list):
                raise InvalidContent(f"index {top.digest} has no manifest list")
            entry = plat.select([e for e in entries if isinstance(e, dict)], plat.parse(self.platform))
            child = self._manifest(ref, repo, descriptor(entry, f"index {top.digest} entry").digest)
            manifest_digest = child.digest
            manifest = _json(child.data, f"manifest {child.digest}")
            if not mt.is_manifest(mt.detect_manifest_type(manifest)):
                raise InvalidContent(f"index {top.digest} points at another index ({child.digest}); nested indexes are not supported")
            self._store(child, lease, committed)
        config = descriptor(manifest.get("config"), f"manifest {manifest_digest} config")
        layers = [descriptor(d, f"manifest {manifest_digest} layer {i}")
                  for i, d in enumerate(manifest.get("layers") or [])]
        for layer in layers:
            mt.layer_compression(layer.media_type)  # an unknown layer type fails before any download
        self._download(repo, _Blob(config, None, BlobFeed()), lease, committed)
        config_doc = _json(self.content.read_bytes(config.digest), f"image config {config.digest}")
        self._check_platform(ref, config_doc, is_index=mt.is_index(kind))
        diff_ids = (config_doc.get("rootfs") or {}).get("diff_ids") or []
        if len(diff_ids) != len(layers) or not all(isinstance(d, str) and dg.is_digest(d) for d in diff_ids):
            raise InvalidContent(f"image config {config.digest} lists {len(diff_ids)} layers "
                                 f"but manifest {manifest_digest} has {len(layers)}")
        # like docker, say nothing about the layers of an image that is already here
        known = self.client.images.exists(config.digest)
        downloaded = self._layers(repo, layers, diff_ids, lease, committed, quiet_existing=known)
        names = [ref.tagged] if ref.tag and not ref.digest else []
        image = self.client.images.register(top.digest, names, platform=self.platform, lease=lease,
                                            repo_digest_names=[f"{ref.name}@{top.digest}"])
        for layer in layers:
            if layer.digest in downloaded:
                self.progress.layer(dg.short_id(layer.digest), "Pull complete")
        for d in [config, *layers]:
            self.svc.records.seen(d.digest, ref.domain, ref.path)
        return top, image

    def _store(self, manifest: "Manifest", lease: "Lease", committed: list[str]) -> None:
        if not self.content.exists(manifest.digest):
            committed.append(manifest.digest)
        self.content.write_bytes(manifest.data, expected=manifest.digest, lease=lease)

    def _manifest(self, ref: "Reference", repo: "Repository", reference: str) -> "Manifest":
        try:
            return repo.get_manifest(reference)
        except RegistryError as exc:
            raise _pull_error(ref, exc) from None

    def _check_platform(self, ref: "Reference", config_doc: dict, is_index: bool) -> None:
        if not self.platform or is_index:
            return
        want = plat.parse(self.platform)
        have = {k: config_doc.get(k) or "" for k in ("os", "architecture", "variant")}
        if not want.matches(have):
            actual = "/".join(v for v in (have["os"], have["architecture"], have["variant"]) if v)
            raise NotFound(f"image with reference {ref.familiar} was found but does not match the "
                           f"specified platform: wanted {want}, actual: {actual}")

    # -- layers -------------------------------------------------------------------------------
    def _layers(self, repo: "Repository", layers: list[Descriptor], diff_ids: list[str],
                lease: "Lease", committed: list[str], quiet_existing: bool = False) -> set[str]:
        """Download missing layers concurrently while unpacking them in order as they arrive."""
        from dockyard.snapshot.store import chain_id

        need: dict[str, _Blob] = {}
        for layer in layers:
            short = dg.short_id(layer.digest)
            if self.content.exists(layer.digest):
                lease.add("content", layer.digest)
                if not quiet_existing:
                    self.progress.layer(short, "Already exists")
            elif layer.digest not in need:
                need[layer.digest] = _Blob(layer, short, BlobFeed())
                self.progress.layer(short, "Pulling fs layer")
        for blob in list(need.values())[CONCURRENCY:]:
            self.progress.layer(blob.layer_id or "", "Waiting")
        futures: dict[str, Future[bool]] = {}
        pool = ThreadPoolExecutor(max_workers=max(1, min(CONCURRENCY, len(need))), thread_name_prefix="pull")
        try:
            for digest, blob in need.items():
                futures[digest] = pool.submit(self._download, repo, blob, lease, committed)
            snaps = self.client.snapshots
            parent: str | None = None
            followed: set[str] = set()
            for i, layer in enumerate(layers):
                cid = chain_id(diff_ids[: i + 1])
                fut = futures.get(layer.digest)
                if not snaps.has(cid):
                    if fut is not None and layer.digest not in followed:
                        followed.add(layer.digest)
                        self._unpack_following(need[layer.digest], fut, parent, diff_ids[i], lease)
                    else:
                        if fut is not None:
                            fut.result()
                        self._unpack_stored(layer, parent, diff_ids[i], lease)
                if fut is not None:
                    fut.result()
                parent = cid
        except BaseException:
            self._stop.set()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return {d for d, f in futures.items() if f.done() and not f.cancelled() and f.exception() is None and f.result()}

    def _unpack_stored(self, layer: Descriptor, parent: str | None, diff_id: str, lease: "Lease") -> None:
        with self.content.open(layer.digest) as blob:
            self.client.snapshots.unpack(parent, diff_id, blob, layer.media_type, lease=lease)

    def _unpack_following(self, blob: "_Blob", fut: "Future[bool]", parent: str | None, diff_id: str,
                          lease: "Lease") -> None:
        """Unpack a layer from its download as the bytes arrive; the download's error wins."""
        try:
            with FollowingReader(blob.feed) as stream:
                self.client.snapshots.unpack(parent, diff_id, stream, blob.desc.media_type, lease=lease)
        except FeedBroken:
            fut.result()  # raises the download's own error when it failed
            self._unpack_stored(blob.desc, parent, diff_id, lease)
        except BaseException:
            fut.result()  # a download failure explains a failed unpack better than the unpacker
            raise

    def _download(self, repo: "Repository", blob: "_Blob", lease: "Lease", committed: list[str]) -> bool:
        """Fetch one blob into the content store; returns False when it was already there."""
        try:
            done = self._download_into_store(repo, blob, lease, committed)
        except BaseException as exc:
            blob.feed.finish(error=exc)
            raise
        blob.feed.finish(path=str(self.content.blob_path(blob.desc.digest)), size=blob.desc.size)
        return done

    def _download_into_store(self, repo: "Repository", blob: "_Blob", lease: "Lease", committed: list[str]) -> bool:
        desc, layer_id = blob.desc, blob.layer_id
        for round_ in range(3):
            writer = self._writer(desc.digest, lease)
            if writer is None:
                return False
            blob.feed.start(str(writer.dir / "data"), writer.offset)
            resumed = writer.offset > 0
            try:
                self._fill(repo, blob, writer)
            except _RestartFromZero:
                blob.feed.restart()
                continue  # the writer is already emptied
            except TransferError:
                writer.close()  # keep the partial data for the next attempt
                raise
            except BaseException:
                writer.abort()
                raise
            if layer_id:
                self.progress.layer(layer_id, "Verifying Checksum")
            try:
                writer.commit(desc.digest, desc.size)
            except DigestMismatch as exc:
                if resumed and round_ < 2:
                    blob.feed.restart()
                    continue  # the earlier partial data may be what is wrong: once more from zero
                raise DigestMismatch(f"failed to verify blob {desc.digest} from {repo.client.domain}/{repo.path}: "
                                     f"{exc.message}") from None
            committed.append(desc.digest)
            if layer_id:
                self.progress.layer(layer_id, "Download complete")
            return True
        raise TransferError(f"blob {desc.digest}: the registry keeps ignoring Range requests")

    def _writer(self, digest: str, lease: "Lease") -> "Writer | None":
        """The resumable writer for a blob; waits while another process downloads it."""
        deadline = time.monotonic() + _LOCK_WAIT
        while True:
            if self.content.exists(digest):
                lease.add("content", digest)
                return None
            try:
                return self.content.writer(ref=f"pull-{digest}", lease=lease)
            except DockyardError as exc:
                if "locked" not in exc.message or time.monotonic() > deadline:
                    raise
            if self._stop.wait(0.2):
                raise _Cancelled("cancelled")

    def _fill(self, repo: "Repository", blob: "_Blob", writer: "Writer") -> None:
        """Bring the writer to the blob's full size, resuming after broken connections."""
        retries = _retries()
        for attempt in range(retries + 1):
            try:
                self._transfer(repo, blob, writer)
                return
            except (_Cancelled, _RestartFromZero):
                raise
            except TransferError:
                if attempt == retries or self._stop.is_set():
                    raise
                if self._stop.wait(min(2.0, 0.25 * 2 ** attempt)):
                    raise _Cancelled("cancelled") from None

    def _transfer(self, repo: "Repository", blob: "_Blob", writer: "Writer") -> None:
        desc, layer_id = blob.desc, blob.layer_id
        offset = writer.offset
        if offset > desc.size:
            raise DigestMismatch(f"blob {desc.digest}: {offset} bytes already received, more than its size {desc.size}")
        if offset == desc.size:
            return
        try:
            resp = repo.open_blob(desc.digest, offset)
        except RegistryError as exc:
            if exc.status == 404:
                raise NotFound(f"manifest names a blob the registry does not have: {desc.digest} "
                               f"({exc.text})") from None
            raise
        with resp:
            if offset and resp.status == 200:
                # the server ignored Range: take the whole body from the start
                writer.abort()
                raise _RestartFromZero()
            if resp.status == 206:
                got = (resp.header("Content-Range") or "").replace("bytes ", "").split("-", 1)[0].strip()
                if got != str(offset):
                    raise TransferError(f"blob {desc.digest}: asked for bytes from {offset}, "
                                        f"the registry sent {resp.header('Content-Range')!r}")
            want = desc.size - offset
            if resp.length is not None and resp.length != want:
                raise DigestMismatch(f"blob {desc.digest}: the registry sends {resp.length + offset} bytes, "
                                     f"the manifest says {desc.size}")
            buf = bytearray(min(_BUFFER, max(want, 1)))
            view = memoryview(buf)
            while want > 0:
                if self._stop.is_set():
                    raise _Cancelled("cancelled")
                n = resp.readinto(view[: min(len(buf), want)])
                if n == 0:
                    raise TransferError(f"Get {quote_url(resp.url)}: connection closed after "
                                        f"{writer.offset} of {desc.size} bytes")
                writer.write(view[:n])
                blob.feed.wrote(writer.offset)
                want -= n
                if layer_id:
                    self.progress.advance(layer_id, "Downloading", writer.offset, desc.size)

    # -- failure ------------------------------------------------------------------------------
    def _forget(self, committed: list[str]) -> None:
        """Remove the blobs this failed pull stored, unless an image or another operation uses them."""
        if not committed:
            return
        from dockyard.gc import collect

        try:
            removable = set(collect(self.client, dry_run=True)["blobs"])
        except DockyardError:
            return
        for d in committed:
            if d in removable:
                try:
                    self.content.delete(d)
                except DockyardError:
                    pass


class _RestartFromZero(TransferError):
    """The registry ignored our Range request; start the blob over."""

    def __init__(self) -> None:
        super().__init__("restart from zero")


def _json(data: bytes, what: str) -> dict:
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise InvalidContent(f"{what} is not valid JSON") from None
    if not isinstance(doc, dict):
        raise InvalidContent(f"{what} is not a JSON object")
    return doc


def _pull_error(ref: "Reference", exc: RegistryError) -> DockyardError:
    """docker's wording for a manifest that cannot be fetched."""
    if isinstance(exc, Unauthorized) or exc.status == 403 or exc.code == "DENIED":
        return DockyardError(f"pull access denied for {ref.familiar_name}, repository does not exist or "
                             f"may require 'dockyard login': {exc.text}")
    if exc.status == 404:
        return NotFound(f"manifest for {ref.familiar} not found: {exc.text}")
    return exc
