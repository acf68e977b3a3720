"""``NetworkService`` (``client.networks``): networks, and the hooks the engine calls per container.

The service owns each container's network namespace: ``attach`` makes it (pinned under
``/run/dockyard-<tag>/netns/<id>``), plugs a veth into each network's bridge, assigns addresses,
publishes ports with kernel DNAT and registers names with the embedded DNS; ``release`` undoes
all of that and is safe to call twice or after a crash. See ``docs/networking.md``.
"""
from __future__ import annotations

import fcntl
import ipaddress
import os
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator

from dockyard.errors import Conflict, InvalidArgument, NotFound, Unsupported
from dockyard.network import ipam, links, netns
from dockyard.network.conflicts import Forbidden
from dockyard.network.hostsfile import custom_resolv_conf, hosts as hosts_text, resolv_conf
from dockyard.network.naming import Names
from dockyard.network.ports import PortBinding, PortSpec, choose_bindings, parse_port_specs
from dockyard.network.store import Endpoint, Network, NetworkStore, Sandbox, new_id, now

if TYPE_CHECKING:
    from dockyard.network.firewall import Firewall

MARKER_PREFIX = "dockyard "  # bridge aliases: see NetworkService._marker
SPECIAL_MODES = ("none", "host")
LEFT_NONE = "left-none"  # a ``none`` container after ``network disconnect none``: see _leave_none
SHARED_NETWORK_ERROR = ("container sharing network namespace with another container or host "
                        "cannot be connected to any other network")


@dataclass
class Attachment:
    """What the engine needs to start a container on its networks."""

    container_id: str
    mode: str
    netns_path: str | None  # None: the host's namespace (leave the spec's network entry out)
    hostname: str | None
    hosts: str  # /etc/hosts content
    resolv_conf: str  # /etc/resolv.conf content
    ports: list[PortBinding] = field(default_factory=list)
    ip: str | None = None
    mac: str | None = None
    gateway: str | None = None
    ip_addresses: dict[str, str] = field(default_factory=dict)  # network name -> IP
    network_settings: dict[str, Any] = field(default_factory=dict)
    ipv6: bool = False  # on a dual-stack network: the container's IPv6 must stay enabled

    def oci_namespace(self) -> dict[str, str] | None:
        """The entry for the spec's ``linux.namespaces``; None means: do not add one."""
        if self.netns_path is None:
            return None
        return {"type": "network", "path": self.netns_path}


