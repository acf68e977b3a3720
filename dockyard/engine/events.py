"""The event journal: what happened to containers, images, volumes and networks, as docker reports it.

dockyard has no daemon that sees every operation, so every process that changes something
(a CLI command, a container's monitor, the API server) appends the event itself to one file in
the state root, ``<root>/events/journal.jsonl``, and every reader (``dockyard events``, the API's
``/events``) reads and follows that file:

* one JSON line per event, in docker's ``events.Message`` shape (``Type``, ``Action``,
  ``Actor{ID, Attributes}``, ``scope``, ``time``, ``timeNano``; containers also the old
  ``status``/``id``/``from``);
* each line goes out with a single ``write`` on an ``O_APPEND`` descriptor, so lines from
  concurrent processes never interleave and no lock is needed on the hot path;
* the history is bounded like dockerd's: past :data:`MAX_BYTES` the file is renamed to
  ``journal.jsonl.1`` (the generation before is dropped) under an ``flock``, and readers that
  follow notice the new inode and carry on with the new file;
* recording an event never fails the operation that caused it (a full disk loses the event,
  not the container).

Appending costs one ``open``/``write``/``fstat``/``close`` (tens of microseconds); nothing here
imports more than the standard library, so the CLI and the monitor pay no start-up cost.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterator

JOURNAL_DIR = "events"
JOURNAL_NAME = "journal.jsonl"
MAX_BYTES = 1 << 20       # one generation; with the rotated one, ~5000 events of history
POLL_INTERVAL = 0.1       # how often a follower looks for new lines



def journal_path(root: str | os.PathLike[str]) -> Path:
    return Path(root) / JOURNAL_DIR / JOURNAL_NAME


def root_of(owner: Any) -> str:
    """The state root of a ``Client``, a ``StateRoot``, or a path."""
    if isinstance(owner, (str, os.PathLike)):
        return os.fspath(owner)
    root = getattr(owner, "root", None)
    if root is not None and not callable(root):
        return str(root)
    path = getattr(owner, "path", None)
    return str(path if path is not None else owner)


# ====================================================================== writing
def make_event(type_: str, action: str, actor_id: str, attributes: dict[str, Any] | None = None,
               now_ns: int | None = None) -> dict[str, Any]:
    """One event in the shape dockerd sends on ``/events`` (and ``--format '{{json .}}'`` prints)."""
    now = time.time_ns() if now_ns is None else now_ns
    attrs = {str(k): str(v) for k, v in (attributes or {}).items()}
    event: dict[str, Any] = {"Type": type_, "Action": action, "Actor": {"ID": actor_id, "Attributes": attrs},
                             "scope": "local", "time": now // 1_000_000_000, "timeNano": now}
    if type_ == "container":  # the pre-1.22 fields dockerd still fills for containers and images
        event = {"status": action, "id": actor_id, "from": attrs.get("image", ""), **event}
    elif type_ == "image":
        event = {"status": action, "id": actor_id, **event}
    return event


def append(root: str | os.PathLike[str], event: dict[str, Any]) -> bool:
    """Append one event (a single O_APPEND write: atomic between processes); False if it could
    not be written. Rotates the journal when it has grown past :data:`MAX_BYTES`."""
    line = (json.dumps(event, separators=(",", ":")) + "\n").encode()
    path = journal_path(root)
    try:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, line)
            if os.fstat(fd).st_size > MAX_BYTES:
                _rotate(path, fd)
        finally:
            os.close(fd)
        return True
    except OSError:
        return False


def _rotate(path: Path, fd: int) -> None:
    """Keep one older generation; only one process rotates a given file (flock + inode check)."""
    import fcntl

    lock = os.open(path.parent / ".rotate.lock", os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            current = os.stat(path)
        except FileNotFoundError:
            return
        mine = os.fstat(fd)
        if (current.st_ino, current.st_dev) == (mine.st_ino, mine.st_dev) and current.st_size > MAX_BYTES:
            os.replace(path, path.with_name(path.name + ".1"))
    finally:
        os.close(lock)


def emit(owner: Any, type_: str, action: str, actor_id: str, attributes: dict[str, Any] | None = None) -> dict[str, Any]:
    """Record an event in ``owner``'s state root (a ``Client``, ``StateRoot`` or path); returns it."""
    event = make_event(type_, action, actor_id, attributes)
    append(root_of(owner), event)
    return event


