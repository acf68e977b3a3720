"""``POST /containers/{id}/attach``: a container's stdio over a hijacked connection.

``docker run`` (and ``docker start -a``) attach *before* they start the container, so that no
output is lost. The engine delivers output from the first byte only to the caller that starts
the container (``containers.start(attach=...)``), so an attach to a container that is not
running waits in :class:`PendingAttaches`; the ``start`` endpoint takes it, starts the
container with it, and hands the monitor connection over. An attach to a running container
joins its monitor directly.
"""
from __future__ import annotations

import threading
import time
from typing import Any

from dockyard.api.http import MULTIPLEXED_STREAM, RAW_STREAM, Exchange, Hijacked
from dockyard.engine import protocol as proto

WAIT_POLL = 0.5  # how often a waiting attach checks that its container still exists


class PendingAttach:
    """An attach waiting for its container's start: the streams it wants, and the handover."""

    def __init__(self, stdin: bool, stdout: bool, stderr: bool) -> None:
        self.options = {"stdin": stdin, "stdout": stdout, "stderr": stderr}
        self._ready = threading.Event()
        self.conn: Any = None
        self.early: list[tuple[int, bytes]] = []   # frames read while the start was confirmed
        self.error: str | None = None

    def hand_over(self, conn: Any, early: list[tuple[int, bytes]]) -> None:
        self.conn, self.early = conn, early
        self._ready.set()

    def fail(self, message: str) -> None:
        self.error = message
        self._ready.set()

    def wait(self, timeout: float) -> bool:
        return self._ready.wait(timeout)


