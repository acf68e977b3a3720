"""``run``/``create`` options: from docker's flag strings to docker's API create body.

The engine's one input for a new container is the Docker Engine API ``ContainerCreate`` body
(``Config`` fields at the top level, ``HostConfig``, ``NetworkingConfig``), exactly as the API
server receives it from the docker CLI. This module turns flag values into that body with the
docker CLI's parsing rules and error messages (``invalid argument "1x" for "-m, --memory" flag:
invalid suffix: 'x'``), so the CLI, the API server and library users share one path.
"""
from __future__ import annotations

import os
import re
import shlex
from typing import Any

from dockyard.engine.logs import parse_size
from dockyard.engine.timeutil import parse_duration
from dockyard.errors import InvalidArgument

USAGE_EXIT = 125  # docker exits 125 on a bad flag value


def flag_error(value: str, flag: str, why: str) -> InvalidArgument:
    return InvalidArgument(f'invalid argument "{value}" for "{flag}" flag: {why}', exit_code=USAGE_EXIT)


# ------------------------------------------------------------------------------ scalars
def parse_bytes(value: str, flag: str) -> int:
    """A memory-like flag (``-m 512m``); ``-1`` passes through (unlimited swap)."""
    if value.strip() == "-1":
        return -1
    try:
        return parse_size(value)
    except ValueError as exc:
        raise flag_error(value, flag, str(exc)) from None


def parse_cpus(value: str) -> int:
    """``--cpus 1.5`` → NanoCpus."""
    m = re.fullmatch(r"\s*([-+])?(\d+)?(?:\.(\d*))?\s*", value)
    if not m or (m.group(2) is None and not m.group(3)):
        raise flag_error(value, "--cpus", f"failed to parse {value} as a rational number")
    whole = int(m.group(2) or 0)
    frac = (m.group(3) or "")[:9].ljust(9, "0")
    nano = whole * 1_000_000_000 + int(frac)
    return -nano if m.group(1) == "-" else nano  # a negative count is the daemon's to refuse


def parse_int(value: str, flag: str) -> int:
    try:
        return int(value, 10)
    except ValueError:
        raise flag_error(value, flag, f'strconv.ParseInt: parsing "{value}": invalid syntax') from None


def parse_duration_ns(value: str, flag: str) -> int:
    d = parse_duration(value)
    if d is None:
        raise flag_error(value, flag, f'time: invalid duration "{value}"')
    return d