# ====================================================================== container events
def container_attributes(rec: Any) -> dict[str, str]:
    """dockerd's attributes of a container event: its labels, ``image`` (as given) and ``name``."""
    cfg = rec.cfg
    return {**(cfg.get("Labels") or {}), "image": cfg.get("Image") or "", "name": rec.name}


def emit_container(owner: Any, rec: Any, action: str, **extra: Any) -> dict[str, Any]:
    """A container event for the record ``rec`` (extra attributes: ``exitCode``, ``signal``...)."""
    return emit(owner, "container", action, rec.id, {**container_attributes(rec), **extra})


def exec_command_text(cmd: list[str]) -> str:
    """The command in ``exec_create:``/``exec_start:`` events as dockerd writes it: entrypoint,
    a space, the arguments (so ``exec_create: true `` ends in a space when there are none)."""
    return (cmd[0] if cmd else "") + " " + " ".join(cmd[1:])


def emit_attachments(client: Any, rec: Any, starting: bool) -> None:
    """What dockerd reports around a start (``network connect``, ``volume mount``) or an exit
    (``network disconnect``, ``volume unmount``), for each network and volume of ``rec``.
    Never raises: a network or volume that went away meanwhile is left out."""
    try:
        from dockyard.engine.attachments import Attachments

        networks = (Attachments(client).network_settings(rec).get("Networks") or {})
    except Exception:  # noqa: BLE001 - no network service / record: no network events
        networks = {}
    for name, endpoint in networks.items():
        net_id = (endpoint or {}).get("NetworkID") or ""
        driver = "null" if name == "none" else "host" if name == "host" else "bridge"
        if driver == "bridge" or not net_id:  # the built-in ones are known already
            try:
                net = client.networks.get(net_id or name)
                net_id, name, driver = net.id, net.name, net.driver
            except Exception:  # noqa: BLE001 - removed meanwhile: its name and ID as last known
                if not net_id:
                    continue
        emit(client, "network", "connect" if starting else "disconnect", net_id,
             {"container": rec.id, "name": name, "type": driver})
    if not rec.config.get("HasMounts"):
        return
    try:
        mounts = client.volumes.mounts_inspect(rec.id)
    except Exception:  # noqa: BLE001
        return
    for m in mounts or []:
        if m.get("Type") != "volume":
            continue
        attrs = {"container": rec.id, "driver": m.get("Driver") or "local"}
        if starting:
            attrs.update({"destination": m.get("Destination", ""), "propagation": m.get("Propagation", ""),
                          "read/write": "true" if m.get("RW", True) else "false"})
        emit(client, "volume", "mount" if starting else "unmount", m.get("Name", ""), attrs)


# ====================================================================== image and volume events
def familiar(ref: str) -> str:
    """A name as docker shows it in events (``busybox:latest``, not ``docker.io/library/...``)."""
    from dockyard.image.reference import parse

    try:
        return parse(ref).familiar
    except Exception:  # noqa: BLE001 - an ID or an odd name: as given
        return ref


def emit_image(owner: Any, action: str, actor_id: str, name: str | None = None) -> dict[str, Any]:
    """``image tag/pull/push/load/save/import/...``: dockerd's only attribute is ``name``."""
    return emit(owner, "image", action, actor_id, {"name": familiar(name) if name else actor_id})


