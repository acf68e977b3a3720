"""Host side of the built-in runtime: the lifecycle operations and the fork into a pid namespace.

See the package docstring for the whole picture; the code that runs inside the container
(from fork to execve) is in ``container.py``.
"""
from __future__ import annotations

import json
import os
import select
import shutil
import signal as signal_module
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dockyard.errors import Conflict, DockyardError, InvalidArgument, NotFound, Unsupported
from dockyard.runtime import linux
from dockyard.runtime.base import (ProcessStartError, Runtime, RuntimeState, Stdio, check_status,
                                   start_error_exit_code, status_conflict)
from dockyard.runtime.builtin import seccomp_setup
from dockyard.runtime.builtin.container import JOIN_ORDER, exec_main, init_main
from dockyard.runtime.builtin.forking import fork_in_namespaces
from dockyard.runtime.builtin.state import (EXEC_FIFO, ContainerState, alive, process_start_time,
                                            validate_id)
from dockyard.runtime.cgroups import Cgroup

SYNC_TIMEOUT = 60.0


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
        seccomp_filter = seccomp_setup.prepare(linux_cfg.get("seccomp"), self.state_dir)
        _ensure_std_fds()
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
                pid = fork_in_namespaces(pid_ns, cgroup, lambda placed: init_main(
                    w, config, rootfs, str(fifo), cgroup, stdio, console_sock, seccomp_filter, placed))
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
                seccomp_filter=seccomp_setup.encode(seccomp_filter),
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
        seccomp_filter = seccomp_setup.decode(st.seccomp_filter)
        _ensure_std_fds()
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
            pid = fork_in_namespaces(pid_ns, cgroup, lambda placed: exec_main(
                w, process, fds, cgroup, stdio, console_sock, seccomp_filter, placed))
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
def _ensure_std_fds() -> None:
    """Fill a closed fd 0/1/2 with /dev/null, so that no pipe or namespace fd we open lands
    there and gets overwritten when the child installs the container's stdio."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)


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


__all__ = ["BuiltinRuntime"]
