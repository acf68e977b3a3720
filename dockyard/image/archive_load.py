"""``image load``: docker-archive (``docker save``) and OCI image-layout tars, streamed.

The tar is read once, front to back, and never extracted by name: every regular file goes
straight into the content store (hashed on the way; a ``blobs/<alg>/<hex>`` entry must hash
to its own name), small JSON files are also kept in memory. Only when the whole archive has
been read are ``manifest.json`` (docker-archive) or ``index.json`` (OCI layout) interpreted, the
images registered and the layers unpacked. Member names are never used as paths, so a hostile
archive cannot write anywhere; a blob it omits or corrupts is reported by name.
"""
from __future__ import annotations

import json
import posixpath
import tarfile
from typing import TYPE_CHECKING, Any, BinaryIO

from dockyard.content import digest as dg
from dockyard.errors import DigestMismatch, DockyardError, InvalidArgument, InvalidContent
from dockyard.image import mediatypes as mt
from dockyard.image.compression import detect

if TYPE_CHECKING:  # pragma: no cover
    from dockyard.content.store import Lease
    from dockyard.image.service import ImageService

SMALL = 4 << 20  # JSON documents kept in memory (manifests, configs, indexes)
NAME_ANNOTATIONS = ("io.containerd.image.name", "org.opencontainers.image.ref.name")


class _Archive:
    """What one pass over the tar found: path → blob digest/size, small files, links."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[str, int]] = {}
        self.small: dict[str, bytes] = {}
        self.links: dict[str, str] = {}

    def resolve(self, path: str, depth: int = 0) -> tuple[str, int]:
        path = _norm(path)
        if path in self.files:
            return self.files[path]
        if path in self.links and depth < 16:
            return self.resolve(self.links[path], depth + 1)
        raise InvalidContent(f"invalid archive: {path} is referenced but not in the archive")

    def text(self, path: str) -> bytes | None:
        path = _norm(path)
        if path in self.small:
            return self.small[path]
        if path in self.links:
            return self.text(self.links[path])
        return None


def _norm(path: str) -> str:
    """A member name as a canonical relative path (names are only ever used as keys)."""
    while path.startswith("./"):
        path = path[2:]
    return posixpath.normpath("/" + path).lstrip("/")


def _read_archive(service: "ImageService", stream: BinaryIO, lease: "Lease") -> _Archive:
    content = service.content
    arc = _Archive()
    try:
        tf = tarfile.open(fileobj=stream, mode="r|*", bufsize=1 << 20)
    except (tarfile.ReadError, EOFError, OSError) as exc:
        raise InvalidContent(f"invalid archive: not a tar file ({_first_line(exc)})") from None
    try:
        for member in tf:
            name = _norm(member.name)
            if member.issym():
                arc.links[name] = _norm(posixpath.join(posixpath.dirname(name), member.linkname))
                continue
            if member.islnk():
                arc.links[name] = _norm(member.linkname)
                continue
            if not member.isfile():
                continue
            expected = _blob_digest_from_path(name)
            f = tf.extractfile(member)
            assert f is not None
            if member.size <= SMALL:
                data = f.read()
                if len(data) != member.size:
                    raise InvalidContent(f"invalid archive: {name} is truncated")
                arc.small[name] = data
                if name in ("manifest.json", "index.json", "repositories", "oci-layout") or name.endswith("/json") or name.endswith("/VERSION"):
                    continue
                try:
                    d = content.write_bytes(data, expected=expected, lease=lease)
                except DigestMismatch:
                    raise DigestMismatch(f"invalid archive: {name} does not match its digest") from None
                arc.files[name] = (d, len(data))
            else:
                try:
                    d, n = content.ingest(f, expected=expected, size=member.size, lease=lease)
                except DigestMismatch as exc:
                    raise DigestMismatch(f"invalid archive: {name}: {exc}") from None
                arc.files[name] = (d, n)
    except (tarfile.TarError, EOFError) as exc:
        raise InvalidContent(f"invalid archive: {_first_line(exc)}") from None
    except OSError as exc:
        if isinstance(exc, DockyardError):
            raise
        raise InvalidContent(f"invalid archive: {_first_line(exc)}") from None
    finally:
        tf.close()
    return arc


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
    with service.content.lease() as lease:
        arc = _read_archive(service, stream, lease)
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