def emit_image_removal(owner: Any, image_id: str, records: list[dict[str, str]]) -> None:
    """``untag`` for each name an ``image rm``/``prune`` dropped, ``delete`` for the image (as
    dockerd: the untags carry the image's ID as actor and name)."""
    deleted = False
    for rec in records or []:
        for action, ref in rec.items():
            if action == "Untagged":
                emit(owner, "image", "untag", image_id or ref, {"name": image_id or ref})
            elif not deleted:
                deleted = True
                emit(owner, "image", "delete", ref, {"name": ref})


def emit_prune(owner: Any, type_: str, reclaimed: int) -> dict[str, Any]:
    """dockerd's ``<type> prune`` event (no actor, the bytes reclaimed), after each prune."""
    return emit(owner, type_, "prune", "", {"reclaimed": int(reclaimed or 0)})


def emit_volume(owner: Any, action: str, name: str, driver: str = "local") -> dict[str, Any]:
    return emit(owner, "volume", action, name, {"driver": driver or "local"})


def emit_network(owner: Any, action: str, net: Any, container: str | None = None) -> dict[str, Any]:
    """``network create/destroy`` (name, type) and ``connect/disconnect`` (+ container)."""
    attrs = {"name": net.name, "type": net.driver}
    if container:
        attrs = {"container": container, **attrs}
    return emit(owner, "network", action, net.id, attrs)


# ====================================================================== reading
def _parse_lines(chunk: bytes) -> Iterator[dict[str, Any]]:
    for raw in chunk.split(b"\n"):
        if not raw.strip():
            continue
        try:
            event = json.loads(raw)
        except ValueError:  # a torn line (a crash mid-write): skip it
            continue
        if isinstance(event, dict) and "timeNano" in event:
            yield event


def read(root: str | os.PathLike[str], since_ns: int | None = None,
         until_ns: int | None = None) -> Iterator[dict[str, Any]]:
    """The kept events with ``since_ns <= timeNano <= until_ns``, oldest first."""
    path = journal_path(root)
    for p in (path.with_name(path.name + ".1"), path):
        try:
            data = p.read_bytes()
        except FileNotFoundError:
            continue
        for event in _parse_lines(data):
            t = event["timeNano"]
            if (since_ns is None or t >= since_ns) and (until_ns is None or t <= until_ns):
                yield event


class Follower:
    """Reads the journal from a point and then its new lines as they are appended, across
    rotations. ``poll()`` returns what has arrived since the last call (never blocks)."""

    def __init__(self, root: str | os.PathLike[str], from_start: bool) -> None:
        self.path = journal_path(root)
        self.fd: int | None = None
        self.ino: tuple[int, int] | None = None
        self.partial = b""
        self.pending_old: bytes = b""
        if from_start:
            try:
                self.pending_old = self.path.with_name(self.path.name + ".1").read_bytes()
            except FileNotFoundError:
                pass
        self._open(seek_end=not from_start)

    def _open(self, seek_end: bool) -> None:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            self.fd = self.ino = None
            return
        st = os.fstat(fd)
        self.fd, self.ino = fd, (st.st_ino, st.st_dev)
        if seek_end:
            os.lseek(fd, 0, os.SEEK_END)

    def _drain(self) -> bytes:
        chunks = []
        while self.fd is not None:
            data = os.read(self.fd, 1 << 16)
            if not data:
                break
            chunks.append(data)
        return b"".join(chunks)

    def poll(self) -> list[dict[str, Any]]:
        data = self.pending_old
        self.pending_old = b""
        data += self.partial + self._drain()
        try:
            st = os.stat(self.path)
            rotated = self.ino != (st.st_ino, st.st_dev)
        except FileNotFoundError:
            rotated = False
        if rotated:  # finish the old file, then go on with the new one from its start
            if self.fd is not None:
                os.close(self.fd)
            self._open(seek_end=False)
            data += self._drain()
        head, sep, tail = data.rpartition(b"\n")
        self.partial = tail if sep else data
        return list(_parse_lines(head)) if sep else []

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def check_range(since_ns: int | None, until_ns: int | None) -> None:
    """dockerd's refusal of an ``until`` before the ``since``."""
    if since_ns is not None and until_ns is not None and until_ns < since_ns:
        from dockyard.errors import InvalidArgument

        raise InvalidArgument(f"`since` time ({since_ns // 1_000_000_000}) cannot be after "
                              f"`until` time ({until_ns // 1_000_000_000})")


