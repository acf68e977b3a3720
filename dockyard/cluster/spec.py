"""docker's ``ServiceSpec`` documents: build them from flags, check them, read them.

The spec is stored as docker's Engine API shapes it (``TaskTemplate.ContainerSpec``,
``Mode.Replicated.Replicas``, ``UpdateConfig``, ``EndpointSpec.Ports``...), so ``service
inspect`` prints what docker prints and a future API layer can pass it through untouched.
"""
from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from dockyard.errors import InvalidArgument

SECOND = 1_000_000_000
DEFAULT_RESTART_DELAY = 5 * SECOND  # swarm's
DEFAULT_STOP_GRACE = 10 * SECOND  # swarm's
RESTART_CONDITIONS = ("none", "on-failure", "any")
UPDATE_ORDERS = ("start-first", "stop-first")
FAILURE_ACTIONS = ("pause", "continue", "rollback")
_NAME = re.compile(r"^[a-zA-Z0-9](?:[-_]*[A-Za-z0-9]+)*$")


def check_name(name: str) -> None:
    """swarmkit's rule for service names (a DNS label; they become task/container names)."""
    if not _NAME.match(name) or len(name) > 63:
        raise InvalidArgument("rpc error: code = InvalidArgument desc = name must be valid as a DNS name component")


def parse_duration(value: str, flag: str) -> int:
    """A Go duration (``5s``, ``300ms``, ``1m30s``) in nanoseconds."""
    from dockyard.engine.options import parse_duration_ns

    return parse_duration_ns(value, flag)


def parse_publish(values: list[str]) -> list[dict[str, Any]]:
    """``-p 8080:80``, ``-p 8080:80/udp``, ``-p published=8080,target=80[,protocol=udp]``
    as ``EndpointSpec.Ports`` entries (ingress mode: every node balances the port)."""
    ports: list[dict[str, Any]] = []
    for value in values:
        fields: dict[str, str] = {}
        if "=" in value:
            for part in value.split(","):
                key, _, val = part.partition("=")
                fields[key.strip().lower()] = val.strip()
            published, target = fields.get("published", ""), fields.get("target", "")
            proto = fields.get("protocol", "tcp")
            if fields.get("mode", "ingress") != "ingress":
                raise InvalidArgument(f"invalid argument \"{value}\" for \"-p, --publish\" flag: "
                                      "only mode=ingress is supported here")
        else:
            spec, _, proto = value.partition("/")
            proto = proto or "tcp"
            published, _, target = spec.rpartition(":")
            if not published:
                published, target = "", spec
        if proto not in ("tcp", "udp"):
            raise InvalidArgument(f'invalid argument "{value}" for "-p, --publish" flag: invalid proto: {proto}')
        try:
            t = int(target)
            p = int(published) if published else 0
        except ValueError:
            raise InvalidArgument(f'invalid argument "{value}" for "-p, --publish" flag: invalid containerPort: {target}') from None
        if not (0 < t < 65536 and 0 <= p < 65536):
            raise InvalidArgument(f'invalid argument "{value}" for "-p, --publish" flag: invalid port: {value}')
        if p == 0:
            p = free_port(proto)
        ports.append({"Protocol": proto, "TargetPort": t, "PublishedPort": p, "PublishMode": "ingress"})
    return ports


def free_port(proto: str) -> int:
    """A port for ``-p TARGET`` without a published port: swarm picks from 30000-32767."""
    import socket

    from dockyard.network.firewall import published_host_ports

    taken = {port for _, _, port in published_host_ports()}
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    for port in range(30000, 32768):
        if port in taken:
            continue
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                continue
        return port
    raise InvalidArgument("no free port left in the ingress range 30000-32767")


def healthcheck(cmd: str | None, interval: str | None, timeout: str | None,
                start_period: str | None, retries: int | None, disable: bool) -> dict[str, Any] | None:
    """``ContainerSpec.Healthcheck`` from the ``--health-*`` flags (None: the image's)."""
    if disable:
        if any(v is not None for v in (cmd, interval, timeout, start_period, retries)):
            raise InvalidArgument("--no-healthcheck conflicts with --health-* options")
        return {"Test": ["NONE"]}
    hc: dict[str, Any] = {}
    if cmd is not None:
        hc["Test"] = ["CMD-SHELL", cmd]
    for key, value, flag in (("Interval", interval, "--health-interval"), ("Timeout", timeout, "--health-timeout"),
                             ("StartPeriod", start_period, "--health-start-period")):
        if value is not None:
            hc[key] = parse_duration(value, flag)
    if retries is not None:
        hc["Retries"] = retries
    return hc or None


