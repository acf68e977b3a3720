"""Making written data durable cheaply: one ``syncfs`` per operation, writeback started early.

Every store in dockyard follows one rule: *data is durable before the rename that makes it
visible*. An ``fsync`` per blob or per file obeys it but pays a journal commit each time and
starts the disk only when the writer is done. Loading an image instead writes everything
(blobs in ``content/ingest``, layer trees in ``snapshots/.tmp``), asks the kernel to start
writing each file out while later bytes are still being produced (``sync_file_range`` with
``SYNC_FILE_RANGE_WRITE``: it queues the pages and returns), then calls ``syncfs`` once —
which waits for all of it, metadata included — and only then renames. A crash before that
``syncfs`` returns leaves only unnamed temporary files; after it, every name that appears
points at complete data. The renames themselves are made durable with an ``fsync`` of the
directories that hold them.
"""
from __future__ import annotations

import os
from pathlib import Path

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    import ctypes

# ctypes is imported on first use: reading the stores (run, exec) never syncs
_libc: ctypes.CDLL | None = None
SYNC_FILE_RANGE_WRITE = 2
WRITEBACK_STEP = 8 << 20  # start writing a big file out every 8 MiB


def _lib() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        import ctypes

        lib = ctypes.CDLL(None, use_errno=True)
        lib.syncfs.argtypes = [ctypes.c_int]
        lib.sync_file_range.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
        _libc = lib
    return _libc


def syncfs(fd: int) -> None:
    """Flush the whole filesystem holding ``fd`` (data and metadata) and wait for it."""
    if _lib().syncfs(fd) != 0:
        import ctypes

        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def syncfs_paths(paths: "list[Path | str]") -> None:
    """``syncfs`` once for each distinct filesystem among ``paths`` (directories)."""
    seen: set[int] = set()
    for path in paths:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            dev = os.fstat(fd).st_dev
            if dev not in seen:
                seen.add(dev)
                syncfs(fd)
        finally:
            os.close(fd)


def fsync_dir(path: "Path | str") -> None:
    """Make the entries of a directory (files renamed into it) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def start_writeback(fd: int, offset: int = 0, length: int = 0) -> None:
    """Ask the kernel to start writing ``length`` bytes at ``offset`` (0: to the end) to disk.

    Returns at once; a later ``syncfs``/``fsync`` then waits for less. Errors are ignored:
    this is only a hint, the sync that follows is what guarantees durability."""
    try:
        _lib().sync_file_range(fd, offset, length, SYNC_FILE_RANGE_WRITE)
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass
