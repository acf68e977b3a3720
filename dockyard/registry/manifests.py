"""Manifest parsing for the registry: which media types it stores and which blobs they need.

The registry stores manifests byte for byte (their digest is over the exact bytes), but it must
understand them enough to refuse broken ones: valid JSON, ``schemaVersion`` 2, a known media type,
and every referenced blob (config, layers) or manifest (index entries) present in the repository.
A ``subject`` may point anywhere (spec: registries accept referrers before their subject).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from dockyard.content import digest as dg
from dockyard.registry.errors import RegistryError

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
IMAGE_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
MANIFEST_TYPES = IMAGE_TYPES + INDEX_TYPES

# layers that live elsewhere (Windows base layers): never required to be in the registry
_FOREIGN_PREFIXES = ("application/vnd.docker.image.rootfs.foreign.",
                     "application/vnd.oci.image.layer.nondistributable.")


@dataclass
class Descriptor:
    media_type: str
    digest: str
    size: int
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass
class ParsedManifest:
    """What the registry needs to know about a manifest it is asked to store."""

    media_type: str
    digest: str
    size: int
    blobs: list[Descriptor]          # config + layers that must exist in the repository
    manifests: list[Descriptor]      # index entries that must exist in the repository
    subject: Descriptor | None
    artifact_type: str | None
    annotations: dict[str, str]

    def descriptor(self) -> dict[str, Any]:
        """The descriptor the referrers API lists for this manifest."""
        d: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.artifact_type:
            d["artifactType"] = self.artifact_type
        if self.annotations:
            d["annotations"] = self.annotations
        return d


def _descriptor(obj: Any, where: str) -> Descriptor:
    if not isinstance(obj, dict):
        raise RegistryError("MANIFEST_INVALID", f"{where}: descriptor must be an object")
    media_type, digest, size = obj.get("mediaType"), obj.get("digest"), obj.get("size")
    if not isinstance(media_type, str) or not media_type:
        raise RegistryError("MANIFEST_INVALID", f"{where}: descriptor has no mediaType")
    if not isinstance(digest, str) or not dg.is_digest(digest):
        raise RegistryError("MANIFEST_INVALID", f"{where}: invalid digest {digest!r}")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise RegistryError("MANIFEST_INVALID", f"{where}: invalid size {size!r}")
    return Descriptor(media_type, digest, size, obj)


def is_foreign(desc: Descriptor) -> bool:
    return bool(desc.raw.get("urls")) and desc.media_type.startswith(_FOREIGN_PREFIXES)


def parse(data: bytes, content_type: str | None) -> ParsedManifest:
    """Parse and check a manifest body; the media type comes from Content-Type or the body."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        # detail as Go's json.SyntaxError: the offset of the byte after the error
        offset = exc.pos + 1 if isinstance(exc, json.JSONDecodeError) and data.strip() else 0
        raise RegistryError("MANIFEST_INVALID", f"manifest is not valid JSON: {exc}",
                            detail={"Offset": offset}) from None
    if not isinstance(doc, dict):
        raise RegistryError("MANIFEST_INVALID", "manifest must be a JSON object")
    if doc.get("schemaVersion") != 2:
        raise RegistryError("MANIFEST_INVALID", "unsupported manifest schemaVersion "
                            f"{doc.get('schemaVersion')!r} (only schema 2 is accepted)")
    body_type = doc.get("mediaType")
    # as the CNCF registry, the Content-Type chooses the format: without one of the four schema 2
    # types (none, application/json: schema 1, which is not accepted) the manifest is invalid
    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type not in MANIFEST_TYPES:
        raise RegistryError("MANIFEST_INVALID", f"unsupported manifest media type {media_type!r}")
    if (body_type is not None or media_type not in (OCI_MANIFEST, OCI_INDEX)) and body_type != media_type:
        raise RegistryError("MANIFEST_INVALID", f"Content-Type {media_type!r} does not match the "
                            f"manifest's mediaType {body_type!r}")
    blobs: list[Descriptor] = []
    manifests: list[Descriptor] = []
    artifact_type = doc.get("artifactType") if isinstance(doc.get("artifactType"), str) else None
    if media_type in IMAGE_TYPES:
        if "config" not in doc:
            raise RegistryError("MANIFEST_INVALID", "image manifest has no config")
        config = _descriptor(doc["config"], "config")
        blobs.append(config)
        layers = doc.get("layers", [])
        if not isinstance(layers, list):
            raise RegistryError("MANIFEST_INVALID", "layers must be a list")
        for i, layer in enumerate(layers):
            d = _descriptor(layer, f"layers[{i}]")
            if not is_foreign(d):
                blobs.append(d)
        if artifact_type is None and media_type == OCI_MANIFEST:
            artifact_type = config.media_type
    else:
        entries = doc.get("manifests")
        if not isinstance(entries, list):
            raise RegistryError("MANIFEST_INVALID", "index has no manifests list")
        for i, entry in enumerate(entries):
            manifests.append(_descriptor(entry, f"manifests[{i}]"))
    subject = _descriptor(doc["subject"], "subject") if doc.get("subject") is not None else None
    annotations = doc.get("annotations") if isinstance(doc.get("annotations"), dict) else {}
    return ParsedManifest(media_type=media_type, digest=dg.from_bytes(data), size=len(data),
                          blobs=blobs, manifests=manifests, subject=subject,
                          artifact_type=artifact_type, annotations=annotations)


def references(data: bytes) -> list[str]:
    """Digests a stored manifest keeps alive (for GC); tolerant of anything unparsable."""
    try:
        doc = json.loads(data)
    except ValueError:
        return []
    out: list[str] = []
    if not isinstance(doc, dict):
        return out
    items = []
    if isinstance(doc.get("config"), dict):
        items.append(doc["config"])
    for key in ("layers", "manifests"):
        if isinstance(doc.get(key), list):
            items.extend(doc[key])
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("digest"), str) and dg.is_digest(item["digest"]):
            out.append(item["digest"])
    return out
