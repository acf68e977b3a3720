"""The storage driver interface: a few key/value operations every backend can do well.

The registry's logic (links, tags, referrers, GC) lives once in :mod:`dockyard.registry.store`
on top of this interface, as in the CNCF registry; a backend only moves bytes. Keys are
``/``-separated relative paths made from validated names and digests, never from raw input.

Uploads in progress are always staged in a local directory (``ingest``): they are appended to
chunk by chunk and hashed while received, which object stores cannot do in place. A finished,
verified upload is handed to :meth:`Driver.ingest`, which moves it into the backend atomically.
"""
from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator


@dataclass(frozen=True)
class Stat:
    size: int
    mtime: float


class RangeReader:
    """An open byte range of a stored object.

    ``fd`` is a local file descriptor positioned anywhere (the HTTP layer uses ``os.sendfile``
    from ``offset``); backends without one implement :meth:`read` and leave ``fd`` as ``None``.
    """

    fd: int | None = None
    offset: int = 0

    def __init__(self, length: int) -> None:
        self.length = length

    def read(self, n: int) -> bytes:  # pragma: no cover - overridden
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> "RangeReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Driver(ABC):
    """Byte storage for the registry. All writes are atomic: readers see old or new, never half."""

    name = "driver"

    #: local directory for uploads in progress, locks and the GC journal
    local_dir: Path

    @abstractmethod
    def get(self, key: str) -> bytes | None:
        """The whole object, or None if it does not exist."""

    @abstractmethod
    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` atomically (replacing any previous value)."""

    @abstractmethod
    def stat(self, key: str) -> Stat | None:
        ...

    @abstractmethod
    def delete(self, key: str) -> bool:
        """Remove one object; returns whether it existed."""

    @abstractmethod
    def delete_tree(self, prefix: str) -> None:
        """Remove every object under ``prefix/``."""

    @abstractmethod
    def list_dir(self, prefix: str) -> list[str]:
        """Names directly under ``prefix/`` (objects and sub-prefixes), unsorted."""

    @abstractmethod
    def walk(self, prefix: str) -> Iterator[tuple[str, Stat]]:
        """Every object key under ``prefix/`` (recursively) with its stat."""

    @abstractmethod
    def ingest(self, local_path: str, key: str, size: int, sha256_hex: str | None) -> None:
        """Move a finished local file to ``key`` (atomically; the local file is consumed)."""

    @abstractmethod
    def open_range(self, key: str, start: int, length: int) -> RangeReader:
        """Open ``length`` bytes from ``start``; raises FileNotFoundError if missing."""

    def touch(self, key: str) -> None:
        """Refresh an object's modification time (best effort)."""

    def clean_temporary(self, older_than: float) -> int:
        """Remove temp files a crash left behind (older than ``older_than`` seconds); returns how many."""
        return 0

    def check(self) -> None:
        """Raise if the backend is unreachable (health endpoint)."""

    def close(self) -> None:
        pass

    def describe(self) -> str:
        return self.name


def fsync_dir(path: str | os.PathLike[str]) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
