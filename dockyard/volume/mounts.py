"""Mount requests in docker's three spellings: ``-v``, ``--mount`` and the Engine API objects.

All become a ``MountSpec``; ``VolumeService.resolve_mounts`` turns those into OCI mounts.
Errors use docker's words: client-side ones as ``invalid argument "<value>" for "--mount"
flag: ...``, daemon-side ones as ``invalid mount config for type "<type>": ...``.
"""
from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from dockyard.errors import InvalidArgument

VOLUME_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
PROPAGATIONS = ("shared", "rshared", "slave", "rslave", "private", "rprivate")
_V_MODES = {"ro", "rw", "z", "Z", "nocopy", "consistent", "cached", "delegated", *PROPAGATIONS}
_TRUE = ("", "1", "true")
_FALSE = ("0", "false")


@dataclass(frozen=True)
class MountSpec:
    """One requested mount. ``source``: volume name ("" = anonymous), or host path for binds."""

    type: str  # "volume" | "bind" | "tmpfs"
    target: str
    source: str = ""
    read_only: bool = False
    propagation: str = ""
    nocopy: bool = False
    create_source: bool = False  # -v creates a missing host directory; --mount does not
    volume_labels: tuple[tuple[str, str], ...] = ()
    volume_options: tuple[tuple[str, str], ...] = ()
    tmpfs_size: int = 0
    tmpfs_mode: int = 0
    mode: str = ""  # the -v mode string, shown by inspect

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "MountSpec":
        d = dict(d)
        d["volume_labels"] = tuple(tuple(x) for x in d.get("volume_labels", ()))
        d["volume_options"] = tuple(tuple(x) for x in d.get("volume_options", ()))
        return cls(**d)


def _flag_error(raw: str, why: str) -> InvalidArgument:
    return InvalidArgument(f'invalid argument "{raw}" for "--mount" flag: {why}', exit_code=125)


def _config_error(kind: str, why: str) -> InvalidArgument:
    return InvalidArgument(f'invalid mount config for type "{kind}": {why}')


def _clean_target(target: str, kind: str) -> str:
    if not target.startswith("/"):
        raise _config_error(kind, f"invalid mount path: '{target}' mount path must be absolute")
    return os.path.normpath(target) if target != "/" else "/"


def _parse_bool(raw: str, key: str, value: str) -> bool:
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise _flag_error(raw, f"invalid value for {key}: {value}")


def _parse_size(text: str) -> int:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b?)?", text.strip().lower())
    if not m:
        raise ValueError(f"invalid size: '{text}'")
    mult = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4, "p": 1024**5}[m.group(2)]
    return int(float(m.group(1)) * mult)


def validate(spec: MountSpec) -> MountSpec:
    """Daemon-side checks shared by every spelling, in docker's order (the target first)."""
    if not spec.target:
        raise _config_error(spec.type, "field Target must not be empty")
    if spec.target == "/":
        raise _config_error(spec.type, "invalid specification: destination can't be '/'")
    _clean_target(spec.target, spec.type)
    if spec.type not in ("bind", "volume", "tmpfs"):
        raise _config_error(spec.type, "mount type unknown")
    if spec.type == "bind":
        if not spec.source:
            raise _config_error("bind", "field Source must not be empty")
        if not spec.source.startswith("/"):
            raise _config_error("bind", f"invalid mount path: '{spec.source}' mount path must be "
                                "absolute")
        if spec.volume_labels or spec.volume_options or spec.nocopy:
            raise _config_error("bind", "field VolumeOptions must not be specified")
    if spec.type == "tmpfs":
        if spec.source:
            raise _config_error("tmpfs", "field Source must not be specified")
        if spec.read_only and False:
            pass
    if spec.type == "volume" and spec.source and not VOLUME_NAME_RE.match(spec.source):
        raise InvalidArgument(f'create {spec.source}: "{spec.source}" includes invalid characters '
                              'for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are '
                              "allowed. If you intended to pass a host directory, use absolute path")
    if spec.propagation and spec.propagation not in PROPAGATIONS:
        raise _config_error(spec.type, f"invalid propagation mode: {spec.propagation}")
    if spec.propagation and spec.type != "bind":
        raise _config_error(spec.type, "field BindOptions must not be specified")
    return spec


