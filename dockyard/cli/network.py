"""Manage networks"""
from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from dockyard.cli.common import add_verb

if TYPE_CHECKING:  # pragma: no cover
    from dockyard.cli.common import Context

LS_COLUMNS = [("NETWORK ID", "ID"), ("NAME", "Name"), ("DRIVER", "Driver"), ("SCOPE", "Scope")]
HEADERS = {"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE",
           "IPv6": "IPV6", "Internal": "INTERNAL", "Labels": "LABELS", "CreatedAt": "CREATED AT"}


def build_parser(sub: Any) -> None:
    p = add_verb(sub, "create", cmd_create, "Create a network")
    p.add_argument("name", metavar="NETWORK")
    p.add_argument("-d", "--driver", default="bridge", help='Driver to manage the Network (default "bridge")')
    p.add_argument("--subnet", action="append", default=[], help="Subnet in CIDR format that represents a network segment")
    p.add_argument("--gateway", action="append", default=[], help="IPv4 Gateway for the master subnet")
    p.add_argument("--internal", action="store_true", help="Restrict external access to the network")
    p.add_argument("--attachable", action="store_true", help="Enable manual container attachment")
    p.add_argument("--label", action="append", default=[], help="Set metadata on a network")
    p.add_argument("-o", "--opt", action="append", default=[], help="Set driver specific options")
    p.add_argument("--ipv6", action="store_true", help="Enable IPv6 networking")
    p.add_argument("--ip-range", action="append", default=[], help="Allocate container ip from a sub-range")
    p.add_argument("--aux-address", action="append", default=[],
                   help="Auxiliary IPv4 or IPv6 addresses used by Network driver")
    p.add_argument("--ipam-driver", default="default", help='IP Address Management Driver (default "default")')
    p.add_argument("--ipam-opt", action="append", default=[], help="Set IPAM driver specific options")
    p.add_argument("--scope", default="", help="Control the network's scope")
    p.add_argument("--ingress", action="store_true", help="Create swarm routing-mesh network")
    p.add_argument("--config-only", action="store_true", help="Create a configuration only network")
    p.add_argument("--config-from", default="", help="The network from which to copy the configuration")

    p = add_verb(sub, "ls", cmd_ls, "List networks", aliases=["list"])
    p.add_argument("-f", "--filter", action="append", default=[], help="Provide filter values (e.g. 'driver=bridge')")
    p.add_argument("--format", help="Pretty-print networks using a Go template")
    p.add_argument("--no-trunc", action="store_true", help="Do not truncate the output")
    p.add_argument("-q", "--quiet", action="store_true", help="Only display network IDs")

    p = add_verb(sub, "rm", cmd_rm, "Remove one or more networks", aliases=["remove"])
    p.add_argument("networks", nargs="+", metavar="NETWORK")
    p.add_argument("-f", "--force", action="store_true", help="Do not error if the network does not exist")

    p = add_verb(sub, "inspect", cmd_inspect, "Display detailed information on one or more networks")
    p.add_argument("networks", nargs="+", metavar="NETWORK")
    p.add_argument("-f", "--format", help="Format the output using the given Go template")
    p.add_argument("-v", "--verbose", action="store_true", help="Verbose output for diagnostics")

    p = add_verb(sub, "connect", cmd_connect, "Connect a container to a network")
    p.add_argument("network", metavar="NETWORK")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("--alias", action="append", default=[], help="Add network-scoped alias for the container")
    p.add_argument("--ip", help="IPv4 address (e.g., 172.30.100.104)")
    p.add_argument("--ip6", help="IPv6 address (e.g., 2001:db8::33)")
    p.add_argument("--link", action="append", default=[], help="Add link to another container")
    p.add_argument("--link-local-ip", action="append", default=[], help="Add a link-local address for the container")
    p.add_argument("--driver-opt", action="append", default=[], help="driver options for the network")

    p = add_verb(sub, "disconnect", cmd_disconnect, "Disconnect a container from a network")
    p.add_argument("network", metavar="NETWORK")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("-f", "--force", action="store_true", help="Force the container to disconnect from a network")

    p = add_verb(sub, "prune", cmd_prune, "Remove all unused networks")
    p.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    p.add_argument("--filter", action="append", default=[], help="Provide filter values (e.g. 'until=<timestamp>')")


