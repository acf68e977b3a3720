"""Clean up after builds that were killed (kill -9, power loss) before they could clean up.

Every resource a build makes carries the pid of the building process in its name: active
snapshots ``build-<pid>-<hex>``, runtime containers ``dyb-<pid>-<hex>``, scratch directories
``<root>/build/tmp/<pid>-<hex>``. The next build that needs snapshots removes those whose
process is gone: it stops and deletes the container, unmounts and removes the snapshot, and
deletes the directory.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any


def owner_pid(name: str, prefix: str) -> int | None:
    """The pid in ``<prefix><pid>-<hex>``, or None."""
    if not name.startswith(prefix):
        return None
    head = name[len(prefix):].split("-", 1)[0]
    return int(head) if head.isdigit() else None


def _stale(name: str, prefix: str) -> bool:
    pid = owner_pid(name, prefix)
    from dockyard.content.store import _pid_alive

    return pid is not None and pid != os.getpid() and not _pid_alive(pid)


def reap(build_dir: Path, snapshots: Any, runtime_name: str | None) -> None:
    """Remove what dead builds left behind. Never raises: it is housekeeping."""
    runtime_dir = build_dir / "runtime"
    try:
        stale_containers = [d.name for d in runtime_dir.iterdir() if _stale(d.name, "dyb-")] \
            if runtime_dir.is_dir() else []
    except OSError:
        stale_containers = []
    if stale_containers:
        try:
            from dockyard.runtime import get_runtime

            runtime = get_runtime(runtime_name, runtime_dir)
            for cid in stale_containers:
                try:
                    runtime.delete(cid, force=True)
                except Exception:  # noqa: BLE001
                    shutil.rmtree(runtime_dir / cid, ignore_errors=True)
        except Exception:  # noqa: BLE001
            pass
    try:
        for info in snapshots.list():
            if info.kind == "active" and info.key and _stale(info.key, "build-"):
                try:
                    snapshots.remove(info.key)
                except Exception:  # noqa: BLE001
                    pass
    except Exception:  # noqa: BLE001
        pass
    tmp = build_dir / "tmp"
    if tmp.is_dir():
        from dockyard.snapshot import mounts

        for d in tmp.iterdir():
            if not _stale(d.name, ""):
                continue
            try:
                for target in sorted((m for m in mounts.mount_points() if m.startswith(str(d) + "/")),
                                     key=len, reverse=True):
                    mounts.unmount(target)
            except Exception:  # noqa: BLE001
                pass
            shutil.rmtree(d, ignore_errors=True)
