"""Network namespaces pinned by a bind mount of their nsfs file, at a path runtimes can join.

We create the namespace in a short-lived thread (``unshare(CLONE_NEWNET)`` only changes the
calling thread) and bind-mount ``/proc/self/task/<tid>/ns/net`` onto an empty file, which keeps
the namespace alive with no process in it. The OCI spec then names that file as the network
namespace ``path``; runc, crun and the built-in runtime ``setns`` into it.
"""
from __future__ import annotations

import ctypes
import errno
import os
import threading
from pathlib import Path
from typing import Callable, TypeVar

from dockyard.errors import DockyardError

CLONE_NEWNET = 0x40000000
MS_BIND = 0x1000
MNT_DETACH = 0x2
_libc = ctypes.CDLL(None, use_errno=True)

T = TypeVar("T")


def _check(ret: int, what: str, path: str | Path) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise DockyardError(f"{what} {path}: {os.strerror(err)}")


def is_netns(path: str | Path) -> bool:
    """True if ``path`` is a pinned network namespace (an nsfs file, not the empty mount point)."""
    try:
        return os.stat(path).st_dev == os.stat("/proc/self/ns/net").st_dev
    except OSError:
        return False


def _mount_point(path: Path) -> None:
    """The empty file a namespace is bind-mounted on."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o711)
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_CREAT, 0o444))
    except OSError as exc:
        raise DockyardError(f"cannot create network namespace file {path}: {exc.strerror}") from exc


def create(path: str | Path) -> None:
    """Create a new, empty network namespace pinned at ``path`` (idempotent)."""
    path = Path(path)
    if is_netns(path):
        return
    _mount_point(path)
    failure: list[BaseException] = []

    def pin() -> None:
        try:
            _check(_libc.unshare(CLONE_NEWNET), "unshare network namespace for", path)
            src = f"/proc/self/task/{threading.get_native_id()}/ns/net".encode()
            _check(_libc.mount(src, str(path).encode(), b"none", MS_BIND, None),
                   "bind-mount network namespace on", path)
        except BaseException as exc:  # reported in the caller's thread
            failure.append(exc)

    worker = threading.Thread(target=pin, name="netns-create")
    worker.start()
    worker.join()
    if failure:
        try:
            path.unlink()
        except OSError:
            pass
        raise failure[0]


def adopt(source: str | Path, path: str | Path) -> None:
    """Pin an existing namespace (``/proc/<pid>/ns/net`` of a container the runtime gave its own
    namespace) at ``path``, so it can be plugged into and released like one ``create`` made."""
    path = Path(path)
    if is_netns(path):
        return
    _mount_point(path)
    if _libc.mount(str(source).encode(), str(path).encode(), b"none", MS_BIND, None) != 0:
        err = ctypes.get_errno()
        try:
            path.unlink()
        except OSError:
            pass
        raise DockyardError(f"bind-mount network namespace on {path}: {os.strerror(err)}")


def remove(path: str | Path) -> None:
    """Unpin and delete the namespace file; a missing or already unmounted file is fine."""
    path = Path(path)
    while is_netns(path):
        if _libc.umount2(str(path).encode(), MNT_DETACH) != 0:
            err = ctypes.get_errno()
            if err in (errno.EINVAL, errno.ENOENT):
                break
            raise DockyardError(f"cannot unmount network namespace {path}: {os.strerror(err)}")
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def run_in(path: str | Path, fn: Callable[[], T]) -> T:
    """Run ``fn`` in a thread that has joined the namespace at ``path``; return its result.

    Sockets created by ``fn`` stay in that namespace after the thread ends, which is how the
    DNS resolver listens on 127.0.0.11 inside each container.
    """
    result: list[T] = []
    failure: list[BaseException] = []

    def body() -> None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                _check(_libc.setns(fd, CLONE_NEWNET), "enter network namespace", path)
            finally:
                os.close(fd)
            result.append(fn())
        except BaseException as exc:
            failure.append(exc)

    worker = threading.Thread(target=body, name="netns-run")
    worker.start()
    worker.join()
    if failure:
        raise failure[0]
    return result[0]
