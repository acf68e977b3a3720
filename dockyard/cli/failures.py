"""One clear line for failures of the machine rather than of the command: a full disk, a
read-only or vanished state root, a metadata database SQLite cannot write.

These surface from deep inside any operation as ``OSError`` or ``sqlite3`` errors. A traceback
helps nobody there: the user needs to know what ran out and where (docker prints the same kind of
line, e.g. ``write /var/lib/docker/...: no space left on device``). Other exceptions are bugs and
keep their traceback.
"""
from __future__ import annotations

import errno
import os

# what the machine, not the command, got wrong
_ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.ENOMEM, errno.EMFILE,
                       errno.ENFILE}


def environment_failure(exc: BaseException, root: "os.PathLike[str] | str | None") -> str | None:
    """The line to print for ``exc`` if it is a failure of the machine, else None."""
    if isinstance(exc, OSError) and exc.errno in _ENVIRONMENT_ERRNOS:
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{os.strerror(exc.errno).lower()}"
    if type(exc).__module__ == "sqlite3" and type(exc).__name__ in ("OperationalError", "DatabaseError"):
        reason = str(exc)
        if root is not None and _full(root):
            reason = "no space left on device"
        where = f"{os.fspath(root)}/metadata.db" if root is not None else "the metadata database"
        return f"{where}: {reason}"
    return None


def _full(root: "os.PathLike[str] | str") -> bool:
    """Whether the file system of ``root`` has (almost) no room left for SQLite's journal."""
    try:
        st = os.statvfs(root)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < 64 * 1024
