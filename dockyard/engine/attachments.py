"""The one place where containers meet networks and volumes.

The engine calls these hooks at create, start, stop and remove; the network service
(``client.networks``) and the volume service (``client.volumes``) do the work. ``none`` and
``host`` networking need no service: ``none`` is a fresh network namespace with only ``lo``
(the runtime makes it and brings ``lo`` up), ``host`` is no network namespace at all; handling
them here keeps ``run --network none`` free of database and netlink work.

Containers that ask for no mounts never touch the volume service either (``HasMounts`` in the
record says whether it has anything to resolve).
"""
from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any

from dockyard.engine.store import ContainerRecord

LOCAL_MODES = ("none", "host")


@dataclass
class NetworkPlan:
    """How one start of a container is networked."""

    mode: str                 # "host" | "none" | "bridge" | a network name | "container:<id>"
    netns_path: str | None    # join this namespace; None with mode "none": the runtime makes one
    hosts: str
    resolv_conf: str
    env: tuple[str, ...] = ()  # ``--link`` variables (docker's legacy links)
    ipv6: bool = False  # on a dual-stack network: leave the container's IPv6 on


def network_mode(rec: ContainerRecord) -> str:
    mode = rec.host_config.get("NetworkMode") or "default"
    return "bridge" if mode == "default" else mode


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def _extra_hosts(rec: ContainerRecord) -> str:
    out = ""
    for entry in rec.host_config.get("ExtraHosts") or []:
        name, _, ip = entry.partition(":")
        if ip == "host-gateway":
            ip = "172.17.0.1"
        out += f"{ip}\t{name}\n"
    return out


