"""Restart policies with docker's back-off (moby ``restartmanager``).

After each exit the delay before the next start doubles from 100 ms up to one minute, and goes
back to 100 ms once the container had been running for 10 seconds. ``on-failure[:N]`` restarts
only non-zero exits, at most N times; ``unless-stopped`` and ``always`` restart any exit except
after a manual stop (``stop``, ``kill`` with SIGKILL or the stop signal).
"""
from __future__ import annotations

from dataclasses import dataclass

BACKOFF_START = 0.1
BACKOFF_MAX = 60.0
RESET_AFTER = 10.0


@dataclass
class RestartManager:
    name: str = "no"
    maximum_retry_count: int = 0
    restart_count: int = 0
    timeout: float = 0.0
    canceled: bool = False

    @classmethod
    def from_policy(cls, policy: dict | None, restart_count: int = 0) -> "RestartManager":
        policy = policy or {}
        return cls(policy.get("Name") or "no", int(policy.get("MaximumRetryCount") or 0), restart_count)

    def cancel(self) -> None:
        """A manual stop: no more restarts for this monitor's life."""
        self.canceled = True

    def should_restart(self, exit_code: int, manually_stopped: bool, ran_for: float) -> tuple[bool, float]:
        """Whether to start again, and after how many seconds."""
        if self.canceled or manually_stopped:
            return False, 0.0
        if ran_for >= RESET_AFTER:
            self.timeout = 0.0
        if self.timeout == 0.0:
            self.timeout = BACKOFF_START
        elif self.timeout < BACKOFF_MAX:
            self.timeout *= 2
        self.timeout = min(self.timeout, BACKOFF_MAX)
        if self.name == "always" or self.name == "unless-stopped":
            restart = True
        elif self.name == "on-failure":
            limit = self.maximum_retry_count
            restart = exit_code != 0 and (limit == 0 or self.restart_count < limit)
        else:
            restart = False
        if not restart:
            return False, 0.0
        self.restart_count += 1
        return True, self.timeout
