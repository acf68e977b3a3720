"""HEALTHCHECK probes as docker runs them (moby ``daemon/health.go``).

The monitor owns one :class:`HealthState` per running container: the first probe runs one
interval after the start, then every interval after the previous probe ended. A probe is the
image's or ``--health-cmd``'s command run with ``exec`` in the container; exit 0 is a success,
anything else (or exceeding the timeout) a failure. ``retries`` consecutive failures make the
container ``unhealthy``; failures inside the start period do not count while it is ``starting``.
The last five results are kept with their output (at most 4096 bytes each).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DEFAULT_INTERVAL = 30.0
DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 3
MAX_LOG_ENTRIES = 5
MAX_OUTPUT = 4096

STARTING, HEALTHY, UNHEALTHY = "starting", "healthy", "unhealthy"


def effective_config(hc: dict[str, Any] | None) -> dict[str, Any] | None:
    """The probe settings in seconds, or None when there is no (or a disabled) health check."""
    if not hc:
        return None
    test = list(hc.get("Test") or [])
    if not test or test[0] == "NONE":
        return None

    def secs(key: str, default: float) -> float:
        v = hc.get(key) or 0
        return v / 1e9 if v else default

    if test[0] == "CMD-SHELL":
        argv = ["/bin/sh", "-c", " ".join(test[1:])]
    elif test[0] == "CMD":
        argv = test[1:]
    else:  # docker treats an unprefixed list as CMD
        argv = test
    if not argv:
        return None
    retries = int(hc.get("Retries") or 0)
    return {"argv": argv, "interval": secs("Interval", DEFAULT_INTERVAL),
            "timeout": secs("Timeout", DEFAULT_TIMEOUT), "start_period": secs("StartPeriod", 0.0),
            "retries": retries if retries > 0 else DEFAULT_RETRIES}


@dataclass
class HealthState:
    """docker's ``State.Health``: status, failing streak, recent results."""

    status: str = STARTING
    failing_streak: int = 0
    log: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"Status": self.status, "FailingStreak": self.failing_streak, "Log": list(self.log)}

    @classmethod
    def from_json(cls, d: dict[str, Any] | None) -> "HealthState":
        if not d:
            return cls()
        return cls(d.get("Status", STARTING), int(d.get("FailingStreak", 0)), list(d.get("Log") or []))

    def record(self, start: str, end: str, exit_code: int, output: str, since_start: float,
               cfg: dict[str, Any]) -> None:
        """Add one probe result and move the status as docker does."""
        self.log.append({"Start": start, "End": end, "ExitCode": exit_code, "Output": output})
        del self.log[:-MAX_LOG_ENTRIES]
        if exit_code == 0:
            self.failing_streak = 0
            self.status = HEALTHY
            return
        if self.status == STARTING and since_start < cfg["start_period"]:
            return  # failures while starting up do not count
        self.failing_streak += 1
        if self.failing_streak >= cfg["retries"]:
            self.status = UNHEALTHY
