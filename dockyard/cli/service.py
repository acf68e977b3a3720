"""Manage Swarm services"""
from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from dockyard.cli.common import FORMAT_HELP_TABLE, add_verb
from dockyard.cli.network import daemon_errors

if TYPE_CHECKING:  # pragma: no cover
    from dockyard.cli.common import Context

LS_COLUMNS = [("ID", "ID"), ("NAME", "Name"), ("MODE", "Mode"), ("REPLICAS", "Replicas"),
              ("IMAGE", "Image"), ("PORTS", "Ports")]
PS_COLUMNS = [("ID", "ID"), ("NAME", "Name"), ("IMAGE", "Image"), ("NODE", "Node"),
              ("DESIRED STATE", "DesiredState"), ("CURRENT STATE", "CurrentState"), ("ERROR", "Error"),
              ("PORTS", "Ports")]


def _spec_flags(p: argparse.ArgumentParser, create: bool) -> None:
    """The flags ``create`` and ``update`` share (docker's names, types and words)."""
    p.add_argument("-d", "--detach", action="store_true",
                   help="Exit immediately instead of waiting for the service to converge")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress progress output")
    p.add_argument("--replicas", type=int, metavar="uint", help="Number of tasks")
    p.add_argument("--health-cmd", help="Command to run to check health")
    p.add_argument("--health-interval", metavar="duration", help="Time between running the check (ms|s|m|h)")
    p.add_argument("--health-retries", type=int, metavar="int", help="Consecutive failures needed to report unhealthy")
    p.add_argument("--health-start-period", metavar="duration",
                   help="Start period for the container to initialize before counting retries towards unstable (ms|s|m|h)")
    p.add_argument("--health-timeout", metavar="duration", help="Maximum time to allow one check to run (ms|s|m|h)")
    p.add_argument("--no-healthcheck", action="store_true", help="Disable any container-specified HEALTHCHECK")
    p.add_argument("--update-parallelism", type=int, metavar="uint",
                   help="Maximum number of tasks updated simultaneously (0 to update all at once)"
                   + (" (default 1)" if create else ""))
    p.add_argument("--update-delay", metavar="duration", help="Delay between updates (ns|us|ms|s|m|h)"
                   + (" (default 0s)" if create else ""))
    p.add_argument("--update-order", metavar="string",
                   help='Update order ("start-first", "stop-first")')
    p.add_argument("--update-failure-action", metavar="string",
                   help='Action on update failure ("pause", "continue", "rollback")' + (' (default "pause")' if create else ""))
    p.add_argument("--restart-condition", metavar="string",
                   help='Restart when condition is met ("none", "on-failure", "any")' + (' (default "any")' if create else ""))
    p.add_argument("--restart-delay", metavar="duration",
                   help="Delay between restart attempts (ns|us|ms|s|m|h)" + (" (default 5s)" if create else ""))
    p.add_argument("--restart-max-attempts", type=int, metavar="uint", help="Maximum number of restarts before giving up")
    p.add_argument("--stop-grace-period", metavar="duration",
                   help="Time to wait before force killing a container (ns|us|ms|s|m|h)" + (" (default 10s)" if create else ""))
    p.add_argument("--stop-signal", metavar="string", help="Signal to stop the container")
    p.add_argument("-u", "--user", metavar="string", help="Username or UID (format: <name|uid>[:<group|gid>])")
    p.add_argument("-w", "--workdir", metavar="string", help="Working directory inside the container")
    p.add_argument("--hostname", metavar="string", help="Container hostname")
    p.add_argument("--entrypoint", metavar="command", help="Overwrite the default ENTRYPOINT of the image")
    p.add_argument("--init", action="store_true",
                   help="Use an init inside each service container to forward signals and reap processes")
    p.add_argument("--read-only", action="store_true", help="Mount the container's root filesystem as read only")
    p.add_argument("-t", "--tty", action="store_true", help="Allocate a pseudo-TTY")
    p.add_argument("--limit-cpu", metavar="decimal", help="Limit CPUs")
    p.add_argument("--limit-memory", metavar="bytes", help="Limit Memory")
    p.add_argument("--limit-pids", type=int, metavar="int", help="Limit maximum number of processes (default 0 = unlimited)")
    p.add_argument("--cap-add", action="append", default=[], metavar="list", help="Add Linux capabilities")
    p.add_argument("--cap-drop", action="append", default=[], metavar="list", help="Drop Linux capabilities")