class Attachments:
    """Hooks into ``client.networks`` and ``client.volumes`` for one container's life."""

    def __init__(self, client: Any) -> None:
        self.client = client

    # ------------------------------------------------------------------ networks
    def network_up(self, rec: ContainerRecord) -> NetworkPlan:
        """Before the runtime creates the container: its namespace, /etc/hosts, resolv.conf."""
        mode = network_mode(rec)
        host = rec.host_config
        dns, search, options = host.get("Dns") or [], host.get("DnsSearch") or [], host.get("DnsOptions") or []
        if mode in LOCAL_MODES:
            from dockyard.network.hostsfile import HOSTS_HEADER, custom_resolv_conf, resolv_conf

            resolv = custom_resolv_conf(False, dns, search, options) if dns or search or options else resolv_conf(False)
            if mode == "host":
                return NetworkPlan("host", None, _read("/etc/hosts") + _extra_hosts(rec), _read("/etc/resolv.conf"))
            return NetworkPlan("none", None, HOSTS_HEADER + _extra_hosts(rec), resolv)
        from dockyard.engine.options import port_specs

        link_hosts: list[str] = []
        link_env: list[str] = []
        if mode == "bridge" and host.get("Links"):
            from dockyard.network.legacy_links import resolve

            entries, link_env = resolve(self.client, rec)
            link_hosts = [f"{names}:{ip}" for names, ip in entries]  # after --add-host's, as docker
        att = self.client.networks.attach(
            rec.id, name=rec.name, mode=mode,
            aliases=self._aliases(rec, mode),
            ports=port_specs(rec.host_config, rec.cfg.get("ExposedPorts")),
            hostname=rec.cfg.get("Hostname") or rec.id[:12],
            ip=self._ip(rec, mode),
            extra_hosts=[*(host.get("ExtraHosts") or []), *link_hosts],
            exposed=list((rec.cfg.get("ExposedPorts") or {}).keys()),
            mac=rec.cfg.get("MacAddress") or None, dns=dns, dns_search=search, dns_options=options)
        return NetworkPlan(att.mode, att.netns_path, att.hosts, att.resolv_conf, tuple(link_env),
                           bool(getattr(att, "ipv6", False)))

    def _left_none(self, rec: ContainerRecord) -> bool:
        """A ``none`` container that ``network disconnect none`` handed to the network service
        (one stat, no database: see ``NetworkService.adopted``)."""
        if network_mode(rec) != "none":
            return False
        from dockyard.network.naming import Names

        import os

        return os.path.exists(Names(self.client.state.path).netns_path(rec.id))

    @staticmethod
    def _aliases(rec: ContainerRecord, mode: str) -> list[str]:
        eps = (rec.config.get("NetworkingConfig") or {}).get("EndpointsConfig") or {}
        ep = eps.get(mode) or eps.get("default") or {}
        return list(ep.get("Aliases") or [])

    @staticmethod
    def _ip(rec: ContainerRecord, mode: str) -> str | None:
        eps = (rec.config.get("NetworkingConfig") or {}).get("EndpointsConfig") or {}
        ep = eps.get(mode) or eps.get("default") or {}
        return (ep.get("IPAMConfig") or {}).get("IPv4Address") or None

    def network_down(self, rec: ContainerRecord) -> None:
        """The container stopped: release its namespace, addresses and published ports."""
        if network_mode(rec) in LOCAL_MODES and not self._left_none(rec):
            return
        self.client.networks.release(rec.id)

    def network_forget(self, rec: ContainerRecord) -> None:
        """The container is removed: drop its network memberships too."""
        if network_mode(rec) in LOCAL_MODES and not self._left_none(rec):
            return
        try:
            self.client.networks.forget(rec.id)
        except ImportError:
            pass

    def network_settings(self, rec: ContainerRecord) -> dict[str, Any]:
        """docker's ``NetworkSettings`` for ``inspect``: the network service's for bridges and
        user networks; for ``none``/``host`` the one network entry docker shows."""
        mode = network_mode(rec)
        if mode not in LOCAL_MODES or self._left_none(rec):
            return self.client.networks.settings(rec.id)
        net_id = ""
        never_started = str(rec.state.get("StartedAt") or "0001").startswith("0001")
        try:  # dockerd joins the network at the first start: a created container has no ID yet
            net_id = "" if never_started else _builtin_network_id(self.client, mode)
        except Exception:  # noqa: BLE001 - no network service: leave the ID empty
            pass
        pid = int(rec.state.get("Pid") or 0) if mode == "none" else 0
        sandbox = f"/proc/{pid}/ns/net" if pid else ""
        return {"Bridge": "", "SandboxID": "", "SandboxKey": sandbox, "Ports": {}, "HairpinMode": False,
                "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0, "SecondaryIPAddresses": None,
                "SecondaryIPv6Addresses": None, "EndpointID": "", "Gateway": "", "GlobalIPv6Address": "",
                "GlobalIPv6PrefixLen": 0, "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "", "MacAddress": "",
                "Networks": {mode: {"IPAMConfig": None, "Links": None, "Aliases": None, "MacAddress": "",
                                    "DriverOpts": None, "NetworkID": net_id, "EndpointID": "", "Gateway": "",
                                    "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "", "GlobalIPv6Address": "",
                                    "GlobalIPv6PrefixLen": 0}}}

    def published_ports(self, rec: ContainerRecord) -> list[Any]:
        """Published ports of a running container (``PortBinding`` objects), for ``ls``/``port``."""
        if network_mode(rec) in LOCAL_MODES or not rec.host_config.get("PortBindings") and \
                not rec.host_config.get("PublishAllPorts"):
            return []
        try:
            return list(self.client.networks.ports(rec.id))
        except ImportError:
            return []

    # ------------------------------------------------------------------ volumes
    @staticmethod
    def has_mounts(cfg: dict[str, Any], host: dict[str, Any]) -> bool:
        return bool(cfg.get("Volumes") or host.get("Binds") or host.get("Mounts") or host.get("Tmpfs")
                    or host.get("VolumesFrom"))

    def create_mounts(self, cid: str, cfg: dict[str, Any], host: dict[str, Any]) -> list[dict[str, Any]]:
        """At create: named and anonymous volumes are made now (as docker does); returns the
        ``Mounts`` list inspect shows."""
        if not self.has_mounts(cfg, host):
            return []
        vols = self.client.volumes
        specs, volumes_from = vols.specs_from_api(host, cfg)
        vols.resolve_mounts(cid, specs, None, None, volumes_from)
        flag_tmpfs = set(host.get("Tmpfs") or {})  # docker lists --mount tmpfs, never --tmpfs
        return [m for m in vols.mounts_inspect(cid)
                if not (m.get("Type") == "tmpfs" and m.get("Destination") in flag_tmpfs)]

    def start_mounts(self, rec: ContainerRecord) -> list[dict[str, Any]]:
        """At start (rootfs mounted, so empty volumes get the image's content): OCI mounts."""
        if not rec.config.get("HasMounts"):
            return []
        vols = self.client.volumes
        specs, volumes_from = vols.specs_from_api(rec.host_config, rec.cfg)
        return vols.resolve_mounts(rec.id, specs, None, str(rec.rootfs), volumes_from)

    def stop_mounts(self, rec: ContainerRecord) -> None:
        if rec.config.get("HasMounts"):
            self.client.volumes.release(rec.id)

    def remove_mounts(self, rec: ContainerRecord, remove_anonymous: bool) -> None:
        if rec.config.get("HasMounts"):
            self.client.volumes.forget(rec.id, remove_anonymous=remove_anonymous)

    @staticmethod
    def host_name() -> str:
        return socket.gethostname()


def _builtin_network_id(client: Any, name: str) -> str:
    """The ID of the built-in ``none``/``host`` network, from the network store alone: the
    monitor reports it at every start and exit, and the whole network service (netlink, ctypes)
    is not worth importing on that path for a container that has no network of its own."""
    from dockyard.network.store import NetworkStore

    return NetworkStore(client.state).find_network(name).id
