"""mount(2) and umount2(2) through libc, and overlayfs stacks of any depth.

Python has no ``mount``; calling libc directly avoids a ``mount`` binary and the canonicalising
it does. The kernel copies a mount's option string into one page (4096 bytes), so an overlay
with many layers does not fit as absolute paths. Then, as docker's overlay2 driver does, each
lower directory gets a short symlink in a ``links_dir`` and a forked child ``chdir``s there and
mounts with those short relative names (a chdir in the parent would race its other threads).
"""
from __future__ import annotations

import errno
import hashlib
import os
import re
from pathlib import Path

from dockyard.errors import DockyardError

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    import ctypes

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MNT_DETACH = 0x2

_PAGE = os.sysconf("SC_PAGE_SIZE")
_libc = None


def _lib() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        import ctypes  # on first use: run's CLI reads the snapshot store but mounts nothing

        # the interpreter's own libc: find_library("c") would run `ldconfig -p` (a fork+exec per process)
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                                ctypes.c_char_p]
        _libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
    return _libc


def _errno() -> int:
    import ctypes

    return ctypes.get_errno()


def _b(value: str | os.PathLike[str] | None) -> bytes | None:
    return None if value is None else os.fsencode(value)


def mount(source: str | os.PathLike[str] | None, target: str | os.PathLike[str], fstype: str | None,
          flags: int = 0, data: str | None = None) -> None:
    """mount(2); raises OSError with the kernel's errno."""
    if _lib().mount(_b(source), _b(target), _b(fstype), flags, _b(data)) != 0:
        err = _errno()
        raise OSError(err, os.strerror(err), str(target))


def umount(target: str | os.PathLike[str], flags: int = 0) -> None:
    """umount2(2); raises OSError with the kernel's errno."""
    if _lib().umount2(_b(target), flags) != 0:
        err = _errno()
        raise OSError(err, os.strerror(err), str(target))


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as \\ooo."""
    if "\\" not in field:
        return field
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mount_points() -> list[str]:
    """Mount points of this mount namespace, in mount order."""
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        return [_unescape(line.split(" ", 5)[4]) for line in f if line.strip()]


def is_mounted(target: str | os.PathLike[str]) -> bool:
    path = os.path.realpath(target)
    return path in mount_points()


def unmount(target: str | os.PathLike[str]) -> None:
    """Unmount ``target`` if it is a mount point; a busy mount is detached lazily (MNT_DETACH)
    rather than left behind. Mounts stacked on the same point are all removed."""
    path = os.path.realpath(target)
    for _ in range(64):  # bounded: stacked mounts, never a loop that cannot end
        if path not in mount_points():
            return
        try:
            umount(path)
        except OSError as exc:
            if exc.errno in (errno.EINVAL, errno.ENOENT):
                return
            try:
                if exc.errno != errno.EBUSY:
                    raise
                umount(path, MNT_DETACH)
            except OSError as exc2:
                raise DockyardError(f"cannot unmount {path}: {exc2.strerror}") from None
    raise DockyardError(f"cannot unmount {path}: still mounted after 64 attempts")


def bind_mount(source: Path, target: Path, readonly: bool = False) -> None:
    mount(source, target, None, MS_BIND)
    if readonly:
        try:
            mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY)
        except OSError:
            umount(target, MNT_DETACH)
            raise


def _overlay_extra() -> str:
    # As docker does: with index=on an upper dir cannot be mounted again after an unclean stop.
    return ",index=off" if os.path.exists("/sys/module/overlay/parameters/index") else ""


def overlay_options(lowerdirs: list[str], upperdir: str | None, workdir: str | None) -> str:
    opts = "lowerdir=" + ":".join(lowerdirs)
    if upperdir is not None:
        opts += f",upperdir={upperdir},workdir={workdir}"
    return opts + _overlay_extra()


def short_link(links_dir: Path, target: Path) -> str:
    """A short, stable symlink name in ``links_dir`` pointing at ``target`` (made if missing)."""
    name = hashlib.sha256(os.fsencode(target)).hexdigest()[:16]
    link = links_dir / name
    try:
        if os.readlink(link) == str(target):
            return name
        os.unlink(link)
    except FileNotFoundError:
        pass
    except OSError:
        os.unlink(link)
    tmp = links_dir / f".{name}.{os.getpid()}"
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    os.symlink(str(target), tmp)
    os.replace(tmp, link)
    return name


def remove_short_link(links_dir: Path, target: Path) -> None:
    try:
        os.unlink(links_dir / hashlib.sha256(os.fsencode(target)).hexdigest()[:16])
    except FileNotFoundError:
        pass


def _mount_from(cwd: Path, target: str, fstype: str, flags: int, data: str) -> None:
    """mount(2) in a forked child that has chdir'd to ``cwd``: relative paths in ``data``
    resolve there, and this process's cwd never changes."""
    pid = os.fork()
    if pid == 0:  # child: only syscalls, then _exit
        code = 255
        try:
            os.chdir(cwd)
            rc = _lib().mount(b"overlay", os.fsencode(target), fstype.encode(), flags, data.encode())
            code = 0 if rc == 0 else (_errno() or 255)
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise OSError(code, os.strerror(code) if code < 255 else "mount helper failed", target)


def mount_overlay(lowerdirs: list[Path], target: Path, upperdir: Path | None = None,
                  workdir: Path | None = None, readonly: bool = False,
                  links_dir: Path | None = None) -> None:
    """Mount an overlay of ``lowerdirs`` (top-most first) and an optional upper dir on ``target``.

    With no upper dir overlayfs needs two or more lower dirs; a single one is bind-mounted
    read-only instead.
    """
    if not lowerdirs:
        raise ValueError("an overlay needs at least one lower directory")
    flags = MS_RDONLY if readonly or upperdir is None else 0
    up = None if upperdir is None else str(upperdir)
    wk = None if workdir is None else str(workdir)
    data = overlay_options([str(p) for p in lowerdirs], up, wk)
    try:
        if upperdir is None and len(lowerdirs) == 1:
            bind_mount(lowerdirs[0], target, readonly=True)
            return
        if len(data.encode()) < _PAGE:
            mount("overlay", target, "overlay", flags, data)
            return
        if links_dir is None:
            raise DockyardError(f"cannot mount {len(lowerdirs)} layers at {target}: the overlay "
                                "options exceed one page and no directory for short links was given")
        links_dir.mkdir(parents=True, exist_ok=True)
        names = [short_link(links_dir, p) for p in lowerdirs]
        data = overlay_options(names, up, wk)
        if len(data.encode()) >= _PAGE:
            raise DockyardError(f"cannot mount {len(lowerdirs)} layers at {target}: too many layers "
                                "for one overlay mount")
        _mount_from(links_dir, str(target), "overlay", flags, data)
    except OSError as exc:
        raise DockyardError(f"cannot mount overlay at {target}: {exc.strerror}") from None
