"""``image load``: docker-archive (``docker save``) and OCI image-layout tars, streamed once.

The tar is read once, front to back, and never extracted by name. Each regular file's bytes go,
chunk by chunk, into a content-store writer (hashed there: the only hash an uncompressed layer
ever gets) and — when the file looks like a layer — to a staged unpack running in another
thread (:mod:`dockyard.snapshot.staging`), so that layer N is unpacked while layer N+1 is still
being read. A ``blobs/<alg>/<hex>`` entry must hash to its own name. Only ``manifest.json`` and
``index.json`` are kept in memory; buffers are bounded (a few MiB), whatever the image size.

When the whole archive has been read: one ``syncfs`` makes every blob and staged tree durable,
then the blobs are renamed into place (see :mod:`dockyard.content.durability` for why that
order is crash-safe), ``manifest.json`` or ``index.json`` is interpreted, and the images are
registered — which publishes the staged layers whose diff_ids the images name, and unpacks (from
the content store, verifying) any layer that could not be staged. Member names are never used as
paths, so a hostile archive cannot write anywhere; a blob it omits or corrupts is reported by
name; a hostile layer is refused by the same extractor as every other unpack.
"""
from __future__ import annotations

import json
import posixpath
import tarfile
from typing import TYPE_CHECKING, Any, BinaryIO, Callable, Iterator

from dockyard.content import digest as dg
from dockyard.errors import DigestMismatch, DockyardError, InvalidArgument, InvalidContent
from dockyard.image import mediatypes as mt
from dockyard.image.compression import detect

if TYPE_CHECKING:  # pragma: no cover
    from dockyard.content.store import Lease, Writer
    from dockyard.image.service import ImageService
    from dockyard.snapshot.staging import StagedLayer, StagingArea
    from dockyard.snapshot.tarstream import Entry, TarReader

SMALL = 4 << 20  # largest manifest.json / index.json kept in memory
NAME_ANNOTATIONS = ("io.containerd.image.name", "org.opencontainers.image.ref.name")
IN_MEMORY = frozenset({"manifest.json", "index.json"})  # read back by name: kept, not stored
IGNORED = frozenset({"repositories", "oci-layout"})  # docker's legacy metadata: neither
BACKGROUND_WRITE = 8 << 20  # blobs this big are written by a second thread while hashed
PENDING_LIMIT = 128  # unfinished blob writers (2 fds each) before an intermediate sync
_COMPRESSED_MAGIC = (b"\x1f\x8b", b"\x28\xb5\x2f\xfd", b"BZh", b"\xfd7zXZ\x00")


class _Archive:
    """What one pass over the tar found: path → blob digest/size, small files, links."""

    def __init__(self, read_blob: Callable[[str], bytes]) -> None:
        self.files: dict[str, tuple[str, int]] = {}
        self.small: dict[str, bytes] = {}
        self.links: dict[str, str] = {}
        self._read_blob = read_blob

    def resolve(self, path: str, depth: int = 0) -> tuple[str, int]:
        path = _norm(path)
        if path in self.files:
            return self.files[path]
        if path in self.links and depth < 16:
            return self.resolve(self.links[path], depth + 1)
        raise InvalidContent(f"invalid archive: {path} is referenced but not in the archive")

    def text(self, path: str, depth: int = 0) -> bytes | None:
        path = _norm(path)
        if path in self.small:
            return self.small[path]
        if path in self.links and depth < 16:
            return self.text(self.links[path], depth + 1)
        if path in self.files:  # a link to a file, or one too big to keep: from the store
            return self._read_blob(self.files[path][0])
        return None


def _norm(path: str) -> str:
    """A member name as a canonical relative path (names are only ever used as keys)."""
    while path.startswith("./"):
        path = path[2:]
    return posixpath.normpath("/" + path).lstrip("/")


def _looks_like_layer(head: bytes) -> bool:
    """Whether a file starting with ``head`` (≥ 512 bytes unless the file is shorter) is worth
    unpacking as it streams: compressed data, or a tar header (an empty tar is all zeros)."""
    from dockyard.snapshot.tarstream import BLOCK, parse_header

    if head.startswith(_COMPRESSED_MAGIC):
        return True
    if len(head) < BLOCK:
        return False
    block = head[:BLOCK]
    if not any(block):
        return True
    try:
        parse_header(block)
    except (tarfile.TarError, ValueError):
        return False
    return True


