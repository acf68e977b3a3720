"""``/events``: what the server itself did, in docker's event shape.

dockyard has no daemon that sees everything, so the stream carries the events this server
causes or observes: containers created, started, stopped, killed, dying (with the exit code,
for containers the server started), destroyed, paused, renamed; exec instances; images
pulled, pushed, tagged, deleted, loaded, built; volumes and networks created and removed.
Commands run with the ``dockyard`` CLI directly on the state root are not seen.
The last 1024 events are kept for ``since``.
"""
from __future__ import annotations

import queue
import threading
import time
from collections import deque
from typing import Any

HISTORY = 1024


class EventBus:
    """Publish events; each ``/events`` request subscribes a queue."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: list["queue.Queue[dict[str, Any]]"] = []
        self._history: deque[dict[str, Any]] = deque(maxlen=HISTORY)

    def publish(self, type_: str, action: str, actor_id: str, attributes: dict[str, str] | None = None) -> None:
        now = time.time_ns()
        attrs = {k: str(v) for k, v in (attributes or {}).items()}
        event: dict[str, Any] = {"Type": type_, "Action": action, "Actor": {"ID": actor_id, "Attributes": attrs},
                                 "scope": "local", "time": now // 1_000_000_000, "timeNano": now}
        if type_ == "container":  # the pre-1.22 fields docker still sends for containers
            event = {"status": action, "id": actor_id, "from": attrs.get("image", ""), **event}
        with self._lock:
            self._history.append(event)
            for q in self._subscribers:
                q.put(event)

    def container(self, client: Any, cid: str, action: str, **extra: str) -> None:
        """A container event with docker's attributes (name, image, labels)."""
        self.publish("container", action, cid, {**self.container_attributes(client, cid), **extra})

    @staticmethod
    def snapshot(client: Any, cid: str) -> dict[str, Any] | None:
        """The container's inspect document, if it still exists (for :meth:`attachments`)."""
        try:
            return client.containers.inspect(cid)
        except Exception:  # noqa: BLE001 - gone already
            return None

    def attachments(self, client: Any, cid: str, starting: bool, fallback: dict[str, Any] | None = None) -> None:
        """What dockerd reports around a start (``network connect``, ``volume mount``) or an
        exit (``network disconnect``, ``volume unmount``) for each network and volume of ``cid``;
        ``fallback`` (an earlier :meth:`snapshot`) stands in for a container removed meanwhile."""
        doc = self.snapshot(client, cid) or fallback
        if doc is None:
            return
        for name, endpoint in ((doc.get("NetworkSettings") or {}).get("Networks") or {}).items():
            try:
                net = client.networks.get(endpoint.get("NetworkID") or name)
            except Exception:  # noqa: BLE001 - removed meanwhile
                continue
            self.publish("network", "connect" if starting else "disconnect", net.id,
                         {"container": cid, "name": net.name, "type": net.driver})
        for m in doc.get("Mounts") or []:
            if m.get("Type") != "volume":
                continue
            attrs = {"container": cid, "driver": m.get("Driver") or "local"}
            if starting:
                attrs.update({"destination": m.get("Destination", ""), "propagation": m.get("Propagation", ""),
                              "read/write": "true" if m.get("RW", True) else "false"})
            self.publish("volume", "mount" if starting else "unmount", m.get("Name", ""), attrs)

    @staticmethod
    def container_attributes(client: Any, cid: str) -> dict[str, str]:
        try:
            rec = client.containers.store.load(cid)
        except Exception:  # noqa: BLE001 - gone already (destroy): the event still goes out
            return {}
        return {**(rec.cfg.get("Labels") or {}), "image": rec.cfg.get("Image") or "", "name": rec.name}

    def subscribe(self, since_ns: int | None) -> tuple["queue.Queue[dict[str, Any]]", list[dict[str, Any]]]:
        """A new subscription, and the kept events at or after ``since_ns``."""
        q: "queue.Queue[dict[str, Any]]" = queue.Queue()
        with self._lock:
            past = [e for e in self._history if since_ns is not None and e["timeNano"] >= since_ns]
            self._subscribers.append(q)
        return q, past

    def unsubscribe(self, q: "queue.Queue[dict[str, Any]]") -> None:
        with self._lock:
            if q in self._subscribers:
                self._subscribers.remove(q)


def matches(event: dict[str, Any], filters: dict[str, list[str]]) -> bool:
    """docker's event filters: type, event/action, container, image, volume, network, label."""
    actor = event["Actor"]
    attrs = actor.get("Attributes") or {}
    for key, values in filters.items():
        if not values:
            continue
        if key == "type" and event["Type"] not in values:
            return False
        if key in ("event", "action") and not any(event["Action"] == v or event["Action"].startswith(v + ":")
                                                  for v in values):
            return False
        if key in ("container", "volume", "network") and (event["Type"] != key or not any(
                actor["ID"].startswith(v) or attrs.get("name") == v for v in values)):
            return False
        if key == "image" and not any(attrs.get("image") == v or actor["ID"] == v for v in values):
            return False
        if key == "label" and not all(_label_match(attrs, v) for v in values):
            return False
    return True


def _label_match(attrs: dict[str, str], wanted: str) -> bool:
    key, eq, value = wanted.partition("=")
    return key in attrs and (not eq or attrs[key] == value)


def parse_time(value: str | None) -> int | None:
    """docker's ``since``/``until``: unix seconds (with fraction), RFC 3339, or a duration ago."""
    if not value or value == "0":
        return None
    from dockyard.api.http import ApiError
    from dockyard.engine.timeutil import parse_timestamp

    try:
        return parse_timestamp(value)
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None