class PendingAttaches:
    """Attaches waiting for a start, by container ID (oldest first)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[str, list[PendingAttach]] = {}

    def add(self, cid: str, pending: PendingAttach) -> None:
        with self._lock:
            self._by_id.setdefault(cid, []).append(pending)

    def remove(self, cid: str, pending: PendingAttach) -> bool:
        """Withdraw a waiting attach; False if a start took it already."""
        with self._lock:
            waiting = self._by_id.get(cid) or []
            found = pending in waiting
            if found:
                waiting.remove(pending)
            if not waiting:
                self._by_id.pop(cid, None)
            return found

    def take(self, cid: str) -> PendingAttach | None:
        with self._lock:
            waiting = self._by_id.get(cid)
            if not waiting:
                return None
            pending = waiting.pop(0)
            if not waiting:
                del self._by_id[cid]
            return pending


def start_attached(x: Exchange, rec: Any, pending: PendingAttach) -> None:
    """Start ``rec`` for a waiting attach: returns once the process runs (raises its start
    error, which also ends the attach) and leaves the output stream to the attach."""
    from dockyard.runtime.base import ProcessStartError

    svc = x.client.containers
    try:
        conn = svc.start(rec.id, attach=dict(pending.options))
    except Exception as exc:
        pending.fail(str(exc))
        raise
    if conn is None:  # someone else started it meanwhile: join like a late attach
        try:
            pending.hand_over(svc.attach(rec.id, **pending.options), [])
        except Exception as exc:  # noqa: BLE001
            pending.fail(str(exc))
        return
    early: list[tuple[int, bytes]] = []
    while True:
        frame = conn.recv_frame()
        if frame is None:
            conn.close()
            pending.fail("the container's monitor went away")
            from dockyard.errors import DockyardError

            raise DockyardError(f"the container's monitor failed to start; see {rec.dir / 'monitor.log'}")
        kind, payload = frame
        if kind != proto.CONTROL:
            early.append(frame)
            continue
        import json

        msg = json.loads(payload)
        if msg.get("event") == "error":
            conn.close()
            pending.fail(msg.get("message", "failed to start"))
            raise ProcessStartError(msg.get("message", "failed to start"), exit_code=int(msg.get("code", 125)))
        early.append(frame)
        if msg.get("event") in ("started", "exit"):
            break
    pending.hand_over(conn, early)


def attach(x: Exchange, id: str) -> None:  # noqa: A002 - docker's parameter name
    from dockyard.engine.terminal import parse_detach_keys

    svc = x.client.containers
    rec = svc.load(id)
    tty = bool(rec.cfg.get("Tty"))
    stdin = x.flag("stdin") and bool(rec.cfg.get("OpenStdin"))
    options = {"stdin": stdin, "stdout": x.flag("stdout"), "stderr": x.flag("stderr")}
    keys = parse_detach_keys(x.arg("detachKeys") or None) if stdin else b""
    content_type = RAW_STREAM if tty else MULTIPLEXED_STREAM
    if not x.flag("stream"):  # the logs so far (or nothing), then the end
        hj = x.hijack(content_type)
        if x.flag("logs"):
            _replay_logs(x, rec, options, tty, hj)
        _close(hj)
        return
    if rec.status in ("running", "paused", "restarting"):
        conn = svc.attach(rec.id, **options)  # refusals (paused, stopped) are plain errors
        hj = x.hijack(content_type)
        x.daemon.events.container(x.client, rec.id, "attach")
        if x.flag("logs"):
            _replay_logs(x, rec, options, tty, hj)
        relay(conn, hj, [], tty=tty, stdin=stdin, detach_keys=keys)
        return
    pending = PendingAttach(**options)
    x.daemon.attaches.add(rec.id, pending)
    try:
        hj = x.hijack(content_type)
        x.daemon.events.container(x.client, rec.id, "attach")
        _await_start(x, rec.id, pending, hj, watch_client=not stdin)
    finally:
        x.daemon.attaches.remove(rec.id, pending)
    if pending.conn is None:
        _close(hj)
        return
    relay(pending.conn, hj, pending.early, tty=tty, stdin=stdin, detach_keys=keys)


def _await_start(x: Exchange, cid: str, pending: PendingAttach, hj: Hijacked, watch_client: bool) -> None:
    """Wait for the ``start`` endpoint to hand the container over. Also ends when the container
    is removed, when the client leaves (only noticed without stdin: a closed stdin looks the
    same), or when the container was started some other way (then: a late attach)."""
    from dockyard.api.http import client_gone

    svc = x.client.containers
    while not pending.wait(WAIT_POLL):
        if not svc.store.exists(cid) or (watch_client and client_gone(hj.sock)):
            return
        try:
            running = svc.store.read_state(cid).get("Status") in ("running", "paused", "restarting")
        except Exception:  # noqa: BLE001 - removed meanwhile
            return
        if running and x.daemon.attaches.remove(cid, pending):
            try:
                pending.hand_over(svc.attach(cid, **pending.options), [])
            except Exception as exc:  # noqa: BLE001 - it stopped again: nothing to attach to
                pending.fail(str(exc))
            return


def _replay_logs(x: Exchange, rec: Any, options: dict[str, bool], tty: bool, hj: Hijacked) -> None:
    from dockyard.api.streams import Framer

    framer = Framer(tty)
    for name, data in x.client.containers.logs(rec.id, stdout=options["stdout"], stderr=options["stderr"]):
        hj.send(framer.frame(2 if name == "stderr" else 1, data))


def relay(conn: Any, hj: Hijacked, early: list[tuple[int, bytes]], *, tty: bool, stdin: bool,
          detach_keys: bytes = b"") -> None:
    """Copy between a monitor connection and the client until the container exits, the
    client detaches or either side goes away; then close the client's connection."""
    from dockyard.api.streams import Framer, pump_input

    framer = Framer(tty)
    done = threading.Event()

    def detach() -> None:
        done.set()
        _close(hj)
        conn.close()

    if stdin:
        pump_input(hj.recv, lambda data: conn.send(proto.STDIN, data),
                   lambda: conn.send(proto.STDIN_EOF, b""), detach_keys, detach)
    try:
        for kind, payload in _frames(conn, early):
            if kind in (proto.STDOUT, proto.STDERR):
                hj.send(framer.frame(kind, payload))
            elif kind == proto.CONTROL and _event(payload) == "exit":
                break
    except OSError:
        pass
    finally:
        if not done.is_set():
            _close(hj)
            conn.close()


def _frames(conn: Any, early: list[tuple[int, bytes]]) -> Any:
    yield from early
    for pending in list(conn.pending):
        yield pending
    conn.pending.clear()
    while True:
        try:
            frame = conn.recv_frame()
        except OSError:
            return
        if frame is None:
            return
        yield frame


def _event(payload: bytes) -> str | None:
    import json

    try:
        return json.loads(payload).get("event")
    except (ValueError, AttributeError):
        return None


def _close(hj: Hijacked) -> None:
    """End the stream: the client reads EOF (and sees its stdin side closed too)."""
    import socket

    try:
        hj.sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    time.sleep(0)  # let the stdin thread see the shutdown
