"""Networking options docker refuses together, and the warnings it gives, with its words.

These are dockerd 20.10's create-time checks (``runconfig.validateNetMode`` and
``verifyPlatformContainerSettings``): they look at what the user asked for (the request's Config,
before the image's is merged in) and at HostConfig. The docker CLI's own check
(``network-scoped aliases ...``) is :func:`check_cli_aliases`. Checks that need the network
(``--ip`` on a network without a user subnet, aliases on the default bridge through the API)
are the network service's, at start, as dockerd makes them.
"""
from __future__ import annotations

from typing import Any

from dockyard.errors import DockyardError, InvalidArgument


class Forbidden(DockyardError):
    """dockerd's ``errdefs.Forbidden`` (HTTP 403): a request it understands and will not do."""

    status = 403

HOST_PORTS_DISCARDED = "Published ports are discarded when using host network mode"


def _is_container_mode(mode: str) -> bool:
    return mode.startswith("container:")


def is_user_defined(mode: str | None) -> bool:
    """docker's ``NetworkMode.IsUserDefined``: a network name, not one of the modes."""
    mode = mode or "default"
    return mode not in ("default", "bridge", "host", "none") and not _is_container_mode(mode)


def check_conflicts(cfg: dict[str, Any], host: dict[str, Any]) -> None:
    """Raise InvalidArgument (HTTP 400) for a combination dockerd refuses at create, checked in
    dockerd's order; ``cfg`` is the request's Config as sent."""
    mode = host.get("NetworkMode") or "default"
    shared = _is_container_mode(mode)
    if shared and not mode.split(":", 1)[1]:
        raise InvalidArgument("Invalid network mode: invalid container format container:<name|id>")
    if shared and cfg.get("Hostname"):
        raise InvalidArgument("conflicting options: hostname and the network mode")
    if shared and host.get("Links"):
        raise InvalidArgument("conflicting options: container type network can't be used with links. "
                              "This would result in undefined behavior")
    if shared and host.get("Dns"):
        raise InvalidArgument("conflicting options: dns and the network mode")
    if shared and host.get("ExtraHosts"):
        raise InvalidArgument("conflicting options: custom host-to-IP mapping and the network mode")
    if (shared or mode == "host") and cfg.get("MacAddress"):
        raise InvalidArgument("conflicting options: mac-address and the network mode")
    if shared and (host.get("PortBindings") or host.get("PublishAllPorts")):
        raise InvalidArgument("conflicting options: port publishing and the container type network mode")
    if shared and cfg.get("ExposedPorts"):
        raise InvalidArgument("conflicting options: port exposing and the container type network mode")
    if (host.get("UTSMode") or "") == "host" and cfg.get("Hostname"):
        raise InvalidArgument("conflicting options: hostname and the UTS mode")
    if mode == "host" and host.get("Links"):
        raise InvalidArgument("conflicting options: host type networking can't be used with links. "
                              "This would result in undefined behavior")


def create_warnings(host: dict[str, Any]) -> list[str]:
    """The ``Warnings`` of a create response (the CLI prints each as ``WARNING: ...``)."""
    if (host.get("NetworkMode") or "") == "host" and host.get("PortBindings"):
        return [HOST_PORTS_DISCARDED]
    return []


def check_cli_aliases(network: str | None, aliases: list[str]) -> None:
    """The docker CLI's check before it sends anything (exit 125, usage hint)."""
    if aliases and not is_user_defined(network):
        from dockyard.engine.options import USAGE_EXIT

        raise InvalidArgument("network-scoped aliases are only supported for user-defined networks",
                              exit_code=USAGE_EXIT)
