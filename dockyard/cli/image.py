"""Manage images"""
from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

from dockyard.cli.common import add_verb, arity_error
from dockyard.errors import InvalidArgument

if TYPE_CHECKING:  # pragma: no cover
    from dockyard.cli.common import Context


class ClientSideError(InvalidArgument):
    """An error docker's CLI finds itself (before asking the daemon): docker prints these bare,
    without "Error: " (a bad reference to tag, a file that does not open, wrong argument counts)."""

    cli_prefix = ""


def positionals(p: Any, dest: str, use: str, low: int, high: int | None, daemon: bool = True) -> None:
    """Positional arguments counted as docker's cobra commands count them.

    argparse would report a missing or extra operand itself (exit 125, its own wording); docker
    says ``docker: 'docker tag' requires 2 arguments`` with the usage line and exits 1. The verb
    takes any number of operands and :func:`_arity_checked` compares the count before the handler
    runs. ``use`` is the usage line after the command path (docker's ``Use``); ``high`` None means
    no upper bound. With ``daemon``, the handler's failures print behind docker's "Error response
    from daemon: " (what the image service refuses is what dockerd refuses); those docker's CLI
    reports itself are :class:`ClientSideError` and stay bare.
    """
    if high == 0:
        p.add_argument(dest, nargs="*", help=argparse.SUPPRESS)
    else:
        p.add_argument(dest, nargs="*", metavar=use.replace("[OPTIONS]", "").strip())
    p.set_defaults(_arity=(dest, low, high, use, p), func=_arity_checked(p.get_default("func"), daemon))
    p.usage_line = lambda: f"{p.prog} {use}"  # the usage line a bad flag's message shows
    p.usage = f"%(prog)s {use}"  # and --help's


def _arity_checked(func: Any, daemon: bool) -> Any:
    def run(args: argparse.Namespace, ctx: "Context") -> Any:
        from dockyard.cli.common import DAEMON_PREFIX, shown_as
        from dockyard.errors import DockyardError

        dest, low, high, use, parser = args._arity
        given = getattr(args, dest, None) or []
        error = arity_error(parser.prog, use, len(given), low, high)
        if error:
            raise ClientSideError(error)
        try:
            return func(args, ctx)
        except DockyardError as exc:
            raise shown_as(exc, DAEMON_PREFIX) if daemon else exc from None

    return run


def cli_filters(args: argparse.Namespace, flag: str) -> dict[str, list[str]]:
    """``--filter`` values; one without ``=`` is docker's client-side flag error (exit 125)."""
    from dockyard.image.filters import parse_filters

    for value in args.filter:
        if "=" not in value:
            _, _, _, use, parser = args._arity
            raise ClientSideError(
                f'invalid argument "{value}" for "{flag}" flag: bad format of filter (expected name=value)'
                f"\n\nUsage:  {parser.prog} {use}\n\nRun '{parser.prog} --help' for more information", 125)
    return parse_filters(args.filter)


LS_COLUMNS = [("REPOSITORY", "Repository"), ("TAG", "Tag"), ("IMAGE ID", "ID"),
              ("CREATED", "CreatedSince"), ("SIZE", "Size")]
HEADERS = {"Repository": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID", "Digest": "DIGEST",
           "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE",
           "VirtualSize": "VIRTUAL SIZE", "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE",
           "Containers": "CONTAINERS"}


