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
    monkeypatch.setattr(forking, "_clone_into", refuse)
    placed, child, _ = _fork_and_report(cgroup)
    assert not placed
    assert forking._clone3_works is False
    expected = _expected(cgroup)
    assert {k: child[k] for k in expected} == expected
