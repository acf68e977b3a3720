"""``/volumes``: list, create, inspect, remove, prune."""
from __future__ import annotations

from dockyard.api.http import ApiError, Exchange

ANONYMOUS_LABEL = "com.docker.volume.anonymous"


def list_(x: Exchange) -> None:
    vols = x.client.volumes.list(x.filters())
    x.reply_json({"Volumes": [v.inspect() for v in vols], "Warnings": []})


def create(x: Exchange) -> None:
    body = x.json({}) or {}
    if not isinstance(body, dict):
        raise ApiError(400, "invalid JSON: expected an object")
    v = x.client.volumes.create(body.get("Name") or None, driver=body.get("Driver") or "local",
                                labels=body.get("Labels") or None, options=body.get("DriverOpts") or None)
    x.daemon.events.publish("volume", "create", v.name, {"driver": v.driver})
    x.reply_json(v.inspect(), 201)


def inspect(x: Exchange, name: str) -> None:
    x.reply_json(x.client.volumes.inspect(name))


def remove(x: Exchange, name: str) -> None:
    x.client.volumes.remove(name, force=x.flag("force"))
    x.daemon.events.publish("volume", "destroy", name, {"driver": "local"})
    x.no_content()


def prune(x: Exchange) -> None:
    """API 1.42 and later prune anonymous volumes only, unless the ``all`` filter says otherwise."""
    from dockyard.api.routes import _version_tuple

    filters = x.filters()
    everything = [v.lower() for v in filters.pop("all", [])]
    if _version_tuple(x.version) >= (1, 42) and not any(v in ("1", "true") for v in everything):
        filters.setdefault("label", []).append(ANONYMOUS_LABEL)
    names, reclaimed = x.client.volumes.prune(filters)
    for name in names:
        x.daemon.events.publish("volume", "destroy", name, {"driver": "local"})
    from dockyard.engine.events import emit_prune

    emit_prune(x.client, "volume", reclaimed)
    x.reply_json({"VolumesDeleted": names or [], "SpaceReclaimed": reclaimed})  # dockerd: [], not null
