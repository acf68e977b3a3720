"""``/events``: the state root's event journal, in docker's event shape.

Events are not kept by the server: every process that acts on the state root (the CLI, each
container's monitor, this server) appends them to the journal (:mod:`dockyard.engine.events`),
so ``docker events`` against the API also shows what ``dockyard run`` did, and what containers
did on their own (``die``, ``oom``, ``health_status``, restarts). The server records only what
happens nowhere else: attaches, exec instances, and the image, volume and network operations
it performs itself.
"""
from __future__ import annotations

from typing import Any

from dockyard.engine import events as journal


class EventBus:
    """Write events for the server (to the journal of its client's state root)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def publish(self, type_: str, action: str, actor_id: str, attributes: dict[str, str] | None = None) -> None:
        journal.emit(self.client, type_, action, actor_id, attributes)

    def container(self, client: Any, cid: str, action: str, **extra: str) -> None:
        """A container event with docker's attributes (labels, image, name)."""
        try:
            rec = client.containers.store.load(cid)
        except Exception:  # noqa: BLE001 - gone already: the event still goes out
            self.publish("container", action, cid, extra)
            return
        journal.emit_container(client, rec, action, **extra)


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
