"""Forking the container's processes (its init, an exec) into their pid namespace and cgroup.

Moving a process into a cgroup by writing its pid to ``cgroup.procs`` takes the kernel's global
``cgroup_threadgroup_rwsem`` for writing, and taking it first waits for an RCU grace period:
5-15 ms on every container start and every exec (runc and crun pay it too). Two ways around it,
both used here:

* cgroup v2 (the unified hierarchy, pure or hybrid): ``clone3(CLONE_INTO_CGROUP)`` creates the
  child directly in the cgroup — no move at all;
* cgroup v1 hierarchies: the child moves its *only thread* by writing ``0`` to ``tasks``;
  recent kernels (6.x: 0.2 ms here instead of 5-15) move the calling thread alone without the
  global lock. The forked child is single-threaded, so the thread is the whole process. (Older
  kernels take the lock here too: slower, as correct.)

Where ``clone3`` is refused (an old kernel, a seccomp filter, a cgroup that cannot take
processes), a plain ``fork`` and ``cgroup.procs`` do the same job, slowly.

``clone3`` is only used while the calling process has one thread. A raw clone bypasses glibc's
own fork handling: in the child, glibc still believes the parent's other threads exist and
keeps whatever internal lock one of them held at that instant (the thread-stack lock that
``setgroups``/``setresuid`` take to broadcast the new identity to "all threads", malloc's arena
locks). A child of a multi-threaded parent (a parallel build, the API service) would then hang
forever in ``setgroups`` — seen once in a few hundred parallel builds. ``os.fork`` takes and
resets those locks; it is what a threaded parent gets.
"""
from __future__ import annotations

import ctypes
import errno
import os
import signal
from typing import Any, Callable

from dockyard.runtime import linux
from dockyard.runtime.cgroups import Cgroup

SYS_CLONE3 = 435  # the same number on every architecture (the generic syscall table)
CLONE_INTO_CGROUP = 0x200000000


class _CloneArgs(ctypes.Structure):
    """``struct clone_args`` (linux/sched.h), up to ``cgroup`` (CLONE_ARGS_SIZE_VER2)."""

    _fields_ = [(name, ctypes.c_uint64) for name in (
        "flags", "pidfd", "child_tid", "parent_tid", "exit_signal", "stack", "stack_size", "tls",
        "set_tid", "set_tid_size", "cgroup")]


# called with the GIL held (PyDLL), as os.fork calls fork(): the child's only thread owns it
_pylibc = ctypes.PyDLL(None, use_errno=True)
_pylibc.syscall.restype = ctypes.c_long
_clone3_works = True  # cleared after ENOSYS/EPERM from a kernel or filter that refuses clone3


def _clone_into(cgroup_fd: int) -> int:
    """``os.fork()`` with the child created in the cgroup v2 directory ``cgroup_fd``; raises
    OSError when clone3 refuses. Python's fork hooks run exactly as for ``os.fork``."""
    args = _CloneArgs(flags=CLONE_INTO_CGROUP, exit_signal=signal.SIGCHLD, cgroup=cgroup_fd)
    api = ctypes.pythonapi
    api.PyOS_BeforeFork()
    pid = _pylibc.syscall(ctypes.c_long(SYS_CLONE3), ctypes.byref(args), ctypes.c_size_t(ctypes.sizeof(args)))
    if pid == 0:
        api.PyOS_AfterFork_Child()
        return 0
    err = ctypes.get_errno()
    api.PyOS_AfterFork_Parent()
    if pid < 0:
        raise OSError(err, f"clone3: {os.strerror(err)}")
    return pid


def _single_threaded() -> bool:
    """Whether this process has exactly one thread (procfs counts threads + 2 as the task
    directory's links: one stat, no listing)."""
    try:
        return os.stat("/proc/self/task").st_nlink == 3
    except OSError:
        return False


def _unified_fd(cgroup: Cgroup) -> int | None:
    d = cgroup.unified
    if d is None or not _clone3_works or not _single_threaded():
        return None
    try:
        return os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None


def fork_child(cgroup: Cgroup) -> tuple[int, bool]:
    """Fork; the child is already in ``cgroup``'s unified (v2) directory when clone3 could put it
    there. Returns (pid — 0 in the child —, placed)."""
    global _clone3_works
    fd = _unified_fd(cgroup)
    if fd is not None:
        try:
            return _clone_into(fd), True
        except OSError as exc:
            if exc.errno in (errno.ENOSYS, errno.EPERM):
                _clone3_works = False
        finally:
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
    return os.fork(), False


def join_cgroup(cgroup: Cgroup, placed: bool) -> None:
    """In the (single-threaded) child: join every hierarchy ``fork_child`` did not place us in."""
    for h in cgroup.layout:
        d = cgroup.dirs[h.key]
        if h.version == 1:
            path = os.path.join(d, "tasks")
        elif placed:
            continue
        else:
            path = os.path.join(d, "cgroup.procs")
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, b"0")
        finally:
            os.close(fd)


def fork_in_namespaces(pid_ns: dict[str, Any] | None, cgroup: Cgroup, child: Callable[[bool], None]) -> int:
    """Fork ``child(placed)`` (which never returns) as PID 1 of a new pid namespace, or into an
    existing one (``path``/``fd``), or plainly when ``pid_ns`` is None; see :func:`fork_child`
    for ``placed``. Only the calling thread's namespace for children changes, and it is
    restored before returning."""
    own = -1
    if pid_ns is not None:
        own = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        try:
            if "fd" in pid_ns:
                linux.setns(pid_ns["fd"], linux.CLONE_NEWPID, "setns pid")
            elif pid_ns.get("path"):
                fd = os.open(pid_ns["path"], os.O_RDONLY | os.O_CLOEXEC)
                try:
                    linux.setns(fd, linux.CLONE_NEWPID, "setns pid")
                finally:
                    os.close(fd)
            else:
                linux.unshare(linux.CLONE_NEWPID)
        except BaseException:
            os.close(own)
            raise
    try:
        pid, placed = fork_child(cgroup)
        if pid == 0:
            try:
                signal.set_wakeup_fd(-1)  # the caller's wakeup pipe is not ours to write
                child(placed)
            finally:
                os._exit(1)
    finally:
        if own >= 0:
            linux.setns(own, linux.CLONE_NEWPID, "setns back to the runtime's pid namespace")
            os.close(own)
    return pid