def parse_mount(raw: str) -> MountSpec:
    """``--mount type=bind|volume|tmpfs,source=...,target=...[,readonly][,...]`` as docker's
    CLI parses it: only the CSV and its keys are checked here (see ``validate``)."""
    import csv

    try:
        fields = next(csv.reader([raw]))
    except (csv.Error, StopIteration):
        raise _flag_error(raw, "invalid CSV") from None
    kind, source, target = "volume", "", ""
    ro = nocopy = False
    propagation = ""
    labels: list[tuple[str, str]] = []
    options: list[tuple[str, str]] = []
    size = mode = 0
    seen_volume_opt = seen_bind_opt = seen_tmpfs_opt = False
    for item in fields:
        key, eq, value = item.partition("=")
        key = key.strip().lower()
        if not eq and key not in ("readonly", "ro", "volume-nocopy", "bind-nonrecursive"):
            raise _flag_error(raw, f"invalid field '{item}' must be a key=value pair")
        if key == "type":
            kind = value.lower()
        elif key in ("source", "src"):
            source = value
        elif key in ("target", "destination", "dst"):
            target = value
        elif key in ("readonly", "ro"):
            ro = _parse_bool(raw, key, value)
        elif key == "consistency":
            pass
        elif key == "bind-propagation":
            propagation, seen_bind_opt = value.lower(), True
        elif key == "bind-nonrecursive":
            seen_bind_opt = True
        elif key == "volume-nocopy":
            nocopy, seen_volume_opt = _parse_bool(raw, key, value), True
        elif key == "volume-label":
            k, _, v = value.partition("=")
            labels.append((k, v))
            seen_volume_opt = True
        elif key == "volume-opt":
            k, eq2, v = value.partition("=")
            if not eq2:
                raise _flag_error(raw, f"invalid volume-opt: {value}")
            options.append((k, v))
            seen_volume_opt = True
        elif key == "volume-driver":
            if value not in ("", "local"):
                raise InvalidArgument(f"volume driver {value} is not supported (only \"local\")")
            seen_volume_opt = True
        elif key == "tmpfs-size":
            try:
                size = _parse_size(value)
            except ValueError as exc:
                raise _flag_error(raw, str(exc)) from None
            seen_tmpfs_opt = True
        elif key == "tmpfs-mode":
            try:
                mode = int(value, 8)
            except ValueError:
                raise _flag_error(raw, f'strconv.ParseUint: parsing "{value}": invalid syntax') from None
            seen_tmpfs_opt = True
        else:
            raise _flag_error(raw, f"unexpected key '{key}' in '{item}'")
    if not target:
        raise _flag_error(raw, "target is required")
    if seen_volume_opt and kind != "volume":
        raise _flag_error(raw, f"cannot mix 'volume-*' options with mount type '{kind}'")
    if seen_bind_opt and kind != "bind":
        raise _flag_error(raw, f"cannot mix 'bind-*' options with mount type '{kind}'")
    if seen_tmpfs_opt and kind != "tmpfs":
        raise _flag_error(raw, f"cannot mix 'tmpfs-*' options with mount type '{kind}'")
    # the rest (type, paths, names) is the daemon's to check: ``from_api`` at create, so that
    # the error comes back as docker's "Error response from daemon" with exit code 125
    clean = os.path.normpath(target) if target.startswith("/") and target != "/" else target
    return MountSpec(kind, clean, source, ro, propagation, nocopy, False,
                     tuple(labels), tuple(options), size, mode)


def parse_volume_flag(raw: str) -> MountSpec:
    """``-v [SRC:]DST[:MODE]`` as docker's CLI reads it: only to tell a bind or named volume
    (``HostConfig.Binds``) from an anonymous one (``Config.Volumes``). It never fails: the
    daemon (``volume_flag_spec``, at create) reports what is wrong, as docker's does."""
    try:
        return volume_flag_spec(raw)
    except InvalidArgument:
        parts = raw.split(":")
        if len(parts) < 2:
            return MountSpec("volume", raw)
        kind = "bind" if parts[0].startswith("/") else "volume"
        return MountSpec(kind, parts[1], parts[0], create_source=kind == "bind")