def build_parser(sub: Any) -> None:
    p = add_verb(sub, "create", cmd_create, "Create a new service")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="[COMMAND] [ARG...]")
    p.add_argument("--name", metavar="string", help="Service name")
    p.add_argument("--mode", metavar="string", default="replicated",
                   help='Service mode ("replicated", "global", "replicated-job", "global-job")')
    p.add_argument("-p", "--publish", action="append", default=[], metavar="port", help="Publish a port as a node port")
    p.add_argument("-e", "--env", action="append", default=[], metavar="list", help="Set environment variables")
    p.add_argument("-l", "--label", action="append", default=[], metavar="list", help="Service labels")
    p.add_argument("--container-label", action="append", default=[], metavar="list", help="Container labels")
    p.add_argument("--env-file", action="append", default=[], metavar="list", help="Read in a file of environment variables")
    p.add_argument("--mount", action="append", default=[], metavar="mount", help="Attach a filesystem mount to the service")
    _spec_flags(p, create=True)

    p = add_verb(sub, "ls", cmd_ls, "List services", aliases=["list"])
    p.add_argument("-q", "--quiet", action="store_true", help="Only display IDs")
    p.add_argument("-f", "--filter", action="append", default=[], metavar="filter",
                   help="Filter output based on conditions provided")
    p.add_argument("--format", metavar="string", help=FORMAT_HELP_TABLE)

    p = add_verb(sub, "ps", cmd_ps, "List the tasks of one or more services")
    p.add_argument("services", nargs="+", metavar="SERVICE")
    p.add_argument("-q", "--quiet", action="store_true", help="Only display task IDs")
    p.add_argument("--no-trunc", action="store_true", help="Do not truncate output")
    p.add_argument("-f", "--filter", action="append", default=[], metavar="filter",
                   help="Filter output based on conditions provided")
    p.add_argument("--format", metavar="string", help="Pretty-print tasks using a Go template")

    p = add_verb(sub, "inspect", cmd_inspect, "Display detailed information on one or more services")
    p.add_argument("services", nargs="+", metavar="SERVICE")
    p.add_argument("-f", "--format", metavar="string", help="Format output using a custom template:\n"
                   "'json':             Print in JSON format\n'TEMPLATE':         Print output using the given Go template.\n"
                   "Refer to https://docs.docker.com/go/formatting/ for more information about formatting output with templates")
    p.add_argument("--pretty", action="store_true", help="Print the information in a human friendly format")

    p = add_verb(sub, "scale", cmd_scale, "Scale one or multiple replicated services")
    p.add_argument("pairs", nargs="+", metavar="SERVICE=REPLICAS")
    p.add_argument("-d", "--detach", action="store_true",
                   help="Exit immediately instead of waiting for the service to converge")

    p = add_verb(sub, "update", cmd_update, "Update a service")
    p.add_argument("service", metavar="SERVICE")
    p.add_argument("--image", metavar="string", help="Service image tag")
    p.add_argument("--args", metavar="command", help="Service command args")
    p.add_argument("--env-add", action="append", default=[], metavar="list", help="Add or update an environment variable")
    p.add_argument("--env-rm", action="append", default=[], metavar="list", help="Remove an environment variable")
    p.add_argument("--label-add", action="append", default=[], metavar="list", help="Add or update a service label")
    p.add_argument("--label-rm", action="append", default=[], metavar="list", help="Remove a label by its key")
    p.add_argument("--publish-add", action="append", default=[], metavar="port", help="Add or update a published port")
    p.add_argument("--publish-rm", action="append", default=[], metavar="port", help="Remove a published port by its target port")
    p.add_argument("--force", action="store_true", help="Force update even if no changes require it")
    p.add_argument("--mount-add", action="append", default=[], metavar="mount", help="Add or update a mount on a service")
    p.add_argument("--mount-rm", action="append", default=[], metavar="list", help="Remove a mount by its target path")
    _spec_flags(p, create=False)

    p = add_verb(sub, "rollback", cmd_rollback, "Revert changes to a service's configuration")
    p.add_argument("service", metavar="SERVICE")
    p.add_argument("-d", "--detach", action="store_true",
                   help="Exit immediately instead of waiting for the service to converge")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress progress output")

    p = add_verb(sub, "rm", cmd_rm, "Remove one or more services", aliases=["remove"])
    p.add_argument("services", nargs="+", metavar="SERVICE")

    p = add_verb(sub, "logs", cmd_logs, "Fetch the logs of a service or task")
    p.add_argument("service", metavar="SERVICE|TASK")
    p.add_argument("--no-task-ids", action="store_true", help="Do not include task IDs in output")
    p.add_argument("--no-trunc", action="store_true", help="Do not truncate output")
    p.add_argument("--raw", action="store_true", help="Do not neatly format logs")
    p.add_argument("-t", "--timestamps", action="store_true", help="Show timestamps")
    p.add_argument("-f", "--follow", action="store_true", help="Follow log output")
    p.add_argument("-n", "--tail", metavar="string", default="all",
                   help='Number of lines to show from the end of the logs (default "all")')


