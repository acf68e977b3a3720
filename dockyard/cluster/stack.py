"""Stacks: a compose file (version 3 subset) deployed as services named ``STACK_SERVICE``.

What is read from each service: ``image``, ``command``, ``entrypoint``, ``environment``,
``labels`` (container labels), ``ports`` (short ``"8080:80[/udp]"`` and long
``{target, published, protocol}`` forms), ``healthcheck``, ``stop_grace_period``,
``deploy.replicas``, ``deploy.mode``, ``deploy.labels``, ``deploy.update_config``,
``deploy.restart_policy``; other keys are ignored with a warning, as ``docker stack deploy``
ignores the ones swarm does not support. Every service of a stack carries the label
``com.docker.stack.namespace=STACK`` (how ``stack ls``/``services``/``rm`` find them).
"""
from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any, Callable

from dockyard.cluster import spec as specs
from dockyard.errors import InvalidArgument

NAMESPACE = "com.docker.stack.namespace"
KNOWN_KEYS = {"image", "command", "entrypoint", "environment", "labels", "ports", "healthcheck",
              "deploy", "stop_grace_period", "stop_signal", "working_dir", "user", "hostname", "networks"}


def load(path: str | Path) -> dict[str, Any]:
    import yaml

    try:
        text = Path(path).read_text() if str(path) != "-" else sys.stdin.read()
    except OSError as exc:
        raise InvalidArgument(f"open {path}: {exc.strerror.lower() if exc.strerror else exc}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidArgument(f"yaml: {str(exc).splitlines()[0]}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("services"), dict) or not doc["services"]:
        raise InvalidArgument(f"{path}: no services defined in the compose file")
    return doc


def _duration(value: Any) -> str:
    """A compose duration: ``"1m30s"``, or a number of seconds."""
    return value if isinstance(value, str) else f"{value}s"


