"""Container records on disk: one directory per container, a name index, and the monitor lock.

Layout under ``<root>/containers/``::

    <id>/config.json     docker's container document without State (Config, HostConfig, ...);
                         written by the engine (create, rename, update)
    <id>/state.json      docker's State plus RestartCount; written by the monitor while it lives
    <id>/monitor.lock    flock'ed by the monitor for its whole life: "is anyone minding this
                         container?" is one non-blocking lock attempt, immune to pid reuse and
                         released by the kernel when the monitor dies (kill -9, reboot)
    <id>/monitor.sock    the monitor's control/attach socket
    <id>/<id>-json.log   logs;  <id>/bundle/  the OCI bundle;  hosts, hostname, resolv.conf
    .names/<name>        symlink -> <id>: names are unique because symlink() is atomic
    .creating-<id>/      a record being written (renamed into place once its name is taken)
    .removing-<id>/      a record being deleted (finished by the next command if interrupted)
    .exits/<id>          the exit code of a removed container, for a few minutes (``wait``)

Every JSON write goes to a temporary file that is renamed over the old one, so a reader never
sees half a document and a crash leaves the previous version.
"""
from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path
from typing import Any

from dockyard.engine import refs
from dockyard.errors import Conflict, NotFound

STALE_SECONDS = 60.0  # a .creating-/.removing- directory older than this was left by a crash
TOMBSTONE_SECONDS = 300.0  # how long a removed container's exit code is kept for wait()

RUNNING_STATES = ("running", "paused", "restarting", "removing")