def build_parser(sub: Any) -> None:
    p = add_verb(sub, "ls", cmd_ls, "List images", aliases=["list"])
    positionals(p, "repository", "[OPTIONS] [REPOSITORY[:TAG]]", 0, 1)
    p.add_argument("-a", "--all", action="store_true", help="Show all images (default hides intermediate images)")
    p.add_argument("--digests", action="store_true", help="Show digests")
    p.add_argument("-f", "--filter", action="append", default=[], help="Filter output based on conditions provided")
    p.add_argument("--format", help="Format output using a custom template ('table', 'json', or a Go template)")
    p.add_argument("--no-trunc", action="store_true", help="Don't truncate output")
    p.add_argument("-q", "--quiet", action="store_true", help="Only show image IDs")

    p = add_verb(sub, "tag", cmd_tag, "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE")
    positionals(p, "operands", "SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]", 2, 2)

    p = add_verb(sub, "rm", cmd_rm, "Remove one or more images", aliases=["remove", "rmi"])
    positionals(p, "images", "[OPTIONS] IMAGE [IMAGE...]", 1, None)
    p.add_argument("-f", "--force", action="store_true", help="Force removal of the image")
    p.add_argument("--no-prune", action="store_true", help="Do not delete untagged parents")

    p = add_verb(sub, "inspect", cmd_inspect, "Display detailed information on one or more images")
    positionals(p, "images", "[OPTIONS] IMAGE [IMAGE...]", 1, None)
    p.add_argument("-f", "--format", help="Format output using a custom template")

    p = add_verb(sub, "history", cmd_history, "Show the history of an image")
    positionals(p, "image", "[OPTIONS] IMAGE", 1, 1)
    p.add_argument("-H", "--human", default="true", nargs="?", const="true",
                   help="Print sizes and dates in human readable format (default true)")
    p.add_argument("--no-trunc", action="store_true", help="Don't truncate output")
    p.add_argument("-q", "--quiet", action="store_true", help="Only show image IDs")
    p.add_argument("--format", help="Format output using a custom template")

    p = add_verb(sub, "prune", cmd_prune, "Remove unused images")
    positionals(p, "operands", "[OPTIONS]", 0, 0)
    p.add_argument("-a", "--all", action="store_true", help="Remove all unused images, not just dangling ones")
    p.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    p.add_argument("--filter", action="append", default=[], help="Provide filter values (e.g. 'until=<timestamp>')")

    p = add_verb(sub, "import", cmd_import, "Import the contents from a tarball to create a filesystem image")
    positionals(p, "operands", "[OPTIONS] file|URL|- [REPOSITORY[:TAG]]", 1, None)
    p.add_argument("-c", "--change", action="append", default=[], help="Apply Dockerfile instruction to the created image")
    p.add_argument("-m", "--message", default="", help="Set commit message for imported image")
    p.add_argument("--platform", help="Set platform if server is multi-platform capable")

    p = add_verb(sub, "load", cmd_load, "Load an image from a tar archive or STDIN")
    positionals(p, "operands", "[OPTIONS]", 0, 0)
    p.add_argument("-i", "--input", help="Read from tar archive file, instead of STDIN")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress the load output")
    p.add_argument("--platform", help="Load only the given platform of a multi-platform image")

    p = add_verb(sub, "save", cmd_save, "Save one or more images to a tar archive (streamed to STDOUT by default)")
    positionals(p, "images", "[OPTIONS] IMAGE [IMAGE...]", 1, None)
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
    from dockyard.image.reference import parse
    from dockyard import timeutil

    filters = cli_filters(args, "-f, --filter")
    if args.repository:
        filters.setdefault("reference", []).append(args.repository[0])
    images = ctx.client.images.list(all=args.all, filters=filters)
    patterns = filters.get("reference", [])
    rows: list[dict[str, Any]] = []
    for image in images:
        created = timeutil.parse_rfc3339(image.created) or 0
        image_id = image.id if args.no_trunc else short_id(image.id)
        base = {"ID": image_id, "CreatedSince": ago(created) if created else "N/A",
                "CreatedAt": _created_at(created), "Size": human_size(image.size),
                "VirtualSize": human_size(image.size, 4), "SharedSize": "N/A", "UniqueSize": "N/A",
                "Containers": "N/A"}
        digests = {d.split("@", 1)[0]: d.split("@", 1)[1] for d in image.repo_digests}
        names = image.repo_tags or []
        if patterns:  # docker lists only the tags the reference filter matched
            from dockyard.image.filters import reference_matches

            names = [n for n in names if reference_matches(patterns, n)]
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
    if args.quiet:  # docker 28 prints one ID per row: an image with two tags twice
        for r in rows:
            ctx.print(r["ID"])
        return 0
    columns = list(LS_COLUMNS)
    if args.digests:
        columns.insert(2, ("DIGEST", "Digest"))
    out = format_output(rows, args.format, columns, HEADERS, go_type="*formatter.imageContext")
    if out:
        ctx.out.write(out if out.endswith("\n") else out + "\n")
    return 0


