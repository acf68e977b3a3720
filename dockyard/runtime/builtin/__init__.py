"""The built-in OCI runtime: runs a bundle with no runtime binary to start.

``create`` forks the container's init straight from the calling process (the engine's
monitor): no runtime executable, no Python re-exec. The caller's thread briefly takes a new pid
namespace for its *children* (``unshare(CLONE_NEWPID)``, fork, ``setns`` back), so the fork is
already PID 1 of the container and a direct child of the monitor. The child then follows runc:
join the cgroup (created and limited beforehand), unshare/join the other namespaces, build the
rootfs and pivot_root, hostname, sysctls, console, read-only and masked paths, rlimits,
no_new_privs, capabilities and user, look the program up, report "ready" on a pipe, and block
opening ``exec.fifo`` until ``start`` opens its other end; then execve.

``exec`` forks the same way into the init's pid namespace, joins its cgroup and every other
namespace with setns, and applies the OCI ``process`` it was given.
"""
from __future__ import annotations

import errno
import json
import os
import select
import shutil
import signal as signal_module
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from dockyard.errors import Conflict, DockyardError, InvalidArgument, NotFound, Unsupported
from dockyard.runtime import linux
from dockyard.runtime.base import (ProcessStartError, Runtime, RuntimeState, Stdio, start_error_exit_code,
                                   check_status, status_conflict)
from dockyard.runtime.builtin import process as proc_setup
from dockyard.runtime.builtin import rootfs as rootfs_setup
from dockyard.runtime.builtin.state import (EXEC_FIFO, ContainerState, alive, process_start_time,
                                            validate_id)
from dockyard.runtime.cgroups import Cgroup
from dockyard.runtime.paths import secure_join

SYNC_TIMEOUT = 60.0
# setns order for exec (nsenter's): ipc, uts, net, pid is done by the fork, then mount, then cgroup
JOIN_ORDER = ("ipc", "uts", "network", "mount", "cgroup")