def _head_first(chunks: Iterator[bytes], size: int) -> Iterator[bytes]:
    """The same bytes, regrouped so that the first chunk holds at least one tar block (or the
    whole file, if it is shorter): enough to tell a layer from a JSON document."""
    from dockyard.snapshot.tarstream import BLOCK

    head: list[bytes] = []
    held = 0
    it = iter(chunks)
    for chunk in it:
        head.append(chunk)
        held += len(chunk)
        if held >= BLOCK or held >= size:
            break
    if head:
        yield b"".join(head) if len(head) > 1 else head[0]
    yield from it


class _Loader:
    """One pass over the archive: blobs into pending writers, layers into staged unpacks."""

    def __init__(self, service: "ImageService", lease: "Lease", area: "StagingArea") -> None:
        self.service = service
        self.content = service.content
        self.lease = lease
        self.area = area
        self.arc = _Archive(self.content.read_bytes)
        self.pending: list[tuple["Writer", str, int]] = []

    # -- the pass -----------------------------------------------------------------------
    def read(self, stream: BinaryIO) -> _Archive:
        """Read the whole archive; on return every blob in it is committed to the store."""
        from dockyard.snapshot.layerstream import LayerStream
        from dockyard.snapshot.tarstream import TarReader

        label = "invalid archive"
        seen = False
        outer = None
        try:
            # a compressed archive (docker save | gzip) is decompressed in a second thread; an
            # uncompressed one is read ahead there, which overlaps the reads with the hashing
            outer = LayerStream(stream, "", label, algorithm=None, prefetch=True)
            reader = TarReader(outer.read_chunk, label)
            for entry in reader:
                seen = True
                self._entry(entry, reader)
            self.commit()
        except InvalidContent as exc:
            if not seen and "at offset 0 (" in exc.message:
                detail = exc.message.split("at offset 0 (", 1)[1].rstrip(")")
                raise InvalidContent(f"{label}: not a tar file ({detail})") from None
            raise
        except OSError as exc:
            if isinstance(exc, DockyardError):
                raise
            raise InvalidContent(f"{label}: {_first_line(exc)}") from None
        finally:
            if outer is not None:
                outer.close()
            for writer, _, _ in self.pending:
                writer.abort()
            self.pending.clear()
        return self.arc

    def _entry(self, entry: "Entry", reader: "TarReader") -> None:
        from dockyard.snapshot.tarstream import REGULAR

        name = _norm(entry.name)
        if entry.type == tarfile.SYMTYPE:
            self.arc.links[name] = _norm(posixpath.join(posixpath.dirname(name), entry.linkname))
            return
        if entry.type == tarfile.LNKTYPE:
            self.arc.links[name] = _norm(entry.linkname)
            return
        if entry.type not in REGULAR:
            return
        if name in IN_MEMORY and entry.size <= SMALL:
            data = b"".join(reader.data_chunks(name))
            self.arc.small[name] = data
            return
        if name in IGNORED or name.endswith("/json") or name.endswith("/VERSION"):
            return  # docker's v1 metadata: not needed, data skipped by the reader
        expected = _blob_digest_from_path(name)
        if expected is not None and self._have(expected, entry.size):
            self.arc.files[name] = (expected, entry.size)
            return  # already in the store, verified when it was committed: skip the bytes
        self._ingest(name, entry.size, expected, reader.data_chunks(name))

    def _have(self, digest: str, size: int) -> bool:
        try:
            if self.content.info(digest).size != size:
                return False
        except DockyardError:
            return False
        self.lease.add("content", digest)
        return True

    def _ingest(self, name: str, size: int, expected: str | None, chunks: Iterator[bytes]) -> None:
        """Copy one file into a content writer (and a staged unpack if it looks like a layer)."""
        alg = dg.parse(expected)[0] if expected else "sha256"
        writer = self.content.writer(lease=self.lease, algorithm=alg, background=size >= BACKGROUND_WRITE)
        staged: "StagedLayer | None" = None
        try:
            for i, chunk in enumerate(_head_first(chunks, size)):
                if i == 0 and _looks_like_layer(chunk):
                    staged = self.area.start(label=f"layer {name}", caller_hashes=True)
                writer.write(chunk)
                if staged is not None:
                    staged.feed(chunk)  # the very bytes the writer hashes: see finish() below
            writer.flush()  # every byte in the file before the operation's one syncfs
            digest = writer.digest
            if expected is not None and digest != expected:
                raise DigestMismatch(f"invalid archive: {name} does not match its digest")
        except BaseException:
            writer.abort()
            if staged is not None:
                staged.abort()
            raise
        if staged is not None:
            staged.finish(digest)
            if staged.diff_id and staged.compression not in ("", "none"):
                # verified (hashed as it was unpacked): saves need no counting pass later
                self.service.record_layer_size(staged.diff_id, staged.stream_size)
            self.area.ready(staged)
        self.pending.append((writer, digest, size))
        self.arc.files[name] = (digest, size)
        if len(self.pending) >= PENDING_LIMIT:
            self.commit()

    def commit(self) -> None:
        """Make what was written durable (one ``syncfs`` for blobs and staged trees), then
        publish the blobs (renames) and make the renames durable."""
        if not self.pending:
            self.area.sync()
            return
        self.area.sync(also=[self.content.ingest_dir])
        algorithms = set()
        while self.pending:
            writer, digest, size = self.pending.pop()
            try:
                writer.commit(digest, size, synced=True)
            except BaseException:
                writer.abort()
                raise
            algorithms.add(writer.algorithm)
        self.content.sync_names(algorithms)


