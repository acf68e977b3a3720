"""Manage builds"""
from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

from dockyard.cli.common import add_verb

if TYPE_CHECKING:  # pragma: no cover
    from dockyard.cli.common import Context


def _build_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-t", "--tag", action="append", default=[], help="Name and optionally a tag in the 'name:tag' format")
    p.add_argument("-f", "--file", help="Name of the Dockerfile (default: 'PATH/Dockerfile'; - reads it from stdin)")
    p.add_argument("--build-arg", action="append", default=[], metavar="list", help="Set build-time variables")
    p.add_argument("--target", help="Set the target build stage to build")
    p.add_argument("--no-cache", action="store_true", help="Do not use cache when building the image")
    p.add_argument("--pull", action="store_true", help="Always attempt to pull a newer version of the image")
    p.add_argument("--label", action="append", default=[], metavar="list", help="Set metadata for an image")
    p.add_argument("--network", default="default", help="Set the networking mode for the RUN instructions during build (default, host, none)")
    p.add_argument("--platform", help="Set platform if server is multi-platform capable")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress the build output and print image ID on success")
    p.add_argument("--iidfile", metavar="string", help="Write the image ID to the file")
    p.add_argument("--progress", default="auto", choices=["auto", "plain", "tty", "quiet"],
                   help="Set type of progress output (auto, plain, tty). Use plain to show container output")
    p.add_argument("--runtime", help=argparse.SUPPRESS)
    # docker's classic flags that change nothing here (intermediate containers are never kept)
    p.add_argument("--rm", nargs="?", const="true", default="true", help=argparse.SUPPRESS)
    p.add_argument("--force-rm", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--load", action="store_true", help=argparse.SUPPRESS)


def _build_verb(sub: Any) -> None:
    from dockyard.cli.image import positionals

    p = add_verb(sub, "build", cmd_build, "Build an image from a Dockerfile")
    # PATH: a directory, or - for a tar (or a Dockerfile) on stdin; counted as docker counts it
    positionals(p, "path", "[OPTIONS] PATH | URL | -", 1, 1, daemon=False)  # BuildKit's errors print bare
    _build_flags(p)


def add_build_verb(sub: Any) -> None:
    """``image build`` (and the ``build`` alias): called by dockyard.cli.image."""
    _build_verb(sub)


def build_parser(sub: Any) -> None:
    _build_verb(sub)
    p = add_verb(sub, "du", cmd_du, "Show build cache disk usage")
    p.add_argument("--verbose", action="store_true", help="Provide a more verbose output")
    p = add_verb(sub, "prune", cmd_prune, "Remove build cache")
    p.add_argument("-a", "--all", action="store_true", help="Remove all unused build cache, not just dangling ones")
    p.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    p.add_argument("--filter", action="append", default=[], help="Provide filter values (e.g. 'until=24h')")
    p.add_argument("--keep-storage", help=argparse.SUPPRESS)


# -- build ------------------------------------------------------------------------------------------
def _parse_kv(values: list[str], from_env: bool) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for v in values:
        k, eq, val = v.partition("=")
        if eq:
            out[k] = val
        elif from_env:
            out[k] = os.environ.get(k)  # docker: "--build-arg NAME" takes NAME from the environment
        else:
            out[k] = ""
    return out


def cmd_build(args: argparse.Namespace, ctx: "Context") -> int:
    """docker's client prepares the context itself and prints those failures bare."""
    from dockyard.build.service import check_tag
    from dockyard.cli.image import ClientSideError
    from dockyard.errors import DockyardError

    parser = args._arity[4]
    for tag in args.tag:  # docker's client refuses a bad -t while it parses its flags: exit 125
        try:
            check_tag(tag)
        except DockyardError as exc:
            raise ClientSideError(f"{exc.message}\n\nUsage:  {parser.prog} [OPTIONS] PATH | URL | -\n\n"
                                  f"Run '{parser.prog} --help' for more information", 125) from None
    try:
        return _build(args, ctx)
    except DockyardError as exc:
        if exc.message.startswith("unable to prepare context") and exc.cli_prefix:
            raise ClientSideError(exc.message, exc.exit_code) from None
        if getattr(exc, "definition", False):  # BuildKit's whole line, as docker prints it
            raise ClientSideError(BUILDKIT_DEFINITION_FAILED + exc.message, exc.exit_code) from None
        raise


#: how docker's BuildKit introduces a Dockerfile it refused (a parse error, a missing --target)
BUILDKIT_DEFINITION_FAILED = "failed to solve with frontend dockerfile.v0: failed to create LLB definition: "


def _build(args: argparse.Namespace, ctx: "Context") -> int:
    from dockyard.build.context import BuildContext, remote_context_error, sniff_stdin
    from dockyard.build.progress import Progress
    from dockyard.build.service import BuildOptions
    from dockyard.errors import InvalidArgument

    path: str = args.path[0]
    dockerfile_name = "Dockerfile"
    build_dir = ctx.client.state.dir("build", "tmp")
    if path.startswith(("http://", "https://", "git://", "git@", "github.com/")):
        raise remote_context_error(path)
    if args.file == "-" and path == "-":
        from dockyard.cli.image import ClientSideError

        raise ClientSideError("invalid argument: can't use stdin for both build context and dockerfile")
    if path == "-":
        data = sys.stdin.buffer.read()
        if sniff_stdin(data) == "tar":
            import io

            rel = args.file or "Dockerfile"
            context = BuildContext.from_tar(io.BytesIO(data), build_dir, rel)
            dockerfile = _read_context_dockerfile(context, rel, explicit=bool(args.file))
            dockerfile_name = rel
        else:
            context = BuildContext.empty()
            dockerfile = data
    else:
        if args.file and args.file != "-":
            df_path = os.path.abspath(args.file)
        else:
            df_path = os.path.join(os.path.abspath(path), "Dockerfile")
            if not os.path.exists(df_path) and os.path.exists(os.path.join(path, "dockerfile")):
                df_path = os.path.join(path, "dockerfile")
        rel = os.path.relpath(df_path, os.path.abspath(path)) if args.file != "-" else None
        context = BuildContext.from_dir(path, rel if rel and not rel.startswith("..") else None)
        if args.file == "-":
            dockerfile = sys.stdin.buffer.read()
            dockerfile_name = "Dockerfile"
        else:
            try:
                with open(df_path, "rb") as f:
                    dockerfile = f.read()
            except FileNotFoundError:
                raise InvalidArgument(f"unable to prepare context: unable to evaluate symlinks in Dockerfile path: "
                                      f"lstat {df_path}: no such file or directory") from None
            except IsADirectoryError:
                raise InvalidArgument(f"unable to prepare context: {df_path} is a directory, not a Dockerfile") from None
            dockerfile_name = os.path.basename(df_path)
    if args.quiet:
        mode = "quiet"
    elif args.progress == "auto":
        mode = "tty" if sys.stderr.isatty() else "plain"
    else:
        mode = args.progress
    build_args = _parse_kv(args.build_arg, from_env=True)
    epoch_text = build_args.get("SOURCE_DATE_EPOCH") or os.environ.get("SOURCE_DATE_EPOCH")
    epoch = None
    if epoch_text:
        try:
            epoch = int(epoch_text)
        except ValueError:
            raise InvalidArgument(f"invalid SOURCE_DATE_EPOCH: {epoch_text!r} (seconds since 1970 expected)") from None
    opts = BuildOptions(context=context, dockerfile=dockerfile, dockerfile_name=dockerfile_name,
                        tags=list(args.tag), build_args=build_args, target=args.target, no_cache=args.no_cache,
                        pull=args.pull, labels={k: v or "" for k, v in _parse_kv(args.label, False).items()},
                        network=args.network, platform=args.platform, progress=Progress(mode),
                        source_date_epoch=epoch, runtime=args.runtime)
    with context:
        result = ctx.client.builder.build(opts)
    from dockyard.engine.events import emit_image

    for tag in args.tag:  # as dockerd: a ``tag`` event per name, none for the build itself
        emit_image(ctx.client, "tag", result.image_id, tag)
    if args.iidfile:  # the classic builder ends the ID with a newline under -q (only then)
        with open(args.iidfile, "w") as f:
            f.write(result.image_id + ("\n" if args.quiet else ""))
    if args.quiet:
        ctx.print(result.image_id)
    return 0


def _read_context_dockerfile(context: Any, rel: str, explicit: bool) -> bytes:
    if not explicit:
        for name in ("Dockerfile", "dockerfile"):
            try:
                return context.read_file(name)
            except Exception:  # noqa: BLE001
                continue
    return context.read_file(rel)


# -- du / prune -------------------------------------------------------------------------------------
def cmd_du(args: argparse.Namespace, ctx: "Context") -> int:
    from dockyard.cli.formatting import ago, human_size

    records = ctx.client.builder.du()
    if args.verbose:
        for r in records:
            ctx.print(f"ID:\t\t{r['id']}")
            ctx.print(f"Created at:\t{_go_time(r['created'])}")
            ctx.print("Mutable:\tfalse")
            ctx.print(f"Reclaimable:\t{str(not r['in_use']).lower()}")
            ctx.print(f"Shared:\t\t{str(r['shared']).lower()}")
            ctx.print(f"Size:\t\t{human_size(r['size'])}")
            ctx.print(f"Description:\t{r['description']}")
            ctx.print(f"Usage count:\t{r['usage_count']}")
            ctx.print(f"Last used:\t{ago(r['last_used'])}")
            ctx.print(f"Type:\t\t{r['type']}")
            ctx.print()
    else:
        ctx.print(f"{'ID':<48}{'RECLAIMABLE':<16}{'SIZE':<16}LAST ACCESSED")
        for r in records:
            mark = "*" if r["shared"] else ""
            ctx.print(f"{r['id'] + mark:<48}{str(not r['in_use']).lower():<16}{human_size(r['size']):<16}"
                      f"{ago(r['last_used'])}")
    shared = sum(r["size"] for r in records if r["shared"])
    total = sum(r["size"] for r in records)
    reclaimable = sum(r["size"] for r in records if not r["in_use"])
    ctx.print(f"Shared:\t\t{human_size(shared)}")
    ctx.print(f"Private:\t{human_size(total - shared)}")
    ctx.print(f"Reclaimable:\t{human_size(reclaimable)}")
    ctx.print(f"Total:\t\t{human_size(total)}")
    return 0


def _go_time(ts: float) -> str:
    """Go's default time format, as ``docker buildx du --verbose`` prints it."""
    from dockyard.timeutil import go_time_string

    return go_time_string(ts)


def cmd_prune(args: argparse.Namespace, ctx: "Context") -> int:
    from dockyard.cli.formatting import human_size
    from dockyard.cli.image import confirm
    from dockyard.engine.timeutil import parse_duration
    from dockyard.errors import InvalidArgument

    until: float | None = None
    for f in args.filter:
        k, _, v = f.partition("=")
        if k != "until":
            raise InvalidArgument(f"invalid filter '{k}'")
        ns = parse_duration(v)
        if ns is None:
            raise InvalidArgument(f"invalid filter 'until={v}': expected a duration such as 24h")
        until = ns / 1e9
    warning = ("WARNING! This will remove all build cache." if args.all
               else "WARNING! This will remove all dangling build cache.")
    if not args.force and not confirm(ctx, warning):
        return 0
    report = ctx.client.builder.prune(all=args.all, until=until)
    if report["deleted"]:
        ctx.print("Deleted build cache objects:")
        for i in report["deleted"]:
            ctx.print(i)
        ctx.print()
    ctx.print(f"Total reclaimed space: {human_size(report['reclaimed'])}")
    return 0
