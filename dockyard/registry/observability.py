"""Operations: Prometheus metrics and structured (JSON lines) access logs.

No client library: the text exposition format is simple, and a registry must not pay for a
dependency on every request. Counters are guarded by one lock; request timing uses a fixed set of
histogram buckets.
"""
from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import IO, Any

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def _labels(labels: tuple[tuple[str, str], ...]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{v}"' for k, v in labels)
    return "{" + inner + "}"


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
        self._gauges: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
        self._hist: dict[tuple[tuple[str, str], ...], list[float]] = {}
        self._help: dict[str, tuple[str, str]] = {}
        self.started = time.time()
        for name, kind, text in (
            ("registry_http_requests_total", "counter", "HTTP requests by method, route and status"),
            ("registry_http_request_duration_seconds", "histogram", "HTTP request latency by route"),
            ("registry_bytes_received_total", "counter", "Blob bytes received"),
            ("registry_bytes_sent_total", "counter", "Blob bytes sent"),
            ("registry_http_in_flight_requests", "gauge", "Requests being served"),
            ("registry_gc_runs_total", "counter", "Garbage collection runs"),
            ("registry_gc_blobs_deleted_total", "counter", "Blobs deleted by garbage collection"),
            ("registry_gc_bytes_freed_total", "counter", "Bytes freed by garbage collection"),
            ("registry_auth_failures_total", "counter", "Rejected credentials or tokens"),
        ):
            self._help["dockyard_" + name] = (kind, text)

    def inc(self, name: str, value: float = 1.0, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            series = self._counters.setdefault("dockyard_" + name, {})
            series[key] = series.get(key, 0.0) + value

    def gauge_add(self, name: str, value: float, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            series = self._gauges.setdefault("dockyard_" + name, {})
            series[key] = series.get(key, 0.0) + value

    def observe(self, route: str, seconds: float) -> None:
        key = (("route", route),)
        with self._lock:
            h = self._hist.get(key)
            if h is None:
                h = self._hist[key] = [0.0] * (len(_BUCKETS) + 2)  # buckets..., count, sum
            for i, b in enumerate(_BUCKETS):
                if seconds <= b:
                    h[i] += 1
            h[-2] += 1
            h[-1] += seconds

    def render(self) -> str:
        """The Prometheus text exposition (format 0.0.4)."""
        out: list[str] = []
        with self._lock:
            for store in (self._counters, self._gauges):
                for name, series in sorted(store.items()):
                    kind, text = self._help.get(name, ("counter" if store is self._counters else "gauge", name))
                    out.append(f"# HELP {name} {text}\n# TYPE {name} {kind}")
                    out.extend(f"{name}{_labels(k)} {v:g}" for k, v in sorted(series.items()))
            name = "dockyard_registry_http_request_duration_seconds"
            if self._hist:
                out.append(f"# HELP {name} {self._help[name][1]}\n# TYPE {name} histogram")
            for key, h in sorted(self._hist.items()):
                for i, b in enumerate(_BUCKETS):
                    out.append(f"{name}_bucket{_labels(key + (('le', f'{b:g}'),))} {h[i]:g}")
                out.append(f"{name}_bucket{_labels(key + (('le', '+Inf'),))} {h[-2]:g}")
                out.append(f"{name}_count{_labels(key)} {h[-2]:g}")
                out.append(f"{name}_sum{_labels(key)} {h[-1]:.6f}")
        out.append("# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
                   "# TYPE process_resident_memory_bytes gauge")
        out.append(f"process_resident_memory_bytes {_rss_bytes()}")
        out.append("# HELP process_start_time_seconds Start time of the process since unix epoch.\n"
                   "# TYPE process_start_time_seconds gauge")
        out.append(f"process_start_time_seconds {self.started:.3f}")
        return "\n".join(out) + "\n"


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class AccessLog:
    """One JSON object per request, written whole (one write call) so lines never interleave."""

    def __init__(self, target: str) -> None:
        self._own = False
        self._stream: IO[str] | None
        if target == "off":
            self._stream = None
        elif target == "stderr":
            self._stream = sys.stderr
        elif target == "stdout":
            self._stream = sys.stdout
        else:
            self._stream = open(target, "a", buffering=1)
            self._own = True
        self._lock = threading.Lock()

    def write(self, record: dict[str, Any]) -> None:
        if self._stream is None:
            return
        line = json.dumps(record, separators=(",", ":")) + "\n"
        with self._lock:
            try:
                self._stream.write(line)
                self._stream.flush()
            except (OSError, ValueError):
                pass

    def event(self, msg: str, **fields: Any) -> None:
        """A non-request log line (startup, shutdown, GC) in the same format."""
        self.write({"time": _now(), "level": "info", "msg": msg, **fields})

    def close(self) -> None:
        if self._own and self._stream is not None:
            self._stream.close()


def _now() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"


now_iso = _now