def _blob_digest_from_path(name: str) -> str | None:
    parts = name.split("/")
    if len(parts) == 3 and parts[0] == "blobs" and parts[1] in dg.ALGORITHMS:
        candidate = f"{parts[1]}:{parts[2]}"
        if dg.is_digest(candidate):
            return candidate
        raise InvalidContent(f"invalid archive: {name} is not a valid blob name")
    return None


def _first_line(exc: BaseException) -> str:
    return (str(exc) or exc.__class__.__name__).splitlines()[0]


def _load_json(data: bytes | None, what: str) -> Any:
    if data is None:
        raise InvalidContent(f"invalid archive: {what} is missing")
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise InvalidContent(f"invalid archive: {what} is not valid JSON") from None


def _docker_archive_images(service: "ImageService", arc: _Archive, lease: "Lease") -> list[tuple[str, list[str]]]:
    """(manifest digest, names) for each entry of a docker-archive ``manifest.json``."""
    from dockyard.image.service import canonical_json

    entries = _load_json(arc.text("manifest.json"), "manifest.json")
    if not isinstance(entries, list):
        raise InvalidContent("invalid archive: manifest.json is not a list")
    oci_by_config = _oci_manifests_by_config(service, arc)
    out = []
    for entry in entries:
        if not isinstance(entry, dict) or "Config" not in entry:
            raise InvalidContent("invalid archive: manifest.json entry has no Config")
        config_digest, config_size = arc.resolve(entry["Config"])
        config = json.loads(service.content.read_bytes(config_digest))
        names = [t for t in entry.get("RepoTags") or [] if t]
        if config_digest in oci_by_config:
            out.append((oci_by_config[config_digest], names))
            continue
        diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
        layer_paths = entry.get("Layers") or []
        if len(layer_paths) != len(diff_ids):
            raise InvalidContent(f"invalid archive: {len(layer_paths)} layers listed but the config has {len(diff_ids)}")
        layers = []
        for path, diff_id in zip(layer_paths, diff_ids):
            digest, size = arc.resolve(path)
            if digest == diff_id:
                media_type = mt.OCI_LAYER
                service.record_layer_size(diff_id, size)
            else:
                with service.content.open(digest) as r:
                    kind = detect(r.read(4))
                media_type = {"gzip": mt.OCI_LAYER_GZIP, "zstd": mt.OCI_LAYER_ZSTD}.get(kind or "", mt.OCI_LAYER)
                if kind is None:
                    raise DigestMismatch(f"invalid archive: layer {path} does not match diff ID {diff_id}")
            layers.append({"mediaType": media_type, "digest": digest, "size": size})
        manifest = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
                    "config": {"mediaType": mt.OCI_CONFIG, "digest": config_digest, "size": config_size},
                    "layers": layers}
        out.append((service.content.write_bytes(canonical_json(manifest), lease=lease), names))
    return out


