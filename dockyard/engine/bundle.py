"""The OCI bundle of one container start: its rootfs mount, /etc files, and ``config.json``.

Docker builds the runtime spec at every start (not at create) from the container's Config and
HostConfig; so do we, through ``dockyard.runtime.spec.generate_spec``. This module decides the
docker-specific inputs: the process environment (``PATH``, ``HOSTNAME``, ``TERM``, then the
container's own, then ``HOME``), the user looked up in the image, the working directory (created
if missing, as docker does), bind mounts, tmpfs, volumes, limits and namespaces.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from dockyard.engine.options import merge_env
from dockyard.engine.store import ContainerRecord
from dockyard.errors import InvalidArgument

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

#: dockyard's networks are IPv4: as docker does for a network without IPv6, the container's
#: interfaces get no IPv6 at all (no ::1 on lo, no fe80:: link-local address)
NO_IPV6 = {f"net.ipv6.conf.{i}.disable_ipv6": "1" for i in ("all", "default", "lo")}


def network_sysctls(network_mode: str, user: dict[str, str]) -> dict[str, str]:
    """The spec's sysctls: the user's, over docker's IPv6-off defaults for a namespace of the
    container's own (the host's and another container's namespace are not ours to change)."""
    if network_mode == "host" or network_mode.startswith("container:"):
        return dict(user)
    return {**NO_IPV6, **user}

def process_env(rec: ContainerRecord, home: str | None) -> list[str]:
    """docker's ``CreateDaemonEnvironment`` + the container's Env, then runc's ``HOME``."""
    cfg = rec.cfg
    base = [f"PATH={DEFAULT_PATH}", f"HOSTNAME={cfg.get('Hostname') or rec.id[:12]}"]
    if cfg.get("Tty"):
        base.append("TERM=xterm")
    env = merge_env(base, list(cfg.get("Env") or []))
    if home and not any(e.startswith("HOME=") for e in env):
        env.append(f"HOME={home}")
    return env


def ensure_init_files(rootfs: Path) -> None:
    """What docker puts in every container: ``/.dockerenv`` (how programs tell they run in a
    container) and ``/etc/mtab`` -> ``/proc/mounts`` (what ``mount``/``df`` read). Made only where
    the image has nothing at that path; ``diff`` and ``commit`` leave them out, as docker's."""
    env = rootfs / ".dockerenv"
    if not os.path.lexists(env):
        env.touch(mode=0o755)
        os.chmod(env, 0o755)
    etc = rootfs / "etc"
    if etc.is_dir() and not etc.is_symlink() and not os.path.lexists(etc / "mtab"):
        os.symlink("/proc/mounts", etc / "mtab")


def ensure_workdir(rootfs: Path, workdir: str, uid: int = 0, gid: int = 0) -> None:
    """Create the working directory inside the rootfs if it is missing (docker does, as root)."""
    from dockyard.runtime.paths import secure_join

    if not workdir or workdir == "/":
        return
    target = secure_join(rootfs, workdir)
    if target.is_dir():
        return
    if target.exists():
        raise InvalidArgument(f"the working directory '{workdir}' is not a directory")
    target.mkdir(mode=0o755, parents=True, exist_ok=True)


# the HostConfig keys resources() reads
LIMIT_KEYS = ("Memory", "MemorySwap", "MemoryReservation", "OomKillDisable", "NanoCpus", "CpuPeriod", "CpuQuota",
              "CpuShares", "CpusetCpus", "CpusetMems", "PidsLimit", "BlkioWeight")


def validate_limits(host: dict[str, Any]) -> None:
    """docker's checks of the resource limits at create; none set (the usual ``run``): nothing
    to check, and no import of the spec generator in the CLI."""
    if any(host.get(k) for k in LIMIT_KEYS):
        resources(host).validate()


def resources(host: dict[str, Any]):  # noqa: ANN201 - dockyard.runtime.spec.Resources
    """HostConfig limits → the runtime's ``Resources`` (docker's semantics live there)."""
    from dockyard.runtime.spec import Resources

    nano = host.get("NanoCpus") or 0
    pids = host.get("PidsLimit")
    return Resources(
        memory=host.get("Memory") or None,
        memory_swap=host.get("MemorySwap") or None,
        memory_reservation=host.get("MemoryReservation") or None,
        oom_kill_disable=bool(host.get("OomKillDisable")),
        memory_swappiness=host.get("MemorySwappiness"),
        device_rules=list(host.get("DeviceCgroupRules") or []),
        cpus=nano / 1e9 if nano else None,
        cpu_period=host.get("CpuPeriod") or None,
        cpu_quota=host.get("CpuQuota") or None,
        cpu_shares=host.get("CpuShares") or None,
        cpuset_cpus=host.get("CpusetCpus") or None,
        cpuset_mems=host.get("CpusetMems") or None,
        pids_limit=pids if pids else None,
        blkio_weight=host.get("BlkioWeight") or None,
    )