# -- building specs -------------------------------------------------------------------------------
def _apply_common(spec: dict[str, Any], args: argparse.Namespace) -> None:
    """The flags ``create`` and ``update`` share, applied to a spec (given flags only)."""
    from dockyard.cluster import spec as specs
    from dockyard.errors import InvalidArgument

    tmpl = spec["TaskTemplate"]
    cs = tmpl["ContainerSpec"]
    if args.replicas is not None:
        if args.replicas < 0:
            raise InvalidArgument(f'invalid argument "{args.replicas}" for "--replicas" flag: invalid syntax')
        if "Global" in spec.get("Mode", {}):
            raise InvalidArgument("replicas can only be used with replicated or replicated-job mode")
        spec["Mode"] = {"Replicated": {"Replicas": args.replicas}}
    hc = specs.healthcheck(args.health_cmd, args.health_interval, args.health_timeout, args.health_start_period,
                           args.health_retries, args.no_healthcheck)
    if hc is not None:
        old = cs.get("Healthcheck") or {}
        cs["Healthcheck"] = hc if hc.get("Test") == ["NONE"] else {**{k: v for k, v in old.items() if old.get("Test") != ["NONE"]}, **hc}
    spec["UpdateConfig"] = specs.update_config(args.update_parallelism, args.update_delay, args.update_order,
                                               args.update_failure_action, spec.get("UpdateConfig"))
    tmpl["RestartPolicy"] = specs.restart_policy(args.restart_condition, args.restart_delay,
                                                 args.restart_max_attempts, tmpl.get("RestartPolicy"))
    if args.stop_grace_period is not None:
        cs["StopGracePeriod"] = specs.parse_duration(args.stop_grace_period, "--stop-grace-period")
    for attr, key in (("stop_signal", "StopSignal"), ("user", "User"), ("workdir", "Dir"), ("hostname", "Hostname")):
        if getattr(args, attr) is not None:
            cs[key] = getattr(args, attr)
    if args.entrypoint is not None:
        import shlex

        cs["Command"] = shlex.split(args.entrypoint)
    for flag, key in (("init", "Init"), ("read_only", "ReadOnly"), ("tty", "TTY")):
        if getattr(args, flag):
            cs[key] = True
    if args.cap_add:
        cs["CapabilityAdd"] = sorted(set(cs.get("CapabilityAdd") or []) | set(args.cap_add))
    if args.cap_drop:
        cs["CapabilityDrop"] = sorted(set(cs.get("CapabilityDrop") or []) | set(args.cap_drop))
    _apply_limits(tmpl, args)


def _apply_limits(tmpl: dict[str, Any], args: argparse.Namespace) -> None:
    """``--limit-cpu/-memory/-pids`` as ``TaskTemplate.Resources.Limits``."""
    from dockyard.engine.options import parse_bytes, parse_cpus

    limits = tmpl.setdefault("Resources", {}).setdefault("Limits", {})
    if args.limit_cpu is not None:
        limits["NanoCPUs"] = parse_cpus(args.limit_cpu)
    if args.limit_memory is not None:
        limits["MemoryBytes"] = parse_bytes(args.limit_memory, "--limit-memory")
    if args.limit_pids is not None:
        limits["Pids"] = args.limit_pids


