"""Container side: build the container's filesystem view inside its new mount namespace.

Runs in the container's init after ``unshare(CLONE_NEWNS)``, in runc's order: make every mount a
slave (nothing propagates back to the host), bind the rootfs onto itself, mount the spec's
``mounts`` (resolving every destination inside the rootfs), create /dev nodes and links,
``pivot_root`` and drop the old root; later the read-only root, ``readonlyPaths`` and
``maskedPaths``. Every mount lives only in this namespace, so nothing is left on the host when
the container's last process exits.
"""
from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

from dockyard.runtime import linux
from dockyard.runtime.cgroups import Cgroup
from dockyard.runtime.paths import secure_join
from dockyard.runtime.spec import DEFAULT_DEVICE_NODES

# option -> (clear, flag) as in runc's parseMountOptions
MOUNT_FLAGS: dict[str, tuple[bool, int]] = {
    "ro": (False, linux.MS_RDONLY), "rw": (True, linux.MS_RDONLY),
    "nosuid": (False, linux.MS_NOSUID), "suid": (True, linux.MS_NOSUID),
    "nodev": (False, linux.MS_NODEV), "dev": (True, linux.MS_NODEV),
    "noexec": (False, linux.MS_NOEXEC), "exec": (True, linux.MS_NOEXEC),
    "sync": (False, linux.MS_SYNCHRONOUS), "async": (True, linux.MS_SYNCHRONOUS),
    "dirsync": (False, linux.MS_DIRSYNC), "remount": (False, linux.MS_REMOUNT),
    "mand": (False, linux.MS_MANDLOCK), "nomand": (True, linux.MS_MANDLOCK),
    "atime": (True, linux.MS_NOATIME), "noatime": (False, linux.MS_NOATIME),
    "diratime": (True, linux.MS_NODIRATIME), "nodiratime": (False, linux.MS_NODIRATIME),
    "relatime": (False, linux.MS_RELATIME), "norelatime": (True, linux.MS_RELATIME),
    "strictatime": (False, linux.MS_STRICTATIME), "nostrictatime": (True, linux.MS_STRICTATIME),
    "bind": (False, linux.MS_BIND), "rbind": (False, linux.MS_BIND | linux.MS_REC),
    "nosymfollow": (False, linux.MS_NOSYMFOLLOW), "symfollow": (True, linux.MS_NOSYMFOLLOW),
}
PROPAGATION: dict[str, int] = {
    "private": linux.MS_PRIVATE, "rprivate": linux.MS_PRIVATE | linux.MS_REC,
    "shared": linux.MS_SHARED, "rshared": linux.MS_SHARED | linux.MS_REC,
    "slave": linux.MS_SLAVE, "rslave": linux.MS_SLAVE | linux.MS_REC,
    "unbindable": linux.MS_UNBINDABLE, "runbindable": linux.MS_UNBINDABLE | linux.MS_REC,
}
IGNORED_OPTIONS = {"tmpcopyup", "defaults", "idmap", "ridmap"}
# statvfs f_flag bits -> mount flags (they agree except relatime)
_ST_TO_MS = ((1, linux.MS_RDONLY), (2, linux.MS_NOSUID), (4, linux.MS_NODEV), (8, linux.MS_NOEXEC),
             (16, linux.MS_SYNCHRONOUS), (64, linux.MS_MANDLOCK), (1024, linux.MS_NOATIME),
             (2048, linux.MS_NODIRATIME), (4096, linux.MS_RELATIME))
DEV_SYMLINKS = (("/proc/self/fd", "/dev/fd"), ("/proc/self/fd/0", "/dev/stdin"),
                ("/proc/self/fd/1", "/dev/stdout"), ("/proc/self/fd/2", "/dev/stderr"))


def parse_options(options: list[str]) -> tuple[int, int, str]:
    """(mount flags, propagation flags, filesystem data) from OCI mount options."""
    flags = prop = 0
    data: list[str] = []
    for opt in options:
        if opt in MOUNT_FLAGS:
            clear, flag = MOUNT_FLAGS[opt]
            flags = flags & ~flag if clear else flags | flag
        elif opt in PROPAGATION:
            prop |= PROPAGATION[opt]
        elif opt not in IGNORED_OPTIONS:
            data.append(opt)
    return flags, prop, ",".join(data)


