"""Control groups, v1 and v2: create a container's cgroup, apply OCI ``linux.resources``, read stats.

A container's cgroup is named by its OCI ``cgroupsPath`` (``/dockyard/<id>``) and exists once in
every mounted hierarchy: on cgroup v1 one directory per controller hierarchy (plus the cgroup2
"unified" mount of a hybrid host, for membership only, as runc does); on v2 one directory in the
unified tree. runc and crun use the same paths (cgroupfs driver), so ``read_stats``,
``oom_killed`` and ``remove`` work for containers of every runtime.

Layout detection reads ``/proc/self/mountinfo`` once per process: ``cgroup.controllers`` at
``/sys/fs/cgroup`` means a pure v2 host.
"""
from __future__ import annotations

import errno
import os
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

from dockyard.errors import DockyardError

CGROUP_ROOT = "/sys/fs/cgroup"
V1_CONTROLLERS = frozenset({"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids",
                            "hugetlb", "net_cls", "net_prio", "perf_event", "rdma", "misc"})
UNIFIED = "unified"  # key of the cgroup2 hierarchy (pure v2, or the hybrid "unified" mount)
UNLIMITED_V1 = 2**62  # v1 reports "no limit" as PAGE_COUNTER_MAX pages (~2**63 bytes)


@dataclass(frozen=True)
class Hierarchy:
    """One mounted cgroup hierarchy: where it is and which controllers it carries."""

    mountpoint: Path
    controllers: frozenset[str]
    version: int  # 1 or 2
    key: str      # "memory", "cpu,cpuacct", "name=systemd", or UNIFIED


def parse_mountinfo(text: str) -> list[Hierarchy]:
    """The cgroup hierarchies in a ``/proc/self/mountinfo`` text (first mount of each wins)."""
    found: dict[str, Hierarchy] = {}
    for line in text.splitlines():
        left, _, right = line.partition(" - ")
        fields, rfields = left.split(), right.split()
        if len(fields) < 5 or len(rfields) < 3:
            continue
        fstype, mountpoint, super_opts = rfields[0], fields[4], rfields[2].split(",")
        if fstype == "cgroup2":
            try:
                ctrls = frozenset(Path(mountpoint, "cgroup.controllers").read_text().split())
            except OSError:
                ctrls = frozenset()
            found.setdefault(UNIFIED, Hierarchy(Path(mountpoint), ctrls, 2, UNIFIED))
        elif fstype == "cgroup":
            ctrls = frozenset(o for o in super_opts if o in V1_CONTROLLERS)
            names = [o for o in super_opts if o.startswith("name=")]
            key = ",".join(sorted(ctrls)) if ctrls else (names[0] if names else "")
            if key:
                found.setdefault(key, Hierarchy(Path(mountpoint), ctrls, 1, key))
    return list(found.values())


@lru_cache(maxsize=1)
def hierarchies() -> tuple[Hierarchy, ...]:
    """This host's hierarchies (pure v2: just the unified one)."""
    if os.path.exists(os.path.join(CGROUP_ROOT, "cgroup.controllers")):
        ctrls = frozenset(Path(CGROUP_ROOT, "cgroup.controllers").read_text().split())
        return (Hierarchy(Path(CGROUP_ROOT), ctrls, 2, UNIFIED),)
    with open("/proc/self/mountinfo") as f:
        return tuple(parse_mountinfo(f.read()))


def is_v2() -> bool:
    """True on a pure cgroup v2 host (the controllers live in the unified hierarchy)."""
    return os.path.exists(os.path.join(CGROUP_ROOT, "cgroup.controllers"))


