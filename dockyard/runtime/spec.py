"""Generate docker-equivalent OCI runtime specs (``config.json``) from a high-level description.

The engine says *what* it wants (``ContainerSpecOptions``: command, user, mounts, limits, ...);
this module knows *how* docker expresses it in an OCI spec: its default mounts, capability set,
masked and read-only paths, device cgroup rules, namespaces, sysctls and seccomp profile (moby
``oci/defaults.go`` and ``daemon/oci_linux.go``). The same spec runs on the built-in runtime,
runc and crun — the lifecycle tests prove it on all three.
"""
from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockyard.errors import InvalidArgument, Unsupported
from dockyard.runtime import capabilities, seccomp
from dockyard.runtime.defaults import DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS
from dockyard.runtime.users import ExecUser, resolve_exec_user, resolve_group, resolve_user

OCI_VERSION = "1.0.2-dev"
DEFAULT_PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_SHM_SIZE = 64 * 1024 * 1024
CGROUP_PARENT = "/dockyard"
INIT_PATH_IN_CONTAINER = "/sbin/docker-init"
INIT_CANDIDATES = ("/usr/bin/docker-init", "/usr/bin/tini-static", "/usr/local/bin/docker-init", "/sbin/tini-static")

# docker's device cgroup rules for an unprivileged container: deny all, then the basic devices
# (runc adds its own allow list — c *:* m, b *:* m, pts, ptmx, tun — on top of these).
DEFAULT_DEVICE_RULES: tuple[dict[str, Any], ...] = (
    {"allow": False, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},   # /dev/zero
    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},   # /dev/null
    {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "rwm"},   # /dev/urandom
    {"allow": True, "type": "c", "major": 1, "minor": 8, "access": "rwm"},   # /dev/random
    {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rwm"},   # /dev/tty
    {"allow": True, "type": "c", "major": 5, "minor": 1, "access": "rwm"},   # /dev/console
    {"allow": False, "type": "c", "major": 10, "minor": 229, "access": "rwm"},  # /dev/fuse
)
# what docker's spec leaves to runc: the nodes every container gets, and their cgroup rules
DEFAULT_DEVICE_NODES: tuple[tuple[str, int, int], ...] = (
    ("/dev/null", 1, 3), ("/dev/zero", 1, 5), ("/dev/full", 1, 7), ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9), ("/dev/tty", 5, 0),
)
RUNTIME_DEVICE_RULES: tuple[dict[str, Any], ...] = (
    {"allow": True, "type": "c", "major": None, "minor": None, "access": "m"},
    {"allow": True, "type": "b", "major": None, "minor": None, "access": "m"},
    {"allow": True, "type": "c", "major": 1, "minor": 7, "access": "rwm"},    # /dev/full
    {"allow": True, "type": "c", "major": 136, "minor": None, "access": "rwm"},  # /dev/pts/*
    {"allow": True, "type": "c", "major": 5, "minor": 2, "access": "rwm"},    # /dev/ptmx
    {"allow": True, "type": "c", "major": 10, "minor": 200, "access": "rwm"},  # /dev/net/tun
)
# sysctls docker sets in a container with its own network namespace (docker >= 20.10)
DEFAULT_NETNS_SYSCTLS = {"net.ipv4.ip_unprivileged_port_start": "0",
                         "net.ipv4.ping_group_range": "0 2147483647"}
RLIMIT_NAMES = ("as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice",
                "nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack")


