"""Manage Swarm"""
from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from dockyard.cli.common import add_verb
from dockyard.cli.network import daemon_errors

if TYPE_CHECKING:  # pragma: no cover
    from dockyard.cli.common import Context


def build_parser(sub: Any) -> None:
    add_verb(sub, "init", cmd_init, "Initialize a swarm")
    p = add_verb(sub, "leave", cmd_leave, "Leave the swarm")
    p.add_argument("-f", "--force", action="store_true",
                   help="Force this node to leave the swarm, ignoring warnings")
    p = add_verb(sub, "inspect", cmd_inspect, "Display detailed information on the swarm")
    p.add_argument("-f", "--format", metavar="string", help="Format the output using the given Go template")


@daemon_errors
def cmd_init(args: argparse.Namespace, ctx: "Context") -> int:
    from dockyard.cluster.service import Swarm

    info = Swarm(ctx.client).init()
    ctx.print(f"Swarm initialized: current node ({info.node_id}) is now a manager.")
    ctx.print()
    ctx.print("This is a single-node swarm: the manager and the agent share this host.")
    ctx.print("Joining more nodes is not supported yet.")
    ctx.print()
    return 0


@daemon_errors
def cmd_leave(args: argparse.Namespace, ctx: "Context") -> int:
    from dockyard.cluster.service import Swarm

    Swarm(ctx.client).leave(force=args.force)
    ctx.print("Node left the swarm.")
    return 0


@daemon_errors
def cmd_inspect(args: argparse.Namespace, ctx: "Context") -> int:
    from dockyard.cli.inspecting import print_inspect
    from dockyard.cluster.service import Swarm

    return print_inspect(ctx, [Swarm(ctx.client).inspect()], args.format)
