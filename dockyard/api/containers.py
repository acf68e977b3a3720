"""``/containers/...``: docker's container endpoints on ``client.containers``.

The create body goes to the engine as it is (the engine's one input *is* docker's create
body), with one translation: the zero values the docker CLI sends for settings it leaves unset
(``"IpcMode": ""``, ``"ShmSize": 0``, ``"PidsLimit": 0``, ``"MemorySwappiness": -1``) are
dropped, so that the engine applies the daemon's defaults as dockerd would.
"""
from __future__ import annotations

import base64
import json
import threading
import time
from pathlib import Path
from typing import Any

from dockyard.api.http import MULTIPLEXED_STREAM, RAW_STREAM, ApiError, Exchange, client_gone
from dockyard.errors import NotFound

RUNNING = ("running", "paused", "restarting")
_ZERO: tuple[Any, ...] = ("", 0, None)


# ------------------------------------------------------------------ create / list / inspect
def daemon_defaults(body: dict[str, Any]) -> dict[str, Any]:
    """Drop the zero values docker's clients send for unset HostConfig settings (dockerd reads
    them as "use the default")."""
    from dockyard.engine.creation import DEFAULT_HOST_CONFIG

    host = dict(body.get("HostConfig") or {})
    for key, value in list(host.items()):
        if value in _ZERO and DEFAULT_HOST_CONFIG.get(key) not in _ZERO:
            del host[key]
    if (host.get("PidsLimit") or 0) <= 0:
        host.pop("PidsLimit", None)
    if host.get("MemorySwappiness") == -1:
        host.pop("MemorySwappiness", None)
    policy = host.get("RestartPolicy")
    if isinstance(policy, dict) and not policy.get("Name"):
        host["RestartPolicy"] = {"Name": "no", "MaximumRetryCount": int(policy.get("MaximumRetryCount") or 0)}
    out = dict(body)
    out["HostConfig"] = host
    return out


def create(x: Exchange) -> None:
    body = x.json({}) or {}
    if not isinstance(body, dict):
        raise ApiError(400, "invalid JSON: expected an object")
    try:
        c = x.client.containers.create(daemon_defaults(body), x.arg("name") or None)
    except NotFound as exc:
        if exc.message.startswith("network ") and exc.message.endswith(" not found"):
            # dockerd finds a missing network only at start; a 404 from create would make the
            # docker CLI take it for a missing image and try to pull it
            raise ApiError(400, exc.message) from None
        raise
    from dockyard.network.conflicts import create_warnings

    x.reply_json({"Id": c.id, "Warnings": create_warnings(body.get("HostConfig") or {})}, 201)


def list_(x: Exchange) -> None:
    svc = x.client.containers
    limit = x.int_arg("limit", -1) or -1
    size = x.flag("size")
    containers = svc.list(all=x.flag("all"), filters=x.filters(), limit=limit)
    rows = container_rows(x.client, [c.record for c in containers], size=size)
    x.reply_json(rows)


def container_rows(client: Any, records: list[Any], size: bool = False) -> list[dict[str, Any]]:
    """``GET /containers/json`` entries (also ``/system/df``'s), with their networks."""
    from dockyard.engine.attachments import Attachments
    from dockyard.engine.view import summary

    cache: dict[str, str | None] = {}
    att = Attachments(client)
    rows = []
    for rec in records:
        row = summary(client.containers, rec, cache, size=size)
        try:
            row["NetworkSettings"] = {"Networks": att.network_settings(rec).get("Networks") or {}}
        except Exception:  # noqa: BLE001 - no network record: docker shows none
            row["NetworkSettings"] = {"Networks": {}}
        rows.append(row)
    return rows


def inspect(x: Exchange, id: str) -> None:  # noqa: A002 - docker's parameter name
    doc = x.client.containers.inspect(id, size=x.flag("size"))
    config = doc.get("Config")
    if isinstance(config, dict) and not config.get("NetworkDisabled"):
        config.pop("NetworkDisabled", None)  # moby's omitempty: dockerd shows it only when true
    x.reply_json(doc)