def stream(root: str | os.PathLike[str], since_ns: int | None = None, until_ns: int | None = None,
           stop: Callable[[], bool] | None = None, interval: float = POLL_INTERVAL) -> Iterator[dict[str, Any]]:
    """docker's event stream: the kept events from ``since_ns`` (all kept ones with only
    ``until_ns``, none without either, as dockerd), then new ones as they come; ends at
    ``until_ns`` (at once if it has passed) or when ``stop()`` says so."""
    follower = Follower(root, from_start=since_ns is not None or until_ns is not None)
    try:
        while True:
            for event in follower.poll():
                t = event["timeNano"]
                if since_ns is not None and t < since_ns:
                    continue
                if until_ns is not None and t > until_ns:
                    continue
                yield event
            if until_ns is not None and time.time_ns() > until_ns:
                return
            if stop is not None and stop():
                return
            time.sleep(interval)
    finally:
        follower.close()


# ====================================================================== filters (moby's daemon/events/filter.go)
def _fuzzy(values: list[str] | None, *sources: str) -> bool:
    """moby's FuzzyMatch: no filter for the key matches; else an exact value or a prefix."""
    if not values:
        return True
    return any(s and (s == v or s.startswith(v)) for v in values for s in sources)


def _exact(values: list[str] | None, *sources: str) -> bool:
    if not values:
        return True
    return any(s == v for v in values for s in sources)


def _strip_tag(ref: str) -> str:
    name, _, tag = ref.rpartition(":")
    return name if name and "/" not in tag else ref


def matches(event: dict[str, Any], filters: dict[str, list[str]]) -> bool:
    """Whether ``event`` passes docker's event filters (one key's values: any; keys: all)."""
    actor = event.get("Actor") or {}
    attrs = actor.get("Attributes") or {}
    actor_id = actor.get("ID") or ""
    type_ = event.get("Type") or ""
    action = event.get("Action") or ""
    wanted = filters.get("event")
    if wanted:
        fuzzy = any(v in ("health_status", "exec_create", "exec_start") for v in wanted)
        if not (_fuzzy(wanted, action) if fuzzy else _exact(wanted, action)):
            return False
    if not _exact(filters.get("type"), type_) or not _exact(filters.get("scope"), event.get("scope") or "local"):
        return False
    for key in ("container", "volume", "network", "daemon", "plugin", "service", "node", "secret", "config"):
        # as moby: the actor's ID or name, whatever the event's type (a network event's actor
        # is the network, so ``container=x`` leaves out the connects of x)
        if not _fuzzy(filters.get(key), actor_id, attrs.get("name", "")):
            return False
    if filters.get("image"):
        name = attrs.get("name" if type_ == "image" else "image", "")
        if not _exact(filters["image"], actor_id, name, _strip_tag(actor_id), _strip_tag(name)):
            return False
    for want in filters.get("label") or []:  # every label filter must hold
        key, eq, value = want.partition("=")
        if key not in attrs or (eq and attrs[key] != value):
            return False
    return True


# ====================================================================== showing
def format_line(event: dict[str, Any]) -> str:
    """docker's default line: ``<time> <type> <action> <id> (k=v, ...)`` (attributes sorted)."""
    from dockyard.engine.timeutil import rfc3339nano_fixed

    actor = event.get("Actor") or {}
    attrs = actor.get("Attributes") or {}
    line = f"{rfc3339nano_fixed(int(event['timeNano']))} {event.get('Type', '')} {event.get('Action', '')} {actor.get('ID', '')}"
    if attrs:
        line += " (" + ", ".join(f"{k}={attrs[k]}" for k in sorted(attrs)) + ")"
    return line
