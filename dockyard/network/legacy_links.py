"""``--link`` (docker's legacy links) on the default bridge network.

A link ``child[:alias]`` gives the new container, at each start, an ``/etc/hosts`` line for the
child (``<ip>\\t<alias> <child hostname> [<child name>]``) and docker's environment variables
(``ALIAS_NAME``, ``ALIAS_PORT_80_TCP...`` for each exposed port, ``ALIAS_ENV_X`` for the child's
own variables). dockerd checks the child at create (it must exist, and not use host networking)
and stores the link as ``/child:/parent/alias``; at start the child must be running. On a user
network docker ignores links for this (names resolve through the embedded DNS instead).
"""
from __future__ import annotations

from typing import Any

from dockyard.errors import Conflict, InvalidArgument, NotFound


def parse_link(value: str) -> tuple[str, str]:
    """docker's ``ParseLink``: ``name``, ``name:alias`` or the stored ``/name:/parent/alias``."""
    if value == "":
        raise InvalidArgument("empty string specified for links")
    parts = value.split(":")
    if len(parts) > 2:
        raise InvalidArgument(f"bad format for links: {value}")
    if len(parts) == 1:
        return value, value
    if parts[0].startswith("/"):
        return parts[0][1:], parts[1].rsplit("/", 1)[-1]
    return parts[0], parts[1]


def check_links(client: Any, host: dict[str, Any]) -> list[tuple[str, str]]:
    """dockerd's create-time ``registerLinks``: (child name, alias) for each link; nothing to
    check on a user network."""
    from dockyard.network.conflicts import is_user_defined

    links = host.get("Links") or []
    if not links or is_user_defined(host.get("NetworkMode")):
        return []
    out = []
    for value in links:
        name, alias = parse_link(value)
        try:
            child = client.containers.load(name)
        except NotFound as exc:
            raise NotFound(f"could not get container for {name}: {exc.message}") from None
        if (child.host_config.get("NetworkMode") or "") == "host":
            raise InvalidArgument("conflicting options: host type networking can't be used with links. "
                                  "This would result in undefined behavior")
        out.append(((child.config.get("Name") or "/" + name).lstrip("/"), alias))
    return out


def stored(links: list[tuple[str, str]], parent: str) -> list[str]:
    """``HostConfig.Links`` as dockerd keeps them: ``/child:/parent/alias``."""
    return [f"/{child}:/{parent.lstrip('/')}/{alias}" for child, alias in links]


def resolve(client: Any, rec: Any) -> tuple[list[tuple[str, str]], list[str]]:
    """At start: (``/etc/hosts`` entries as (names, ip), environment) for the links of ``rec``
    on the default bridge; a child that is not running fails the start, as dockerd."""
    hosts: list[tuple[str, str]] = []
    env: list[str] = []
    parent = (rec.config.get("Name") or "").lstrip("/")
    for value in rec.host_config.get("Links") or []:
        name, alias = parse_link(value)
        try:
            child = client.containers.load(name)
        except NotFound as exc:
            raise NotFound(f"could not get container for {name}: {exc.message}") from None
        child_name = (child.config.get("Name") or "").lstrip("/")
        if child.status != "running":
            raise Conflict(f"Cannot link to a non running container: /{child_name} AS /{parent}/{alias}")
        settings = client.networks.settings(child.id)
        ip = ((settings.get("Networks") or {}).get("bridge") or {}).get("IPAddress") or ""
        names = f"{alias} {child.cfg.get('Hostname') or child.id[:12]}"
        if alias != child_name:
            names += f" {child_name}"
        if ip:
            hosts.append((names, ip))
        env += link_env(alias, parent, ip, child)
    return hosts, env


def link_env(alias: str, parent: str, ip: str, child: Any) -> list[str]:
    """docker's ``links.Link.ToEnv``."""
    prefix = alias.upper().replace("-", "_")
    env = [f"{prefix}_NAME=/{parent}/{alias}"]
    ports = []
    for key in child.cfg.get("ExposedPorts") or {}:
        port, _, proto = key.partition("/")
        if port.isdigit():
            ports.append((int(port), proto or "tcp"))
    ports.sort()
    if ports and ip:
        port, proto = ports[0]
        env.append(f"{prefix}_PORT={proto}://{ip}:{port}")
        for port, proto in ports:
            p = f"{prefix}_PORT_{port}_{proto.upper()}"
            env += [f"{p}={proto}://{ip}:{port}", f"{p}_ADDR={ip}", f"{p}_PORT={port}",
                    f"{p}_PROTO={proto}"]
    for var in child.cfg.get("Env") or []:
        key, sep, value = var.partition("=")
        if sep and key not in ("HOME", "PATH"):
            env.append(f"{prefix}_ENV_{key}={value}")
    return env
