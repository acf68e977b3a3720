"""Which OCI runtime runs a container, and where that runtime keeps its state for this root."""
from __future__ import annotations

from pathlib import Path
from typing import Any


def runtime_state_dir(client: Any, name: str | None) -> Path:
    """``<root>/runtime/<name>`` (``runc --root``): each runtime's state is private to one root."""
    from dockyard.runtime import default_runtime_name

    return client.state.dir("runtime", (name or default_runtime_name()).replace("/", "_"))


def runtime_for(client: Any, name: str | None) -> Any:
    """The runtime a container was created with (``config.json``'s ``Runtime``)."""
    from dockyard.runtime import get_runtime

    return get_runtime(name or None, runtime_state_dir(client, name))
