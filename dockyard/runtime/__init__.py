"""OCI runtimes: runtime-spec generation, the built-in runtime, and runc/crun through their CLIs.

``get_runtime(name, state_dir)`` is the one way to get a runtime: ``"builtin"`` (the default,
in-process, no runtime binary to start), ``"runc"``, ``"crun"``, or the name or path of any
binary with runc's command line. Nothing heavy is imported until a runtime is asked for.
"""
from __future__ import annotations

import os
from pathlib import Path

from dockyard.runtime.base import ProcessStartError, Runtime, RuntimeState, Stdio, start_error_exit_code

DEFAULT_RUNTIME = "builtin"
BUILTIN_NAMES = ("builtin", "dockyard")


def default_runtime_name() -> str:
    """The configured default: ``DOCKYARD_RUNTIME`` if set, else the built-in runtime."""
    return os.environ.get("DOCKYARD_RUNTIME") or DEFAULT_RUNTIME


def get_runtime(name: str | None, state_dir: Path) -> Runtime:
    """A runtime by name (``None``/``""`` = the configured default) keeping its state in ``state_dir``."""
    name = name or default_runtime_name()
    if name in BUILTIN_NAMES:
        from dockyard.runtime.builtin import BuiltinRuntime

        return BuiltinRuntime(Path(state_dir))
    from dockyard.runtime.oci_cli import OciCliRuntime

    return OciCliRuntime(Path(state_dir), binary=name)


__all__ = ["get_runtime", "default_runtime_name", "Runtime", "RuntimeState", "Stdio", "ProcessStartError",
           "start_error_exit_code", "DEFAULT_RUNTIME"]
