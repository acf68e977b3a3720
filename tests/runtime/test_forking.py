"""The built-in runtime's fork into a container's cgroup (``dockyard.runtime.builtin.forking``):
clone3(CLONE_INTO_CGROUP) for the v2 hierarchy, the thread-only ``tasks`` move for v1, and the
plain fork + ``cgroup.procs`` fallback when clone3 is refused. Whatever the path, the child must
end up in the container's cgroup in every hierarchy, and so must everything it forks."""
from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from dockyard.runtime import cgroups
from dockyard.runtime.builtin import forking


@pytest.fixture
def cgroup() -> Iterator[cgroups.Cgroup]:
    cg = cgroups.Cgroup(f"/dockyard-test/forking-{uuid.uuid4().hex[:12]}")
    cg.create({})
    yield cg
    assert cg.remove(timeout=5)
    cgroups.remove("/dockyard-test")


def _membership(pid: int) -> dict[str, str]:
    """hierarchy key (as cgroups.Cgroup names them) -> the cgroup path of ``pid`` in it."""
    out = {}
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, ctrls, path = line.split(":", 2)
        out[ctrls or cgroups.UNIFIED] = path
    return out


def _fork_and_report(cg: cgroups.Cgroup) -> tuple[bool, dict[str, str], dict[str, str]]:
    """Fork with fork_child, join in the child, fork a grandchild; both report their cgroups."""
    r, w = os.pipe()
    pid, placed = forking.fork_child(cg)
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(r)
            forking.join_cgroup(cg, placed)
            hold_r, hold_w = os.pipe()
            grandchild = os.fork()
            if grandchild == 0:
                # stay alive until our cgroups are read: an exiting task is moved to the root cgroup
                os.close(hold_w)
                os.read(hold_r, 1)
                os._exit(0)
            os.close(hold_r)
            mine, its = _membership(os.getpid()), _membership(grandchild)
            os.close(hold_w)
            os.waitpid(grandchild, 0)
            os.write(w, repr((placed, mine, its)).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        data = f.read()
    os.waitpid(pid, 0)
    return eval(data)  # noqa: S307 - our own child's repr of two dicts


def _expected(cg: cgroups.Cgroup) -> dict[str, str]:
    present = _membership(os.getpid())
    return {key: cg.path for key in present if key in {h.key for h in cg.layout}}


@pytest.mark.parametrize("clone3", [True, False], ids=["clone3", "fork-fallback"])
def test_child_and_its_children_land_in_every_hierarchy(cgroup: cgroups.Cgroup, clone3: bool,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(forking, "_clone3_works", clone3)
    monkeypatch.setattr(forking, "_single_threaded", lambda: True)  # earlier tests may leave idle threads
    placed, child, grandchild = _fork_and_report(cgroup)
    assert placed == (clone3 and cgroup.unified is not None)
    expected = _expected(cgroup)
    assert expected, "no cgroup hierarchy found"
    assert {k: child[k] for k in expected} == expected
    assert {k: grandchild[k] for k in expected} == expected
    assert _membership(os.getpid()) != child  # the caller stays where it was


def test_refused_clone3_falls_back_to_fork(cgroup: cgroups.Cgroup, monkeypatch: pytest.MonkeyPatch) -> None:
    """A kernel or seccomp filter that refuses clone3 (ENOSYS/EPERM) is remembered; the start
    still succeeds through fork + cgroup.procs."""
    def refuse(_fd: int) -> int:
        raise OSError(38, "clone3: Function not implemented")

    monkeypatch.setattr(forking, "_clone3_works", True)
    monkeypatch.setattr(forking, "_single_threaded", lambda: True)
    monkeypatch.setattr(forking, "_clone_into", refuse)
    placed, child, _ = _fork_and_report(cgroup)
    assert not placed
    assert forking._clone3_works is False
    expected = _expected(cgroup)
    assert {k: child[k] for k in expected} == expected


def test_threaded_parent_children_never_hang_in_setgroups(cgroup: cgroups.Cgroup,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A parallel build forks container inits while other threads start and stop. A raw clone3
    there left the child holding glibc's thread-stack lock as another thread had it, and its
    ``setgroups`` (which takes that lock) hung for ever. With other threads alive the fork must
    go through glibc (``os.fork``): every child gets through setgroups/setresgid at once."""
    import threading
    import time

    monkeypatch.setattr(forking, "_clone3_works", True)
    stop = threading.Event()

    def churn() -> None:  # thread creation and exit take the stack lock all the time
        while not stop.is_set():
            t = threading.Thread(target=lambda: None)
            t.start()
            t.join()

    churners = [threading.Thread(target=churn) for _ in range(2)]
    for t in churners:
        t.start()
    hung = 0
    try:
        for _ in range(150):
            pid, placed = forking.fork_child(cgroup)
            if pid == 0:  # pragma: no cover - the child
                try:
                    forking.join_cgroup(cgroup, placed)
                    os.setgroups([0])
                    os.setresgid(0, 0, 0)
                finally:
                    os._exit(0)
            assert not placed, "clone3 used while other threads run"
            deadline = time.monotonic() + 5
            while os.waitpid(pid, os.WNOHANG) == (0, 0):
                if time.monotonic() > deadline:
                    hung += 1
                    os.kill(pid, 9)
                    os.waitpid(pid, 0)
                    break
                time.sleep(0.002)
    finally:
        stop.set()
        for t in churners:
            t.join()
    assert hung == 0


def test_single_threaded_parent_still_uses_clone3(cgroup: cgroups.Cgroup, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast path stays for the CLI and the monitor, which fork from one thread."""
    if cgroup.unified is None:
        pytest.skip("no cgroup v2 hierarchy: clone3(CLONE_INTO_CGROUP) does not apply")
    monkeypatch.setattr(forking, "_clone3_works", True)
    if not forking._single_threaded():
        pytest.skip("the test process runs other threads")
    placed, _, _ = _fork_and_report(cgroup)
    assert placed


def test_thread_count_is_seen(monkeypatch: pytest.MonkeyPatch) -> None:
    """``_single_threaded`` tells one thread from several (procfs's link count)."""
    import threading

    hold = threading.Event()
    t = threading.Thread(target=hold.wait)
    t.start()
    try:
        assert not forking._single_threaded()
    finally:
        hold.set()
        t.join()
