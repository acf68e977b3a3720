"""How containers look from outside: docker's inspect document, list entries and status strings."""
from __future__ import annotations

import time
from typing import Any

from dockyard.engine.store import ContainerRecord
from dockyard.cli.formatting import human_duration  # docker's units.HumanDuration
from dockyard.engine.timeutil import ZERO_TIME, parse_rfc3339_or_zero

STATE_KEYS = ("Status", "Running", "Paused", "Restarting", "OOMKilled", "Dead", "Pid", "ExitCode", "Error",
              "StartedAt", "FinishedAt")


def _since(text: str | None, now: float) -> str:
    ns = parse_rfc3339_or_zero(text)
    return human_duration(max(0.0, now - ns / 1e9))


def status_string(state: dict[str, Any], now: float | None = None) -> str:
    """moby's ``State.String()``: ``Up 2 minutes (healthy)``, ``Exited (0) 3 seconds ago``..."""
    now = time.time() if now is None else now
    status = state.get("Status")
    if state.get("Running") or status in ("running", "paused", "restarting"):
        if state.get("Paused"):
            return f"Up {_since(state.get('StartedAt'), now)} (Paused)"
        if state.get("Restarting") or status == "restarting":
            return f"Restarting ({state.get('ExitCode', 0)}) {_since(state.get('FinishedAt'), now)} ago"
        health = (state.get("Health") or {}).get("Status")
        if health:
            shown = "health: starting" if health == "starting" else health
            return f"Up {_since(state.get('StartedAt'), now)} ({shown})"
        return f"Up {_since(state.get('StartedAt'), now)}"
    if status == "removing":
        return "Removal In Progress"
    if status == "dead" or state.get("Dead"):
        return "Dead"
    if not parse_rfc3339_or_zero(state.get("StartedAt")):
        return "Created"
    if not parse_rfc3339_or_zero(state.get("FinishedAt")):
        return ""
    return f"Exited ({state.get('ExitCode', 0)}) {_since(state.get('FinishedAt'), now)} ago"


def state_document(rec: ContainerRecord) -> dict[str, Any]:
    s = rec.state
    out = {k: s.get(k) for k in STATE_KEYS}
    out["StartedAt"] = out["StartedAt"] or ZERO_TIME
    out["FinishedAt"] = out["FinishedAt"] or ZERO_TIME
    if s.get("Health"):
        out["Health"] = s["Health"]
    return out


def inspect_document(service: Any, rec: ContainerRecord) -> dict[str, Any]:
    """docker's ``GET /containers/{id}/json``."""
    from dockyard.engine.attachments import Attachments

    att = Attachments(service.client)
    c = rec.config
    graph: dict[str, Any] = {"Data": None, "Name": "overlay2"}
    try:
        snap = service.client.snapshots.active(rec.id)
        graph["Data"] = {"LowerDir": ":".join(str(p) for p in snap.lowerdirs) or None,
                         "MergedDir": str(rec.rootfs), "UpperDir": str(snap.upper), "WorkDir": str(snap.work)}
    except Exception:  # noqa: BLE001 - no snapshot service or no layer: docker shows null
        pass
    cfg = dict(c.get("Config") or {})
    return {
        "Id": rec.id,
        "Created": c.get("Created"),
        "Path": c.get("Path"),
        "Args": c.get("Args") or [],
        "State": state_document(rec),
        "Image": c.get("Image"),
        "ResolvConfPath": str(rec.dir / "resolv.conf"),
        "HostnamePath": str(rec.dir / "hostname"),
        "HostsPath": str(rec.dir / "hosts"),
        "LogPath": str(rec.log_path) if (c.get("HostConfig") or {}).get("LogConfig", {}).get("Type") != "none" else "",
        "Name": c.get("Name"),
        "RestartCount": int(rec.state.get("RestartCount") or 0),
        "Driver": c.get("Driver", "overlay2"),
        "Platform": c.get("Platform", "linux"),
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": None,
        "HostConfig": c.get("HostConfig") or {},
        "GraphDriver": graph,
        "Mounts": c.get("Mounts") or [],
        "Config": cfg,
        "NetworkSettings": att.network_settings(rec),
    }


def command_of(rec: ContainerRecord) -> str:
    """The list view's ``Command``: args with spaces single-quoted (moby ``container/view.go``)."""
    path = rec.config.get("Path") or ""
    args = rec.config.get("Args") or []
    if not args:
        return path
    return path + " " + " ".join(f"'{a}'" if " " in a else a for a in args)