def _mounts(values: list[str]) -> list[dict[str, Any]]:
    """``--mount`` values as docker's API Mount objects (what ``ContainerSpec.Mounts`` holds)."""
    from dockyard.engine.options import mount_to_api
    from dockyard.volume.mounts import parse_mount

    return [mount_to_api(parse_mount(raw)) for raw in values]


def spec_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """docker's ServiceSpec for ``service create``'s flags."""
    from dockyard.cli.network import key_values
    from dockyard.cluster import spec as specs
    from dockyard.engine.options import parse_env
    from dockyard.errors import InvalidArgument

    if args.mode not in ("replicated", "global"):
        raise InvalidArgument(f"--mode {args.mode} is not supported (only replicated and global)")
    cs: dict[str, Any] = {"Image": args.image, "Init": False}
    if args.command:
        cs["Args"] = list(args.command)
    if args.env or args.env_file:
        cs["Env"] = parse_env(args.env, args.env_file)
    if args.mount:
        cs["Mounts"] = _mounts(args.mount)
    if args.container_label:
        cs["Labels"] = key_values(args.container_label)
    spec: dict[str, Any] = {
        "Name": args.name or "", "Labels": key_values(args.label),
        "TaskTemplate": {"ContainerSpec": cs, "Resources": {"Limits": {}, "Reservations": {}},
                         "Placement": {}, "ForceUpdate": 0, "Runtime": "container"},
        "Mode": {"Global": {}} if args.mode == "global" else {"Replicated": {"Replicas": 1}},
        "EndpointSpec": {"Mode": "vip"},
    }
    ports = specs.parse_publish(args.publish)
    if ports:
        spec["EndpointSpec"]["Ports"] = ports
    # zero failed requests by default: a service that publishes a port starts the new task of a
    # slot before stopping the old one, unless told otherwise (swarm's default is stop-first)
    if ports and args.update_order is None:
        args.update_order = "start-first"
    _apply_common(spec, args)
    return spec


def _wait(ctx: "Context", services: Any, rec: Any, quiet: bool) -> None:
    """docker's non-interactive progress: the end state of the tasks, then ``verify:``."""
    running, want, done = services.wait_converged(rec)
    if quiet:
        return
    error = services.task_error(rec) if not done else ""
    ctx.print(f"overall progress: {running} out of {want} tasks")
    for i in range(1, want + 1):
        ctx.print(f"{i}/{want}: {'running' if i <= running else (error or 'starting')}")
    ctx.print(f"verify: Service {rec.id} converged" if done else
              f"verify: Service {rec.id} has not converged yet; see 'dockyard service ps {rec.name}'")


# -- verbs ----------------------------------------------------------------------------------------
@daemon_errors
def cmd_create(args: argparse.Namespace, ctx: "Context") -> int:
    from dockyard.cluster.service import Services

    services = Services(ctx.client)
    rec = services.create(spec_from_args(args))
    ctx.print(rec.id)
    if not args.detach:
        _wait(ctx, services, rec, args.quiet)
    return 0


def _service_rows(ctx: "Context", recs: list[Any]) -> list[dict[str, Any]]:
    from dockyard.cluster import spec as specs
    from dockyard.cluster.service import Services

    services = Services(ctx.client)
    rows = []
    for r in recs:
        want = specs.replicas(r.spec)
        rows.append({"ID": r.id[:12], "Name": r.name, "Mode": specs.mode_name(r.spec),
                     "Replicas": f"{services.running_count(r)}/{want}",
                     "Image": specs.container_spec(r.spec)["Image"], "Ports": specs.format_ports(r.spec)})
    return rows


def print_services(ctx: "Context", recs: list[Any], fmt: str | None = None, quiet: bool = False) -> None:
    """``service ls`` (and ``stack services``)."""
    if quiet:
        for r in recs:
            ctx.print(r.id)
        return
    from dockyard.cli.formatting import format_output

    out = format_output(_service_rows(ctx, recs), fmt, LS_COLUMNS, go_type="*formatter.serviceContext")
    if out:
        ctx.out.write(out)


