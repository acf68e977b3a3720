"""``--security-opt`` and seccomp profiles: what docker puts in an OCI spec's ``linux.seccomp``.

Three layers, as in docker:

* the CLI (``resolve_security_opts``): checks the ``key=value`` shape and replaces
  ``seccomp=<file>`` by the file's compacted JSON, so the container record keeps the profile
  itself (docker/cli ``parseSecurityOpts``);
* the daemon (``parse_security_opts``): ``no-new-privileges[:bool]``, ``seccomp=``,
  ``apparmor=``, ``label=``, with moby's messages (``invalid --security-opt 2: "x=y"``);
* the spec (``container_seccomp``): no filter for ``--privileged`` or ``seccomp=unconfined``;
  else the profile (docker's default, ``seccomp_default.DEFAULT_PROFILE``, or the user's) turned
  into the OCI object by ``profile_to_oci`` exactly as moby's ``setupSeccomp`` does: only the
  rules whose ``includes``/``excludes`` (capabilities in the bounding set, the host's
  architecture, ``minKernel``) select them, and only the host's ``archMap`` entry.

runc and crun load that object with libseccomp; the built-in runtime compiles it itself
(``seccomp_bpf``).
"""
from __future__ import annotations

import json
import os
import platform
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from dockyard.errors import InvalidArgument

UNCONFINED = "unconfined"
BUILTIN = "builtin"  # docker >= 23: the daemon's default profile, by name

# platform.machine() -> the libseccomp/Go "native" architecture name moby matches
# ``includes.arches``/``excludes.arches`` against (moby ``goToNative``)
NATIVE_ARCH = {
    "x86_64": "amd64", "amd64": "amd64", "i386": "x86", "i686": "x86", "aarch64": "arm64", "arm64": "arm64",
    "armv7l": "arm", "armv6l": "arm", "ppc64le": "ppc64le", "ppc64": "ppc64", "s390x": "s390x",
    "mips64": "mips64", "riscv64": "riscv64",
}
# native name -> the seccomp architecture of ``archMap`` (moby ``nativeToSeccomp``)
NATIVE_TO_SECCOMP = {
    "x86": "SCMP_ARCH_X86", "amd64": "SCMP_ARCH_X86_64", "arm": "SCMP_ARCH_ARM", "arm64": "SCMP_ARCH_AARCH64",
    "mips64": "SCMP_ARCH_MIPS64", "mips64n32": "SCMP_ARCH_MIPS64N32", "mipsel64": "SCMP_ARCH_MIPSEL64",
    "mips3l64n32": "SCMP_ARCH_MIPSEL64N32", "mipsle": "SCMP_ARCH_MIPSEL", "ppc": "SCMP_ARCH_PPC",
    "ppc64": "SCMP_ARCH_PPC64", "ppc64le": "SCMP_ARCH_PPC64LE", "s390": "SCMP_ARCH_S390",
    "s390x": "SCMP_ARCH_S390X", "riscv64": "SCMP_ARCH_RISCV64",
}
_GO_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_GO_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def _decoding_error(why: str) -> InvalidArgument:
    return InvalidArgument(f"Decoding seccomp profile failed: {why}")


# ---------------------------------------------------------------------------- --security-opt
@dataclass
class SecurityOptions:
    """The daemon's reading of ``HostConfig.SecurityOpt``."""

    no_new_privileges: bool | None = None  # None: not asked either way
    seccomp_profile: str = ""               # "" = docker's default, "unconfined", or a profile's JSON
    apparmor_profile: str = ""
    label_options: list[str] = field(default_factory=list)


def _read_profile_file(path: str) -> str:
    """A profile file's JSON, compacted (docker/cli reads it on the client, with these messages)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except IsADirectoryError:
        raise InvalidArgument(f"opening seccomp profile ({path}) failed: read {path}: is a directory",
                              exit_code=125) from None
    except OSError as exc:
        reason = os.strerror(exc.errno or 0).lower()
        raise InvalidArgument(f"opening seccomp profile ({path}) failed: open {path}: {reason}",
                              exit_code=125) from None
    try:
        value = json.loads(data)
    except ValueError as exc:
        raise InvalidArgument(f"compacting json for seccomp profile ({path}) failed: {exc}",
                              exit_code=125) from None
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _is_profile_json(value: str) -> bool:
    return value.lstrip().startswith(("{", "["))


def resolve_security_opts(opts: list[str] | None) -> list[str]:
    """docker/cli's ``parseSecurityOpts``: every option must be ``key=value`` (or ``key:value``)
    except ``no-new-privileges``; ``seccomp=<file>`` becomes ``seccomp=<the file's JSON>``.
    Errors exit 125, as docker's flag errors do."""
    out: list[str] = []
    for opt in opts or []:
        key, sep, value = opt.partition("=")
        if not sep and key != "no-new-privileges":
            key, sep, value = opt.partition(":")
        if (not sep or not value) and key != "no-new-privileges":
            raise InvalidArgument(f'Invalid --security-opt: "{opt}"', exit_code=125)
        if key == "seccomp" and value not in (BUILTIN, UNCONFINED) and not _is_profile_json(value):
            opt = "seccomp=" + _read_profile_file(value)
        out.append(opt)
    return out


