"""Manage images"""
from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

from dockyard.cli.common import add_verb

if TYPE_CHECKING:  # pragma: no cover
    from dockyard.cli.common import Context

LS_COLUMNS = [("REPOSITORY", "Repository"), ("TAG", "Tag"), ("IMAGE ID", "ID"),
              ("CREATED", "CreatedSince"), ("SIZE", "Size")]
HEADERS = {"Repository": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID", "Digest": "DIGEST",
           "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE",
           "VirtualSize": "VIRTUAL SIZE", "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE",
           "Containers": "CONTAINERS"}


def build_parser(sub: Any) -> None:
    p = add_verb(sub, "ls", cmd_ls, "List images", aliases=["list"])
    p.add_argument("repository", nargs="?", metavar="REPOSITORY[:TAG]")
    p.add_argument("-a", "--all", action="store_true", help="Show all images (default hides intermediate images)")
    p.add_argument("--digests", action="store_true", help="Show digests")
    p.add_argument("-f", "--filter", action="append", default=[], help="Filter output based on conditions provided")
    p.add_argument("--format", help="Format output using a custom template ('table', 'json', or a Go template)")
    p.add_argument("--no-trunc", action="store_true", help="Don't truncate output")
    p.add_argument("-q", "--quiet", action="store_true", help="Only show image IDs")

    p = add_verb(sub, "tag", cmd_tag, "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE")
    p.add_argument("source", metavar="SOURCE_IMAGE[:TAG]")
    p.add_argument("target", metavar="TARGET_IMAGE[:TAG]")

    p = add_verb(sub, "rm", cmd_rm, "Remove one or more images", aliases=["remove", "rmi"])
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("-f", "--force", action="store_true", help="Force removal of the image")
    p.add_argument("--no-prune", action="store_true", help="Do not delete untagged parents")

    p = add_verb(sub, "inspect", cmd_inspect, "Display detailed information on one or more images")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("-f", "--format", help="Format output using a custom template")

    p = add_verb(sub, "history", cmd_history, "Show the history of an image")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("-H", "--human", default="true", nargs="?", const="true",
                   help="Print sizes and dates in human readable format (default true)")
    p.add_argument("--no-trunc", action="store_true", help="Don't truncate output")
    p.add_argument("-q", "--quiet", action="store_true", help="Only show image IDs")
    p.add_argument("--format", help="Format output using a custom template")

    p = add_verb(sub, "prune", cmd_prune, "Remove unused images")
    p.add_argument("-a", "--all", action="store_true", help="Remove all unused images, not just dangling ones")
    p.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    p.add_argument("--filter", action="append", default=[], help="Provide filter values (e.g. 'until=<timestamp>')")

    p = add_verb(sub, "import", cmd_import, "Import the contents from a tarball to create a filesystem image")
    p.add_argument("file", metavar="file|URL|-")
    p.add_argument("repository", nargs="?", metavar="REPOSITORY[:TAG]")
    p.add_argument("-c", "--change", action="append", default=[], help="Apply Dockerfile instruction to the created image")
    p.add_argument("-m", "--message", default="", help="Set commit message for imported image")
    p.add_argument("--platform", help="Set platform if server is multi-platform capable")

    p = add_verb(sub, "load", cmd_load, "Load an image from a tar archive or STDIN")
    p.add_argument("-i", "--input", help="Read from tar archive file, instead of STDIN")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress the load output")
    p.add_argument("--platform", help="Load only the given platform of a multi-platform image")

    p = add_verb(sub, "save", cmd_save, "Save one or more images to a tar archive (streamed to STDOUT by default)")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("-o", "--output", help="Write to a file, instead of STDOUT")
    p.add_argument("--format", default="docker", choices=["docker", "oci"],
                   help="Archive format: docker (docker-archive + OCI layout, the default) or oci")

    p = add_verb(sub, "busybox", cmd_busybox,
                 "Make a busybox image offline from the host's busybox-static (for tests and demos)")
    p.add_argument("name", nargs="?", default="busybox:latest", metavar="NAME[:TAG]")
    p.add_argument("--busybox", help="Path of a static busybox binary (default /bin/busybox)")

    for optional in ("dockyard.cli.builder:add_build_verb", "dockyard.cli.distribution:add_pull_verb",
                     "dockyard.cli.distribution:add_push_verb"):
        _add_optional_verb(sub, optional)


