"""``container update``: change a container's resource limits and restart policy.

The request is docker's ``UpdateConfig`` (``Memory``, ``MemorySwap``, ``MemoryReservation``,
``NanoCpus``, ``CpuShares``, ``CpuPeriod``, ``CpuQuota``, ``CpusetCpus``, ``CpusetMems``,
``PidsLimit``, ``BlkioWeight``, ``RestartPolicy``); as with dockerd, a zero value (an empty
string, no ``RestartPolicy`` name, no ``PidsLimit``) leaves that setting as it is. It goes
through dockerd's three steps, with its messages:

1. the request alone is checked (``verifyContainerSettings``: "Minimum memory limit allowed is
   6MB", CPUs that do not exist, ...) — refused as it is, with warnings (a blkio weight this
   kernel cannot apply is discarded);
2. it is merged into the container's ``HostConfig`` (``UpdateContainer``: "Memory limit should
   be smaller than already set memoryswap limit, ...", CPU quota against NanoCPUs, restart
   policies against ``--rm``) — refused as ``Cannot update container <ID>: ...``;
3. a running container's cgroup gets the new limits now (the same cgroup files whichever runtime
   made it, v1 or v2); only when that worked is the new ``HostConfig`` written, so a refusal
   changes nothing. The monitor reads the restart policy from the record at each exit, so a new
   policy holds from the next exit on.

An ``update`` event is recorded, as dockerd does.
"""
from __future__ import annotations

import copy
from typing import Any

from dockyard.errors import Conflict, DockyardError, InvalidArgument

#: the resource keys of docker's UpdateConfig this engine applies ("" / 0 = leave as it is)
RESOURCE_KEYS = ("BlkioWeight", "CpuShares", "NanoCpus", "CpuPeriod", "CpuQuota", "CpusetCpus", "CpusetMems",
                 "Memory", "MemorySwap", "MemoryReservation", "KernelMemory")
BLKIO_DISCARDED = "Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded."
KERNEL_MEMORY_DEPRECATED = "Specifying a kernel memory limit is deprecated and will be removed in a future release."


def update_container(service: Any, ref: str, body: dict[str, Any]) -> list[str]:
    """Apply ``body`` (docker's UpdateConfig) to container ``ref``; returns dockerd's warnings."""
    from dockyard.engine.events import emit_container

    rec = service.load(ref)
    request = _normalise(body)
    warnings = verify(request)
    host = copy.deepcopy(rec.host_config)
    try:
        merge(host, request)
    except DockyardError as exc:
        raise type(exc)(f"Cannot update container {rec.id}: {exc.message}") from None
    if rec.status in ("running", "paused") and not rec.state.get("Restarting"):
        try:
            apply_live(rec, host, request)
        except DockyardError as exc:
            raise DockyardError(f"Cannot update container {rec.id}: {exc.message}") from None
    current = service.store.load(rec.id)  # written as a whole: keep what changed meanwhile (a rename)
    current.config["HostConfig"] = {**current.host_config, **{k: host[k] for k in _changed_keys(request) if k in host}}
    if "PidsLimit" in request and "PidsLimit" not in host:
        current.host_config.pop("PidsLimit", None)
    service.store.write_config(current)
    emit_container(service.client, current, "update")
    return warnings


def _changed_keys(request: dict[str, Any]) -> list[str]:
    keys = [k for k in RESOURCE_KEYS if request.get(k)]
    if "PidsLimit" in request:
        keys.append("PidsLimit")
    if (request.get("RestartPolicy") or {}).get("Name"):
        keys.append("RestartPolicy")
    return keys


def _normalise(body: dict[str, Any]) -> dict[str, Any]:
    """The request's settings with their types checked (None and zero values dropped)."""
    if not isinstance(body, dict):
        raise InvalidArgument("invalid update request: expected an object")
    out: dict[str, Any] = {}
    for key in RESOURCE_KEYS:
        value = body.get(key)
        if value in (None, "", 0):
            continue
        if key in ("CpusetCpus", "CpusetMems"):
            out[key] = str(value)
        else:
            try:
                out[key] = int(value)
            except (TypeError, ValueError):
                raise InvalidArgument(f"invalid value for {key}: {value!r}") from None
    if body.get("PidsLimit") is not None:
        out["PidsLimit"] = int(body["PidsLimit"])
    policy = body.get("RestartPolicy")
    if isinstance(policy, dict) and policy.get("Name"):
        out["RestartPolicy"] = {"Name": str(policy["Name"]),
                                "MaximumRetryCount": int(policy.get("MaximumRetryCount") or 0)}
    return out