def _env(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [f"{k}={'' if v is None else v}" for k, v in value.items()]
    return [str(v) for v in value or []]


def _labels(value: Any) -> dict[str, str]:
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    return {str(v).partition("=")[0]: str(v).partition("=")[2] for v in value or []}


def _ports(value: list[Any]) -> list[dict[str, Any]]:
    short = []
    out = []
    for p in value or []:
        if isinstance(p, dict):
            out.append({"Protocol": p.get("protocol", "tcp"), "TargetPort": int(p["target"]),
                        "PublishedPort": int(p.get("published") or specs.free_port(p.get("protocol", "tcp"))),
                        "PublishMode": "ingress"})
        else:
            short.append(str(p))
    return out + specs.parse_publish(short)


def service_spec(stack: str, name: str, svc: dict[str, Any], warn: Callable[[str], None]) -> dict[str, Any]:
    """docker's ServiceSpec for one compose service."""
    for key in sorted(set(svc) - KNOWN_KEYS):
        warn(f"Ignoring unsupported options: {key}")
    if not svc.get("image"):
        raise InvalidArgument(f"Service {name} has neither an image nor a build context specified")
    deploy = svc.get("deploy") or {}
    cs: dict[str, Any] = {"Image": str(svc["image"]), "Init": False,
                          "Labels": {**_labels(svc.get("labels")), NAMESPACE: stack}}
    cmd = svc.get("command")
    if cmd is not None:
        cs["Args"] = shlex.split(cmd) if isinstance(cmd, str) else [str(c) for c in cmd]
    ep = svc.get("entrypoint")
    if ep is not None:
        cs["Command"] = shlex.split(ep) if isinstance(ep, str) else [str(c) for c in ep]
    if svc.get("environment"):
        cs["Env"] = _env(svc["environment"])
    for key, field in (("stop_signal", "StopSignal"), ("working_dir", "Dir"), ("user", "User"), ("hostname", "Hostname")):
        if svc.get(key):
            cs[field] = str(svc[key])
    if svc.get("stop_grace_period") is not None:
        cs["StopGracePeriod"] = specs.parse_duration(_duration(svc["stop_grace_period"]),
                                                     "stop_grace_period")
    hc = svc.get("healthcheck")
    if hc:
        if hc.get("disable"):
            cs["Healthcheck"] = {"Test": ["NONE"]}
        else:
            test = hc.get("test")
            if isinstance(test, str):
                test = ["CMD-SHELL", test]
            check = specs.healthcheck(None, *(None if hc.get(k) is None else _duration(hc[k])
                                              for k in ("interval", "timeout", "start_period")),
                                      hc.get("retries"), False) or {}
            cs["Healthcheck"] = {"Test": list(test or []), **check}
    uc = deploy.get("update_config") or {}
    rp = deploy.get("restart_policy") or {}
    ports = _ports(svc.get("ports") or [])
    mode = deploy.get("mode", "replicated")
    if mode not in ("replicated", "global"):
        raise InvalidArgument(f"Service {name}: unsupported deploy mode {mode}")
    spec: dict[str, Any] = {
        "Name": f"{stack}_{name}",
        "Labels": {**_labels(deploy.get("labels")), NAMESPACE: stack, "com.docker.stack.image": str(svc["image"])},
        "TaskTemplate": {"ContainerSpec": cs, "ForceUpdate": 0, "Runtime": "container",
                         "RestartPolicy": specs.restart_policy(
                             rp.get("condition"), None if rp.get("delay") is None else _duration(rp["delay"]),
                             rp.get("max_attempts"))},
        "Mode": {"Global": {}} if mode == "global" else {"Replicated": {"Replicas": int(deploy.get("replicas", 1))}},
        "UpdateConfig": specs.update_config(
            uc.get("parallelism"), None if uc.get("delay") is None else _duration(uc["delay"]),
            uc.get("order") or ("start-first" if ports else None), uc.get("failure_action")),
        "EndpointSpec": {"Mode": "vip", **({"Ports": ports} if ports else {})},
    }
    return spec


def stack_services(services: Any, stack: str) -> list[Any]:
    return services.list(labels={NAMESPACE: stack})


def deploy(client: Any, stack: str, compose_file: str, prune: bool = False,
           say: Callable[[str], None] = print, warn: Callable[[str], None] = print) -> list[Any]:
    """Create or update every service of the compose file (and, with ``prune``, remove the
    stack's services the file no longer has)."""
    from dockyard.cluster.service import Services

    if not specs._NAME.match(stack):
        raise InvalidArgument(f"invalid stack name {stack!r}")
    doc = load(compose_file)
    wanted = {name: service_spec(stack, name, svc or {}, warn) for name, svc in doc["services"].items()}
    services = Services(client)
    existing = {s.name: s for s in stack_services(services, stack)}
    out = []
    for name, spec in wanted.items():
        full = spec["Name"]
        if full in existing:
            say(f"Updating service {full} (id: {existing[full].id})")
            out.append(services.update(existing[full].id, spec))
        else:
            say(f"Creating service {full}")
            out.append(services.create(spec))
    if prune:
        for full, rec in existing.items():
            if full not in {s["Name"] for s in wanted.values()}:
                say(f"Removing service {full}")
                services.remove(rec.id)
    return out


def remove(client: Any, stack: str, say: Callable[[str], None] = print) -> bool:
    """Remove a stack's services; False when it has none."""
    from dockyard.cluster.service import Services

    services = Services(client)
    found = stack_services(services, stack)
    for rec in sorted(found, key=lambda r: r.name):
        say(f"Removing service {rec.name}")
        services.remove(rec.id)
    return bool(found)


def stacks(client: Any) -> dict[str, int]:
    """stack name -> number of services."""
    from dockyard.cluster.service import Services

    counts: dict[str, int] = {}
    for rec in Services(client).list():
        name = (rec.spec.get("Labels") or {}).get(NAMESPACE)
        if name:
            counts[name] = counts.get(name, 0) + 1
    return counts
