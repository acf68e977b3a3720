"""``create``: from an API create body and an image to a container record (docker's rules).

The image's config is merged into the container's as the daemon merges it (moby ``merge``):
user settings win, the image fills the gaps, env and labels combine, and a user entrypoint
drops the image's command. Then the daemon's checks run (working dir, health check, restart
policy, limits, log options, network, runtime) before anything is written, so bad input leaves
no trace. The record, its name and its writable layer are created last; a failure in between
removes what was made.
"""
from __future__ import annotations

import copy
import socket
import time
from typing import Any

from dockyard.engine import ids
from dockyard.engine.options import RunOptions, build_body, validate_restart
from dockyard.engine.store import ContainerRecord, default_state
from dockyard.engine.timeutil import rfc3339nano
from dockyard.errors import Conflict, DockyardError, InvalidArgument, NotFound

LOG_DRIVERS = ("json-file", "local", "none")
JSON_FILE_OPTS = ("max-size", "max-file", "compress", "labels", "labels-regex", "env", "env-regex", "tag", "mode",
                  "max-buffer-size")

# docker's HostConfig keys, in docker's order, with the values docker shows when unset
DEFAULT_HOST_CONFIG: dict[str, Any] = {
    "Binds": None, "ContainerIDFile": "", "LogConfig": {"Type": "json-file", "Config": {}},
    "NetworkMode": "default", "PortBindings": {}, "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
    "AutoRemove": False, "VolumeDriver": "", "VolumesFrom": None, "ConsoleSize": [0, 0], "CapAdd": None,
    "CapDrop": None, "CgroupnsMode": "host", "Dns": [], "DnsOptions": [], "DnsSearch": [], "ExtraHosts": None,
    "GroupAdd": None, "IpcMode": "private", "Cgroup": "", "Links": None, "OomScoreAdj": 0, "PidMode": "",
    "Privileged": False, "PublishAllPorts": False, "ReadonlyRootfs": False, "SecurityOpt": None,
    "UTSMode": "", "UsernsMode": "", "ShmSize": 67108864, "Runtime": "", "Isolation": "",
    "CpuShares": 0, "Memory": 0, "NanoCpus": 0, "CgroupParent": "", "BlkioWeight": 0,
    "BlkioWeightDevice": [], "BlkioDeviceReadBps": [], "BlkioDeviceWriteBps": [], "BlkioDeviceReadIOps": [],
    "BlkioDeviceWriteIOps": [], "CpuPeriod": 0, "CpuQuota": 0, "CpuRealtimePeriod": 0,
    "CpuRealtimeRuntime": 0, "CpusetCpus": "", "CpusetMems": "", "Devices": [], "DeviceCgroupRules": None,
    "DeviceRequests": None, "KernelMemory": 0, "KernelMemoryTCP": 0, "MemoryReservation": 0, "MemorySwap": 0, "MemorySwappiness": None,
    "OomKillDisable": False, "PidsLimit": None, "Ulimits": [], "CpuCount": 0, "CpuPercent": 0,
    "IOMaximumIOps": 0, "IOMaximumBandwidth": 0, "MaskedPaths": None, "ReadonlyPaths": None,
}
OMIT_WHEN_EMPTY = ("Mounts", "Init", "Tmpfs", "Sysctls")
CONFIG_KEYS = ("Hostname", "Domainname", "User", "AttachStdin", "AttachStdout", "AttachStderr", "ExposedPorts",
               "Tty", "OpenStdin", "StdinOnce", "Env", "Cmd", "Healthcheck", "ArgsEscaped", "Image", "Volumes",
               "WorkingDir", "Entrypoint", "NetworkDisabled", "MacAddress", "OnBuild", "Labels", "StopSignal",
               "StopTimeout", "Shell")


