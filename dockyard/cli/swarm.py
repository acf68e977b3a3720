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
    p = add_verb(sub, "join", cmd_join, "Join a swarm as a node and/or manager")
    p.add_argument("address", metavar="HOST:PORT")
    p.add_argument("--token", metavar="string", help="Token for entry into the swarm")


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


def cmd_join(args: argparse.Namespace, ctx: "Context") -> int:
    from dockyard.errors import Unsupported

    raise Unsupported("joining a swarm is not supported yet: a dockyard swarm is a single node "
                      "(run 'dockyard swarm init' on this host)")