def _oci_manifests_by_config(service: "ImageService", arc: _Archive) -> dict[str, str]:
    """In a combined archive (docker 25+ save), the OCI manifests keyed by their config digest."""
    index = arc.text("index.json")
    if index is None:
        return {}
    out: dict[str, str] = {}
    try:
        for desc in json.loads(index).get("manifests") or []:
            if desc.get("mediaType") in mt.MANIFESTS and service.content.exists(desc["digest"]):
                m = json.loads(service.content.read_bytes(desc["digest"]))
                out[m["config"]["digest"]] = desc["digest"]
    except (ValueError, KeyError, TypeError, AttributeError, DockyardError):
        return {}
    return out


def _oci_layout_images(service: "ImageService", arc: _Archive) -> list[tuple[str, list[str]]]:
    """(manifest or index digest, names) for each entry of an OCI layout's ``index.json``."""
    from dockyard.image.reference import parse

    index = _load_json(arc.text("index.json"), "index.json")
    if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
        raise InvalidContent("invalid archive: index.json has no manifests")
    out = []
    for desc in index["manifests"]:
        digest = desc.get("digest", "")
        dg.validate(digest)
        if not service.content.exists(digest):
            raise InvalidContent(f"invalid archive: index.json names a missing blob: {digest}")
        names = []
        annotations = desc.get("annotations") or {}
        for key in NAME_ANNOTATIONS:
            value = annotations.get(key)
            if not value:
                continue
            try:
                ref = parse(value)
            except InvalidArgument:
                continue
            if key == "org.opencontainers.image.ref.name" and "/" not in value and ":" not in value:
                continue  # only a tag: no repository to put it in
            names.append(str(ref))
            break
        out.append((digest, names))
    return out


def load_archive(service: "ImageService", stream: BinaryIO, platform: str | None = None) -> list[str]:
    """Load every image in the archive; returns docker's report lines."""
    from dockyard.image.reference import parse

    lines: list[str] = []
    with service.content.lease() as lease, service.client.snapshots.staging() as area:
        arc = _Loader(service, lease, area).read(stream)
        if arc.text("manifest.json") is not None:
            targets = _docker_archive_images(service, arc, lease)
        elif arc.text("index.json") is not None:
            targets = _oci_layout_images(service, arc)
        else:
            raise InvalidContent("invalid archive: no manifest.json or index.json found "
                                 "(not a docker-archive or an OCI image layout)")
        if not targets:
            raise InvalidContent("invalid archive: it holds no image")
        for target, names in targets:
            for name in names:
                if service.exists(name):
                    old = service.resolve_id(name)
                    image = service.get(old)
                    if image.manifest_digest != target and image.target_digest != target:
                        new_cfg = _config_of(service, target, platform)
                        if new_cfg and new_cfg != old:
                            lines.append(f"The image {parse(name).familiar} already exists, renaming the old one "
                                         f"with ID {old} to empty string")
            image = service.register(target, names, platform=platform, lease=lease)
            if names:
                lines.extend(f"Loaded image: {parse(n).familiar}" for n in names)
            else:
                lines.append(f"Loaded image ID: {image.id}")
    return lines


def _config_of(service: "ImageService", target: str, platform: str | None) -> str | None:
    from dockyard.image import platform as plat

    try:
        doc = json.loads(service.content.read_bytes(target))
        if mt.is_index(mt.detect_manifest_type(doc)):
            doc = json.loads(service.content.read_bytes(plat.select(doc["manifests"], plat.parse(platform))["digest"]))
        return doc["config"]["digest"]
    except (DockyardError, ValueError, KeyError, TypeError):
        return None
