"""OCI and Docker schema2 media types, treated as equivalents everywhere.

Docker's types are accepted wherever OCI's are (a ``docker save`` or a Docker Hub manifest works
the same as an OCI one); dockyard writes OCI types for what it creates.
"""
from __future__ import annotations

from dockyard.errors import InvalidContent

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_ND = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_ND_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_LAYER_ND_ZSTD = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_GZIP = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

MANIFESTS = {OCI_MANIFEST, DOCKER_MANIFEST}
INDEXES = {OCI_INDEX, DOCKER_LIST}
CONFIGS = {OCI_CONFIG, DOCKER_CONFIG}
_LAYERS = {
    OCI_LAYER: None, OCI_LAYER_ND: None, DOCKER_LAYER: None,
    OCI_LAYER_GZIP: "gzip", OCI_LAYER_ND_GZIP: "gzip", DOCKER_LAYER_GZIP: "gzip", DOCKER_FOREIGN_GZIP: "gzip",
    OCI_LAYER_ZSTD: "zstd", OCI_LAYER_ND_ZSTD: "zstd",
}


def is_manifest(mt: str | None) -> bool:
    return mt in MANIFESTS


def is_index(mt: str | None) -> bool:
    return mt in INDEXES


def is_layer(mt: str | None) -> bool:
    return mt in _LAYERS


def layer_compression(mt: str) -> str | None:
    """'gzip', 'zstd' or None (uncompressed); InvalidContent for an unknown layer type."""
    try:
        return _LAYERS[mt]
    except KeyError:
        raise InvalidContent(f"unknown layer media type: {mt}") from None


def detect_manifest_type(doc: dict) -> str:
    """The media type of a manifest/index document (its own field, or inferred from its shape)."""
    mt = doc.get("mediaType")
    if mt:
        if mt not in MANIFESTS and mt not in INDEXES:
            raise InvalidContent(f"unsupported manifest media type: {mt}")
        return mt
    if "manifests" in doc:
        return OCI_INDEX
    if "config" in doc and "layers" in doc:
        return OCI_MANIFEST
    if doc.get("schemaVersion") == 1:
        raise InvalidContent("Docker schema1 manifests are not supported (deprecated since Docker 1.10)")
    raise InvalidContent("not an image manifest or index")