class BuiltinRuntime(Runtime):
    """runc's lifecycle (create/start/state/kill/delete/exec/pause/resume/update) in-process."""

    name = "builtin"

    # ------------------------------------------------------------------ helpers
    def _dir(self, container_id: str) -> Path:
        validate_id(container_id)
        return self.state_dir / container_id

    def _load(self, container_id: str) -> tuple[Path, ContainerState]:
        d = self._dir(container_id)
        return d, ContainerState.load(d, container_id)

    def _status(self, d: Path, st: ContainerState) -> str:
        if not alive(st.pid, st.start_time):
            return "stopped"
        if (d / EXEC_FIFO).exists():
            return "created"
        if Cgroup(st.cgroups_path).frozen():
            return "paused"
        return "running"

    # ------------------------------------------------------------------ create / start
    def create(self, container_id: str, bundle: Path, stdio: Stdio) -> int:
        d = self._dir(container_id)
        bundle = Path(bundle).absolute()
        try:
            config = json.loads((bundle / "config.json").read_text())
        except FileNotFoundError:
            raise NotFound(f"OCI bundle {bundle}: config.json not found") from None
        except ValueError as exc:
            raise InvalidArgument(f"OCI bundle {bundle}: config.json is not valid JSON: {exc}") from None
        process = config.get("process") or {}
        if not process.get("args"):
            raise InvalidArgument("OCI spec: process.args must not be empty")
        linux_cfg = config.get("linux") or {}
        namespaces = linux_cfg.get("namespaces") or []
        if any(ns.get("type") == "user" for ns in namespaces):
            raise Unsupported("the built-in runtime does not support user namespaces; use --runtime runc or crun")
        root = Path((config.get("root") or {}).get("path") or "rootfs")
        rootfs = str((bundle / root) if not root.is_absolute() else root)
        if not os.path.isdir(rootfs):
            raise NotFound(f"rootfs {rootfs} does not exist")
        rootfs = os.path.realpath(rootfs)
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            d.mkdir(mode=0o711)
        except FileExistsError:
            raise Conflict(f"container with id exists: {container_id}") from None
        cgroup = Cgroup(linux_cfg.get("cgroupsPath") or f"/dockyard/{container_id}")
        pid = 0
        try:
            fifo = d / EXEC_FIFO
            os.mkfifo(fifo, 0o622)
            os.chmod(fifo, 0o622)
            cgroup.create(linux_cfg.get("resources") or {})
            console_sock = None
            if process.get("terminal"):
                if not stdio.console_socket:
                    raise InvalidArgument("process.terminal is set but no console socket was given")
                from dockyard.runtime.builtin import console

                console_sock = console.connect(stdio.console_socket)
            r, w = os.pipe()
            pid_ns = next((ns for ns in namespaces if ns.get("type") == "pid"), None)
            try:
                pid = _fork_in_pid_namespace(pid_ns, lambda: _init_main(
                    w, config, rootfs, str(fifo), cgroup, stdio, console_sock))
            finally:
                os.close(w)
                if console_sock is not None:
                    console_sock.close()
            try:
                _await_sync(r, pid, "create")
            finally:
                os.close(r)
            start_time = process_start_time(pid)
            if start_time is None:
                raise ProcessStartError("OCI runtime create failed: container init exited during setup: unknown")
            ContainerState(
                id=container_id, pid=pid, start_time=start_time, bundle=str(bundle), rootfs=rootfs,
                created=datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
                cgroups_path=cgroup.path, namespaces=namespaces,
                annotations=config.get("annotations") or {}, config_process=process,
            ).save(d)
            return pid
        except BaseException:
            if pid > 0:
                _kill_and_reap(pid)
            cgroup.remove()
            shutil.rmtree(d, ignore_errors=True)
            raise

    def start(self, container_id: str) -> None:
        d, st = self._load(container_id)
        fifo = d / EXEC_FIFO
        check_status("start", container_id, self._status(d, st))
        try:
            fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            check_status("start", container_id, "running")  # always raises
        try:
            poller = select.poll()
            poller.register(fd, select.POLLIN | select.POLLHUP)
            while True:
                if poller.poll(50):
                    data = os.read(fd, 1)
                    if data:
                        break
                if not alive(st.pid, st.start_time):
                    raise ProcessStartError("OCI runtime start failed: container init exited before start: unknown")
        finally:
            os.close(fd)
        try:
            fifo.unlink()
        except FileNotFoundError:
            pass

    # ------------------------------------------------------------------ queries and signals
    def state(self, container_id: str) -> RuntimeState:
        d, st = self._load(container_id)
        status = self._status(d, st)
        return RuntimeState(id=st.id, status=status, pid=st.pid if status != "stopped" else 0,
                            bundle=st.bundle, annotations=st.annotations)

    def list_ids(self) -> list[str]:
        if not self.state_dir.is_dir():
            return []
        return sorted(p.name for p in self.state_dir.iterdir() if (p / "state.json").exists())

    def kill(self, container_id: str, signal: int, all_processes: bool = False) -> None:
        d, st = self._load(container_id)
        running = alive(st.pid, st.start_time)
        if all_processes:
            cg = Cgroup(st.cgroups_path)
            pids = cg.pids()
            if signal == signal_module.SIGKILL and cg.frozen():
                cg.thaw()
            for pid in pids:
                _signal(pid, signal)
            if not pids and not running:
                check_status("kill", container_id, "stopped")
            return
        if not running:
            check_status("kill", container_id, "stopped")
        _signal(st.pid, signal)

    def pause(self, container_id: str) -> None:
        d, st = self._load(container_id)
        check_status("pause", container_id, self._status(d, st))
        Cgroup(st.cgroups_path).freeze()

    def resume(self, container_id: str) -> None:
        d, st = self._load(container_id)
        check_status("resume", container_id, self._status(d, st))
        Cgroup(st.cgroups_path).thaw()

    def update(self, container_id: str, resources: dict[str, Any]) -> None:
        _d, st = self._load(container_id)
        check_status("update", container_id, self._status(_d, st))
        # device rules are set once at create (runc's update does not take them either)
        Cgroup(st.cgroups_path).apply({k: v for k, v in resources.items() if k != "devices"})

    def delete(self, container_id: str, force: bool = False) -> None:
        d, st = self._load(container_id)
        status = self._status(d, st)
        conflict = status_conflict("delete", container_id, status)
        if conflict is not None and not force:
            raise conflict
        cg = Cgroup(st.cgroups_path)
        if status != "stopped" or cg.pids():
            if cg.frozen():
                cg.thaw()
            for pid in {*cg.pids(), *([st.pid] if status != "stopped" else [])}:
                _signal(pid, signal_module.SIGKILL)
            deadline = time.monotonic() + 5
            while (cg.pids() or alive(st.pid, st.start_time)) and time.monotonic() < deadline:
                time.sleep(0.005)
        if not cg.remove(timeout=5):
            raise DockyardError(f"cannot remove cgroup {st.cgroups_path} of container {container_id}: still busy")
        shutil.rmtree(d, ignore_errors=True)

    # ------------------------------------------------------------------ exec
    def exec(self, container_id: str, process: dict[str, Any], stdio: Stdio) -> int:
        d, st = self._load(container_id)
        check_status("exec", container_id, self._status(d, st))
        if not process.get("args"):
            raise InvalidArgument("OCI process: args must not be empty")
        ns_types = [ns.get("type") for ns in st.namespaces]
        fds: dict[str, int] = {}
        console_sock = None
        r = w = -1
        try:
            for t in ns_types:
                if t in JOIN_ORDER or t == "pid":
                    fds[t] = os.open(f"/proc/{st.pid}/ns/{linux.NAMESPACE_FILES[t]}", os.O_RDONLY | os.O_CLOEXEC)
            if not alive(st.pid, st.start_time):  # the namespaces we opened may belong to a recycled pid
                check_status("exec", container_id, "stopped")
            if process.get("terminal"):
                if not stdio.console_socket:
                    raise InvalidArgument("process.terminal is set but no console socket was given")
                from dockyard.runtime.builtin import console

                console_sock = console.connect(stdio.console_socket)
            r, w = os.pipe()
            cgroup = Cgroup(st.cgroups_path)
            pid_ns = {"type": "pid", "fd": fds["pid"]} if "pid" in fds else None
            pid = _fork_in_pid_namespace(pid_ns, lambda: _exec_main(w, process, fds, cgroup, stdio, console_sock))
            os.close(w)
            w = -1
            try:
                _await_sync(r, pid, "exec")
            except BaseException:
                _kill_and_reap(pid)
                raise
            return pid
        finally:
            for fd in (*fds.values(), r, w):
                if fd >= 0:
                    os.close(fd)
            if console_sock is not None:
                console_sock.close()


