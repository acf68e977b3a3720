"""Manage Swarm stacks"""
from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from dockyard.cli.common import FORMAT_HELP_TABLE, add_verb
from dockyard.cli.network import daemon_errors

if TYPE_CHECKING:  # pragma: no cover
    from dockyard.cli.common import Context


def build_parser(sub: Any) -> None:
    p = add_verb(sub, "deploy", cmd_deploy, "Deploy a new stack or update an existing stack", aliases=["up"])
    p.add_argument("stack", metavar="STACK")
    p.add_argument("-c", "--compose-file", action="append", default=[], metavar="strings",
                   help="Path to a Compose file, or \"-\" to read from stdin")
    p.add_argument("--prune", action="store_true", help="Prune services that are no longer referenced")
    p.add_argument("-d", "--detach", action="store_true", default=True,
                   help="Exit immediately instead of waiting for the stack services to converge (default true)")

    p = add_verb(sub, "ls", cmd_ls, "List stacks", aliases=["list"])
    p.add_argument("--format", metavar="string", help=FORMAT_HELP_TABLE)

    p = add_verb(sub, "services", cmd_services, "List the services in the stack")
    p.add_argument("stack", metavar="STACK")
    p.add_argument("-q", "--quiet", action="store_true", help="Only display IDs")
    p.add_argument("--format", metavar="string", help=FORMAT_HELP_TABLE)

    p = add_verb(sub, "ps", cmd_ps, "List the tasks in the stack")
    p.add_argument("stack", metavar="STACK")
    p.add_argument("-q", "--quiet", action="store_true", help="Only display task IDs")
    p.add_argument("--no-trunc", action="store_true", help="Do not truncate output")
    p.add_argument("--format", metavar="string", help="Format output using a custom template")

    p = add_verb(sub, "rm", cmd_rm, "Remove one or more stacks", aliases=["remove", "down"])
    p.add_argument("stacks", nargs="+", metavar="STACK")


@daemon_errors
def cmd_deploy(args: argparse.Namespace, ctx: "Context") -> int:
    from dockyard.cluster.stack import deploy
    from dockyard.errors import InvalidArgument

    if not args.compose_file:
        raise InvalidArgument("Please specify a Compose file (with --compose-file)")
    if len(args.compose_file) > 1:
        raise InvalidArgument("only one Compose file is supported here")
    deploy(ctx.client, args.stack, args.compose_file[0], prune=args.prune, say=ctx.print, warn=ctx.warn)
    return 0


@daemon_errors
def cmd_ls(args: argparse.Namespace, ctx: "Context") -> int:
    from dockyard.cli.formatting import format_output
    from dockyard.cluster.stack import stacks

    rows = [{"Name": name, "Services": str(n)} for name, n in sorted(stacks(ctx.client).items())]
    ctx.out.write(format_output(rows, args.format, [("NAME", "Name"), ("SERVICES", "Services")],
                                go_type="*formatter.stackContext"))
    return 0


def _stack(ctx: "Context", name: str) -> tuple[Any, list[Any]]:
    """The stack's services (and the ``Services`` API); docker's note on stderr when it has none."""
    from dockyard.cluster.service import Services
    from dockyard.cluster.stack import stack_services

    services = Services(ctx.client)
    recs = stack_services(services, name)
    if not recs:
        ctx.warn(f"Nothing found in stack: {name}")
    return services, recs


@daemon_errors
def cmd_services(args: argparse.Namespace, ctx: "Context") -> int:
    from dockyard.cli.service import print_services

    _, recs = _stack(ctx, args.stack)
    if recs:
        print_services(ctx, recs, args.format, args.quiet)
    return 0


@daemon_errors
def cmd_ps(args: argparse.Namespace, ctx: "Context") -> int:
    from dockyard.cli.service import print_tasks, task_rows

    services, recs = _stack(ctx, args.stack)
    if recs:
        print_tasks(ctx, task_rows(ctx, services, recs, args.no_trunc), args.format, args.quiet, services, recs)
    return 0 if recs else 1


@daemon_errors
def cmd_rm(args: argparse.Namespace, ctx: "Context") -> int:
    from dockyard.cluster.stack import remove

    for name in args.stacks:
        if not remove(ctx.client, name, say=ctx.print):
            ctx.warn(f"Nothing found in stack: {name}")
    return 0
