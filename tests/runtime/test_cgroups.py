"""cgroup layout detection, and the OCI resources → cgroup file values for v1 and v2.

The v1 files are checked on this host's real hierarchies. This host has no v2 controllers, so
the v2 translation is checked on a directory laid out like a cgroup2 tree (the same code writes
the same files; only the kernel's enforcement is missing, which the lifecycle suite covers on v1).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.runtime import cgroups
from dockyard.runtime.cgroups import UNIFIED, Cgroup, Hierarchy, parse_mountinfo, shares_to_weight

MOUNTINFO = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
50 23 0:50 / /mnt/again rw,relatime - cgroup cgroup rw,memory
"""


def test_parse_mountinfo_hybrid_layout() -> None:
    found = {h.key: h for h in parse_mountinfo(MOUNTINFO)}
    assert set(found) == {"cpu,cpuacct", "memory", "name=systemd", UNIFIED}
    assert found["cpu,cpuacct"].controllers == {"cpu", "cpuacct"}
    assert found["memory"].mountpoint == Path("/sys/fs/cgroup/memory")  # the first mount wins
    assert found["name=systemd"].controllers == frozenset()
    assert found[UNIFIED].version == 2


def test_this_hosts_layout_gives_every_controller_a_home() -> None:
    cg = Cgroup("/dockyard/layout-probe")
    for ctrl in ("memory", "cpu", "pids"):
        assert cg.dir_for(ctrl) is not None, ctrl
    assert not cg.exists()


@pytest.mark.skipif(cgroups.is_v2(), reason="checks the v1 files of a v1/hybrid host")
def test_v1_limits_land_in_the_right_files() -> None:
    cg = Cgroup("/dockyard/v1-files-probe")
    try:
        cg.create({"memory": {"limit": 48 << 20, "swap": 96 << 20}, "cpu": {"shares": 256, "quota": 25000,
                                                                        "period": 100000},
                   "pids": {"limit": 33}, "devices": [{"allow": False, "access": "rwm"}]})
        mem, cpu, pids = cg.dir_for("memory"), cg.dir_for("cpu"), cg.dir_for("pids")
        assert (mem / "memory.limit_in_bytes").read_text().strip() == str(48 << 20)
        if (mem / "memory.memsw.limit_in_bytes").exists():
            assert (mem / "memory.memsw.limit_in_bytes").read_text().strip() == str(96 << 20)
        assert (cpu / "cpu.shares").read_text().strip() == "256"
        assert (cpu / "cpu.cfs_quota_us").read_text().strip() == "25000"
        assert (pids / "pids.max").read_text().strip() == "33"
        allowed = (cg.dir_for("devices") / "devices.list").read_text().split("\n")
        assert "c 1:3 rwm" in allowed and "c 136:* rwm" in allowed and "c 10:229 rwm" not in allowed
        cg.apply({"memory": {"limit": 200 << 20, "swap": 400 << 20}})  # growing: memsw must move first
        assert (mem / "memory.limit_in_bytes").read_text().strip() == str(200 << 20)
        stats = cg.stats()
        assert stats["memory"]["limit"] == 200 << 20 and stats["pids"] == {"current": 0, "limit": 33}
        assert stats["oom_kill"] == 0
    finally:
        assert cg.remove()
    assert not cg.exists()


@pytest.fixture
def fake_v2(tmp_path: Path) -> Path:
    root = tmp_path / "cgroup2"
    root.mkdir()
    (root / "cgroup.subtree_control").write_text("")
    return root


