"""Manage containers

``dockyard container <verb>`` (and docker's short forms: ``run``, ``ps``, ``exec``, ``logs``...).
Handlers parse docker's flags, call ``client.containers`` and print what docker prints.
Nothing heavy is imported at module load: ``dockyard ps`` stays fast.
"""
from __future__ import annotations

import argparse
import functools
import os
import sys
from typing import TYPE_CHECKING, Any, Callable

from dockyard.cli.common import DAEMON_PREFIX, add_bool_flag, add_verb, shown_as
from dockyard.errors import DockyardError, NotFound

if TYPE_CHECKING:  # pragma: no cover
    from dockyard.cli.common import Context


# ====================================================================== how docker reports failures
def bare(message: str, exit_code: int = 1) -> DockyardError:
    """A failure the docker CLI finds itself: it prints the message as it is."""
    return shown_as(DockyardError(message, exit_code), "")


def from_daemon(exc: DockyardError) -> DockyardError:
    """Mark an engine failure as docker shows a daemon's (unless it already says how it is shown)."""
    return shown_as(exc, DAEMON_PREFIX)


def daemon_errors(fn: Callable[[argparse.Namespace, "Context"], int]) -> Callable[[argparse.Namespace, "Context"], int]:
    """A handler whose engine failures print as docker prints its daemon's."""
    @functools.wraps(fn)
    def handler(args: argparse.Namespace, ctx: "Context") -> int:
        try:
            return fn(args, ctx)
        except DockyardError as exc:
            raise from_daemon(exc) from None
    return handler


def _start_failure(args: argparse.Namespace, verb: str, exc: DockyardError, client_side: bool) -> DockyardError:
    """docker run/create's report: a bad flag value with the usage line; anything else behind
    ``docker:`` (run; create only for its own checks) and a pointer to --help."""
    if client_side and exc.message.startswith('invalid argument "'):
        return flag_failure(args, exc.message)
    if not client_side:
        from_daemon(exc)
    if verb == "create" and not client_side:
        return bare(f"{exc.cli_prefix}{exc.message}", 1)
    return bare(f"dockyard: {exc.cli_prefix if not client_side else ''}{exc.message}\n\n"
                f"Run 'dockyard {verb} --help' for more information",
                exc.exit_code if exc.exit_code in (126, 127) else 125)


def flag_failure(args: argparse.Namespace, message: str) -> DockyardError:
    """A flag value docker's CLI refuses: the message, the command's usage line and a pointer
    to --help, exit 125 (the parser that read ``args`` knows the usage line)."""
    parser = getattr(args, "verb_parser", None)
    prog = parser.prog if parser is not None else "dockyard"
    usage = parser.usage_line() if hasattr(parser, "usage_line") else f"{prog} [OPTIONS]"
    return bare(f"{message}\n\nUsage:  {usage}\n\nRun '{prog} --help' for more information", 125)


# ====================================================================== flags shared by run/create
def _add_create_flags(p: argparse.ArgumentParser) -> None:
    a = p.add_argument
    a("--name", help="Assign a name to the container")
    a("-e", "--env", action="append", default=[], help="Set environment variables")
    a("--env-file", action="append", default=[], help="Read in a file of environment variables")
    a("-w", "--workdir", help="Working directory inside the container")
    a("-u", "--user", help="Username or UID (format: <name|uid>[:<group|gid>])")
    a("--entrypoint", help="Overwrite the default ENTRYPOINT of the image")
    a("-h", "--hostname", help="Container host name")
    a("--domainname", help="Container NIS domain name")
    a("-l", "--label", action="append", default=[], help="Set meta data on a container")
    a("--label-file", action="append", default=[], help="Read in a line delimited file of labels")
    a("-v", "--volume", action="append", default=[], help="Bind mount a volume")
    a("--mount", action="append", default=[], help="Attach a filesystem mount to the container")
    a("--volumes-from", action="append", default=[], help="Mount volumes from the specified container(s)")
    a("--tmpfs", action="append", default=[], help="Mount a tmpfs directory")
    a("--read-only", action="store_true", help="Mount the container's root filesystem as read only")
    a("--cap-add", action="append", default=[], help="Add Linux capabilities")
    a("--cap-drop", action="append", default=[], help="Drop Linux capabilities")
    a("--privileged", action="store_true", help="Give extended privileges to this container")
    a("--restart", help="Restart policy to apply when a container exits (default \"no\")")
    a("--init", action="store_true", help="Run an init inside the container that forwards signals and reaps processes")
    a("-m", "--memory", help="Memory limit")
    a("--memory-swap", help="Swap limit equal to memory plus swap: '-1' to enable unlimited swap")
    a("--memory-reservation", help="Memory soft limit")
    a("--cpus", help="Number of CPUs")
    a("-c", "--cpu-shares", help="CPU shares (relative weight)")
    a("--cpu-period", help="Limit CPU CFS (Completely Fair Scheduler) period")
    a("--cpu-quota", help="Limit CPU CFS (Completely Fair Scheduler) quota")
    a("--cpuset-cpus", help="CPUs in which to allow execution (0-3, 0,1)")
    a("--cpuset-mems", help="MEMs in which to allow execution (0-3, 0,1)")
    a("--pids-limit", help="Tune container pids limit (set -1 for unlimited)")
    a("--shm-size", help="Size of /dev/shm")
    a("--oom-kill-disable", action="store_true", help="Disable OOM Killer")
    a("--oom-score-adj", help="Tune host's OOM preferences (-1000 to 1000)")
    a("--memory-swappiness", help="Tune container memory swappiness (0 to 100) (default -1)")
    a("--kernel-memory", help="Kernel memory limit (deprecated: not applied)")
    a("--blkio-weight", help="Block IO (relative weight), between 10 and 1000, or 0 to disable (default 0)")
    a("--device-cgroup-rule", action="append", default=[], help="Add a rule to the cgroup allowed devices list")
    a("--userns", help="User namespace to use (only \"host\": dockyard does not remap users)")
    a("--isolation", help="Container isolation technology (only \"default\" on Linux)")
    a("--storage-opt", action="append", default=[], help="Storage driver options for the container")
    a("--volume-driver", help="Optional volume driver for the container (only \"local\")")
    add_bool_flag(p, "--disable-content-trust", default="true",
                  help="Skip image verification (default true; content trust is not supported)")
    a("--ulimit", action="append", default=[], help="Ulimit options")
    a("--health-cmd", help="Command to run to check health")
    a("--health-interval", help="Time between running the check (ms|s|m|h) (default 0s)")
    a("--health-timeout", help="Maximum time to allow one check to run (ms|s|m|h) (default 0s)")
    a("--health-start-period", help="Start period for the container to initialize before starting health-retries countdown (ms|s|m|h) (default 0s)")
    a("--health-retries", help="Consecutive failures needed to report unhealthy")
    a("--no-healthcheck", action="store_true", help="Disable any container-specified HEALTHCHECK")
    a("--network", "--net", help="Connect a container to a network")
    a("--network-alias", "--net-alias", action="append", default=[], help="Add network-scoped alias for the container")
    a("--link", action="append", default=[], help="Add link to another container")
    a("-p", "--publish", action="append", default=[], help="Publish a container's port(s) to the host")
    a("-P", "--publish-all", action="store_true", help="Publish all exposed ports to random ports")
    a("--expose", action="append", default=[], help="Expose a port or a range of ports")
    a("--dns", action="append", default=[], help="Set custom DNS servers")
    a("--dns-search", action="append", default=[], help="Set custom DNS search domains")
    a("--dns-option", "--dns-opt", action="append", default=[], help="Set DNS options")
    a("--add-host", action="append", default=[], help="Add a custom host-to-IP mapping (host:ip)")
    a("--ip", help="IPv4 address (e.g., 172.30.100.104)")
    a("--mac-address", help="Container MAC address (e.g., 92:d0:c6:0a:29:33)")
    a("--stop-signal", help="Signal to stop the container")
    a("--stop-timeout", help="Timeout (in seconds) to stop a container")
    a("--log-driver", help="Logging driver for the container")
    a("--log-opt", action="append", default=[], help="Log driver options")
    a("--runtime", help="Runtime to use for this container")
    a("--security-opt", action="append", default=[], help="Security Options")
    a("--sysctl", action="append", default=[], help="Sysctl options")
    a("--device", action="append", default=[], help="Add a host device to the container")
    a("--gpus", help="GPU devices to add to the container ('all' to pass all GPUs)")
    a("--group-add", action="append", default=[], help="Add additional groups to join")
    a("--ipc", help="IPC mode to use")
    a("--pid", help="PID namespace to use")
    a("--uts", help="UTS namespace to use")
    a("--cgroupns", help="Cgroup namespace to use (host|private)")
    a("--cgroup-parent", help="Optional parent cgroup for the container")
    a("--platform", help="Set platform if server is multi-platform capable")
    a("--pull", choices=("always", "missing", "never"), default="missing",
      help='Pull image before running ("always"|"missing"|"never")')
    a("--cidfile", help="Write the container ID to the file")
    a("-i", "--interactive", action="store_true", help="Keep STDIN open even if not attached")
    a("-t", "--tty", action="store_true", help="Allocate a pseudo-TTY")
    a("-q", "--quiet", action="store_true", help="Suppress the pull output")
    a("image", metavar="IMAGE")
    a("command", nargs=argparse.REMAINDER, metavar="[COMMAND] [ARG...]")