def _write(path: Path, value: str | int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    try:
        os.write(fd, str(value).encode())
    finally:
        os.close(fd)


def _read(path: Path) -> str:
    with open(path) as f:
        return f.read()


def _read_int(path: Path) -> int | None:
    try:
        text = _read(path).strip()
    except OSError:
        return None
    if text == "max":
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _kv(path: Path) -> dict[str, int]:
    """A flat-keyed file (``memory.stat``, ``cpu.stat``, ``memory.events``, ``memory.oom_control``)."""
    out: dict[str, int] = {}
    try:
        text = _read(path)
    except OSError:
        return out
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = int(parts[1])
            except ValueError:
                pass
    return out


def _mem_total() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def shares_to_weight(shares: int) -> int:
    """cgroup v1 cpu.shares (2..262144) to v2 cpu.weight (1..10000), as runc/crun convert."""
    if shares <= 0:
        return 100
    return 1 + ((max(2, min(shares, 262144)) - 2) * 9999) // 262142


def _device_rule(rule: dict[str, Any]) -> str:
    kind = rule.get("type") or "a"
    major = "*" if rule.get("major") is None or rule.get("major") == -1 else str(rule["major"])
    minor = "*" if rule.get("minor") is None or rule.get("minor") == -1 else str(rule["minor"])
    return f"{kind} {major}:{minor} {rule.get('access') or 'rwm'}"


def allows_all_devices(rules: list[dict[str, Any]]) -> bool:
    """A rule allowing every device (``--privileged``)."""
    return any(r.get("allow") and r.get("type") in (None, "a") for r in rules)


def effective_device_rules(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The spec's device rules followed by what runc always allows (the default /dev nodes,
    ptys, ``mknod`` of anything): the list a container's device cgroup enforces."""
    from dockyard.runtime.spec import DEFAULT_DEVICE_NODES, RUNTIME_DEVICE_RULES

    return [*rules, *RUNTIME_DEVICE_RULES,
            *({"allow": True, "type": "c", "major": major, "minor": minor, "access": "rwm"}
              for _, major, minor in DEFAULT_DEVICE_NODES)]


class Cgroup:
    """A container's cgroup (``cgroupsPath``) across every hierarchy of this host."""

    def __init__(self, cgroups_path: str, layout: Iterable[Hierarchy] | None = None) -> None:
        self.path = "/" + cgroups_path.strip("/")
        self.layout = tuple(layout) if layout is not None else hierarchies()
        self.dirs: dict[str, Path] = {h.key: Path(str(h.mountpoint) + self.path) for h in self.layout}

    # ------------------------------------------------------------------ lookup
    def dir_for(self, controller: str) -> Path | None:
        """The directory that carries ``controller`` (v2: the unified one if it has it)."""
        for h in self.layout:
            if controller in h.controllers:
                return self.dirs[h.key]
        return None

    @property
    def unified(self) -> Path | None:
        return self.dirs.get(UNIFIED)

    @property
    def v2(self) -> bool:
        """Controllers live in the unified hierarchy (pure v2)."""
        return all(h.version == 2 for h in self.layout)

    def exists(self) -> bool:
        return any(d.is_dir() for d in self.dirs.values())

    # ------------------------------------------------------------------ lifecycle
    def create(self, resources: dict[str, Any] | None = None) -> None:
        """mkdir in every hierarchy (cpuset and v2 subtree controllers prepared), then apply limits."""
        for h in self.layout:
            for attempt in range(5):  # a concurrent remove() may rmdir an empty parent under us
                try:
                    self._mkdir(h)
                    break
                except FileNotFoundError:
                    if attempt == 4:
                        raise
        if resources:
            self.apply(resources)

    def _mkdir(self, h: Hierarchy) -> None:
        d = self.dirs[h.key]
        if h.version == 2 and h.controllers:
            self._enable_v2_controllers(h)
        if "cpuset" in h.controllers and h.version == 1:
            self._mkdir_cpuset(h.mountpoint, d)
        else:
            d.mkdir(parents=True, exist_ok=True)

    def _enable_v2_controllers(self, h: Hierarchy) -> None:
        """Delegate the controllers down to our cgroup's parent (v2 needs ``+ctrl`` at each level)."""
        want = " ".join("+" + c for c in sorted(h.controllers & {"cpu", "cpuset", "io", "memory", "pids", "hugetlb"}))
        if not want:
            return
        current = h.mountpoint
        parts = [p for p in self.path.split("/") if p][:-1]
        for part in [None, *parts]:
            if part is not None:
                current = current / part
                current.mkdir(exist_ok=True)
            try:
                _write(current / "cgroup.subtree_control", want)
            except OSError:
                pass  # some controller is not available here: limits needing it fail later, loudly

    @staticmethod
    def _mkdir_cpuset(mountpoint: Path, target: Path) -> None:
        """v1 cpuset cgroups start empty: copy cpus/mems from the parent at each new level."""
        current = mountpoint
        for part in target.relative_to(mountpoint).parts:
            parent, current = current, current / part
            try:
                current.mkdir()
            except FileExistsError:
                continue
            for f in ("cpuset.cpus", "cpuset.mems"):
                try:
                    if not _read(current / f).strip():
                        _write(current / f, _read(parent / f).strip())
                except OSError:
                    pass

    def join(self, pid: int = 0) -> None:
        """Move ``pid`` (0 = the calling process) into the cgroup in every hierarchy."""
        for d in self.dirs.values():
            _write(d / "cgroup.procs", pid)

    def apply(self, resources: dict[str, Any]) -> None:
        """Apply OCI ``linux.resources`` (memory, cpu, pids, devices, blockIO)."""
        try:
            if self.v2:
                self._apply_v2(resources)
            else:
                self._apply_v1(resources)
        except OSError as exc:
            raise DockyardError(f"failed to apply cgroup limits to {self.path}: {exc.strerror or exc}") from exc

    def _apply_v1(self, res: dict[str, Any]) -> None:
        mem = res.get("memory") or {}
        d = self.dir_for("memory")
        if d is not None and mem:
            limit, swap = mem.get("limit"), mem.get("swap")
            memsw = d / "memory.memsw.limit_in_bytes"
            has_memsw = memsw.exists()
            values: list[tuple[Path, int]] = []
            if limit:
                values.append((d / "memory.limit_in_bytes", limit))
            if swap and has_memsw:
                values.append((memsw, swap))
            # memsw may never be below the memory limit: raise memsw first when growing
            try:
                for path, value in values:
                    _write(path, value)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                for path, value in reversed(values):
                    _write(path, value)
            if mem.get("reservation"):
                _write(d / "memory.soft_limit_in_bytes", mem["reservation"])
            if mem.get("disableOOMKiller"):
                _write(d / "memory.oom_control", 1)
            if mem.get("swappiness") is not None:
                _write(d / "memory.swappiness", mem["swappiness"])
        cpu = res.get("cpu") or {}
        d = self.dir_for("cpu")
        if d is not None and cpu:
            if cpu.get("shares"):
                _write(d / "cpu.shares", cpu["shares"])
            if cpu.get("period"):
                _write(d / "cpu.cfs_period_us", cpu["period"])
            if cpu.get("quota"):
                _write(d / "cpu.cfs_quota_us", cpu["quota"])
        d = self.dir_for("cpuset")
        if d is not None:
            if cpu.get("cpus"):
                _write(d / "cpuset.cpus", cpu["cpus"])
            if cpu.get("mems"):
                _write(d / "cpuset.mems", cpu["mems"])
        pids = res.get("pids") or {}
        d = self.dir_for("pids")
        if d is not None and pids.get("limit"):
            _write(d / "pids.max", "max" if pids["limit"] < 0 else pids["limit"])
        d = self.dir_for("devices")
        rules = res.get("devices")
        if d is not None and rules is not None:
            self._apply_devices_v1(d, rules)
        blkio = res.get("blockIO") or {}
        d = self.dir_for("blkio")
        if d is not None and blkio.get("weight") and (d / "blkio.weight").exists():
            _write(d / "blkio.weight", blkio["weight"])

    @staticmethod
    def _apply_devices_v1(d: Path, rules: list[dict[str, Any]]) -> None:
        if allows_all_devices(rules):
            _write(d / "devices.allow", "a *:* rwm")  # privileged
            return
        _write(d / "devices.deny", "a")
        for rule in effective_device_rules(rules):
            if rule.get("type") in (None, "a") and not rule.get("allow"):
                continue  # "deny all" is already in place
            _write(d / ("devices.allow" if rule.get("allow") else "devices.deny"), _device_rule(rule))

    def _apply_v2(self, res: dict[str, Any]) -> None:
        d = self.unified
        assert d is not None
        mem = res.get("memory") or {}
        limit, swap = mem.get("limit"), mem.get("swap")
        if limit:
            _write(d / "memory.max", limit)
        if swap and (d / "memory.swap.max").exists():
            if swap < 0:
                _write(d / "memory.swap.max", "max")
            elif limit:
                _write(d / "memory.swap.max", max(0, swap - limit))
        if mem.get("reservation"):
            _write(d / "memory.low", mem["reservation"])
        cpu = res.get("cpu") or {}
        if cpu.get("shares"):
            _write(d / "cpu.weight", shares_to_weight(cpu["shares"]))
        if cpu.get("quota") or cpu.get("period"):
            quota = cpu.get("quota")
            period = cpu.get("period") or 100000
            _write(d / "cpu.max", f"{quota if quota and quota > 0 else 'max'} {period}")
        if cpu.get("cpus"):
            _write(d / "cpuset.cpus", cpu["cpus"])
        if cpu.get("mems"):
            _write(d / "cpuset.mems", cpu["mems"])
        pids = res.get("pids") or {}
        if pids.get("limit"):
            _write(d / "pids.max", "max" if pids["limit"] < 0 else pids["limit"])
        blkio = res.get("blockIO") or {}
        if blkio.get("weight") and (d / "io.weight").exists():
            _write(d / "io.weight", f"default {blkio['weight']}")
        rules = res.get("devices")
        if rules is not None and not allows_all_devices(rules):
            from dockyard.runtime import devicefilter

            devicefilter.attach(d, effective_device_rules(rules))

    # ------------------------------------------------------------------ processes
    def _procs_dir(self) -> Path | None:
        for key in ("pids", "freezer", "memory"):
            d = self.dir_for(key)
            if d is not None:
                return d
        return self.unified or next(iter(self.dirs.values()), None)

    def pids(self) -> list[int]:
        """Every process in the cgroup (and its sub-cgroups)."""
        top = self._procs_dir()
        if top is None or not top.is_dir():
            return []
        found: list[int] = []
        for dirpath, _dirs, _files in os.walk(top):
            try:
                found += [int(p) for p in _read(Path(dirpath, "cgroup.procs")).split()]
            except OSError:
                continue
        return found

    def freeze(self) -> None:
        self._set_frozen(True)

    def thaw(self) -> None:
        self._set_frozen(False)

    def _set_frozen(self, frozen: bool) -> None:
        d = self.dir_for("freezer")
        try:
            if d is not None:
                want = "FROZEN" if frozen else "THAWED"
                for _ in range(1000):
                    _write(d / "freezer.state", want)
                    if _read(d / "freezer.state").strip() == want:
                        return
                    time.sleep(0.001)
                raise DockyardError(f"cgroup {self.path} did not reach {want}")
            if self.unified is not None:
                _write(self.unified / "cgroup.freeze", 1 if frozen else 0)
                for _ in range(1000):
                    if _kv(self.unified / "cgroup.events").get("frozen") == int(frozen):
                        return
                    time.sleep(0.001)
                raise DockyardError(f"cgroup {self.path} did not {'freeze' if frozen else 'thaw'}")
        except OSError as exc:
            raise DockyardError(f"cannot {'pause' if frozen else 'resume'} cgroup {self.path}: {exc.strerror}") from exc

    def frozen(self) -> bool:
        d = self.dir_for("freezer")
        try:
            if d is not None:
                return _read(d / "freezer.state").strip() in ("FROZEN", "FREEZING")
            if self.unified is not None:
                return _kv(self.unified / "cgroup.events").get("frozen") == 1
        except OSError:
            pass
        return False

    # ------------------------------------------------------------------ stats
    def oom_kill_count(self) -> int:
        """How many processes the kernel's OOM killer took from this cgroup."""
        if self.v2:
            return _kv(self.unified / "memory.events").get("oom_kill", 0) if self.unified else 0
        d = self.dir_for("memory")
        return _kv(d / "memory.oom_control").get("oom_kill", 0) if d else 0

    def stats(self) -> dict[str, Any]:
        """Memory, CPU, pids and block I/O usage (the raw material of ``docker stats``)."""
        return self._stats_v2() if self.v2 else self._stats_v1()

    def _stats_v1(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        d = self.dir_for("memory")
        if d is not None:
            limit = _read_int(d / "memory.limit_in_bytes")
            out["memory"] = {
                "usage": _read_int(d / "memory.usage_in_bytes") or 0,
                "max_usage": _read_int(d / "memory.max_usage_in_bytes") or 0,
                "limit": limit if limit is not None and limit < UNLIMITED_V1 else _mem_total(),
                "failcnt": _read_int(d / "memory.failcnt") or 0,
                "stats": _kv(d / "memory.stat"),
            }
        d = self.dir_for("cpuacct")
        cpu: dict[str, Any] = {}
        if d is not None:
            ticks = _kv(d / "cpuacct.stat")
            hz = os.sysconf("SC_CLK_TCK")
            cpu["usage_ns"] = _read_int(d / "cpuacct.usage") or 0
            cpu["user_ns"] = ticks.get("user", 0) * 1_000_000_000 // hz
            cpu["system_ns"] = ticks.get("system", 0) * 1_000_000_000 // hz
            try:
                cpu["percpu_ns"] = [int(x) for x in _read(d / "cpuacct.usage_percpu").split()]
            except OSError:
                cpu["percpu_ns"] = []
        d = self.dir_for("cpu")
        if d is not None:
            st = _kv(d / "cpu.stat")
            cpu["throttling"] = {"periods": st.get("nr_periods", 0), "throttled_periods": st.get("nr_throttled", 0),
                                 "throttled_ns": st.get("throttled_time", 0)}
        out["cpu"] = cpu
        d = self.dir_for("pids")
        if d is not None:
            out["pids"] = {"current": _read_int(d / "pids.current") or 0, "limit": _read_int(d / "pids.max")}
        d = self.dir_for("blkio")
        if d is not None:
            out["blkio"] = self._blkio_v1(d / "blkio.throttle.io_service_bytes_recursive")
        out["oom_kill"] = self.oom_kill_count()
        return out

    @staticmethod
    def _blkio_v1(path: Path) -> dict[str, int]:
        totals = {"read_bytes": 0, "write_bytes": 0}
        try:
            text = _read(path)
        except OSError:
            return totals
        for line in text.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[1] in ("Read", "Write"):
                totals["read_bytes" if parts[1] == "Read" else "write_bytes"] += int(parts[2])
        return totals

    def _stats_v2(self) -> dict[str, Any]:
        d = self.unified
        assert d is not None
        limit = _read_int(d / "memory.max")
        st = _kv(d / "cpu.stat")
        io = {"read_bytes": 0, "write_bytes": 0}
        try:
            for line in _read(d / "io.stat").splitlines():
                for field in line.split()[1:]:
                    k, _, v = field.partition("=")
                    if k == "rbytes":
                        io["read_bytes"] += int(v)
                    elif k == "wbytes":
                        io["write_bytes"] += int(v)
        except OSError:
            pass
        return {
            "memory": {"usage": _read_int(d / "memory.current") or 0,
                       "max_usage": _read_int(d / "memory.peak") or 0,
                       "limit": limit if limit is not None else _mem_total(),
                       "failcnt": _kv(d / "memory.events").get("max", 0),
                       "stats": _kv(d / "memory.stat")},
            "cpu": {"usage_ns": st.get("usage_usec", 0) * 1000, "user_ns": st.get("user_usec", 0) * 1000,
                    "system_ns": st.get("system_usec", 0) * 1000, "percpu_ns": [],
                    "throttling": {"periods": st.get("nr_periods", 0), "throttled_periods": st.get("nr_throttled", 0),
                                   "throttled_ns": st.get("throttled_usec", 0) * 1000}},
            "pids": {"current": _read_int(d / "pids.current") or 0, "limit": _read_int(d / "pids.max")},
            "blkio": io,
            "oom_kill": self.oom_kill_count(),
        }

    # ------------------------------------------------------------------ removal
    def remove(self, timeout: float = 2.0) -> bool:
        """rmdir the cgroup (sub-cgroups first) in every hierarchy; retries while the last
        processes exit. Empty parents (``/dockyard``) go too, so nothing is left behind.
        Returns False if something is still busy after ``timeout``."""
        deadline = time.monotonic() + timeout
        ok = True
        for h in self.layout:
            d = self.dirs[h.key]
            subdirs = sorted((Path(p) for p, _, _ in os.walk(d)), key=lambda p: len(p.parts), reverse=True)
            for sub in subdirs:
                while True:
                    try:
                        sub.rmdir()
                        break
                    except FileNotFoundError:
                        break
                    except OSError as exc:
                        if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                            ok = False
                            break
                        time.sleep(0.01)
            parent = d.parent
            while ok and parent != h.mountpoint and h.mountpoint in parent.parents:
                try:
                    parent.rmdir()  # fails (EBUSY/ENOTEMPTY) while other containers use it: fine
                except OSError:
                    break
                parent = parent.parent
        return ok


# ---------------------------------------------------------------------- engine helpers
def read_stats(cgroups_path: str) -> dict[str, Any]:
    """Usage of a container's cgroup: ``memory`` (usage, limit, stats), ``cpu`` (usage_ns, ...),
    ``pids`` (current, limit), ``blkio``, ``oom_kill`` (count)."""
    return Cgroup(cgroups_path).stats()


def oom_killed(cgroups_path: str) -> bool:
    """True if the kernel OOM-killed any process of the container (docker's ``OOMKilled``)."""
    return Cgroup(cgroups_path).oom_kill_count() > 0


def remove(cgroups_path: str, timeout: float = 2.0) -> bool:
    """Remove a container's cgroup in every hierarchy (False if still busy after ``timeout``)."""
    return Cgroup(cgroups_path).remove(timeout)


def container_pids(cgroups_path: str) -> list[int]:
    """Host pids of every process in the container's cgroup (``docker top``)."""
    return Cgroup(cgroups_path).pids()