def test_v2_translation(fake_v2: Path) -> None:
    layout = [Hierarchy(fake_v2, frozenset({"cpu", "memory", "pids", "io"}), 2, UNIFIED)]
    cg = Cgroup("/dockyard/c1", layout)
    d = fake_v2 / "dockyard" / "c1"
    d.mkdir(parents=True)
    (fake_v2 / "dockyard" / "cgroup.subtree_control").write_text("")
    for f in ("memory.max", "memory.swap.max", "cpu.weight", "cpu.max", "pids.max", "cgroup.freeze"):
        (d / f).write_text("")
    cg.create({"memory": {"limit": 64 << 20, "swap": 128 << 20}, "cpu": {"shares": 1024, "quota": 50000,
                                                                      "period": 100000},
               "pids": {"limit": -1}})
    assert (d / "memory.max").read_text() == str(64 << 20)
    assert (d / "memory.swap.max").read_text() == str(64 << 20)  # v2 counts swap alone
    assert (d / "cpu.weight").read_text() == str(shares_to_weight(1024)) == "39"
    assert (d / "cpu.max").read_text() == "50000 100000"
    assert (d / "pids.max").read_text() == "max"
    assert "+memory" in (fake_v2 / "cgroup.subtree_control").read_text()
    assert "+pids" in (fake_v2 / "dockyard" / "cgroup.subtree_control").read_text()
    cg.apply({"memory": {"limit": 64 << 20, "swap": -1}})
    assert (d / "memory.swap.max").read_text() == "max"
    (d / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    assert cg.oom_kill_count() == 1
    (d / "cpu.stat").write_text("usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n")
    (d / "memory.current").write_text("4096\n")
    stats = cg.stats()
    assert stats["cpu"]["usage_ns"] == 1_500_000 and stats["memory"]["usage"] == 4096
    assert stats["pids"]["limit"] is None


def test_shares_to_weight_matches_runc() -> None:
    assert shares_to_weight(2) == 1
    assert shares_to_weight(262144) == 10000
    assert shares_to_weight(1024) == 39


def _cgroup2_mount() -> Path | None:
    for h in cgroups.hierarchies():
        if h.version == 2:
            return h.mountpoint
    return None


@pytest.mark.skipif(_cgroup2_mount() is None, reason="no cgroup2 hierarchy mounted")
def test_v2_device_filter_enforces_dockers_rules(tmp_path: Path) -> None:
    """The eBPF device program (cgroup v2's device allow-list) on this host's cgroup2 mount."""
    import os

    from dockyard.runtime import devicefilter
    from dockyard.runtime.spec import DEFAULT_DEVICE_RULES

    cg = _cgroup2_mount() / "dockyard-devicefilter-test"  # type: ignore[operator]
    cg.mkdir()
    try:
        devicefilter.attach(cg, cgroups.effective_device_rules([dict(r) for r in DEFAULT_DEVICE_RULES]))
        nodes = {"null": (1, 3), "full": (1, 7), "loop0": (7, 0), "mem": (1, 1), "fuse": (10, 229)}
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            results = []
            try:
                (cg / "cgroup.procs").write_text("0")
                for name, (major, minor) in nodes.items():
                    path = tmp_path / name
                    kind = 0o060000 if name == "loop0" else 0o020000
                    os.mknod(path, kind | 0o600, os.makedev(major, minor))
                    try:
                        os.close(os.open(path, os.O_RDONLY))
                        results.append(f"{name}=open")
                    except PermissionError:
                        results.append(f"{name}=denied")
            finally:
                os.write(w, " ".join(results).encode())
                os._exit(0)
        os.close(w)
        os.waitpid(pid, 0)
        out = os.read(r, 1000).decode().split()
        os.close(r)
        assert out == ["null=open", "full=open", "loop0=denied", "mem=denied", "fuse=denied"]
    finally:
        cg.rmdir()


def test_device_filter_program_shape() -> None:
    from dockyard.runtime.devicefilter import compile_rules

    deny_all = compile_rules([{"allow": False, "access": "rwm"}])
    assert len(deny_all) == 8 * 8  # 6 loads + verdict + exit, no unreachable default
    allow_null = compile_rules([{"allow": False, "access": "rwm"},
                                {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"}])
    assert len(allow_null) == 8 * (6 + 3 + 2 + 2)