def write_json_atomic(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    data = json.dumps(obj, separators=(",", ":")).encode()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    with open(path, "rb") as f:
        return json.loads(f.read())


def default_state() -> dict[str, Any]:
    """Docker's State of a container that was created and never started."""
    zero = "0001-01-01T00:00:00Z"
    return {"Status": "created", "Running": False, "Paused": False, "Restarting": False,
            "OOMKilled": False, "Dead": False, "Pid": 0, "ExitCode": 0, "Error": "",
            "StartedAt": zero, "FinishedAt": zero, "RestartCount": 0}


class ContainerRecord:
    """A container as stored: ``config`` is config.json, ``state`` is state.json.

    (A plain class: ``dataclasses`` costs every light command — ``ps``, ``exec``, ``stop`` —
    milliseconds of import time.)"""

    __slots__ = ("id", "dir", "config", "state")

    def __init__(self, id: str, dir: Path, config: dict[str, Any], state: dict[str, Any] | None = None) -> None:
        self.id = id
        self.dir = dir
        self.config = config
        self.state = default_state() if state is None else state

    def __repr__(self) -> str:
        return f"ContainerRecord({self.id[:12]}, {self.name!r}, {self.status})"

    @property
    def name(self) -> str:
        return str(self.config.get("Name", "")).lstrip("/")

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def status(self) -> str:
        return str(self.state.get("Status", "created"))

    @property
    def host_config(self) -> dict[str, Any]:
        return self.config.setdefault("HostConfig", {})

    @property
    def cfg(self) -> dict[str, Any]:
        """docker's ``Config`` (the part that came from the image and run's flags)."""
        return self.config.setdefault("Config", {})

    @property
    def bundle(self) -> Path:
        return self.dir / "bundle"

    @property
    def rootfs(self) -> Path:
        return self.dir / "bundle" / "rootfs"

    @property
    def log_path(self) -> Path:
        return self.dir / f"{self.id}-json.log"

    @property
    def socket_path(self) -> Path:
        return self.dir / "monitor.sock"

    @property
    def lock_path(self) -> Path:
        return self.dir / "monitor.lock"


class ContainerStore:
    """Reads and writes container records under ``<root>/containers``."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.names = base / ".names"
        self.names.mkdir(parents=True, exist_ok=True, mode=0o700)

    # ---------------------------------------------------------------- lookup
    def path(self, cid: str) -> Path:
        return self.base / cid

    def ids(self) -> list[str]:
        return refs.ids(str(self.base))

    def exists(self, cid: str) -> bool:
        return refs.exists(str(self.base), cid)

    def id_for_name(self, name: str) -> str | None:
        return refs.id_for_name(str(self.base), name)

    def resolve(self, ref: str) -> str:
        """A full ID, a name (with or without ``/``) or a unique ID prefix → the ID, as docker."""
        return refs.resolve(str(self.base), ref)

    # ---------------------------------------------------------------- records
    def load(self, cid: str) -> ContainerRecord:
        d = self.base / cid
        try:
            config = read_json(d / "config.json")
        except FileNotFoundError:
            raise NotFound(f"No such container: {cid}") from None
        return ContainerRecord(cid, d, config, self.read_state(cid))

    def read_state(self, cid: str) -> dict[str, Any]:
        try:
            state = read_json(self.base / cid / "state.json")
        except (FileNotFoundError, ValueError):
            state = default_state()
        return state

    def write_state(self, rec: ContainerRecord) -> None:
        write_json_atomic(rec.dir / "state.json", rec.state)

    def write_config(self, rec: ContainerRecord) -> None:
        write_json_atomic(rec.dir / "config.json", rec.config)

    # ---------------------------------------------------------------- create / remove
    def create(self, rec: ContainerRecord) -> ContainerRecord:
        """Write a new record and take its name atomically; Conflict if the name is taken."""
        tmp = self.base / f".creating-{rec.id}"
        tmp.mkdir(mode=0o710)
        try:
            write_json_atomic(tmp / "config.json", rec.config)
            write_json_atomic(tmp / "state.json", rec.state)
            self.claim_name(rec.name, rec.id)
        except BaseException:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
            raise
        os.rename(tmp, self.base / rec.id)
        rec.dir = self.base / rec.id
        return rec

    def claim_name(self, name: str, cid: str) -> None:
        link = self.names / name
        for _ in range(2):
            try:
                os.symlink(cid, link)
                return
            except FileExistsError:
                owner = os.readlink(link)
                if owner == cid:
                    return
                if self.exists(owner) or self._in_progress(owner):
                    raise Conflict(f'Conflict. The container name "/{name}" is already in use by container '
                                   f'"{owner}". You have to remove (or rename) that container to be able to '
                                   "reuse that name.") from None
                try:  # left by a crash: the container it named is gone
                    os.unlink(link)
                except FileNotFoundError:
                    pass
        raise Conflict(f'Conflict. The container name "/{name}" is already in use.')

    def _in_progress(self, cid: str) -> bool:
        p = self.base / f".creating-{cid}"
        try:
            return time.time() - p.stat().st_mtime < STALE_SECONDS
        except FileNotFoundError:
            return False

    def release_name(self, name: str, cid: str) -> None:
        link = self.names / name.lstrip("/")
        try:
            if os.readlink(link) == cid:
                os.unlink(link)
        except (FileNotFoundError, OSError):
            pass

    def begin_remove(self, rec: ContainerRecord) -> Path:
        """Take the record out of sight (atomic rename) and free its name; returns where it went.
        A tombstone keeps its exit code for a while: ``wait`` on a container that ran and was
        removed between two looks (``run --rm`` through the API) still learns how it ended."""
        gone = self.base / f".removing-{rec.id}"
        if not str(rec.state.get("StartedAt") or "").startswith("0001"):
            try:
                self.exits.mkdir(exist_ok=True, mode=0o700)
                (self.exits / rec.id).write_text(str(int(rec.state.get("ExitCode") or 0)))
            except OSError:
                pass
        os.rename(rec.dir, gone)
        self.release_name(rec.name, rec.id)
        rec.dir = gone
        return gone

    @property
    def exits(self) -> Path:
        return self.base / ".exits"

    def exit_code_of_removed(self, cid: str) -> int | None:
        """The exit code a removed container left in its tombstone, if it is still there."""
        try:
            return int((self.exits / cid).read_text())
        except (OSError, ValueError):
            return None

    def leftovers(self) -> list[tuple[str, Path]]:
        """Directories of interrupted creates/removes: ("creating"|"removing", path)."""
        out = []
        try:
            names = os.listdir(self.base)
        except FileNotFoundError:
            return out
        for n in names:
            for kind in ("creating", "removing"):
                prefix = f".{kind}-"
                if n.startswith(prefix):
                    p = self.base / n
                    try:
                        if kind == "removing" and not self._lock_held(p / "monitor.lock") or \
                                time.time() - p.stat().st_mtime >= STALE_SECONDS:
                            out.append((kind, p))
                    except FileNotFoundError:
                        pass
        try:  # old tombstones
            for t in self.exits.iterdir():
                if time.time() - t.stat().st_mtime > TOMBSTONE_SECONDS:
                    t.unlink(missing_ok=True)
        except OSError:
            pass
        return out

    @staticmethod
    def _lock_held(path: Path) -> bool:
        """A monitor still finishing a removal holds the removed record's lock."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)

    # ---------------------------------------------------------------- monitor lock
    def try_lock(self, rec: ContainerRecord) -> int | None:
        """Take the monitor lock (exclusive, non-blocking); the fd, or None if someone holds it."""
        fd = os.open(rec.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return fd

    def lock_holders(self, rec: ContainerRecord) -> list[int]:
        """Processes with the container's monitor.lock open (the monitor, or — if it died
        between fork and exec — one of its children). Slow (scans /proc): for recovery only."""
        target = str(rec.lock_path)
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                for fd in os.listdir(f"/proc/{entry}/fd"):
                    try:
                        if os.readlink(f"/proc/{entry}/fd/{fd}") == target:
                            found.append(int(entry))
                            break
                    except OSError:
                        continue
            except OSError:
                continue
        return found

    def monitor_alive(self, rec: ContainerRecord) -> bool:
        """True while a monitor (or a command starting one) holds the container's lock."""
        try:
            fd = os.open(rec.lock_path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False
