"""``image save``: images to a tar that docker, podman and skopeo load.

``--format docker`` (the default) writes what docker 25+ writes: an OCI image layout whose
layers are uncompressed tars, *plus* docker's ``manifest.json`` and ``repositories``. Older
docker (20.10) and podman read it as a docker-archive, skopeo reads it as ``docker-archive:``
or ``oci-archive:``. ``--format oci`` writes a plain OCI layout with the blobs exactly as stored
(manifest digests unchanged). Streaming: blobs are copied with sendfile; compressed layers are
decompressed on the fly (their uncompressed size is remembered, so only the first save of a
layer needs an extra counting pass).
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, BinaryIO

from dockyard.errors import InvalidArgument
from dockyard.image import mediatypes as mt
from dockyard.image.tarwriter import TarStreamWriter

if TYPE_CHECKING:  # pragma: no cover
    from dockyard.image.service import Image, ImageService

FORMATS = ("docker", "docker-archive", "oci", "oci-archive")


def _blob_name(digest: str) -> str:
    alg, hex_ = digest.split(":", 1)
    return f"blobs/{alg}/{hex_}"


def save_archive(service: "ImageService", names: list[str], out: BinaryIO, format: str = "docker") -> None:
    from dockyard.image.reference import parse

    if format not in FORMATS:
        raise InvalidArgument(f"unknown format {format!r}: use docker or oci")
    oci_only = format.startswith("oci")
    # resolve everything first: a bad name fails before any byte is written
    selected: list[tuple["Image", list[str]]] = []
    for name in names:
        image = service.get(name)
        try:
            ref = parse(name)
            tags = [str(ref)] if not ref.digest and not _is_id(service, image, name) else []
        except InvalidArgument:
            tags = []
        # saved by ID, an image travels without names (docker 20.10: load says "Loaded image ID")
        for existing, existing_tags in selected:
            if existing.id == image.id:
                existing_tags.extend(t for t in tags if t not in existing_tags)
                break
        else:
            selected.append((image, tags))

    writer = TarStreamWriter(out, mtime=0)
    written: set[str] = set()
    index_entries: list[dict] = []
    docker_manifest: list[dict] = []
    repositories: dict[str, dict[str, str]] = {}

    def put_blob(digest: str) -> None:
        if digest in written:
            return
        written.add(digest)
        writer.add_file(_blob_name(digest), service.content.blob_path(digest))

    writer.add_dir("blobs")
    writer.add_dir("blobs/sha256")
    for image, tags in selected:
        if oci_only:
            manifest_digest, manifest_size = image.manifest_digest, service.content.info(image.manifest_digest).size
            put_blob(image.manifest["config"]["digest"])
            for layer in image.layers:
                put_blob(layer.digest)
            put_blob(manifest_digest)
        else:
            manifest_digest, manifest_size = _write_uncompressed(service, image, writer, written)
        annotations_list = [_annotations(t) for t in tags] or [{}]
        for names in annotations_list:
            entry = {"mediaType": mt.OCI_MANIFEST, "digest": manifest_digest, "size": manifest_size}
            if names:
                entry["annotations"] = names
            index_entries.append(entry)
        if not oci_only:
            layers = [_blob_name(layer.diff_id) for layer in image.layers]
            docker_manifest.append({"Config": _blob_name(image.id), "RepoTags": [parse(t).familiar for t in tags] or None,
                                    "Layers": layers})
            if image.layers:
                top = image.layers[-1].diff_id.split(":", 1)[1]
                for t in tags:
                    r = parse(t)
                    repositories.setdefault(r.familiar_name, {})[r.tag or "latest"] = top
    index = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": index_entries}
    writer.add_bytes("index.json", json.dumps(index, separators=(",", ":")).encode())
    if not oci_only:
        writer.add_bytes("manifest.json", json.dumps(docker_manifest, separators=(",", ":")).encode())
        if repositories:
            writer.add_bytes("repositories", json.dumps(repositories, separators=(",", ":")).encode())
    writer.add_bytes("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
    writer.close()


def _is_id(service: "ImageService", image: "Image", name: str) -> bool:
    return service._is_id_prefix(image.id, name)


def _annotations(tag: str) -> dict[str, str]:
    from dockyard.image.reference import parse

    r = parse(tag)
    return {"io.containerd.image.name": str(r), "org.opencontainers.image.ref.name": r.tag or "latest"}


def _write_uncompressed(service: "ImageService", image: "Image", writer: TarStreamWriter,
                        written: set[str]) -> tuple[str, int]:
    """Write config, uncompressed layers and a matching OCI manifest; returns the manifest's digest."""
    from dockyard.image.service import canonical_json

    content = service.content
    layers_desc = []
    for layer in image.layers:
        name = _blob_name(layer.diff_id)
        if mt.layer_compression(layer.media_type) is None:
            size = layer.size
            if layer.diff_id not in written:
                written.add(layer.diff_id)
                writer.add_file(name, content.blob_path(layer.digest), size)
        else:
            size = service.layer_size(layer.diff_id)
            if size is None:
                size = _count_uncompressed(service, layer.digest)
                service.record_layer_size(layer.diff_id, size)
            if layer.diff_id not in written:
                written.add(layer.diff_id)
                stream = _decompressed(service, layer.digest, layer.media_type)
                try:
                    writer.add_chunks(name, stream.read_chunk, size)
                finally:
                    stream.close()
        layers_desc.append({"mediaType": mt.OCI_LAYER, "digest": layer.diff_id, "size": size})
    config_digest = image.manifest["config"]["digest"]
    if config_digest not in written:
        written.add(config_digest)
        writer.add_file(_blob_name(config_digest), content.blob_path(config_digest))
    if all(layer.media_type == mt.OCI_LAYER for layer in image.layers) and \
            image.manifest.get("mediaType", mt.OCI_MANIFEST) == mt.OCI_MANIFEST and \
            image.manifest["config"].get("mediaType") == mt.OCI_CONFIG:
        manifest_digest = image.manifest_digest
        data = content.read_bytes(manifest_digest)
    else:
        manifest = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
                    "config": {"mediaType": mt.OCI_CONFIG, "digest": config_digest,
                               "size": image.manifest["config"]["size"]},
                    "layers": layers_desc}
        data = canonical_json(manifest)
        from dockyard.content import digest as dg

        manifest_digest = dg.from_bytes(data)
    if manifest_digest not in written:
        written.add(manifest_digest)
        writer.add_bytes(_blob_name(manifest_digest), data)
    return manifest_digest, len(data)


def _decompressed(service: "ImageService", digest: str, media_type: str = ""):  # noqa: ANN202
    """A layer blob's uncompressed bytes (``read_chunk()``), read, verified and decompressed in a
    second thread while the caller writes; ``close()`` it."""
    from dockyard.snapshot.layerstream import LayerStream

    raw = service.content.open(digest)  # verifying: raises at the end if the blob is corrupt
    try:
        return LayerStream(raw, media_type, f"layer {digest}", algorithm=None, prefetch=True, owns_blob=True)
    except BaseException:
        raw.close()
        raise


def _count_uncompressed(service: "ImageService", digest: str) -> int:
    n = 0
    stream = _decompressed(service, digest)
    try:
        while chunk := stream.read_chunk():
            n += len(chunk)
    finally:
        stream.close()
    return n