def merge_image_config(user: dict[str, Any], image: dict[str, Any]) -> dict[str, Any]:
    """moby's ``merge(userConf, imageConf)``."""
    cfg = copy.deepcopy(user)
    if not cfg.get("User"):
        cfg["User"] = image.get("User") or ""
    ports = dict(cfg.get("ExposedPorts") or {})
    for p in image.get("ExposedPorts") or {}:
        ports.setdefault(p, {})
    if ports:
        cfg["ExposedPorts"] = ports
    env = list(cfg.get("Env") or [])
    if not env:
        env = list(image.get("Env") or [])
    else:
        keys = {e.split("=", 1)[0] for e in env}
        env += [e for e in image.get("Env") or [] if e.split("=", 1)[0] not in keys]
    cfg["Env"] = env
    labels = dict(image.get("Labels") or {})
    labels.update(cfg.get("Labels") or {})
    cfg["Labels"] = labels
    if not cfg.get("Entrypoint"):
        if not cfg.get("Cmd"):
            cfg["Cmd"] = image.get("Cmd")
            if "ArgsEscaped" in image:
                cfg["ArgsEscaped"] = image["ArgsEscaped"]
        if cfg.get("Entrypoint") is None:
            cfg["Entrypoint"] = image.get("Entrypoint")
    ihc = image.get("Healthcheck")
    if ihc:
        uhc = cfg.get("Healthcheck")
        if not uhc:
            from dockyard.image.inspect import healthcheck_in_docker_order

            cfg["Healthcheck"] = healthcheck_in_docker_order(ihc)
        else:
            merged = dict(uhc)
            for key in ("Test", "Interval", "Timeout", "StartPeriod", "Retries"):
                if not merged.get(key):
                    if key in ihc:
                        merged[key] = ihc[key]
            cfg["Healthcheck"] = merged
    if not cfg.get("WorkingDir"):
        cfg["WorkingDir"] = image.get("WorkingDir") or ""
    vols = dict(cfg.get("Volumes") or {})
    for v in image.get("Volumes") or {}:
        vols.setdefault(v, {})
    cfg["Volumes"] = vols or None
    if not cfg.get("StopSignal") and image.get("StopSignal"):
        cfg["StopSignal"] = image["StopSignal"]
    if "OnBuild" not in cfg:
        cfg["OnBuild"] = None
    return cfg


def entrypoint_and_args(cfg: dict[str, Any]) -> tuple[str, list[str]]:
    """moby's ``getEntrypointAndArgs``; an entrypoint of ``[""]`` means "none"."""
    entry = [e for e in (cfg.get("Entrypoint") or []) if e != ""] if cfg.get("Entrypoint") != [""] else []
    cmd = list(cfg.get("Cmd") or [])
    argv = entry + cmd if entry else cmd
    if not argv:
        raise InvalidArgument("No command specified")
    return argv[0], argv[1:]