def _options(args: argparse.Namespace) -> Any:
    from dockyard.engine.options import RunOptions

    return RunOptions(
        image=args.image, command=list(args.command), name=args.name,
        detach=bool(getattr(args, "detach", False)), interactive=args.interactive, tty=args.tty,
        auto_remove=bool(getattr(args, "rm", False)), env=args.env, env_file=args.env_file,
        workdir=args.workdir, user=args.user, entrypoint=args.entrypoint, hostname=args.hostname,
        domainname=args.domainname, labels=args.label, label_file=args.label_file, volumes=args.volume,
        mounts=args.mount, volumes_from=args.volumes_from, tmpfs=args.tmpfs, read_only=args.read_only, cap_add=args.cap_add,
        cap_drop=args.cap_drop, privileged=args.privileged, restart=args.restart, init=args.init,
        memory=args.memory, memory_swap=args.memory_swap, memory_reservation=args.memory_reservation,
        cpus=args.cpus, cpu_shares=args.cpu_shares, cpu_period=args.cpu_period, cpu_quota=args.cpu_quota,
        cpuset_cpus=args.cpuset_cpus, cpuset_mems=args.cpuset_mems, pids_limit=args.pids_limit,
        shm_size=args.shm_size, oom_kill_disable=args.oom_kill_disable, ulimits=args.ulimit,
        oom_score_adj=args.oom_score_adj, memory_swappiness=args.memory_swappiness,
        kernel_memory=args.kernel_memory, blkio_weight=args.blkio_weight,
        device_cgroup_rules=args.device_cgroup_rule, userns=args.userns, isolation=args.isolation,
        storage_opt=args.storage_opt, volume_driver=args.volume_driver,
        health_cmd=args.health_cmd, health_interval=args.health_interval, health_timeout=args.health_timeout,
        health_start_period=args.health_start_period, health_retries=args.health_retries,
        no_healthcheck=args.no_healthcheck, network=args.network, network_aliases=args.network_alias,
        links=args.link,
        publish=args.publish, publish_all=args.publish_all, expose=args.expose, dns=args.dns,
        dns_search=args.dns_search, dns_option=args.dns_option, add_host=args.add_host, ip=args.ip,
        mac_address=args.mac_address, stop_signal=args.stop_signal, stop_timeout=args.stop_timeout,
        log_driver=args.log_driver, log_opts=args.log_opt, runtime=args.runtime,
        security_opt=args.security_opt, sysctl=args.sysctl, devices=args.device, group_add=args.group_add,
        attach=list(getattr(args, "attach", None) or []), ipc=args.ipc, pid=args.pid, uts=args.uts,
        cgroupns=args.cgroupns, cgroup_parent=args.cgroup_parent, platform=args.platform)


def _image_ref(image: str) -> str:
    """``busybox`` → ``busybox:latest`` as docker's "Unable to find image" message shows it."""
    if "@" in image:
        return image
    last = image.rsplit("/", 1)[-1]
    return image if ":" in last else image + ":latest"


def _ensure_image(ctx: "Context", image: str, pull: str, quiet: bool, platform: str | None = None) -> Any:
    """docker's run/create: the local image, or pull it when it is missing (``--pull``); the
    pull's progress goes to stderr as docker's does."""
    if pull != "always":
        try:
            return ctx.client.images.get(image)
        except NotFound:
            if pull == "never":
                raise NotFound(f"No such image: {_image_ref(image)}") from None
        ctx.warn(f"Unable to find image '{_image_ref(image)}' locally")
    return ctx.client.distribution.pull(image, platform=platform, progress=None if quiet else sys.stderr)