@daemon_errors
def cmd_ls(args: argparse.Namespace, ctx: "Context") -> int:
    from dockyard.cli.network import key_values, parse_filters
    from dockyard.cluster.service import Services

    filters = parse_filters(args.filter, "service ls")
    recs = Services(ctx.client).list(labels=key_values(filters.get("label", [])))
    for name in filters.get("name", []):
        recs = [r for r in recs if r.name.startswith(name)]
    for ident in filters.get("id", []):
        recs = [r for r in recs if r.id.startswith(ident)]
    print_services(ctx, recs, args.format, args.quiet)
    return 0


def task_rows(ctx: "Context", services: Any, recs: list[Any], no_trunc: bool = False,
              desired: list[str] | None = None) -> list[dict[str, Any]]:
    """``service ps`` rows: each slot's live task, then its history (``\\_ name``) newest first."""
    import time

    from dockyard.cli.formatting import human_duration
    from dockyard.cluster.scheduler import epoch

    node = services.store.swarm().hostname
    rows = []
    for rec in recs:
        tasks = services.tasks(rec)
        if desired:
            tasks = [t for t in tasks if t.desired in desired]
        slots = sorted({t.slot for t in tasks})
        for slot in slots:
            group = sorted((t for t in tasks if t.slot == slot), key=lambda t: (t.live, t.since), reverse=True)
            for i, t in enumerate(group):
                name = f"{rec.name}.{slot}"
                state = t.state.capitalize() if t.state != "preparing" else "Preparing"
                ago = human_duration(max(time.time() - epoch(t.since), 0))
                rows.append({"ID": t.id if no_trunc else t.id[:12], "Name": name if i == 0 else f" \\_ {name}",
                             "Image": t.image, "Node": node, "DesiredState": t.desired.capitalize(),
                             "CurrentState": f"{state} {ago} ago", "Error": _error(t.err, no_trunc),
                             "Ports": ""})
    return rows


def _error(err: str, no_trunc: bool) -> str:
    if not err:
        return ""
    return f'"{err}"' if no_trunc or len(err) <= 30 else f'"{err[:29]}…"'


@daemon_errors
def cmd_ps(args: argparse.Namespace, ctx: "Context") -> int:
    from dockyard.cli.network import parse_filters
    from dockyard.cluster.service import Services
    from dockyard.errors import NotFound

    services = Services(ctx.client)
    filters = parse_filters(args.filter, "service ps")
    recs, missing = [], []
    for ref in args.services:
        try:
            recs.append(services.get(ref))
        except NotFound:
            missing.append(f"no such service: {ref}")
    if missing and not recs:  # docker's CLI: bare lines, and only when none was found
        exc = NotFound("\n".join(missing))
        exc.cli_prefix = ""
        raise exc
    rows = task_rows(ctx, services, recs, args.no_trunc, filters.get("desired-state"))
    print_tasks(ctx, rows, args.format, args.quiet, services, recs)
    return 0


def print_tasks(ctx: "Context", rows: list[dict[str, Any]], fmt: str | None, quiet: bool,
                services: Any, recs: list[Any]) -> None:
    if quiet:
        ids = {t.id[:12]: t.id for r in recs for t in services.tasks(r)}
        for row in rows:
            ctx.print(ids.get(row["ID"], row["ID"]))
        return
    from dockyard.cli.formatting import format_output

    ctx.out.write(format_output(rows, fmt, PS_COLUMNS, go_type="*formatter.taskContext"))


@daemon_errors
def cmd_inspect(args: argparse.Namespace, ctx: "Context") -> int:
    from dockyard.cli.inspecting import print_inspect
    from dockyard.cluster.service import Services
    from dockyard.errors import NotFound

    services = Services(ctx.client)
    services.store.require_swarm()
    found, rc = [], 0
    for ref in args.services:
        try:
            found.append(services.inspect(services.get(ref)))
        except NotFound:
            exc = NotFound(f"no such service: {ref}")
            ctx.warn(f"Error: {exc}")
            rc = 1
    if args.pretty:
        for doc in found:
            ctx.out.write(pretty(doc))
        return rc
    if not found:
        ctx.print("[]")
        return rc
    return print_inspect(ctx, found, args.format) or rc