def validate(cfg: dict[str, Any], host: dict[str, Any]) -> None:
    """The daemon's checks on Config and HostConfig, with its messages."""
    wd = cfg.get("WorkingDir") or ""
    if wd and not wd.startswith("/"):
        raise InvalidArgument(f"the working directory '{wd}' is invalid, it needs to be an absolute path")
    hc = cfg.get("Healthcheck") or {}
    for key in ("Interval", "Timeout", "StartPeriod"):
        v = int(hc.get(key) or 0)
        if v < 0:
            raise InvalidArgument(f"{key} in Healthcheck cannot be negative")
        if v and v < 1_000_000:
            raise InvalidArgument(f"{key} in Healthcheck cannot be less than 1ms")
    if int(hc.get("Retries") or 0) < 0:
        raise InvalidArgument("Retries in Healthcheck cannot be negative")
    validate_restart(host.get("RestartPolicy") or {})
    if cfg.get("StopSignal"):
        from dockyard.engine.containers import parse_signal

        parse_signal(cfg["StopSignal"])  # "Invalid signal: x"
    ipc = host.get("IpcMode") or ""
    if ipc not in ("", "none", "private", "shareable", "host") and not ipc.startswith("container:"):
        raise InvalidArgument(f"Invalid IPC mode: {ipc}")
    for path in host.get("Tmpfs") or {}:
        if not path.startswith("/"):
            raise InvalidArgument(f"invalid mount path: '{path}' mount path must be absolute")
    adj = int(host.get("OomScoreAdj") or 0)
    if not -1000 <= adj <= 1000:
        raise InvalidArgument(f"Invalid value {adj}, range for oom score adj is [-1000, 1000]")
    if (host.get("Isolation") or "default") != "default":
        raise InvalidArgument(f'Invalid isolation: "{host["Isolation"]}" - linux only supports \'default\'')
    if host.get("StorageOpt"):  # overlay quotas need xfs with pquota: docker's answer on other filesystems
        raise InvalidArgument("--storage-opt is supported only for overlay over xfs with 'pquota' mount option")
    swappiness = host.get("MemorySwappiness")
    if swappiness is not None and swappiness != -1 and not 0 <= swappiness <= 100:
        raise InvalidArgument(f"Invalid value: {swappiness}, valid memory swappiness range is 0-100")
    policy = (host.get("RestartPolicy") or {}).get("Name") or "no"
    if host.get("AutoRemove") and policy != "no":
        raise InvalidArgument("can't create 'AutoRemove' container with restart policy")
    from dockyard.engine.bundle import validate_limits

    validate_limits(host)
    if host.get("SecurityOpt"):  # (none: no import of the seccomp compiler in the CLI)
        from dockyard.runtime.seccomp import parse_security_opts

        parse_security_opts(host["SecurityOpt"])  # moby's "invalid --security-opt" at create
    log = host.get("LogConfig") or {}
    driver = log.get("Type") or "json-file"
    if driver not in LOG_DRIVERS:
        raise InvalidArgument(f'error looking up logging plugin {driver}: plugin "{driver}" not found')
    opts = log.get("Config") or {}
    if driver == "none" and opts:
        raise InvalidArgument("logger: none does not accept any options")
    if driver in ("json-file", "local"):
        for k in opts:
            if k not in JSON_FILE_OPTS:
                raise InvalidArgument(f"unknown log opt '{k}' for {driver} log driver")
        # max-size/max-file: dockerd reads them when the logger starts (monitor.open_logger)


def _check_network(client: Any, host: dict[str, Any]) -> None:
    mode = host.get("NetworkMode") or "default"
    if mode in ("default", "bridge", "none", "host") or mode.startswith("container:"):
        if mode.startswith("container:"):
            client.containers.store.resolve(mode.split(":", 1)[1])  # NotFound if it does not exist
        return
    client.networks.get(mode)  # NotFound: "network x not found"


def _check_runtime(client: Any, host: dict[str, Any]) -> str:
    from dockyard.engine.runtimes import runtime_for
    from dockyard.runtime import BUILTIN_NAMES, default_runtime_name

    name = host.get("Runtime") or default_runtime_name()
    if name in BUILTIN_NAMES:
        return name  # always there (and its import is the monitor's business)
    try:
        runtime_for(client, name)
    except NotFound:
        raise InvalidArgument(f"Unknown runtime specified {name}") from None
    return name