def _create(args: argparse.Namespace, ctx: "Context", verb: str) -> Any:
    """Parse the flags (docker's client-side checks), find or pull the image and create the
    container; failures come out as docker run/create print them."""
    from dockyard.engine.options import build_body

    try:
        body = build_body(_options(args))
    except DockyardError as exc:
        if exc.exit_code == 1:  # a conflict docker's CLI reports plainly (--attach with --detach)
            raise bare(exc.message, 1) from None
        raise _start_failure(args, verb, exc, client_side=True) from None
    if args.cidfile and os.path.exists(args.cidfile):  # docker's CLI looks before it asks for anything
        raise _start_failure(args, verb, DockyardError(
            f"container ID file found, make sure the other container isn't running or delete {args.cidfile}"),
            client_side=True) from None
    if args.tty:
        from dockyard.engine.terminal import terminal_size

        size = terminal_size(1)
        if size:
            body["HostConfig"]["ConsoleSize"] = [size[0], size[1]]
    try:
        if args.gpus:  # dockerd here has no device driver for GPUs
            raise DockyardError('could not select device driver "" with capabilities: [[gpu]]')
        image = _ensure_image(ctx, args.image, args.pull, args.quiet, args.platform)
        c = ctx.client.containers.create(body, args.name, image=image)
    except DockyardError as exc:
        raise _start_failure(args, verb, exc, client_side=False) from None
    from dockyard.network.conflicts import create_warnings

    for warning in create_warnings(body["HostConfig"]):
        ctx.warn(f"WARNING: {warning}")
    if args.cidfile:
        with open(args.cidfile, "x") as f:
            f.write(c.id)
    return c


def _reported(ctx: "Context", fn: Callable[[], int]) -> int:
    """Run a run/create step, printing a failure exactly as formatted (docker's own exit code:
    1 for its plain messages, 125 or the command's 126/127 otherwise)."""
    try:
        return fn()
    except DockyardError as exc:
        ctx.err.write(f"{exc.cli_prefix}{exc.message}\n")
        return exc.exit_code


def cmd_create(args: argparse.Namespace, ctx: "Context") -> int:
    def create() -> int:
        ctx.print(_create(args, ctx, "create").id)
        return 0

    return _reported(ctx, create)


def _check_tty(args: argparse.Namespace) -> None:
    from dockyard.engine.terminal import stdin_is_tty

    if args.tty and args.interactive and not stdin_is_tty():
        raise bare("the input device is not a TTY", 1)


def cmd_run(args: argparse.Namespace, ctx: "Context") -> int:
    return _reported(ctx, lambda: _run(args, ctx))


def _run(args: argparse.Namespace, ctx: "Context") -> int:
    from dockyard.engine.terminal import parse_detach_keys

    if not args.detach:
        _check_tty(args)
    keys = parse_detach_keys(args.detach_keys)
    c = _create(args, ctx, "run")
    try:
        if args.detach:
            ctx.client.containers.start(c.id)
            ctx.print(c.id)
            return 0
        cfg = c.record.cfg
        attach = {"stdin": bool(cfg.get("AttachStdin")), "stdout": bool(cfg.get("AttachStdout")),
                  "stderr": bool(cfg.get("AttachStderr"))}
        return _attach_and_wait(ctx, c.id, attach, tty=args.tty, keys=keys, sig_proxy=_bool(args.sig_proxy),
                                start=True, start_error_code=None)
    except DockyardError as exc:
        if "cli_prefix" in vars(exc):
            raise
        raise _start_failure(args, "run", exc, client_side=False) from None


def _bool(value: Any) -> bool:
    return str(value).lower() not in ("false", "0", "no")


def _attach_and_wait(ctx: "Context", cid: str, attach: dict[str, Any], *, tty: bool, keys: bytes,
                     sig_proxy: bool, start: bool, start_error_code: int | None) -> int:
    """Stream a container's stdio until it exits; its exit code (docker's for start errors)."""
    from dockyard.engine.terminal import relay_attach, terminal_size

    sys.stdout.flush()
    if tty:
        size = terminal_size(1) or terminal_size(0)
        if size:
            attach.update(h=size[0], w=size[1])
    svc = ctx.client.containers
    from dockyard.engine.events import emit_container

    emit_container(ctx.client, svc.store.load(cid), "attach")  # dockerd's, before the start
    if start:
        conn = svc.start(cid, attach=attach)
        if conn is None:  # already running: attach instead
            conn = svc.attach(cid, **attach)
    else:
        conn = svc.attach(cid, **attach)
    try:
        result = relay_attach(conn, stdin=bool(attach.get("stdin")), tty=tty, detach_keys=keys,
                              sig_proxy=sig_proxy)
    finally:
        conn.close()
    event = result.get("event")
    if event == "exit":
        return int(result.get("code", 0))
    if event == "detached":
        return 0
    if event == "error":
        code = int(result.get("code", 125))
        raise DockyardError(result.get("message", "failed to start"), start_error_code or code)
    # the monitor went away without a word: report what the record says
    rec = svc.load(cid) if svc.store.exists(cid) else None
    if rec is not None and rec.status == "exited":
        return int(rec.state.get("ExitCode", 0))
    raise DockyardError("lost the connection to the container's monitor", 125)


@daemon_errors
def cmd_start(args: argparse.Namespace, ctx: "Context") -> int:
    from dockyard.engine.terminal import parse_detach_keys

    svc = ctx.client.containers
    if args.attach or args.interactive:
        if len(args.containers) > 1:
            raise bare("you cannot start and attach multiple containers at once", 1)
        rec = svc.load(args.containers[0])
        cfg = rec.cfg
        if args.interactive and cfg.get("Tty"):
            from dockyard.engine.terminal import stdin_is_tty

            if not stdin_is_tty():
                raise bare("the input device is not a TTY", 1)
        attach = {"stdin": bool(args.interactive and cfg.get("OpenStdin")), "stdout": True, "stderr": True}
        try:
            return _attach_and_wait(ctx, rec.id, attach, tty=bool(cfg.get("Tty")),
                                    keys=parse_detach_keys(args.detach_keys), sig_proxy=True, start=True,
                                    start_error_code=1)
        except DockyardError as exc:  # docker start -a: only the daemon's error, exit 1
            raise from_daemon(DockyardError(exc.message, 1)) from None
    failed = []
    for ref in args.containers:
        try:
            svc.start(ref)
            ctx.print(ref)
        except DockyardError as exc:
            from_daemon(exc)
            ctx.warn(f"{exc.cli_prefix}{exc.message}")
            failed.append(ref)
    if failed:
        raise bare(f"Error: failed to start containers: {', '.join(failed)}", 1)
    return 0


