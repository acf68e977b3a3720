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


def parse_filters(values: list[str]) -> dict[str, list[str]]:
    from dockyard.errors import InvalidArgument

    out: dict[str, list[str]] = {}
    for v in values:
        if "=" not in v:
            raise InvalidArgument("bad format of filter (expected name=value)")
        k, val = v.split("=", 1)
        out.setdefault(k.strip().lower(), []).append(val)
    return out


def confirm(ctx: "Context", warning: str) -> bool:
    """docker's prune prompt; anything but y/Y (or no terminal input) means no."""
    ctx.out.write(f"WARNING! {warning}\nAre you sure you want to continue? [y/N] ")
    ctx.out.flush()
    answer = sys.stdin.readline().strip().lower() if sys.stdin else ""
    return answer in ("y", "yes")


def cmd_create(args: argparse.Namespace, ctx: "Context") -> int:
    from dockyard.errors import InvalidArgument, Unsupported

    if args.ipv6:
        raise Unsupported("IPv6 networks are not supported")
    if len(args.subnet) > 1 or len(args.gateway) > 1:
        raise Unsupported("only one --subnet and one --gateway are supported per network")
    if len(args.gateway) > len(args.subnet):
        raise InvalidArgument("every ip-range or gateway must have a corresponding subnet")
    if args.ip_range:
        raise Unsupported("--ip-range is not supported")
    if args.name in ("bridge", "host", "none"):
        from dockyard.errors import Conflict

        raise Conflict("operation is not permitted on predefined "
                       f"{args.name} network" if args.name != "bridge" else
                       "operation is not permitted on predefined bridge network")
    net = ctx.client.networks.create(
        args.name, driver=args.driver, subnet=(args.subnet or [None])[0],
        gateway=(args.gateway or [None])[0], internal=args.internal, attachable=args.attachable,
        labels=key_values(args.label), options=key_values(args.opt))
    ctx.print(net.id)
    return 0


def _row(n: Any, no_trunc: bool) -> dict[str, Any]:
    from dockyard.timeutil import go_time_string, parse_rfc3339

    return {"CreatedAt": go_time_string(parse_rfc3339(n.created) or 0), "Driver": n.driver, "ID": n.id if no_trunc else n.id[:12], "IPv4": "true",
            "IPv6": "false", "Internal": str(n.internal).lower(),
            "Labels": ",".join(f"{k}={v}" for k, v in n.labels.items()), "Name": n.name, "Scope": "local",
            "Label": lambda key: n.labels.get(key, "")}


def cmd_ls(args: argparse.Namespace, ctx: "Context") -> int:
    nets = sorted(ctx.client.networks.list(parse_filters(args.filter)), key=lambda n: n.name)
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
    from dockyard.errors import DockyardError, NotFound

    results, rc = [], 0
    for ref in refs:
        try:
            results.append(action(ref))
        except NotFound as exc:
            if not skip_missing:
                ctx.warn(f"Error: {exc}")
                rc = 1
        except DockyardError as exc:
            ctx.warn(f"Error: {exc}")
            rc = 1
    return results, rc


def cmd_rm(args: argparse.Namespace, ctx: "Context") -> int:
    def remove(ref: str) -> None:
        ctx.client.networks.remove(ref)
        ctx.print(ref)

    return each(ctx, args.networks, remove, skip_missing=args.force)[1]


def cmd_inspect(args: argparse.Namespace, ctx: "Context") -> int:
    from dockyard.cli.inspecting import print_inspect

    found, rc = each(ctx, args.networks, ctx.client.networks.inspect)
    return print_inspect(ctx, found, args.format) or rc


def container_ref(ctx: "Context", ref: str) -> tuple[str, str | None]:
    """(full ID, name) of a container, from the engine."""
    containers = ctx.client.containers
    obj = containers.get(ref)
    cid = getattr(obj, "id", None) or obj["Id"]
    name = getattr(obj, "name", None) or (obj.get("Name") if isinstance(obj, dict) else None)
    return str(cid), (str(name).lstrip("/") if name else None)


def cmd_connect(args: argparse.Namespace, ctx: "Context") -> int:
    cid, name = container_ref(ctx, args.container)
    ctx.client.networks.connect(args.network, cid, name=name, aliases=args.alias, ip=args.ip)
    return 0


def cmd_disconnect(args: argparse.Namespace, ctx: "Context") -> int:
    cid, _ = container_ref(ctx, args.container)
    ctx.client.networks.disconnect(args.network, cid, force=args.force)
    return 0


def cmd_prune(args: argparse.Namespace, ctx: "Context") -> int:
    if not args.force and not confirm(
            ctx, "This will remove all custom networks not used by at least one container."):
        return 0
    removed = ctx.client.networks.prune(parse_filters(args.filter))
    if removed:
        ctx.print("Deleted Networks:")
        for name in removed:
            ctx.print(name)
    return 0