def spec_options(rec: ContainerRecord, rootfs: Path, *, netns_path: str | None, network_mode: str,
                 mounts: list[dict[str, Any]], console_size: tuple[int, int] | None = None):  # noqa: ANN201
    """Everything ``generate_spec`` needs for this container (raises docker's errors).
    ``mounts`` are the OCI mounts of its binds, volumes and tmpfs (from the volume service)."""
    from dockyard.runtime.spec import ContainerSpecOptions
    from dockyard.runtime.users import resolve_exec_user, resolve_group

    cfg, host = rec.cfg, rec.host_config
    user = resolve_exec_user(rootfs, cfg.get("User") or "")
    gids = list(user.additional_gids)
    for g in host.get("GroupAdd") or []:
        gid = resolve_group(rootfs, g)
        if gid not in gids:
            gids.append(gid)
    workdir = cfg.get("WorkingDir") or "/"
    ensure_workdir(rootfs, workdir, user.uid, user.gid)
    ensure_init_files(rootfs)
    rlimits = {u["Name"]: (int(u["Soft"]), int(u["Hard"])) for u in host.get("Ulimits") or []}
    security = host.get("SecurityOpt") or []
    opts = ContainerSpecOptions(
        container_id=rec.id,
        args=[rec.config["Path"], *rec.config.get("Args", [])] if rec.config.get("Path") else [],
        env=process_env(rec, user.home),
        cwd=workdir,
        uid=user.uid, gid=user.gid, additional_gids=gids,
        hostname=cfg.get("Hostname") or rec.id[:12],
        domainname=cfg.get("Domainname") or "",
        tty=bool(cfg.get("Tty")),
        console_size=console_size,
        rootfs=str(rootfs),
        readonly_rootfs=bool(host.get("ReadonlyRootfs")),
        privileged=bool(host.get("Privileged")),
        cap_add=list(host.get("CapAdd") or []),
        cap_drop=list(host.get("CapDrop") or []),
        mounts=mounts,
        hosts_path=str(rec.dir / "hosts"),
        hostname_path=str(rec.dir / "hostname"),
        resolv_conf_path=str(rec.dir / "resolv.conf"),
        resources=resources(host),
        rlimits=rlimits,
        network="host" if network_mode == "host" else "private",
        netns_path=netns_path,
        ipc="host" if host.get("IpcMode") == "host" else "private",
        pid="host" if host.get("PidMode") == "host" else "private",
        uts="host" if host.get("UTSMode") == "host" else "private",
        cgroupns="private" if host.get("CgroupnsMode") == "private" else "host",
        sysctls=network_sysctls(network_mode, host.get("Sysctls") or {}),
        no_new_privileges=any(s in ("no-new-privileges", "no-new-privileges:true", "no-new-privileges=true")
                              for s in security),
        security_opt=list(security),
        devices=[f"{d['PathOnHost']}:{d['PathInContainer']}:{d.get('CgroupPermissions') or 'rwm'}"
                 for d in host.get("Devices") or []],
        shm_size=int(host.get("ShmSize") or 64 * 1024 * 1024),
        init=bool(host.get("Init")),
        oom_score_adj=int(host.get("OomScoreAdj") or 0),
    )
    if host.get("MaskedPaths") is not None:
        opts.masked_paths = list(host["MaskedPaths"])
    if host.get("ReadonlyPaths") is not None:
        opts.readonly_paths = list(host["ReadonlyPaths"])
    if host.get("CgroupParent"):
        opts.cgroups_path = f"{host['CgroupParent'].rstrip('/')}/{rec.id}"
    return opts


def write_etc_files(rec: ContainerRecord, hostname: str, hosts: str, resolv: str) -> None:
    """hosts, hostname and resolv.conf beside the record, bind-mounted over the image's."""
    for name, text in (("hostname", hostname + "\n"), ("hosts", hosts), ("resolv.conf", resolv)):
        path = rec.dir / name
        tmp = rec.dir / f".{name}.tmp"
        tmp.write_text(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)


def cgroups_path(rec: ContainerRecord) -> str:
    from dockyard.runtime.spec import CGROUP_PARENT

    parent = rec.host_config.get("CgroupParent") or CGROUP_PARENT
    return f"{parent.rstrip('/')}/{rec.id}"