# ====================================================================== ls
def _ellipsis(text: str, n: int) -> str:
    return text if len(text) <= n else text[:n - 1] + "…"


def _go_quote(text: str) -> str:
    import json

    return json.dumps(text, ensure_ascii=False)


PS_COLUMNS = [("CONTAINER ID", "ID"), ("IMAGE", "Image"), ("COMMAND", "Command"), ("CREATED", "RunningFor"),
              ("STATUS", "Status"), ("PORTS", "Ports"), ("NAMES", "Names")]
PS_HEADERS = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
              "RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE", "Status": "STATUS", "Size": "SIZE",
              "Names": "NAMES", "Labels": "LABELS", "Mounts": "MOUNTS", "Networks": "NETWORKS",
              "LocalVolumes": "LOCAL VOLUMES", "Platform": "PLATFORM",
              "Label": lambda key: key}  # a table header names the label asked for


def container_row(ctx: "Context", c: Any, trunc: bool, image_cache: dict, size: bool) -> dict[str, Any]:
    """The fields docker's ``ps --format`` knows (``{{.ID}}``, ``{{.Status}}``, ...), as strings."""
    import time

    from dockyard.cli.formatting import human_duration, human_size
    from dockyard.engine.timeutil import parse_rfc3339_or_zero
    from dockyard.timeutil import go_time_string
    from dockyard.engine.view import command_of, format_ports, image_shown, ports_of, status_string

    svc, rec = ctx.client.containers, c.record
    created = parse_rfc3339_or_zero(rec.config.get("Created")) / 1e9
    mounts = rec.config.get("Mounts") or []
    mode = rec.host_config.get("NetworkMode") or "default"
    cmd = command_of(rec)
    row = {
        "Command": _go_quote(_ellipsis(cmd, 20) if trunc else cmd),
        "CreatedAt": go_time_string(created, fraction=False),
        "ID": rec.id[:12] if trunc else rec.id,
        "Image": image_shown(svc, rec, image_cache),
        "Labels": ",".join(f"{k}={v}" for k, v in sorted((rec.cfg.get("Labels") or {}).items())),
        "LocalVolumes": str(sum(1 for m in mounts if m.get("Type") == "volume")),
        "Mounts": ",".join(_ellipsis(n, 15) if trunc else n for n in (m.get("Name") or m.get("Source", "")
                                                                         for m in mounts)),
        "Names": rec.name,
        "Networks": "bridge" if mode == "default" else mode,
        "Platform": None,
        "Ports": format_ports(ports_of(svc, rec)),
        "RunningFor": human_duration(time.time() - created) + " ago",
        "Size": "0B",
        "State": rec.status,
        "Status": status_string(rec.state),
    }
    if size:
        rw = svc.size_rw(rec)
        row["Size"] = f"{human_size(rw)} (virtual {human_size(rw + svc._image_size(rec))})"
    labels = rec.cfg.get("Labels") or {}
    row["Label"] = lambda key: labels.get(key, "")  # {{.Label "com.example.key"}}
    return row


PS_ROW_TYPE = "*formatter.ContainerContext"


def _check_ps_template(fmt: str) -> None:
    """docker ps parses --format (``table`` and all) and runs it once on an empty row before it
    lists anything: a mistake is reported even when nothing would be shown."""
    from dockyard.cli.formatting import TemplateError, as_struct, parse

    if not fmt or fmt.strip() in ("table", "json"):
        return
    try:
        template = parse(fmt)
    except TemplateError as exc:
        raise bare(exc.message.replace("template parsing error:", "failed to parse template:", 1)) from None
    template.execute(as_struct(dict.fromkeys(PS_HEADERS, "") | {"Label": lambda key: ""}, PS_ROW_TYPE),
                     prefix="failed to execute template")


@daemon_errors
def cmd_ls(args: argparse.Namespace, ctx: "Context") -> int:
    import re

    from dockyard.cli.formatting import format_output
    from dockyard.engine.listing import parse_filters
    from dockyard.engine.options import parse_int

    try:  # docker's CLI reads these flags itself
        last = parse_int(args.last, "-n, --last") if args.last is not None else None
        filters = parse_filters(args.filter)
    except DockyardError as exc:
        msg = exc.message if exc.message.startswith("invalid argument") else \
            f'invalid argument "{args.filter[-1]}" for "-f, --filter" flag: {exc.message}'
        raise flag_failure(args, msg) from None
    if args.quiet and args.format:
        ctx.warn("WARNING: Ignoring custom format, because both --format and --quiet are set.")
    _check_ps_template(args.format or "")
    limit = 1 if args.latest else (last if last is not None else -1)
    containers = ctx.client.containers.list(all=args.all, filters=filters, limit=limit)
    trunc = not args.no_trunc
    if args.quiet:
        for c in containers:
            ctx.print(c.id[:12] if trunc else c.id)
        return 0
    fmt = args.format or ""
    # docker asks for sizes when the template shows them (``{{json .}}`` shows every field)
    size = args.size or (not args.quiet and bool(re.search(r"\.Size\b|json\s+\.\s*}}", fmt)))
    cache: dict[str, Any] = {}
    rows = [container_row(ctx, c, trunc, cache, size) for c in containers]
    columns = PS_COLUMNS + ([("SIZE", "Size")] if args.size else [])
    out = format_output(rows, args.format, columns, PS_HEADERS, go_type=PS_ROW_TYPE, prefix="failed to execute template")
    if out:
        ctx.out.write(out if out.endswith("\n") else out + "\n")
    return 0


# ====================================================================== logs
@daemon_errors
def cmd_logs(args: argparse.Namespace, ctx: "Context") -> int:
    from dockyard.engine.timeutil import parse_timestamp

    for flag, value in (("since", args.since), ("until", args.until)):
        if value:
            try:
                parse_timestamp(value)
            except ValueError as exc:
                raise bare(f'invalid value for "{flag}": {exc}') from None
    out, err = sys.stdout.buffer, sys.stderr.buffer
    entries = ctx.client.containers.logs(args.container, follow=args.follow, since=args.since, until=args.until,
                                         tail=args.tail, timestamps=args.timestamps, details=args.details)
    try:
        for stream, data in entries:
            target = out if stream == "stdout" else err
            target.write(data)
            if args.follow:
                target.flush()
    except KeyboardInterrupt:
        return 0
    finally:
        out.flush()
        err.flush()
    return 0


