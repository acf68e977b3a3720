"""Manage Swarm nodes"""
from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from dockyard.cli.common import FORMAT_HELP_TABLE, add_verb
from dockyard.cli.network import daemon_errors

if TYPE_CHECKING:  # pragma: no cover
    from dockyard.cli.common import Context

COLUMNS = [("ID", "ID"), ("HOSTNAME", "Hostname"), ("STATUS", "Status"), ("AVAILABILITY", "Availability"),
           ("MANAGER STATUS", "ManagerStatus"), ("ENGINE VERSION", "EngineVersion")]


def build_parser(sub: Any) -> None:
    p = add_verb(sub, "ls", cmd_ls, "List nodes in the swarm", aliases=["list"])
    p.add_argument("-q", "--quiet", action="store_true", help="Only display IDs")
    p.add_argument("--format", metavar="string", help=FORMAT_HELP_TABLE)
    p = add_verb(sub, "inspect", cmd_inspect, "Display detailed information on one or more nodes")
    p.add_argument("nodes", nargs="+", metavar="self|NODE")
    p.add_argument("-f", "--format", metavar="string", help="Format the output using the given Go template")


@daemon_errors
def cmd_ls(args: argparse.Namespace, ctx: "Context") -> int:
    from dockyard.cli.formatting import format_output
    from dockyard.cluster.service import Nodes

    nodes = Nodes(ctx.client).list()
    if args.quiet:
        for n in nodes:
            ctx.print(n["ID"])
        return 0
    rows = [{"ID": n["ID"] + " *", "Self": True, "Hostname": n["Description"]["Hostname"],
             "Status": n["Status"]["State"].capitalize(), "Availability": n["Spec"]["Availability"].capitalize(),
             "ManagerStatus": "Leader", "EngineVersion": n["Description"]["Engine"]["EngineVersion"],
             "TLSStatus": "Ready"} for n in nodes]
    ctx.out.write(format_output(rows, args.format, COLUMNS, go_type="*formatter.nodeContext"))
    return 0


@daemon_errors
def cmd_inspect(args: argparse.Namespace, ctx: "Context") -> int:
    from dockyard.cli.inspecting import print_inspect
    from dockyard.cluster.service import Nodes
    from dockyard.errors import NotFound

    nodes = Nodes(ctx.client).list()
    found = []
    for ref in args.nodes:
        match = [n for n in nodes if ref == "self" or n["ID"].startswith(ref) or n["Description"]["Hostname"] == ref]
        if not match:
            raise NotFound(f"node {ref} not found")
        found += match
    return print_inspect(ctx, found, args.format)
