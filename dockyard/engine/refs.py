"""Container references (a full ID, a name, a unique ID prefix) → IDs, from the directory layout.

The rules are docker's and live here once: :class:`dockyard.engine.store.ContainerStore` answers
with them, and so does ``exec``'s fast path, which must not pay for ``pathlib``/``re``/``json``
at import (see :mod:`dockyard.cli.fast_exec`). ``base`` is ``<root>/containers``.
"""
from __future__ import annotations

import os

from dockyard.errors import InvalidArgument, NotFound

_HEX = frozenset("0123456789abcdef")
NAMES_DIR = ".names"


def is_id(name: str) -> bool:
    """A full container ID: 64 lowercase hex characters."""
    return len(name) == 64 and _HEX.issuperset(name)


def ids(base: str) -> list[str]:
    """Every container directory under ``base`` (records being written or removed excluded)."""
    try:
        return [n for n in os.listdir(base) if is_id(n)]
    except FileNotFoundError:
        return []


def exists(base: str, cid: str) -> bool:
    return os.path.isfile(os.path.join(base, cid, "config.json"))


def id_for_name(base: str, name: str) -> str | None:
    try:
        cid = os.readlink(os.path.join(base, NAMES_DIR, name.lstrip("/")))
    except OSError:
        return None
    return cid if exists(base, cid) else None


def resolve(base: str, ref: str) -> str:
    """A full ID, a name (with or without ``/``) or a unique ID prefix → the ID, as docker."""
    if not ref:
        raise NotFound("No such container: ")
    if len(ref) == 64 and exists(base, ref):
        return ref
    if "/" not in ref.lstrip("/"):
        by_name = id_for_name(base, ref)
        if by_name:
            return by_name
    ref_l = ref.lower()
    if _HEX.issuperset(ref_l):
        matches = [cid for cid in ids(base) if cid.startswith(ref_l)]
        if len(matches) > 1:
            raise InvalidArgument(f"multiple IDs found with provided prefix: {ref}")
        if matches and exists(base, matches[0]):
            return matches[0]
    raise NotFound(f"No such container: {ref}")