# ====================================================================== exec
@daemon_errors
def cmd_exec(args: argparse.Namespace, ctx: "Context") -> int:
    from dockyard.engine.execution import exec_attached

    if args.tty and args.interactive and not args.detach:
        _check_tty(args)
    env: list[str] = []
    if args.env or args.env_file:
        from dockyard.engine.options import parse_env

        try:
            env = parse_env(args.env, args.env_file)
        except DockyardError as exc:  # docker's CLI reads them: its plain message, exit 1
            raise bare(exc.message, 1) from None
    try:
        return exec_attached(ctx.client, args.container, list(args.command), interactive=args.interactive,
                             tty=args.tty, env=env, workdir=args.workdir,
                             user=args.user, privileged=args.privileged, detach=args.detach,
                             detach_keys=args.detach_keys)
    except DockyardError as exc:
        if exc.exit_code not in (126, 127):
            raise
        ctx.print(exc.message)  # docker: the process did not start; the daemon says why in its output
        return exc.exit_code


# ====================================================================== stop / kill / restart / rm
def each_container(ctx: "Context", refs: list[str], fn: Callable[[str], Any], *, echo: bool = True,
                   missing_ok: bool = False) -> tuple[list[Any], int]:
    """``fn`` on each container as docker's multi-container verbs do: print the ref (``echo``)
    after success, one daemon error line per failure and go on; exit 1 if any failed (a missing
    container still prints its line but does not fail with ``missing_ok``: ``rm -f``)."""
    results, rc = [], 0
    for ref in refs:
        try:
            results.append(fn(ref))
        except DockyardError as exc:
            from_daemon(exc)
            ctx.warn(f"{exc.cli_prefix}{exc.message}")
            if not (missing_ok and isinstance(exc, NotFound)):
                rc = 1
            continue
        if echo:
            ctx.print(ref)
    return results, rc


def _stop_timeout(args: argparse.Namespace) -> int | None:
    from dockyard.engine.options import parse_int

    try:
        return parse_int(args.time, "-t, --timeout") if args.time is not None else None
    except DockyardError as exc:
        raise flag_failure(args, exc.message) from None


def cmd_stop(args: argparse.Namespace, ctx: "Context") -> int:
    timeout = _stop_timeout(args)
    return each_container(ctx, args.containers, lambda r: ctx.client.containers.stop(r, timeout, args.signal))[1]


def cmd_restart(args: argparse.Namespace, ctx: "Context") -> int:
    timeout = _stop_timeout(args)
    return each_container(ctx, args.containers,
                          lambda r: ctx.client.containers.restart(r, timeout, args.signal))[1]


def cmd_kill(args: argparse.Namespace, ctx: "Context") -> int:
    return each_container(ctx, args.containers, lambda r: ctx.client.containers.kill(r, args.signal))[1]


def cmd_rm(args: argparse.Namespace, ctx: "Context") -> int:
    return each_container(ctx, args.containers,
                          lambda r: ctx.client.containers.remove(r, force=args.force, volumes=args.volumes),
                          missing_ok=args.force)[1]


def cmd_pause(args: argparse.Namespace, ctx: "Context") -> int:
    return each_container(ctx, args.containers, ctx.client.containers.pause)[1]


def cmd_unpause(args: argparse.Namespace, ctx: "Context") -> int:
    return each_container(ctx, args.containers, ctx.client.containers.unpause)[1]


def cmd_wait(args: argparse.Namespace, ctx: "Context") -> int:
    return each_container(ctx, args.containers, lambda ref: ctx.print(str(ctx.client.containers.wait(ref))),
                          echo=False)[1]


def cmd_rename(args: argparse.Namespace, ctx: "Context") -> int:
    try:
        ctx.client.containers.rename(args.container, args.new_name)
    except DockyardError as exc:
        from_daemon(exc)
        ctx.warn(f"{exc.cli_prefix}{exc.message}")
        raise bare(f"Error: failed to rename container named {args.container}", 1) from None
    return 0


@daemon_errors
def cmd_prune(args: argparse.Namespace, ctx: "Context") -> int:
    from dockyard.cli.formatting import human_size
    from dockyard.engine.listing import parse_filters

    if not args.force:
        from dockyard.cli.image import confirm

        if not confirm(ctx, "WARNING! This will remove all stopped containers."):
            return 0
    report = ctx.client.containers.prune(parse_filters(args.filter))
    deleted = report.get("ContainersDeleted") or []
    if deleted:
        ctx.print("Deleted Containers:")
        for cid in deleted:
            ctx.print(cid)
        ctx.print()
    ctx.print(f"Total reclaimed space: {human_size(report.get('SpaceReclaimed', 0))}")
    return 0


# ====================================================================== inspect / top / stats / port
@daemon_errors
def cmd_inspect(args: argparse.Namespace, ctx: "Context") -> int:
    from dockyard.cli.inspecting import print_inspect

    found, rc = each_container(ctx, args.containers, lambda ref: ctx.client.containers.inspect(ref, size=args.size),
                               echo=False)
    return print_inspect(ctx, found, args.format) or rc


@daemon_errors
def cmd_top(args: argparse.Namespace, ctx: "Context") -> int:
    res = ctx.client.containers.top(args.container, " ".join(args.ps_args) if args.ps_args else None)
    rows = [res["Titles"]] + res["Processes"]
    widths = [max(20, max(len(r[i]) for r in rows) + 3) for i in range(len(res["Titles"]))]
    for r in rows:
        ctx.print("".join(c.ljust(widths[i]) if i < len(r) - 1 else c for i, c in enumerate(r)))
    return 0


STATS_COLUMNS = [("CONTAINER ID", "ID"), ("NAME", "Name"), ("CPU %", "CPUPerc"), ("MEM USAGE / LIMIT", "MemUsage"),
                 ("MEM %", "MemPerc"), ("NET I/O", "NetIO"), ("BLOCK I/O", "BlockIO"), ("PIDS", "PIDs")]
STATS_HEADERS = {k: h for h, k in STATS_COLUMNS} | {"Container": "CONTAINER"}