def _add_optional_verb(sub: Any, target: str) -> None:
    """Verbs that other packages provide (build, pull, push), wired when they are present."""
    import importlib

    module_name, func = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        return
    getattr(module, func)(sub)


# -- handlers ---------------------------------------------------------------------------------------
def _image_rows(ctx: "Context", args: argparse.Namespace) -> list[dict[str, Any]]:
    from dockyard.cli.formatting import ago, human_size
    from dockyard.content.digest import short_id
    from dockyard.image.filters import parse_filters
    from dockyard.image.reference import parse
    from dockyard import timeutil

    filters = parse_filters(args.filter)
    if args.repository:
        filters.setdefault("reference", []).append(args.repository)
    images = ctx.client.images.list(all=args.all, filters=filters)
    rows: list[dict[str, Any]] = []
    for image in images:
        created = timeutil.parse_rfc3339(image.created) or 0
        image_id = image.id if args.no_trunc else short_id(image.id)
        base = {"ID": image_id, "CreatedSince": ago(created) if created else "N/A",
                "CreatedAt": _created_at(created), "Size": human_size(image.size),
                "VirtualSize": human_size(image.size), "SharedSize": "N/A", "UniqueSize": "N/A",
                "Containers": "N/A"}
        digests = {d.split("@", 1)[0]: d.split("@", 1)[1] for d in image.repo_digests}
        names = image.repo_tags or []
        if not names:
            repo_only = list(digests) or ["<none>"]
            for repo in repo_only:
                rows.append({**base, "Repository": repo, "Tag": "<none>", "Digest": digests.get(repo, "<none>")})
            continue
        for tag in names:
            ref = parse(tag)
            rows.append({**base, "Repository": ref.familiar_name, "Tag": ref.tag or "<none>",
                         "Digest": digests.get(ref.familiar_name, "<none>")})
    return rows


def _created_at(ts: float) -> str:
    import time

    if not ts:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S %z %Z", time.localtime(ts))


def cmd_ls(args: argparse.Namespace, ctx: "Context") -> int:
    from dockyard.cli.formatting import format_output

    rows = _image_rows(ctx, args)
    if args.quiet:
        seen: list[str] = []
        for r in rows:
            if r["ID"] not in seen:
                seen.append(r["ID"])
        for i in seen:
            ctx.print(i)
        return 0
    columns = list(LS_COLUMNS)
    if args.digests:
        columns.insert(2, ("DIGEST", "Digest"))
    out = format_output(rows, args.format, columns, HEADERS, go_type="*formatter.imageContext")
    if out:
        ctx.out.write(out if out.endswith("\n") else out + "\n")
    return 0


def cmd_tag(args: argparse.Namespace, ctx: "Context") -> int:
    ctx.client.images.tag(args.source, args.target)
    return 0


def cmd_rm(args: argparse.Namespace, ctx: "Context") -> int:
    from dockyard.errors import DockyardError

    rc = 0
    for name in args.images:
        try:
            for rec in ctx.client.images.remove(name, force=args.force, prune=not args.no_prune):
                for k, v in rec.items():
                    ctx.print(f"{k}: {v}")
        except DockyardError as exc:
            ctx.warn(f"Error: {exc.message}")
            rc = exc.exit_code or 1
    return rc


def cmd_inspect(args: argparse.Namespace, ctx: "Context") -> int:
    from dockyard.errors import DockyardError

    found, errors = [], []
    for name in args.images:
        try:
            found.append(ctx.client.images.inspect(name))
        except DockyardError as exc:
            errors.append(exc)
    from dockyard.cli.inspecting import print_inspect

    rc = print_inspect(ctx, found, args.format)
    for exc in errors:
        ctx.warn(f"Error: {exc.message}")
    return 1 if errors else rc