# ---------------------------------------------------------------------- host-side helpers
def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _kill_and_reap(pid: int) -> None:
    _signal(pid, signal_module.SIGKILL)
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _fork_in_pid_namespace(pid_ns: dict[str, Any] | None, child: Callable[[], None]) -> int:
    """Fork ``child`` (which never returns) as PID 1 of a new pid namespace, or into an existing
    one (``path``/``fd``), or plainly when ``pid_ns`` is None. Only the calling thread's
    namespace for children changes, and it is restored before returning."""
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
        pid = os.fork()
        if pid == 0:
            try:
                signal_module.set_wakeup_fd(-1)  # the caller's wakeup pipe is not ours to write
                child()
            finally:
                os._exit(1)
    finally:
        if own >= 0:
            linux.setns(own, linux.CLONE_NEWPID, "setns back to the runtime's pid namespace")
            os.close(own)
    return pid


def _await_sync(r: int, pid: int, what: str) -> None:
    """Wait for the child's verdict on the sync pipe: "ready" / nothing (exec done) / an error."""
    chunks: list[bytes] = []
    deadline = time.monotonic() + SYNC_TIMEOUT
    poller = select.poll()
    poller.register(r, select.POLLIN | select.POLLHUP)
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ProcessStartError(f"OCI runtime {what} failed: timed out waiting for the container process: unknown")
        if not poller.poll(remaining * 1000):
            continue
        data = os.read(r, 65536)
        if not data:
            break
        chunks.append(data)
        if b"\n" in data:
            break
    text = b"".join(chunks).decode(errors="replace").strip()
    if not text:
        if what == "exec":
            return  # the pipe closed on execve: the program runs
        raise ProcessStartError(f"OCI runtime {what} failed: container init exited during setup: unknown")
    msg = json.loads(text)
    if msg.get("ready"):
        return
    message = msg.get("error", "unknown error")
    prefix = "OCI runtime create failed" if what == "create" else "OCI runtime exec failed: exec failed"
    code = msg.get("exit_code") or start_error_exit_code(message)
    raise ProcessStartError(f"{prefix}: unable to start container process: {message}: unknown", exit_code=code)