@dataclass
class Resources:
    """cgroup limits with docker's flag semantics (``--memory`` etc.), turned into OCI ``linux.resources``."""

    memory: int | None = None              # --memory, bytes
    memory_swap: int | None = None         # --memory-swap: memory + swap, bytes; -1 = unlimited swap
    memory_reservation: int | None = None  # --memory-reservation
    oom_kill_disable: bool = False         # --oom-kill-disable
    cpus: float | None = None              # --cpus
    cpu_period: int | None = None          # --cpu-period (µs)
    cpu_quota: int | None = None           # --cpu-quota (µs)
    cpu_shares: int | None = None          # --cpu-shares
    cpuset_cpus: str | None = None         # --cpuset-cpus
    cpuset_mems: str | None = None         # --cpuset-mems
    pids_limit: int | None = None          # --pids-limit; 0 or -1 = unlimited
    blkio_weight: int | None = None        # --blkio-weight
    memory_swappiness: int | None = None   # --memory-swappiness (None: the kernel's)
    device_rules: list[str] = field(default_factory=list)  # --device-cgroup-rule "c 1:3 mr"

    def validate(self) -> None:
        """docker's checks, with docker's messages."""
        if self.memory is not None and 0 < self.memory < 6 * 1024 * 1024:
            raise InvalidArgument("Minimum memory limit allowed is 6MB")
        if self.memory_swap is not None and self.memory_swap > 0:
            if not self.memory:
                raise InvalidArgument("You should always set the Memory limit when using Memoryswap limit, see usage")
            if self.memory_swap < self.memory:
                raise InvalidArgument("Minimum memoryswap limit should be larger than memory limit, see usage")
        if self.cpus is not None:
            if self.cpu_period or self.cpu_quota:
                raise InvalidArgument("Conflicting options: Nano CPUs and CPU Period cannot both be set")
            ncpu = os.cpu_count() or 1
            if self.cpus < 0.01 or self.cpus > ncpu:
                raise InvalidArgument(f"Range of CPUs is from 0.01 to {ncpu:.2f}, as there are only {ncpu} CPUs available")
        if self.cpu_period is not None and self.cpu_period and not 1000 <= self.cpu_period <= 1000000:
            raise InvalidArgument("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)")
        if self.cpu_quota is not None and 0 < self.cpu_quota < 1000:
            raise InvalidArgument("CPU cfs quota can not be less than 1ms (i.e. 1000)")
        if self.blkio_weight and not 10 <= self.blkio_weight <= 1000:
            raise InvalidArgument("Range of blkio weight is from 10 to 1000")
        for rule in self.device_rules:
            device_rule(rule)

    def to_oci(self, devices: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        res: dict[str, Any] = {"devices": [*(devices or []), *(device_rule(r) for r in self.device_rules)]}
        mem: dict[str, Any] = {}
        if self.memory:
            mem["limit"] = self.memory
            if self.memory_swap is None or self.memory_swap == 0:
                mem["swap"] = 2 * self.memory  # docker: as much swap as memory
            else:
                mem["swap"] = self.memory_swap
        elif self.memory_swap == -1:
            mem["swap"] = -1
        if self.memory_reservation:
            mem["reservation"] = self.memory_reservation
        if self.oom_kill_disable:
            mem["disableOOMKiller"] = True
        if self.memory_swappiness is not None and self.memory_swappiness >= 0:
            mem["swappiness"] = self.memory_swappiness
        if mem:
            res["memory"] = mem
        cpu: dict[str, Any] = {}
        if self.cpu_shares:
            cpu["shares"] = self.cpu_shares
        if self.cpus:
            cpu["period"] = 100000
            cpu["quota"] = int(round(self.cpus * 100000))
        else:
            if self.cpu_quota:
                cpu["quota"] = self.cpu_quota
            if self.cpu_period:
                cpu["period"] = self.cpu_period
        if self.cpuset_cpus:
            cpu["cpus"] = self.cpuset_cpus
        if self.cpuset_mems:
            cpu["mems"] = self.cpuset_mems
        if cpu:
            res["cpu"] = cpu
        if self.pids_limit is not None and self.pids_limit != 0:
            res["pids"] = {"limit": self.pids_limit if self.pids_limit > 0 else -1}
        if self.blkio_weight:
            res["blockIO"] = {"weight": self.blkio_weight}
        return res


def device_rule(rule: str) -> dict[str, Any]:
    """``--device-cgroup-rule 'c 1:3 mr'`` → an OCI device rule (``*`` for any major/minor)."""
    import re

    m = re.fullmatch(r"([acb]) (\d+|\*):(\d+|\*) ([rwm]{1,3})", rule.strip())
    if not m:
        raise InvalidArgument(f"invalid device cgroup format '{rule}'")
    kind, major, minor, access = m.groups()
    out: dict[str, Any] = {"allow": True, "type": kind}
    if major != "*":
        out["major"] = int(major)
    if minor != "*":
        out["minor"] = int(minor)
    return {**out, "access": access}


@dataclass
class ContainerSpecOptions:
    """Everything the engine decides about one container, in docker's terms."""

    container_id: str
    args: list[str]
    env: list[str] = field(default_factory=list)
    cwd: str = "/"
    uid: int = 0
    gid: int = 0
    additional_gids: list[int] = field(default_factory=list)
    hostname: str = ""
    domainname: str = ""
    tty: bool = False
    console_size: tuple[int, int] | None = None      # (height, width)
    rootfs: str = "rootfs"                            # root.path (relative to the bundle or absolute)
    readonly_rootfs: bool = False
    privileged: bool = False
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    mounts: list[dict[str, Any]] = field(default_factory=list)  # OCI mounts: see bind_mount/tmpfs_mount
    hosts_path: str | None = None                     # files the engine writes, bound at /etc/...
    hostname_path: str | None = None
    resolv_conf_path: str | None = None
    resources: Resources = field(default_factory=Resources)
    rlimits: dict[str, tuple[int, int]] = field(default_factory=dict)  # "nofile": (soft, hard)
    masked_paths: list[str] | None = None             # None = docker's defaults
    readonly_paths: list[str] | None = None
    network: str = "private"                          # "private" (own netns) | "host"
    netns_path: str | None = None                     # join this netns instead of making one
    ipc: str = "private"                              # "private" | "host" | a namespace path
    pid: str = "private"                              # "private" | "host" | a namespace path
    uts: str = "private"                              # "private" | "host"
    cgroupns: str = "private"                         # "private" | "host"
    cgroups_path: str | None = None                   # default /dockyard/<id>
    sysctls: dict[str, str] = field(default_factory=dict)
    oom_score_adj: int | None = 0
    no_new_privileges: bool = False                   # --security-opt no-new-privileges
    security_opt: list[str] = field(default_factory=list)  # --security-opt (seccomp=, no-new-privileges:bool, ...)
    annotations: dict[str, str] = field(default_factory=dict)
    devices: list[str] = field(default_factory=list)  # --device /dev/x[:/dev/y[:rwm]]
    device_cgroup_rules: list[str] = field(default_factory=list)  # --device-cgroup-rule 'c 1:3 rwm'
    shm_size: int = DEFAULT_SHM_SIZE
    init: bool = False                                # --init: tini as PID 1
    init_path: str | None = None                      # host binary for --init (default: docker-init/tini-static)

    def set_user(self, user: ExecUser | tuple[int, int, list[int]]) -> None:
        """Take a resolved user (``resolve_exec_user``/``resolve_user``)."""
        if isinstance(user, ExecUser):
            self.uid, self.gid, self.additional_gids = user.uid, user.gid, list(user.additional_gids)
        else:
            self.uid, self.gid, self.additional_gids = user[0], user[1], list(user[2])


# ---------------------------------------------------------------------- mount helpers
def bind_mount(source: str, destination: str, readonly: bool = False, propagation: str = "rprivate",
               recursive: bool = True) -> dict[str, Any]:
    """An OCI bind mount as docker writes it (``-v``/``--mount type=bind``/volumes)."""
    options = ["rbind" if recursive else "bind", propagation]
    if readonly:
        options.append("ro")
    return {"destination": destination, "type": "bind", "source": str(source), "options": options}


def tmpfs_mount(destination: str, options: str | list[str] | None = None) -> dict[str, Any]:
    """``--tmpfs /run[:opts]``: docker's defaults noexec,nosuid,nodev, then the user's options."""
    extra = options.split(",") if isinstance(options, str) else list(options or [])
    return {"destination": destination, "type": "tmpfs", "source": "tmpfs",
            "options": ["noexec", "nosuid", "nodev", "rprivate", *[o for o in extra if o]]}


def overlay_mount(destination: str, lowerdirs: list[str], upperdir: str | None = None,
                  workdir: str | None = None) -> dict[str, Any]:
    """An overlay mount entry (lowerdirs top-most first); read-only when there is no upperdir."""
    opts = ["lowerdir=" + ":".join(lowerdirs)]
    if upperdir:
        opts += [f"upperdir={upperdir}", f"workdir={workdir}"]
    return {"destination": destination, "type": "overlay", "source": "overlay", "options": opts}


def default_mounts(opts: ContainerSpecOptions) -> list[dict[str, Any]]:
    """docker's default mounts (moby ``oci.DefaultLinuxSpec``), adjusted for privileged/shm/ipc."""
    ro = [] if opts.privileged else ["ro"]
    shm: dict[str, Any]
    if opts.ipc == "host":
        shm = bind_mount("/dev/shm", "/dev/shm")
    else:
        shm = {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
               "options": ["nosuid", "noexec", "nodev", "mode=1777", f"size={opts.shm_size}"]}
    return [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", *ro]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": [*ro, "nosuid", "noexec", "nodev"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        shm,
    ]


def _clean_destination(dest: str) -> str:
    if not dest.startswith("/"):
        raise InvalidArgument(f"invalid mount config: mount path must be absolute: {dest!r}")
    return os.path.normpath(dest)


def _all_mounts(opts: ContainerSpecOptions) -> list[dict[str, Any]]:
    """Default mounts, minus those the user's mounts replace, then the user's mounts parents first."""
    user: list[dict[str, Any]] = []
    for m in opts.mounts:
        m = dict(m)
        m["destination"] = _clean_destination(m["destination"])
        user.append(m)
    ro_net = opts.readonly_rootfs
    for dest, path in (("/etc/resolv.conf", opts.resolv_conf_path), ("/etc/hostname", opts.hostname_path),
                       ("/etc/hosts", opts.hosts_path)):
        if path and not any(m["destination"] == dest for m in user):
            user.append(bind_mount(path, dest, readonly=ro_net))
    taken = {m["destination"] for m in user}
    defaults = [m for m in default_mounts(opts)
                if m["destination"] not in taken
                and not any(m["destination"].startswith(t.rstrip("/") + "/") for t in taken if t == "/dev")]
    user.sort(key=lambda m: len([p for p in m["destination"].split("/") if p]))  # stable: parents first
    return defaults + user


# ---------------------------------------------------------------------- devices
def _host_device(path: str, container_path: str | None = None, perms: str = "rwm") -> dict[str, Any]:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InvalidArgument(f"error gathering device information while adding custom device {path!r}: no such file or directory") from None
    if stat.S_ISCHR(st.st_mode):
        kind = "c"
    elif stat.S_ISBLK(st.st_mode):
        kind = "b"
    else:
        raise InvalidArgument(f"error gathering device information while adding custom device {path!r}: not a device node")
    return {"path": container_path or path, "type": kind, "major": os.major(st.st_rdev),
            "minor": os.minor(st.st_rdev), "fileMode": stat.S_IMODE(st.st_mode), "uid": st.st_uid,
            "gid": st.st_gid, "_perms": perms}


def parse_device(spec: str) -> dict[str, Any]:
    """``--device /dev/fuse[:/dev/fuse][:rwm]`` as an OCI device (with the cgroup permissions)."""
    parts = spec.split(":")
    host = parts[0]
    container = host
    perms = "rwm"
    if len(parts) == 2:
        if parts[1] and set(parts[1]) <= set("rwm") and not parts[1].startswith("/"):
            perms = parts[1]
        else:
            container = parts[1]
    elif len(parts) >= 3:
        container, perms = parts[1], parts[2]
    if not set(perms) <= set("rwm"):
        raise InvalidArgument(f"invalid device mode: {perms}")
    return _host_device(host, container, perms)


def parse_device_cgroup_rule(rule: str) -> dict[str, Any]:
    """``--device-cgroup-rule 'c 1:3 rwm'`` as an OCI device-cgroup entry."""
    try:
        kind, numbers, access = rule.split()
        major, minor = numbers.split(":")
        if kind not in ("a", "b", "c") or not set(access) <= set("rwm"):
            raise ValueError
        return {"allow": True, "type": kind, "major": None if major == "*" else int(major),
                "minor": None if minor == "*" else int(minor), "access": access}
    except ValueError:
        raise InvalidArgument(f"invalid device cgroup format '{rule}'") from None


def host_devices() -> list[dict[str, Any]]:
    """Every device node under the host's /dev (``--privileged`` gives them all)."""
    skip = {"/dev/pts", "/dev/shm", "/dev/mqueue", "/dev/fd", "/dev/console"}
    found: list[dict[str, Any]] = []
    for dirpath, dirnames, filenames in os.walk("/dev"):
        dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) not in skip]
        for name in filenames:
            path = os.path.join(dirpath, name)
            if path in skip or os.path.islink(path):
                continue
            try:
                found.append(_host_device(path))
            except InvalidArgument:
                continue
    return found