def parse_security_opts(opts: list[str] | None) -> SecurityOptions:
    """moby's ``parseSecurityOpt`` with its messages. A ``seccomp=`` value that is neither a
    profile's JSON nor a keyword is read as a file (library callers skip the CLI step)."""
    result = SecurityOptions()
    for opt in opts or []:
        if opt == "no-new-privileges":
            result.no_new_privileges = True
            continue
        if opt == "disable":
            result.label_options.append("disable")
            continue
        if "=" in opt:
            key, _, value = opt.partition("=")
        elif ":" in opt:
            key, _, value = opt.partition(":")
        else:
            raise InvalidArgument(f'invalid --security-opt 1: "{opt}"')
        if key == "label":
            result.label_options.append(value)
        elif key == "apparmor":
            result.apparmor_profile = value
        elif key == "seccomp":
            if value and value not in (BUILTIN, UNCONFINED) and not _is_profile_json(value):
                value = _read_profile_file(value)
            result.seccomp_profile = value
        elif key == "no-new-privileges":
            if value in _GO_TRUE:
                result.no_new_privileges = True
            elif value in _GO_FALSE:
                result.no_new_privileges = False
            else:
                raise InvalidArgument(f'invalid --security-opt 2: "{opt}"')
        else:
            raise InvalidArgument(f'invalid --security-opt 2: "{opt}"')
    return result


# ---------------------------------------------------------------------------- profiles
def _check_type(value: Any, kind: type | tuple[type, ...], where: str, go_type: str) -> None:
    if value is not None and not isinstance(value, kind) or isinstance(value, bool) and kind is int:
        found = {dict: "object", list: "array", str: "string", bool: "bool"}.get(type(value), "number")
        raise _decoding_error(f"json: cannot unmarshal {found} into Go {where} of type {go_type}")


def _kernel_version(text: str) -> tuple[int, int]:
    """A ``minKernel`` value: ``<kernel>.<major>`` (moby ``KernelVersion``)."""
    parts = text.split(".")
    if len(parts) != 2:
        raise _decoding_error(f'invalid kernel version: "{text}", expected "<kernel>.<major>"')
    numbers = []
    for part in parts:
        if not part.isdigit():
            raise _decoding_error(f'invalid kernel version: "{text}", expected "<kernel>.<major>": '
                                  f'strconv.ParseUint: parsing "{part}": invalid syntax')
        numbers.append(int(part))
    return numbers[0], numbers[1]


def load_profile(text: str) -> dict[str, Any]:
    """Decode a profile in docker's format (``seccomp=<json>``); the shapes moby's decoder accepts,
    its error wording (``Decoding seccomp profile failed: ...``)."""
    try:
        profile = json.loads(text)
    except ValueError as exc:
        raise _decoding_error(str(exc)) from None
    if profile is None:
        return {}  # JSON null decodes to an empty profile: seccomp disabled
    _check_type(profile, dict, "value", "seccomp.Seccomp")
    _check_type(profile.get("defaultAction"), str, "struct field Seccomp.defaultAction", "specs.LinuxSeccompAction")
    for key in ("architectures", "flags"):
        _check_type(profile.get(key), list, f"struct field Seccomp.{key}", "[]string")
    _check_type(profile.get("archMap"), list, "struct field Seccomp.archMap", "[]seccomp.Architecture")
    _check_type(profile.get("syscalls"), list, "struct field Seccomp.syscalls", "[]*seccomp.Syscall")
    for call in profile.get("syscalls") or []:
        _check_type(call, dict, "struct field Seccomp.syscalls", "seccomp.Syscall")
        _check_type(call.get("names"), list, "struct field Syscall.names", "[]string")
        _check_type(call.get("args"), list, "struct field Syscall.args", "[]*seccomp.Arg")
        for arg in call.get("args") or []:
            _check_type(arg, dict, "struct field Syscall.args", "seccomp.Arg")
            for key in ("index", "value", "valueTwo"):
                _check_type(arg.get(key), int, f"struct field Arg.{key}", "uint64")
        for key in ("includes", "excludes"):
            _check_type(call.get(key), dict, f"struct field Syscall.{key}", "seccomp.Filter")
            min_kernel = (call.get(key) or {}).get("minKernel")
            if min_kernel:
                _check_type(min_kernel, str, "struct field Filter.minKernel", "seccomp.KernelVersion")
                _kernel_version(min_kernel)
    return profile


def host_native_arch(machine: str | None = None) -> str:
    machine = machine or platform.machine()
    return NATIVE_ARCH.get(machine, machine)


def host_kernel_version() -> tuple[int, int]:
    release = platform.release()
    numbers = []
    for part in release.split(".")[:2]:
        digits = "".join(ch for ch in part if ch.isdigit()) or "0"
        numbers.append(int(digits))
    return (numbers + [0, 0])[0], (numbers + [0, 0])[1]


