"""``top`` and ``stats``: a running container's processes and resource usage, as docker shows them."""
from __future__ import annotations

import os
import shlex
import subprocess
import time
from typing import Any

from dockyard.engine.store import ContainerRecord
from dockyard.engine.timeutil import rfc3339nano
from dockyard.errors import Conflict, DockyardError


def _pids(rec: ContainerRecord) -> list[int]:
    from dockyard.engine.bundle import cgroups_path
    from dockyard.runtime import cgroups

    try:
        return sorted(cgroups.container_pids(cgroups_path(rec)))
    except Exception:  # noqa: BLE001 - no cgroup: fall back to the init
        pid = int(rec.state.get("Pid") or 0)
        return [pid] if pid else []


def _require_running(rec: ContainerRecord) -> None:
    if rec.status not in ("running", "paused"):
        raise Conflict(f"Container {rec.id} is not running")


def top(service: Any, rec: ContainerRecord, ps_args: str | None = None) -> dict[str, Any]:
    """docker top: the host's ``ps`` (``-ef`` by default), rows of the container's processes."""
    _require_running(rec)
    args = shlex.split(ps_args) if ps_args else ["-ef"]
    proc = subprocess.run(["ps", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        why = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
        raise DockyardError(f"ps: {why[0] if why else f'exit status {proc.returncode}'}")  # dockerd: its first line
    lines = proc.stdout.splitlines()
    if not lines:
        return {"Titles": [], "Processes": []}
    titles = lines[0].split()
    try:
        pid_col = titles.index("PID")
    except ValueError:
        raise DockyardError("Couldn't find PID field in ps output") from None
    pids = set(_pids(rec))
    rows = []
    for line in lines[1:]:
        fields = line.split(None, len(titles) - 1)
        if len(fields) > pid_col and fields[pid_col].isdigit() and int(fields[pid_col]) in pids:
            rows.append(fields)
    return {"Titles": titles, "Processes": rows}


def _system_cpu_ns() -> int:
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu "):
                ticks = sum(int(x) for x in line.split()[1:8])
                return ticks * 1_000_000_000 // os.sysconf("SC_CLK_TCK")
    return 0


def _net_io(pid: int) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    try:
        with open(f"/proc/{pid}/net/dev") as f:
            lines = f.readlines()[2:]
    except OSError:
        return out
    for line in lines:
        name, _, rest = line.partition(":")
        name = name.strip()
        if name == "lo":
            continue
        v = [int(x) for x in rest.split()]
        out[name] = {"rx_bytes": v[0], "rx_packets": v[1], "rx_errors": v[2], "rx_dropped": v[3],
                     "tx_bytes": v[8], "tx_packets": v[9], "tx_errors": v[10], "tx_dropped": v[11]}
    return out


def sample(rec: ContainerRecord) -> dict[str, Any]:
    """One docker-API stats sample (without ``precpu_stats``)."""
    from dockyard.engine.bundle import cgroups_path
    from dockyard.runtime import cgroups

    raw: dict[str, Any] = {}
    if rec.status in ("running", "paused"):
        try:
            raw = cgroups.read_stats(cgroups_path(rec))
        except Exception:  # noqa: BLE001
            raw = {}
    mem = raw.get("memory") or {}
    cpu = raw.get("cpu") or {}
    pids = raw.get("pids") or {}
    blk = raw.get("blkio") or {}
    doc: dict[str, Any] = {
        "read": rfc3339nano(time.time_ns()),
        "pids_stats": {"current": pids.get("current", 0), **({"limit": pids["limit"]} if pids.get("limit") else {})},
        "blkio_stats": {"io_service_bytes_recursive": [
            {"major": 0, "minor": 0, "op": "read", "value": blk.get("read_bytes", 0)},
            {"major": 0, "minor": 0, "op": "write", "value": blk.get("write_bytes", 0)}] if blk else None},
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": {"cpu_usage": {"total_usage": cpu.get("usage_ns", 0),
                                    "percpu_usage": cpu.get("percpu_ns") or None,
                                    "usage_in_kernelmode": cpu.get("system_ns", 0),
                                    "usage_in_usermode": cpu.get("user_ns", 0)},
                      "system_cpu_usage": _system_cpu_ns(),
                      "online_cpus": os.cpu_count() or 1,
                      "throttling_data": cpu.get("throttling") or {}},
        "memory_stats": {"usage": mem.get("usage", 0), "max_usage": mem.get("max_usage", 0),
                         "stats": mem.get("stats") or {}, "limit": mem.get("limit", 0)} if mem else {},
        "name": rec.config.get("Name"),
        "id": rec.id,
    }
    pid = int(rec.state.get("Pid") or 0)
    if pid:
        doc["networks"] = _net_io(pid)
    return doc


def stats(service: Any, rec: ContainerRecord, interval: float = 0.5) -> dict[str, Any]:
    """Two samples ``interval`` apart: the second, with the first as ``precpu_stats``."""
    first = sample(rec)
    if rec.status in ("running", "paused"):
        time.sleep(interval)
    second = sample(rec)
    second["preread"] = first["read"]
    second["precpu_stats"] = first["cpu_stats"]
    return second


def row(doc: dict[str, Any]) -> dict[str, Any]:
    """The figures ``docker stats`` prints for one sample (CLI ``calculateCPUPercentUnix``...)."""
    cpu, pre = doc.get("cpu_stats") or {}, doc.get("precpu_stats") or {}
    cpu_delta = (cpu.get("cpu_usage") or {}).get("total_usage", 0) - (pre.get("cpu_usage") or {}).get("total_usage", 0)
    sys_delta = cpu.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
    cpu_pct = cpu_delta / sys_delta * (cpu.get("online_cpus") or 1) * 100.0 if cpu_delta > 0 and sys_delta > 0 else 0.0
    mem = doc.get("memory_stats") or {}
    st = mem.get("stats") or {}
    cache = st.get("total_inactive_file", st.get("inactive_file", 0)) if "total_inactive_file" in st or \
        "inactive_file" in st else 0
    usage = max(0, mem.get("usage", 0) - cache) if mem.get("usage", 0) >= cache else mem.get("usage", 0)
    limit = mem.get("limit", 0)
    rx = sum(n.get("rx_bytes", 0) for n in (doc.get("networks") or {}).values())
    tx = sum(n.get("tx_bytes", 0) for n in (doc.get("networks") or {}).values())
    blk = (doc.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []
    rd = sum(e["value"] for e in blk if e.get("op", "").lower() == "read")
    wr = sum(e["value"] for e in blk if e.get("op", "").lower() == "write")
    return {"cpu": cpu_pct, "mem": usage, "limit": limit, "mem_pct": usage / limit * 100 if limit else 0.0,
            "net": (rx, tx), "block": (rd, wr), "pids": (doc.get("pids_stats") or {}).get("current", 0)}