def top(x: Exchange, id: str) -> None:  # noqa: A002
    x.reply_json(x.client.containers.top(id, x.arg("ps_args") or None))


def changes(x: Exchange, id: str) -> None:  # noqa: A002
    kinds = {"C": 0, "A": 1, "D": 2}
    x.reply_json([{"Path": path, "Kind": kinds[kind]} for kind, path in x.client.containers.diff(id)] or None)


# ------------------------------------------------------------------ lifecycle
def start(x: Exchange, id: str) -> None:  # noqa: A002
    """Start; an attach that came first (``docker run``) gets the container's output from its
    first byte, as it does with dockerd."""
    from dockyard.api.attach import start_attached

    svc = x.client.containers
    rec = svc.load(id)
    if rec.status in ("running", "restarting") and not rec.state.get("Paused"):
        x.reply(304)
        return
    pending = x.daemon.attaches.take(rec.id)
    if pending is not None:
        start_attached(x, rec, pending)
    else:
        svc.start(rec.id)
    x.daemon.watch_exit(rec.id)
    x.no_content()


def _timeout(x: Exchange) -> int | None:
    return x.int_arg("t", None) if x.arg("t") not in (None, "") else x.int_arg("timeout", None)


def stop(x: Exchange, id: str) -> None:  # noqa: A002
    svc = x.client.containers
    rec = svc.load(id)
    if rec.status not in RUNNING:
        x.reply(304)
        return
    svc.stop(rec.id, _timeout(x), x.arg("signal") or None)
    x.daemon.settle(rec.id)
    x.no_content()


def restart(x: Exchange, id: str) -> None:  # noqa: A002
    """The engine (and the container's monitor) record dockerd's events: the stop's, ``start``, ``restart``."""
    svc = x.client.containers
    rec = svc.load(id)
    svc.restart(rec.id, _timeout(x), x.arg("signal") or None)
    x.daemon.watch_exit(rec.id)
    x.no_content()


def kill(x: Exchange, id: str) -> None:  # noqa: A002
    svc = x.client.containers
    signal = x.arg("signal") or "SIGKILL"
    svc.kill(id, signal)  # dockerd's "Cannot kill container: REF: No such container: REF"; the monitor records it
    x.no_content()


def pause(x: Exchange, id: str) -> None:  # noqa: A002
    rec = x.client.containers.load(id)
    x.client.containers.pause(rec.id)
    x.no_content()


def unpause(x: Exchange, id: str) -> None:  # noqa: A002
    rec = x.client.containers.load(id)
    x.client.containers.unpause(rec.id)
    x.no_content()


def rename(x: Exchange, id: str) -> None:  # noqa: A002
    name = x.arg("name") or ""
    rec = x.client.containers.load(id)
    x.client.containers.rename(rec.id, name)
    x.no_content()


def update(x: Exchange, id: str) -> None:  # noqa: A002
    """Changing the resources of an existing container: only where the engine can."""
    svc = x.client.containers
    rec = svc.load(id)
    body = x.json({}) or {}
    fn = getattr(svc, "update", None)
    if fn is None:
        from dockyard.errors import Unsupported

        raise Unsupported("updating a container's resources is not supported by dockyard's engine; "
                          "recreate the container with the new settings")
    warnings = fn(rec.id, body)
    x.reply_json({"Warnings": warnings or []})