def volume_flag_spec(raw: str) -> MountSpec:
    """``-v [SRC:]DST[:MODE]`` checked as docker's daemon does: SRC is an absolute host path
    (bind) or a volume name."""
    parts = raw.split(":")
    if len(parts) == 1:
        src, dst, mode = "", parts[0], ""
    elif len(parts) == 2:
        if parts[0].startswith("/") and parts[1] and not parts[1].startswith("/"):
            src, dst, mode = "", parts[0], parts[1]
        else:
            src, dst, mode = parts[0], parts[1], ""
    elif len(parts) == 3:
        src, dst, mode = parts
    else:
        raise InvalidArgument(f"invalid volume specification: '{raw}'")
    if not dst:
        raise InvalidArgument(f"invalid volume specification: '{raw}'")
    kind = "bind" if src.startswith("/") else "volume"
    if not dst.startswith("/"):
        raise InvalidArgument(f"invalid volume specification: '{raw}': invalid mount config for "
                              f"type \"{kind}\": invalid mount path: '{dst}' mount path must be "
                              "absolute")
    opts = [o for o in mode.split(",") if o]
    if any(o not in _V_MODES for o in opts) or ("ro" in opts and "rw" in opts):
        raise InvalidArgument(f"invalid mode: {mode}")
    propagation = next((o for o in opts if o in PROPAGATIONS), "")
    if propagation and kind != "bind":
        raise InvalidArgument(f"invalid mode: {mode}")
    if dst == "/":
        raise InvalidArgument(f"invalid volume specification: '{raw}': invalid mount config for "
                              f"type \"{kind}\": invalid specification: destination can't be '/'")
    spec = MountSpec(kind, _clean_target(dst, kind), os.path.normpath(src) if kind == "bind" else src,
                     "ro" in opts, propagation, "nocopy" in opts, kind == "bind", mode=mode)
    return validate(spec)


def from_api(m: dict[str, Any]) -> MountSpec:
    """An Engine API ``HostConfig.Mounts`` entry."""
    kind = str(m.get("Type") or "volume")
    vol = m.get("VolumeOptions") or {}
    driver = (vol.get("DriverConfig") or {})
    tmpfs = m.get("TmpfsOptions") or {}
    bind = m.get("BindOptions") or {}
    target = str(m.get("Target") or "")
    if not target:
        raise _config_error(kind, "field Target must not be empty")
    spec = MountSpec(kind, _clean_target(target, kind), str(m.get("Source") or ""),
                     bool(m.get("ReadOnly")), str(bind.get("Propagation") or ""),
                     bool(vol.get("NoCopy")), False,
                     tuple(sorted((vol.get("Labels") or {}).items())),
                     tuple(sorted((driver.get("Options") or {}).items())),
                     int(tmpfs.get("SizeBytes") or 0), int(tmpfs.get("Mode") or 0))
    return validate(spec)


def from_tmpfs_flag(target: str, options: str = "") -> MountSpec:
    """``--tmpfs /run:rw,size=64m,mode=1777`` (HostConfig.Tmpfs)."""
    size = mode = 0
    ro = False
    for opt in [o for o in options.split(",") if o]:
        k, _, v = opt.partition("=")
        if k == "size":
            size = _parse_size(v)
        elif k == "mode":
            mode = int(v, 8)
        elif k == "ro":
            ro = True
    return validate(MountSpec("tmpfs", _clean_target(target, "tmpfs"), read_only=ro,
                              tmpfs_size=size, tmpfs_mode=mode))


@dataclass
class MountRequest:
    """Everything that asks a container for mounts, in docker's precedence order."""

    specs: list[MountSpec] = field(default_factory=list)
    volumes_from: list[str] = field(default_factory=list)  # "container[:ro|rw]"
