"""Manage dockyard"""
from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from dockyard.cli.common import add_verb

if TYPE_CHECKING:  # pragma: no cover
    from dockyard.cli.common import Context


def build_parser(sub: Any) -> None:
    p = add_verb(sub, "version", cmd_version, "Show the dockyard version information")
    p.add_argument("-f", "--format", help="Format output using a custom template")
    p.add_argument("--short", action="store_true", help=argparse.SUPPRESS)

    p = add_verb(sub, "info", cmd_info, "Display system-wide information")
    p.add_argument("-f", "--format", help="Format output using a custom template")

    p = add_verb(sub, "df", cmd_df, "Show dockyard disk usage")
    p.add_argument("-v", "--verbose", action="store_true", help="Show detailed information on space usage")
    p.add_argument("--format", help="Format output using a custom template")

    p = add_verb(sub, "prune", cmd_prune, "Remove unused data")
    p.add_argument("-a", "--all", action="store_true", help="Remove all unused images not just dangling ones")
    p.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    p.add_argument("--volumes", action="store_true", help="Prune anonymous volumes")

    p = add_verb(sub, "inspect", cmd_inspect, "Return low-level information on dockyard objects")
    p.add_argument("names", nargs="+", metavar="NAME|ID")
    p.add_argument("-f", "--format", help="Format output using a custom template")
    p.add_argument("--type", choices=["container", "image", "volume", "network"],
                   help="Return JSON for specified type")
    p.add_argument("-s", "--size", action="store_true", help="Display total file sizes if the type is container")

    p = add_verb(sub, "events", cmd_events, "Get real time events from the server")
    p.add_argument("-f", "--filter", action="append", default=[], help="Filter output based on conditions provided")
    p.add_argument("--format", help="Format output using a custom template")
    p.add_argument("--since", help="Show all events created since timestamp")
    p.add_argument("--until", help="Stream events until this timestamp")

    p = add_verb(sub, "service", cmd_service, "Serve the Docker Engine API on a unix socket (foreground)")
    p.add_argument("-H", "--host", metavar="unix:///path",
                   help="Socket to listen on (default: unix://<root>/dockyard.sock)")
    p.add_argument("--timeout", type=float, default=0, metavar="N",
                   help="Stop after N seconds without a request (default 0: never)")


def _print_template(ctx: "Context", fmt: str, obj: dict[str, Any], go_type: str, name: str) -> int:
    """``version``/``info --format``, as docker: the object is a Go struct (a field it lacks is an
    error naming ``go_type``), a failure prints an empty line and the bare error, exit code 1."""
    from dockyard.cli.formatting import TemplateError, as_struct, parse

    try:
        text = parse(fmt).execute(as_struct(obj, go_type), prefix="", name=name)
    except TemplateError as exc:
        ctx.print()
        ctx.warn(exc.message)
        return 1
    ctx.print(text)
    return 0


def cmd_version(args: argparse.Namespace, ctx: "Context") -> int:
    import dockyard

    if args.short:
        ctx.print(f"dockyard version {dockyard.__version__}")
        return 0
    info = ctx.client.system.version()
    if args.format:
        return _print_template(ctx, args.format, info, "system.versionInfo", "version")
    c = info["Client"]
    ctx.print("Client: dockyard")
    for label, key in (("Version", "Version"), ("API version", "ApiVersion"), ("Python version", "PythonVersion"),
                       ("Kernel version", "KernelVersion")):
        ctx.print(f" {label + ':':<19}{c[key]}")
    ctx.print(f" {'OS/Arch:':<19}{c['Os']}/{c['Arch']}")
    server = info.get("Server")
    if server:
        ctx.print()
        ctx.print(f"Server: {server['Platform']['Name']}")
        ctx.print(" Engine:")
        for label, value in (("Version", server["Version"]),
                             ("API version", f"{server['ApiVersion']} (minimum version {server['MinAPIVersion']})"),
                             ("Python version", c["PythonVersion"]), ("OS/Arch", f"{server['Os']}/{server['Arch']}"),
                             ("Experimental", "false")):
            ctx.print(f"  {label + ':':<18}{value}")
    return 0


def cmd_info(args: argparse.Namespace, ctx: "Context") -> int:
    from dockyard.cli.formatting import human_size

    info = ctx.client.system.info()
    if args.format:
        return _print_template(ctx, args.format, info, "system.dockerInfo", "")
    lines = [
        "Server:",
        f" Containers: {info['Containers']}",
        f"  Running: {info['ContainersRunning']}",
        f"  Paused: {info['ContainersPaused']}",
        f"  Stopped: {info['ContainersStopped']}",
        f" Images: {info['Images']}",
        f" Server Version: {info['ServerVersion']}",
        f" Storage Driver: {info['Driver']}",
        *(f"  {k}: {v}" for k, v in info["DriverStatus"]),
        f" Cgroup Driver: {info['CgroupDriver']}",
        f" Cgroup Version: {info['CgroupVersion']}",
        f" Runtimes: {' '.join(info['Runtimes'])}",
        f" Default Runtime: {info['DefaultRuntime']}",
        f" Kernel Version: {info['KernelVersion']}",
        f" Operating System: {info['OperatingSystem']}",
        f" OSType: {info['OSType']}",
        f" Architecture: {info['Architecture']}",
        f" CPUs: {info['NCPU']}",
        f" Total Memory: {human_size(info['MemTotal'], binary=True)}",
        f" Name: {info['Name']}",
        f" Docker Root Dir: {info['DockerRootDir']}",
    ]
    ctx.print("\n".join(lines))
    return 0


