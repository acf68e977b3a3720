"""What a pull and a push share: the service, the client's stores, the output, the platform."""
from __future__ import annotations

from typing import TYPE_CHECKING

from dockyard.distribution.progress import Progress

if TYPE_CHECKING:  # pragma: no cover
    from dockyard.distribution.service import DistributionService


class Operation:
    """One transfer between the local stores and registries, reporting to ``progress``."""

    def __init__(self, service: "DistributionService", progress: Progress, platform: str | None = None) -> None:
        self.svc = service
        self.client = service.client
        self.content = service.client.content
        self.progress = progress
        self.platform = platform