def cmd_history(args: argparse.Namespace, ctx: "Context") -> int:
    from dockyard.cli.formatting import ago, format_output, human_size
    from dockyard.content.digest import short_id

    human = str(args.human).lower() not in ("false", "0")
    rows = []
    for h in ctx.client.images.history(args.image):
        image_id = h["Id"] if args.no_trunc or h["Id"] == "<missing>" else short_id(h["Id"])
        created_by = h["CreatedBy"]
        if not args.no_trunc and len(created_by) > 45:
            created_by = created_by[:44] + "…"
        rows.append({"ID": image_id, "CreatedSince": ago(h["Created"]) if human else str(h["Created"]),
                     "CreatedAt": _created_at(h["Created"]), "CreatedBy": created_by,
                     "Size": human_size(h["Size"]) if human else str(h["Size"]), "Comment": h["Comment"]})
    if args.quiet:
        for r in rows:
            ctx.print(r["ID"])
        return 0
    columns = [("IMAGE", "ID"), ("CREATED", "CreatedSince"), ("CREATED BY", "CreatedBy"),
               ("SIZE", "Size"), ("COMMENT", "Comment")]
    headers = {"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
               "CreatedBy": "CREATED BY", "Size": "SIZE", "Comment": "COMMENT"}
    out = format_output(rows, args.format, columns, headers, go_type="*image.historyContext")
    if out:
        ctx.out.write(out if out.endswith("\n") else out + "\n")
    return 0


def confirm(ctx: "Context", warning: str) -> bool:
    """docker's prune prompt; a non-interactive stdin answers no."""
    ctx.out.write(f"{warning}\nAre you sure you want to continue? [y/N] ")
    ctx.out.flush()
    answer = sys.stdin.readline().strip().lower()
    return answer in ("y", "yes")


def cmd_prune(args: argparse.Namespace, ctx: "Context") -> int:
    from dockyard.cli.formatting import human_size
    from dockyard.image.filters import parse_filters

    warning = ("WARNING! This will remove all images without at least one container associated to them."
               if args.all else "WARNING! This will remove all dangling images.")
    if not args.force and not confirm(ctx, warning):
        return 0
    report = ctx.client.images.prune(all=args.all, filters=parse_filters(args.filter))
    deleted = report["ImagesDeleted"] or []
    if deleted:
        ctx.print("Deleted Images:")
        for rec in deleted:
            for k, v in rec.items():
                ctx.print(f"{k.lower()}: {v}")
        ctx.print()
    ctx.print(f"Total reclaimed space: {human_size(report['SpaceReclaimed'])}")
    return 0


def cmd_import(args: argparse.Namespace, ctx: "Context") -> int:
    image = ctx.client.images.import_rootfs(args.file, args.repository, changes=args.change,
                                            message=args.message, platform=args.platform)
    ctx.print(image.id)
    return 0


def cmd_load(args: argparse.Namespace, ctx: "Context") -> int:
    from dockyard.errors import InvalidArgument, NotFound

    if args.input:
        try:
            stream = open(args.input, "rb")
        except FileNotFoundError:
            raise NotFound(f"open {args.input}: no such file or directory") from None
    else:
        if sys.stdin.isatty():
            raise InvalidArgument("requested load from stdin, but stdin is empty")
        stream = sys.stdin.buffer
    try:
        lines = ctx.client.images.load(stream, platform=args.platform)
    finally:
        if args.input:
            stream.close()
    if not args.quiet:
        for line in lines:
            ctx.print(line)
    return 0


def cmd_save(args: argparse.Namespace, ctx: "Context") -> int:
    from dockyard.errors import InvalidArgument

    if not args.output:
        if sys.stdout.isatty():
            raise InvalidArgument("cowardly refusing to save to a terminal. Use the -o flag or redirect")
        ctx.client.images.save(args.images, sys.stdout.buffer, format=args.format)
        return 0
    for name in args.images:  # fail before creating the file
        ctx.client.images.resolve_id(name)
    tmp = f"{args.output}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as out:
            ctx.client.images.save(args.images, out, format=args.format)
        os.replace(tmp, args.output)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return 0


def cmd_busybox(args: argparse.Namespace, ctx: "Context") -> int:
    import tempfile

    from dockyard.image.busybox import BUSYBOX_CHANGES, build_rootfs_tar

    with tempfile.TemporaryDirectory(prefix="dockyard-busybox-") as tmp:
        tar = build_rootfs_tar(os.path.join(tmp, "rootfs.tar"), args.busybox)
        image = ctx.client.images.import_rootfs(str(tar), args.name, changes=BUSYBOX_CHANGES,
                                                message="busybox from the host's busybox-static")
    ctx.print(image.id)
    return 0
