"""``client.containers``: create, start, stop, kill, remove, list, inspect, logs, wait, ...

The engine API, docker-py-like (``client.containers.run("busybox", ["echo", "hi"])``). Every
command works directly on the state root: there is no daemon, only one monitor process per
running container (:mod:`dockyard.engine.monitor`), which every command finds through the
container's ``monitor.sock`` and ``monitor.lock``.

Crash safety: a record's ``state.json`` is written by the monitor; if a container is marked
running but nobody holds its monitor lock (the monitor was killed, the host rebooted), the next
command that looks at it *reconciles*: it stops what is left of the container, releases its
mounts, cgroup and network, and records it as exited (code 255) with the reason in
``State.Error``. ``restore()`` (run when ``dockyard system service`` starts) then brings back
the containers whose restart policy asks for it.
"""
from __future__ import annotations

import json
import os
import signal as signals
import time
from typing import Any, Iterator

from dockyard.engine import events, ids
from dockyard.engine.store import RUNNING_STATES, ContainerRecord, ContainerStore, default_state
from dockyard.engine.timeutil import ZERO_TIME, rfc3339nano
from dockyard.errors import Conflict, DockyardError, InvalidArgument, NotFound

MONITOR_GONE = "container monitor exited unexpectedly (killed, or the host restarted); the container was stopped"
DEAD_EXIT_CODE = 255
REMOVE_TIMEOUT = 30.0  # rm -f: how long a monitor may take to kill and remove its container


class Container:
    """A container, docker-py style. ``attrs`` is docker's inspect document."""

    def __init__(self, service: "ContainerService", rec: ContainerRecord) -> None:
        self._service = service
        self._rec = rec

    def __repr__(self) -> str:
        return f"<Container: {self.short_id}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Container) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def id(self) -> str:
        return self._rec.id

    @property
    def short_id(self) -> str:
        return self._rec.id[:12]

    @property
    def name(self) -> str:
        return self._rec.name

    @property
    def status(self) -> str:
        return self._rec.status

    @property
    def record(self) -> ContainerRecord:
        return self._rec

    @property
    def image_id(self) -> str:
        return str(self._rec.config.get("Image", ""))

    @property
    def labels(self) -> dict[str, str]:
        return dict(self._rec.cfg.get("Labels") or {})

    @property
    def attrs(self) -> dict[str, Any]:
        return self._service.inspect_record(self._rec)

    @property
    def health(self) -> str:
        return str((self._rec.state.get("Health") or {}).get("Status") or "unknown")

    def reload(self) -> None:
        self._rec = self._service.load(self.id)

    def start(self, **kw: Any) -> None:
        self._service.start(self.id, **kw)
        self.reload()

    def stop(self, timeout: int | None = None) -> None:
        self._service.stop(self.id, timeout)
        self.reload()

    def kill(self, signal: str | int = "SIGKILL") -> None:
        self._service.kill(self.id, signal)
        self.reload()

    def restart(self, timeout: int | None = None) -> None:
        self._service.restart(self.id, timeout)
        self.reload()

    def pause(self) -> None:
        self._service.pause(self.id)
        self.reload()

    def unpause(self) -> None:
        self._service.unpause(self.id)
        self.reload()

    def remove(self, force: bool = False, v: bool = False) -> None:
        self._service.remove(self.id, force=force, volumes=v)

    def rename(self, name: str) -> None:
        self._service.rename(self.id, name)
        self.reload()

    def wait(self, condition: str = "not-running", timeout: float | None = None) -> dict[str, Any]:
        return {"StatusCode": self._service.wait(self.id, condition, timeout=timeout), "Error": None}

    def logs(self, stdout: bool = True, stderr: bool = True, timestamps: bool = False, tail: int | str = "all",
             since: Any = None, until: Any = None, follow: bool = False, stream: bool = False) -> Any:
        entries = self._service.logs(self.id, stdout=stdout, stderr=stderr, timestamps=timestamps,
                                     tail=tail, since=since, until=until, follow=follow)
        if stream:
            return (data for _, data in entries)
        return b"".join(data for _, data in entries)

    def exec_run(self, cmd: str | list[str], **kw: Any) -> Any:
        from dockyard.engine.execution import exec_run

        return exec_run(self._service.client, self.id, cmd, **kw)

    def top(self, ps_args: str | None = None) -> dict[str, Any]:
        return self._service.top(self.id, ps_args)

    def stats(self, stream: bool = False) -> Any:
        return self._service.stats(self.id)

    def size_rw(self) -> int:
        return self._service.size_rw(self._rec)


