"""A tiny stand-in for the engine's monitor, driven by the runtime tests over a pipe.

It makes itself a child subreaper (so runc's/crun's double-forked inits and exec'd processes
become its children, exactly as under the real monitor), drives one runtime through
``dockyard.runtime.base.Runtime``, reaps children and reports exit statuses. One JSON request per
line on stdin, one JSON reply per line on stdout; container stdio goes to files named by the test.

    python harness.py <runtime-name> <state-dir>
"""
from __future__ import annotations

import json
import os
import socket
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from dockyard.errors import DockyardError
from dockyard.runtime import Stdio, get_runtime, linux


class Harness:
    def __init__(self, runtime_name: str, state_dir: str) -> None:
        linux.set_child_subreaper()
        self.runtime = get_runtime(runtime_name, Path(state_dir))
        self.exited: dict[int, int] = {}
        self.consoles: dict[str, int] = {}   # key -> pty master fd
        self.console_dir = Path(state_dir).parent / "consoles"
        self.console_dir.mkdir(parents=True, exist_ok=True)

    # stdio ----------------------------------------------------------------
    def _stdio(self, req: dict[str, Any]) -> tuple[Stdio, list[int], socket.socket | None]:
        fds: list[int] = []

        def opened(path: str | None, flags: int) -> int | None:
            if not path:
                return None
            fd = os.open(path, flags | os.O_CLOEXEC, 0o644)
            fds.append(fd)
            return fd

        listener = None
        console_path = None
        if req.get("console"):
            console_path = str(self.console_dir / f"{req['key']}.sock")
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(console_path)
            listener.listen(1)
        stdio = Stdio(stdin=opened(req.get("stdin"), os.O_RDONLY),
                      stdout=opened(req.get("stdout"), os.O_WRONLY | os.O_CREAT | os.O_APPEND),
                      stderr=opened(req.get("stderr"), os.O_WRONLY | os.O_CREAT | os.O_APPEND),
                      console_socket=console_path)
        return stdio, fds, listener

    def _launch(self, req: dict[str, Any], call) -> int:
        stdio, fds, listener = self._stdio(req)
        try:
            pid = call(stdio)
            if listener is not None:
                from dockyard.runtime.builtin.console import receive_master

                self.consoles[req["key"]] = receive_master(listener, timeout=10)
            return pid
        finally:
            for fd in fds:
                os.close(fd)
            if listener is not None:
                listener.close()
                os.unlink(stdio.console_socket)  # type: ignore[arg-type]

    # requests -------------------------------------------------------------
    def op_create(self, req: dict[str, Any]) -> int:
        return self._launch(req, lambda s: self.runtime.create(req["id"], Path(req["bundle"]), s))

    def op_run(self, req: dict[str, Any]) -> int:
        return self._launch(req, lambda s: self.runtime.run(req["id"], Path(req["bundle"]), s))

    def op_exec(self, req: dict[str, Any]) -> int:
        return self._launch(req, lambda s: self.runtime.exec(req["id"], req["process"], s))

    def op_start(self, req: dict[str, Any]) -> None:
        self.runtime.start(req["id"])

    def op_state(self, req: dict[str, Any]) -> dict[str, Any]:
        st = self.runtime.state(req["id"])
        return {"id": st.id, "status": st.status, "pid": st.pid, "bundle": st.bundle}

    def op_kill(self, req: dict[str, Any]) -> None:
        self.runtime.kill(req["id"], req["signal"], req.get("all", False))

    def op_delete(self, req: dict[str, Any]) -> None:
        self.runtime.delete(req["id"], req.get("force", False))

    def op_pause(self, req: dict[str, Any]) -> None:
        self.runtime.pause(req["id"])

    def op_resume(self, req: dict[str, Any]) -> None:
        self.runtime.resume(req["id"])

    def op_update(self, req: dict[str, Any]) -> None:
        self.runtime.update(req["id"], req["resources"])

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.exited[pid] = os.waitstatus_to_exitcode(status)

    def op_wait(self, req: dict[str, Any]) -> int | None:
        """The exit code of ``pid`` (128+n for a signal, as docker reports), None on timeout."""
        pid, deadline = req["pid"], time.monotonic() + req.get("timeout", 20)
        while time.monotonic() < deadline:
            self._reap()
            if pid in self.exited:
                code = self.exited.pop(pid)
                return 128 - code if code < 0 else code
            time.sleep(0.005)
        return None

    def op_children(self, req: dict[str, Any]) -> list[int]:
        """Pids of live children of the harness (what a leaking runtime would leave behind)."""
        self._reap()
        me = str(os.getpid())
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = Path(f"/proc/{entry}/stat").read_text()
                except OSError:
                    continue
                fields = stat[stat.rindex(")") + 2:].split()
                if fields[1] == me and fields[0] != "Z":
                    found.append(int(entry))
        return found

    def op_console_write(self, req: dict[str, Any]) -> None:
        os.write(self.consoles[req["key"]], req["data"].encode())

    def op_console_read(self, req: dict[str, Any]) -> str:
        """Read the console until ``until`` shows up (or the timeout / EOF)."""
        import select

        fd, out = self.consoles[req["key"]], b""
        deadline = time.monotonic() + req.get("timeout", 10)
        while req["until"].encode() not in out and time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.05)
            if ready:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
        return out.decode(errors="replace")

    def op_console_close(self, req: dict[str, Any]) -> None:
        os.close(self.consoles.pop(req["key"]))

    def serve(self) -> None:
        for line in sys.stdin:
            req = json.loads(line)
            try:
                result = getattr(self, "op_" + req["op"])(req)
                reply: dict[str, Any] = {"ok": True, "result": result}
            except DockyardError as exc:
                reply = {"ok": False, "type": type(exc).__name__, "message": str(exc), "exit_code": exc.exit_code}
            except Exception as exc:  # noqa: BLE001 - reported to the test
                reply = {"ok": False, "type": type(exc).__name__, "message": f"{exc}\n{traceback.format_exc()}",
                         "exit_code": None}
            sys.stdout.write(json.dumps(reply) + "\n")
            sys.stdout.flush()


if __name__ == "__main__":
    Harness(sys.argv[1], sys.argv[2]).serve()