def wait(x: Exchange, id: str) -> None:  # noqa: A002
    """Headers at once (dockerd does: the client learns the wait is in place), the exit code
    when the condition is met."""
    from dockyard.errors import DockyardError

    svc = x.client.containers
    condition = x.arg("condition") or "not-running"
    if condition not in ("not-running", "next-exit", "removed"):
        raise ApiError(400, f'invalid condition: "{condition}"')
    rec = svc.load(id)
    stream = x.stream()
    stream.start()
    result: dict[str, Any] = {}
    done = threading.Event()

    def run() -> None:
        try:
            result["code"] = svc.wait(rec.id, condition)
            if condition == "removed":
                _await_removal(svc, rec.id)
        except DockyardError as exc:
            result["code"], result["error"] = -1, {"Message": exc.message}
        finally:
            done.set()

    # on a thread: a client that goes away (``docker run -d`` does) must not hold this one
    threading.Thread(target=run, name=f"wait-{rec.id[:12]}", daemon=True).start()
    while not done.wait(0.5):
        if client_gone(x.sock):
            return
    stream.write(json.dumps({"Error": result.get("error"), "StatusCode": result["code"]}).encode() + b"\n")


def _await_removal(svc: Any, cid: str, timeout: float = 10.0) -> None:
    """The end of an auto-removal: the engine hides the record and reports the exit first, then
    frees the rootfs and the volumes. dockerd answers ``condition=removed`` when all is gone, and
    ``docker run --rm -v vol:/d ...; docker volume rm vol`` relies on it."""
    pending = Path(svc.store.base) / f".removing-{cid}"
    deadline = time.monotonic() + timeout
    while pending.exists() and time.monotonic() < deadline:
        time.sleep(0.02)


def remove(x: Exchange, id: str) -> None:  # noqa: A002
    svc = x.client.containers
    rec = svc.load(id)
    svc.remove(rec.id, force=x.flag("force"), volumes=x.flag("v"))
    x.daemon.settle(rec.id)
    x.no_content()


def prune(x: Exchange) -> None:
    x.reply_json(x.client.containers.prune(x.filters()))  # the engine records destroy and prune


# ------------------------------------------------------------------ output
def logs(x: Exchange, id: str) -> None:  # noqa: A002
    from dockyard.api.streams import Framer

    svc = x.client.containers
    stdout, stderr = x.flag("stdout"), x.flag("stderr")
    if not stdout and not stderr:
        raise ApiError(400, "Bad parameters: you must choose at least one stream")
    rec = svc.load(id)
    tty = bool(rec.cfg.get("Tty"))
    since, until = (None if x.arg(k) in (None, "", "0") else x.arg(k) for k in ("since", "until"))
    entries = svc.logs(rec.id, stdout=stdout, stderr=stderr, follow=x.flag("follow"), since=since, until=until,
                       tail=x.arg("tail") or "all", timestamps=x.flag("timestamps"))
    stream = x.stream(RAW_STREAM if tty else MULTIPLEXED_STREAM)
    stream.start()
    framer = Framer(tty)
    details, timestamps = x.flag("details"), x.flag("timestamps")
    for name, data in entries:
        if details:  # the line's log attributes (none kept here) and a space, after any timestamp
            if timestamps and b" " in data:
                ts, _, rest = bytes(data).partition(b" ")
                data = ts + b"  " + rest
            else:
                data = b" " + bytes(data)
        stream.write(framer.frame(2 if name == "stderr" else 1, data))


def stats(x: Exchange, id: str) -> None:  # noqa: A002
    """docker's stats JSON: one sample (``stream=false``: with a real ``precpu_stats`` taken a
    moment before; ``one-shot``: without) or one a second while the container runs."""
    import time

    from dockyard.engine.inspection import sample

    svc = x.client.containers
    rec = svc.load(id)
    if not x.flag("stream", True):
        if x.flag("one-shot"):
            doc = sample(rec)
            doc["precpu_stats"] = {}
        else:
            doc = svc.stats(rec.id)
        x.reply_json(doc)
        return
    stream = x.stream()
    previous: dict[str, Any] = {"cpu_stats": {}, "read": "0001-01-01T00:00:00Z"}
    while True:
        rec.state = svc.store.read_state(rec.id)
        doc = sample(rec)
        doc["precpu_stats"] = previous["cpu_stats"]
        doc["preread"] = previous["read"]
        stream.json(doc)
        previous = doc
        if rec.status not in RUNNING:
            return
        time.sleep(1.0)