# ---------------------------------------------------------------------- 1. the request alone
def verify(request: dict[str, Any]) -> list[str]:
    """dockerd's ``verifyContainerSettings`` for an update (errors unprefixed); its warnings."""
    from dockyard.engine.bundle import resources
    from dockyard.engine.options import validate_restart

    warnings: list[str] = []
    if request.get("BlkioWeight") and not blkio_weight_supported():
        del request["BlkioWeight"]
        warnings.append(BLKIO_DISCARDED)
    if request.get("KernelMemory"):
        warnings.append(KERNEL_MEMORY_DEPRECATED)
        del request["KernelMemory"]  # cgroup v2 and recent kernels have no kernel memory limit
    checked = dict(request)
    if not checked.get("Memory"):
        checked.pop("MemorySwap", None)  # an update may change the swap limit alone
    if checked.get("PidsLimit") is not None and checked["PidsLimit"] <= 0:
        checked.pop("PidsLimit")
    resources(checked).validate()
    for key, what, available in (("CpusetCpus", "CPUs", _online("/sys/devices/system/cpu/online")),
                                 ("CpusetMems", "memory nodes", _online("/sys/devices/system/node/online"))):
        if request.get(key) and available is not None:
            wanted = _parse_list(request[key], key)
            if not wanted <= available[0]:
                raise InvalidArgument(f"Requested {what} are not available - requested {request[key]}, "
                                      f"available: {available[1]}")
    if "RestartPolicy" in request:
        validate_restart(request["RestartPolicy"])
    return warnings


def blkio_weight_supported() -> bool:
    """Whether this kernel's cgroups take a blkio weight (v1 ``blkio.weight``, v2 ``io.weight``)."""
    from dockyard.runtime.cgroups import hierarchies

    for h in hierarchies():
        if h.version == 1 and "blkio" in h.controllers:
            return (h.mountpoint / "blkio.weight").exists()
        if h.version == 2 and "io" in h.controllers and all(x.version == 2 for x in hierarchies()):
            return True
    return False


def _online(path: str) -> tuple[set[int], str] | None:
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    return _parse_list(text, path), text


def _parse_list(text: str, key: str) -> set[int]:
    """``0-3,5`` → {0, 1, 2, 3, 5} (docker's cpuset syntax)."""
    out: set[int] = set()
    try:
        for part in text.split(","):
            lo, dash, hi = part.strip().partition("-")
            out.update(range(int(lo), int(hi if dash else lo) + 1))
    except ValueError:
        raise InvalidArgument(f"Invalid value {text} for cpuset {'cpus' if 'Cpus' in key else 'mems'}") from None
    return out


# ---------------------------------------------------------------------- 2. merged into HostConfig
def merge(host: dict[str, Any], request: dict[str, Any]) -> None:
    """moby's ``Container.UpdateContainer``: the request into ``host`` (Conflict, unprefixed)."""
    def already(key: str) -> int:
        return int(host.get(key) or 0)

    if request.get("NanoCpus", 0) > 0 and already("CpuPeriod") > 0:
        raise Conflict("Conflicting options: Nano CPUs cannot be updated as CPU Period has already been set")
    if request.get("NanoCpus", 0) > 0 and already("CpuQuota") > 0:
        raise Conflict("Conflicting options: Nano CPUs cannot be updated as CPU Quota has already been set")
    if request.get("CpuPeriod", 0) > 0 and already("NanoCpus") > 0:
        raise Conflict("Conflicting options: CPU Period cannot be updated as NanoCPUs has already been set")
    if request.get("CpuQuota", 0) > 0 and already("NanoCpus") > 0:
        raise Conflict("Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set")
    if request.get("Memory") and request["Memory"] > already("MemorySwap") and not request.get("MemorySwap"):
        raise Conflict("Memory limit should be smaller than already set memoryswap limit, "
                       "update the memoryswap at the same time")
    for key in RESOURCE_KEYS:
        if request.get(key):
            host[key] = request[key]
    if "PidsLimit" in request:
        host["PidsLimit"] = max(int(request["PidsLimit"]), 0)  # dockerd keeps "unlimited" as 0
    policy = request.get("RestartPolicy")
    if policy:
        if policy["Name"] != "no" and host.get("AutoRemove"):
            raise Conflict("Restart policy cannot be updated because AutoRemove is enabled for the container")
        host["RestartPolicy"] = policy


# ---------------------------------------------------------------------- 3. the running container
def apply_live(rec: Any, host: dict[str, Any], request: dict[str, Any]) -> None:
    """Write the new limits to the container's cgroup (device rules left as they are)."""
    from dockyard.engine.bundle import cgroups_path, resources
    from dockyard.runtime.cgroups import Cgroup

    if not any(k in request for k in (*RESOURCE_KEYS, "PidsLimit")):
        return  # a restart policy only
    res = resources(host).to_oci()
    res.pop("devices", None)
    if "PidsLimit" in request and request["PidsLimit"] <= 0:
        res["pids"] = {"limit": -1}
    if "MemoryReservation" not in request and "memory" in res:
        res["memory"].pop("reservation", None)
    cgroup = Cgroup(cgroups_path(rec))
    if not cgroup.exists():
        raise DockyardError(f"the container's cgroup {cgroup.path} is gone (it is stopping)")
    cgroup.apply(res)  # the kernel's refusal: "failed to apply cgroup limits to ...: Invalid argument"
