"""dockyard: build, ship, run and orchestrate containers, Docker-compatible, in one Python package.

The public entry point is :class:`dockyard.Client`; it is imported lazily so that
``import dockyard`` (and so the CLI's start) stays cheap.
"""
from __future__ import annotations

TYPE_CHECKING = False  # not typing's: importing typing costs every command milliseconds

__version__ = "0.1.0"
API_VERSION = "1.43"

if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

    from dockyard.client import Client
    from dockyard.errors import DockyardError

__all__ = ["Client", "DockyardError", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "Client":
        from dockyard.client import Client

        return Client
    if name == "DockyardError":
        from dockyard.errors import DockyardError

        return DockyardError
    raise AttributeError(f"module 'dockyard' has no attribute {name!r}")