def update_config(parallelism: int | None = None, delay: str | None = None, order: str | None = None,
                  failure_action: str | None = None, base: dict[str, Any] | None = None) -> dict[str, Any]:
    cfg = dict(base or {"Parallelism": 1, "FailureAction": "pause", "Monitor": 5 * SECOND,
                        "MaxFailureRatio": 0, "Order": "stop-first"})
    if parallelism is not None:
        cfg["Parallelism"] = parallelism
    if delay is not None:
        cfg["Delay"] = parse_duration(delay, "--update-delay")
    if order is not None:
        if order not in UPDATE_ORDERS:
            raise InvalidArgument(f'invalid argument "{order}" for "--update-order" flag: '
                                  f'must be one of "start-first" or "stop-first"')
        cfg["Order"] = order
    if failure_action is not None:
        if failure_action not in FAILURE_ACTIONS:
            raise InvalidArgument(f'invalid argument "{failure_action}" for "--update-failure-action" flag')
        if failure_action == "rollback":
            from dockyard.errors import Unsupported

            raise Unsupported("--update-failure-action rollback is not supported yet (use pause or continue)")
        cfg["FailureAction"] = failure_action
    return cfg


def restart_policy(condition: str | None = None, delay: str | None = None, max_attempts: int | None = None,
                   base: dict[str, Any] | None = None) -> dict[str, Any]:
    pol = dict(base or {"Condition": "any", "Delay": DEFAULT_RESTART_DELAY, "MaxAttempts": 0})
    if condition is not None:
        if condition not in RESTART_CONDITIONS:
            raise InvalidArgument(f'invalid argument "{condition}" for "--restart-condition" flag: '
                                  f'invalid restart condition {condition}')
        pol["Condition"] = condition
    if delay is not None:
        pol["Delay"] = parse_duration(delay, "--restart-delay")
    if max_attempts is not None:
        pol["MaxAttempts"] = max_attempts
    return pol


# -- reading a spec ---------------------------------------------------------------------------
def replicas(spec: dict[str, Any]) -> int:
    mode = spec.get("Mode") or {}
    if "Global" in mode:
        return 1  # one task per node, and this cluster has one node
    return int((mode.get("Replicated") or {}).get("Replicas", 1))


def mode_name(spec: dict[str, Any]) -> str:
    return "global" if "Global" in (spec.get("Mode") or {}) else "replicated"


def container_spec(spec: dict[str, Any]) -> dict[str, Any]:
    return spec["TaskTemplate"]["ContainerSpec"]


def ports(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return list((spec.get("EndpointSpec") or {}).get("Ports") or [])


def update_order(spec: dict[str, Any]) -> str:
    return str((spec.get("UpdateConfig") or {}).get("Order") or "stop-first")


def task_hash(spec: dict[str, Any]) -> str:
    """What makes a running task outdated: its template (image, command, env, health, the
    ``--force`` counter...). Replicas, ports and update settings change no task."""
    text = json.dumps(spec["TaskTemplate"], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def format_ports(spec: dict[str, Any]) -> str:
    """``service ls``'s PORTS: ``*:8080->80/tcp, *:8443->443/tcp``."""
    return ", ".join(f"*:{p['PublishedPort']}->{p['TargetPort']}/{p.get('Protocol', 'tcp')}"
                     for p in ports(spec))


def env_add(env: list[str], additions: list[str]) -> list[str]:
    """``--env-add``: replace a variable of the same name, else append (docker's updateEnvironment)."""
    out = list(env)
    for add in additions:
        key = add.split("=", 1)[0]
        out = [e for e in out if e.split("=", 1)[0] != key]
        out.append(add)
    return out


def env_rm(env: list[str], names: list[str]) -> list[str]:
    return [e for e in env if e.split("=", 1)[0] not in set(names)]
