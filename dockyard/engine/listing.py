"""``ls``/``ps`` selection: docker's filters, ``-a``, ``-n``, ``--since``/``--before``.

Without ``-a`` only running containers (paused and restarting included) are listed, unless a
``status`` filter asks for others, as docker does.
"""
from __future__ import annotations

import re
from typing import Any

from dockyard.engine.store import ContainerRecord
from dockyard.errors import InvalidArgument, NotFound

FILTER_KEYS = ("id", "name", "label", "exited", "status", "ancestor", "before", "since", "volume", "network",
               "health", "publish", "expose", "is-task", "isolation")
STATUSES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")
HEALTH = ("starting", "healthy", "unhealthy", "none")


def parse_filters(values: list[str]) -> dict[str, list[str]]:
    """``--filter k=v`` values → {k: [v, ...]} (docker's message for a malformed one)."""
    out: dict[str, list[str]] = {}
    for raw in values:
        k, eq, v = raw.partition("=")
        if not eq:
            raise InvalidArgument("bad format of filter (expected name=value)")
        out.setdefault(k.strip().lower(), []).append(v)
    return out


def _validate(filters: dict[str, list[str]]) -> None:
    for key, values in filters.items():
        if key not in FILTER_KEYS:
            raise InvalidArgument(f"Invalid filter '{key}'")
        for v in values:
            if key == "status" and v not in STATUSES:
                raise InvalidArgument(f"Invalid filter 'status={v}'")
            if key == "health" and v not in HEALTH:
                raise InvalidArgument(f"Unrecognised filter value for health: {v}")
            if key == "exited":
                try:
                    int(v)
                except ValueError:
                    raise InvalidArgument(f'strconv.Atoi: parsing "{v}": invalid syntax') from None


def _labels_match(labels: dict[str, str], wanted: list[str]) -> bool:
    for w in wanted:
        k, eq, v = w.partition("=")
        if k not in labels or (eq and labels[k] != v):
            return False
    return True


def _ancestor_ids(service: Any, refs: list[str]) -> set[str]:
    out = set()
    for ref in refs:
        try:
            img = service.client.images.get(ref)
        except Exception:  # noqa: BLE001 - docker ignores unknown ancestors
            continue
        out.add(img.id)
        try:  # images built on top of it count too
            for other in service.client.images.list(all=True):
                chain = getattr(other, "top_chain_id", None)
                if other.id != img.id and img.top_chain_id and chain and \
                        img.top_chain_id in service.client.snapshots.parents(chain):
                    out.add(other.id)
        except Exception:  # noqa: BLE001
            pass
    return out


def _created_of(service: Any, ref: str) -> str:
    try:
        return service.store.load(service.store.resolve(ref)).config.get("Created", "")
    except NotFound:
        raise NotFound(f"no such container {ref}") from None


def _ports(rec: ContainerRecord, key: str) -> set[str]:
    if key == "expose":
        return set((rec.cfg.get("ExposedPorts") or {}).keys())
    out = set()
    for k, binds in (rec.host_config.get("PortBindings") or {}).items():
        out.add(k)
        for b in binds or []:
            if b.get("HostPort"):
                out.add(f"{b['HostPort']}/{k.partition('/')[2] or 'tcp'}")
    return out


def _port_match(have: set[str], wanted: str) -> bool:
    port, _, proto = wanted.partition("/")
    return f"{port}/{proto or 'tcp'}" in have


def matches(service: Any, rec: ContainerRecord, f: dict[str, list[str]], ancestors: set[str] | None,
            since: str | None, before: str | None) -> bool:
    if "id" in f and not any(rec.id.startswith(v) or re.search(v, rec.id) for v in f["id"]):
        return False
    if "name" in f:
        name = rec.config.get("Name", "")
        if not any(re.search(v, name) or re.search(v, name.lstrip("/")) for v in f["name"]):
            return False
    if "label" in f and not _labels_match(rec.cfg.get("Labels") or {}, f["label"]):
        return False
    if "exited" in f:
        if rec.status != "exited" or int(rec.state.get("ExitCode", 0)) not in {int(v) for v in f["exited"]}:
            return False
    if "status" in f and rec.status not in f["status"]:
        return False
    if "health" in f:
        h = (rec.state.get("Health") or {}).get("Status") or "none"
        if h not in f["health"]:
            return False
    if ancestors is not None and rec.config.get("Image") not in ancestors:
        return False
    created = rec.config.get("Created", "")
    if since is not None and not created > since:
        return False
    if before is not None and not created < before:
        return False
    if "volume" in f:
        mounts = rec.config.get("Mounts") or []
        names = {m.get("Name") for m in mounts} | {m.get("Destination") for m in mounts} | \
            {m.get("Source") for m in mounts}
        if not any(v in names for v in f["volume"]):
            return False
    if "network" in f:
        mode = rec.host_config.get("NetworkMode") or "default"
        nets = {"bridge" if mode == "default" else mode}
        nets |= set(((rec.config.get("NetworkingConfig") or {}).get("EndpointsConfig") or {}).keys())
        if not nets & set(f["network"]):
            return False
    for key in ("publish", "expose"):
        if key in f and not any(_port_match(_ports(rec, key), v) for v in f[key]):
            return False
    if "is-task" in f and "true" in f["is-task"]:
        return False
    return True


def select(service: Any, recs: list[ContainerRecord], filters: dict[str, list[str]], all: bool,
           limit: int = -1) -> list[ContainerRecord]:
    """``recs`` (newest first) as ``ls`` would show them."""
    _validate(filters)
    ancestors = _ancestor_ids(service, filters["ancestor"]) if "ancestor" in filters else None
    since = max((_created_of(service, r) for r in filters.get("since", [])), default=None)
    before = min((_created_of(service, r) for r in filters.get("before", [])), default=None)
    show_all = all or "status" in filters
    out = []
    for rec in recs:
        if not show_all and rec.status not in ("running", "paused", "restarting"):
            continue
        if matches(service, rec, filters, ancestors, since, before):
            out.append(rec)
        if 0 < limit <= len(out):
            break
    return out


def validate_prune_filters(filters: dict[str, list[str]]) -> None:
    """dockerd refuses a bad prune filter before it looks at any container."""
    from dockyard.engine.timeutil import parse_timestamp

    for key, values in filters.items():
        if key not in ("until", "label", "label!"):
            raise InvalidArgument(f"Invalid filter '{key}'")
        if key == "until":
            for v in values:
                try:
                    parse_timestamp(v)
                except ValueError as exc:
                    raise InvalidArgument(str(exc)) from None


def prune_matches(rec: ContainerRecord, filters: dict[str, list[str]]) -> bool:
    """``container prune --filter`` (``until``, ``label``, ``label!``)."""
    from dockyard.engine.timeutil import parse_rfc3339_or_zero, parse_timestamp

    for key, values in filters.items():
        if key == "until":
            created = parse_rfc3339_or_zero(rec.config.get("Created"))
            if not all(created < parse_timestamp(v) for v in values):
                return False
        elif key == "label":
            if not _labels_match(rec.cfg.get("Labels") or {}, values):
                return False
        elif key == "label!":
            if any(_labels_match(rec.cfg.get("Labels") or {}, [v]) for v in values):
                return False
        else:
            raise InvalidArgument(f"Invalid filter '{key}'")
    return True