def cmd_df(args: argparse.Namespace, ctx: "Context") -> int:
    from dockyard.cli.formatting import format_output, human_size

    df = ctx.client.system.df()
    if args.verbose and not args.format:
        from dockyard.cli.disk_usage import print_verbose

        print_verbose(ctx, df)
        return 0
    images = df["Images"]
    img_size = sum(i["Size"] for i in images)
    img_active = [i for i in images if i["Containers"]]
    img_reclaim = img_size - sum(i["Size"] for i in img_active)
    ctrs = df["Containers"]
    ctr_size = sum(c["SizeRw"] or 0 for c in ctrs)
    ctr_active = [c for c in ctrs if c["State"] in ("running", "paused")]
    ctr_reclaim = ctr_size - sum(c["SizeRw"] or 0 for c in ctr_active)
    vols = df["Volumes"]
    vol_size = sum(max(0, (v.get("UsageData") or {}).get("Size", 0)) for v in vols)
    vol_active = [v for v in vols if (v.get("UsageData") or {}).get("RefCount", 0)]
    vol_reclaim = vol_size - sum(max(0, (v.get("UsageData") or {}).get("Size", 0)) for v in vol_active)
    cache = df["BuildCache"]
    cache_size = sum(b.get("size", 0) for b in cache)
    cache_active = [b for b in cache if b.get("in_use")]

    def pct(part: int, whole: int) -> str:
        return f"{human_size(part)} ({int(part * 100 / whole) if whole else 0}%)"

    rows = [
        {"Type": "Images", "TotalCount": str(len(images)), "Active": str(len(img_active)),
         "Size": human_size(img_size), "Reclaimable": pct(img_reclaim, img_size)},
        {"Type": "Containers", "TotalCount": str(len(ctrs)), "Active": str(len(ctr_active)),
         "Size": human_size(ctr_size), "Reclaimable": pct(ctr_reclaim, ctr_size) if ctr_size else "0B"},
        {"Type": "Local Volumes", "TotalCount": str(len(vols)), "Active": str(len(vol_active)),
         "Size": human_size(vol_size), "Reclaimable": pct(vol_reclaim, vol_size) if vol_size else "0B"},
        {"Type": "Build Cache", "TotalCount": str(len(cache)), "Active": str(len(cache_active)),
         "Size": human_size(cache_size), "Reclaimable": human_size(cache_size - sum(b.get("size", 0) for b in cache_active))},
    ]
    columns = [("TYPE", "Type"), ("TOTAL", "TotalCount"), ("ACTIVE", "Active"), ("SIZE", "Size"),
               ("RECLAIMABLE", "Reclaimable")]
    out = format_output(rows, args.format, columns, {k: h for h, k in columns})
    if out:
        ctx.out.write(out if out.endswith("\n") else out + "\n")
    return 0


def cmd_prune(args: argparse.Namespace, ctx: "Context") -> int:
    from dockyard.cli.formatting import human_size
    from dockyard.cli.image import confirm

    items = ["all stopped containers", "all networks not used by at least one container"]
    if args.volumes:
        items.append("all anonymous volumes not used by at least one container")
    items.append("all images without at least one container associated to them" if args.all else "all dangling images")
    items.append("all build cache" if args.all else "unused build cache")
    warning = "WARNING! This will remove:\n" + "\n".join(f"  - {i}" for i in items)
    if not args.force and not confirm(ctx, warning):
        return 0
    report = ctx.client.system.prune(all=args.all, volumes=args.volumes)
    reclaimed = 0
    deleted_containers = (report.get("Containers") or {}).get("ContainersDeleted") or []
    if deleted_containers:
        ctx.print("Deleted Containers:")
        for c in deleted_containers:
            ctx.print(c)
        ctx.print()
    reclaimed += (report.get("Containers") or {}).get("SpaceReclaimed", 0) or 0
    deleted_networks = (report.get("Networks") or {}).get("NetworksDeleted") or []
    if deleted_networks:
        ctx.print("Deleted Networks:")
        for n in deleted_networks:
            ctx.print(n)
        ctx.print()
    deleted_volumes = (report.get("Volumes") or {}).get("VolumesDeleted") or []
    if deleted_volumes:
        ctx.print("Deleted Volumes:")
        for v in deleted_volumes:
            ctx.print(v)
        ctx.print()
    reclaimed += (report.get("Volumes") or {}).get("SpaceReclaimed", 0) or 0
    images = report["Images"]
    if images.get("ImagesDeleted"):
        ctx.print("Deleted Images:")
        for rec in images["ImagesDeleted"]:
            for k, v in rec.items():
                ctx.print(f"{k.lower()}: {v}")
        ctx.print()
    reclaimed += images.get("SpaceReclaimed", 0)
    reclaimed += (report.get("BuildCache") or {}).get("SpaceReclaimed", 0) or 0
    reclaimed += report["Store"].get("reclaimed", 0)
    ctx.print(f"Total reclaimed space: {human_size(reclaimed)}")
    return 0