def _selected(call: dict[str, Any], bounding: set[str], arch: str, kernel: tuple[int, int]) -> bool:
    """moby ``setupSeccomp``'s includes/excludes test for one rule."""
    excludes = call.get("excludes") or {}
    includes = call.get("includes") or {}
    if arch in (excludes.get("arches") or []):
        return False
    if any(cap in bounding for cap in excludes.get("caps") or []):
        return False
    if excludes.get("minKernel") and kernel >= _kernel_version(excludes["minKernel"]):
        return False
    if includes.get("arches") and arch not in includes["arches"]:
        return False
    if any(cap not in bounding for cap in includes.get("caps") or []):
        return False
    if includes.get("minKernel") and kernel < _kernel_version(includes["minKernel"]):
        return False
    return True


def _oci_arg(arg: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"index": int(arg.get("index") or 0), "value": int(arg.get("value") or 0)}
    if arg.get("valueTwo"):
        out["valueTwo"] = int(arg["valueTwo"])
    out["op"] = arg.get("op", "")
    return out


def profile_to_oci(profile: dict[str, Any], bounding: list[str] | tuple[str, ...] | set[str],
                   machine: str | None = None, kernel: tuple[int, int] | None = None) -> dict[str, Any] | None:
    """The OCI ``linux.seccomp`` object docker generates from ``profile`` for a container whose
    bounding capability set is ``bounding`` (None when the profile disables seccomp)."""
    if not profile.get("defaultAction") and not profile.get("syscalls"):
        return None  # moby: no default action and no rules = seccomp disabled
    if profile.get("architectures") and profile.get("archMap"):
        raise InvalidArgument("'architectures' and 'archMap' were specified in the seccomp profile, "
                              "use either 'architectures' or 'archMap'")
    arch = host_native_arch(machine)
    kernel = kernel or host_kernel_version()
    caps = set(bounding)
    out: dict[str, Any] = {"defaultAction": profile.get("defaultAction", "")}
    if profile.get("defaultErrnoRet") is not None:
        out["defaultErrnoRet"] = int(profile["defaultErrnoRet"])
    arches = list(profile.get("architectures") or [])
    seccomp_arch = NATIVE_TO_SECCOMP.get(arch)
    if seccomp_arch:
        for entry in profile.get("archMap") or []:
            if entry.get("architecture") == seccomp_arch:
                arches += [entry["architecture"], *(entry.get("subArchitectures") or [])]
                break
    if arches:
        out["architectures"] = arches
    if profile.get("flags"):
        out["flags"] = list(profile["flags"])
    syscalls: list[dict[str, Any]] = []
    for call in profile.get("syscalls") or []:
        if not _selected(call, caps, arch, kernel):
            continue
        if call.get("name") and call.get("names"):
            raise InvalidArgument("'name' and 'names' were specified in the seccomp profile, use either 'name' or 'names'")
        rule: dict[str, Any] = {"names": [call["name"]] if call.get("name") else list(call.get("names") or []),
                                "action": call.get("action", "")}
        if call.get("errnoRet") is not None:
            rule["errnoRet"] = int(call["errnoRet"])
        if call.get("args"):
            rule["args"] = [_oci_arg(a) for a in call["args"]]
        syscalls.append(rule)
    if syscalls:
        out["syscalls"] = syscalls
    return out


def default_seccomp(bounding: list[str] | tuple[str, ...] | set[str], machine: str | None = None) -> dict[str, Any]:
    """docker's default profile for a container with this bounding capability set."""
    from dockyard.runtime.seccomp_default import DEFAULT_PROFILE

    result = profile_to_oci(DEFAULT_PROFILE, bounding, machine)
    assert result is not None
    return result


@lru_cache(maxsize=1)
def kernel_supports_seccomp() -> bool:
    """The kernel has seccomp filters (moby checks before using a profile)."""
    try:
        with open("/proc/self/status") as f:
            return any(line.startswith("Seccomp:") for line in f)
    except OSError:
        return False


def container_seccomp(security: SecurityOptions, privileged: bool,
                      bounding: list[str] | tuple[str, ...] | set[str]) -> dict[str, Any] | None:
    """``linux.seccomp`` for a container (moby ``WithSeccomp``): none when privileged or
    unconfined, the user's profile if given, docker's default otherwise; on a kernel without
    seccomp, no filter (and an error for a custom profile), as docker."""
    if privileged or security.seccomp_profile == UNCONFINED:
        return None
    if not kernel_supports_seccomp():
        if security.seccomp_profile not in ("", BUILTIN):
            raise InvalidArgument("seccomp is not enabled in your kernel, cannot run a custom seccomp profile")
        return None
    if security.seccomp_profile and security.seccomp_profile != BUILTIN:
        return profile_to_oci(load_profile(security.seccomp_profile), bounding)
    return default_seccomp(bounding)


__all__ = [
    "SecurityOptions", "resolve_security_opts", "parse_security_opts", "load_profile", "profile_to_oci",
    "default_seccomp", "container_seccomp", "UNCONFINED", "BUILTIN",
]
