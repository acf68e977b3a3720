"""``/_ping``, ``/version``, ``/info``, ``/system/df``, ``/events``, ``/auth``."""
from __future__ import annotations

import platform
import time
from typing import Any

import dockyard
from dockyard.api.http import ApiError, Exchange, client_gone
from dockyard.api.routes import MIN_API_VERSION

GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "ppc64le": "ppc64le",
           "s390x": "s390x", "riscv64": "riscv64"}


def ping(x: Exchange) -> None:
    """The first call of every client: API version negotiation (``API-Version``) and OS type."""
    x.reply(200, b"OK", "text/plain; charset=utf-8",
            {"Cache-Control": "no-cache, no-store, must-revalidate", "Pragma": "no-cache"})


def build_time() -> str:
    """When this dockyard was installed (its package's mtime), in the form dockerd sends
    ``BuildTime`` (``docker version`` prints it as ``Built:``)."""
    import os

    try:
        ns = os.stat(dockyard.__file__).st_mtime_ns
    except OSError:
        return ""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000)) + f".{ns % 1_000_000_000:09d}+00:00"


def version_document(api_version: str) -> dict[str, Any]:
    arch = GO_ARCH.get(platform.machine(), platform.machine())
    details = {"ApiVersion": api_version, "Arch": arch, "BuildTime": build_time(), "Experimental": "false",
               "GitCommit": "", "GoVersion": f"python{platform.python_version()}",
               "KernelVersion": platform.release(), "MinAPIVersion": MIN_API_VERSION, "Os": "linux"}
    return {"Platform": {"Name": "dockyard"},
            "Components": [{"Name": "Engine", "Version": dockyard.__version__, "Details": details}],
            "Version": dockyard.__version__, "ApiVersion": api_version, "MinAPIVersion": MIN_API_VERSION,
            "GitCommit": "", "GoVersion": details["GoVersion"], "Os": "linux", "Arch": arch,
            "KernelVersion": platform.release(), "BuildTime": details["BuildTime"]}


def version(x: Exchange) -> None:
    x.reply_json(version_document(x.daemon.api_version))


_INFO_DEFAULTS: dict[str, Any] = {
    "BridgeNfIptables": True, "BridgeNfIp6tables": True, "CPUSet": True, "KernelMemory": False,
    "KernelMemoryTCP": False, "OomKillDisable": True, "GenericResources": None, "HttpProxy": "",
    "HttpsProxy": "", "NoProxy": "", "ContainerdCommit": {"ID": "", "Expected": ""},
    "RuncCommit": {"ID": "", "Expected": ""}, "InitCommit": {"ID": "", "Expected": ""},
}


# what dockerd calls the filesystems under its storage (its fsmagic names)
_FS_NAMES = {"ext2": "extfs", "ext3": "extfs", "ext4": "extfs", "tmpfs": "tmpfs", "xfs": "xfs", "btrfs": "btrfs",
             "zfs": "zfs", "overlay": "overlayfs", "nfs": "nfs", "nfs4": "nfs", "f2fs": "f2fs"}


def driver_status(driver: str, status: list[Any]) -> list[list[str]]:
    """``DriverStatus`` in dockerd's words: the backing filesystem by its fsmagic name, and for
    overlay2 the rows ``docker info`` prints under it (d_type, native diff, userxattr)."""
    rows = [[str(k), str(v)] for k, v in status]
    for row in rows:
        if row[0] == "Backing Filesystem":
            row[1] = _FS_NAMES.get(row[1], row[1])
    if driver == "overlay2":
        have = {r[0] for r in rows}
        rows += [[k, v] for k, v in (("Supports d_type", "true"), ("Native Overlay Diff", "true"),
                                     ("userxattr", "false")) if k not in have]
    return rows


def daemon_id(root: Any) -> str:
    """A stable engine ID in dockerd's ``XXXX:XXXX:...`` form (``docker info`` prints it; swarm
    and some tools key on it), derived from the state root so each root keeps its own."""
    import base64
    import hashlib

    digest = base64.b32encode(hashlib.sha256(str(root).encode()).digest()).decode()[:48]
    return ":".join(digest[i:i + 4] for i in range(0, 48, 4))