def resize(x: Exchange, id: str) -> None:  # noqa: A002
    h, w = x.int_arg("h", 0) or 0, x.int_arg("w", 0) or 0
    x.client.containers.resize(id, h, w)
    x.reply(200, b"", "text/plain; charset=utf-8")


# ------------------------------------------------------------------ files
def go_file_mode(st_mode: int) -> int:
    """A Unix ``st_mode`` as Go's ``os.FileMode`` (what docker's path stat carries)."""
    import stat

    mode = st_mode & 0o777
    for flag, bit in ((stat.S_ISUID, 1 << 23), (stat.S_ISGID, 1 << 22), (stat.S_ISVTX, 1 << 20)):
        if st_mode & flag:
            mode |= bit
    kind = stat.S_IFMT(st_mode)
    mode |= {stat.S_IFDIR: 1 << 31, stat.S_IFLNK: 1 << 27, stat.S_IFIFO: 1 << 25, stat.S_IFSOCK: 1 << 24,
             stat.S_IFBLK: 1 << 26, stat.S_IFCHR: (1 << 26) | (1 << 21)}.get(kind, 0)
    return mode


def _stat_header(x: Exchange, id: str, path: str) -> str:  # noqa: A002
    from dockyard.timeutil import format_rfc3339

    st = x.client.containers.stat_path(id, path)
    doc = {"name": st["name"], "size": st["size"], "mode": go_file_mode(st["mode"]),
           "mtime": format_rfc3339(st["mtime"]), "linkTarget": st["linkTarget"]}
    return base64.b64encode(json.dumps(doc, separators=(",", ":")).encode()).decode()


def archive_stat(x: Exchange, id: str) -> None:  # noqa: A002
    path = x.arg("path") or ""
    if not path:
        raise ApiError(400, "path must not be empty")
    x.reply(200, b"", None, {"X-Docker-Container-Path-Stat": _stat_header(x, id, path)})


class _StreamFile:
    """A write-only file on a chunked response (for the engine's tar writers)."""

    def __init__(self, write: Any) -> None:
        self.write = write


def archive_get(x: Exchange, id: str) -> None:  # noqa: A002
    path = x.arg("path") or ""
    if not path:
        raise ApiError(400, "path must not be empty")
    header = _stat_header(x, id, path)
    stream = x.stream("application/x-tar", headers={"X-Docker-Container-Path-Stat": header})
    x.client.containers.get_archive(id, path, _StreamFile(stream.write))


def export(x: Exchange, id: str) -> None:  # noqa: A002
    """``docker export``: the container's filesystem as a tar stream (404 before any byte)."""
    from dockyard.engine.exporting import export_container

    x.client.containers.load(id)
    stream = x.stream("application/x-tar")
    export_container(x.client, id, _StreamFile(stream.write))


def archive_put(x: Exchange, id: str) -> None:  # noqa: A002
    path = x.arg("path") or ""
    if not path:
        raise ApiError(400, "path must not be empty")
    try:
        x.client.containers.put_archive(id, path, x.body, copy_uid_gid=x.flag("copyUIDGID"))
    except NotFound:
        raise NotFound(f"Could not find the file {path} in container {id}") from None
    x.reply(200)


def commit(x: Exchange) -> None:
    ref = x.arg("container") or ""
    if not ref:
        raise ApiError(400, "container is required")
    repo, tag = x.arg("repo") or "", x.arg("tag") or ""
    name = f"{repo}:{tag}" if repo and tag else (repo or None)
    x.json(None)  # the optional Config body: the image config comes from the container
    image = x.client.containers.commit(ref, name, changes=x.args("changes"), message=x.arg("comment") or "",
                                       author=x.arg("author") or "", pause=x.flag("pause", True))
    x.reply_json({"Id": image.id}, 201)
