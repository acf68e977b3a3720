"""dockyard's OCI registry server (distribution-spec v1.1 + Docker token auth).

Pieces, each in its own module: :mod:`~dockyard.registry.config` (the YAML file),
:mod:`~dockyard.registry.storage` (filesystem and S3 drivers), :mod:`~dockyard.registry.store`
(blobs, uploads, manifests, tags, referrers), :mod:`~dockyard.registry.auth` (users, rules,
tokens), :mod:`~dockyard.registry.api` (the HTTP endpoints), :mod:`~dockyard.registry.gc` and
:mod:`~dockyard.registry.retention` (lifecycle), :mod:`~dockyard.registry.server` (all together).
"""
from __future__ import annotations

from typing import Any

__all__ = ["RegistryServer"]


def __getattr__(name: str) -> Any:
    if name == "RegistryServer":
        from dockyard.registry.server import RegistryServer

        return RegistryServer
    raise AttributeError(name)