def find_init_binary(path: str | None = None) -> str:
    """The static init for ``--init`` (docker's docker-init is tini-static)."""
    for candidate in ([path] if path else list(INIT_CANDIDATES)):
        if candidate and os.path.isfile(candidate):
            return os.path.realpath(candidate)
    raise Unsupported("--init needs a static init binary: install it with 'apt-get install tini'")


# ---------------------------------------------------------------------- the spec
def _namespaces(opts: ContainerSpecOptions) -> list[dict[str, Any]]:
    ns: list[dict[str, Any]] = [{"type": "mount"}]
    if opts.network != "host":
        ns.append({"type": "network", **({"path": opts.netns_path} if opts.netns_path else {})})
    if opts.uts != "host":
        ns.append({"type": "uts"})
    if opts.pid != "host":
        ns.append({"type": "pid", **({"path": opts.pid} if opts.pid.startswith("/") else {})})
    if opts.ipc != "host":
        ns.append({"type": "ipc", **({"path": opts.ipc} if opts.ipc.startswith("/") else {})})
    if opts.cgroupns != "host":
        ns.append({"type": "cgroup"})
    return ns


def _rlimits(opts: ContainerSpecOptions) -> list[dict[str, Any]]:
    out = []
    for name, (soft, hard) in opts.rlimits.items():
        key = name.lower().removeprefix("rlimit_")
        if key not in RLIMIT_NAMES:
            raise InvalidArgument(f"invalid ulimit type: {name}")
        if soft > hard:
            raise InvalidArgument(f"ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}")
        out.append({"type": "RLIMIT_" + key.upper(), "soft": soft, "hard": hard})
    return out


