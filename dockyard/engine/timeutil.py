"""Time as docker writes it: RFC 3339 with nanoseconds, ``--since``/``--until`` values, durations.

Times are kept as integer nanoseconds since the epoch (UTC) so that log entries sort and compare
exactly; they are written as Go's ``time.RFC3339Nano`` (trailing zeros of the fraction trimmed).
"""
from __future__ import annotations

import re
import time

ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time.Time, as docker writes an unset time


def now_ns() -> int:
    return time.time_ns()


def rfc3339nano(ns: int) -> str:
    """Go's ``RFC3339Nano``: ``2024-05-01T12:00:00.1234Z`` (fraction trimmed, no fraction if 0)."""
    sec, frac = divmod(ns, 1_000_000_000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
    if frac:
        return f"{base}.{frac:09d}".rstrip("0") + "Z"
    return base + "Z"


def rfc3339nano_fixed(ns: int) -> str:
    """Docker CLI's ``RFC3339NanoFixed`` (always nine digits), used by ``logs -t``."""
    sec, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + f".{frac:09d}Z"


_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?"
    r"(Z|[+-]\d{2}:?\d{2})?$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNITS_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
             "m": 60_000_000_000, "h": 3_600_000_000_000}


def parse_rfc3339(text: str) -> int | None:
    """Nanoseconds for an RFC 3339 time (``Z``, an offset, or none = local time, as docker)."""
    m = _RFC3339.match(text.strip())
    if not m:
        return None
    year, mon, day, hh, mm, ss, frac, tz = m.groups()
    fields = (int(year), int(mon), int(day), int(hh or 0), int(mm or 0), int(ss or 0))
    if tz is None:
        secs = int(time.mktime((*fields, 0, 0, -1)))
    else:
        secs = _utc_seconds(*fields)
        if tz != "Z":
            sign = 1 if tz[0] == "+" else -1
            digits = tz[1:].replace(":", "")
            secs -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    return secs * 1_000_000_000 + int((frac or "0").ljust(9, "0"))


def _utc_seconds(year: int, month: int, day: int, hh: int, mm: int, ss: int) -> int:
    """Seconds since the epoch of a UTC calendar time (days from the civil calendar, without
    importing datetime on the CLI's hot path)."""
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
    return days * 86400 + hh * 3600 + mm * 60 + ss


def parse_duration(text: str) -> int | None:
    """Nanoseconds for a Go duration (``1h30m``, ``250ms``, ``-5s``); None if it is not one."""
    s = text.strip()
    sign = 1
    if s[:1] in "+-" and s:
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    if s == "0":
        return 0
    pos, total = 0, 0.0
    for m in _DURATION_PART.finditer(s):
        if m.start() != pos:
            return None
        total += float(m.group(1)) * _UNITS_NS[m.group(2)]
        pos = m.end()
    if pos != len(s) or pos == 0:
        return None
    return sign * int(total)


def parse_timestamp(value: str, now: int | None = None) -> int:
    """A ``--since``/``--until`` value in ns: RFC 3339 / date, a Unix time (``1700000000.5``),
    or a Go duration meaning "that long ago" (``10m``). Raises ValueError like docker."""
    now = now_ns() if now is None else now
    v = value.strip()
    d = parse_duration(v)
    if d is not None:
        return now - d
    if re.fullmatch(r"\d+(\.\d{1,9})?", v):
        sec, _, frac = v.partition(".")
        return int(sec) * 1_000_000_000 + int(frac.ljust(9, "0") or 0)
    t = parse_rfc3339(v)
    if t is None:
        raise ValueError(f'failed to parse value as time or duration: "{value}"')
    return t


def parse_go_duration_seconds(text: str, flag: str) -> float:
    """A duration flag (``--health-interval 30s``) in seconds; ``0`` means unset."""
    d = parse_duration(text)
    if d is None:
        raise ValueError(f'invalid argument "{text}" for "{flag}" flag: time: invalid duration "{text}"')
    return d / 1e9


def go_duration(ns: int) -> str:
    """Go's ``time.Duration.String()`` for whole seconds and sub-second values (``30s``, ``1m30s``,
    ``500ms``), used when showing durations in inspect-like output."""
    if ns == 0:
        return "0s"
    if ns < 1_000_000_000:
        for unit, div in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= div:
                return f"{ns / div:g}{unit}"
    secs = ns / 1e9
    h, rem = divmod(int(secs), 3600)
    m, _ = divmod(rem, 60)
    s = secs - h * 3600 - m * 60
    out = ""
    if h:
        out += f"{h}h"
    if h or m:
        out += f"{m}m"
    return out + f"{s:g}s"


def parse_rfc3339_or_zero(text: str | None) -> int:
    """ns for a stored time, 0 for Go's zero time or nothing."""
    if not text or text.startswith("0001-01-01"):
        return 0
    return parse_rfc3339(text) or 0
