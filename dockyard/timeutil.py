"""Timestamps as docker writes them: RFC 3339 in UTC with nanoseconds (``2024-05-01T10:00:00.123456789Z``)."""
from __future__ import annotations

import re
import time
from datetime import datetime, timezone

ZERO = "0001-01-01T00:00:00Z"
_RFC3339 = re.compile(r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|z|[+-]\d{2}:?\d{2})?$")


def format_rfc3339(ts: float | None) -> str:
    """Seconds since the epoch → Go's RFC3339Nano in UTC (trailing zeros of the fraction
    dropped, as Go drops them); None → docker's zero time."""
    if ts is None:
        return ZERO
    ns = int(round(ts * 1e9))
    secs, frac = divmod(ns, 10**9)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    fraction = f"{frac:09d}".rstrip("0")
    return f"{base}.{fraction}Z" if fraction else f"{base}Z"


def go_time_string(ts: float, fraction: bool = True) -> str:
    """Go's ``time.Time.String()`` in UTC (``2024-05-01 10:00:00.123456 +0000 UTC``, trailing
    zeros of the fraction dropped), as docker prints a CreatedAt; ``fraction=False`` for
    times docker keeps in whole seconds (containers)."""
    ns = int(round(ts * 1e6)) * 1000 if fraction else int(ts) * 10**9  # a float holds microseconds
    secs, frac = divmod(ns, 10**9)
    digits = f"{frac:09d}".rstrip("0")
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(secs)) + (f".{digits}" if digits else "") + " +0000 UTC"


def now() -> str:
    return format_rfc3339(time.time())


def parse_rfc3339(text: str | None) -> float | None:
    """RFC 3339 (any precision, any offset) → seconds since the epoch; None for empty/zero."""
    if not text or text.startswith("0001-01-01"):
        return None
    m = _RFC3339.match(text.strip())
    if not m:
        raise ValueError(f"invalid timestamp: {text!r}")
    date, clock, frac, tz = m.groups()
    tzpart = "+00:00" if tz in (None, "Z", "z") else (tz if ":" in tz else f"{tz[:3]}:{tz[3:]}")
    dt = datetime.fromisoformat(f"{date}T{clock}{tzpart}")
    return dt.timestamp() + (float(f"0.{frac}") if frac else 0.0)


def utc_from_timestamp(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=timezone.utc)