def pretty(doc: dict[str, Any]) -> str:
    """``service inspect --pretty``, laid out as docker lays it out."""
    from dockyard.cluster import spec as specs

    spec = doc["Spec"]
    cs = spec["TaskTemplate"]["ContainerSpec"]
    uc = spec.get("UpdateConfig") or {}
    rp = spec["TaskTemplate"].get("RestartPolicy") or {}

    def dur(ns: Any) -> str:
        s = int(ns or 0) / 1e9
        return f"{s:g}s"

    lines = ["", f"ID:\t\t{doc['ID']}", f"Name:\t\t{spec['Name']}"]
    if spec.get("Labels"):
        lines.append("Labels:")
        lines += [f" {k}={v}" for k, v in spec["Labels"].items()]
    if specs.mode_name(spec) == "global":
        lines.append("Service Mode:\tGlobal")
    else:
        lines += ["Service Mode:\tReplicated", f" Replicas:\t{specs.replicas(spec)}"]
    status = doc.get("UpdateStatus")
    if status:
        lines += ["UpdateStatus:", f" State:\t\t{status.get('State', '')}", f" Started:\t{status.get('StartedAt', '')}",
                  f" Message:\t{status.get('Message', '')}"]
    hc = cs.get("Healthcheck")
    lines += ["Placement:", "UpdateConfig:", f" Parallelism:\t{uc.get('Parallelism', 1)}"]
    if uc.get("Delay"):
        lines.append(f" Delay:\t\t{dur(uc['Delay'])}")
    lines += [f" On failure:\t{uc.get('FailureAction', 'pause')}", f" Monitoring Period: {dur(uc.get('Monitor'))}",
              f" Max failure ratio: {uc.get('MaxFailureRatio', 0)}", f" Update order:      {uc.get('Order', 'stop-first')}",
              "RestartPolicy:", f" Condition:\t{rp.get('Condition', 'any')}", f" Delay:\t\t{dur(rp.get('Delay'))}",
              f" Max attempts:\t{rp.get('MaxAttempts', 0)}", "ContainerSpec:", f" Image:\t\t{cs['Image']}"]
    if cs.get("Args"):
        lines.append(f" Args:\t\t{' '.join(cs['Args'])}")
    if cs.get("Env"):
        lines.append(f" Env:\t\t{' '.join(cs['Env'])}")
    if hc and hc.get("Test"):
        lines.append(f" Healthcheck:\t{' '.join(hc['Test'])}")
    lines += [" Init:\t\tfalse", "Resources:", "Endpoint Mode:\tvip"]
    ports = specs.ports(spec)
    if ports:
        lines.append("Ports:")
        for p in ports:
            lines += [f" PublishedPort = {p['PublishedPort']}", f"  Protocol = {p.get('Protocol', 'tcp')}",
                      f"  TargetPort = {p['TargetPort']}", f"  PublishMode = {p.get('PublishMode', 'ingress')}", " "]
    out = []
    for line in lines:  # docker's template pads "Label:\t" to a 16-column value
        label, tab, value = line.partition("\t")
        out.append(f"{label:<16}{value.lstrip(chr(9))}" if tab else line)
    return "\n".join(out) + "\n"


@daemon_errors
def cmd_scale(args: argparse.Namespace, ctx: "Context") -> int:
    from dockyard.cluster.service import Services
    from dockyard.errors import DockyardError, InvalidArgument

    pairs = []
    for pair in args.pairs:
        name, sep, count = pair.partition("=")
        if not sep or not count.isdigit():
            exc = InvalidArgument(f"invalid scale specifier '{pair}'.\nSee 'dockyard service scale --help'.\n\n"
                                  "Usage:  dockyard service scale SERVICE=REPLICAS [SERVICE=REPLICAS...]\n\n"
                                  "Scale one or multiple replicated services")
            raise exc
        pairs.append((name, int(count)))
    services = Services(ctx.client)
    rc, scaled = 0, []
    for name, count in pairs:
        try:
            scaled.append(services.scale(name, count))
            ctx.print(f"{name} scaled to {count}")
        except DockyardError as exc:
            from dockyard.cli.common import DAEMON_PREFIX, shown_as

            ctx.warn(f"{name}: {shown_as(exc, DAEMON_PREFIX).cli_prefix}{exc}")
            rc = 1
    if not args.detach:
        for rec in scaled:
            _wait(ctx, services, rec, False)
    return rc