def ports_of(service: Any, rec: ContainerRecord) -> list[dict[str, Any]]:
    """``Ports`` of a list entry, dockerd's: a running container on a bridge or user network
    shows its published bindings and its other exposed ports; one that is not running, or runs
    on ``host``, ``none`` or another container's network, has no ports to show."""
    from dockyard.engine.attachments import LOCAL_MODES, Attachments, network_mode

    out: list[dict[str, Any]] = []
    mode = network_mode(rec)
    if rec.status not in ("running", "paused", "restarting") or mode in LOCAL_MODES or \
            mode.startswith("container:"):
        return out
    seen = set()
    # by "port/proto" as text, each port's bindings in their order (dockerd's order is its
    # map's, arbitrary; this one is stable and usually the same)
    for b in sorted(Attachments(service.client).published_ports(rec), key=lambda b: b.key):
        out.append({"IP": b.shown_ip, "PrivatePort": b.container_port, "PublicPort": b.host_port,
                    "Type": b.proto})
        seen.add(f"{b.container_port}/{b.proto}")
    for key in (rec.cfg.get("ExposedPorts") or {}):
        if key in seen:
            continue
        port, _, proto = key.partition("/")
        if port.isdigit():
            out.append({"PrivatePort": int(port), "Type": proto or "tcp"})
    return out


def format_ports(ports: list[dict[str, Any]]) -> str:
    """docker's PORTS column (the CLI's ``DisplayablePorts``): sorted by container port, IP,
    host port and proto; runs of consecutive ports published on the same number grouped
    (``0.0.0.0:80-81->80-81/tcp``, ``7000-7002/tcp``), other mappings listed after the groups;
    IPv6 addresses in brackets (``[::]:8080->80/tcp``)."""
    from dockyard.network.ports import join_host_port

    ordered = sorted(ports, key=lambda p: (p.get("PrivatePort", 0), p.get("IP", ""),
                                           p.get("PublicPort", 0), p.get("Type", "")))
    groups: dict[tuple[str, str], list[int]] = {}
    order: list[tuple[str, str]] = []
    result: list[str] = []
    mappings: list[str] = []

    def form(key: tuple[str, str], first: int, last: int) -> str:
        ip, proto = key
        group = str(first) if first == last else f"{first}-{last}"
        if ip:
            group = f"{join_host_port(ip, group)}->{group}"
        return f"{group}/{proto}"

    for p in ordered:
        current, ip = int(p.get("PrivatePort", 0)), p.get("IP", "")
        if ip and p.get("PublicPort") != current:
            mappings.append(f"{join_host_port(ip, p.get('PublicPort', 0))}->{current}/{p['Type']}")
            continue
        key = (ip, p.get("Type", ""))
        group = groups.get(key)
        if group is None:
            groups[key] = [current, current]
            order.append(key)
        elif current == group[1] + 1:
            group[1] = current
        else:
            result.append(form(key, *group))
            groups[key] = [current, current]
    result += [form(key, *groups[key]) for key in order]
    return ", ".join(result + mappings)


def image_shown(service: Any, rec: ContainerRecord, cache: dict[str, str | None]) -> str:
    """The IMAGE column: the name used at create, or the short image ID if the name has moved."""
    name = rec.cfg.get("Image") or ""
    image_id = rec.config.get("Image") or ""
    if name not in cache:
        try:
            cache[name] = service.client.images.get(name).id
        except Exception:  # noqa: BLE001 - the name is gone
            cache[name] = None
    if cache[name] == image_id or name == image_id or image_id.startswith("sha256:" + name):
        return name
    return image_id.removeprefix("sha256:")[:12]


def summary(service: Any, rec: ContainerRecord, image_cache: dict[str, str | None] | None = None,
            size: bool = False) -> dict[str, Any]:
    """docker's ``GET /containers/json`` entry."""
    from dockyard.engine.timeutil import parse_rfc3339_or_zero

    out = {
        "Id": rec.id,
        "Names": [rec.config.get("Name")],
        "Image": image_shown(service, rec, image_cache if image_cache is not None else {}),
        "ImageID": rec.config.get("Image"),
        "Command": command_of(rec),
        "Created": parse_rfc3339_or_zero(rec.config.get("Created")) // 1_000_000_000,
        "Ports": ports_of(service, rec),
        "Labels": rec.cfg.get("Labels") or {},
        "State": rec.status,
        "Status": status_string(rec.state),
        "HostConfig": {"NetworkMode": rec.host_config.get("NetworkMode", "default")},
        "Mounts": rec.config.get("Mounts") or [],
    }
    if size:
        out["SizeRw"] = service.size_rw(rec)
        out["SizeRootFs"] = out["SizeRw"] + service._image_size(rec)
    return out