def cmd_tag(args: argparse.Namespace, ctx: "Context") -> int:
    from dockyard.image.reference import is_image_id_prefix, parse

    source, target = args.operands
    # docker's client checks both names before it asks the daemon, and words it its own way
    for name in ([source] if not is_image_id_prefix(source.removeprefix("sha256:")) else []) + [target]:
        try:
            ref = parse(name)
        except InvalidArgument as exc:
            raise ClientSideError(f'Error parsing reference: "{name}" is not a valid repository/tag: '
                                  f"{exc.message}") from None
    if ref.digest:
        raise ClientSideError("refusing to create a tag with a digest reference")
    ctx.client.images.tag(source, target)
    from dockyard.engine.events import emit_image

    emit_image(ctx.client, "tag", ctx.client.images.resolve_id(target), target)
    return 0


def cmd_rm(args: argparse.Namespace, ctx: "Context") -> int:
    from dockyard.cli.common import DAEMON_PREFIX
    from dockyard.errors import DockyardError

    rc = 0
    for name in args.images:
        try:
            from dockyard.engine.events import emit_image_removal

            try:
                image_id = ctx.client.images.resolve_id(name)
            except DockyardError:
                image_id = ""  # the removal reports it
            records = ctx.client.images.remove(name, force=args.force, prune=not args.no_prune)
            emit_image_removal(ctx.client, image_id, records)
            for rec in records:
                for k, v in rec.items():
                    ctx.print(f"{k}: {v}")
        except DockyardError as exc:
            from dockyard.errors import NotFound

            message = exc.message
            if args.force and isinstance(exc, NotFound):  # -f: reported, but not a failure
                ctx.warn(f"{DAEMON_PREFIX}{message}")
                continue
            if message.startswith("invalid reference format: repository name ("):
                message = "invalid reference format: repository name must be lowercase"  # the daemon's words
            ctx.warn(f"{DAEMON_PREFIX}{message}")
            rc = exc.exit_code or 1
    return rc


def cmd_inspect(args: argparse.Namespace, ctx: "Context") -> int:
    from dockyard.cli.common import DAEMON_PREFIX
    from dockyard.errors import DockyardError, NotFound

    found, errors = [], []
    for name in args.images:
        try:
            found.append(ctx.client.images.inspect(name))
        except NotFound as exc:  # the daemon's words wrap the lookup's
            errors.append(NotFound(f"no such image: {name}: {exc.message}"))
        except DockyardError as exc:
            errors.append(exc)
    rc = _print_inspect(ctx, found, args.format)
    for exc in errors:
        ctx.warn(f"{DAEMON_PREFIX}{exc.message}")
    return 1 if errors else rc


def _print_inspect(ctx: "Context", images: list[dict[str, Any]], fmt: str | None) -> int:
    """docker 28's CLI runs a template on its typed image object first and, when that fails, on
    the raw JSON: ``{{json .Config}}`` is the OCI config without its empty fields, ``{{.Config.Env}}``
    of an image without one is ``[]``; ``{{.Config.Hostname}}`` still works through the raw form."""
    from dockyard.cli.formatting import TemplateError, parse
    from dockyard.cli.inspecting import print_inspect

    if fmt and images:
        try:
            template = parse(fmt)
            out = [template.execute(typed_image(doc), missing_error=True) + "\n" for doc in images]
        except TemplateError:
            pass
        else:
            ctx.out.write("".join(out))
            return 0
    return print_inspect(ctx, images, fmt)