@daemon_errors
def cmd_update(args: argparse.Namespace, ctx: "Context") -> int:
    import copy
    import shlex

    from dockyard.cli.network import key_values
    from dockyard.cluster import spec as specs
    from dockyard.cluster.service import Services

    services = Services(ctx.client)
    rec = services.get(args.service)
    spec = copy.deepcopy(rec.spec)
    cs = spec["TaskTemplate"]["ContainerSpec"]
    if args.image:
        cs["Image"] = args.image
    if args.args is not None:
        cs["Args"] = shlex.split(args.args)
    if args.env_add or args.env_rm:
        cs["Env"] = specs.env_add(specs.env_rm(cs.get("Env") or [], args.env_rm), args.env_add)
    labels = spec.setdefault("Labels", {})
    labels.update(key_values(args.label_add))
    for key in args.label_rm:
        labels.pop(key, None)
    if args.publish_add or args.publish_rm:
        ports = [p for p in specs.ports(spec) if str(p["TargetPort"]) not in
                 {v.split("/")[0].split(":")[-1].split("=")[-1] for v in args.publish_rm}]
        new = specs.parse_publish(args.publish_add)
        ports = [p for p in ports if p["PublishedPort"] not in {n["PublishedPort"] for n in new}] + new
        spec.setdefault("EndpointSpec", {"Mode": "vip"})["Ports"] = ports
    if args.mount_add or args.mount_rm:
        added = _mounts(args.mount_add)
        gone = set(args.mount_rm) | {m["Target"] for m in added}
        cs["Mounts"] = [m for m in cs.get("Mounts") or [] if m.get("Target") not in gone] + added
    _apply_common(spec, args)
    if args.force:
        spec["TaskTemplate"]["ForceUpdate"] = int(spec["TaskTemplate"].get("ForceUpdate", 0)) + 1
    rec = services.update(rec.id, spec)
    ctx.print(args.service)
    if not args.detach:
        _wait(ctx, services, rec, args.quiet)
    return 0


@daemon_errors
def cmd_rollback(args: argparse.Namespace, ctx: "Context") -> int:
    from dockyard.cluster.service import Services

    services = Services(ctx.client)
    rec = services.rollback(args.service)
    ctx.print(args.service)
    if not args.detach:
        if not args.quiet:
            ctx.print("rollback: manually requested rollback")
        _wait(ctx, services, rec, args.quiet)
    return 0


@daemon_errors
def cmd_rm(args: argparse.Namespace, ctx: "Context") -> int:
    from dockyard.cli.network import each
    from dockyard.cluster.service import Services

    services = Services(ctx.client)
    services.store.require_swarm()

    def remove(ref: str) -> None:
        services.remove(ref)
        ctx.print(ref)

    return each(ctx, args.services, remove)[1]


@daemon_errors
def cmd_logs(args: argparse.Namespace, ctx: "Context") -> int:
    import sys

    from dockyard.cluster.service import Services

    services = Services(ctx.client)
    rec = services.get(args.service)
    node = services.store.swarm().hostname
    out = sys.stdout.buffer
    errs = sys.stderr.buffer
    for task, stream, line in services.logs(rec, timestamps=args.timestamps, tail=args.tail, follow=args.follow):
        if args.raw:
            prefix = b""
        else:
            ident = "" if args.no_task_ids else "." + (task.id if args.no_trunc else task.id[:12])
            prefix = f"{rec.name}.{task.slot}{ident}@{node}    | ".encode()
        (errs if stream == 2 else out).write(prefix + line)
        if args.follow:
            (errs if stream == 2 else out).flush()
    out.flush()
    return 0