def key_values(values: list[str]) -> dict[str, str]:
    """``--label a=b`` / ``--opt k=v`` lists (a bare key gets an empty value, as in docker)."""
    out: dict[str, str] = {}
    for v in values:
        k, _, val = v.partition("=")
        out[k] = val
    return out


def parse_filters(values: list[str], command: str = "", flag: str = "-f, --filter") -> dict[str, list[str]]:
    """``--filter k=v`` values; a value without ``=`` is docker CLI's flag error (exit 125,
    with the usage line of ``command``, e.g. ``network ls``)."""
    from dockyard.errors import InvalidArgument

    out: dict[str, list[str]] = {}
    for v in values:
        if "=" not in v:
            why = f'invalid argument "{v}" for "{flag}" flag: bad format of filter (expected name=value)'
            if not command:
                raise InvalidArgument(why)
            raise _bare(InvalidArgument(
                f"{why}\n\nUsage:  dockyard {command} [OPTIONS]\n\n"
                f"Run 'dockyard {command} --help' for more information", exit_code=125))
        k, val = v.split("=", 1)
        out.setdefault(k.strip().lower(), []).append(val)
    return out


def daemon_errors(fn: Any) -> Any:
    """A handler whose service failures print as docker prints its daemon's
    (``Error response from daemon: ...``); errors that say how they are shown keep it."""
    import functools

    @functools.wraps(fn)
    def handler(args: argparse.Namespace, ctx: "Context") -> Any:
        from dockyard.cli.common import DAEMON_PREFIX, shown_as
        from dockyard.errors import DockyardError

        try:
            return fn(args, ctx)
        except DockyardError as exc:
            raise shown_as(exc, DAEMON_PREFIX) from None
    return handler


def confirm(ctx: "Context", warning: str) -> bool:
    """docker's prune prompt; anything but y/Y (or no terminal input) means no."""
    ctx.out.write(f"WARNING! {warning}\nAre you sure you want to continue? [y/N] ")
    ctx.out.flush()
    answer = sys.stdin.readline().strip().lower() if sys.stdin else ""
    return answer in ("y", "yes")


def _bare(exc: Any) -> Any:
    """docker's CLI prints its own validation errors without ``Error:``."""
    exc.cli_prefix = ""
    return exc


def _cidr_contains(subnet: str, data: str) -> bool:
    """docker CLI's ``subnetMatches``: is ``data`` (an address or a CIDR) inside ``subnet``."""
    import ipaddress

    from dockyard.errors import InvalidArgument

    try:
        net = ipaddress.ip_network(subnet, strict=False)
    except ValueError:
        raise _bare(InvalidArgument(f"invalid subnet: invalid CIDR address: {subnet}")) from None
    try:
        ip = ipaddress.ip_interface(data).ip if "/" in data else ipaddress.ip_address(data)
    except ValueError:
        if "/" in data:
            raise _bare(InvalidArgument(f"invalid CIDR address: {data}")) from None
        return False
    return ip in net


