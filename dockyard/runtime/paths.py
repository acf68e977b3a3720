"""Resolve a path inside a container's rootfs without ever leaving it.

An image controls its own symlinks: ``/etc/passwd -> /../../host/etc/shadow`` or a mount target
``/data -> /`` must resolve *inside* the rootfs, as if the rootfs were ``/``. This is
``filepath-securejoin``'s ``SecureJoin`` (used by runc), written for our needs.
"""
from __future__ import annotations

import errno
import os
from pathlib import Path

MAX_SYMLINKS = 255


def secure_join(root: str | os.PathLike[str], unsafe_path: str, follow_last: bool = True) -> Path:
    """``root`` joined with ``unsafe_path``, every symlink resolved with ``root`` as ``/``.

    Components that do not exist (yet) are kept as they are, so the result can be used to
    create a mount target. ``follow_last=False`` leaves a final symlink itself (for lstat,
    unlink, chown of the link). Raises ``OSError(ELOOP)`` on symlink loops.
    """
    root_s = os.path.abspath(root)
    parts = [p for p in unsafe_path.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root_s, *resolved, part)
        if not parts and not follow_last:
            resolved.append(part)
            break
        try:
            target = os.readlink(candidate)
        except OSError as exc:
            if exc.errno in (errno.EINVAL, errno.ENOENT, errno.ENOTDIR):
                resolved.append(part)  # not a symlink (or not there): keep the name
                continue
            raise
        links += 1
        if links > MAX_SYMLINKS:
            raise OSError(errno.ELOOP, "too many levels of symbolic links", unsafe_path)
        if target.startswith("/"):
            resolved = []
        parts[:0] = [p for p in target.split("/") if p not in ("", ".")]
    return Path(root_s, *resolved)
