"""The contract between the engine (monitor) and an OCI runtime.

Every runtime — the built-in one, runc, crun — takes the same OCI bundle (``config.json`` +
rootfs) and is driven the same way, so the lifecycle tests can run against each of them.

The caller (the per-container monitor) makes itself a child subreaper
(``prctl(PR_SET_CHILD_SUBREAPER)``) before ``create``/``exec``, so that the container's init
and exec'd processes end up as its children and it can ``waitpid`` them for the exit status,
whichever runtime started them (runc/crun double-fork and exit).
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockyard.errors import Conflict, DockyardError


class ProcessStartError(DockyardError):
    """The container's (or an exec'd) process could not be started.

    ``exit_code`` follows docker: 127 when the command was not found, 126 when it could not be
    invoked (permission denied, not executable), 125 for any other runtime failure. The message
    is docker's, e.g. ``OCI runtime create failed: unable to start container process: exec:
    "nosuch": executable file not found in $PATH: unknown``.
    """

    exit_code = 125


def start_error_exit_code(message: str) -> int:
    """Docker's exit code for a runtime's start failure, decided from its message as moby does
    (``translateContainerdStartErr``): runc, crun and the built-in runtime word them differently,
    but all say "not found"/"no such file" or "permission denied"/"not permitted"."""
    text = message.lower()
    if "permission denied" in text or "operation not permitted" in text or "exec format error" in text:
        return 126
    if "executable file not found" in text or "no such file or directory" in text or "not a directory" in text:
        return 127
    return 125


# operation -> the statuses it is allowed in (runc's rules)
ALLOWED_STATUSES: dict[str, tuple[str, ...]] = {
    "start": ("created",),
    "delete": ("created", "stopped"),
    "pause": ("running",),
    "resume": ("paused",),
    "kill": ("created", "running", "paused"),
    "exec": ("created", "running"),
    "update": ("created", "running", "paused"),
}


def status_conflict(operation: str, container_id: str, status: str) -> Conflict | None:
    """The error for ``operation`` on a container in ``status`` (None if allowed); the same
    wording whichever runtime runs the container."""
    if status in ALLOWED_STATUSES.get(operation, (status,)):
        return None
    if operation == "start":
        return Conflict("cannot start a container that has stopped" if status == "stopped"
                        else f"cannot start an already {status} container")
    if operation == "delete":
        return Conflict(f"cannot delete container {container_id} that is not stopped: {status}")
    if operation == "resume":
        return Conflict(f"container {container_id} is not paused")
    if operation == "exec":
        return Conflict(f"cannot exec in a {status} container")
    return Conflict(f"container {container_id} is not running" if status in ("stopped", "created")
                    else f"container {container_id} is {status}")


def check_status(operation: str, container_id: str, status: str) -> None:
    """Raise :func:`status_conflict`'s error if ``operation`` is not allowed in ``status``."""
    conflict = status_conflict(operation, container_id, status)
    if conflict is not None:
        raise conflict


@dataclass
class Stdio:
    """File descriptors the container's process gets as 0, 1, 2 (None means /dev/null).

    With ``process.terminal = true`` in the spec, the three are ignored and the runtime
    creates a pty and sends its master fd over ``console_socket`` (runc's
    ``--console-socket`` protocol: SCM_RIGHTS on a unix stream socket).
    """

    stdin: int | None = None
    stdout: int | None = None
    stderr: int | None = None
    console_socket: str | None = None


@dataclass
class RuntimeState:
    """What ``runc state`` reports: OCI status and the init pid on the host."""

    id: str
    status: str  # "creating" | "created" | "running" | "paused" | "stopped"
    pid: int
    bundle: str
    annotations: dict[str, str] = field(default_factory=dict)


class Runtime(abc.ABC):
    """An OCI runtime. ``state_dir`` is private to one dockyard state root (``runc --root``)."""

    name: str = "abstract"

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir

    @abc.abstractmethod
    def create(self, container_id: str, bundle: Path, stdio: Stdio) -> int:
        """Set up namespaces, rootfs, mounts and cgroup; the user process waits for ``start``.
        Returns the host pid of the container's init."""

    @abc.abstractmethod
    def start(self, container_id: str) -> None:
        """Let the created container's process exec its program."""

    def run(self, container_id: str, bundle: Path, stdio: Stdio) -> int:
        """create + start; returns the init's host pid."""
        pid = self.create(container_id, bundle, stdio)
        self.start(container_id)
        return pid

    @abc.abstractmethod
    def state(self, container_id: str) -> RuntimeState:
        """Raises dockyard.errors.NotFound if the runtime does not know the container."""

    @abc.abstractmethod
    def kill(self, container_id: str, signal: int, all_processes: bool = False) -> None:
        """Send a signal to the init (or every process in the container)."""

    @abc.abstractmethod
    def delete(self, container_id: str, force: bool = False) -> None:
        """Release everything the runtime holds for the container (cgroup, state)."""

    @abc.abstractmethod
    def exec(self, container_id: str, process: dict[str, Any], stdio: Stdio) -> int:
        """Start an extra process (an OCI ``process`` object) in all the container's namespaces
        and its cgroup; returns its host pid without waiting for it."""

    @abc.abstractmethod
    def pause(self, container_id: str) -> None: ...

    @abc.abstractmethod
    def resume(self, container_id: str) -> None: ...

    def update(self, container_id: str, resources: dict[str, Any]) -> None:
        """Change cgroup limits of a running container (OCI ``linux.resources``)."""
        raise NotImplementedError
