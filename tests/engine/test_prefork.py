"""The monitor started ahead of need (``dockyard.engine.prefork``): ``run`` hands it the container;
a CLI that fails first leaves nothing behind; a pre-forked monitor that died is replaced by an
ordinary one."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

from tests.conftest import REPO

SCRIPT = """
import os, signal, sys
from dockyard.engine import prefork
prefork.start()
pid = prefork._waiting[0]
if sys.argv[1] == "kill":
    os.kill(pid, signal.SIGKILL)
import dockyard
from dockyard.engine import monitor
handed = []
real = prefork.hand_over
prefork.hand_over = lambda *a: handed.append(real(*a)) or handed[-1]
with dockyard.Client() as client:
    c = client.containers.create({"Image": "busybox", "Cmd": ["sleep", "300"],
                                  "HostConfig": {"NetworkMode": "none"}}, "pf-" + sys.argv[1])
    client.containers.start(c.id)
    print(handed[0], client.containers.load(c.id).status, int(os.path.exists(f"/proc/{pid}")))
"""


def _script(root, mode: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, cwd=str(REPO),
                         env={**os.environ, "DOCKYARD_ROOT": str(root)}, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_start_hands_the_container_to_the_preforked_monitor(dy, root) -> None:
    assert _script(root, "use") == ["True", "running", "0"]  # handed over; the waiting process is done
    assert dy.ok("exec", "pf-use", "echo", "ok") == "ok\n"


def test_a_dead_preforked_monitor_is_replaced(dy, root) -> None:
    assert _script(root, "kill") == ["False", "running", "0"]
    assert dy.ok("exec", "pf-kill", "echo", "ok") == "ok\n"


def test_a_failed_run_leaves_no_waiting_process(dy) -> None:
    marker = f"nosuch-{uuid.uuid4().hex[:8]}"
    p = dy("run", "--pull", "never", "--rm", f"{marker}:latest", "true")
    assert p.returncode == 125 and f"No such image: {marker}:latest" in p.stderr

    def waiting() -> list[str]:
        found = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if marker.encode() in f.read():
                        found.append(pid)
            except OSError:
                continue
        return found

    deadline = time.monotonic() + 5
    while waiting() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert waiting() == []