class _GoStruct(dict):
    """A dict standing for a Go struct whose ``omitempty`` fields JSON leaves out when empty."""

    omitempty: frozenset[str] = frozenset()


def _struct(fields: dict[str, Any], omitempty: tuple[str, ...] = ()) -> _GoStruct:
    out = _GoStruct(fields)
    out.omitempty = frozenset(omitempty)
    return out


def _go_map(value: Any) -> Any:
    from dockyard.cli.formatting import GoMap

    out = GoMap(value or {})
    out.nil = value is None
    return out


#: docker's DockerOCIImageConfig: the OCI image config plus docker's three, every field omitempty
_OCI_CONFIG_FIELDS = ("User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Volumes", "WorkingDir", "Labels",
                      "StopSignal", "ArgsEscaped", "Healthcheck", "OnBuild", "Shell")
_MAP_FIELDS = ("ExposedPorts", "Volumes", "Labels")
_LIST_FIELDS = ("Env", "Entrypoint", "Cmd", "OnBuild", "Shell")


def typed_image(doc: dict[str, Any]) -> dict[str, Any]:
    """An inspect document as docker 28's ``image.InspectResponse`` (field order, Go zero values,
    omitempty), for templates."""
    config = doc.get("Config") or {}
    typed_config = {}
    for k in _OCI_CONFIG_FIELDS:
        v = config.get(k)
        if k in _MAP_FIELDS:
            v = _go_map(v)
        elif k in _LIST_FIELDS:
            v = list(v or [])
        elif k == "ArgsEscaped":
            v = bool(v)
        elif k != "Healthcheck":
            v = v or ""
        typed_config[k] = v
    graph = dict(doc.get("GraphDriver") or {})
    graph["Data"] = _go_map(graph.get("Data"))
    fields = {
        "Id": doc["Id"], "RepoTags": doc.get("RepoTags") or [], "RepoDigests": doc.get("RepoDigests") or [],
        "Parent": doc.get("Parent", ""), "Comment": doc.get("Comment", ""), "Created": doc.get("Created", ""),
        "Container": doc.get("Container", ""), "ContainerConfig": doc.get("ContainerConfig"),
        "DockerVersion": doc.get("DockerVersion", ""), "Author": doc.get("Author", ""),
        "Config": _struct(typed_config, _OCI_CONFIG_FIELDS), "Architecture": doc.get("Architecture", ""),
        "Variant": doc.get("Variant", ""), "Os": doc.get("Os", ""), "OsVersion": doc.get("OsVersion", ""),
        "Size": doc.get("Size", 0), "VirtualSize": doc.get("VirtualSize", 0), "GraphDriver": graph,
        "RootFS": doc.get("RootFS"), "Metadata": doc.get("Metadata"),
    }
    return _struct(fields, ("Created", "Container", "ContainerConfig", "DockerVersion", "Variant", "OsVersion",
                            "VirtualSize"))