def _report(w: int, **msg: Any) -> None:
    data = (json.dumps(msg) + "\n").encode()
    while data:
        data = data[os.write(w, data):]


# ---------------------------------------------------------------------- container side
def _init_main(w: int, config: dict[str, Any], rootfs: str, fifo: str, cgroup: Cgroup, stdio: Stdio,
               console_sock: Any) -> None:
    """The container's init, from fork to execve. Never returns."""
    process = config["process"]
    linux_cfg = config.get("linux") or {}
    namespaces = linux_cfg.get("namespaces") or []
    types = {ns["type"] for ns in namespaces}
    try:
        os.setsid()
        proc_setup.install_stdio([None, None, None] if console_sock else [stdio.stdin, stdio.stdout, stdio.stderr])
        cgroup.join(0)
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
        path, env = _prepare_process(process)
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


def _exec_main(w: int, process: dict[str, Any], fds: dict[str, int], cgroup: Cgroup, stdio: Stdio,
               console_sock: Any) -> None:
    """An exec'd process, from fork to execve: join cgroup and namespaces, become ``process``."""
    try:
        os.setsid()
        proc_setup.install_stdio([None, None, None] if console_sock else [stdio.stdin, stdio.stdout, stdio.stderr])
        cgroup.join(0)
        for t in JOIN_ORDER:
            if t in fds:
                linux.setns(fds[t], linux.NAMESPACE_FLAGS[t], f"join {t} namespace")
        os.chdir("/")
        if console_sock is not None:
            from dockyard.runtime.builtin import console

            console.setup(console_sock, process.get("consoleSize"), mount_console=False)
        path, env = _prepare_process(process)
    except proc_setup.ExecError as exc:
        _report(w, error=exc.message, exit_code=exc.exit_code)
        os._exit(1)
    except BaseException as exc:  # noqa: BLE001
        _report(w, error=f"error during exec setup: {_describe(exc)}")
        os._exit(1)
    proc_setup.reset_signals()
    proc_setup.execute(path, process["args"], env)  # the CLOEXEC sync pipe closes: success


def _prepare_process(process: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """rlimits, no_new_privs, identity and capabilities, then the program's path (as the user)."""
    proc_setup.apply_rlimits(process.get("rlimits") or [])
    umask = (process.get("user") or {}).get("umask")
    if umask is not None:
        os.umask(int(umask))
    if process.get("noNewPrivileges"):
        linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1, what="prctl(PR_SET_NO_NEW_PRIVS)")
    env = proc_setup.prepare_env(process)
    proc_setup.finalize(process)
    path = proc_setup.lookup_executable(process["args"][0], env)
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


__all__ = ["BuiltinRuntime"]