def cmd_inspect(args: argparse.Namespace, ctx: "Context") -> int:
    """docker's generic inspect: containers first, then images, volumes, networks."""
    from dockyard.cli.inspecting import print_inspect
    from dockyard.errors import DockyardError

    kinds = [args.type] if args.type else ["container", "image", "volume", "network"]
    getters = {
        "container": lambda n: ctx.client.containers.inspect(n, size=args.size),
        "image": lambda n: ctx.client.images.inspect(n),
        "volume": lambda n: ctx.client.volumes.inspect(n),
        "network": lambda n: ctx.client.networks.inspect(n),
    }
    found, missing = [], []
    for name in args.names:
        for kind in kinds:
            try:
                found.append(getters[kind](name))
                break
            except (DockyardError, ModuleNotFoundError, AttributeError):
                continue
        else:
            missing.append(name)
    rc = print_inspect(ctx, found, args.format)
    for name in missing:
        ctx.warn(f"Error: No such object: {name}")
    return 1 if missing else rc


def cmd_service(args: argparse.Namespace, ctx: "Context") -> int:
    """The Docker-compatible API for tools that need a daemon (``DOCKER_HOST=unix://...``)."""
    from dockyard.api.server import parse_host
    from dockyard.api.service import serve

    client = ctx.client
    return serve(client, parse_host(args.host, client.root), timeout=args.timeout, debug=ctx.debug)


def cmd_events(args: argparse.Namespace, ctx: "Context") -> int:
    """``docker events``: the journal's events from ``--since`` on, then new ones as they come
    (until ``--until``, or Ctrl-C)."""
    import sys

    from dockyard.cli.network import parse_filters
    from dockyard.engine import events as journal
    from dockyard.engine.timeutil import parse_timestamp
    from dockyard.errors import DockyardError

    def when(value: str | None) -> int | None:
        if not value:
            return None
        try:
            return parse_timestamp(value)
        except ValueError as exc:  # the docker CLI's own check: printed bare, exit 1
            err = DockyardError(str(exc))
            err.cli_prefix = ""
            raise err from None

    since, until = when(args.since), when(args.until)
    filters = parse_filters(args.filter, command="system events")
    try:
        journal.check_range(since, until)
    except DockyardError as exc:
        from dockyard.cli.common import DAEMON_PREFIX, shown_as

        raise shown_as(exc, DAEMON_PREFIX) from None
    show = _event_printer(args.format)
    try:
        for event in journal.stream(ctx.client.root, since, until):
            if journal.matches(event, filters):
                ctx.out.write(show(event) + "\n")
                ctx.out.flush()
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away (``| head``): as docker, killed by SIGPIPE
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # nothing more to flush at exit
        return 128 + 13
    return 0


def _message_row_class() -> Any:
    """docker's ``*events.Message`` for templates: a missing field is docker's error, ``{{.}}``
    prints as the Go struct (``{create <id> busybox container create {...} local ...}``)."""
    from dockyard.cli.formatting import GoStruct, _Row

    class MessageRow(_Row, GoStruct):
        go_type = "*events.Message"

    return MessageRow


def _event_printer(fmt: str | None) -> Any:
    """docker's line for an event, or ``--format``'s template (``json``: ``{{json .}}``) run on
    the event as docker's ``events.Message``; a bad template is docker's exit 64."""
    from dockyard.engine.events import format_line
    from dockyard.errors import DockyardError

    if not fmt:
        return format_line
    from dockyard.cli.formatting import GoMap, GoStruct, TemplateError, parse

    def fail(exc: TemplateError) -> DockyardError:
        err = DockyardError("Error parsing format: " + exc.message.removeprefix("template parsing error: "), 64)
        err.cli_prefix = ""
        return err

    try:
        tmpl = parse("{{json .}}" if fmt.strip() == "json" else fmt)
    except TemplateError as exc:
        raise fail(exc) from None

    _MessageRow = _message_row_class()

    def show(event: dict[str, Any]) -> str:
        actor = event.get("Actor") or {}
        attrs = GoMap(actor.get("Attributes") or {})
        actor_row = GoStruct({"ID": actor.get("ID", ""), "Attributes": attrs})  # prints as {ID map[...]}
        row = _MessageRow({"Status": event.get("status", ""), "ID": event.get("id", ""), "From": event.get("from", ""),
                         "Type": event.get("Type", ""), "Action": event.get("Action", ""), "Actor": actor_row,
                         "Scope": event.get("scope", ""), "Time": event.get("time", 0),
                         "TimeNano": event.get("timeNano", 0)})
        # ``{{json .}}`` prints the message as dockerd sends it (field order, omitted empties)
        row.json_view = GoStruct({**event, "Actor": actor_row})
        try:
            return tmpl.execute(row, prefix="")
        except TemplateError as exc:
            raise fail(exc) from None

    return show
