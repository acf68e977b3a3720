"""``commit``: a new image from a container's changes (its writable layer on top of its image).

The writable layer is the container's overlay upper dir; it becomes one gzip layer in docker's
format (overlay whiteouts as ``.wh.`` entries) through the builder's layer writer, added to the
image's layers with the container's config (plus ``--change`` instructions) and a history entry.
A running container is paused meanwhile (``--pause``, the default), as docker does.
"""
from __future__ import annotations

import time
from typing import Any

from dockyard.errors import DockyardError, InvalidArgument


# the files the engine makes in every container (mount points, docker's markers): docker keeps
# them in an "init" layer that a commit never includes
INIT_FILES = frozenset({".dockerenv", "etc/mtab", "etc/hosts", "etc/hostname", "etc/resolv.conf"})


def commit(client: Any, ref: str, repository: str | None = None, changes: list[str] | None = None,
           message: str = "", author: str = "", pause: bool = True) -> Any:
    """The new image (``docker commit CONTAINER [REPOSITORY[:TAG]]``)."""
    from dockyard.build.layerdiff import write_layer
    from dockyard.engine.timeutil import rfc3339nano
    from dockyard.image.config_changes import apply_changes
    from dockyard.image.service import Layer

    svc = client.containers
    rec = svc.load(ref)
    if repository:
        from dockyard.image.reference import parse

        try:
            parse(repository)
        except DockyardError as exc:
            raise InvalidArgument(exc.message) from None
    base = client.images.get(rec.config.get("Image", ""))
    snap = client.snapshots.active(rec.id)
    paused_here = False
    if pause and rec.status == "running" and not rec.state.get("Paused"):
        svc.pause(rec.id)
        paused_here = True
    try:
        with client.content.lease() as lease:
            blob = write_layer(snap.upper, client.content, lease=lease, skip=INIT_FILES)
            doc = dict(base.config_doc)
            cfg = {k: v for k, v in (rec.cfg or {}).items()
                   if k not in ("Hostname", "Domainname", "AttachStdin", "AttachStdout", "AttachStderr", "Image")}
            if changes:
                cfg = apply_changes(cfg, changes)
            created = rfc3339nano(time.time_ns())
            doc["config"] = cfg
            doc["created"] = created
            if author:
                doc["author"] = author
            if message:
                doc["comment"] = message  # docker's image inspect Comment
            doc["history"] = list(doc.get("history") or []) + [
                {"created": created, **({"author": author} if author else {}),
                 **({"comment": message} if message else {}),
                 "created_by": " ".join([rec.config.get("Path", ""), *rec.config.get("Args", [])]).strip()}]
            layers = list(base.layers) + [Layer(blob.digest, blob.media_type, blob.size, blob.diff_id)]
            image = client.images.create_image(doc, layers, tags=[repository] if repository else [],
                                               parent=base.id, lease=lease)
    finally:
        if paused_here:
            svc.unpause(rec.id)
    _record_events(client, rec, image.id, repository, message)
    return image


def _record_events(client: Any, rec: Any, image_id: str, repository: str | None, message: str) -> None:
    """dockerd's: ``image tag`` for the name given, then ``container commit``."""
    from dockyard.engine.events import emit_container, emit_image, familiar

    ref = familiar(repository) if repository else ""
    if repository:
        emit_image(client, "tag", image_id, repository)
    emit_container(client, rec, "commit", comment=message, imageID=image_id, imageRef=ref)