def mount_flags_of(path: str) -> int:
    """The per-mount flags currently on ``path`` (kept when bind-remounting it read-only)."""
    st_flags = os.statvfs(path).f_flag
    return sum(ms for st, ms in _ST_TO_MS if st_flags & st)


def _make_target(dest: Path, is_dir: bool) -> None:
    if is_dir:
        dest.mkdir(parents=True, exist_ok=True)
    else:
        dest.parent.mkdir(parents=True, exist_ok=True)
        if not dest.exists():
            fd = os.open(dest, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o755)
            os.close(fd)


def _remount_ro(path: str, extra: int = 0) -> None:
    flags = mount_flags_of(path) | extra
    linux.mount(None, path, None, linux.MS_BIND | linux.MS_REMOUNT | linux.MS_RDONLY | flags)


def _remount_bind(path: str, flags: int, ro: bool) -> None:
    """Give a cgroup mount the spec's flags (nosuid,nodev,noexec) and ``ro``: a bind mount keeps
    its source's flags until remounted, and runc remounts it the same way."""
    linux.mount(None, path, None, linux.MS_BIND | linux.MS_REMOUNT | flags | mount_flags_of(path)
                | (linux.MS_RDONLY if ro else 0))


def mount_entry(rootfs: str, m: dict[str, Any], cgroup: Cgroup | None, cgroupns: bool) -> None:
    """Mount one spec ``mounts`` entry under ``rootfs``."""
    dest = secure_join(rootfs, m["destination"])
    mtype = m.get("type") or ""
    options = list(m.get("options") or [])
    flags, prop, data = parse_options(options)
    source = m.get("source") or mtype or "none"
    if mtype == "bind" or flags & linux.MS_BIND:
        if not os.path.exists(source):
            raise OSError(errno.ENOENT, f"bind mount source {source}: no such file or directory")
        _make_target(dest, os.path.isdir(source))
        linux.mount(source, str(dest), None, linux.MS_BIND | (flags & linux.MS_REC))
        remount = flags & ~(linux.MS_BIND | linux.MS_REC | linux.MS_REMOUNT)
        if remount:
            linux.mount(None, str(dest), None,
                        linux.MS_BIND | linux.MS_REMOUNT | remount | mount_flags_of(str(dest)))
    elif mtype == "cgroup":
        _make_target(dest, True)
        mount_cgroups(str(dest), flags, cgroup, cgroupns)
    else:
        _make_target(dest, True)
        linux.mount(source, str(dest), mtype, flags & ~linux.MS_REMOUNT, data or None)
    if prop:
        linux.mount(None, str(dest), None, prop)


def mount_cgroups(dest: str, flags: int, cgroup: Cgroup | None, cgroupns: bool) -> None:
    """/sys/fs/cgroup: v2 ⇒ one cgroup2 mount; v1 ⇒ a tmpfs with one mount per hierarchy (the
    hierarchies read-only, the tmpfs itself left writable, exactly as runc and docker do). With a
    cgroup namespace the fresh mounts show the container's cgroup as root; without one the
    container's own cgroup directories are bind-mounted, as runc does."""
    ro = bool(flags & linux.MS_RDONLY)
    base = (flags & (linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC)) or (linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC)
    if cgroup is None:
        return
    if cgroup.v2:
        if cgroupns:
            linux.mount("cgroup2", dest, "cgroup2", base)
        else:
            linux.mount(str(cgroup.unified), dest, None, linux.MS_BIND | linux.MS_REC)
        _remount_bind(dest, base, ro)
        return
    linux.mount("tmpfs", dest, "tmpfs", base, "mode=755")
    for h in cgroup.layout:
        if h.version != 1:
            continue
        name = h.mountpoint.name
        sub = os.path.join(dest, name)
        os.mkdir(sub)
        if cgroupns:
            opts = ",".join(sorted(h.controllers)) if h.controllers else f"none,{h.key}"
            linux.mount("cgroup", sub, "cgroup", base, opts)
        else:
            linux.mount(str(cgroup.dirs[h.key]), sub, None, linux.MS_BIND | linux.MS_REC)
        _remount_bind(sub, base, ro)
        if "," in name:  # co-mounted controllers (cpu,cpuacct): a link per controller, as on the host
            for ctrl in name.split(","):
                link = os.path.join(dest, ctrl)
                if not os.path.lexists(link):
                    os.symlink(name, link)


