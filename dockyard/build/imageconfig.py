"""The image-config side of a build: what ENV, LABEL, EXPOSE, VOLUME, USER, WORKDIR, CMD,
ENTRYPOINT, SHELL, HEALTHCHECK, STOPSIGNAL and ONBUILD do to the ``config`` object, with
docker's rules (in-place ENV replacement, EXPOSE ranges, ENTRYPOINT resetting an inherited
CMD, healthcheck durations in nanoseconds, ...), and the history lines BuildKit writes.
"""
from __future__ import annotations

import copy
import posixpath
from typing import Any

from dockyard.build.errors import BuildError, DefinitionError

DEFAULT_PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_SHELL = ["/bin/sh", "-c"]


def scratch_config() -> dict[str, Any]:
    """What ``FROM scratch`` starts with (docker gives it the default PATH)."""
    return {"Env": [DEFAULT_PATH_ENV]}


def base_config(config: dict[str, Any] | None) -> dict[str, Any]:
    """A deep copy of a base image's config; ONBUILD triggers are cleared (they run instead).
    A base without PATH gets the default one, as both of docker's builders give it."""
    cfg = copy.deepcopy(config or {})
    cfg.pop("OnBuild", None)
    if not any(e.split("=", 1)[0] == "PATH" for e in cfg.get("Env") or []):
        cfg["Env"] = [DEFAULT_PATH_ENV, *(cfg.get("Env") or [])]
    # container-specific leftovers docker's classic builder puts in configs
    for k in ("Hostname", "Domainname", "AttachStdin", "AttachStdout", "AttachStderr", "Tty", "OpenStdin",
              "StdinOnce", "Image"):
        cfg.pop(k, None)
    return cfg


