"""docker's /proc and /sys defaults for an unprivileged container, in a module that imports nothing:
the engine writes them into a container's HostConfig at create time, long before (and in another
process than) any spec is generated (``dockyard.runtime.spec`` re-exports them)."""
from __future__ import annotations

DEFAULT_MASKED_PATHS: tuple[str, ...] = (
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
    "/sys/devices/virtual/powercap",
)
DEFAULT_READONLY_PATHS: tuple[str, ...] = (
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
)
