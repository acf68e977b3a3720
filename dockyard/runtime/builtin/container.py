"""Container side of the built-in runtime: from fork to execve, for the init and for exec.

These functions run in the forked child only. They never return: they either execve the
container's program or report what failed on the sync pipe and ``_exit``. Everything they need
is imported by the parent before the fork, so a child never takes the import lock.
"""
from __future__ import annotations

import errno
import json
import os
from typing import Any

from dockyard.runtime import linux
from dockyard.runtime.base import Stdio
from dockyard.runtime.builtin import process as proc_setup
from dockyard.runtime.builtin import rootfs as rootfs_setup
from dockyard.runtime.builtin import seccomp_setup
from dockyard.runtime.builtin.forking import join_cgroup
from dockyard.runtime.cgroups import Cgroup
from dockyard.runtime.paths import secure_join
from dockyard.runtime.seccomp_bpf import CompiledFilter

# setns order for exec (nsenter's): ipc, uts, net, pid is done by the fork, then mount, then cgroup
JOIN_ORDER = ("ipc", "uts", "network", "mount", "cgroup")


def _report(w: int, **msg: Any) -> None:
    data = (json.dumps(msg) + "\n").encode()
    while data:
        data = data[os.write(w, data):]


def init_main(w: int, config: dict[str, Any], rootfs: str, fifo: str, cgroup: Cgroup, stdio: Stdio,
               console_sock: Any, seccomp: CompiledFilter | None = None, placed: bool = False) -> None:
    """The container's init, from fork to execve. Never returns. ``placed``: the fork created
    it in the cgroup's v2 directory already (see ``forking``)."""
    process = config["process"]
    linux_cfg = config.get("linux") or {}
    namespaces = linux_cfg.get("namespaces") or []
    types = {ns["type"] for ns in namespaces}
    try:
        _harden()
        os.setsid()
        proc_setup.install_stdio([None, None, None] if console_sock else [stdio.stdin, stdio.stdout, stdio.stderr])
        join_cgroup(cgroup, placed)
        _set_oom_score_adj(process.get("oomScoreAdj"))
        flags = 0
        for ns in namespaces:
            t = ns["type"]
            if t == "pid":
                continue
            if ns.get("path"):
                fd = os.open(ns["path"], os.O_RDONLY | os.O_CLOEXEC)
                try:
                    linux.setns(fd, linux.NAMESPACE_FLAGS[t], f"join {t} namespace {ns['path']}")
                finally:
                    os.close(fd)
            else:
                flags |= linux.NAMESPACE_FLAGS[t]
        if flags:
            linux.unshare(flags)
            if flags & linux.NAMESPACE_FLAGS["network"]:
                linux.loopback_up()  # a namespace we made: its lo comes up, as runc brings it up
        fifo_fd = os.open(fifo, os.O_PATH | os.O_CLOEXEC)
        if "mount" not in types:
            raise OSError(errno.EINVAL, "a mount namespace is required")
        cwd = process.get("cwd") or "/"
        secure_join(rootfs, cwd).mkdir(parents=True, exist_ok=True)
        rootfs_setup.prepare_rootfs(config, rootfs, cgroup, "cgroup" in types)
        rootfs_setup.pivot(rootfs)
        os.umask(0o022)
        if config.get("hostname"):
            if "uts" not in types:
                raise OSError(errno.EINVAL, "unable to set hostname without a private UTS namespace")
            linux.sethostname(config["hostname"])
        if config.get("domainname"):
            linux.setdomainname(config["domainname"])
        for key, value in (linux_cfg.get("sysctl") or {}).items():
            _write_sysctl(key, value)
        if console_sock is not None:
            from dockyard.runtime.builtin import console

            console.setup(console_sock, process.get("consoleSize"), mount_console=True)
        if (config.get("root") or {}).get("readonly"):
            rootfs_setup.make_root_readonly()
        rootfs_setup.readonly_paths(linux_cfg.get("readonlyPaths") or [])
        rootfs_setup.mask_paths(linux_cfg.get("maskedPaths") or [])
        path, env = _prepare_process(process, seccomp)
        _report(w, ready=True)
        os.close(w)
        w = -1
    except proc_setup.ExecError as exc:
        _report(w, error=exc.message, exit_code=exc.exit_code)
        os._exit(1)
    except BaseException as exc:  # noqa: BLE001 - everything goes back to the caller
        _report(w, error=f"error during container init: {_describe(exc)}")
        os._exit(1)
    # wait for start: opening the FIFO for writing blocks until `start` opens it for reading
    try:
        fd = os.open(f"/proc/self/fd/{fifo_fd}", os.O_WRONLY | os.O_CLOEXEC)
        os.write(fd, b"0")
        os.close(fd)
        os.close(fifo_fd)
    except OSError as exc:
        os.write(2, f"exec fifo: {_describe(exc)}\n".encode())
        os._exit(1)
    proc_setup.reset_signals()
    proc_setup.execute(path, process["args"], env)