def create_devices(rootfs: str, devices: list[dict[str, Any]]) -> None:
    """mknod the default nodes (null, zero, full, random, urandom, tty) and the spec's devices."""
    nodes = [{"path": p, "type": "c", "major": ma, "minor": mi, "fileMode": 0o666, "uid": 0, "gid": 0}
             for p, ma, mi in DEFAULT_DEVICE_NODES]
    seen = {n["path"] for n in devices}
    for node in [*(n for n in nodes if n["path"] not in seen), *devices]:
        path = secure_join(rootfs, node["path"])
        path.parent.mkdir(parents=True, exist_ok=True)
        kind = {"c": 0o020000, "u": 0o020000, "b": 0o060000, "p": 0o010000}[node.get("type", "c")]
        mode = node.get("fileMode") or 0o666
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        os.mknod(path, kind | (mode & 0o7777), os.makedev(node.get("major", 0), node.get("minor", 0)))
        os.chmod(path, mode & 0o7777)
        os.chown(path, node.get("uid") or 0, node.get("gid") or 0)


def create_dev_links(rootfs: str) -> None:
    """/dev/fd, /dev/std{in,out,err}, /dev/ptmx -> pts/ptmx, /dev/core when /proc/kcore exists."""
    links = list(DEV_SYMLINKS) + [("pts/ptmx", "/dev/ptmx")]
    if os.path.exists("/proc/kcore"):
        links.append(("/proc/kcore", "/dev/core"))
    for target, name in links:
        path = secure_join(rootfs, name)
        try:
            if os.path.lexists(path):
                os.unlink(path)
            os.symlink(target, path)
        except OSError as exc:
            if exc.errno != errno.EEXIST:
                raise


def prepare_rootfs(config: dict[str, Any], rootfs: str, cgroup: Cgroup | None, cgroupns: bool) -> None:
    """Everything up to (not including) pivot_root."""
    linux_cfg = config.get("linux") or {}
    propagation = PROPAGATION.get(linux_cfg.get("rootfsPropagation") or "", linux.MS_SLAVE | linux.MS_REC)
    linux.mount(None, "/", None, propagation)
    linux.mount(rootfs, rootfs, None, linux.MS_BIND | linux.MS_REC)
    mounts = config.get("mounts") or []
    for m in mounts:
        mount_entry(rootfs, m, cgroup, cgroupns)
    dev_bound = any(m.get("destination") == "/dev" and (m.get("type") == "bind" or "bind" in (m.get("options") or [])
                                                        or "rbind" in (m.get("options") or []))
                    for m in mounts)
    if not dev_bound:
        create_devices(rootfs, linux_cfg.get("devices") or [])
        create_dev_links(rootfs)


def pivot(rootfs: str) -> None:
    """pivot_root into ``rootfs`` and lazily detach the old root (runc's ``pivot_root(".", ".")``)."""
    old = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    new = os.open(rootfs, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fchdir(new)
        linux.pivot_root(".", ".")
        os.fchdir(old)
        linux.mount(None, ".", None, linux.MS_SLAVE | linux.MS_REC)
        linux.umount2(".", linux.MNT_DETACH)
    finally:
        os.close(old)
        os.close(new)
    os.chdir("/")


def make_root_readonly() -> None:
    _remount_ro("/")


def readonly_paths(paths: list[str]) -> None:
    """Bind each path onto itself read-only (``/proc/sys`` etc.); absent paths are skipped."""
    for p in paths:
        try:
            linux.mount(p, p, None, linux.MS_BIND | linux.MS_REC)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                continue
            raise
        _remount_ro(p, linux.MS_REC)


def mask_paths(paths: list[str]) -> None:
    """Hide each path: /dev/null over files, an empty read-only tmpfs over directories."""
    for p in paths:
        try:
            if os.path.isdir(p) and not os.path.islink(p):
                linux.mount("tmpfs", p, "tmpfs", linux.MS_RDONLY)
            else:
                linux.mount("/dev/null", p, None, linux.MS_BIND)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                continue
            raise