def consolidate_ipam(subnets: list[str], ranges: list[str], gateways: list[str],
                     aux: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """docker CLI's ``consolidateIpam``: pair every --ip-range and --gateway with its
    --subnet, with the CLI's own (unprefixed) messages."""
    from dockyard.errors import InvalidArgument

    if len(subnets) < len(ranges) or len(subnets) < len(gateways):
        raise _bare(InvalidArgument("every ip-range or gateway must have a corresponding subnet"))
    data: dict[str, dict[str, str]] = {}
    for s in subnets:
        for k in data:
            if _cidr_contains(s, k) or _cidr_contains(k, s):
                raise _bare(InvalidArgument("multiple overlapping subnet configuration is not allowed"))
        data[s] = {"Subnet": s}
    for kind, values in (("IPRange", ranges), ("Gateway", gateways)):
        for r in values:
            match = False
            for s in subnets:
                if not _cidr_contains(s, r):
                    continue
                if kind in data[s]:
                    what = "ranges" if kind == "IPRange" else "gateways"
                    raise _bare(InvalidArgument(
                        f"cannot configure multiple {what} ({r}, {data[s][kind]}) "
                        f"{'on' if kind == 'IPRange' else 'for'} the same subnet ({s})"))
                data[s][kind] = r
                match = True
            if not match:
                word = "range" if kind == "IPRange" else "gateway"
                raise _bare(InvalidArgument(f"no matching subnet for {word} {r}"))
    out: list[dict[str, Any]] = list(data.values())
    for key, address in (aux or {}).items():
        hits = [d for s, d in data.items() if _cidr_contains(s, address)]
        if not hits:
            raise _bare(InvalidArgument(f"no matching subnet for aux-address {address}"))
        for d in hits:
            d.setdefault("AuxiliaryAddresses", {})[key] = address
    return out


def split_families(config: list[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """IPAM configs as (IPv4, IPv6s): a bridge network takes one IPv4 subnet (dockerd takes
    several IPv6 ones and uses the first)."""
    from dockyard.errors import InvalidArgument

    v4 = [c for c in config if ":" not in c.get("Subnet", "")]
    v6 = [c for c in config if ":" in c.get("Subnet", "")]
    if len(v4) > 1:
        raise InvalidArgument("bridge driver doesn't support multiple subnets")
    return (v4[0] if v4 else {}), v6


@daemon_errors
def cmd_create(args: argparse.Namespace, ctx: "Context") -> int:
    from dockyard.errors import Conflict, InvalidArgument

    config = consolidate_ipam(args.subnet, args.ip_range, args.gateway, key_values(args.aux_address))
    if args.name in ("bridge", "host", "none"):
        raise Conflict(f"operation is not permitted on predefined {args.name} network")
    ipam, ipam6 = split_families(config)
    net = ctx.client.networks.create(
        args.name, driver=args.driver, subnet=ipam.get("Subnet"), gateway=ipam.get("Gateway"),
        ip_range=ipam.get("IPRange"), internal=args.internal, attachable=args.attachable,
        labels=key_values(args.label), options=key_values(args.opt),
        aux_addresses=ipam.get("AuxiliaryAddresses"), ipam_driver=args.ipam_driver,
        ipam_options=key_values(args.ipam_opt), scope=args.scope, ingress=args.ingress,
        config_only=args.config_only, config_from=args.config_from or None, ipv6=args.ipv6,
        subnet6=ipam6[0].get("Subnet") if ipam6 else None,
        gateway6=ipam6[0].get("Gateway") if ipam6 else None, more6=ipam6[1:])
    from dockyard.engine.events import emit_network

    emit_network(ctx.client, "create", net)
    ctx.print(net.id)
    return 0


def go_time_text(rfc3339: str) -> str:
    """Go's ``time.Time.String()`` of a stored RFC 3339 UTC time, every digit of the fraction
    kept (a float would lose the nanoseconds docker shows)."""
    import re

    m = re.match(r"^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)(\.\d+)?Z$", rfc3339 or "")
    if not m:
        from dockyard.timeutil import go_time_string, parse_rfc3339

        return go_time_string(parse_rfc3339(rfc3339) or 0)
    frac = (m.group(3) or "").rstrip("0").rstrip(".")
    return f"{m.group(1)} {m.group(2)}{frac} +0000 UTC"


def _row(n: Any, no_trunc: bool) -> dict[str, Any]:
    # IPv4 is "false": docker 28's CLI reads EnableIPv4, which a 20.10 daemon does not send
    return {"CreatedAt": go_time_text(n.created), "Driver": n.driver, "ID": n.id if no_trunc else n.id[:12], "IPv4": "false",
            "IPv6": "false", "Internal": str(n.internal).lower(),
            "Labels": ",".join(f"{k}={v}" for k, v in n.labels.items()), "Name": n.name, "Scope": "local",
            "Label": lambda key: n.labels.get(key, "")}


@daemon_errors
def cmd_ls(args: argparse.Namespace, ctx: "Context") -> int:
    filters = parse_filters(args.filter, "network ls")
    nets = sorted(ctx.client.networks.list(filters), key=lambda n: n.name)
    if args.quiet:
        for n in nets:
            ctx.print(n.id if args.no_trunc else n.id[:12])
        return 0
    from dockyard.cli.formatting import format_output

    out = format_output([_row(n, args.no_trunc) for n in nets], args.format, LS_COLUMNS, HEADERS,
                        go_type="*network.networkContext")
    if out:
        ctx.out.write(out if out.endswith("\n") else out + "\n")
    return 0


def each(ctx: "Context", refs: list[str], action: Any, skip_missing: bool = False) -> tuple[list[Any], int]:
    """Run ``action`` on every ref as docker does for rm/inspect: report each failure on its own
    line and go on; exit code 1 if any failed. Returns (results, exit code)."""
    from dockyard.cli.common import DAEMON_PREFIX, shown_as
    from dockyard.errors import DockyardError, NotFound

    results, rc = [], 0
    for ref in refs:
        try:
            results.append(action(ref))
        except NotFound as exc:
            if not skip_missing:
                ctx.warn(f"{shown_as(exc, DAEMON_PREFIX).cli_prefix}{exc}")
                rc = 1
        except DockyardError as exc:
            ctx.warn(f"{shown_as(exc, DAEMON_PREFIX).cli_prefix}{exc}")
            rc = 1
    return results, rc


def cmd_rm(args: argparse.Namespace, ctx: "Context") -> int:
    def remove(ref: str) -> None:
        from dockyard.engine.events import emit_network

        net = ctx.client.networks.remove(ref)
        if net is not None:
            emit_network(ctx.client, "destroy", net)
        ctx.print(ref)

    rc = each(ctx, args.networks, remove, skip_missing=args.force)[1]
    if rc:
        ctx.warn("exit status 1")  # docker 28's CLI adds this line after network rm failures
    return rc


def cmd_inspect(args: argparse.Namespace, ctx: "Context") -> int:
    """As docker's CLI: a ``--format`` template runs on the typed ``network.Inspect`` (``.ID``,
    ``.Created`` as a Go time, ``{{.IPAM.Config}}`` as structs, ``.Peers``/``.Services``) and,
    where that fails, on the raw JSON (``.Id``)."""
    from dockyard.cli.formatting import TemplateError, parse
    from dockyard.cli.inspecting import print_inspect

    found, rc = each(ctx, args.networks, ctx.client.networks.inspect)
    if args.format and found:
        try:
            template = parse(args.format)
            out = [template.execute(typed_network(doc), missing_error=True) + "\n" for doc in found]
        except TemplateError:
            pass
        else:
            ctx.out.write("".join(out))
            return rc
    return print_inspect(ctx, found, args.format) or rc


class _Typed(dict):
    """A Go struct for templates: its fields in order; ``json_view`` is how it marshals (JSON
    names that differ from field names, ``omitempty`` fields left out)."""

    json_view: Any = None


class _GoTime(str):
    """A ``time.Time``: prints as Go's ``String()``, marshals as RFC 3339."""

    json_view: Any = None


def typed_network(doc: dict[str, Any]) -> dict[str, Any]:
    """An inspect document as docker 28's ``network.Inspect``."""
    from dockyard.cli.image import _go_map

    def struct(fields: dict[str, Any], json_view: dict[str, Any] | None = None) -> _Typed:
        out = _Typed(fields)
        out.json_view = json_view
        return out

    ipam = doc.get("IPAM") or {}
    configs = []
    for c in ipam.get("Config") or []:
        fields = {"Subnet": c.get("Subnet", ""), "IPRange": c.get("IPRange", ""),
                  "Gateway": c.get("Gateway", ""), "AuxAddress": _go_map(c.get("AuxiliaryAddresses"))}
        view = {k: v for k, v in (("Subnet", fields["Subnet"]), ("IPRange", fields["IPRange"]),
                                  ("Gateway", fields["Gateway"]),
                                  ("AuxiliaryAddresses", c.get("AuxiliaryAddresses"))) if v}
        configs.append(struct(fields, view))
    created = _GoTime(go_time_text(doc.get("Created", "")))
    created.json_view = doc.get("Created", "")
    containers = _go_map({k: struct({"Name": v.get("Name", ""), "EndpointID": v.get("EndpointID", ""),
                                     "MacAddress": v.get("MacAddress", ""),
                                     "IPv4Address": v.get("IPv4Address", ""),
                                     "IPv6Address": v.get("IPv6Address", "")})
                          for k, v in (doc.get("Containers") or {}).items()})
    fields = {
        "Name": doc["Name"], "ID": doc["Id"], "Created": created, "Scope": doc.get("Scope", ""),
        "Driver": doc.get("Driver", ""), "EnableIPv4": False, "EnableIPv6": bool(doc.get("EnableIPv6")),
        "IPAM": struct({"Driver": ipam.get("Driver", ""), "Options": _go_map(ipam.get("Options")),
                        "Config": configs}),
        "Internal": bool(doc.get("Internal")), "Attachable": bool(doc.get("Attachable")),
        "Ingress": bool(doc.get("Ingress")),
        "ConfigFrom": struct({"Network": (doc.get("ConfigFrom") or {}).get("Network", "")}),
        "ConfigOnly": bool(doc.get("ConfigOnly")), "Containers": containers,
        "Options": _go_map(doc.get("Options")), "Labels": _go_map(doc.get("Labels")),
        "Peers": [], "Services": _go_map({}),
    }
    view = {("Id" if k == "ID" else k): v for k, v in fields.items() if k not in ("Peers", "Services")}
    return struct(fields, view)


def container_ref(ctx: "Context", ref: str) -> tuple[str, str | None, str | None]:
    """(full ID, name, NetworkMode) of a container, from the engine."""
    containers = ctx.client.containers
    obj = containers.get(ref)
    cid = getattr(obj, "id", None) or obj["Id"]
    name = getattr(obj, "name", None) or (obj.get("Name") if isinstance(obj, dict) else None)
    record = getattr(obj, "record", None)
    mode = (getattr(record, "host_config", None) or {}).get("NetworkMode") if record else None
    if mode == "default":
        mode = "bridge"
    return str(cid), (str(name).lstrip("/") if name else None), mode


@daemon_errors
def cmd_connect(args: argparse.Namespace, ctx: "Context") -> int:
    cid, name, mode = container_ref(ctx, args.container)
    ctx.client.networks.connect(args.network, cid, name=name, aliases=args.alias, ip=args.ip,
                                mode=mode, ip6=args.ip6)
    from dockyard.engine.events import emit_network

    emit_network(ctx.client, "connect", ctx.client.networks.get(args.network), cid)
    return 0


@daemon_errors
def cmd_disconnect(args: argparse.Namespace, ctx: "Context") -> int:
    cid, _, _ = container_ref(ctx, args.container)
    ctx.client.networks.disconnect(args.network, cid, force=args.force)
    from dockyard.engine.events import emit_network

    emit_network(ctx.client, "disconnect", ctx.client.networks.get(args.network), cid)
    return 0


@daemon_errors
def cmd_prune(args: argparse.Namespace, ctx: "Context") -> int:
    if not args.force and not confirm(
            ctx, "This will remove all custom networks not used by at least one container."):
        return 0
    removed = ctx.client.networks.prune(parse_filters(args.filter, "network prune", "--filter"))
    from dockyard.engine.events import emit, emit_prune

    for name in removed:  # the service returns names: the destroy events name them
        emit(ctx.client, "network", "destroy", name, {"name": name})
    emit_prune(ctx.client, "network", 0)
    if removed:
        ctx.print("Deleted Networks:")
        for name in removed:
            ctx.print(name)
        ctx.print()  # docker ends the list with an empty line
    return 0