def exec_main(w: int, process: dict[str, Any], fds: dict[str, int], cgroup: Cgroup, stdio: Stdio,
               console_sock: Any, seccomp: CompiledFilter | None = None, placed: bool = False) -> None:
    """An exec'd process, from fork to execve: join cgroup and namespaces, become ``process``."""
    try:
        _harden()
        os.setsid()
        proc_setup.install_stdio([None, None, None] if console_sock else [stdio.stdin, stdio.stdout, stdio.stderr])
        join_cgroup(cgroup, placed)
        _set_oom_score_adj(process.get("oomScoreAdj"))  # as runc: an exec gets the container's
        for t in JOIN_ORDER:
            if t in fds:
                linux.setns(fds[t], linux.NAMESPACE_FLAGS[t], f"join {t} namespace")
        os.chdir("/")
        if console_sock is not None:
            from dockyard.runtime.builtin import console

            console.setup(console_sock, process.get("consoleSize"), mount_console=False)
        path, env = _prepare_process(process, seccomp)
    except proc_setup.ExecError as exc:
        _report(w, error=exc.message, exit_code=exc.exit_code)
        os._exit(1)
    except BaseException as exc:  # noqa: BLE001
        _report(w, error=_describe(exc))  # runc says only what failed
        os._exit(1)
    proc_setup.reset_signals()
    proc_setup.execute(path, process["args"], env)  # the CLOEXEC sync pipe closes: success


def _harden() -> None:
    """Non-dumpable until execve (as runc's init): the container's processes can neither ptrace
    nor read /proc/<pid>/{mem,exe,environ} of this copy of the monitor while it sets up."""
    linux.prctl(linux.PR_SET_DUMPABLE, 0, what="prctl(PR_SET_DUMPABLE)")


def _prepare_process(process: dict[str, Any], seccomp: CompiledFilter | None) -> tuple[str, dict[str, str]]:
    """rlimits, no_new_privs, identity and capabilities, then the program's path (as the user);
    the seccomp filter goes in where runc loads it (see ``seccomp_setup.load_in_child``)."""
    proc_setup.apply_rlimits(process.get("rlimits") or [])
    umask = (process.get("user") or {}).get("umask")
    if umask is not None:
        os.umask(int(umask))
    no_new_privs = bool(process.get("noNewPrivileges"))
    if no_new_privs:
        linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1, what="prctl(PR_SET_NO_NEW_PRIVS)")
    env = proc_setup.prepare_env(process)
    seccomp_setup.load_in_child(seccomp, no_new_privs, "before-finalize")
    proc_setup.finalize(process)
    path = proc_setup.lookup_executable(process["args"][0], env)
    seccomp_setup.load_in_child(seccomp, no_new_privs, "before-exec")
    proc_setup.close_inherited_fds()
    return path, env


def _set_oom_score_adj(value: Any) -> None:
    if value is None:
        return
    with open("/proc/self/oom_score_adj", "r+") as f:
        if int(f.read().strip() or 0) != int(value):
            f.seek(0)
            f.write(str(int(value)))


def _write_sysctl(key: str, value: str) -> None:
    path = "/proc/sys/" + key.replace(".", "/")
    if ".." in key or key.startswith("/"):
        raise OSError(errno.EINVAL, f"invalid sysctl {key}")
    try:
        with open(path, "w") as f:
            f.write(str(value))
    except OSError as exc:
        raise OSError(exc.errno, f"write sysctl {key}: {os.strerror(exc.errno or 0)}") from None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror
        if exc.filename and str(exc.filename) not in text:
            text = f"{exc.filename}: {text}"
        return text
    return str(exc) or type(exc).__name__


