"""``client.system``: facts about this dockyard (info, version, disk usage) and whole-system prune.

It only reads the other services through their public calls, so it stays valid as they grow;
a service that is not installed in this build counts as empty.
"""
from __future__ import annotations

import os
import platform
import sys
from typing import TYPE_CHECKING, Any, Callable, TypeVar

import dockyard

if TYPE_CHECKING:  # pragma: no cover
    from dockyard.client import Client

T = TypeVar("T")


def _optional(fn: Callable[[], T], default: T) -> T:
    """Call into a service that may not exist in this build (ModuleNotFoundError/AttributeError)."""
    try:
        return fn()
    except (ModuleNotFoundError, AttributeError, NotImplementedError):
        return default


def cgroup_version() -> str:
    return "2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "1"


def _meminfo_total() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _os_release(key: str) -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith(key + "="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return ""


def _os_name() -> str:
    return _os_release("PRETTY_NAME") or platform.system()


def _read_flag(path: str) -> bool:
    try:
        with open(path) as f:
            return f.read().strip() == "1"
    except OSError:
        return False


def _limits_support(version: str) -> dict[str, bool]:
    """docker's info booleans: which resource limits the host's cgroups can enforce."""
    base = "/sys/fs/cgroup"
    if version == "2":
        ctrls = set()
        try:
            with open(f"{base}/cgroup.controllers") as f:
                ctrls = set(f.read().split())
        except OSError:
            pass
        mem, cpu, pids, cpuset = "memory" in ctrls, "cpu" in ctrls, "pids" in ctrls, "cpuset" in ctrls
        return {"MemoryLimit": mem, "SwapLimit": mem, "KernelMemory": False, "KernelMemoryTCP": False,
                "CpuCfsPeriod": cpu, "CpuCfsQuota": cpu, "CPUShares": cpu, "CPUSet": cpuset, "PidsLimit": pids,
                "OomKillDisable": False}
    mem = os.path.isdir(f"{base}/memory")
    cpu = os.path.exists(f"{base}/cpu/cpu.cfs_quota_us")
    return {"MemoryLimit": mem, "SwapLimit": os.path.exists(f"{base}/memory/memory.memsw.limit_in_bytes"),
            "KernelMemory": os.path.exists(f"{base}/memory/memory.kmem.limit_in_bytes"),
            "KernelMemoryTCP": os.path.exists(f"{base}/memory/memory.kmem.tcp.limit_in_bytes"),
            "CpuCfsPeriod": cpu, "CpuCfsQuota": cpu, "CPUShares": os.path.exists(f"{base}/cpu/cpu.shares"),
            "CPUSet": os.path.isdir(f"{base}/cpuset"), "PidsLimit": os.path.isdir(f"{base}/pids"),
            "OomKillDisable": os.path.exists(f"{base}/memory/memory.oom_control")}


class SystemService:
    def __init__(self, client: "Client") -> None:
        self.client = client

    def version(self) -> dict[str, Any]:
        """docker's version document: the client, and the engine as ``Server`` (dockyard has no
        daemon; the engine is the library itself, the same one ``system service`` serves)."""
        from dockyard.api.system import version_document
        from dockyard.image.platform import host

        return {"Client": {"Platform": {"Name": "dockyard"}, "Version": dockyard.__version__,
                           "ApiVersion": dockyard.API_VERSION, "PythonVersion": platform.python_version(),
                           "Os": "linux", "Arch": host().architecture,
                           "KernelVersion": platform.release()},
                "Server": version_document(dockyard.API_VERSION)}

    def _container_counts(self) -> dict[str, int]:
        counts = {"Containers": 0, "ContainersRunning": 0, "ContainersPaused": 0, "ContainersStopped": 0}

        def count() -> dict[str, int]:
            for c in self.client.containers.list(all=True):
                state = c.status if hasattr(c, "status") else c.get("State", "")
                counts["Containers"] += 1
                if state == "running":
                    counts["ContainersRunning"] += 1
                elif state == "paused":
                    counts["ContainersPaused"] += 1
                else:
                    counts["ContainersStopped"] += 1
            return counts

        return _optional(count, counts)

    def default_runtime(self) -> str:
        return os.environ.get("DOCKYARD_RUNTIME", "builtin")

    def info(self) -> dict[str, Any]:
        import shutil
        import threading
        import time

        from dockyard.image.platform import host
        from dockyard.timeutil import format_rfc3339

        images = self.client.images.list(all=True)
        runtimes = {"builtin": {"path": "dockyard"}}
        for name in ("runc", "crun"):
            path = shutil.which(name)
            if path:
                runtimes[name] = {"path": path}
        return {
            "ID": "",
            **self._container_counts(),
            "Images": len(images),
            "Driver": "overlay2",
            "DriverStatus": [["Backing Filesystem", _fs_type(str(self.client.state.path))]],
            "CgroupDriver": "cgroupfs",
            "CgroupVersion": cgroup_version(),
            "DefaultRuntime": self.default_runtime(),
            "Runtimes": runtimes,
            "KernelVersion": platform.release(),
            "OperatingSystem": _os_name(),
            "OSType": "linux",
            "Architecture": platform.machine(),
            "NCPU": os.cpu_count() or 1,
            "MemTotal": _meminfo_total(),
            "DockerRootDir": str(self.client.state.path),
            "Name": platform.node(),
            "ServerVersion": dockyard.__version__,
            "Platform": str(host()),
            "PythonVersion": sys.version.split()[0],
            # the rest of docker's /info document, so templates written for docker work here
            "OSVersion": _os_release("VERSION_ID"),
            "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "null"], "Authorization": None,
                        "Log": ["json-file", "local", "none"]},
            **_limits_support(cgroup_version()),
            "IPv4Forwarding": _read_flag("/proc/sys/net/ipv4/ip_forward"),
            "Debug": False,
            "NFd": len(os.listdir("/proc/self/fd")),
            "NGoroutines": threading.active_count(),
            "SystemTime": format_rfc3339(time.time()),
            "LoggingDriver": "json-file",
            "NEventsListener": 0,
            "IndexServerAddress": "https://index.docker.io/v1/",
            "RegistryConfig": {"IndexConfigs": {"docker.io": {"Mirrors": [], "Name": "docker.io", "Official": True,
                                                              "Secure": True}},
                               "InsecureRegistryCIDRs": ["127.0.0.0/8"], "Mirrors": []},
            "GenericResources": None,
            "HttpProxy": os.environ.get("HTTP_PROXY") or os.environ.get("http_proxy") or "",
            "HttpsProxy": os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy") or "",
            "NoProxy": os.environ.get("NO_PROXY") or os.environ.get("no_proxy") or "",
            "Labels": [],
            "ExperimentalBuild": False,
            "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": False,
                      "Error": "", "RemoteManagers": None},
            "LiveRestoreEnabled": True,  # containers outlive the CLI and any service: their monitors do
            "Isolation": "",
            "InitBinary": "docker-init",
            "SecurityOptions": ["name=seccomp,profile=builtin"],
            "CDISpecDirs": [],
            "Warnings": None,
        }

    def df(self) -> dict[str, Any]:
        """docker's /system/df shape: Images, Containers, Volumes, BuildCache, LayersSize."""
        images = self.client.images.list(all=True)
        users: dict[str, int] = {}
        containers = _optional(lambda: list(self.client.containers.list(all=True)), [])
        for c in containers:
            image_id = getattr(c, "image_id", None)
            if image_id:
                users[image_id] = users.get(image_id, 0) + 1
        img_rows = [{"Id": i.id, "RepoTags": i.repo_tags, "Size": i.size, "Containers": users.get(i.id, 0),
                     "Created": i.created} for i in images]
        ctr_rows = [{"Id": getattr(c, "id", ""), "SizeRw": _optional(lambda c=c: c.size_rw(), 0),
                     "State": getattr(c, "status", "")} for c in containers]
        volumes = _optional(lambda: self.client.volumes.df(), [])
        build = _optional(lambda: self.client.builder.du(), [])
        return {"LayersSize": sum(i.size for i in images), "Images": img_rows, "Containers": ctr_rows,
                "Volumes": volumes, "BuildCache": build}

    def prune(self, all: bool = False, volumes: bool = False) -> dict[str, Any]:
        """Stopped containers, unused networks, dangling (or all unused) images, build cache."""
        from dockyard.gc import collect

        report: dict[str, Any] = {}
        report["Containers"] = _optional(lambda: self.client.containers.prune(), {})
        networks = _optional(lambda: self.client.networks.prune(), [])
        report["Networks"] = {"NetworksDeleted": networks or None}
        if volumes:
            names, space = _optional(lambda: self.client.volumes.prune(), ([], 0))
            report["Volumes"] = {"VolumesDeleted": names or None, "SpaceReclaimed": space}
        report["Images"] = self.client.images.prune(all=all)
        cache = _optional(lambda: self.client.builder.prune(all=all), {})
        report["BuildCache"] = {"CachesDeleted": cache.get("deleted") or None,
                                "SpaceReclaimed": cache.get("reclaimed", 0)}
        report["Store"] = collect(self.client)
        return report


def _fs_type(path: str) -> str:
    best, fstype = "", "unknown"
    try:
        with open("/proc/mounts") as f:
            for line in f:
                parts = line.split()
                if len(parts) > 2 and path.startswith(parts[1]) and len(parts[1]) >= len(best):
                    best, fstype = parts[1], parts[2]
    except OSError:
        pass
    return fstype
