"""Reading a container's logs as ``docker logs`` shows them.

``--tail`` counts lines from the end first, then ``--since``/``--until`` filter by time (as
docker does); ``-f`` keeps reading the growing file (across rotations) until the container
stops. A TTY container's output is all on stdout, as docker logs it.
"""
from __future__ import annotations

from typing import Any, Iterator

from dockyard.engine.logs import LogEntry, read_entries
from dockyard.engine.logs import follow as follow_file
from dockyard.engine.store import ContainerRecord
from dockyard.engine.timeutil import parse_timestamp, rfc3339nano_fixed
from dockyard.errors import InvalidArgument


def _time_arg(value: Any, flag: str) -> int | None:
    if value is None or value == "" or value == 0:
        return None
    if isinstance(value, (int, float)):
        return int(value * 1_000_000_000)
    try:
        return parse_timestamp(str(value))
    except ValueError as exc:
        raise InvalidArgument(str(exc)) from None


def _tail_arg(tail: Any) -> int:
    if tail is None or tail == "all" or tail == "":
        return -1
    try:
        n = int(tail)
    except ValueError:
        return -1  # dockerd: a --tail it cannot read means all of it
    return n if n >= 0 else -1


def read_logs(service: Any, rec: ContainerRecord, stdout: bool = True, stderr: bool = True,
              follow: bool = False, since: Any = None, until: Any = None, tail: Any = "all",
              timestamps: bool = False, details: bool = False) -> Iterator[tuple[str, bytes]]:
    """A container's log entries as (stream, bytes); ``details`` puts the entry's attributes
    (none: dockyard records no --log-opt labels/env) and a space before each line, as dockerd."""
    log_type = ((rec.host_config.get("LogConfig") or {}).get("Type")) or "json-file"
    if log_type == "none":
        raise InvalidArgument('configured logging driver does not support reading')
    since_ns = _time_arg(since, "--since")
    until_ns = _time_arg(until, "--until")
    tail_n = _tail_arg(tail)
    want = {s for s, on in (("stdout", stdout), ("stderr", stderr)) if on}
    path = rec.log_path

    def emit(e: LogEntry) -> tuple[str, bytes] | None:
        if e.stream not in want:
            return None
        if since_ns is not None and e.time_ns < since_ns:
            return None
        data = e.data
        if details:
            data = b" " + data
        if timestamps:
            data = rfc3339nano_fixed(e.time_ns).encode() + b" " + data
        return e.stream, data

    def gen() -> Iterator[tuple[str, bytes]]:
        entries, size = read_entries(path, tail_n)
        for e in entries:
            if until_ns is not None and e.time_ns > until_ns:
                return
            out = emit(e)
            if out:
                yield out
        if not follow or until_ns is not None:
            return

        def still_running() -> bool:
            try:
                state = service.store.read_state(rec.id)
            except Exception:  # noqa: BLE001
                return False
            return state.get("Status") in ("running", "paused", "restarting") and service.store.monitor_alive(rec)

        for e in follow_file(path, size, still_running):
            out = emit(e)
            if out:
                yield out

    return gen()
