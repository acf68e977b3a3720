"""``/networks``: list, create, inspect, remove, prune, connect, disconnect."""
from __future__ import annotations

from typing import Any

from dockyard.api.http import ApiError, Exchange


def list_(x: Exchange) -> None:
    nets = x.client.networks.list(x.filters())
    x.reply_json([x.client.networks.inspect(n.id) for n in nets])


def create(x: Exchange) -> None:
    from dockyard.errors import Conflict

    body = x.json({}) or {}
    if not isinstance(body, dict):
        raise ApiError(400, "invalid JSON: expected an object")
    name = body.get("Name") or ""
    if not name:
        raise ApiError(400, "network name is required")
    if name in ("bridge", "host", "none"):
        raise Conflict(f"operation is not permitted on predefined {name} network")
    from dockyard.cli.network import split_families

    ipam, ipam6 = split_families((body.get("IPAM") or {}).get("Config") or [])
    net = x.client.networks.create(
        name, driver=body.get("Driver") or "bridge", subnet=ipam.get("Subnet") or None,
        gateway=ipam.get("Gateway") or None, ip_range=ipam.get("IPRange") or None,
        aux_addresses=ipam.get("AuxiliaryAddresses") or None,
        ipam_driver=(body.get("IPAM") or {}).get("Driver") or "",
        ipam_options=(body.get("IPAM") or {}).get("Options") or None,
        internal=bool(body.get("Internal")), attachable=bool(body.get("Attachable")),
        labels=body.get("Labels") or None, options=body.get("Options") or None,
        scope=body.get("Scope") or "", ingress=bool(body.get("Ingress")),
        config_only=bool(body.get("ConfigOnly")),
        config_from=(body.get("ConfigFrom") or {}).get("Network") or None,
        ipv6=bool(body.get("EnableIPv6")), subnet6=ipam6[0].get("Subnet") if ipam6 else None,
        gateway6=ipam6[0].get("Gateway") if ipam6 else None, more6=ipam6[1:])
    x.daemon.events.publish("network", "create", net.id, {"name": net.name, "type": net.driver})
    x.reply_json({"Id": net.id, "Warning": ""}, 201)


def inspect(x: Exchange, id: str) -> None:  # noqa: A002 - docker's parameter name
    x.reply_json(x.client.networks.inspect(id))


def remove(x: Exchange, id: str) -> None:  # noqa: A002
    net = x.client.networks.remove(id)
    x.daemon.events.publish("network", "destroy", net.id, {"name": net.name, "type": net.driver})
    x.no_content()


def prune(x: Exchange) -> None:
    names = x.client.networks.prune(x.filters())
    for name in names:
        x.daemon.events.publish("network", "destroy", name, {"name": name})
    from dockyard.engine.events import emit_prune

    emit_prune(x.client, "network", 0)
    x.reply_json({"NetworksDeleted": names or None})


def _container(x: Exchange, body: dict[str, Any]) -> tuple[str, str]:
    ref = body.get("Container") or ""
    if not ref:
        raise ApiError(400, "container is required")
    c = x.client.containers.get(ref)
    return c.id, c.name


def connect(x: Exchange, id: str) -> None:  # noqa: A002
    body = x.json({}) or {}
    cid, name = _container(x, body)
    endpoint = body.get("EndpointConfig") or {}
    ip = ((endpoint.get("IPAMConfig") or {}).get("IPv4Address")) or None
    ip6 = ((endpoint.get("IPAMConfig") or {}).get("IPv6Address")) or None
    x.client.networks.connect(id, cid, name=name, aliases=endpoint.get("Aliases") or (), ip=ip,
                              ip6=ip6)
    net = x.client.networks.get(id)
    x.daemon.events.publish("network", "connect", net.id, {"container": cid, "name": net.name, "type": net.driver})
    x.reply(200)


def disconnect(x: Exchange, id: str) -> None:  # noqa: A002
    body = x.json({}) or {}
    cid, _ = _container(x, body)
    x.client.networks.disconnect(id, cid, force=bool(body.get("Force")))
    net = x.client.networks.get(id)
    x.daemon.events.publish("network", "disconnect", net.id, {"container": cid, "name": net.name, "type": net.driver})
    x.reply(200)