def env_map(config: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for e in config.get("Env") or []:
        k, _, v = e.partition("=")
        out[k] = v
    return out


def set_env(config: dict[str, Any], key: str, value: str) -> None:
    """Replace ``key`` in place (keeping its position), or append it."""
    env = list(config.get("Env") or [])
    item = f"{key}={value}"
    for i, e in enumerate(env):
        if e.partition("=")[0] == key:
            env[i] = item
            break
    else:
        env.append(item)
    config["Env"] = env


def set_labels(config: dict[str, Any], pairs: list[tuple[str, str]]) -> None:
    labels = dict(config.get("Labels") or {})
    for k, v in pairs:
        labels[k] = v
    config["Labels"] = labels


def parse_ports(words: list[str]) -> list[str]:
    """EXPOSE values (``80``, ``53/udp``, ``8000-8002/tcp``) as docker's ``port/proto`` keys."""
    out: list[str] = []
    for w in words:
        port, _, proto = w.partition("/")
        proto = (proto or "tcp").lower()
        if proto not in ("tcp", "udp", "sctp"):
            raise BuildError(f"invalid proto: {proto}")
        if ":" in port:
            raise DefinitionError(f"Invalid containerPort: {w}: EXPOSE takes container ports only")
        lo, sep, hi = port.partition("-")
        try:
            start = int(lo)
            end = int(hi) if sep else start
        except ValueError:
            raise DefinitionError(f"Invalid containerPort: {port}") from None
        if not (0 <= start <= 65535 and 0 <= end <= 65535) or end < start:
            raise BuildError(f"invalid range specified for container port: {port}")
        out.extend(f"{p}/{proto}" for p in range(start, end + 1))
    return out


def add_ports(config: dict[str, Any], ports: list[str]) -> None:
    exposed = dict(config.get("ExposedPorts") or {})
    for p in ports:
        exposed[p] = {}
    config["ExposedPorts"] = exposed


def add_volumes(config: dict[str, Any], volumes: list[str]) -> None:
    vols = dict(config.get("Volumes") or {})
    for v in volumes:
        if not v.strip():
            raise BuildError("VOLUME specified can not be an empty string")
        vols[v] = {}
    config["Volumes"] = vols


def workdir(current: str | None, path: str) -> str:
    """WORKDIR: relative paths join the current one; the result is cleaned."""
    joined = posixpath.join(current or "/", path) if not path.startswith("/") else path
    out = posixpath.normpath(joined)
    return "/" + out.lstrip("/") if out != "/" else "/"


def check_signal(sig: str) -> str:
    """STOPSIGNAL accepts a name (``SIGTERM``, ``TERM``) or a number; anything else is refused."""
    import signal as _signal

    s = sig.strip()
    if s.isdigit():
        if int(s) == 0 or int(s) > 64:
            raise BuildError(f"Invalid signal: {sig}")
        return s
    name = s.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    if name.startswith("SIGRTMIN") or name.startswith("SIGRTMAX"):
        return s
    if not hasattr(_signal.Signals, name) and name not in ("SIGPOLL", "SIGIOT", "SIGCLD"):
        raise BuildError(f"Invalid signal: {sig}")
    return s


def command(argv: list[str], shell_form: bool, config: dict[str, Any]) -> list[str]:
    """CMD/ENTRYPOINT/RUN argv: the shell form runs through the image's SHELL."""
    if not shell_form:
        return list(argv)
    shell = list(config.get("Shell") or DEFAULT_SHELL)
    return [*shell, argv[0]] if argv else []


def healthcheck(test: list[str], interval: int, timeout: int, start_period: int, start_interval: int,
                retries: int, inherit: dict[str, Any] | None = None) -> dict[str, Any]:
    """docker's HealthConfig as it appears in an image (zero values omitted). Options left out
    keep the values of the healthcheck the image had (docker merges them when it commits)."""
    hc: dict[str, Any] = {"Test": list(test)}
    old = inherit or {}
    for key, value in (("Interval", interval), ("Timeout", timeout), ("StartPeriod", start_period),
                       ("StartInterval", start_interval), ("Retries", retries)):
        value = value or old.get(key) or 0
        if value:
            hc[key] = value
    return hc


def history_entry(created: str | None, created_by: str, empty_layer: bool,
                  comment: str = "buildkit.dockerfile.v0") -> dict[str, Any]:
    entry: dict[str, Any] = {"created": created, "created_by": created_by, "comment": comment}
    if empty_layer:
        entry["empty_layer"] = True
    return entry


def go_quoted_list(words: list[str] | None) -> str:
    """Go's ``fmt.Sprintf("%q", []string{...})``: ``["/bin/sh" "-c" "echo hi"]``, as BuildKit
    writes CMD and ENTRYPOINT into the history."""
    import json

    return "[" + " ".join(json.dumps(w, ensure_ascii=False) for w in words or []) + "]"


def go_healthcheck_text(test: list[str], interval: int, timeout: int, start_period: int, retries: int) -> str:
    """Go's ``%q`` of docker 20.10's HealthConfig, as both builders write HEALTHCHECK into the
    history: ``&{["CMD" "true"] "10s" "2s" "0s" '\\x02'}`` (the options as given, not merged)."""
    from dockyard.engine.timeutil import go_duration

    durations = " ".join(f'"{go_duration(ns)}"' for ns in (interval, timeout, start_period))
    return f"&{{{go_quoted_list(test)} {durations} {go_quote_rune(retries)}}}"


def go_quote_rune(n: int) -> str:
    """Go's ``strconv.QuoteRune`` (what ``%q`` makes of an int): ``'\\x02'``, ``'\\n'``, ``'A'``."""
    escapes = {7: "\\a", 8: "\\b", 9: "\\t", 10: "\\n", 11: "\\v", 12: "\\f", 13: "\\r",
               39: "\\'", 92: "\\\\"}
    if n in escapes:
        return f"'{escapes[n]}'"
    if n < 0x20 or n == 0x7F:
        return f"'\\x{n:02x}'"
    if n > 0x10FFFF:
        return "'\\ufffd'"
    ch = chr(n)
    if ch.isprintable():
        return f"'{ch}'"
    return f"'\\u{n:04x}'" if n <= 0xFFFF else f"'\\U{n:08x}'"


def go_list(words: list[str] | None) -> str:
    """Go's ``%v`` of a string slice: ``[/data /logs]`` (VOLUME and SHELL history lines)."""
    return "[" + " ".join(words or []) + "]"


def fill_history_times(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """BuildKit's exporter rule for entries without a time (the metadata steps): those before
    the build's first new layer take that layer's time, later ones the time of the layer before
    them; with no new layer, the base's last time. Stable for a cached rebuild (layer times come
    from the cache), so its image ID does not change."""
    created = None
    missing = False
    for h in history:
        if h.get("created") is not None:
            created = h["created"]
            if missing:
                break
        else:
            missing = True
    out: list[dict[str, Any]] = []
    missing = False
    for h in history:
        if h.get("created") is not None:
            if missing:
                created = h["created"]
        else:
            missing = True
            h = {k: v for k, v in h.items() if k != "created"}
            if created is not None:
                h = {"created": created, **h}
        out.append(h)
    return out
