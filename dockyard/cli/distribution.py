"""Pull and push: the ``image pull`` / ``image push`` verbs (aliases ``pull`` / ``push``).

``dockyard/cli/image.py`` wires these verbs in when this module exists. The work is done by
``client.distribution`` (``dockyard/distribution/``), imported inside the handlers.
"""
from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from dockyard.cli.common import add_bool_flag, add_verb

if TYPE_CHECKING:  # pragma: no cover
    from dockyard.cli.common import Context


def add_registry_flags(p: Any) -> None:
    """Flags every registry-talking verb shares (dockyard has no daemon to hold them)."""
    p.add_argument("--insecure-registry", action="append", default=[], metavar="HOST[:PORT]|CIDR",
                   help="Allow plain HTTP / unverified TLS for this registry (repeatable; also "
                        "DOCKYARD_INSECURE_REGISTRIES and \"insecure-registries\" in <root>/config.json)")


def _transfer_flags(p: Any, all_tags: str, platform: str) -> None:
    """The flags pull and push share (with their own help texts, as docker's)."""
    p.add_argument("-a", "--all-tags", action="store_true", help=all_tags)
    p.add_argument("--platform", help=platform)
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress verbose output")
    add_bool_flag(p, "--disable-content-trust", default="true",
                  help="Skip image verification (default true; content trust is not supported)")
    add_registry_flags(p)


def add_pull_verb(sub: Any) -> None:
    p = add_verb(sub, "pull", cmd_pull, "Download an image from a registry")
    p.add_argument("name", metavar="NAME[:TAG|@DIGEST]")
    _transfer_flags(p, "Download all tagged images in the repository",
                    "Set platform if server is multi-platform capable")


def add_push_verb(sub: Any) -> None:
    p = add_verb(sub, "push", cmd_push, "Upload an image to a registry")
    p.add_argument("name", metavar="NAME[:TAG]")
    _transfer_flags(p, "Push all tags of an image to the repository",
                    "Push only this platform's manifest of a multi-platform image")


def _default_tag_note(args: argparse.Namespace, ctx: "Context") -> None:
    """docker says so when a name without tag or digest gets ``latest``. A malformed name is the
    docker CLI's own finding: its message is printed bare."""
    from dockyard.cli.common import shown_as
    from dockyard.errors import DockyardError, InvalidArgument
    from dockyard.image.reference import parse

    try:
        ref = parse(args.name, default_tag=False)
    except DockyardError as exc:
        raise shown_as(exc, "") from None
    if args.all_tags and (ref.tag or ref.digest):
        raise shown_as(InvalidArgument("tag can't be used with --all-tags/-a"), "")
    if not args.quiet and not args.all_tags and not ref.tag and not ref.digest:
        ctx.print("Using default tag: latest")


def cmd_pull(args: argparse.Namespace, ctx: "Context") -> int:
    from dockyard.cli.common import DAEMON_PREFIX, shown_as
    from dockyard.errors import DockyardError

    svc = ctx.client.distribution
    svc.configure(args.insecure_registry)
    _default_tag_note(args, ctx)
    try:
        report = svc.pull_report(args.name, platform=args.platform, all_tags=args.all_tags,
                                 progress=None if args.quiet else ctx.out)
    except DockyardError as exc:  # docker's daemon refused the pull
        raise shown_as(exc, DAEMON_PREFIX) from None
    from dockyard.engine.events import emit

    emit(ctx.client, "image", "pull", report.name, {"name": report.name})
    ctx.print(report.name)
    return 0


def cmd_push(args: argparse.Namespace, ctx: "Context") -> int:
    from dockyard.cli.common import shown_as
    from dockyard.errors import DockyardError

    svc = ctx.client.distribution
    svc.configure(args.insecure_registry)
    _default_tag_note(args, ctx)
    try:
        outcomes = svc.push(args.name, all_tags=args.all_tags, platform=args.platform,
                            progress=None if args.quiet else ctx.out)
    except DockyardError as exc:  # docker prints a push's failure bare, from its progress stream
        raise shown_as(exc, "") from None
    from dockyard.engine.events import emit

    emit(ctx.client, "image", "push", args.name, {"name": args.name})
    if args.quiet:
        from dockyard.image.reference import parse

        ref = parse(args.name, default_tag=not args.all_tags)
        for o in outcomes:
            ctx.print(str(ref.with_tag(o.tag)))
    return 0
