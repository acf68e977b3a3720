"""Storage backends for the registry: the filesystem (default) and S3-compatible object stores."""
from __future__ import annotations

from typing import TYPE_CHECKING

from dockyard.errors import InvalidArgument

if TYPE_CHECKING:  # pragma: no cover
    from dockyard.registry.config import StorageConfig
    from dockyard.registry.storage.base import Driver


def open_driver(cfg: "StorageConfig") -> "Driver":
    """The backend a storage config names."""
    if cfg.kind == "s3":
        from dockyard.registry.storage.s3 import S3Driver

        return S3Driver.from_config(cfg.s3)
    if not cfg.root:
        raise InvalidArgument("no storage directory: pass --storage DIR or set "
                              "storage.filesystem.rootdirectory in the config")
    from dockyard.registry.storage.filesystem import FilesystemDriver

    return FilesystemDriver(cfg.root, fsync=cfg.fsync)
