"""Garbage collection of the local store: blobs and snapshots no image, container or lease needs.

Mark and sweep: the roots are every image's target and manifest (walked down through indexes
and manifests to configs and layers), every blob and snapshot held by a live lease (an operation
in progress), and the snapshots containers stand on. The blob listing is taken *before* the
roots are read: a blob that appears meanwhile was leased before it became visible, so it is
always seen as a root.
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from dockyard.errors import DockyardError

if TYPE_CHECKING:  # pragma: no cover
    from dockyard.client import Client


def _children(content: Any, digest: str) -> list[str]:
    """Digests a manifest or index refers to (nothing for other blobs)."""
    try:
        info = content.info(digest)
        if info.size > 8 << 20:
            return []
        doc = json.loads(content.read_bytes(digest))
    except (DockyardError, ValueError, UnicodeDecodeError):
        return []
    if not isinstance(doc, dict):
        return []
    out: list[str] = []
    for key in ("manifests", "layers", "blobs"):
        for d in doc.get(key) or []:
            if isinstance(d, dict) and isinstance(d.get("digest"), str):
                out.append(d["digest"])
    for key in ("config", "subject"):
        d = doc.get(key)
        if isinstance(d, dict) and isinstance(d.get("digest"), str):
            out.append(d["digest"])
    return out


def collect(client: "Client", dry_run: bool = False) -> dict[str, Any]:
    """Remove unreferenced blobs and snapshots. Returns what was (or would be) removed."""
    content = client.content
    listed = {b.digest: b.size for b in content.list()}
    db = client.state.db()
    client.images._db()  # make sure the tables exist
    roots: set[str] = set()
    keep_chains: set[str] = set()
    for row in db.execute("SELECT manifest_digest, target_digest, top_chain_id FROM images"):
        roots.update((row["manifest_digest"], row["target_digest"]))
        if row["top_chain_id"]:
            keep_chains.add(row["top_chain_id"])
    roots |= content.leased("content")
    keep_chains |= content.leased("snapshot")
    marked: set[str] = set()
    stack = list(roots)
    while stack:
        d = stack.pop()
        if d in marked:
            continue
        marked.add(d)
        if d in listed:
            stack.extend(_children(content, d))
    removed_blobs = [d for d in listed if d not in marked]
    reclaimed = sum(listed[d] for d in removed_blobs)
    if not dry_run:
        for d in removed_blobs:
            try:
                content.delete(d)
            except DockyardError:
                pass
        content.clean_ingests()
    removed_chains: list[str] = []
    snaps = client.snapshots
    if not dry_run:
        removed_chains = snaps.gc(keep_chains)
    return {"blobs": removed_blobs, "snapshots": removed_chains, "reclaimed": reclaimed}