@daemon_errors
def cmd_stats(args: argparse.Namespace, ctx: "Context") -> int:
    """docker stats: one table (``--no-stream``) or one per second until interrupted."""
    import time

    from dockyard.cli.formatting import format_output, human_size
    from dockyard.engine.inspection import row, sample

    svc = ctx.client.containers
    if args.containers:
        recs, rc = each_container(ctx, args.containers, svc.load, echo=False)
        if rc:  # docker: every missing container said, then nothing shown
            return rc
    else:
        recs = [c.record for c in svc.list(all=args.all)]
    previous = {r.id: sample(r) for r in recs}
    try:
        while True:
            time.sleep(0.5 if args.no_stream else 1.0)
            rows = []
            for r in recs:
                r.state = svc.store.read_state(r.id)
                cur = sample(r)
                doc = dict(cur, precpu_stats=previous[r.id]["cpu_stats"])
                previous[r.id] = cur
                f = row(doc)
                running = r.status in ("running", "paused")
                rows.append({
                    "ID": r.id if args.no_trunc else r.id[:12], "Container": r.name if r.name else r.id[:12],
                    "Name": r.name, "CPUPerc": f"{f['cpu']:.2f}%" if running else "0.00%",
                    "MemUsage": f"{human_size(f['mem'], binary=True)} / {human_size(f['limit'], binary=True)}" if running else "0B / 0B",
                    "MemPerc": f"{f['mem_pct']:.2f}%" if running else "0.00%",
                    "NetIO": f"{human_size(f['net'][0])} / {human_size(f['net'][1])}",
                    "BlockIO": f"{human_size(f['block'][0])} / {human_size(f['block'][1])}",
                    "PIDs": str(f["pids"])})
            out = format_output(rows, args.format, STATS_COLUMNS, STATS_HEADERS, go_type="*container.statsContext")
            if not args.no_stream:
                ctx.out.write("\033[2J\033[H")
            ctx.out.write(out if out.endswith("\n") else out + "\n")
            ctx.out.flush()
            if args.no_stream:
                return 0
    except KeyboardInterrupt:
        return 0


@daemon_errors
def cmd_port(args: argparse.Namespace, ctx: "Context") -> int:
    from dockyard.engine.attachments import Attachments

    rec = ctx.client.containers.load(args.container)
    bindings = Attachments(ctx.client).published_ports(rec) if rec.status == "running" else []
    if args.port:
        port, _, proto = args.port.partition("/")
        proto = proto or "tcp"
        if not port.isdigit() or int(port) > 65535:  # docker: strconv.ParseUint(port, 10, 16)
            why = "invalid syntax" if not port.isdigit() else "value out of range"
            raise bare(f'Error: invalid port ({port}): strconv.ParseUint: parsing "{port}": {why}')
        hits = [b for b in bindings if b.container_port == int(port) and b.proto == proto]
        if not hits:
            raise bare(f"Error: No public port '{args.port}' published for {args.container}")
        lines = [b.host_address for b in hits]
    else:
        lines = [f"{b.container_port}/{b.proto} -> {b.host_address}" for b in bindings]
    from dockyard.network.ports import natural_key

    for line in sorted(lines, key=natural_key):  # docker sorts the lines naturally
        ctx.print(line)
    return 0


# ====================================================================== attach / cp / diff
@daemon_errors
def cmd_attach(args: argparse.Namespace, ctx: "Context") -> int:
    from dockyard.engine.terminal import parse_detach_keys

    rec = ctx.client.containers.load(args.container)
    if rec.status == "paused":  # docker's CLI looks at the state itself and says so plainly
        raise bare("You cannot attach to a paused container, unpause it first")
    if rec.status not in ("running", "restarting"):
        raise bare("You cannot attach to a stopped container, start it first")
    cfg = rec.cfg
    stdin = not args.no_stdin and bool(cfg.get("OpenStdin"))
    if stdin and cfg.get("Tty"):
        _check_tty(argparse.Namespace(tty=True, interactive=True))
    attach = {"stdin": stdin, "stdout": True, "stderr": True}
    return _attach_and_wait(ctx, rec.id, attach, tty=bool(cfg.get("Tty")), keys=parse_detach_keys(args.detach_keys),
                            sig_proxy=_bool(args.sig_proxy), start=False, start_error_code=1)


@daemon_errors
def cmd_cp(args: argparse.Namespace, ctx: "Context") -> int:
    from dockyard.engine.archive import copy_command

    return copy_command(ctx.client, args.src, args.dest, follow_link=args.follow_link, archive=args.archive,
                        quiet=args.quiet)


@daemon_errors
def cmd_diff(args: argparse.Namespace, ctx: "Context") -> int:
    from dockyard.engine.archive import changes

    for kind, path in changes(ctx.client, args.container):
        ctx.print(f"{kind} {path}")
    return 0


@daemon_errors
def cmd_commit(args: argparse.Namespace, ctx: "Context") -> int:
    from dockyard.engine.commit import commit

    if args.repository:  # docker's CLI reads the reference before it asks about the container
        from dockyard.image.reference import parse

        try:
            parse(args.repository)
        except DockyardError as exc:
            raise bare(exc.message) from None
    image = commit(ctx.client, args.container, args.repository, changes=args.change, message=args.message or "",
                   author=args.author or "", pause=_bool(args.pause))
    ctx.print(image.id)
    return 0


# ====================================================================== parser
def _run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-d", "--detach", action="store_true", help="Run container in background and print container ID")
    p.add_argument("--rm", action="store_true", help="Automatically remove the container when it exits")
    p.add_argument("-a", "--attach", action="append", default=[], help="Attach to STDIN, STDOUT or STDERR")
    p.add_argument("--sig-proxy", nargs="?", const="true", default="true", help="Proxy received signals to the process")
    p.add_argument("--detach-keys", help="Override the key sequence for detaching a container")
    _add_create_flags(p)


def _create_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rm", action="store_true", help="Automatically remove the container when it exits")
    p.add_argument("-a", "--attach", action="append", default=[], help="Attach to STDIN, STDOUT or STDERR")
    _add_create_flags(p)


def _start_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--attach", action="store_true", help="Attach STDOUT/STDERR and forward signals")
    p.add_argument("-i", "--interactive", action="store_true", help="Attach container's STDIN")
    p.add_argument("--detach-keys", help="Override the key sequence for detaching a container")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")