class ContainerService:
    """The engine: every container operation on one state root."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.store = ContainerStore(client.state.dir("containers"))

    # ================================================================== lookup
    def load(self, ref: str, reconcile: bool = True) -> ContainerRecord:
        """The record for an ID, name or ID prefix (NotFound with docker's message)."""
        rec = self.store.load(self.store.resolve(ref))
        if reconcile:
            rec = self.reconcile(rec)
        return rec

    def get(self, ref: str) -> Container:
        return Container(self, self.load(ref))

    def is_running(self, cid: str) -> bool:
        try:
            return self.load(cid).status in ("running", "paused", "restarting")
        except NotFound:
            return False

    def list(self, all: bool = False, filters: dict[str, list[str]] | None = None, limit: int = -1,
             since: str | None = None, before: str | None = None, sparse: bool = False) -> list[Container]:
        """Containers newest first, as ``ls`` shows them (``all``: also stopped ones)."""
        from dockyard.engine.listing import select

        self._finish_interrupted()
        recs = []
        for cid in self.store.ids():
            try:
                recs.append(self.reconcile(self.store.load(cid)))
            except NotFound:
                continue  # removed while we looked
        recs.sort(key=lambda r: (r.config.get("Created", ""), r.id), reverse=True)
        filters = dict(filters or {})
        if since:
            filters.setdefault("since", []).append(since)
        if before:
            filters.setdefault("before", []).append(before)
        chosen = select(self, recs, filters, all=all or limit > 0, limit=limit)
        return [Container(self, r) for r in chosen]

    def image_users(self, image_id: str) -> list[str]:
        """IDs of the containers created from an image (the image service refuses to remove it)."""
        out = []
        for cid in self.store.ids():
            try:
                if self.store.load(cid).config.get("Image") == image_id:
                    out.append(cid)
            except NotFound:
                continue
        return out

    # ================================================================== create
    def create(self, body: dict[str, Any], name: str | None = None, image: Any = None) -> Container:
        """Docker's ContainerCreate: ``body`` is the API request (Config fields, ``HostConfig``,
        ``NetworkingConfig``). The image must exist locally (``image``: it, already looked up)."""
        from dockyard.engine.creation import create_container

        rec = create_container(self, body, name, image)
        events.emit_container(self.client, rec, "create")
        return Container(self, rec)

    def run(self, image: str, command: str | list[str] | None = None, detach: bool = False,
            remove: bool = False, stdout: bool = True, stderr: bool = False, **kwargs: Any) -> Any:
        """docker-py's ``containers.run``: the container (``detach``) or its output (bytes);
        raises ``ContainerError`` on a non-zero exit."""
        from dockyard.engine.creation import body_from_kwargs

        body = body_from_kwargs(image, command, auto_remove=kwargs.pop("auto_remove", False), **kwargs)
        name = kwargs.get("name")
        c = self.create(body, name)
        if detach:
            self.start(c.id)
            c.reload()
            return c
        self.start(c.id)
        code = self.wait(c.id)
        out = b"".join(d for _, d in self.logs(c.id, stdout=stdout, stderr=stderr))
        if remove:
            self.remove(c.id, force=True)
        if code != 0:
            raise ContainerError(c, code, command, image, out)
        return out

    # ================================================================== start
    def start(self, ref: str, attach: dict[str, Any] | None = None) -> Any:
        """Start a created or exited container. Without ``attach``: returns once its process
        runs (raises its start error, with docker's exit code 125/126/127). With ``attach``
        (``{"stdin":..., "stdout":..., "stderr":..., "h":..., "w":...}``): returns the
        :class:`~dockyard.engine.protocol.Connection` streaming its output and exit."""
        from dockyard.engine import monitor
        from dockyard.engine.protocol import Connection
        from dockyard.runtime.base import ProcessStartError

        rec = self.load(ref)
        if rec.state.get("Paused"):
            raise Conflict("cannot start a paused container, try unpause instead")
        if rec.status in ("running", "restarting"):
            return None
        if rec.host_config.get("NetworkMode", "").startswith("container:"):
            other = rec.host_config["NetworkMode"].split(":", 1)[1]
            if not self.is_running(self.store.resolve(other)):
                raise Conflict(f"cannot join network of a non running container: {other}")
        fd = self._lock_idle(rec)
        if fd is None:  # a monitor is alive: another command started it meanwhile
            if rec.status in ("running", "restarting", "paused"):
                return None
            raise Conflict(f"container {rec.id} is being started or stopped by another command")
        try:
            rec.state = self.store.read_state(rec.id)
            if rec.status in RUNNING_STATES:
                self._reconcile_locked(rec)
            sock = monitor.spawn(self.client.root, rec.id, fd, attach, warm_cgroups=_external_runtime(rec))
        finally:
            os.close(fd)
        conn = Connection(sock)
        if attach is not None:
            return conn
        try:
            msg = conn.recv_control()
        finally:
            conn.close()
        if msg is None:
            raise DockyardError(f"the container's monitor failed to start; see {rec.dir / 'monitor.log'}")
        if msg.get("event") == "error":
            raise ProcessStartError(msg.get("message", "failed to start"), exit_code=int(msg.get("code", 125)))
        return None

    def attach(self, ref: str, stdin: bool = False, stdout: bool = True, stderr: bool = True,
               h: int = 0, w: int = 0) -> Any:
        """Attach to a running container: a :class:`~dockyard.engine.protocol.Connection`
        carrying its output as stdcopy frames (stdout 1, stderr 2; with a TTY all on 1), then
        ``{"event": "exit", "code": N}``; send ``STDIN`` frames to write to its stdin."""
        from dockyard.engine.protocol import Connection, connect_unix

        rec = self.load(ref)
        if rec.status not in ("running", "paused", "restarting"):
            raise Conflict("You cannot attach to a stopped container, start it first")
        if rec.state.get("Paused"):
            raise Conflict("You cannot attach to a paused container, unpause it first")
        try:
            conn = Connection(connect_unix(str(rec.socket_path)))
        except OSError:
            raise Conflict("You cannot attach to a stopped container, start it first") from None
        conn.send_control({"op": "attach", "stdin": stdin, "stdout": stdout, "stderr": stderr, "h": h, "w": w})
        reply = conn.recv_control()
        if reply is None or "error" in reply:
            conn.close()
            raise Conflict((reply or {}).get("error") or "You cannot attach to a stopped container, start it first")
        return conn

    def exec_run(self, ref: str, cmd: str | list[str], **kw: Any) -> Any:
        """docker-py's ``exec_run``: ``ExecResult(exit_code, output)``."""
        from dockyard.engine.execution import exec_run

        return exec_run(self.client, ref, cmd, **kw)

    def resize(self, ref: str, h: int, w: int) -> None:
        """Set the size of a running container's TTY (docker's ``/containers/{id}/resize``)."""
        rec = self.load(ref)
        if rec.status not in ("running", "paused", "restarting"):
            raise Conflict(f"Container {rec.id} is not running")
        self._check(self._ask(rec, {"op": "resize", "h": int(h), "w": int(w)}))

    def get_archive(self, ref: str, path: str, out: Any) -> None:
        """Write a tar of ``path`` in the container to ``out`` (docker's GET ``/archive``)."""
        from dockyard.engine.archive import NOT_FOUND, container_root, tar_out

        with container_root(self.client, ref) as (rec, root):
            if tar_out(root, path, out) == NOT_FOUND:
                raise NotFound(f"Could not find the file {path} in container {ref}")
        events.emit_container(self.client, rec, "archive-path")

    def stat_path(self, ref: str, path: str) -> dict[str, Any]:
        """lstat of ``path`` in the container (docker's ``HEAD /archive``): name, size, mode
        (``st_mode``), mtime (s), linkTarget (a symlink's target, resolved in the container)."""
        from dockyard.engine.archive import container_root, path_stat

        with container_root(self.client, ref) as (_, root):
            found = path_stat(root, path)
        if found is None:
            raise NotFound(f"Could not find the file {path} in container {ref}")
        return found

    def put_archive(self, ref: str, path: str, data: Any, copy_uid_gid: bool = False) -> None:
        """Extract a tar stream into directory ``path`` of the container (PUT ``/archive``);
        ``copy_uid_gid``: the container's user owns what arrives (docker's ``copyUIDGID``)."""
        from dockyard.engine.archive import container_root, copy_owner, tar_in

        with container_root(self.client, ref) as (rec, root):
            if tar_in(root, path, data, owner=copy_owner(rec, root, copy_uid_gid)) != 0:
                raise NotFound(f"Could not find the file {path} in container {ref}")
        events.emit_container(self.client, rec, "extract-to-dir")

    def diff(self, ref: str) -> list[tuple[str, str]]:
        """docker diff: (``A``|``C``|``D``, path) pairs."""
        from dockyard.engine.archive import changes

        return changes(self.client, ref)

    def commit(self, ref: str, repository: str | None = None, **kw: Any) -> Any:
        """docker commit: the new image (``changes``, ``message``, ``author``, ``pause``)."""
        from dockyard.engine.commit import commit

        return commit(self.client, ref, repository, **kw)

    # ================================================================== talking to a monitor
    def _ask(self, rec: ContainerRecord, request: dict[str, Any], timeout: float | None = None) -> dict[str, Any] | None:
        """One request to the container's monitor; None if there is no monitor to ask."""
        from dockyard.engine.protocol import Connection, connect_unix

        try:
            sock = connect_unix(str(rec.socket_path), timeout=timeout)
        except OSError:
            return None
        conn = Connection(sock)
        try:
            conn.send_control(request)
            try:
                return conn.recv_control()
            except (TimeoutError, OSError):
                return None
        finally:
            conn.close()

    def _check(self, reply: dict[str, Any] | None) -> dict[str, Any] | None:
        if reply is not None and "error" in reply:
            code = int(reply.get("code") or 500)
            raise (Conflict if code == 409 else DockyardError)(reply["error"])
        return reply

    # ================================================================== stop / kill / restart
    def stop(self, ref: str, timeout: int | None = None, signal: str | int | None = None) -> None:
        """docker stop: the stop signal (or ``signal``), SIGKILL after ``timeout`` s (default
        StopTimeout or 10)."""
        rec = self.load(ref)
        sig = parse_signal(signal) if signal is not None else None
        if sig is not None and sig > 64:  # dockerd: the signal fails to send, so it kills
            sig = int(signals.SIGKILL)
        if rec.status not in ("running", "paused", "restarting"):
            return
        reply = self._ask(rec, {"op": "stop", "timeout": timeout, "signal": sig})
        self._check(reply)
        self._await_monitor_exit(rec)
        events.emit_container(self.client, rec, "stop")  # after the monitor's kill and die

    def kill(self, ref: str, signal: str | int | None = None) -> None:
        try:
            rec = self.load(ref)
        except NotFound as exc:  # dockerd's words
            raise NotFound(f"Cannot kill container: {ref}: {exc.message}") from None
        sig = parse_signal(signal) if signal is not None else int(signals.SIGKILL)
        if sig > 64:
            raise InvalidArgument(f"Cannot kill container: {ref}: The linux daemon does not support signal {sig}")
        if rec.status not in ("running", "paused", "restarting"):
            raise Conflict(f"Cannot kill container: {ref}: Container {rec.id} is not running")
        reply = self._ask(rec, {"op": "kill", "signal": sig})
        if reply is None:
            raise Conflict(f"Cannot kill container: {ref}: Container {rec.id} is not running")
        if "error" in reply:
            raise Conflict(f"Cannot kill container: {ref}: {reply['error']}")
        if sig == signals.SIGKILL:
            self._await_monitor_exit(rec, timeout=2.0)

    def restart(self, ref: str, timeout: int | None = None, signal: str | int | None = None) -> None:
        rec = self.load(ref)
        try:
            self.stop(rec.id, timeout, signal)
            self.start(rec.id)
        except DockyardError as exc:  # dockerd's words
            raise type(exc)(f"Cannot restart container {ref}: {exc.message}", exc.exit_code) from None
        events.emit_container(self.client, rec, "restart")

    def _monitor_removes(self, rec: ContainerRecord, volumes: bool) -> bool:
        """Ask the monitor to kill and remove its container; True once it is gone."""
        from dockyard.engine.protocol import Connection, connect_unix

        try:
            conn = Connection(connect_unix(str(rec.socket_path)))
        except OSError:
            self._await_monitor_exit(rec, timeout=5)
            return not self.store.exists(rec.id)
        try:
            conn.sock.settimeout(REMOVE_TIMEOUT)
            conn.send_control({"op": "kill", "signal": 9, "remove": True, "volumes": volumes})
            while conn.recv_control() is not None:
                pass
        except OSError:  # a monitor that does not answer is put down; reconcile does the rest
            self._kill_monitor(rec)
        finally:
            conn.close()
        self._await_monitor_exit(rec)
        return not self.store.exists(rec.id)

    def _kill_monitor(self, rec: ContainerRecord) -> None:
        pid = int(self.store.read_state(rec.id).get("MonitorPid") or 0)
        if pid and self.store.monitor_alive(rec):
            try:
                os.kill(pid, signals.SIGKILL)
            except ProcessLookupError:
                pass

    def _lock_idle(self, rec: ContainerRecord, timeout: float = 10.0) -> int | None:
        """The monitor lock, waiting for a monitor that is only finishing up (its container has
        stopped, it is unmounting or releasing the network); None if the container runs."""
        deadline = time.monotonic() + timeout
        while True:
            fd = self.store.try_lock(rec)
            if fd is not None:
                return fd
            rec.state = self.store.read_state(rec.id)
            if rec.status in ("running", "paused", "restarting") or time.monotonic() > deadline:
                return None
            time.sleep(0.005)

    def _await_monitor_exit(self, rec: ContainerRecord, timeout: float = 10.0) -> None:
        """After a stop the monitor unmounts and exits; wait so the next command sees it gone."""
        deadline = time.monotonic() + timeout
        while self.store.monitor_alive(rec) and time.monotonic() < deadline:
            time.sleep(0.005)

    # ================================================================== pause
    def pause(self, ref: str) -> None:
        self._pause(ref, "pause")

    def unpause(self, ref: str) -> None:
        self._pause(ref, "unpause")

    def _pause(self, ref: str, op: str) -> None:
        rec = self.load(ref)
        if rec.status not in ("running", "paused"):  # dockerd checks "paused" first for unpause
            raise Conflict(f"Container {rec.id} is not {'paused' if op == 'unpause' else 'running'}")
        reply = self._ask(rec, {"op": op})
        if reply is None:
            raise Conflict(f"Container {rec.id} is not running")
        self._check(reply)
        events.emit_container(self.client, rec, op)

    # ================================================================== wait
    def wait(self, ref: str, condition: str = "not-running", timeout: float | None = None) -> int:
        """Block until the container is not running (``not-running``), until its process next
        ends (``next-exit``, even if it has not started yet) or until it is removed
        (``removed``); the exit code. Docker's ``POST /containers/{id}/wait``."""
        from dockyard.engine.protocol import Connection, connect_unix

        if condition not in ("not-running", "next-exit", "removed"):
            raise InvalidArgument(f"invalid condition: \"{condition}\"")
        rec = self.load(ref)
        cid = rec.id
        code = int(rec.state.get("ExitCode", 0))
        finished = rec.state.get("FinishedAt")  # next-exit: the exit after this one
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            running = rec.status in ("running", "paused", "restarting")
            if condition == "not-running" and not running:
                return int(rec.state.get("ExitCode", 0))
            try:
                sock = connect_unix(str(rec.socket_path))
            except OSError:
                sock = None
            if sock is not None:
                conn = Connection(sock)
                try:
                    if deadline is not None:
                        sock.settimeout(max(0.001, deadline - time.monotonic()))
                    conn.send_control({"op": "wait", "condition": condition})
                    msg = conn.recv_control()
                except TimeoutError:
                    raise DockyardError("timed out waiting for the container") from None
                except OSError:
                    msg = None
                finally:
                    conn.close()
                if msg is not None and "code" in msg:
                    return int(msg["code"])
            # no monitor (yet, or any more): watch the record
            if deadline is not None and time.monotonic() > deadline:
                raise DockyardError("timed out waiting for the container")
            time.sleep(0.02)
            try:
                rec = self.store.load(cid)
            except NotFound:
                left = self.store.exit_code_of_removed(cid)
                return code if left is None else left
            rec = self.reconcile(rec)
            if rec.state.get("FinishedAt") != ZERO_TIME:
                code = int(rec.state.get("ExitCode", 0))
            if condition == "next-exit" and rec.state.get("FinishedAt") != finished:
                return code  # it ended (and its monitor left) before we could ask the monitor

    # ================================================================== remove
    def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None:
        """docker rm: a running container only with ``force`` (killed first, by its monitor)."""
        rec = self.load(ref)
        for attempt in range(3):
            fd = self._lock_idle(rec)
            if fd is not None:
                break
            if rec.state.get("Paused") and not force:
                raise Conflict(f"You cannot remove a paused container {rec.id}. Unpause and then stop the "
                               "container before attempting removal or force remove")
            if not force:
                raise Conflict(f"You cannot remove a running container {rec.id}. Stop the container before "
                               "attempting removal or force remove")
            if attempt == 0:
                if self._monitor_removes(rec, volumes):
                    return None
            else:  # whoever holds the lock is not a monitor that answers: put it down
                for pid in self.store.lock_holders(rec):
                    try:
                        os.kill(pid, signals.SIGKILL)
                    except ProcessLookupError:
                        pass
                self._await_monitor_exit(rec, timeout=5)
            if not self.store.exists(rec.id):
                return None
            rec = self.reconcile(self.store.load(rec.id))
        else:
            raise DockyardError(f"could not remove container {rec.id}: its monitor does not let go")
        try:
            rec.state = self.store.read_state(rec.id)
            if rec.status in RUNNING_STATES:
                self._reconcile_locked(rec)
            remove_record(self.client, self.store, rec, remove_volumes=volumes)
        finally:
            os.close(fd)
        return None

    def prune(self, filters: dict[str, list[str]] | None = None) -> dict[str, Any]:
        """Remove every stopped container (docker's ``container prune``)."""
        from dockyard.engine.listing import prune_matches, validate_prune_filters

        validate_prune_filters(filters or {})
        deleted, reclaimed = [], 0
        for c in self.list(all=True):
            rec = c.record
            if rec.status in ("running", "paused", "restarting") or not prune_matches(rec, filters or {}):
                continue
            size = self.size_rw(rec)
            try:
                self.remove(rec.id)
            except (Conflict, NotFound):
                continue
            deleted.append(rec.id)
            reclaimed += size
        events.emit_prune(self.client, "container", reclaimed)
        return {"ContainersDeleted": deleted or None, "SpaceReclaimed": reclaimed}

    # ================================================================== update
    def update(self, ref: str, body: dict[str, Any]) -> list[str]:
        """docker update: new resource limits (applied at once to a running container) and
        restart policy, from docker's ``UpdateConfig``; returns dockerd's warnings."""
        from dockyard.engine.updating import update_container

        return update_container(self, ref, body)

    # ================================================================== rename
    def rename(self, ref: str, new_name: str) -> None:
        rec = self.load(ref)
        new = new_name.lstrip("/")
        if not new:
            raise InvalidArgument("Neither old nor new names may be empty")
        if new == rec.name:
            raise InvalidArgument("Renaming a container with the same name as its current name")
        if not ids.NAME_RE.match(new):  # dockerd's words, the name with its slash
            raise InvalidArgument(f"Error when allocating new name: Invalid container name (/{new}), "
                                  "only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
        try:
            self.store.claim_name(new, rec.id)
        except Conflict as exc:
            raise Conflict(f"Error when allocating new name: {exc.message}") from None
        old = rec.name
        rec.config["Name"] = "/" + new
        try:
            self.store.write_config(rec)
        except BaseException:
            self.store.release_name(new, rec.id)
            raise
        self.store.release_name(old, rec.id)
        events.emit_container(self.client, rec, "rename", oldName="/" + old)

    # ================================================================== logs
    def logs(self, ref: str, stdout: bool = True, stderr: bool = True, follow: bool = False,
             since: Any = None, until: Any = None, tail: int | str = "all",
             timestamps: bool = False, details: bool = False) -> Iterator[tuple[str, bytes]]:
        """(stream, bytes) pairs in order; ``timestamps`` prefixes each line with its time."""
        from dockyard.engine.logread import read_logs

        rec = self.load(ref)
        return read_logs(self, rec, stdout=stdout, stderr=stderr, follow=follow, since=since, until=until,
                         tail=tail, timestamps=timestamps, details=details)

    # ================================================================== inspect
    def inspect(self, ref: str, size: bool = False) -> dict[str, Any]:
        rec = self.load(ref)
        doc = self.inspect_record(rec)
        if size:
            doc["SizeRw"] = self.size_rw(rec)
            doc["SizeRootFs"] = doc["SizeRw"] + self._image_size(rec)
        return doc

    def inspect_record(self, rec: ContainerRecord) -> dict[str, Any]:
        from dockyard.engine.view import inspect_document

        return inspect_document(self, rec)

    def size_rw(self, rec: ContainerRecord) -> int:
        """The writable layer's size, without what docker keeps in its init layer (the
        ``/etc/mtab`` link and the empty ``/.dockerenv`` the engine adds)."""
        import os

        try:
            snaps = self.client.snapshots
            size = int(snaps.usage(rec.id))
            mtab = snaps.active(rec.id).upper / "etc" / "mtab"
        except (DockyardError, ImportError):
            return 0
        if os.path.islink(mtab) and os.readlink(mtab) == "/proc/mounts":
            size -= len("/proc/mounts")
        return max(size, 0)

    def _image_size(self, rec: ContainerRecord) -> int:
        try:
            return int(self.client.images.get(rec.config.get("Image", "")).size)
        except (DockyardError, ImportError):
            return 0

    # ================================================================== top / stats
    def top(self, ref: str, ps_args: str | None = None) -> dict[str, Any]:
        from dockyard.engine.inspection import top

        rec = self.load(ref)
        result = top(self, rec, ps_args)
        events.emit_container(self.client, rec, "top")
        return result

    def stats(self, ref: str) -> dict[str, Any]:
        from dockyard.engine.inspection import stats

        return stats(self, self.load(ref))

    # ================================================================== crash recovery
    def reconcile(self, rec: ContainerRecord) -> ContainerRecord:
        """If the record says running but its monitor is gone, finish the container's life."""
        if rec.status not in RUNNING_STATES or self.store.monitor_alive(rec):
            return rec
        fd = self.store.try_lock(rec)
        if fd is None:
            rec.state = self.store.read_state(rec.id)
            return rec
        try:
            rec.state = self.store.read_state(rec.id)
            if rec.status in RUNNING_STATES:
                self._reconcile_locked(rec)
        finally:
            os.close(fd)
        if rec.host_config.get("AutoRemove") and self.store.exists(rec.id):
            try:
                self.remove(rec.id, force=True)
            except DockyardError:
                pass
        return rec

    def _reconcile_locked(self, rec: ContainerRecord) -> None:
        """With the monitor lock held and no monitor: stop and release what is left."""
        release_leftovers(self.client, rec)
        rec.state.update(Status="exited", Running=False, Paused=False, Restarting=False, Pid=0,
                         ExitCode=DEAD_EXIT_CODE, Error=MONITOR_GONE,
                         FinishedAt=rfc3339nano(time.time_ns()))
        if rec.state.get("Health"):
            rec.state["Health"]["Status"] = "unhealthy"
        self.store.write_state(rec)

    def _finish_interrupted(self) -> None:
        """Complete removals a crash interrupted; drop abandoned half-created records."""
        for kind, path in self.store.leftovers():
            if kind == "creating":
                import shutil

                shutil.rmtree(path, ignore_errors=True)
                continue
            cid = path.name.split("-", 1)[1]
            try:
                config = json.loads((path / "config.json").read_text())
            except (OSError, ValueError):
                config = {"Name": ""}
            rec = ContainerRecord(cid, path, config, default_state())
            try:
                finish_remove(self.client, rec, remove_volumes=False)
            except Exception:  # noqa: BLE001 - try again next time
                pass

    def restore(self) -> list[str]:
        """At service start: reconcile everything, then start containers whose restart policy
        says so (``always``; ``unless-stopped`` unless stopped by hand; ``on-failure`` after a
        failure). Returns the IDs started."""
        started = []
        for c in self.list(all=True):
            rec = c.record
            policy = (rec.host_config.get("RestartPolicy") or {}).get("Name") or "no"
            if rec.status != "exited":
                continue
            want = policy == "always" or (policy == "unless-stopped" and not rec.state.get("ManuallyStopped")) \
                or (policy == "on-failure" and rec.state.get("Error") == MONITOR_GONE)
            if want:
                try:
                    self.start(rec.id)
                    started.append(rec.id)
                except DockyardError:
                    continue
        return started


# ====================================================================== removal, shared with the monitor
def release_leftovers(client: Any, rec: ContainerRecord) -> None:
    """Kill and release whatever a container whose monitor died left behind (idempotent)."""
    from dockyard.engine.attachments import Attachments
    from dockyard.engine.bundle import cgroups_path
    from dockyard.engine.runtimes import runtime_for
    from dockyard.runtime import cgroups

    try:
        runtime = runtime_for(client, rec.config.get("Runtime"))
        try:
            runtime.kill(rec.id, signals.SIGKILL, all_processes=True)
        except DockyardError:
            pass
        try:
            runtime.delete(rec.id, force=True)
        except DockyardError:
            pass
    except DockyardError:
        pass
    path = cgroups_path(rec)
    try:
        for pid in cgroups.container_pids(path):
            try:
                os.kill(pid, signals.SIGKILL)
            except ProcessLookupError:
                pass
        cgroups.remove(path)
    except Exception:  # noqa: BLE001 - no cgroup
        pass
    att = Attachments(client)
    for step in (lambda: client.snapshots.unmount(rec.rootfs), lambda: att.network_down(rec),
                 lambda: att.stop_mounts(rec)):
        try:
            step()
        except Exception:  # noqa: BLE001 - best effort: every step is idempotent
            pass


def remove_record(client: Any, store: ContainerStore, rec: ContainerRecord, remove_volumes: bool) -> None:
    """Remove a stopped container: unmount its rootfs (before the rename below: mounts are
    found by path), hide the record (atomic rename), release the name, then delete its writable
    layer, network memberships, volume claims and files."""
    client.snapshots.unmount(rec.rootfs)
    store.begin_remove(rec)
    events.emit_container(client, rec, "destroy")
    finish_remove(client, rec, remove_volumes, unmounted=True)


def _external_runtime(rec: ContainerRecord) -> bool:
    """runc/crun move their init into its cgroup the slow way (see ``monitor._warm_cgroup_moves``)."""
    from dockyard.runtime import BUILTIN_NAMES, default_runtime_name

    return (rec.config.get("Runtime") or default_runtime_name()) not in BUILTIN_NAMES


def finish_remove(client: Any, rec: ContainerRecord, remove_volumes: bool, unmounted: bool = False) -> None:
    """The second half of a removal (also what finishes one a crash interrupted)."""
    from dockyard.engine.attachments import Attachments

    att = Attachments(client)
    if not unmounted:
        client.snapshots.unmount(rec.rootfs)
    try:
        client.snapshots.remove(rec.id)
    except NotFound:
        pass
    att.network_forget(rec)
    att.remove_mounts(rec, remove_volumes)
    import shutil

    shutil.rmtree(rec.dir, ignore_errors=True)


# ====================================================================== helpers
class ContainerError(DockyardError):
    """docker-py's: the container exited non-zero (``run`` without ``detach``)."""

    def __init__(self, container: Container, exit_status: int, command: Any, image: str, stderr: bytes) -> None:
        super().__init__(f"Command '{command}' in image '{image}' returned non-zero exit status {exit_status}: "
                         f"{stderr.decode(errors='replace')}", exit_status)
        self.container = container
        self.exit_status = exit_status
        self.stderr = stderr


def parse_signal(value: str | int) -> int:
    """``KILL``, ``SIGKILL``, ``9`` → 9; docker's message for anything else."""
    if isinstance(value, int):
        return value
    text = str(value).strip().upper()
    if text.isdigit():
        n = int(text)
        if n == 0:
            raise InvalidArgument(f"Invalid signal: {value}")
        return n  # above 64: the caller's words (kill: "does not support signal")
    name = text if text.startswith("SIG") else "SIG" + text
    sig = getattr(signals, name, None)
    if sig is None or not isinstance(sig, signals.Signals):
        raise InvalidArgument(f"Invalid signal: {value}")
    return int(sig)


__all__ = ["ContainerService", "Container", "ContainerError", "parse_signal", "remove_record", "ZERO_TIME"]