def info(x: Exchange) -> None:
    doc = dict(x.client.system.info())
    doc.setdefault("OSVersion", "")
    doc.update({
        "ID": doc.get("ID") or daemon_id(x.client.state.path),
        "IndexServerAddress": "https://index.docker.io/v1/",
        "LoggingDriver": "json-file",
        "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "null"],
                    "Log": ["json-file", "local", "none"]},
        "MemoryLimit": True, "SwapLimit": True, "CpuCfsPeriod": True, "CpuCfsQuota": True, "CPUShares": True,
        "PidsLimit": True, "IPv4Forwarding": True, "Debug": x.daemon.debug, "NFd": 0, "NGoroutines": 0,
        "SystemTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "NEventsListener": 0, "KernelVersion": doc.get("KernelVersion", platform.release()),
        "OperatingSystem": doc.get("OperatingSystem", ""), "OSType": "linux",
        "RegistryConfig": {"InsecureRegistryCIDRs": ["127.0.0.0/8"], "IndexConfigs": {}, "Mirrors": []},
        "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": False,
                  "Error": "", "RemoteManagers": None},
        "SecurityOptions": ["name=seccomp,profile=builtin"],
        "Warnings": None, "Labels": [], "ExperimentalBuild": False, "LiveRestoreEnabled": True,
        "Isolation": "", "InitBinary": "docker-init", "ProductLicense": "",
        "Runtimes": {name: {"path": r.get("path", name)} for name, r in (doc.get("Runtimes") or {}).items()},
    })
    for key, value in _INFO_DEFAULTS.items():  # keys dockerd always sends (clients read them)
        doc.setdefault(key, value)
    doc["DriverStatus"] = driver_status(doc.get("Driver") or "", doc.get("DriverStatus") or [])
    x.reply_json(doc)


def _shared_sizes(client: Any) -> dict[str, int]:
    """image ID -> the size it shares with other images through common layers (dockerd fills
    ``SharedSize`` in /system/df; ``docker system df -v`` shows it and the unique rest)."""
    from types import SimpleNamespace

    from dockyard.cli.disk_usage import _layer_sharing  # the one implementation (the CLI's df -v)

    try:
        images = client.images.list(all=True)
        return {image_id: shared for image_id, (shared, _) in
                _layer_sharing(SimpleNamespace(client=client), images).items()}  # type: ignore[arg-type]
    except Exception:  # noqa: BLE001 - then unknown, as before: -1
        return {}


def df(x: Exchange) -> None:
    doc = x.client.system.df()
    shared = _shared_sizes(x.client)
    for image in doc.get("Images") or []:
        image.setdefault("ParentId", "")
        image.setdefault("RepoDigests", [])
        image.setdefault("SharedSize", shared.get(image.get("Id", ""), -1))
        image.setdefault("VirtualSize", image.get("Size", 0))
        image.setdefault("Labels", None)
        created = image.get("Created")
        if isinstance(created, str):
            from dockyard.timeutil import parse_rfc3339

            image["Created"] = int(parse_rfc3339(created) or 0)
    from dockyard.api.containers import container_rows

    records = []
    for c in doc.get("Containers") or []:
        try:
            records.append(x.client.containers.load(c["Id"]))
        except Exception:  # noqa: BLE001 - removed meanwhile
            continue
    containers = container_rows(x.client, records, size=True)
    for row in containers:
        if not row.get("SizeRw"):
            row.pop("SizeRw", None)  # dockerd's omitempty
    doc["Containers"] = containers
    doc.setdefault("BuilderSize", sum(int(b.get("size") or 0) for b in doc.get("BuildCache") or []
                                      if isinstance(b, dict)))
    doc["BuildCache"] = [{"ID": b.get("id", ""), "Type": b.get("type", "regular"), "Description": b.get("description", ""),
                          "InUse": bool(b.get("in_use")), "Shared": bool(b.get("shared")), "Size": b.get("size", 0),
                          "CreatedAt": _rfc3339(b.get("created")), "LastUsedAt": _rfc3339(b.get("last_used")),
                          "UsageCount": b.get("usage_count", 0), "Parent": b.get("parent") or ""}
                         for b in doc.get("BuildCache") or []
                         if isinstance(b, dict)]
    x.reply_json(doc)


def _rfc3339(ts: Any) -> str:
    from dockyard.timeutil import format_rfc3339

    return format_rfc3339(float(ts)) if isinstance(ts, (int, float)) else str(ts or "")


def events(x: Exchange) -> None:
    """The state root's events as a JSON stream (:mod:`dockyard.engine.events`): ``since``
    replays the kept ones, ``until`` ends it, else it follows until the client goes away."""
    from dockyard.api.events import parse_time
    from dockyard.engine import events as journal

    since = parse_time(x.arg("since"))
    until = parse_time(x.arg("until"))
    filters = x.filters()  # unknown keys match everything, as dockerd's event filters do
    journal.check_range(since, until)  # InvalidArgument: 400
    stream = x.stream()
    stream.start()
    for event in journal.stream(x.client.root, since, until, stop=lambda: client_gone(x.sock)):
        if journal.matches(event, filters):
            stream.json(event)


def auth(x: Exchange) -> None:
    """``docker login`` through the daemon: check the credentials with the registry (stores nothing)."""
    body = x.json({}) or {}
    server = body.get("serveraddress") or None
    username = body.get("username") or ""
    password = body.get("password") or ""
    if not username or not password:
        raise ApiError(400, "username and password are required")
    x.client.distribution.verify_login(server, username, password)
    x.reply_json({"Status": "Login Succeeded", "IdentityToken": ""})