def _ls_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--all", action="store_true", help="Show all containers (default shows just running)")
    p.add_argument("-q", "--quiet", action="store_true", help="Only display container IDs")
    p.add_argument("-s", "--size", action="store_true", help="Display total file sizes")
    p.add_argument("-n", "--last", help="Show n last created containers (includes all states)")
    p.add_argument("-l", "--latest", action="store_true", help="Show the latest created container (includes all states)")
    p.add_argument("-f", "--filter", action="append", default=[], help="Filter output based on conditions provided")
    p.add_argument("--format", help="Format output using a custom template")
    p.add_argument("--no-trunc", action="store_true", help="Don't truncate output")


def _logs_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--follow", action="store_true", help="Follow log output")
    p.add_argument("--since", help="Show logs since timestamp or relative (e.g. 42m for 42 minutes)")
    p.add_argument("--until", help="Show logs before a timestamp or relative (e.g. 42m for 42 minutes)")
    p.add_argument("-n", "--tail", default="all", help='Number of lines to show from the end of the logs (default "all")')
    p.add_argument("-t", "--timestamps", action="store_true", help="Show timestamps")
    p.add_argument("--details", action="store_true", help="Show extra details provided to logs")
    p.add_argument("container", metavar="CONTAINER")


def _exec_flags(p: argparse.ArgumentParser) -> None:
    from dockyard.cli.fast_exec import EXEC_FLAGS  # one flag table for argparse and the fast path

    for short, long, kind, help_ in EXEC_FLAGS:
        names = [n for n in (short, long) if n]
        if kind == "bool":
            p.add_argument(*names, action="store_true", help=help_)
        elif kind == "append":
            p.add_argument(*names, action="append", default=[], help=help_)
        else:
            p.add_argument(*names, help=help_)
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND [ARG...]")


def _stop_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-t", "--timeout", "--time", dest="time", help="Seconds to wait before killing the container")
    p.add_argument("-s", "--signal", help="Signal to send to the container")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")


def _kill_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-s", "--signal", default="KILL", help="Signal to send to the container")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")


def _rm_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--force", action="store_true", help="Force the removal of a running container (uses SIGKILL)")
    p.add_argument("-v", "--volumes", action="store_true", help="Remove anonymous volumes associated with the container")
    p.add_argument("-l", "--link", action="store_true", help="Remove the specified link")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")


def _containers_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("containers", nargs="+", metavar="CONTAINER")


def _inspect_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--format", help="Format output using a custom template")
    p.add_argument("-s", "--size", action="store_true", help="Display total file sizes")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")


def _top_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("ps_args", nargs=argparse.REMAINDER, metavar="[ps OPTIONS]")


def _stats_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--all", action="store_true", help="Show all containers (default shows just running)")
    p.add_argument("--no-stream", action="store_true", help="Disable streaming stats and only pull the first result")
    p.add_argument("--no-trunc", action="store_true", help="Do not truncate output")
    p.add_argument("--format", help="Format output using a custom template")
    p.add_argument("containers", nargs="*", metavar="CONTAINER")


def _port_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("port", nargs="?", metavar="PRIVATE_PORT[/PROTO]")


def _rename_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("new_name", metavar="NEW_NAME")


def _attach_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--detach-keys", help="Override the key sequence for detaching a container")
    p.add_argument("--no-stdin", action="store_true", help="Do not attach STDIN")
    p.add_argument("--sig-proxy", nargs="?", const="true", default="true", help="Proxy all received signals to the process")
    p.add_argument("container", metavar="CONTAINER")


def _cp_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--archive", action="store_true", help="Archive mode (copy all uid/gid information)")
    p.add_argument("-L", "--follow-link", action="store_true", help="Always follow symbol link in SRC_PATH")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress progress output during copy")
    p.add_argument("src", metavar="SRC_PATH")
    p.add_argument("dest", metavar="DEST_PATH")


def _container_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("container", metavar="CONTAINER")


def _commit_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--author", help='Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")')
    p.add_argument("-c", "--change", action="append", default=[], help="Apply Dockerfile instruction to the created image")
    p.add_argument("-m", "--message", help="Commit message")
    p.add_argument("-p", "--pause", nargs="?", const="true", default="true", help="Pause container during commit")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("repository", nargs="?", metavar="[REPOSITORY[:TAG]]")


def _prune_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    p.add_argument("--filter", action="append", default=[], help="Provide filter values (e.g. 'until=<timestamp>')")


def _export_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", help="Write to a file, instead of STDOUT")
    p.add_argument("container", metavar="CONTAINER")


@daemon_errors
def cmd_export(args: argparse.Namespace, ctx: "Context") -> int:
    from dockyard.engine.exporting import TTY_REFUSAL, export_container, export_to_file

    if args.output:  # the path is checked before the container is looked up, as docker's CLI does
        export_to_file(ctx.client, args.container, args.output)
        return 0
    if sys.stdout.isatty():
        raise bare(TTY_REFUSAL)
    ctx.out.flush()
    export_container(ctx.client, args.container, sys.stdout.buffer)
    sys.stdout.buffer.flush()
    return 0


def _update_flags(p: argparse.ArgumentParser) -> None:
    for names, help_ in ((("--blkio-weight",), "Block IO (relative weight), between 10 and 1000, or 0 to disable (default 0)"),
                         (("--cpu-period",), "Limit CPU CFS (Completely Fair Scheduler) period"),
                         (("--cpu-quota",), "Limit CPU CFS (Completely Fair Scheduler) quota"),
                         (("-c", "--cpu-shares"), "CPU shares (relative weight)"),
                         (("--cpus",), "Number of CPUs"),
                         (("--cpuset-cpus",), "CPUs in which to allow execution (0-3, 0,1)"),
                         (("--cpuset-mems",), "MEMs in which to allow execution (0-3, 0,1)"),
                         (("--kernel-memory",), argparse.SUPPRESS),
                         (("-m", "--memory"), "Memory limit"),
                         (("--memory-reservation",), "Memory soft limit"),
                         (("--memory-swap",), 'Swap limit equal to memory plus swap: -1 to enable unlimited swap'),
                         (("--pids-limit",), "Tune container pids limit (set -1 for unlimited)"),
                         (("--restart",), "Restart policy to apply when a container exits")):
        p.add_argument(*names, help=help_)
    p.add_argument("containers", nargs="+", metavar="CONTAINER")


def _parse_uint16(value: str, flag: str) -> int:
    """A ``uint16`` flag as cobra parses it (``strconv.ParseUint`` words)."""
    from dockyard.engine.options import flag_error

    if not value.isdigit():
        raise flag_error(value, flag, f'strconv.ParseUint: parsing "{value}": invalid syntax')
    if int(value) > 0xFFFF:
        raise flag_error(value, flag, f'strconv.ParseUint: parsing "{value}": value out of range')
    return int(value)


