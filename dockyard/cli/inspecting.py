"""What every ``inspect`` command prints: docker's JSON array, or one rendered template per object.

With ``--format``, docker first renders its typed object, where a field the struct lacks is an
error, and a key a Go map lacks (Labels, Options, ...) prints ``<no value>``. Our objects are
plain JSON, so the keys that are Go maps in docker's types are marked (:class:`GoMap`) and the
rest treated as struct fields. As docker, each failing object's error goes to stderr, the others
still print, a run that printed nothing prints one empty line, and the exit code is 1.
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dockyard.cli.common import Context

# keys whose values are Go maps (map[string]...) in docker's inspect types
GO_MAP_KEYS = frozenset({
    "Labels", "ExposedPorts", "Volumes", "Ports", "Networks", "Options", "Status", "Annotations",
    "DriverOpts", "Sysctls", "StorageOpt", "Tmpfs", "Containers", "Data", "DeviceCgroupRules",
    "UsageData", "Peers", "Plugins",
})


def _mark_maps(value: Any, key: str = "") -> Any:
    from dockyard.cli.formatting import GoMap

    if isinstance(value, dict):
        items = {k: _mark_maps(v, k) for k, v in value.items()}
        return GoMap(items) if key in GO_MAP_KEYS else items
    if value is None and key in GO_MAP_KEYS:
        nil = GoMap()
        nil.nil = True
        return nil
    if isinstance(value, list):
        return [_mark_maps(v) for v in value]
    return value


def print_inspect(ctx: "Context", objects: list[Any], fmt: str | None) -> int:
    """Print ``objects`` as docker's inspect does; returns 1 when the template failed for any."""
    if not fmt:
        ctx.print(json.dumps(objects, indent=4, ensure_ascii=False))
        return 0
    from dockyard.cli.formatting import TemplateError, parse

    try:
        template = parse(fmt)
    except TemplateError as exc:
        raise TemplateError(exc.message, exit_code=64) from None  # docker inspect's usage error code
    out: list[str] = []
    rc = 0
    for obj in objects:
        try:
            out.append(template.execute(_mark_maps(obj), missing_error=True) + "\n")
        except TemplateError as exc:
            ctx.warn(str(exc))
            rc = 1
    ctx.out.write("".join(out) or "\n")
    return rc
