"""``dockyard.Client``: the library API. The CLI and the Docker-compatible API are thin layers on it.

Each service (images, containers, volumes, ...) lives in its own module and is created on first
use, so that a program (or the CLI) only pays for what it touches::

    import dockyard
    client = dockyard.Client(root="/tmp/dy")
    client.images.import_rootfs("rootfs.tar", "busybox:latest")
    for image in client.images.list():
        print(image.id, image.tags)
"""
from __future__ import annotations

import importlib
import os
from typing import Any

from dockyard.state import StateRoot

# attribute -> "module:Class"; each class is constructed as Class(client)
_SERVICES: dict[str, str] = {
    "content": "dockyard.content.store:ContentStore",
    "images": "dockyard.image.service:ImageService",
    "snapshots": "dockyard.snapshot.store:SnapshotStore",
    "containers": "dockyard.engine.containers:ContainerService",
    "volumes": "dockyard.volume.service:VolumeService",
    "networks": "dockyard.network.service:NetworkService",
    "builder": "dockyard.build.service:BuildService",
    "distribution": "dockyard.distribution.service:DistributionService",
    "system": "dockyard.system:SystemService",
}


class Client:
    """Entry point to everything dockyard does on one state root."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.state = StateRoot(root)

    @property
    def root(self) -> str:
        return str(self.state.path)

    def __getattr__(self, name: str) -> Any:
        target = _SERVICES.get(name)
        if target is None:
            raise AttributeError(f"Client has no attribute {name!r}")
        module_name, cls_name = target.split(":")
        service = getattr(importlib.import_module(module_name), cls_name)(self)
        setattr(self, name, service)  # cache: __getattr__ is not called again
        return service

    def close(self) -> None:
        self.state.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
