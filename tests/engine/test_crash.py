"""Crash safety: kill -9 of the CLI or of a monitor, and what the next command makes of it."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from dockyard.engine.containers import MONITOR_GONE


def monitor_pid(root: Path, cid: str) -> int:
    """The process holding the container's monitor.lock (the monitor)."""
    lock = str(root / "containers" / cid / "monitor.lock")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            for fd in os.listdir(f"/proc/{entry}/fd"):
                if os.readlink(f"/proc/{entry}/fd/{fd}") == lock:
                    return int(entry)
        except OSError:
            continue
    raise AssertionError(f"no monitor holds {lock}")


def alive(pid: int) -> bool:
    """Running (a zombie waiting for whatever init reaps orphans counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_kill_monitor_marks_container_exited_with_reason(dy, root):
    cid = dy.run_d("--name", "victim", "busybox", "sleep", "60")
    init = dy.state("victim")["Pid"]
    os.kill(monitor_pid(root, cid), signal.SIGKILL)
    time.sleep(0.1)
    out = dy.ok("ps", "-a", "--format", "{{.Names}} {{.Status}}")
    assert out.startswith("victim Exited (255)")
    st = dy.state("victim")
    assert (st["Status"], st["Running"], st["ExitCode"], st["Error"]) == ("exited", False, 255, MONITOR_GONE)
    assert not alive(init), "the orphaned container process was not stopped"
    dy.ok("start", "victim")  # and it can run again
    assert dy.state("victim")["Running"]


def test_kill_cli_during_foreground_run_leaves_container_running(dy, root, cli):
    env = dict(os.environ, DOCKYARD_ROOT=str(root))
    proc = subprocess.Popen([sys.executable, "-m", "dockyard", "run", "--name", "fg", "--network", "none", "busybox",
                             "sh", "-c", "echo up; sleep 60"], stdout=subprocess.PIPE, env=env)
    assert proc.stdout.readline() == b"up\n"
    proc.kill()
    proc.wait()
    time.sleep(0.2)
    assert dy.ok("ps", "--format", "{{.Names}} {{.State}}") == "fg running\n"
    assert dy.ok("logs", "fg") == "up\n"


def test_kill_cli_during_run_detach_and_create(dy, root):
    env = dict(os.environ, DOCKYARD_ROOT=str(root))
    for i in range(4):  # kill at different moments: the store stays consistent whatever happens
        proc = subprocess.Popen([sys.executable, "-m", "dockyard", "run", "-d", "--name", f"k{i}", "--network", "none",
                                 "busybox", "sleep", "60"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        time.sleep(0.03 * (i + 1) * 2)
        proc.kill()
        proc.wait()
    rows = dy.ok("ps", "-a", "--format", "{{.Names}} {{.State}}").splitlines()
    for row in rows:
        name, state = row.split()
        assert state in ("created", "running"), row
    for row in rows:
        name = row.split()[0]
        dy.ok("rm", "-f", name)
    assert dy.ok("ps", "-aq") == ""
    for i in range(4):  # names of killed creates are free again
        dy.ok("create", "--name", f"k{i}", "--network", "none", "busybox", "true")


def test_reconcile_after_reboot_and_restore(dy, root, client):
    """Monitors all gone (a reboot): the next command reconciles; restore() restarts 'always'."""
    a = dy.run_d("--name", "always", "--restart", "always", "busybox", "sleep", "60")
    b = dy.run_d("--name", "plain", "busybox", "sleep", "60")
    u = dy.run_d("--name", "unless", "--restart", "unless-stopped", "busybox", "sleep", "60")
    dy.run_d("--name", "stopped", "--restart", "unless-stopped", "busybox", "sleep", "60")
    dy.ok("stop", "-t", "0", "stopped")  # stopped by hand: stays stopped
    for cid in (a, b, u):
        os.kill(monitor_pid(root, cid), signal.SIGKILL)
    time.sleep(0.1)
    rows = dict(r.split(" ", 1) for r in dy.ok("ps", "-a", "--format", "{{.Names}} {{.Status}}").splitlines())
    assert rows["always"].startswith("Exited (255)") and rows["plain"].startswith("Exited (255)")
    started = client.containers.restore()
    assert sorted(started) == sorted([a, u])
    rows = dict(r.split(" ", 1) for r in dy.ok("ps", "-a", "--format", "{{.Names}} {{.Status}}").splitlines())
    assert rows["always"].startswith("Up") and rows["unless"].startswith("Up")
    assert rows["plain"].startswith("Exited (255)") and rows["stopped"].startswith("Exited (137)")


def test_interrupted_removal_is_finished_by_next_command(dy, root, client):
    cid = dy.ok("create", "--name", "half", "--network", "none", "busybox", "true").strip()
    store = client.containers.store
    rec = store.load(cid)
    store.begin_remove(rec)  # what rm does first; then "crash"
    assert dy.ok("ps", "-aq") == ""
    assert not (root / "containers" / f".removing-{cid}").exists()
    dy.ok("create", "--name", "half", "--network", "none", "busybox", "true")


def test_rm_f_puts_down_a_stray_lock_holder(dy, root):
    """A monitor that died leaving its lock to a child that never exec'd: rm -f still works."""
    cid = dy.run_d("--name", "stuck", "busybox", "sleep", "60")
    lock = root / "containers" / cid / "monitor.lock"
    os.kill(monitor_pid(root, cid), signal.SIGKILL)
    holder = subprocess.Popen([sys.executable, "-c",
                               "import fcntl, os, sys, time\n"
                               f"fd = os.open({str(lock)!r}, os.O_RDWR)\n"
                               "while True:\n"
                               "    try:\n"
                               "        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB); break\n"
                               "    except BlockingIOError: time.sleep(0.01)\n"
                               "print('held', flush=True); time.sleep(60)\n"], stdout=subprocess.PIPE)
    assert holder.stdout.readline() == b"held\n"
    t0 = time.monotonic()
    dy.ok("rm", "-f", "stuck")
    assert time.monotonic() - t0 < 20
    assert holder.wait(timeout=5) == -signal.SIGKILL
    assert dy.ok("ps", "-aq") == ""