def generate_spec(opts: ContainerSpecOptions) -> dict[str, Any]:
    """The OCI runtime spec (as a dict) docker would hand runc for these options."""
    if not opts.args:
        raise InvalidArgument("no command specified")
    opts.resources.validate()
    security = seccomp.parse_security_opts(opts.security_opt)
    caps = capabilities.all_capabilities() if opts.privileged else capabilities.tweak(
        capabilities.DEFAULT_CAPABILITIES, opts.cap_add, opts.cap_drop)
    args = list(opts.args)
    mounts = _all_mounts(opts)
    if opts.init:
        mounts.append(bind_mount(find_init_binary(opts.init_path), INIT_PATH_IN_CONTAINER, readonly=True))
        args = [INIT_PATH_IN_CONTAINER, "--", *args]
    process: dict[str, Any] = {
        "terminal": opts.tty,
        "user": {"uid": opts.uid, "gid": opts.gid,
                 **({"additionalGids": list(opts.additional_gids)} if opts.additional_gids else {})},
        "args": args,
        "env": list(opts.env),
        "cwd": opts.cwd or "/",
        "capabilities": {"bounding": caps, "effective": list(caps), "permitted": list(caps)},
        "noNewPrivileges": bool(opts.no_new_privileges if security.no_new_privileges is None
                                else security.no_new_privileges),
    }
    if opts.console_size and opts.tty:
        process["consoleSize"] = {"height": opts.console_size[0], "width": opts.console_size[1]}
    if opts.rlimits:
        process["rlimits"] = _rlimits(opts)
    if opts.oom_score_adj is not None:
        process["oomScoreAdj"] = opts.oom_score_adj

    if opts.privileged:
        device_rules: list[dict[str, Any]] = [{"allow": True, "access": "rwm"}]
        devices = host_devices()
    else:
        device_rules = [dict(r) for r in DEFAULT_DEVICE_RULES]
        devices = [parse_device(d) for d in opts.devices]
        for d in devices:
            device_rules.append({"allow": True, "type": d["type"], "major": d["major"], "minor": d["minor"],
                                 "access": d.get("_perms", "rwm")})
        device_rules += [parse_device_cgroup_rule(r) for r in opts.device_cgroup_rules]
    for d in devices:
        d.pop("_perms", None)

    sysctls = dict(DEFAULT_NETNS_SYSCTLS) if opts.network != "host" else {}
    sysctls.update(opts.sysctls)
    linux: dict[str, Any] = {
        "sysctl": sysctls,
        "resources": opts.resources.to_oci(device_rules),
        "cgroupsPath": opts.cgroups_path or f"{CGROUP_PARENT}/{opts.container_id}",
        "namespaces": _namespaces(opts),
    }
    if devices:
        linux["devices"] = devices
    seccomp_profile = seccomp.container_seccomp(security, opts.privileged, caps)
    if seccomp_profile is not None:
        linux["seccomp"] = seccomp_profile
    if not opts.privileged:
        linux["maskedPaths"] = list(DEFAULT_MASKED_PATHS if opts.masked_paths is None else opts.masked_paths)
        linux["readonlyPaths"] = list(DEFAULT_READONLY_PATHS if opts.readonly_paths is None else opts.readonly_paths)
    spec: dict[str, Any] = {
        "ociVersion": OCI_VERSION,
        "process": process,
        "root": {"path": opts.rootfs, **({"readonly": True} if opts.readonly_rootfs else {})},
        **({"hostname": opts.hostname} if opts.uts != "host" else {}),
        "mounts": mounts,
        "linux": linux,
    }
    if opts.domainname:
        spec["domainname"] = opts.domainname
    if opts.annotations:
        spec["annotations"] = dict(opts.annotations)
    return spec