def cmd_history(args: argparse.Namespace, ctx: "Context") -> int:
    from dockyard.cli.formatting import ago, format_output, human_size
    from dockyard.content.digest import short_id

    from dockyard import timeutil

    human = str(args.human).lower() not in ("false", "0")
    rows = []
    for h in ctx.client.images.history(args.image[0]):
        image_id = h["Id"] if args.no_trunc or h["Id"] == "<missing>" else short_id(h["Id"])
        created_by = h["CreatedBy"]
        if not args.no_trunc and len(created_by) > 45:
            created_by = created_by[:44] + "…"
        created_at = timeutil.format_rfc3339(int(h["Created"]))  # docker: whole seconds, RFC 3339
        rows.append({"ID": image_id, "CreatedSince": ago(h["Created"]) if human else created_at,
                     "CreatedAt": created_at, "CreatedBy": created_by,
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
    filters = cli_filters(args, "--filter")
    warning = ("WARNING! This will remove all images without at least one container associated to them."
               if args.all else "WARNING! This will remove all dangling images.")
    if not args.force and not confirm(ctx, warning):
        return 0
    report = ctx.client.images.prune(all=args.all, filters=filters)
    deleted = report["ImagesDeleted"] or []
    from dockyard.engine.events import emit, emit_prune

    for rec in deleted:
        for action, ref in rec.items():
            emit(ctx.client, "image", "untag" if action == "Untagged" else "delete", ref, {"name": ref})
    emit_prune(ctx.client, "image", report["SpaceReclaimed"])
    if deleted:
        ctx.print("Deleted Images:")
        for rec in deleted:
            for k, v in rec.items():
                ctx.print(f"{k.lower()}: {v}")
        ctx.print()
    ctx.print(f"Total reclaimed space: {human_size(report['SpaceReclaimed'])}")
    return 0


def cmd_import(args: argparse.Namespace, ctx: "Context") -> int:
    from dockyard.errors import DockyardError
    from dockyard.image.reference import parse

    source, repository = (args.operands + [None])[:2]
    if source != "-" and "://" not in source and not os.path.exists(source):
        raise ClientSideError(f"open {source}: no such file or directory")
    if repository:
        try:
            parse(repository)
        except InvalidArgument as exc:
            raise ClientSideError(exc.message) from None
    try:
        image = ctx.client.images.import_rootfs(source, repository, changes=args.change,
                                                message=args.message, platform=args.platform)
    except DockyardError as exc:
        if "truncated tar archive" in exc.message:
            raise type(exc)(TAR_UNEXPECTED_EOF) from None
        raise
    from dockyard.engine.events import emit_image

    emit_image(ctx.client, "import", image.id, repository or image.id)
    ctx.print(image.id)
    return 0


#: docker's daemon words for a tar stream that ends early (or is no tar at all)
TAR_UNEXPECTED_EOF = "Error processing tar file(exit status 1): unexpected EOF"


def cmd_load(args: argparse.Namespace, ctx: "Context") -> int:
    from dockyard.errors import DockyardError

    if args.input:
        try:
            stream = open(args.input, "rb")
        except FileNotFoundError:
            raise ClientSideError(f"open {args.input}: no such file or directory") from None
    else:
        if sys.stdin.isatty():
            raise ClientSideError("requested load from stdin, but stdin is empty")
        stream = sys.stdin.buffer
    try:
        lines = ctx.client.images.load(stream, platform=args.platform)
    except DockyardError as exc:  # docker prints load's errors (from its message stream) bare
        raise ClientSideError(TAR_UNEXPECTED_EOF if "truncated tar archive" in exc.message
                              else exc.message, exc.exit_code) from None
    finally:
        if args.input:
            stream.close()
    from dockyard.engine.events import emit_image

    for line in lines:  # docker's -q hides only the progress bars: the "Loaded image" lines still print
        loaded = line.split(": ", 1)[-1]
        emit_image(ctx.client, "load", loaded, loaded)
        ctx.print(line)
    return 0


def cmd_save(args: argparse.Namespace, ctx: "Context") -> int:
    from dockyard.errors import NotFound

    if not args.output and sys.stdout.isatty():  # docker's client refuses before asking anything
        raise ClientSideError("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    for name in args.images:  # fail before writing anything, naming the image as given
        try:
            ctx.client.images.resolve_id(name)
        except NotFound:
            raise NotFound(f"No such image: {name}") from None
    from dockyard.engine.events import emit_image

    if not args.output:
        ctx.client.images.save(args.images, sys.stdout.buffer, format=args.format)
        for name in args.images:
            emit_image(ctx.client, "save", name, name)
        return 0
    tmp = f"{args.output}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as out:
            ctx.client.images.save(args.images, out, format=args.format)
        os.replace(tmp, args.output)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    for name in args.images:
        emit_image(ctx.client, "save", name, name)
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
