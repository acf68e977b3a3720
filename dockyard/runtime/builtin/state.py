"""The built-in runtime's host-side record of a container: ``<state_dir>/<id>/state.json``.

The record holds what ``state``/``kill``/``exec``/``delete`` need without the bundle: the init's
host pid *and its start time* (so a recycled pid is never mistaken for the container), the cgroup
path, the namespaces to join, the seccomp filter to load. The status is not stored but derived, as runc does: the exec FIFO
still exists ⇒ created; the init is alive ⇒ running (or paused if its cgroup is frozen); else stopped.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dockyard.errors import InvalidArgument, NotFound

STATE_FILE = "state.json"
EXEC_FIFO = "exec.fifo"
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


def validate_id(container_id: str) -> None:
    """IDs become directory names: no slashes, no dot-dot, nothing hidden."""
    if not _ID_RE.match(container_id) or len(container_id) > 1024:
        raise InvalidArgument(f"invalid container id {container_id!r}")


@dataclass
class ContainerState:
    id: str
    pid: int
    start_time: int                 # field 22 of /proc/<pid>/stat: tells a recycled pid apart
    bundle: str
    rootfs: str
    created: str                    # RFC 3339
    cgroups_path: str
    namespaces: list[dict[str, Any]] = field(default_factory=list)
    annotations: dict[str, str] = field(default_factory=dict)
    config_process: dict[str, Any] = field(default_factory=dict)
    seccomp_filter: str = ""        # the compiled filter exec'd processes get (base64), "" = none

    def save(self, directory: Path) -> None:
        tmp = directory / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(asdict(self)))
        os.replace(tmp, directory / STATE_FILE)

    @classmethod
    def load(cls, directory: Path, container_id: str) -> "ContainerState":
        try:
            data = json.loads((directory / STATE_FILE).read_text())
        except FileNotFoundError:
            raise NotFound(f"No such container: {container_id}") from None
        return cls(**data)


def process_start_time(pid: int) -> int | None:
    """The start time of ``pid`` (clock ticks since boot), None if it is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = data[data.rindex(b")") + 2:].split()
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


def alive(pid: int, start_time: int) -> bool:
    """The container's init still runs (same pid *and* same start time, not a zombie)."""
    return pid > 0 and process_start_time(pid) == start_time