# ------------------------------------------------------------------------------ env, labels
def _read_kv_file(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise InvalidArgument(f"open {path}: no such file or directory", exit_code=USAGE_EXIT) from None
    except OSError as exc:
        raise InvalidArgument(f"open {path}: {exc.strerror.lower()}", exit_code=USAGE_EXIT) from None
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.lstrip()
        if not line or line.startswith("#"):
            continue
        out.append(line)
    return out


def parse_env(values: list[str], env_files: list[str] | None = None) -> list[str]:
    """``-e``/``--env-file`` → ``KEY=VALUE`` list (a bare ``KEY`` takes the CLI's environment,
    and is dropped when unset, as docker does). Files come first, flags override."""
    out: list[str] = []
    from_files = [line for f in env_files or [] for line in _read_kv_file(f)]
    for n, raw in enumerate([*from_files, *values]):
        key, eq, val = raw.partition("=")
        if not key:
            if n >= len(from_files):  # docker's CLI checks -e as it reads the flag (opts.ValidateEnv)
                raise flag_error(raw, "-e, --env", f"invalid environment variable: {raw}")
            raise InvalidArgument(f"invalid environment variable: {raw}", exit_code=USAGE_EXIT)
        if n < len(from_files) and (" " in key.strip() or "\t" in key):  # only an env file's lines
            raise InvalidArgument(f"variable '{key}' contains whitespaces", exit_code=USAGE_EXIT)
        if eq:
            out.append(raw)
        elif key in os.environ:
            out.append(f"{key}={os.environ[key]}")
    return out


def parse_labels(values: list[str], label_files: list[str] | None = None) -> dict[str, str]:
    labels: dict[str, str] = {}
    for raw in values:  # docker's CLI checks -l as it reads the flag (opts.ValidateLabel)
        if not raw.partition("=")[0].strip():
            raise flag_error(raw, "-l, --label", f"invalid label '{raw}': empty name")
    for raw in [*(line for f in label_files or [] for line in _read_kv_file(f)), *values]:
        key, _, val = raw.partition("=")
        labels[key] = val
    return labels


def merge_env(base: list[str], extra: list[str]) -> list[str]:
    """Image env overridden by the user's, keeping the image's order (docker's ``ReplaceOrAppendEnvValues``)."""
    out = list(base)
    index = {e.partition("=")[0]: i for i, e in enumerate(out)}
    for e in extra:
        k = e.partition("=")[0]
        if k in index:
            out[index[k]] = e
        else:
            index[k] = len(out)
            out.append(e)
    return out


# ------------------------------------------------------------------------------ restart policy
def parse_restart(value: str) -> dict[str, Any]:
    """``--restart on-failure:3`` → ``{"Name": "on-failure", "MaximumRetryCount": 3}``."""
    if not value:
        return {"Name": "no", "MaximumRetryCount": 0}
    name, colon, count = value.partition(":")
    policy = {"Name": name, "MaximumRetryCount": 0}
    if colon:
        try:
            policy["MaximumRetryCount"] = int(count)
        except ValueError:
            raise InvalidArgument("invalid restart policy format: maximum retry count must be an integer",
                                  exit_code=USAGE_EXIT) from None
    return policy


def validate_restart(policy: dict[str, Any]) -> None:
    """The daemon's checks (moby ``validateRestartPolicy``)."""
    name = policy.get("Name") or ""
    count = int(policy.get("MaximumRetryCount") or 0)
    if name in ("always", "unless-stopped") and count:
        raise InvalidArgument(f"maximum retry count cannot be used with restart policy '{name}'")
    if name == "on-failure" and count < 0:
        raise InvalidArgument("maximum retry count cannot be negative")
    if name in ("", "no") and count:
        raise InvalidArgument(f"maximum retry count cannot be used with restart policy '{name or 'no'}'")
    if name not in ("", "no", "always", "unless-stopped", "on-failure"):
        raise InvalidArgument(f"invalid restart policy '{name}'")


# ------------------------------------------------------------------------------ mounts
def mount_to_api(spec: Any) -> dict[str, Any]:
    """A ``--mount`` value (parsed by :mod:`dockyard.volume.mounts`) as an API ``Mount`` object."""
    m: dict[str, Any] = {"Type": spec.type, "Target": spec.target}
    if spec.source:
        m["Source"] = spec.source
    if spec.read_only:
        m["ReadOnly"] = True
    if spec.propagation:
        m["BindOptions"] = {"Propagation": spec.propagation}
    if spec.type == "volume" and (spec.nocopy or spec.volume_labels or spec.volume_options):
        vo: dict[str, Any] = {}
        if spec.nocopy:
            vo["NoCopy"] = True
        if spec.volume_labels:
            vo["Labels"] = dict(spec.volume_labels)
        if spec.volume_options:
            vo["DriverConfig"] = {"Name": "local", "Options": dict(spec.volume_options)}
        m["VolumeOptions"] = vo
    if spec.type == "tmpfs" and (spec.tmpfs_size or spec.tmpfs_mode):
        to: dict[str, Any] = {}
        if spec.tmpfs_size:
            to["SizeBytes"] = spec.tmpfs_size
        if spec.tmpfs_mode:
            to["Mode"] = spec.tmpfs_mode
        m["TmpfsOptions"] = to
    return m


def split_volumes(values: list[str]) -> tuple[list[str], dict[str, dict]]:
    """``-v`` values → (HostConfig.Binds, Config.Volumes): ``-v /path`` is an anonymous volume."""
    from dockyard.volume.mounts import parse_volume_flag

    binds: list[str] = []
    anonymous: dict[str, dict] = {}
    for raw in values:
        spec = parse_volume_flag(raw)
        if spec.type == "volume" and not spec.source:
            anonymous[spec.target] = {}
        else:
            binds.append(raw)
    return binds, anonymous


def parse_tmpfs(values: list[str]) -> dict[str, str]:
    from dockyard.volume.mounts import from_tmpfs_flag

    out: dict[str, str] = {}
    for raw in values:
        path, _, opts = raw.partition(":")
        if path.startswith("/"):  # a relative path is the daemon's to refuse (creation.validate)
            from_tmpfs_flag(path, opts)  # docker's checks
        out[path] = opts
    return out


def parse_ulimit(spec: str) -> dict[str, Any]:
    name, eq, vals = spec.partition("=")
    if not eq:
        raise flag_error(spec, "--ulimit", f"invalid ulimit argument: {spec}")
    soft, _, hard = vals.partition(":")
    try:
        s = int(soft)
        h = int(hard) if hard else s
    except ValueError:
        raise flag_error(spec, "--ulimit", f"invalid ulimit argument: {spec}") from None
    if s > h:
        raise flag_error(spec, "--ulimit", f"ulimit soft limit must be less than or equal to hard limit: {s} > {h}")
    return {"Name": name, "Soft": s, "Hard": h}


# ------------------------------------------------------------------------------ ports
def parse_publish(values: list[str]) -> tuple[dict[str, dict], dict[str, list[dict[str, str]]]]:
    """``-p`` values → (ExposedPorts, PortBindings) as the docker CLI sends them."""
    from dockyard.network.ports import parse_port_spec

    exposed: dict[str, dict] = {}
    bindings: dict[str, list[dict[str, str]]] = {}
    for raw in values:
        try:
            specs = parse_port_spec(raw)
        except InvalidArgument as exc:
            raise InvalidArgument(exc.message, exit_code=USAGE_EXIT) from None
        for s in specs:
            exposed[s.key] = {}
            port = ""
            if s.host_port:
                port = f"{s.host_port}-{s.host_port_end}" if s.host_port_end and s.host_port_end != s.host_port \
                    else str(s.host_port)
            bindings.setdefault(s.key, []).append({"HostIp": s.host_ip, "HostPort": port})
    return exposed, bindings


def port_specs(host: dict[str, Any], exposed: dict[str, Any] | None) -> list[Any]:
    """HostConfig.PortBindings (+ every exposed port with ``-P``) as the network service's specs."""
    from dockyard.network.ports import PortSpec, parse_port_specs

    specs = []
    for key, binds in (host.get("PortBindings") or {}).items():
        port, _, proto = key.partition("/")
        for b in binds or [{}]:
            hp = str(b.get("HostPort") or "")
            lo, _, hi = hp.partition("-")
            specs.append(PortSpec(int(port), proto or "tcp", b.get("HostIp") or "",
                                  int(lo) if lo else 0, int(hi) if hi else 0))
    if host.get("PublishAllPorts"):
        have = {s.key for s in specs}
        specs += [s for s in parse_port_specs(publish_all=True, exposed=list((exposed or {}).keys()))
                  if s.key not in have]
    return specs


# ------------------------------------------------------------------------------ the whole body
class RunOptions:
    """The values of ``run``/``create`` flags, as strings and lists (what the user typed).

    A plain class (not a dataclass: seventy generated fields cost the CLI milliseconds at
    every start); keyword arguments only, unknown names are refused."""

    image: str = ""
    command: list[str]
    name: str | None = None
    detach: bool = False
    interactive: bool = False
    tty: bool = False
    auto_remove: bool = False
    env: list[str]
    env_file: list[str]
    workdir: str | None = None
    user: str | None = None
    entrypoint: str | None = None
    hostname: str | None = None
    domainname: str | None = None
    labels: list[str]
    label_file: list[str]
    volumes: list[str]
    mounts: list[str]
    volumes_from: list[str]
    tmpfs: list[str]
    read_only: bool = False
    cap_add: list[str]
    cap_drop: list[str]
    privileged: bool = False
    restart: str | None = None
    init: bool = False
    memory: str | None = None
    memory_swap: str | None = None
    memory_reservation: str | None = None
    cpus: str | None = None
    cpu_shares: str | None = None
    cpu_period: str | None = None
    cpu_quota: str | None = None
    cpuset_cpus: str | None = None
    cpuset_mems: str | None = None
    pids_limit: str | None = None
    shm_size: str | None = None
    oom_kill_disable: bool = False
    oom_score_adj: str | None = None
    memory_swappiness: str | None = None
    kernel_memory: str | None = None
    blkio_weight: str | None = None
    device_cgroup_rules: list[str]
    userns: str | None = None
    isolation: str | None = None
    storage_opt: list[str]
    volume_driver: str | None = None
    ulimits: list[str]
    health_cmd: str | None = None
    health_interval: str | None = None
    health_timeout: str | None = None
    health_start_period: str | None = None
    health_retries: str | None = None
    no_healthcheck: bool = False
    network: str | None = None
    network_aliases: list[str]
    links: list[str]
    publish: list[str]
    publish_all: bool = False
    expose: list[str]
    dns: list[str]
    dns_search: list[str]
    dns_option: list[str]
    add_host: list[str]
    ip: str | None = None
    mac_address: str | None = None
    stop_signal: str | None = None
    stop_timeout: str | None = None
    log_driver: str | None = None
    log_opts: list[str]
    runtime: str | None = None
    security_opt: list[str]
    sysctl: list[str]
    devices: list[str]
    group_add: list[str]
    attach: list[str]
    ipc: str | None = None
    pid: str | None = None
    uts: str | None = None
    cgroupns: str | None = None
    cgroup_parent: str | None = None
    platform: str | None = None

    _LISTS = ("command", "env", "env_file", "labels", "label_file", "volumes", "mounts", "volumes_from", "tmpfs",
              "cap_add", "cap_drop", "ulimits", "network_aliases", "links", "publish", "expose", "dns", "dns_search",
              "dns_option", "add_host", "log_opts", "security_opt", "sysctl", "devices", "group_add", "attach",
              "device_cgroup_rules", "storage_opt")

    def __init__(self, **values: Any) -> None:
        for key, value in values.items():
            if not hasattr(RunOptions, key) and key not in self._LISTS:
                raise TypeError(f"RunOptions has no option {key!r}")
            setattr(self, key, value)
        for key in self._LISTS:
            if key not in values:
                setattr(self, key, [])


def _healthcheck(o: RunOptions) -> dict[str, Any] | None:
    flags_used = any(v is not None for v in (o.health_cmd, o.health_interval, o.health_timeout,
                                              o.health_start_period, o.health_retries))
    if o.no_healthcheck:
        if flags_used:
            raise InvalidArgument("--no-healthcheck conflicts with --health-* options", exit_code=USAGE_EXIT)
        return {"Test": ["NONE"]}
    if not flags_used:
        return None
    hc: dict[str, Any] = {}
    if o.health_cmd is not None:
        hc["Test"] = ["CMD-SHELL", o.health_cmd]
    for attr, key, flag in (("health_interval", "Interval", "--health-interval"),
                            ("health_timeout", "Timeout", "--health-timeout"),
                            ("health_start_period", "StartPeriod", "--health-start-period")):
        v = getattr(o, attr)
        if v is not None:
            d = parse_duration_ns(v, flag)
            if d < 0:
                raise InvalidArgument(f"{flag} cannot be negative", exit_code=USAGE_EXIT)
            hc[key] = d
    if o.health_retries is not None:
        hc["Retries"] = parse_int(o.health_retries, "--health-retries")
    return hc


# the namespaced sysctls docker's CLI lets through (opts.ValidateSysctl)
SYSCTL_NAMES = ("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall", "kernel.shmmax",
                "kernel.shmmni", "kernel.shm_rmid_forced")
SYSCTL_PREFIXES = ("fs.mqueue.", "net.")


def _check_sysctl(value: str) -> None:
    key = value.partition("=")[0]
    if "=" not in value or not (key in SYSCTL_NAMES or key.startswith(SYSCTL_PREFIXES)):
        raise flag_error(value, "--sysctl", f"sysctl '{value}' is not allowed")


def _check_host_and_dns(add_host: list[str], dns: list[str]) -> None:
    """docker's CLI checks ``--add-host`` (name:ip or name=ip) and ``--dns`` as it reads them."""
    import ipaddress

    def is_ip(text: str) -> bool:
        try:
            ipaddress.ip_address(text.strip("[]"))
        except ValueError:
            return False
        return True

    for value in add_host:
        sep = "=" if "=" in value else ":"
        name, found, ip = value.partition(sep)
        if not found or not name:
            raise flag_error(value, "--add-host", f'bad format for add-host: "{value}"')
        if ip != "host-gateway" and not is_ip(ip):
            raise flag_error(value, "--add-host", f'invalid IP address in add-host: "{ip}"')
    for value in dns:
        if not is_ip(value):
            raise flag_error(value, "--dns", f"IP address is not correctly formatted: {value}")


def build_body(o: RunOptions) -> dict[str, Any]:
    """The API create body for these options (docker CLI's ``parse``); raises on bad values."""
    for value in o.sysctl:
        _check_sysctl(value)
    _check_host_and_dns(o.add_host, o.dns)
    if o.network_aliases:
        from dockyard.network.conflicts import check_cli_aliases

        check_cli_aliases(o.network, o.network_aliases)
    for link in o.links:
        from dockyard.network.legacy_links import parse_link

        try:
            parse_link(link)
        except InvalidArgument as exc:
            raise flag_error(link, "--link", exc.message) from None
    if o.pid and o.pid != "host" and not o.pid.startswith("container:"):
        raise InvalidArgument("--pid: invalid PID mode", exit_code=USAGE_EXIT)
    for rule in o.device_cgroup_rules:
        from dockyard.runtime.spec import device_rule

        try:
            device_rule(rule)
        except InvalidArgument as exc:
            raise flag_error(rule, "--device-cgroup-rule", exc.message) from None
    if o.userns and o.userns != "host":
        raise InvalidArgument("--userns: invalid USER mode", exit_code=USAGE_EXIT)
    if o.restart and o.restart != "no" and o.auto_remove:
        raise InvalidArgument("conflicting options: cannot specify both --restart and --rm", exit_code=USAGE_EXIT)
    attach = [a.lower() for a in o.attach]
    for a in attach:
        if a not in ("stdin", "stdout", "stderr"):
            raise InvalidArgument(f"invalid argument \"{a}\" for \"-a, --attach\" flag: valid streams are STDIN, "
                                  "STDOUT and STDERR", exit_code=USAGE_EXIT)
    if o.detach and attach:
        raise InvalidArgument("conflicting options: cannot specify both --attach and --detach", exit_code=1)
    attach_stdin = "stdin" in attach if attach else (o.interactive and not o.detach)
    attach_stdout = "stdout" in attach if attach else not o.detach
    attach_stderr = "stderr" in attach if attach else not o.detach
    exposed, bindings = parse_publish(o.publish) if o.publish else ({}, {})
    if o.expose:
        from dockyard.network.ports import parse_exposed

        for e in o.expose:
            try:
                for port, proto in parse_exposed(e):
                    exposed[f"{port}/{proto}"] = {}
            except InvalidArgument as exc:
                raise InvalidArgument(exc.message, exit_code=USAGE_EXIT) from None
    config: dict[str, Any] = {
        "Hostname": o.hostname or "",
        "Domainname": o.domainname or "",
        "User": o.user or "",
        "AttachStdin": attach_stdin,
        "AttachStdout": attach_stdout,
        "AttachStderr": attach_stderr,
        "Tty": o.tty,
        "OpenStdin": o.interactive,
        "StdinOnce": o.interactive and attach_stdin,
        "Env": parse_env(o.env, o.env_file),
        "Cmd": list(o.command) if o.command else None,
        "Image": o.image,
        "Volumes": None,
        "WorkingDir": o.workdir or "",
        "Entrypoint": None if o.entrypoint is None else ([o.entrypoint] if o.entrypoint else [""]),
        "OnBuild": None,
        "Labels": parse_labels(o.labels, o.label_file),
    }
    if exposed:
        config["ExposedPorts"] = exposed
    hc = _healthcheck(o)
    if hc is not None:
        config["Healthcheck"] = hc
    if o.stop_signal:
        config["StopSignal"] = o.stop_signal
    if o.stop_timeout is not None:
        config["StopTimeout"] = parse_int(o.stop_timeout, "--stop-timeout")
    if o.mac_address:
        config["MacAddress"] = o.mac_address
    binds, anon = split_volumes(o.volumes) if o.volumes else ([], {})
    if anon:
        config["Volumes"] = anon
    tmpfs = parse_tmpfs(o.tmpfs) if o.tmpfs else {}
    log_opts: dict[str, str] = {}
    for lo in o.log_opts:
        k, eq, v = lo.partition("=")
        if not eq:
            raise InvalidArgument(f"invalid key value pair format in log options: {lo}", exit_code=USAGE_EXIT)
        log_opts[k] = v
    host: dict[str, Any] = {
        "Binds": binds or None,
        "ContainerIDFile": "",
        "LogConfig": {"Type": o.log_driver or "json-file", "Config": log_opts},
        "NetworkMode": o.network or "default",
        "PortBindings": bindings,
        "RestartPolicy": parse_restart(o.restart or "no"),
        "AutoRemove": o.auto_remove,
        "VolumeDriver": o.volume_driver or "",
        "VolumesFrom": o.volumes_from or None,
        "ConsoleSize": [0, 0],
        "CapAdd": o.cap_add or None,
        "CapDrop": o.cap_drop or None,
        "CgroupnsMode": o.cgroupns or "host",
        "Dns": o.dns,
        "DnsOptions": o.dns_option,
        "DnsSearch": o.dns_search,
        "ExtraHosts": o.add_host or None,
        "GroupAdd": o.group_add or None,
        "IpcMode": o.ipc or "private",
        "Cgroup": "",
        "Links": list(o.links) or None,
        "OomScoreAdj": parse_int(o.oom_score_adj, "--oom-score-adj") if o.oom_score_adj else 0,
        "PidMode": o.pid or "",
        "Privileged": o.privileged,
        "PublishAllPorts": o.publish_all,
        "ReadonlyRootfs": o.read_only,
        "SecurityOpt": _security_opts(o.security_opt),
        "UTSMode": o.uts or "",
        "UsernsMode": o.userns or "",
        "ShmSize": parse_bytes(o.shm_size, "--shm-size") if o.shm_size else 67108864,
        "Runtime": o.runtime or "",
        "Isolation": o.isolation or "",
        "CpuShares": parse_int(o.cpu_shares, "-c, --cpu-shares") if o.cpu_shares else 0,
        "Memory": parse_bytes(o.memory, "-m, --memory") if o.memory else 0,
        "NanoCpus": parse_cpus(o.cpus) if o.cpus else 0,
        "CgroupParent": o.cgroup_parent or "",
        "BlkioWeight": parse_int(o.blkio_weight, "--blkio-weight") if o.blkio_weight else 0,
        "CpuPeriod": parse_int(o.cpu_period, "--cpu-period") if o.cpu_period else 0,
        "CpuQuota": parse_int(o.cpu_quota, "--cpu-quota") if o.cpu_quota else 0,
        "CpusetCpus": o.cpuset_cpus or "",
        "CpusetMems": o.cpuset_mems or "",
        "Devices": [_device(d) for d in o.devices],
        "MemoryReservation": parse_bytes(o.memory_reservation, "--memory-reservation") if o.memory_reservation else 0,
        "MemorySwap": parse_bytes(o.memory_swap, "--memory-swap") if o.memory_swap else 0,
        "MemorySwappiness": _swappiness(o.memory_swappiness),
        "KernelMemory": parse_bytes(o.kernel_memory, "--kernel-memory") if o.kernel_memory else 0,
        "OomKillDisable": o.oom_kill_disable,
        "DeviceCgroupRules": list(o.device_cgroup_rules) or None,
        "PidsLimit": parse_int(o.pids_limit, "--pids-limit") if o.pids_limit else None,
        "Ulimits": [parse_ulimit(u) for u in o.ulimits],
        "Mounts": (_mounts(o.mounts) if o.mounts else None),
        "Init": o.init or None,
        "Tmpfs": tmpfs or None,
        "Sysctls": dict(s.partition("=")[::2] for s in o.sysctl) or None,
        "MaskedPaths": None,
        "ReadonlyPaths": None,
    }
    if o.storage_opt:  # docker leaves the key out when no option is given
        host["StorageOpt"] = dict(v.partition("=")[::2] for v in o.storage_opt)
    networking: dict[str, Any] = {"EndpointsConfig": {}}
    if o.network_aliases or o.ip:
        net = o.network or "default"
        ep: dict[str, Any] = {}
        if o.network_aliases:
            ep["Aliases"] = o.network_aliases
        if o.ip:
            ep["IPAMConfig"] = {"IPv4Address": o.ip}
        networking["EndpointsConfig"][net] = ep
    return {**config, "HostConfig": host, "NetworkingConfig": networking}


def _swappiness(value: str | None) -> int | None:
    """``--memory-swappiness``: -1 (the default) leaves the kernel's value."""
    if value is None:
        return None
    n = parse_int(value, "--memory-swappiness")
    return None if n == -1 else n


def _security_opts(values: list[str]) -> list[str] | None:
    """docker/cli: ``seccomp=<file>`` is sent as the file's JSON (see ``runtime.seccomp``)."""
    if not values:
        return None  # (the usual case: no import of the seccomp compiler in the CLI)
    from dockyard.runtime.seccomp import resolve_security_opts

    return resolve_security_opts(values) or None


def _mounts(values: list[str]) -> list[dict[str, Any]]:
    from dockyard.volume.mounts import parse_mount

    return [mount_to_api(parse_mount(raw)) for raw in values]


def _device(spec: str) -> dict[str, str]:
    parts = spec.split(":")
    src = parts[0]
    dst = parts[1] if len(parts) > 1 and parts[1].startswith("/") else src
    perms = parts[-1] if len(parts) > 1 and not parts[-1].startswith("/") else "rwm"
    return {"PathOnHost": src, "PathInContainer": dst, "CgroupPermissions": perms}


def command_string(path: str, args: list[str]) -> str:
    """The COMMAND column as docker builds it: args with spaces are single-quoted."""
    if not args:
        return path
    return path + " " + " ".join(f"'{a}'" if " " in a else a for a in args)


def shell_join(argv: list[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)
