"""The built-in runtime's seccomp filter: compiled on the host side, loaded by the child.

``create`` compiles the spec's ``linux.seccomp`` (from the on-disk cache under the runtime's
state dir, so a start costs a file read) before forking, and keeps a copy in the container's
state: ``exec`` loads the same filter into every exec'd process, as runc does, even if the
bundle changed since. The child loads it at runc's moment (``load_in_child``).
"""
from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from dockyard.runtime.base import ProcessStartError
from dockyard.runtime.seccomp_bpf import CompiledFilter, SeccompError, install, load_or_compile

CACHE_DIR = ".seccomp-cache"   # under the runtime state dir; a dot-name is never a container id


def prepare(config: dict[str, Any] | None, state_dir: Path) -> CompiledFilter | None:
    """The compiled filter for a spec's ``linux.seccomp`` (None when it has none)."""
    if not config:
        return None
    try:
        return load_or_compile(config, Path(state_dir) / CACHE_DIR)
    except SeccompError as exc:
        raise ProcessStartError(f"OCI runtime create failed: {exc}: unknown") from None


def encode(compiled: CompiledFilter | None) -> str:
    """The filter as kept in the container's ``state.json`` (written anyway: no extra file)."""
    return base64.b64encode(compiled.to_bytes()).decode() if compiled is not None else ""


def decode(text: str) -> CompiledFilter | None:
    """The filter ``create`` kept for the container (None: it runs unconfined)."""
    if not text:
        return None
    try:
        return CompiledFilter.from_bytes(base64.b64decode(text))
    except (SeccompError, ValueError) as exc:
        raise ProcessStartError(f"OCI runtime exec failed: corrupt seccomp filter in the container state: {exc}: unknown") from None


def load_in_child(compiled: CompiledFilter | None, no_new_privileges: bool, stage: str) -> None:
    """runc's placement: without no_new_privs the filter needs CAP_SYS_ADMIN, so it is loaded
    before capabilities are dropped (``stage == "before-finalize"``); with no_new_privs as late as
    possible, after the program was looked up (``stage == "before-exec"``)."""
    if compiled is None:
        return
    if (stage == "before-exec") != no_new_privileges:
        return
    install(compiled)


__all__ = ["prepare", "encode", "decode", "load_in_child", "CACHE_DIR"]