def cmd_update(args: argparse.Namespace, ctx: "Context") -> int:
    """``docker update``: each container's name as given once updated; the warnings, then every
    failure (``Error response from daemon: ...``) at the end, exit 1 if any failed."""
    from dockyard.engine.options import parse_bytes, parse_cpus, parse_int, parse_restart

    flags = {"--blkio-weight": args.blkio_weight, "--cpu-period": args.cpu_period, "--cpu-quota": args.cpu_quota,
             "--cpu-shares": args.cpu_shares, "--cpus": args.cpus, "--cpuset-cpus": args.cpuset_cpus,
             "--cpuset-mems": args.cpuset_mems, "--kernel-memory": args.kernel_memory, "--memory": args.memory,
             "--memory-reservation": args.memory_reservation, "--memory-swap": args.memory_swap,
             "--pids-limit": args.pids_limit, "--restart": args.restart}
    if all(v is None for v in flags.values()):
        raise bare("you must provide one or more flags when using this command")
    try:
        body: dict[str, Any] = {
            "BlkioWeight": _parse_uint16(args.blkio_weight, "--blkio-weight") if args.blkio_weight else 0,
            "CpuPeriod": parse_int(args.cpu_period, "--cpu-period") if args.cpu_period else 0,
            "CpuQuota": parse_int(args.cpu_quota, "--cpu-quota") if args.cpu_quota else 0,
            "CpuShares": parse_int(args.cpu_shares, "-c, --cpu-shares") if args.cpu_shares else 0,
            "NanoCpus": parse_cpus(args.cpus) if args.cpus else 0,
            "CpusetCpus": args.cpuset_cpus or "", "CpusetMems": args.cpuset_mems or "",
            "KernelMemory": parse_bytes(args.kernel_memory, "--kernel-memory") if args.kernel_memory else 0,
            "Memory": parse_bytes(args.memory, "-m, --memory") if args.memory else 0,
            "MemoryReservation": parse_bytes(args.memory_reservation, "--memory-reservation")
            if args.memory_reservation else 0,
            "MemorySwap": parse_bytes(args.memory_swap, "--memory-swap") if args.memory_swap else 0,
        }
        if args.pids_limit is not None:
            body["PidsLimit"] = parse_int(args.pids_limit, "--pids-limit")
    except DockyardError as exc:
        raise flag_failure(args, exc.message) from None
    if args.restart is not None:
        try:
            body["RestartPolicy"] = parse_restart(args.restart)
        except DockyardError as exc:  # docker's CLI reads it after the flags: bare, exit 1
            raise bare(exc.message) from None
    warnings: list[str] = []
    errors: list[str] = []
    for ref in args.containers:
        try:
            warnings += ctx.client.containers.update(ref, body)
        except DockyardError as exc:
            from_daemon(exc)
            errors.append(f"{exc.cli_prefix}{exc.message}")
            continue
        ctx.print(ref)
    if warnings:
        ctx.print("\n".join(warnings))
    if errors:
        ctx.warn("\n".join(errors))
        return 1
    return 0


# name, handler, help, aliases, flags, usage (run/create free -h for --hostname)
VERBS: tuple[tuple[str, Any, str, tuple[str, ...], Any, str | None], ...] = (
    ("run", cmd_run, "Create and run a new container from an image", (), _run_flags,
     "dockyard run [OPTIONS] IMAGE [COMMAND] [ARG...]"),
    ("create", cmd_create, "Create a new container", (), _create_flags,
     "dockyard create [OPTIONS] IMAGE [COMMAND] [ARG...]"),
    ("start", cmd_start, "Start one or more stopped containers", (), _start_flags, None),
    ("ls", cmd_ls, "List containers", ("ps", "list"), _ls_flags, None),
    ("logs", cmd_logs, "Fetch the logs of a container", (), _logs_flags, None),
    ("exec", cmd_exec, "Execute a command in a running container", (), _exec_flags, None),
    ("stop", cmd_stop, "Stop one or more running containers", (), _stop_flags, None),
    ("restart", cmd_restart, "Restart one or more containers", (), _stop_flags, None),
    ("kill", cmd_kill, "Kill one or more running containers", (), _kill_flags, None),
    ("rm", cmd_rm, "Remove one or more containers", ("remove",), _rm_flags, None),
    ("pause", cmd_pause, "Pause all processes within one or more containers", (), _containers_arg, None),
    ("unpause", cmd_unpause, "Unpause all processes within one or more containers", (), _containers_arg, None),
    ("wait", cmd_wait, "Block until one or more containers stop, then print their exit codes", (), _containers_arg, None),
    ("inspect", cmd_inspect, "Display detailed information on one or more containers", (), _inspect_flags, None),
    ("top", cmd_top, "Display the running processes of a container", (), _top_flags, None),
    ("stats", cmd_stats, "Display a live stream of container(s) resource usage statistics", (), _stats_flags, None),
    ("port", cmd_port, "List port mappings or a specific mapping for the container", (), _port_flags, None),
    ("rename", cmd_rename, "Rename a container", (), _rename_flags, None),
    ("attach", cmd_attach, "Attach local standard input, output, and error streams to a running container", (),
     _attach_flags, None),
    ("cp", cmd_cp, "Copy files/folders between a container and the local filesystem", (), _cp_flags, None),
    ("diff", cmd_diff, "Inspect changes to files or directories on a container's filesystem", (), _container_arg, None),
    ("commit", cmd_commit, "Create a new image from a container's changes", (), _commit_flags, None),
    ("export", cmd_export, "Export a container's filesystem as a tar archive", (), _export_flags, None),
    ("update", cmd_update, "Update configuration of one or more containers", (), _update_flags, None),
    ("prune", cmd_prune, "Remove all stopped containers", (), _prune_flags, None),
)


def build_parser(sub: Any, verb: str | None = None) -> None:
    """Every verb; only ``verb``'s flags are defined when it is known (argparse is slow to build)."""
    for name, fn, helptext, aliases, flags, usage in VERBS:
        p = add_verb(sub, name, fn, helptext, aliases=list(aliases), add_help=usage is None, usage=usage)
        if verb is None or verb == name or verb in aliases:
            flags(p)
            p.set_defaults(verb_parser=p)  # its usage line for docker's flag errors


build_parser.takes_verb = True  # type: ignore[attr-defined]
