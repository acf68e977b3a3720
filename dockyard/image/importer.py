"""``image import``: a root filesystem tar (plain, gzip or zstd) becomes a one-layer image.

Like ``docker import``: the tar is stored as the image's only layer (uncompressed, so its digest
is its diff ID), the config gets ``--change`` instructions and a history entry saying where it
came from. Streaming: the tar is hashed and stored in one pass, never held in memory.
"""
from __future__ import annotations

import sys
from typing import TYPE_CHECKING, BinaryIO

from dockyard import timeutil
from dockyard.errors import InvalidArgument, NotFound, Unsupported
from dockyard.image import mediatypes as mt
from dockyard.image.compression import open_decompressed

if TYPE_CHECKING:  # pragma: no cover
    from dockyard.image.service import Image, ImageService


def import_rootfs(service: "ImageService", source: "str | BinaryIO", name: str | None,
                  changes: list[str], message: str, platform: str | None) -> "Image":
    from dockyard.image import platform as plat
    from dockyard.image.config_changes import apply_changes
    from dockyard.image.reference import parse
    from dockyard.image.service import Layer

    if name:
        parse(name)  # fail early on a bad name, before reading anything
    config = apply_changes({}, changes)
    target = plat.parse(platform)
    close = False
    if isinstance(source, str):
        if source == "-":
            stream: BinaryIO = sys.stdin.buffer
            origin = "-"
        elif "://" in source:
            raise Unsupported(f"importing from a URL ({source}) needs network access; download it and import the file")
        else:
            try:
                stream = open(source, "rb")
            except FileNotFoundError:
                raise NotFound(f"open {source}: no such file or directory") from None
            except IsADirectoryError:
                raise InvalidArgument(f"{source} is a directory: give a tar archive of the root filesystem") from None
            close = True
            origin = source
    else:
        stream, origin = source, "-"
    content = service.content
    try:
        with content.lease() as lease:
            reader, _ = open_decompressed(stream)
            try:
                diff_id, size = content.ingest(reader, lease=lease)
            except (OSError, EOFError) as exc:
                raise InvalidArgument(f"could not read {origin}: {_describe(exc)}") from None
            created = timeutil.now()
            config_doc = {
                "architecture": target.architecture,
                "os": target.os,
                **({"variant": target.variant} if target.variant else {}),
                "created": created,
                "config": config,
                "history": [{"created": created, "comment": message or "Imported from -"}],  # docker's CLI always streams the file: the daemon sees "-"
            }
            service.record_layer_size(diff_id, size)
            layer = Layer(diff_id, mt.OCI_LAYER, size, diff_id)
            return service.create_image(config_doc, [layer], [name] if name else [], lease=lease)
    finally:
        if close:
            stream.close()


def _describe(exc: BaseException) -> str:
    text = str(exc) or exc.__class__.__name__
    return text.splitlines()[0]
