"""The route table: docker's paths (with or without a ``/v1.xx`` prefix) to handler functions.

A handler is ``module:function`` (imported on first use, so the server starts without loading
what it may never serve) called as ``function(x: Exchange, **path_params)``. ``{name}`` matches
one path segment, ``{name*}`` the rest of the path (image names have slashes: docker's
``{name:.*}``).
"""
from __future__ import annotations

import importlib
import re
from typing import Any, Callable

from dockyard.api.http import ApiError

MIN_API_VERSION = "1.24"

# (method, path, "module:function"); the first match wins, so specific paths come first
ROUTES: list[tuple[str, str, str]] = [
    ("GET", "/_ping", "system:ping"),
    ("HEAD", "/_ping", "system:ping"),
    ("GET", "/version", "system:version"),
    ("GET", "/info", "system:info"),
    ("GET", "/system/df", "system:df"),
    ("GET", "/events", "system:events"),
    ("POST", "/auth", "system:auth"),
    # containers
    ("GET", "/containers/json", "containers:list_"),
    ("POST", "/containers/create", "containers:create"),
    ("POST", "/containers/prune", "containers:prune"),
    ("GET", "/containers/{id}/json", "containers:inspect"),
    ("GET", "/containers/{id}/top", "containers:top"),
    ("GET", "/containers/{id}/logs", "containers:logs"),
    ("GET", "/containers/{id}/changes", "containers:changes"),
    ("GET", "/containers/{id}/export", "containers:export"),
    ("GET", "/containers/{id}/stats", "containers:stats"),
    ("POST", "/containers/{id}/resize", "containers:resize"),
    ("POST", "/containers/{id}/start", "containers:start"),
    ("POST", "/containers/{id}/stop", "containers:stop"),
    ("POST", "/containers/{id}/restart", "containers:restart"),
    ("POST", "/containers/{id}/kill", "containers:kill"),
    ("POST", "/containers/{id}/update", "containers:update"),
    ("POST", "/containers/{id}/rename", "containers:rename"),
    ("POST", "/containers/{id}/pause", "containers:pause"),
    ("POST", "/containers/{id}/unpause", "containers:unpause"),
    ("POST", "/containers/{id}/attach", "attach:attach"),
    ("POST", "/containers/{id}/wait", "containers:wait"),
    ("DELETE", "/containers/{id}", "containers:remove"),
    ("HEAD", "/containers/{id}/archive", "containers:archive_stat"),
    ("GET", "/containers/{id}/archive", "containers:archive_get"),
    ("PUT", "/containers/{id}/archive", "containers:archive_put"),
    ("POST", "/containers/{id}/exec", "execs:create"),
    ("POST", "/exec/{id}/start", "execs:start"),
    ("POST", "/exec/{id}/resize", "execs:resize"),
    ("GET", "/exec/{id}/json", "execs:inspect"),
    ("POST", "/commit", "containers:commit"),
    # images
    ("GET", "/images/json", "images:list_"),
    ("POST", "/images/create", "images:create"),
    ("POST", "/images/load", "images:load"),
    ("GET", "/images/get", "images:save"),
    ("POST", "/images/prune", "images:prune"),
    ("GET", "/images/search", "images:search"),
    ("POST", "/build", "build:build"),
    ("POST", "/build/prune", "build:prune"),
    ("GET", "/images/{name*}/json", "images:inspect"),
    ("GET", "/images/{name*}/history", "images:history"),
    ("GET", "/images/{name*}/get", "images:save_one"),
    ("POST", "/images/{name*}/tag", "images:tag"),
    ("POST", "/images/{name*}/push", "images:push"),
    ("DELETE", "/images/{name*}", "images:remove"),
    ("GET", "/distribution/{name*}/json", "images:distribution_inspect"),
    # volumes
    ("GET", "/volumes", "volumes:list_"),
    ("POST", "/volumes/create", "volumes:create"),
    ("POST", "/volumes/prune", "volumes:prune"),
    ("GET", "/volumes/{name}", "volumes:inspect"),
    ("DELETE", "/volumes/{name}", "volumes:remove"),
    # networks
    ("GET", "/networks", "networks:list_"),
    ("POST", "/networks/create", "networks:create"),
    ("POST", "/networks/prune", "networks:prune"),
    ("GET", "/networks/{id}", "networks:inspect"),
    ("DELETE", "/networks/{id}", "networks:remove"),
    ("POST", "/networks/{id}/connect", "networks:connect"),
    ("POST", "/networks/{id}/disconnect", "networks:disconnect"),
]

_VERSION_RE = re.compile(r"^/v(\d+\.\d+)(/.*)$")


def _compile(path: str) -> "re.Pattern[str]":
    out = ""
    for part in re.split(r"(\{\w+\*?\})", path):
        if part.startswith("{"):
            name = part.strip("{}*")
            out += f"(?P<{name}>.+)" if part.endswith("*}") else f"(?P<{name}>[^/]+)"
        else:
            out += re.escape(part)
    return re.compile(f"^{out}$")


_TABLE = [(method, _compile(path), target) for method, path, target in ROUTES]
_HANDLERS: dict[str, Callable[..., Any]] = {}


def _handler(target: str) -> Callable[..., Any]:
    fn = _HANDLERS.get(target)
    if fn is None:
        module, name = target.split(":")
        fn = _HANDLERS[target] = getattr(importlib.import_module(f"dockyard.api.{module}"), name)
    return fn


def _version_tuple(v: str) -> tuple[int, int]:
    major, _, minor = v.partition(".")
    return int(major), int(minor or 0)


def split_version(path: str, max_version: str) -> tuple[str, str]:
    """``/v1.43/containers/json`` → (``1.43``, ``/containers/json``); unversioned paths get
    the newest version. Versions outside [1.24, max] get docker's messages."""
    m = _VERSION_RE.match(path)
    if not m:
        return max_version, path
    version, rest = m.group(1), m.group(2)
    if _version_tuple(version) > _version_tuple(max_version):
        raise ApiError(400, f"client version {version} is too new. Maximum supported API version is {max_version}")
    if _version_tuple(version) < _version_tuple(MIN_API_VERSION):
        raise ApiError(400, f"client version {version} is too old. Minimum supported API version is "
                            f"{MIN_API_VERSION}, please upgrade your client to a newer version")
    return version, rest


def resolve(method: str, path: str) -> tuple[Callable[..., Any], dict[str, str]]:
    """The handler for a request and its path parameters (404/405 as docker words them)."""
    from urllib.parse import unquote

    allowed = False
    for m, pattern, target in _TABLE:
        match = pattern.match(path)
        if match:
            if m != method:
                allowed = True
                continue
            return _handler(target), {k: unquote(v) for k, v in match.groupdict().items()}
    if allowed:
        raise ApiError(405, "method not allowed")
    raise ApiError(404, "page not found")