def create_container(service: Any, body: dict[str, Any], name: str | None, image: Any = None) -> ContainerRecord:
    client = service.client
    store = service.store
    if name is not None:
        name = name.strip()
        if not ids.NAME_RE.match(name):
            raise InvalidArgument(f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
        name = name.lstrip("/")
        owner = store.id_for_name(name)
        if owner:
            raise Conflict(f'Conflict. The container name "/{name}" is already in use by container "{owner}". '
                           "You have to remove (or rename) that container to be able to reuse that name.")
    image_ref = body.get("Image") or ""
    if not image_ref:
        raise InvalidArgument("No image was specified")
    if image is None:
        image = client.images.get(image_ref)
    host = copy.deepcopy(DEFAULT_HOST_CONFIG)
    host.update(copy.deepcopy(body.get("HostConfig") or {}))
    if not host.get("LogConfig") or not host["LogConfig"].get("Type"):
        host["LogConfig"] = {"Type": "json-file", "Config": dict((host.get("LogConfig") or {}).get("Config") or {})}
    user_cfg = {k: copy.deepcopy(v) for k, v in body.items() if k in CONFIG_KEYS}
    from dockyard.network.conflicts import check_conflicts

    check_conflicts(user_cfg, host)  # on the request as sent, as dockerd (before the image's config)
    from dockyard.network.legacy_links import check_links, stored

    links = check_links(client, host)
    cfg = merge_image_config(user_cfg, image.config)
    cfg["Image"] = image_ref
    validate(cfg, host)
    _normalize_capabilities(host)
    _disable_labels_when_sharing(host)
    if (host.get("Memory") or 0) > 0 and not host.get("MemorySwap"):
        host["MemorySwap"] = host["Memory"] * 2  # dockerd records the default: as much swap as memory
    path, args = entrypoint_and_args(cfg)
    _check_network(client, host)
    runtime = _check_runtime(client, host)
    host["Runtime"] = runtime
    for key in OMIT_WHEN_EMPTY:
        if not host.get(key):
            host.pop(key, None)
    if host.get("Ulimits") is None:
        host["Ulimits"] = []
    if not host.get("Privileged") and host.get("MaskedPaths") is None:
        from dockyard.runtime.defaults import DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS

        host["MaskedPaths"] = list(DEFAULT_MASKED_PATHS)
        host["ReadonlyPaths"] = list(DEFAULT_READONLY_PATHS)
    cid = ids.new_id()
    joined = (host.get("NetworkMode") or "").startswith("container:")
    if joined and cfg.get("Hostname"):
        raise InvalidArgument("conflicting options: hostname and the network mode")
    if joined:  # docker: the container takes the hostname of the one whose network it joins
        other = service.load(host["NetworkMode"].split(":", 1)[1])
        cfg["Hostname"] = other.cfg.get("Hostname") or other.id[:12]
    elif not cfg.get("Hostname"):
        cfg["Hostname"] = socket.gethostname() if host.get("NetworkMode") == "host" else cid[:12]
    for key, default in (("Domainname", ""), ("AttachStdin", False), ("AttachStdout", False),
                         ("AttachStderr", False), ("Tty", False), ("OpenStdin", False), ("StdinOnce", False)):
        cfg.setdefault(key, default)
    from dockyard.engine.attachments import Attachments

    config: dict[str, Any] = {
        "Id": cid,
        "Created": rfc3339nano(time.time_ns()),
        "Path": path,
        "Args": args,
        "Image": image.id,
        "Name": "",
        "Driver": "overlay2",
        "Platform": "linux",
        "Runtime": runtime,
        "Config": {k: cfg[k] for k in CONFIG_KEYS if k in cfg},
        "HostConfig": host,
        "NetworkingConfig": copy.deepcopy(body.get("NetworkingConfig") or {}),
        "Mounts": [],
        "HasMounts": Attachments.has_mounts(cfg, host),
    }
    rec = ContainerRecord(cid, store.path(cid), config, default_state())
    for attempt in range(10):
        config["Name"] = "/" + (name or ids.random_name(attempt))
        if links:
            host["Links"] = stored(links, config["Name"])
        try:
            store.create(rec)
            break
        except Conflict:
            if name is not None or attempt == 9:
                raise
    try:
        client.snapshots.prepare(cid, image.top_chain_id)
        if config["HasMounts"]:
            config["Mounts"] = Attachments(client).create_mounts(cid, cfg, host)
            store.write_config(rec)
    except BaseException:
        from dockyard.engine.containers import remove_record

        try:
            remove_record(client, store, rec, remove_volumes=True)
        except DockyardError:
            pass
        raise
    return rec


def _normalize_capabilities(host: dict[str, Any]) -> None:
    """dockerd records ``--cap-add net_admin`` as ``CAP_NET_ADMIN`` (``ALL`` stays ``ALL``)."""
    from dockyard.runtime.capabilities import normalize

    for key in ("CapAdd", "CapDrop"):
        if host.get(key):
            host[key] = [normalize(c) for c in host[key]]


def _disable_labels_when_sharing(host: dict[str, Any]) -> None:
    """dockerd adds ``label=disable`` to SecurityOpt for a container that shares the host's IPC or
    PID namespace or is privileged (an SELinux label could not confine it), unless one was given."""
    opts = list(host.get("SecurityOpt") or [])
    if any(o.split("=", 1)[0].split(":", 1)[0] == "label" for o in opts):
        return
    if host.get("Privileged") or host.get("IpcMode") == "host" or host.get("PidMode") == "host":
        host["SecurityOpt"] = opts + ["label=disable"]


def body_from_kwargs(image: str, command: str | list[str] | None = None, **kw: Any) -> dict[str, Any]:
    """docker-py's ``containers.create/run`` keyword arguments as an API create body."""
    import shlex

    o = RunOptions(image=image)
    if command is not None:
        o.command = shlex.split(command) if isinstance(command, str) else list(command)
    env = kw.get("environment")
    if isinstance(env, dict):
        o.env = [f"{k}={v}" for k, v in env.items()]
    elif env:
        o.env = list(env)
    o.workdir = kw.get("working_dir")
    o.user = kw.get("user")
    ep = kw.get("entrypoint")
    o.hostname = kw.get("hostname")
    labels = kw.get("labels")
    o.labels = [f"{k}={v}" for k, v in labels.items()] if isinstance(labels, dict) else list(labels or [])
    vols = kw.get("volumes")
    if isinstance(vols, dict):
        o.volumes = [f"{src}:{v['bind']}:{v.get('mode', 'rw')}" for src, v in vols.items()]
    elif vols:
        o.volumes = list(vols)
    tmpfs = kw.get("tmpfs")
    o.tmpfs = [f"{k}:{v}" if v else k for k, v in tmpfs.items()] if isinstance(tmpfs, dict) else list(tmpfs or [])
    o.read_only = bool(kw.get("read_only"))
    o.cap_add = list(kw.get("cap_add") or [])
    o.cap_drop = list(kw.get("cap_drop") or [])
    o.privileged = bool(kw.get("privileged"))
    o.init = bool(kw.get("init"))
    o.tty = bool(kw.get("tty"))
    o.interactive = bool(kw.get("stdin_open"))
    o.auto_remove = bool(kw.get("auto_remove"))
    o.detach = True
    o.network = kw.get("network_mode") or kw.get("network")
    o.stop_signal = kw.get("stop_signal")
    mem = kw.get("mem_limit")
    if mem is not None:
        o.memory = str(mem)
    if kw.get("pids_limit") is not None:
        o.pids_limit = str(kw["pids_limit"])
    if kw.get("cpu_shares") is not None:
        o.cpu_shares = str(kw["cpu_shares"])
    ports = kw.get("ports") or {}
    for cport, hport in ports.items():
        key = cport if "/" in str(cport) else f"{cport}/tcp"
        if hport is None:
            o.publish.append(key)
        elif isinstance(hport, tuple):
            o.publish.append(f"{hport[0]}:{hport[1]}:{key}")
        else:
            o.publish.append(f"{hport}:{key}")
    body = build_body(o)
    if ep is not None:
        body["Entrypoint"] = ep.split() if isinstance(ep, str) else list(ep)
    if kw.get("nano_cpus"):
        body["HostConfig"]["NanoCpus"] = int(kw["nano_cpus"])
    rp = kw.get("restart_policy")
    if rp:
        body["HostConfig"]["RestartPolicy"] = {"Name": rp.get("Name", "no"),
                                               "MaximumRetryCount": int(rp.get("MaximumRetryCount", 0))}
    hc = kw.get("healthcheck")
    if hc:
        test = hc.get("test") or hc.get("Test")
        if isinstance(test, str):
            test = ["CMD-SHELL", test]
        body["Healthcheck"] = {"Test": test, "Interval": int(hc.get("interval", 0)), "Timeout": int(hc.get("timeout", 0)),
                               "Retries": int(hc.get("retries", 0)), "StartPeriod": int(hc.get("start_period", 0))}
    if kw.get("log_config"):
        lc = kw["log_config"]
        body["HostConfig"]["LogConfig"] = {"Type": lc.get("type") or lc.get("Type") or "json-file",
                                           "Config": lc.get("config") or lc.get("Config") or {}}
    return body