def exec_process(container_process: dict[str, Any], args: list[str], env: list[str] | None = None,
                 user: ExecUser | tuple[int, int, list[int]] | None = None, cwd: str | None = None,
                 tty: bool = False, privileged: bool = False,
                 console_size: tuple[int, int] | None = None) -> dict[str, Any]:
    """The OCI ``process`` for ``exec``: docker's rules — the container's env plus ``env``, its
    user/cwd/capabilities unless overridden, all capabilities with ``--privileged``."""
    if not args:
        raise InvalidArgument("no command specified")
    proc: dict[str, Any] = json.loads(json.dumps(container_process))  # deep copy
    proc["args"] = list(args)
    proc["terminal"] = bool(tty)
    proc.pop("consoleSize", None)
    if console_size and tty:
        proc["consoleSize"] = {"height": console_size[0], "width": console_size[1]}
    merged: dict[str, str] = {}
    for item in [*proc.get("env", []), *(env or [])]:
        key = item.split("=", 1)[0]
        merged[key] = item
    proc["env"] = list(merged.values())
    if user is not None:
        uid, gid, gids = (user.uid, user.gid, user.additional_gids) if isinstance(user, ExecUser) else user
        proc["user"] = {"uid": uid, "gid": gid, **({"additionalGids": list(gids)} if gids else {})}
    if cwd:
        proc["cwd"] = cwd
    if privileged:
        caps = capabilities.all_capabilities()
        proc["capabilities"] = {"bounding": caps, "effective": list(caps), "permitted": list(caps)}
    return proc


def write_bundle(bundle: str | os.PathLike[str], spec: dict[str, Any]) -> Path:
    """Write ``config.json`` into ``bundle`` atomically (a crash never leaves half a spec)."""
    bundle = Path(bundle)
    bundle.mkdir(parents=True, exist_ok=True)
    path = bundle / "config.json"
    tmp = path.with_name(".config.json.tmp")
    tmp.write_text(json.dumps(spec, indent=2))
    os.replace(tmp, path)
    return path


__all__ = [
    "ContainerSpecOptions", "Resources", "generate_spec", "exec_process", "write_bundle",
    "bind_mount", "tmpfs_mount", "overlay_mount", "resolve_user", "resolve_exec_user", "resolve_group",
    "ExecUser", "find_init_binary", "parse_device", "parse_device_cgroup_rule",
    "DEFAULT_MASKED_PATHS", "DEFAULT_READONLY_PATHS", "DEFAULT_PATH_ENV", "DEFAULT_DEVICE_NODES",
    "RUNTIME_DEVICE_RULES", "CGROUP_PARENT",
]
