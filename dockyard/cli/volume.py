"""Manage volumes"""
from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from dockyard.cli.common import add_verb
from dockyard.cli.network import daemon_errors

if TYPE_CHECKING:  # pragma: no cover
    from dockyard.cli.common import Context

LS_COLUMNS = [("DRIVER", "Driver"), ("VOLUME NAME", "Name")]
HEADERS = {"Driver": "DRIVER", "Name": "VOLUME NAME", "Mountpoint": "MOUNTPOINT",
           "Labels": "LABELS", "Scope": "SCOPE", "CreatedAt": "CREATED AT"}


def build_parser(sub: Any) -> None:
    p = add_verb(sub, "create", cmd_create, "Create a volume")
    p.add_argument("name", nargs="?", metavar="VOLUME")
    p.add_argument("--name", dest="name_flag", help="Specify volume name")
    p.add_argument("-d", "--driver", default="local", help='Specify volume driver name (default "local")')
    p.add_argument("--label", action="append", default=[], help="Set metadata for a volume")
    p.add_argument("-o", "--opt", action="append", default=[], help="Set driver specific options")

    p = add_verb(sub, "ls", cmd_ls, "List volumes", aliases=["list"])
    p.add_argument("-f", "--filter", action="append", default=[], help="Provide filter values (e.g. 'dangling=true')")
    p.add_argument("--format", help="Pretty-print volumes using a Go template")
    p.add_argument("-q", "--quiet", action="store_true", help="Only display volume names")

    p = add_verb(sub, "rm", cmd_rm, "Remove one or more volumes", aliases=["remove"])
    p.add_argument("volumes", nargs="+", metavar="VOLUME")
    p.add_argument("-f", "--force", action="store_true", help="Force the removal of one or more volumes")

    p = add_verb(sub, "inspect", cmd_inspect, "Display detailed information on one or more volumes")
    p.add_argument("volumes", nargs="+", metavar="VOLUME")
    p.add_argument("-f", "--format", help="Format the output using the given Go template")

    p = add_verb(sub, "prune", cmd_prune, "Remove all unused local volumes")
    p.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    p.add_argument("-a", "--all", action="store_true", help="Remove all unused volumes, not just anonymous ones")
    p.add_argument("--filter", action="append", default=[], help="Provide filter values (e.g. 'label=<label>')")


@daemon_errors
def cmd_create(args: argparse.Namespace, ctx: "Context") -> int:
    from dockyard.cli.network import key_values
    from dockyard.errors import InvalidArgument

    if args.name and args.name_flag and args.name != args.name_flag:
        exc = InvalidArgument("conflicting options: cannot specify a volume-name through both "
                              "--name and as a positional arg")
        exc.cli_prefix = ""  # a CLI-side check: docker prints it bare
        raise exc
    vol = ctx.client.volumes.create(args.name or args.name_flag, driver=args.driver,
                                    labels=key_values(args.label),
                                    options=key_values(args.opt) or None)
    from dockyard.engine.events import emit_volume

    emit_volume(ctx.client, "create", vol.name, vol.driver)
    ctx.print(vol.name)
    return 0


@daemon_errors
def cmd_ls(args: argparse.Namespace, ctx: "Context") -> int:
    from dockyard.cli.network import parse_filters

    vols = ctx.client.volumes.list(parse_filters(args.filter, "volume ls"))
    if args.quiet:
        for v in vols:
            ctx.print(v.name)
        return 0
    from dockyard.cli.formatting import format_output

    # docker's volumeContext: the cluster-volume fields are N/A locally, Size without -v too
    rows = [{"Availability": "N/A", "Driver": v.driver, "Group": "N/A",
             "Labels": ",".join(f"{k}={val}" for k, val in (v.labels or {}).items()),
             "Links": "N/A", "Mountpoint": v.mountpoint, "Name": v.name, "Scope": "local", "Size": "N/A",
             "Status": "N/A", "Label": lambda key, labels=v.labels or {}: labels.get(key, "")} for v in vols]
    out = format_output(rows, args.format, LS_COLUMNS, HEADERS, go_type="*formatter.volumeContext")
    if out:
        ctx.out.write(out if out.endswith("\n") else out + "\n")
    return 0


def cmd_rm(args: argparse.Namespace, ctx: "Context") -> int:
    from dockyard.cli.network import each

    def remove(name: str) -> None:
        from dockyard.engine.events import emit_volume

        ctx.client.volumes.remove(name, force=args.force)
        emit_volume(ctx.client, "destroy", name)
        ctx.print(name)

    return each(ctx, args.volumes, remove)[1]


def cmd_inspect(args: argparse.Namespace, ctx: "Context") -> int:
    from dockyard.cli.inspecting import print_inspect
    from dockyard.cli.network import each

    found, rc = each(ctx, args.volumes, ctx.client.volumes.inspect)
    return print_inspect(ctx, found, args.format) or rc


@daemon_errors
def cmd_prune(args: argparse.Namespace, ctx: "Context") -> int:
    from dockyard.cli.network import confirm, parse_filters

    if not args.force and not confirm(
            ctx, "This will remove all local volumes not used by at least one container."):
        return 0
    removed, space = ctx.client.volumes.prune(parse_filters(args.filter, "volume prune", "--filter"))
    from dockyard.engine.events import emit_prune, emit_volume

    for name in removed:
        emit_volume(ctx.client, "destroy", name)
    emit_prune(ctx.client, "volume", space)
    if removed:
        ctx.print("Deleted Volumes:")
        for name in removed:
            ctx.print(name)
        ctx.print()
    from dockyard.cli.formatting import human_size

    ctx.print(f"Total reclaimed space: {human_size(space)}")
    return 0