class NetworkService:
    def __init__(self, client: Any) -> None:
        self.client = client
        self.state = client.state
        self.names = Names(self.state.path)
        self.store = NetworkStore(self.state)

    @cached_property
    def firewall(self) -> "Firewall":
        """This root's chains and rules; the module loads only when something needs changing
        (a container without published ports on a network that is up never does)."""
        return firewall_of(self.names)

    # -- helpers ------------------------------------------------------------------------------
    @property
    def net_dir(self) -> Path:
        return self.state.dir("networks")

    @contextmanager
    def _lock(self) -> Iterator[None]:
        """One writer of this root's network state at a time (attach, release, create, rm)."""
        fd = os.open(self.net_dir / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def config(self) -> ipam.NetworkConfig:
        return ipam.NetworkConfig.load(self.net_dir)

    def _taken_subnets(self, exclude: str | None = None) -> list[tuple[ipaddress.IPv4Network, str]]:
        """Subnets in use: this root's networks and every route on the host."""
        taken = [(ipaddress.IPv4Network(n.subnet), f"network {n.name}") for n in
                 self.store.networks() if n.subnet and n.id != exclude and
                 not (n.is_default_bridge and not self._bridge_up(n))]
        mine = {n.bridge for n in self.store.networks() if n.id == exclude}
        taken += [(net, f"interface {dev}") for net, dev in ipam.host_routes() if dev not in mine]
        return taken

    def _bridge_up(self, n: Network) -> bool:
        return bool(n.bridge) and links.link_exists(n.bridge)  # type: ignore[arg-type]

    # -- networks -----------------------------------------------------------------------------
    def get(self, ref: str) -> Network:
        return self.store.find_network(ref)

    def list(self, filters: dict[str, list[str]] | None = None) -> list[Network]:
        filters = filters or {}
        validate_filters(filters)
        nets = self.store.networks()
        for key, values in filters.items():
            nets = [n for n in nets if any(_matches(n, key, v) for v in values)]
        return nets

    def create(self, name: str, driver: str = "bridge", subnet: str | None = None,
               gateway: str | None = None, internal: bool = False, attachable: bool = False,
               labels: dict[str, str] | None = None,
               options: dict[str, str] | None = None, ip_range: str | None = None,
               aux_addresses: dict[str, str] | None = None, ipam_driver: str = "",
               ipam_options: dict[str, str] | None = None, scope: str = "",
               ingress: bool = False, config_only: bool = False,
               config_from: str | None = None, ipv6: bool = False,
               subnet6: str | None = None, gateway6: str | None = None,
               more6: list[dict[str, str]] | None = None) -> Network:
        """Create a user-defined bridge network; its bridge and rules exist from now on.

        Checks and messages are docker's daemon's: any name is accepted (docker has no name
        rule), an explicit subnet may only clash with this root's own networks (docker checks
        host routes only when it picks a subnet itself). ``config_only`` makes docker's
        configuration network (a record of IPAM, options and labels, driver ``null``, never
        used by containers); ``config_from`` builds a bridge network from one. ``subnet6``
        (with ``ipv6``): a dual-stack network, as dockerd's ``--ipv6 --subnet fd00::/64``; without
        ``ipv6`` the IPv6 subnet is only recorded, as dockerd does."""
        if not name:
            raise Conflict("network with name  already exists")
        if driver == "overlay":
            raise Forbidden(SWARM_MANAGER_ERROR)
        _check_config_network(config_only, config_from, internal=internal, attachable=attachable,
                              ingress=ingress, scope=scope, ipam_driver=ipam_driver, ipv6=ipv6,
                              labels=labels, ipam_options=ipam_options, options=options,
                              ipam_given=bool(subnet or gateway or ip_range or aux_addresses or
                                              subnet6))
        if config_from is not None:
            base = self._config_network(config_from)
            subnet = base.ipam.get("subnet_text") or base.subnet
            gateway = base.gateway if base.ipam.get("gateway_explicit") else None
            ip_range, aux_addresses = base.ip_range, dict(base.ipam.get("aux") or {})
            labels, options = dict(base.labels), dict(base.options)
            ipam_options = dict(base.ipam.get("options") or {})
        elif driver not in ("bridge", "macvlan") and not config_only:
            if driver in ("host", "null"):
                raise Conflict(f"only one instance of \"{driver}\" network is allowed")
            raise NotFound(f'plugin "{driver}" not found')
        if ingress:
            raise Forbidden("Ingress network can only be global scope network")
        if scope == "swarm":
            raise Forbidden("cannot create a swarm scoped network when swarm is not active")
        if scope not in ("", "local"):
            raise Forbidden(SWARM_MANAGER_ERROR)
        if ipam_driver not in ("", "default"):
            raise NotFound(f'plugin "{ipam_driver}" not found')
        if ipv6 and not subnet6:
            raise Conflict("could not find an available, non-overlapping IPv6 address pool among "
                           "the defaults to assign to the network")
        v6 = _parse_v6(subnet6, gateway6) if subnet6 else None
        if (gateway or ip_range) and not subnet:
            raise InvalidArgument("every ip-range or gateway must have a corresponding subnet")
        if config_only:
            return self._create_config_only(name, subnet, gateway, ip_range, aux_addresses,
                                            labels, options, ipam_options)
        net = Network(id=new_id(), name=name, driver=driver if driver == "macvlan" else "bridge",
                      internal=internal, attachable=attachable, labels=dict(labels or {}),
                      options=dict(options or {}), created=now())
        if config_from is not None:
            net.ipam["config_from"] = config_from
        if v6 is not None:
            net.ipam["v6"] = v6
        if more6:  # dockerd takes more IPv6 pools on a bridge network and uses the first
            net.ipam["v6_more"] = [_parse_v6(m["Subnet"], m.get("Gateway")) for m in more6]
        if ipv6:
            net.ipam["enable_ipv6"] = True
        if ipam_options:
            net.ipam["options"] = dict(ipam_options)
        if subnet:
            sub = ipam.parse_network_subnet(subnet)
            rng = None
            if ip_range:
                try:
                    rng = ipaddress.IPv4Network(ip_range, strict=False)
                except ValueError:
                    raise InvalidArgument(f"invalid CIDR address: {ip_range}") from None
                if not rng.subnet_of(sub):
                    raise InvalidArgument(f"no matching subnet for range {ip_range}")
                net.ipam["ip_range"] = str(rng)
            if gateway:
                net.gateway = _gateway_in(sub, gateway)
                net.ipam["gateway_explicit"] = True
            else:
                net.gateway = ipam.default_gateway(sub, rng)
            net.subnet = str(sub)
            if subnet != net.subnet:
                net.ipam["subnet_text"] = subnet
            _check_reserved(net, sub, aux_addresses or {})
        if net.driver == "macvlan":
            return self._create_macvlan(net)
        net.bridge = net.options.get("com.docker.network.bridge.name") or \
            self.names.bridge(net.id, default_network=False)
        if len(net.bridge) > 15:
            raise InvalidArgument(f"bridge name {net.bridge} is longer than 15 characters")
        with self._lock(), ipam.host_lock():
            if any(n.name == name for n in self.store.networks()):
                raise Conflict(f"network with name {name} already exists")
            if any(n.bridge == net.bridge for n in self.store.networks()):
                raise Conflict(f"bridge name {net.bridge} already in use")
            if links.link_exists(net.bridge):
                # a host bridge we did not make (``-o com.docker.network.bridge.name``): used
                # as it is, never marked nor deleted, as docker treats a user's bridge
                net.ipam["bridge_preexisting"] = True
            # (an IPv6 pool is taken only by a network with IPv6 enabled, as in dockerd)
            if v6 is not None and ipv6 and any(
                    _v6_of(n) and ipaddress.IPv6Network(n.ipam["v6"]["subnet"]).overlaps(
                        ipaddress.IPv6Network(v6["subnet"]))
                    for n in self.store.networks() if not n.config_only):
                raise Conflict("Pool overlaps with other one on this address space")
            if net.subnet:
                mine = [(ipaddress.IPv4Network(n.subnet), f"network {n.name}")
                        for n in self.store.networks()
                        if n.subnet and not n.builtin and not n.config_only]
                if ipam.first_overlap(ipaddress.IPv4Network(net.subnet), mine):
                    raise Conflict("Pool overlaps with other one on this address space")
            else:
                chosen = ipam.choose_subnet(self.config().pool_slices(), self._taken_subnets())
                net.subnet, net.gateway, net.auto_subnet = str(chosen), ipam.default_gateway(chosen), True
            with self.store.tx() as conn:
                self.store.insert_network(conn, net)
            try:
                self._bring_up(net)
            except BaseException:
                self._take_down(net)
                with self.store.tx() as conn:
                    self.store.delete_network(conn, net.id)
                raise
        return net

    def _create_macvlan(self, net: Network) -> Network:
        """``-d macvlan``: no bridge, no firewall; each container gets a bridge-mode macvlan of
        ``-o parent=`` (dockerd makes a dummy parent when none is given, and so do we). Checks
        and messages are dockerd's."""
        parent = net.options.get("parent", "")
        with self._lock(), ipam.host_lock():
            if any(n.name == net.name for n in self.store.networks()):
                raise Conflict(f"network with name {net.name} already exists")
            for n in self.store.networks():
                if n.driver == "macvlan" and n.options.get("parent", f"dm-{n.id[:12]}") == \
                        (parent or None):
                    raise Forbidden(f"network dm-{n.id[:12]} is already using parent interface "
                                    f"{parent}")
            if parent and not links.link_exists(parent):
                if "." not in parent:
                    raise InvalidArgument(f"invalid subinterface vlan name {parent}, example "
                                          "formatting is eth0.10")
                raise Unsupported(f"the VLAN subinterface {parent} does not exist (creating VLAN "
                                  "subinterfaces is not supported)")
            if not parent:
                parent = f"dm-{net.id[:12]}"
                links.add_dummy(parent)
                net.ipam["dummy_parent"] = parent
            if not net.subnet:
                chosen = ipam.choose_subnet(self.config().pool_slices(), self._taken_subnets())
                net.subnet, net.gateway, net.auto_subnet = str(chosen), ipam.default_gateway(chosen), True
            with self.store.tx() as conn:
                self.store.insert_network(conn, net)
        return net

    def _config_network(self, ref: str) -> Network:
        """The configuration network ``--config-from`` names (docker: by name or ID)."""
        try:
            base = self.get(ref)
        except NotFound:
            base = None
        if base is None or not base.config_only:
            raise NotFound(f'configuration network "{ref}" does not exist')
        return base

    def _create_config_only(self, name: str, subnet: str | None, gateway: str | None,
                            ip_range: str | None, aux: dict[str, str] | None,
                            labels: dict[str, str] | None, options: dict[str, str] | None,
                            ipam_options: dict[str, str] | None) -> Network:
        """``--config-only``: only a record (no bridge, no address pool taken), as dockerd."""
        net = Network(id=new_id(), name=name, driver="null", labels=dict(labels or {}),
                      options=dict(options or {}), created=now(), ipam={"config_only": True})
        if ipam_options:
            net.ipam["options"] = dict(ipam_options)
        if subnet:
            sub = ipam.parse_network_subnet(subnet)
            net.subnet = str(sub)
            if subnet != net.subnet:
                net.ipam["subnet_text"] = subnet
            if ip_range:
                net.ipam["ip_range"] = str(ipaddress.IPv4Network(ip_range, strict=False))
            if gateway:
                net.gateway = str(ipaddress.IPv4Address(gateway))
                net.ipam["gateway_explicit"] = True
            _check_reserved(net, sub, aux or {})
        with self._lock():
            if any(n.name == name for n in self.store.networks()):
                raise Conflict(f"network with name {name} already exists")
            with self.store.tx() as conn:
                self.store.insert_network(conn, net)
        return net

    def _marker(self, net: Network) -> str:
        """The alias a network's bridge gets once its address and rules are in place:
        ``dockyard <network id> <gateway>/<prefix> <state root>``."""
        prefix = ipaddress.IPv4Network(net.subnet).prefixlen if net.subnet else 0
        return f"{MARKER_PREFIX}{net.id[:12]} {net.gateway}/{prefix} {self.state.path}"[:255]

    def _is_up(self, net: Network) -> bool:
        """Bridge up with our marker: one netlink request, no look at the firewall."""
        if not (net.bridge and net.subnet):
            return False
        return links.bridge_marked(net.bridge, self._marker(net))

    def _bring_up(self, net: Network) -> None:
        """Bridge, address, firewall rules; idempotent (repairs a half-made network).

        The bridge's alias marks a finished set-up (written last), so a container start on a
        network that is up costs one netlink request here and no iptables at all."""
        assert net.subnet and net.gateway and net.bridge
        if self._is_up(net):
            return
        preexisting = bool(net.ipam.get("bridge_preexisting"))
        self._collect_stale_roots()
        sub = ipaddress.IPv4Network(net.subnet)
        mtu = int(net.options.get("com.docker.network.driver.mtu", 1500))
        created = links.ensure_bridge(net.bridge, net.gateway, sub.prefixlen, mtu)
        v6 = _v6_of(net)
        if v6 is not None:
            links.ensure_bridge_addr6(net.bridge, v6["gateway"],
                                      ipaddress.IPv6Network(v6["subnet"]).prefixlen)
        listing = self.firewall.listing()
        self.firewall.ensure_base(listing)
        rules = self.firewall.network_rules(net.bridge, net.subnet, net.internal)
        if created or preexisting or self.firewall.count_owner(net.id, listing) != len(rules):
            self.firewall.delete_owner(net.id, listing)
            self.firewall.add(rules, net.id)
        if not preexisting:
            links.mark_bridge(net.bridge, self._marker(net))

    def _take_down(self, net: Network) -> None:
        if net.driver == "macvlan":
            if net.ipam.get("dummy_parent"):
                links.delete_link(net.ipam["dummy_parent"])
            return
        self.firewall.delete_owner(net.id)
        if net.bridge and not net.ipam.get("bridge_preexisting"):
            links.delete_link(net.bridge)
        self._maybe_remove_base()

    def _collect_stale_roots(self) -> None:
        """Bridges stay up between containers, so a state root deleted without a teardown
        (a test's temporary root, say) would keep its bridge, subnet and chains forever: the
        marker names each bridge's root, and a root that no longer exists loses them here,
        whenever some root sets up a bridge."""
        for ifname, alias in links.aliased_links(MARKER_PREFIX):
            parts = alias.split(" ", 3)
            if len(parts) < 4 or len(alias) >= 255 or os.path.isdir(parts[3]) or \
                    Path(parts[3]) == self.state.path:
                continue
            stale = Names(parts[3])
            links.delete_link(ifname)
            for pin in sorted((stale.run_dir / "netns").glob("*")):
                netns.remove(pin)
            firewall_of(stale).remove_base()

    def _maybe_remove_base(self) -> None:
        """Drop our chains once no bridge of this root is left (keeps the host clean)."""
        if any(self._bridge_up(n) for n in self.store.networks() if n.driver == "bridge"):
            return
        if self.firewall.has_base():
            self.firewall.remove_base()

    def _ensure_default_bridge(self, net: Network) -> None:
        """The ``bridge`` network comes up on first use and stays up (as docker0 does) until
        ``network prune``/``system prune`` or ``cleanup`` take it down while no container uses
        it; while down, its automatic subnet may be re-chosen if something else took it."""
        if self._is_up(net):
            return
        with ipam.host_lock():
            if not self._bridge_up(net):
                cfg = self.config()
                taken = self._taken_subnets(exclude=net.id)
                if not net.subnet or (net.auto_subnet and ipam.first_overlap(
                        ipaddress.IPv4Network(net.subnet), taken)):
                    if cfg.default_subnet_explicit:
                        sub = ipaddress.IPv4Network(cfg.default_subnet)
                        if ipam.first_overlap(sub, taken):
                            raise Conflict(f"the bridge subnet {sub} overlaps with "
                                           f"{ipam.first_overlap(sub, taken)}")
                    else:
                        sub = ipam.choose_subnet([ipaddress.IPv4Network(cfg.default_subnet),
                                                  *cfg.pool_slices()], taken)
                    net.subnet, net.gateway = str(sub), ipam.default_gateway(sub)
                net.bridge = self.names.bridge(net.id, default_network=True)
                with self.store.tx() as conn:
                    self.store.set_addressing(conn, net)
            self._bring_up(net)

    def _engine_members(self, net: Network) -> dict[str, Any]:
        """Running containers of the ``host`` or ``none`` network: the engine runs them without
        this service, so it is asked (docker lists them with an endpoint and no address)."""
        import hashlib

        mode = "host" if net.driver == "host" else "none"
        try:
            running = self.client.containers.list()
        except (ImportError, AttributeError):
            return {}
        out = {}
        for c in running:
            record = getattr(c, "record", None)
            if record is None or (record.host_config.get("NetworkMode") or "") != mode or \
                    (mode == "none" and self.store.sandbox(c.id) is not None):
                continue  # (a sandbox: it left ``none``)
            endpoint = hashlib.sha256(f"{c.id}/{net.id}".encode()).hexdigest()
            out[c.id] = {"Name": c.name.lstrip("/"), "EndpointID": endpoint, "MacAddress": "",
                         "IPv4Address": "", "IPv6Address": ""}
        return out

    def _default_bridge_addressing(self, net: Network) -> tuple[str, str]:
        """The subnet and gateway the ``bridge`` network will get when it first comes up
        (docker's always has them; ours are chosen on first use)."""
        cfg = self.config()
        sub = ipaddress.IPv4Network(cfg.default_subnet)
        if not cfg.default_subnet_explicit:
            taken = self._taken_subnets(exclude=net.id)
            sub = ipam.choose_subnet([sub, *cfg.pool_slices()], taken)
        return str(sub), ipam.default_gateway(sub)

    def remove(self, ref: str) -> Network:
        net = self.get(ref)
        if net.builtin:
            raise Conflict(f"{net.name} is a pre-defined network and cannot be removed")
        if net.config_only and any(n.ipam.get("config_from") in (net.name, net.id)
                                   for n in self.store.networks()):
            raise Conflict(f'error while removing network: configuration network "{net.name}" is '
                           "in use")
        with self._lock():
            if self.store.endpoints(network_id=net.id):
                raise Conflict(f"error while removing network: network {net.name} id {net.id} "
                               "has active endpoints")
            self._take_down(net)
            with self.store.tx() as conn:
                self.store.delete_network(conn, net.id)
        return net

    def prune(self, filters: dict[str, list[str]] | None = None) -> list[str]:
        """Remove user networks no container (running or not) uses; returns their names.

        ``filters``: dockerd's prune filters, ``until`` (a time or a Go duration ago: networks
        created before it), ``label`` and ``label!``; any other is ``Invalid filter``."""
        filters = dict(filters or {})
        for key in filters:
            if key not in ("until", "label", "label!"):
                raise InvalidArgument(f"Invalid filter '{key}'")
        until = filters.pop("until", [])
        unlabeled = filters.pop("label!", [])
        cutoff = None
        if until:
            from dockyard.engine.timeutil import parse_rfc3339, parse_timestamp

            try:
                cutoff = min(parse_timestamp(v) for v in until)
            except ValueError as exc:
                raise InvalidArgument(str(exc)) from None
        removed = []
        for net in self.list(filters):
            if cutoff is not None and (parse_rfc3339(net.created) or 0) >= cutoff:
                continue
            if unlabeled and any(_matches(net, "label", v) for v in unlabeled):
                continue
            if net.builtin or self.store.endpoints(network_id=net.id) or \
                    self.store.connected_containers(net.id):
                continue
            try:
                self.remove(net.id)
            except Conflict:
                continue
            removed.append(net.name)
        self._take_down_idle_default()
        return removed

    def _take_down_idle_default(self) -> None:
        """The default bridge, its rules and (if no other bridge is left) our chains go when
        no container uses it: what ``network prune`` and ``system prune`` leave is a clean host."""
        with self._lock():
            for net in self.store.networks():
                if net.is_default_bridge and net.bridge and not self.store.endpoints(
                        network_id=net.id) and links.link_exists(net.bridge):
                    self._take_down(net)

    def inspect(self, ref: str) -> dict[str, Any]:
        net = self.get(ref)
        containers = {}
        for e in self.store.endpoints(network_id=net.id):
            prefix = ipaddress.IPv4Network(net.subnet).prefixlen if net.subnet else 0
            ip6 = _ip6_for(net, e.ip)
            v6 = _v6_of(net)
            containers[e.container_id] = {
                "Name": e.name or "", "EndpointID": e.endpoint_id, "MacAddress": e.mac,
                "IPv4Address": f"{e.ip}/{prefix}",
                "IPv6Address": f"{ip6}/{ipaddress.IPv6Network(v6['subnet']).prefixlen}"
                if ip6 and v6 else ""}
        if net.builtin and net.driver in ("host", "null"):
            containers.update(self._engine_members(net))
        options = dict(net.options)  # docker shows a user network's own options only
        if net.is_default_bridge:
            options = {"com.docker.network.bridge.default_bridge": "true",
                       "com.docker.network.bridge.enable_icc": "true",
                       "com.docker.network.bridge.enable_ip_masquerade": "true",
                       "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
                       "com.docker.network.bridge.name": net.bridge or
                       self.names.bridge(net.id, default_network=True),
                       "com.docker.network.driver.mtu": "1500"}
        config = []
        if net.is_default_bridge and not net.subnet:
            net.subnet, net.gateway = self._default_bridge_addressing(net)
        if net.subnet:
            entry: dict[str, Any] = {"Subnet": net.ipam.get("subnet_text") or net.subnet}
            if net.ip_range:
                entry["IPRange"] = net.ip_range
            if net.auto_subnet or net.ipam.get("gateway_explicit"):
                entry["Gateway"] = net.gateway
            if net.ipam.get("aux"):
                entry["AuxiliaryAddresses"] = dict(sorted(net.ipam["aux"].items()))
            config.append(entry)
        for v6 in ([net.ipam["v6"]] if net.ipam.get("v6") else []) + net.ipam.get("v6_more", []):
            entry6 = {"Subnet": v6.get("text") or v6["subnet"]}
            if v6.get("gateway_explicit"):
                entry6["Gateway"] = v6["gateway"]
            config.append(entry6)
        return {"Name": net.name, "Id": net.id, "Created": net.created, "Scope": "local",
                "Driver": net.driver, "EnableIPv6": bool(net.ipam.get("enable_ipv6")),
                "IPAM": {"Driver": "default",
                         "Options": None if net.builtin else dict(net.ipam.get("options") or {}),
                         "Config": config},
                "Internal": net.internal, "Attachable": net.attachable, "Ingress": False,
                "ConfigFrom": {"Network": net.ipam.get("config_from") or ""},
                "ConfigOnly": net.config_only, "Containers": containers,
                "Options": options, "Labels": net.labels}

    # -- engine hooks -------------------------------------------------------------------------
    parse_port_specs = staticmethod(parse_port_specs)

    def attach(self, container_id: str, name: str | None = None, mode: str = "bridge",
               aliases: Iterable[str] = (), ports: Iterable[PortSpec] = (),
               hostname: str | None = None, ip: str | None = None,
               extra_hosts: Iterable[str] = (), exposed: Iterable[str] = (),
               mac: str | None = None, dns: Iterable[str] = (), dns_search: Iterable[str] = (),
               dns_options: Iterable[str] = ()) -> Attachment:
        """Give a container its network namespace; call before the runtime creates it.

        ``mode``: ``bridge`` (default), ``none``, ``host``, ``container:<id>`` or a network name
        or ID. Networks added with ``connect`` while the container was stopped are joined too.
        ``mac`` (``--mac-address``): the address of the interface on the mode's network.
        ``dns``, ``dns_search``, ``dns_options``: ``--dns*``; the returned ``resolv_conf`` is
        docker's (on a user network the embedded server stays the nameserver and forwards to
        the ``--dns`` servers).
        On any failure everything made so far is undone before the error propagates.
        """
        name = (name or "").lstrip("/") or None
        hostname = hostname or container_id[:12]
        specs = list(ports)
        aliases = [a for a in aliases if a]
        extra = [_parse_extra_host(h) for h in extra_hosts]
        mode = mode or "bridge"
        with self._lock():
            if self.store.sandbox(container_id) is not None:
                self._release_locked(container_id)
            try:
                resolver = {"dns": list(dns), "dns_search": list(dns_search),
                            "dns_options": list(dns_options)}
                return self._attach_locked(container_id, name, mode, aliases, specs, hostname,
                                           ip, extra, list(exposed), _parse_mac(mac),
                                           {k: v for k, v in resolver.items() if v})
            except BaseException:
                self._release_locked(container_id)
                raise

    def _attach_locked(self, cid: str, name: str | None, mode: str, aliases: list[str],
                       specs: list[PortSpec], hostname: str, ip: str | None,
                       extra: list[tuple[str, str]], exposed: list[str],
                       mac: str | None = None,
                       resolver: dict[str, list[str]] | None = None) -> Attachment:
        if mode.startswith("container:"):
            return self._attach_shared(cid, name, mode, specs, hostname)
        net: Network | None = None
        if mode not in SPECIAL_MODES:
            net = self.get("bridge" if mode in ("default", "bridge") else mode)
            if net.config_only:
                raise Forbidden(CONFIG_ONLY_ENDPOINT_ERROR)
            if net.driver == "host":
                mode, net = "host", None
            elif net.driver == "null":
                mode, net = "none", None
        if mode == "host":
            sandbox = Sandbox(cid, name, hostname, "host", None, False, {}, now())
            with self.store.tx() as conn:
                self.store.insert_sandbox(conn, sandbox)
            host_hosts = _read("/etc/hosts")
            return Attachment(cid, "host", None, hostname, host_hosts, _read("/etc/resolv.conf"),
                              network_settings=self._settings(cid))
        if aliases and (net is None or not net.user_defined):
            raise InvalidArgument("network-scoped alias is supported only for containers in user "
                                  "defined networks")
        if ip and (net is None or not net.user_defined):
            raise InvalidArgument("user specified IP address is supported on user defined "
                                  "networks only")
        # networks to join: the mode's, then those added by `network connect` while stopped
        joins: list[tuple[Network, list[str], str | None]] = []
        if net is not None:
            joins.append((net, aliases, ip))
            self.store.put_connection(cid, net.id, aliases, ip, 0)
        if mode != "none":
            for net_id, more_aliases, more_ip in self.store.connections(cid):
                if all(j[0].id != net_id for j in joins):
                    try:
                        joins.append((self.store.find_network(net_id), more_aliases, more_ip))
                    except NotFound:
                        self.store.delete_connection(cid, net_id)
        # host ports first: a taken port fails before anything exists
        bindings: list[PortBinding] = []
        listeners: list[tuple[str, Any, int]] = []
        bridge_joins = [j for j in joins if not j[0].internal and j[0].driver == "bridge"]
        endpoint_id = new_id()  # of the endpoint ports go to: docker names it in port errors
        if specs and bridge_joins:
            from dockyard.network.firewall import published_host_ports
            from dockyard.network.ports import ipv6_available

            taken = published_host_ports() | self._our_port_claims()
            label = f"{name or cid[:12]} ({endpoint_id})"
            bindings = choose_bindings(_docker_order(specs), taken, label, ipv6_available())
            listeners = _open_listeners(bindings, label)
        try:  # the namespace, its interfaces, then the published ports (DNAT, IPv6 proxy)
            port_net = bridge_joins[0][0].id if bridge_joins else None
            path = str(self.names.netns_path(cid))
            sandbox = Sandbox(cid, name, hostname, mode, path, True,
                              {"bindings": [], "exposed": sorted(set(exposed) | {s.key for s in specs}),
                               "extra_hosts": extra, **(resolver or {})}, now())
            with self.store.tx() as conn:
                self.store.insert_sandbox(conn, sandbox)
            netns.create(path)
            if not joins:
                links.loopback_up(path)  # else plug brings lo up with the first interface
            endpoints = [self._plug(cid, name, n, a, i, path, mac if k == 0 and net is not None else None,
                                    endpoint_id if n.id == port_net else None)
                         for k, (n, a, i) in enumerate(joins)]
            if bindings:
                from dockyard.network.firewall import PortRule

                target = next(e for e in endpoints if e.network_id == port_net)
                rules = self.firewall.port_rules([
                    PortRule(b.proto, b.host_ip, b.host_port, target.ip, b.container_port)
                    for b in bindings if b.family == 4])
                # recorded before they exist: release deletes exactly these (one iptables-restore)
                sandbox.ports["bindings"] = [b.to_dict() for b in bindings]
                sandbox.ports["rules"] = [[t, c, a] for t, c, a in rules]
                self.store.set_ports(cid, sandbox.ports)
                if rules:
                    self.firewall.add(rules, cid)
                if listeners:
                    from dockyard.network import proxy

                    sandbox.ports["proxy"] = proxy.start(self.names.tag, cid, target.ip, listeners)
                    self.store.set_ports(cid, sandbox.ports)
            if any(n.user_defined for n, _, _ in joins):
                _dns().sync(self.state.path, self.names, needed=True)
            return self._attachment(cid)
        finally:
            for _, sock, _ in listeners:
                sock.close()  # the proxy has its own copies

    def _attach_shared(self, cid: str, name: str | None, mode: str, specs: list[PortSpec],
                       hostname: str) -> Attachment:
        if specs:
            raise InvalidArgument("conflicting options: port publishing and the container type "
                                  "network mode")
        ref = mode.split(":", 1)[1]
        owner = self._find_sandbox(ref)
        if owner is None or not owner.netns:
            try:
                ref = self._resolve_container(ref)  # docker names it by its full ID
            except NotFound:
                pass
            raise Conflict(f"cannot join network of a non running container: {ref}")
        sandbox = Sandbox(cid, name, owner.hostname, mode, owner.netns, False, {}, now())
        with self.store.tx() as conn:
            self.store.insert_sandbox(conn, sandbox)
        base = self._attachment(owner.container_id)
        return Attachment(cid, mode, owner.netns, owner.hostname, base.hosts, base.resolv_conf,
                          network_settings=self._settings(cid))

    def _find_sandbox(self, ref: str) -> Sandbox | None:
        """A running container's sandbox by ID, ID prefix or name."""
        try:
            cid = self._resolve_container(ref)
        except NotFound:
            cid = ref
        found = self.store.sandbox(cid)
        if found:
            return found
        matches = [s for s in self.store.sandboxes()
                   if s.container_id.startswith(ref) or s.name == ref]
        return matches[0] if len(matches) == 1 else None

    def _resolve_container(self, ref: str) -> str:
        """Ask the engine for a container's full ID (a no-op before the engine exists)."""
        try:
            containers = self.client.containers
        except (ImportError, AttributeError):
            raise NotFound(f"No such container: {ref}") from None
        for attr in ("get", "find", "lookup"):
            fn = getattr(containers, attr, None)
            if fn is not None:
                obj = fn(ref)
                return str(getattr(obj, "id", None) or obj["Id"])
        raise NotFound(f"No such container: {ref}")

    def _our_port_claims(self) -> set[tuple[str, str, int]]:
        claims = set()
        for s in self.store.sandboxes():
            for b in (s.ports or {}).get("bindings", []):
                claims.add((b["proto"], b["host_ip"], int(b["host_port"])))
        return claims

    def _plug(self, cid: str, name: str | None, net: Network, aliases: list[str],
              ip: str | None, path: str, mac: str | None = None,
              endpoint_id: str | None = None) -> Endpoint:
        if net.is_default_bridge:
            self._ensure_default_bridge(net)
        elif net.driver == "bridge":
            self._bring_up(net)
        assert net.subnet and net.gateway and (net.bridge or net.driver == "macvlan")
        sub = ipaddress.IPv4Network(net.subnet)
        ifnames = {e.ifname for e in self.store.endpoints(container_id=cid)}
        ifname = next(f"eth{i}" for i in range(64) if f"eth{i}" not in ifnames)
        with self.store.tx() as conn:
            used = {r[0] for r in conn.execute("SELECT ip FROM net_endpoints WHERE network_id=?",
                                               (net.id,))}
            used |= set((net.ipam.get("aux") or {}).values())  # --aux-address: never handed out
            if ip and net.auto_subnet:
                raise InvalidArgument("user specified IP address is supported only when connecting "
                                      "to networks with user configured subnets")
            if ip:
                ip = ipam.parse_ip(ip, "IPv4 address")
                if ipaddress.IPv4Address(ip) not in sub:
                    raise InvalidArgument(f"Invalid address {ip}: It does not belong to any of "
                                          "this network's subnets")
                if ip in used or ip == net.gateway or ipaddress.IPv4Address(ip) in (
                        sub.network_address, sub.broadcast_address):
                    raise Conflict("Address already in use")  # libnetwork's words, no address
                address = ip
            else:
                rng = ipaddress.IPv4Network(net.ip_range) if net.ip_range else None
                address = ipam.allocate_ip(sub, net.gateway, used, rng)
            ep = Endpoint(cid, net.id, endpoint_id or new_id(), name, list(aliases), address,
                          mac or ipam.mac_for(address), self.names.veth_host(cid, net.id), ifname)
            self.store.insert_endpoint(conn, ep)
        mtu = int(net.options.get("com.docker.network.driver.mtu", 1500))
        if net.driver == "macvlan":
            given = net.options.get("com.docker.network.driver.mtu")
            links.plug_macvlan(path, net.options.get("parent") or net.ipam["dummy_parent"], ifname,
                               address, sub.prefixlen, ep.mac, net.gateway,
                               int(given) if given else None)  # else the parent's
            return ep
        assert net.bridge
        v6 = _v6_of(net)
        ip6 = _ip6_for(net, address)
        links.plug(path, net.bridge, ep.veth, ifname, address, sub.prefixlen, ep.mac,
                   net.gateway,  # internal networks too, as docker: the firewall seals them
                   int(net.options.get("com.docker.network.driver.mtu", 1500)),
                   (ip6, ipaddress.IPv6Network(v6["subnet"]).prefixlen, v6["gateway"])
                   if v6 is not None and ip6 else None)
        return ep

    def release(self, container_id: str) -> None:
        """Undo everything ``attach`` did (rules, veths, netns, addresses, DNS names).

        Idempotent, and safe after a crash: it works from the records and the rule comments.
        Call it when the container stops and when it is removed.
        """
        with self._lock():
            self._release_locked(container_id)

    def _release_locked(self, cid: str) -> None:
        """Rules first (ports stop answering), then the namespace, then the records.

        Published-port rules exist only if the sandbox records them (they are recorded before
        they are added, and deleted before the sandbox row): a container without published
        ports, or one already released, costs no iptables at all. The veths are not deleted one
        by one: unpinning the namespace lets the kernel destroy them with it, asynchronously
        (a synchronous delete waits 10-40 ms for an RCU grace period). Only when the namespace
        was already gone (a crash half-way) are leftover veths deleted here."""
        sandbox = self.store.sandbox(cid)
        endpoints = self.store.endpoints(container_id=cid)
        if sandbox is not None and sandbox.ports.get("bindings"):
            self._unpublish(sandbox)
        if sandbox is not None and sandbox.owns_netns and sandbox.netns:
            path = sandbox.netns
        else:
            path = str(self.names.netns_path(cid))
        pinned = netns.is_netns(path)
        if pinned and endpoints:
            # a macvlan goes now, not with the namespace later: its MAC address would refuse
            # the next container on the same parent that gets the same address
            nets = {n.id: n for n in self.store.networks()}
            for e in endpoints:
                if nets.get(e.network_id) and nets[e.network_id].driver == "macvlan":
                    try:
                        links.unplug_in_netns(path, e.ifname)
                    except Exception:  # noqa: BLE001 - the namespace goes anyway
                        pass
        netns.remove(path)
        if not pinned:
            for e in endpoints:
                links.delete_link(e.veth)
        if endpoints or sandbox is not None:
            with self.store.tx() as conn:
                conn.execute("DELETE FROM net_endpoints WHERE container_id=?", (cid,))
                conn.execute("DELETE FROM net_sandboxes WHERE container_id=?", (cid,))
        if endpoints:
            nets = {n.id: n for n in self.store.networks()}
            if any(nets.get(e.network_id) and nets[e.network_id].user_defined for e in endpoints):
                _dns().sync(self.state.path, self.names, needed=False)
        self._tidy_run_dir()

    def _unpublish(self, sandbox: Sandbox) -> None:
        """Stop serving a sandbox's published ports: its DNAT rules, then its IPv6 proxy
        (waited for, so the ports are free again when this returns)."""
        cid = sandbox.container_id
        recorded = sandbox.ports.get("rules")
        if recorded:
            self.firewall.delete([(t, c, list(a)) for t, c, a in recorded], cid)
        elif recorded is None or any(PortBinding.from_dict(b).family == 4
                                     for b in sandbox.ports.get("bindings", [])):
            self.firewall.delete_owner(cid)
        if sandbox.ports.get("proxy"):
            from dockyard.network import proxy

            proxy.stop(int(sandbox.ports["proxy"]), self.names.tag, cid)

    def forget(self, container_id: str) -> None:
        """The container is being removed: release it and drop its network memberships."""
        with self._lock():
            self._release_locked(container_id)
            self.store.delete_connection(container_id)

    def _tidy_run_dir(self) -> None:
        for d in (self.names.run_dir / "netns", self.names.run_dir):
            try:
                d.rmdir()
            except OSError:
                break

    def connect(self, network: str, container_id: str, name: str | None = None,
                aliases: Iterable[str] = (), ip: str | None = None,
                mode: str | None = None, ip6: str | None = None) -> None:
        """``network connect``: join now if the container is running, else at its next start.

        ``mode``: the container's ``NetworkMode`` (the engine keeps ``none`` and ``host``
        containers to itself, so only it can say); refused combinations are docker's."""
        net = self.get(network)
        aliases = [a for a in aliases if a]
        sandbox = self.store.sandbox(container_id)
        if mode is None:
            mode = sandbox.mode if sandbox is not None else self._engine_mode(container_id)
        if mode == "none" and sandbox is not None and sandbox.mode == LEFT_NONE:
            mode = LEFT_NONE  # it left ``none``: its namespace may join networks now, as docker's
        if mode == "host" or (mode or "").startswith("container:"):
            raise Conflict(SHARED_NETWORK_ERROR)
        if net.config_only:
            raise Forbidden(CONFIG_ONLY_ENDPOINT_ERROR)
        if ip:  # (``network connect``'s words in dockerd 20.10, its stray parenthesis included)
            try:
                ipaddress.IPv4Address(ip)
            except ValueError:
                raise InvalidArgument(f"Invalid IPv4 address: {ip})") from None
        if ip6:  # an IPv6 address of one's choice: only where dockerd takes it, and not here
            if _v6_of(net) is None:
                raise InvalidArgument("user specified IP address is supported only when "
                                      "connecting to networks with user configured subnets")
            raise Unsupported("choosing a container's IPv6 address (--ip6) is not supported")
        if net.driver == "host":
            raise Conflict("container cannot be disconnected from host network or connected to "
                           "host network")
        if mode == "none" or net.driver == "null":
            raise Conflict("container cannot be connected to multiple networks with one of the "
                           "networks in private (none) mode")
        if aliases and not net.user_defined:
            raise InvalidArgument("network-scoped alias is supported only for containers in user "
                                  "defined networks")
        with self._lock():
            sandbox = self.store.sandbox(container_id)
            if any(e.network_id == net.id for e in self.store.endpoints(container_id=container_id)) \
                    or (sandbox is None and any(c[0] == net.id for c in
                                                self.store.connections(container_id))):
                raise Conflict(f"endpoint with name {name or container_id[:12]} already exists "
                               f"in network {net.name}")
            if sandbox is not None and (sandbox.mode in SPECIAL_MODES or not sandbox.owns_netns):
                raise Conflict(SHARED_NETWORK_ERROR)
            # >= 1: joined by ``connect`` (docker then shows DriverOpts as {}, not null)
            position = len(self.store.connections(container_id)) + 1
            self.store.put_connection(container_id, net.id, aliases, ip, position)
            if sandbox is None or not sandbox.netns:
                return
            try:
                self._plug(container_id, sandbox.name or name, net, aliases, ip, sandbox.netns)
            except BaseException:
                veth = self.names.veth_host(container_id, net.id)
                links.delete_link(veth)
                self.store.delete_endpoint(container_id, net.id)
                self.store.delete_connection(container_id, net.id)
                raise
            if net.user_defined:
                _dns().sync(self.state.path, self.names, needed=True)

    def disconnect(self, network: str, container_id: str, force: bool = False) -> None:
        """``network disconnect``; as dockerd, a container that is not on the network is an
        error even with ``force`` (which names a missing network ``the network``)."""
        try:
            net = self.get(network)
        except NotFound:
            if not force:
                raise
            raise Conflict(f"container {container_id} is not connected to the network "
                           f"{network}") from None
        if net.driver == "null":
            self._leave_none(container_id)
            return
        with self._lock():
            eps = [e for e in self.store.endpoints(container_id=container_id)
                   if e.network_id == net.id]
            connected = any(c[0] == net.id for c in self.store.connections(container_id))
            if not eps and not connected:
                raise Conflict(f"container {container_id} is not connected to network "
                               f"{net.name}")
            sandbox = self.store.sandbox(container_id)
            for e in eps:
                if net.driver == "macvlan" and sandbox is not None and sandbox.netns:
                    links.unplug_in_netns(sandbox.netns, e.ifname)  # no host side to delete
                links.delete_link(e.veth)
                self.store.delete_endpoint(container_id, net.id)
                if sandbox and sandbox.ports.get("bindings") and not self.store.endpoints(
                        container_id=container_id):
                    self._unpublish(sandbox)
            self.store.delete_connection(container_id, net.id)
            if net.user_defined and eps:
                _dns().sync(self.state.path, self.names, needed=False)

    def _engine_mode(self, cid: str) -> str | None:
        """A container's ``NetworkMode`` from the engine (``bridge`` for ``default``)."""
        try:
            mode = self.client.containers.load(cid).host_config.get("NetworkMode") or "default"
        except (ImportError, AttributeError, NotFound):
            return None
        return "bridge" if mode == "default" else str(mode)

    def _leave_none(self, cid: str) -> None:
        """``network disconnect none C``, as dockerd: a running container leaves ``none`` (no longer
        listed there, ``Networks`` empty) and its namespace, which the runtime made, is pinned and
        recorded as a sandbox so that ``network connect`` can plug interfaces into it; ``release``
        at its stop undoes that. A container not running has nothing to leave."""
        try:
            rec = self.client.containers.load(cid)
        except (ImportError, AttributeError):
            raise NotFound(f"No such container: {cid}") from None
        with self._lock():
            sandbox = self.store.sandbox(cid)
            if (rec.host_config.get("NetworkMode") or "") != "none" or sandbox is not None:
                raise Conflict(f"container {cid} is not connected to network none")
            pid = int(rec.state.get("Pid") or 0)
            if not rec.state.get("Running") or not pid:
                return
            path = str(self.names.netns_path(cid))
            netns.adopt(f"/proc/{pid}/ns/net", path)
            name = (rec.config.get("Name") or "").lstrip("/") or None
            with self.store.tx() as conn:
                self.store.insert_sandbox(conn, Sandbox(
                    cid, name, rec.cfg.get("Hostname") or cid[:12], LEFT_NONE, path, True,
                    {"bindings": [], "exposed": [], "extra_hosts": []}, now()))

    def adopted(self, cid: str) -> bool:
        """Did a ``none`` container leave ``none`` (so the service now owns its namespace)? One
        stat: the engine asks at every stop of a ``none`` container."""
        return os.path.exists(self.names.netns_path(cid))

    # -- views for the engine's inspect / ls / port -----------------------------------------
    def _attachment(self, cid: str) -> Attachment:
        sandbox = self.store.sandbox(cid)
        if sandbox is None:
            raise NotFound(f"container {cid} has no network attachment")
        eps = self.store.endpoints(container_id=cid)
        nets = {n.id: n for n in self.store.networks()}
        first = eps[0] if eps else None
        first_net = nets.get(first.network_id) if first else None
        embedded = any(nets[e.network_id].user_defined for e in eps if e.network_id in nets)
        extra = [tuple(h) for h in sandbox.ports.get("extra_hosts", [])]
        return Attachment(
            cid, sandbox.mode, sandbox.netns, sandbox.hostname,
            hosts_text(sandbox.hostname, _addresses(first, first_net), extra),
            _resolv_conf(embedded, sandbox.ports),
            ports=[PortBinding.from_dict(b) for b in sandbox.ports.get("bindings", [])],
            ip=first.ip if first else None, mac=first.mac if first else None,
            gateway=first_net.gateway if first_net else None,
            ip_addresses={nets[e.network_id].name: e.ip for e in eps if e.network_id in nets},
            network_settings=self._settings(cid),
            ipv6=any(_ip6_for(nets[e.network_id], e.ip) for e in eps if e.network_id in nets))

    def ports(self, container_id: str) -> list[PortBinding]:
        """Published ports of a running container (``container port``, ``ls``)."""
        sandbox = self.store.sandbox(container_id)
        if sandbox is None:
            return []
        return [PortBinding.from_dict(b) for b in sandbox.ports.get("bindings", [])]

    def settings(self, container_id: str) -> dict[str, Any]:
        """docker's ``NetworkSettings`` for ``inspect`` (running or not)."""
        return self._settings(container_id)

    def _settings(self, cid: str) -> dict[str, Any]:
        sandbox = self.store.sandbox(cid)
        nets = {n.id: n for n in self.store.networks()}
        eps = {e.network_id: e for e in self.store.endpoints(container_id=cid)}
        ports: dict[str, Any] = {}
        if sandbox is not None:
            for key in sandbox.ports.get("exposed", []):
                ports[key] = None
            for b in sandbox.ports.get("bindings", []):
                pb = PortBinding.from_dict(b)
                ports[pb.key] = (ports.get(pb.key) or []) + [
                    {"HostIp": pb.shown_ip, "HostPort": str(pb.host_port)}]
        networks: dict[str, Any] = {}
        member_ids = [c[0] for c in self.store.connections(cid)]
        positions = self.store.connection_positions(cid)
        if sandbox is not None and sandbox.mode in SPECIAL_MODES:
            member_ids = [n.id for n in nets.values() if n.builtin and n.name == sandbox.mode]
        for nid in member_ids + [n for n in eps if n not in member_ids]:
            n = nets.get(nid)
            if n is None:
                continue
            e = eps.get(nid)
            conn = next((c for c in self.store.connections(cid) if c[0] == nid), None)
            aliases = conn[1] if conn else []
            prefix = ipaddress.IPv4Network(n.subnet).prefixlen if (e and n.subnet) else 0
            # docker 28's CLI re-encodes what a 20.10 daemon sends: its field order, and
            # GwPriority/DNSNames with their zero values
            networks[n.name] = {
                # (the docker CLI's ``network connect`` always sends an IPAMConfig)
                "IPAMConfig": {"IPv4Address": conn[2]} if conn and conn[2] else (
                    {} if positions.get(nid, 0) >= 1 else None),
                "Links": None,
                "Aliases": (_aliases(aliases, cid, sandbox) if n.user_defined else None),
                "MacAddress": e.mac if e else "",
                "DriverOpts": {} if positions.get(nid, 0) >= 1 else None, "GwPriority": 0,
                "NetworkID": n.id, "EndpointID": e.endpoint_id if e else "",
                "Gateway": (n.gateway or "") if e else "",
                "IPAddress": e.ip if e else "", "IPPrefixLen": prefix,
                **_v6_settings(n, e.ip if e else None), "DNSNames": None}
        default = networks.get("bridge", {})
        return {
            "Bridge": "", "SandboxID": (sandbox.netns or "").rsplit("/", 1)[-1] if sandbox else "",
            "HairpinMode": False, "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0,
            "Ports": ports, "SandboxKey": (sandbox.netns or "") if sandbox else "",
            "SecondaryIPAddresses": None, "SecondaryIPv6Addresses": None,
            "EndpointID": default.get("EndpointID", ""), "Gateway": default.get("Gateway", ""),
            "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
            "IPAddress": default.get("IPAddress", ""), "IPPrefixLen": default.get("IPPrefixLen", 0),
            "IPv6Gateway": "", "MacAddress": default.get("MacAddress", ""), "Networks": networks}

    # -- whole-root housekeeping --------------------------------------------------------------
    def cleanup(self) -> None:
        """Take down every host object of this root (containers' netns, bridges, rules, DNS).

        Records stay: user networks come back up on their next use. For tests and
        ``system reset``-like tools; running containers lose their network.
        """
        with self._lock():
            for s in self.store.sandboxes():
                self._release_locked(s.container_id)
            for n in self.store.networks():
                if n.driver == "bridge":
                    self.firewall.delete_owner(n.id)
                    if n.bridge and not n.ipam.get("bridge_preexisting"):
                        links.delete_link(n.bridge)
            for ifname in links.link_names():
                if self.names.owns_link(ifname):
                    links.delete_link(ifname)
            nsdir = self.names.run_dir / "netns"
            for pin in sorted(nsdir.glob("*")) if nsdir.is_dir() else []:
                netns.remove(pin)
            from dockyard.network import proxy

            for pid in proxy.running(self.names.tag):
                proxy.stop(pid, self.names.tag)
            self.firewall.remove_base()
            _dns().stop(self.names)
            self._tidy_run_dir()

    def host_objects(self) -> list[str]:
        """Every host object of this root present now: interfaces (bridges included), chains,
        netns files, the DNS daemon. Empty after ``cleanup``."""
        found = [f"interface {i}" for i in links.link_names() if self.names.owns_link(i)]
        if self.firewall.has_base():
            found.append(f"iptables chain {self.firewall.forward}")
        from dockyard.network.firewall import run_iptables

        nat = run_iptables("nat", "-S", check=False).stdout
        if self.firewall.ports in nat or self.firewall.post in nat:
            found.append(f"iptables nat chain {self.firewall.ports}")
        nsdir = self.names.run_dir / "netns"
        if nsdir.is_dir():
            found += [f"netns {p}" for p in nsdir.iterdir()]
        if _dns().running(self.names):
            found.append("embedded DNS daemon")
        from dockyard.network import proxy

        found += [f"port proxy {pid}" for pid in proxy.running(self.names.tag)]
        return found

    def leaks(self, settle: float = 5.0) -> list[str]:
        """Host objects of this root that no network accounts for: what containers left
        (interfaces, netns files, published-port rules, the DNS daemon) and bridges or chains
        of networks that are gone. The networks' own bridges and rules (the default bridge
        stays up between containers) are not leaks; ``host_objects`` lists everything.

        A released container's veth goes with its namespace, which the kernel destroys
        asynchronously: interfaces still present are given up to ``settle`` seconds."""
        deadline = time.monotonic() + settle
        while True:
            found = self._unaccounted()
            if not found or time.monotonic() >= deadline or \
                    not all(f.startswith("interface ") for f in found):
                return found
            time.sleep(0.05)

    def _unaccounted(self) -> list[str]:
        nets = [n for n in self.store.networks() if n.driver == "bridge"]
        up = [n for n in nets if n.bridge and self._bridge_up(n)]
        expected = {f"interface {n.bridge}" for n in up}
        if up:
            expected |= {f"iptables chain {self.firewall.forward}",
                         f"iptables nat chain {self.firewall.ports}"}
        found = [f for f in self.host_objects() if f not in expected]
        if up:
            network_owners = {n.id[:12] for n in nets}
            found += [f"iptables rules of {o}" for o in sorted(self.firewall.owners() - network_owners)]
        return found


SWARM_MANAGER_ERROR = ('This node is not a swarm manager. Use "dockyard swarm init" or "dockyard swarm '
                       'join" to connect this node to swarm and try again.')
CONFIG_ONLY_ENDPOINT_ERROR = "cannot create endpoint on configuration-only network"


def _check_config_network(config_only: bool, config_from: str | None, *, internal: bool,
                          attachable: bool, ingress: bool, scope: str, ipam_driver: str,
                          ipv6: bool, labels: dict[str, str] | None,
                          ipam_options: dict[str, str] | None, options: dict[str, str] | None,
                          ipam_given: bool) -> None:
    """libnetwork's ``validateConfiguration`` for configuration networks, with its words."""
    if config_only and (ingress or internal or attachable or scope):
        raise Forbidden("configuration network can only contain network specific fields. "
                               "Network operator fields like [ ingress | internal | attachable | "
                               "scope ] are not supported.")
    if config_from is None:
        return
    if config_only:
        raise Forbidden("a configuration network cannot depend on another configuration "
                               "network")
    if ipam_driver not in ("", "default") or ipv6 or labels or ipam_options or ipam_given:
        raise Forbidden("user specified configurations are not supported if the network "
                               "depends on a configuration network")
    if options:
        raise Forbidden("network driver options are not supported if the network depends "
                               "on a configuration network")


def _check_reserved(net: Network, sub: ipaddress.IPv4Network, aux: dict[str, str]) -> None:
    """The gateway and ``--aux-address``es must be usable host addresses of the subnet (not its
    network or broadcast address, not each other): libnetwork's messages. Aux addresses are
    kept in ``net.ipam["aux"]`` and never given to a container."""
    reserved = {sub.network_address, sub.broadcast_address} if sub.prefixlen < 31 else set()
    if net.gateway and net.ipam.get("gateway_explicit") and \
            ipaddress.IPv4Address(net.gateway) in reserved:
        raise Conflict(f"failed to allocate gateway ({net.gateway}): Address already in use")
    taken = set(reserved) | ({ipaddress.IPv4Address(net.gateway)} if net.gateway else set())
    kept: dict[str, str] = {}
    for key in sorted(aux):
        try:
            addr = ipaddress.IPv4Address(aux[key])
        except ValueError:
            raise InvalidArgument(f"no matching subnet for aux-address {aux[key]}") from None
        if addr not in sub:
            raise InvalidArgument(f"no matching subnet for aux-address {aux[key]}")
        if addr in taken:
            raise Conflict(f"failed to allocate secondary ip address ({key}:{addr}): Address "
                           "already in use")
        taken.add(addr)
        kept[key] = str(addr)
    if kept:
        net.ipam["aux"] = kept


def _parse_v6(subnet: str, gateway: str | None) -> dict[str, Any]:
    """A dual-stack network's IPv6 IPAM: the subnet, its gateway (the first address unless
    given: dockerd shows it in ``IPAM.Config`` only when given)."""
    try:
        sub = ipaddress.IPv6Network(subnet, strict=False)
    except ValueError:
        raise InvalidArgument(f"invalid CIDR address: {subnet}") from None
    out: dict[str, Any] = {"subnet": str(sub), "gateway": str(sub.network_address + 1)}
    if subnet != str(sub):
        out["text"] = subnet
    if gateway:
        out["gateway"], out["gateway_explicit"] = _gateway_in(sub, gateway), True
    return out


def _gateway_in(sub: "ipaddress.IPv4Network | ipaddress.IPv6Network", gateway: str) -> str:
    """``--gateway``, checked as dockerd does: an address of the subnet's family inside it."""
    try:
        gw = ipaddress.ip_address(gateway)
    except ValueError:
        gw = None
    if gw is None or gw.version != sub.version or gw not in sub:
        raise InvalidArgument(f"no matching subnet for gateway {gateway}")
    return str(gw)


def _v6_of(net: Network) -> dict[str, Any] | None:
    """The IPv6 side of a network that has IPv6 enabled (``--ipv6`` with an IPv6 subnet)."""
    return net.ipam.get("v6") if net.ipam.get("enable_ipv6") else None


def _ip6_for(net: Network, ip4: str | None) -> str | None:
    """A container's IPv6 address on a dual-stack network (see ``ipam.ip6_for``)."""
    return ipam.ip6_for(net.subnet, net.gateway, _v6_of(net), ip4)


def _v6_settings(net: Network, ip4: str | None) -> dict[str, Any]:
    ip6 = _ip6_for(net, ip4)
    v6 = _v6_of(net)
    if not ip6 or v6 is None:
        return {"IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0}
    return {"IPv6Gateway": v6["gateway"], "GlobalIPv6Address": ip6,
            "GlobalIPv6PrefixLen": ipaddress.IPv6Network(v6["subnet"]).prefixlen}


def _addresses(ep: Endpoint | None, net: Network | None) -> list[str]:
    """A container's own /etc/hosts addresses: IPv4, then IPv6 on a dual-stack network."""
    if ep is None:
        return []
    ip6 = _ip6_for(net, ep.ip) if net is not None else None
    return [ep.ip, ip6] if ip6 else [ep.ip]


def _docker_order(specs: list[PortSpec]) -> list[PortSpec]:
    """docker's ``nat.SortPortMap``: by container port, then by host port, highest first (the
    order of ``NetworkSettings.Ports`` and of the list API's ``Ports``)."""
    return sorted(specs, key=lambda s: (s.container_port, -s.host_port))


def _open_listeners(bindings: list[PortBinding], label: str) -> list[tuple[str, Any, int]]:
    """Bind the IPv6 side of ``bindings`` now (the proxy inherits the sockets): a port another
    program holds fails the start with docker's message before anything is made."""
    from dockyard.network.ports import bind_error, listen_socket

    out: list[tuple[str, Any, int]] = []
    try:
        for b in bindings:
            if b.family == 6 and b.proto in ("tcp", "udp"):
                try:
                    out.append((b.proto, listen_socket(b.proto, b.host_ip, b.host_port),
                                b.container_port))
                except OSError as exc:
                    raise bind_error(label, b.proto, b.host_ip, b.host_port, exc) from None
    except BaseException:
        for _, sock, _ in out:
            sock.close()
        raise
    return out


def firewall_of(names: Names) -> "Firewall":
    """A root's ``Firewall``, importing the module (and subprocess) only now."""
    from dockyard.network.firewall import Firewall

    return Firewall(names)


def _dns() -> Any:
    """The embedded DNS module, imported only by what uses it (the default bridge never does)."""
    from dockyard.network import dns

    return dns


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _resolv_conf(embedded: bool, recorded: dict[str, Any]) -> str:
    """The container's /etc/resolv.conf: with ``--dns*`` as docker writes it, else the default."""
    if not any(recorded.get(k) for k in ("dns", "dns_search", "dns_options")):
        return resolv_conf(embedded)
    return custom_resolv_conf(embedded, recorded.get("dns", []), recorded.get("dns_search", []),
                              recorded.get("dns_options", []))


def _parse_mac(text: str | None) -> str | None:
    """``--mac-address``: six hex bytes, written as docker shows them (lower case)."""
    if not text:
        return None
    if not re.fullmatch(r"[0-9A-Fa-f]{2}([:-][0-9A-Fa-f]{2}){5}", text):
        raise InvalidArgument(f"{text} is not a valid mac address")
    return text.replace("-", ":").lower()


def _parse_extra_host(text: str) -> tuple[str, str]:
    name, sep, ip = text.partition(":")
    if not sep or not name or not ip:
        raise InvalidArgument(f"bad format for add-host: {text!r}")
    return name, ip


def _aliases(aliases: list[str], cid: str, sandbox: Sandbox | None) -> list[str]:
    """docker's endpoint aliases on a user network: the user's, the short ID, the hostname."""
    out = [*aliases, cid[:12]]
    if sandbox is not None and sandbox.hostname and sandbox.hostname not in out:
        out.append(sandbox.hostname)
    return out


def _regex_match(pattern: str, text: str) -> bool:
    """docker's filter ``Match``: equal, or the value as a regular expression found in the text
    (a pattern that does not compile matches nothing)."""
    if pattern == text:
        return True
    try:
        return re.search(pattern, text) is not None
    except re.error:
        return False


def _matches(n: Network, key: str, value: str) -> bool:
    if key == "name":
        return _regex_match(value, n.name)
    if key == "id":
        return _regex_match(value, n.id)
    if key == "driver":
        return n.driver == value
    if key == "type":
        return (value == "builtin") == n.builtin
    if key == "scope":
        return value == "local"
    if key == "label":
        k, sep, v = value.partition("=")
        return k in n.labels and (not sep or n.labels[k] == v)
    if key == "dangling":
        # docker 20.10 decides on the network list, which carries no containers: every user
        # network counts as dangling, in use or not (``network prune`` does look at endpoints)
        return (value.lower() in ("true", "1")) == (not n.builtin)
    raise InvalidArgument(f"Invalid filter '{key}'")


def validate_filters(filters: dict[str, list[str]]) -> None:
    """docker's daemon-side checks of ``network ls`` filters, before anything is listed."""
    for key, values in filters.items():
        if key not in ("name", "id", "driver", "type", "scope", "label", "dangling"):
            raise InvalidArgument(f"Invalid filter '{key}'")
        for v in values:
            if key == "type" and v not in ("custom", "builtin"):
                raise InvalidArgument(f"invalid filter: 'type'='{v}'")
            if key == "dangling" and v.lower() not in ("true", "1", "false", "0"):
                raise InvalidArgument("invalid value for filter 'dangling', must be \"true\" "
                                      "(or \"1\"), or \"false\" (or \"0\")")
