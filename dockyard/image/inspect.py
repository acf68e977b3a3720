"""``image inspect`` and ``image history`` in docker's JSON shapes."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dockyard import timeutil

if TYPE_CHECKING:  # pragma: no cover
    from dockyard.image.service import Image, ImageService

# docker's container Config, the shape `docker image inspect` prints for .Config
_CONFIG_DEFAULTS: dict[str, Any] = {
    "Hostname": "", "Domainname": "", "User": "", "AttachStdin": False, "AttachStdout": False,
    "AttachStderr": False, "Tty": False, "OpenStdin": False, "StdinOnce": False, "Env": None,
    "Cmd": None, "Image": "", "Volumes": None, "WorkingDir": "", "Entrypoint": None,
    "OnBuild": None, "Labels": None,
}
_OPTIONAL = ("ExposedPorts", "Healthcheck", "ArgsEscaped", "StopSignal", "Shell")


# docker's HealthConfig fields in struct order (a config blob read back may have them sorted)
_HEALTHCHECK_ORDER = ("Test", "Interval", "Timeout", "StartPeriod", "StartInterval", "Retries")


def docker_config(config: dict[str, Any]) -> dict[str, Any]:
    out = dict(_CONFIG_DEFAULTS)
    for k, v in config.items():
        if k in _CONFIG_DEFAULTS or k in _OPTIONAL:
            out[k] = v
    if isinstance(out.get("Healthcheck"), dict):
        out["Healthcheck"] = healthcheck_in_docker_order(out["Healthcheck"])
    return out


def healthcheck_in_docker_order(hc: dict[str, Any]) -> dict[str, Any]:
    """``hc`` with docker's field order, so that ``{{json .Config.Healthcheck}}`` prints as docker's."""
    return {k: hc[k] for k in (*_HEALTHCHECK_ORDER, *hc) if k in hc}


def inspect_image(service: "ImageService", image: "Image") -> dict[str, Any]:
    doc = image.config_doc
    config = docker_config(image.config)
    graph: dict[str, Any] = {"Name": "overlay2", "Data": {}}
    if image.top_chain_id:
        try:
            dirs = service.client.snapshots.lowerdirs(image.top_chain_id)
            top = dirs[0].parent if dirs else None  # docker's overlay2 names the four dirs
            graph["Data"] = {"LowerDir": ":".join(str(d) for d in dirs[1:]) or None,
                             "MergedDir": str(top / "merged") if top else None,
                             "UpperDir": str(dirs[0]) if dirs else None,
                             "WorkDir": str(top / "work") if top else None}
            graph["Data"] = {k: v for k, v in graph["Data"].items() if v}
        except Exception:  # noqa: BLE001 - inspect must not fail on a missing snapshot
            pass
    out = {
        "Id": image.id,
        "RepoTags": image.repo_tags,
        "RepoDigests": image.repo_digests,
        "Parent": image.parent,
        "Comment": _comment(doc),
        "Created": doc.get("created") or timeutil.ZERO,
        "Container": "",
        "ContainerConfig": docker_config(doc.get("container_config") or {}),
        "DockerVersion": doc.get("docker_version", ""),
        "Author": doc.get("author", ""),
        "Config": config,
        "Architecture": doc.get("architecture", ""),
        "Os": doc.get("os", ""),
        "Size": image.size,
        "VirtualSize": image.size,
        "GraphDriver": graph,
        "RootFS": {"Type": "layers", "Layers": list((doc.get("rootfs") or {}).get("diff_ids") or [])},
        "Metadata": {"LastTagTime": timeutil.format_rfc3339(image.last_tag_time) if image.last_tag_time else timeutil.ZERO},
    }
    if doc.get("variant"):
        out["Variant"] = doc["variant"]
    return out


def _comment(doc: dict[str, Any]) -> str:
    if doc.get("comment"):
        return str(doc["comment"])
    history = doc.get("history") or []
    return str(history[-1].get("comment", "")) if len(history) == 1 else ""


def image_history(service: "ImageService", image: "Image") -> list[dict[str, Any]]:
    """Newest first, like docker: one row per history entry; empty layers have size 0."""
    doc = image.config_doc
    history = doc.get("history") or []
    layers = image.layers
    sizes: list[int] = []
    snaps = service.client.snapshots
    from dockyard.snapshot.store import chain_id

    diff_ids = [layer.diff_id for layer in layers]
    for i in range(len(layers)):
        try:
            sizes.append(snaps.usage(chain_id(diff_ids[: i + 1])))
        except Exception:  # noqa: BLE001
            sizes.append(layers[i].size)
    rows: list[dict[str, Any]] = []
    li = 0
    if not history:
        history = [{"created": doc.get("created")} for _ in layers]
    for h in history:
        empty = bool(h.get("empty_layer"))
        size = 0 if empty or li >= len(sizes) else sizes[li]
        if not empty:
            li += 1
        rows.append({"Id": "<missing>", "Created": timeutil.parse_rfc3339(h.get("created")) or 0,
                     "CreatedBy": h.get("created_by", ""), "Tags": None, "Size": size,
                     "Comment": h.get("comment", "")})
    rows.reverse()
    if rows:
        rows[0]["Id"] = image.id
        rows[0]["Tags"] = image.repo_tags or None
    return rows
