"""runc, crun (or any runtime with runc's command line) driven through their CLIs.

Every call passes ``--root <state_dir>`` so that each dockyard state root keeps its own
containers and two roots never collide. ``create``/``exec`` hand the container's stdio to the
runtime as its own fds 0/1/2 (runc and crun pass them on to the container process), so the
runtime's error messages are read from a JSON log file (``--log``) instead of its stderr.
``run`` uses ``run --detach`` (create + start in one process) to save one runtime start-up.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from dockyard.errors import DockyardError, NotFound
from dockyard.runtime.base import (ProcessStartError, Runtime, RuntimeState, Stdio, start_error_exit_code,
                                   status_conflict)


class OciCliRuntime(Runtime):
    """An OCI runtime binary with runc's command line (runc, crun, youki, ...)."""

    def __init__(self, state_dir: Path, binary: str = "runc", name: str | None = None) -> None:
        super().__init__(Path(state_dir))
        path = shutil.which(binary)
        if path is None:
            raise NotFound(f"unknown or invalid runtime name: {binary}")  # docker's words
        self.binary = path
        self.name = name or os.path.basename(binary)

    # ------------------------------------------------------------------ helpers
    def _base(self) -> list[str]:
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        return [self.binary, "--root", str(self.state_dir)]

    def _call(self, *args: str, input: bytes | None = None, container_id: str | None = None,
              operation: str | None = None) -> bytes:
        """Run one runtime command with stdio of our own; raise its error as a DockyardError
        (NotFound / Conflict with the same wording as the built-in runtime when we can tell)."""
        proc = subprocess.run([*self._base(), "--log-format", "json", *args], input=input, capture_output=True)
        if proc.returncode != 0:
            raise self._error(proc.stderr.decode(errors="replace"), container_id, operation)
        return proc.stdout

    def _error(self, text: str, container_id: str | None, operation: str | None = None) -> DockyardError:
        message = _last_line(text) or f"{self.name} failed"
        if container_id and not (self.state_dir / container_id).is_dir():
            return NotFound(f"No such container: {container_id}")
        if container_id and operation:
            try:
                status = self.state(container_id).status
            except DockyardError:
                status = None
            conflict = status_conflict(operation, container_id, status) if status else None
            if conflict is not None:
                return conflict
        return DockyardError(message)

    @contextmanager
    def _logged(self, container_id: str) -> Iterator[tuple[list[str], Path]]:
        """The runtime's base command with ``--log`` pointed at a private JSON log, and a pid file."""
        base = self._base()
        fd, log = tempfile.mkstemp(dir=self.state_dir, prefix=f".{container_id}-", suffix=".log")
        os.close(fd)
        pid_file = Path(log[:-4] + ".pid")
        try:
            yield [*base, "--log", log, "--log-format", "json"], pid_file
        finally:
            for p in (Path(log), pid_file):
                try:
                    p.unlink()
                except FileNotFoundError:
                    pass

    def _spawn(self, cmd: list[str], stdio: Stdio, log: str, what: str) -> None:
        """Run a command that gives the container our stdio; raise a ProcessStartError on failure."""
        devnull = None
        fds: list[int] = []
        for fd, mode in ((stdio.stdin, os.O_RDONLY), (stdio.stdout, os.O_WRONLY), (stdio.stderr, os.O_WRONLY)):
            if fd is None:
                if devnull is None:
                    devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
                fd = devnull
            fds.append(fd)
        try:
            rc = subprocess.run(cmd, stdin=fds[0], stdout=fds[1], stderr=fds[2]).returncode
        finally:
            if devnull is not None:
                os.close(devnull)
        if rc != 0:
            message = _log_error(Path(log)) or f"{self.name} {what} exited with status {rc}"
            prefix = "OCI runtime create failed" if what == "create" else "OCI runtime exec failed: exec failed"
            if what != "create" and message.startswith("exec failed: "):
                message = message[len("exec failed: "):]  # runc's own words start the same way
            raise ProcessStartError(f"{prefix}: {message}: unknown", exit_code=start_error_exit_code(message))

    # ------------------------------------------------------------------ lifecycle
    def create(self, container_id: str, bundle: Path, stdio: Stdio) -> int:
        return self._create_or_run("create", container_id, bundle, stdio)

    def _create_or_run(self, verb: str, container_id: str, bundle: Path, stdio: Stdio) -> int:
        with self._logged(container_id) as (base, pid_file):
            cmd = [*base, verb]
            if verb == "run":
                cmd.append("--detach")
            cmd += ["--bundle", str(Path(bundle).absolute()), "--pid-file", str(pid_file)]
            if stdio.console_socket:
                cmd += ["--console-socket", stdio.console_socket]
            self._spawn([*cmd, container_id], stdio, base[base.index("--log") + 1], "create")
            return int(pid_file.read_text().strip())

    def start(self, container_id: str) -> None:
        self._call("start", container_id, container_id=container_id, operation="start")

    def state(self, container_id: str) -> RuntimeState:
        data = json.loads(self._call("state", container_id, container_id=container_id))
        return RuntimeState(id=data["id"], status=data["status"], pid=int(data.get("pid") or 0),
                            bundle=data.get("bundle", ""), annotations=data.get("annotations") or {})

    def kill(self, container_id: str, signal: int, all_processes: bool = False) -> None:
        args = ["kill"] + (["--all"] if all_processes else []) + [container_id, str(int(signal))]
        self._call(*args, container_id=container_id, operation="kill")

    def delete(self, container_id: str, force: bool = False) -> None:
        self._call("delete", *(["--force"] if force else []), container_id, container_id=container_id,
                   operation="delete")

    def exec(self, container_id: str, process: dict[str, Any], stdio: Stdio) -> int:
        with self._logged(container_id) as (base, pid_file):
            proc_file = pid_file.with_suffix(".json")
            proc_file.write_text(json.dumps(process))
            try:
                cmd = [*base, "exec", "--detach", "--pid-file", str(pid_file), "--process", str(proc_file)]
                if stdio.console_socket:
                    cmd += ["--console-socket", stdio.console_socket]
                try:
                    self._spawn([*cmd, container_id], stdio, base[base.index("--log") + 1], "exec")
                except ProcessStartError:
                    status = self.state(container_id).status
                    conflict = status_conflict("exec", container_id, status)
                    if conflict is not None:
                        raise conflict from None
                    raise
                return int(pid_file.read_text().strip())
            finally:
                proc_file.unlink(missing_ok=True)

    def pause(self, container_id: str) -> None:
        self._call("pause", container_id, container_id=container_id, operation="pause")

    def resume(self, container_id: str) -> None:
        self._call("resume", container_id, container_id=container_id, operation="resume")

    def update(self, container_id: str, resources: dict[str, Any]) -> None:
        self._call("update", "--resources", "-", container_id, input=json.dumps(resources).encode(),
                   container_id=container_id, operation="update")

    def list_ids(self) -> list[str]:
        """IDs of the containers this runtime root knows (``runc list``)."""
        out = self._call("list", "--format", "json")
        return [c["id"] for c in json.loads(out or b"null") or []]


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    if not lines:
        return ""
    last = lines[-1]
    try:  # a JSON log line
        return str(json.loads(last).get("msg", last))
    except (ValueError, AttributeError):
        pass
    m = re.search(r'msg="((?:[^"\\]|\\.)*)"', last)  # logrus text format
    return m.group(1).replace('\\"', '"') if m else last


def _log_error(log: Path) -> str:
    """The last error message in a runtime's JSON log (runc: level/msg; crun: msg/level)."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return ""
    message = ""
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("level") in ("error", "fatal", "panic") and entry.get("msg"):
            message = str(entry["msg"])
    return message


__all__ = ["OciCliRuntime"]
