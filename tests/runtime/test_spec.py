"""The spec generator says what docker says: caps, paths, mounts, limits, namespaces, users."""
from __future__ import annotations

import glob
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from dockyard.errors import InvalidArgument, NotFound, Unsupported
from dockyard.runtime import capabilities, get_runtime
from dockyard.runtime.base import start_error_exit_code
from dockyard.runtime.paths import secure_join
from dockyard.runtime.spec import (DEFAULT_MASKED_PATHS, ContainerSpecOptions, Resources,
                                   bind_mount, exec_process, generate_spec, tmpfs_mount)
from dockyard.runtime.users import resolve_exec_user, resolve_group, resolve_user

DOCKER_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
               "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
               "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]


def spec_for(**kw) -> dict:
    return generate_spec(ContainerSpecOptions(container_id=kw.pop("container_id", "abc"), args=kw.pop("args", ["sh"]), **kw))


def by_dest(spec: dict) -> dict[str, dict]:
    return {m["destination"]: m for m in spec["mounts"]}


def test_defaults_are_dockers() -> None:
    s = spec_for(hostname="h1", env=["PATH=/bin"])
    caps = s["process"]["capabilities"]
    assert caps["bounding"] == caps["effective"] == caps["permitted"] == DOCKER_CAPS
    assert capabilities.mask(DOCKER_CAPS) == 0xA80425FB
    assert s["linux"]["maskedPaths"] == list(DEFAULT_MASKED_PATHS)
    assert "/sys/devices/virtual/powercap" in s["linux"]["maskedPaths"]
    assert s["linux"]["readonlyPaths"] == ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
    assert [n["type"] for n in s["linux"]["namespaces"]] == ["mount", "network", "uts", "pid", "ipc", "cgroup"]
    assert s["linux"]["cgroupsPath"] == "/dockyard/abc"
    assert s["hostname"] == "h1"
    assert s["process"]["noNewPrivileges"] is False
    assert s["process"]["terminal"] is False
    assert [m["destination"] for m in s["mounts"]] == ["/proc", "/dev", "/dev/pts", "/sys", "/sys/fs/cgroup",
                                                       "/dev/mqueue", "/dev/shm"]
    assert by_dest(s)["/sys"]["options"] == ["nosuid", "noexec", "nodev", "ro"]
    assert by_dest(s)["/dev/shm"]["options"][-1] == "size=67108864"
    assert s["linux"]["sysctl"] == {"net.ipv4.ip_unprivileged_port_start": "0",
                                    "net.ipv4.ping_group_range": "0 2147483647"}
    rules = s["linux"]["resources"]["devices"]
    assert rules[0] == {"allow": False, "access": "rwm"}
    assert {"allow": False, "type": "c", "major": 10, "minor": 229, "access": "rwm"} in rules
    assert "rlimits" not in s["process"]


def test_limits_follow_docker_flags() -> None:
    r = spec_for(resources=Resources(memory=64 << 20, cpus=1.5, cpu_shares=512, pids_limit=100))["linux"]["resources"]
    assert r["memory"] == {"limit": 64 << 20, "swap": 128 << 20}  # docker: swap as large as memory
    assert r["cpu"] == {"shares": 512, "period": 100000, "quota": 150000}
    assert r["pids"] == {"limit": 100}
    r = spec_for(resources=Resources(memory=64 << 20, memory_swap=-1, pids_limit=-1))["linux"]["resources"]
    assert r["memory"] == {"limit": 64 << 20, "swap": -1}
    assert r["pids"] == {"limit": -1}
    r = spec_for(resources=Resources(memory=64 << 20, memory_swap=100 << 20))["linux"]["resources"]
    assert r["memory"]["swap"] == 100 << 20


@pytest.mark.parametrize("res, message", [
    (Resources(memory=1 << 20), "Minimum memory limit allowed is 6MB"),
    (Resources(memory_swap=100 << 20), "You should always set the Memory limit when using Memoryswap limit"),
    (Resources(memory=64 << 20, memory_swap=32 << 20), "Minimum memoryswap limit should be larger than memory limit"),
    (Resources(cpus=0.5, cpu_period=50000), "Conflicting options: Nano CPUs and CPU Period cannot both be set"),
    (Resources(cpus=1000), "Range of CPUs is from 0.01 to"),
])
def test_bad_limits_are_refused_with_dockers_words(res: Resources, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        spec_for(resources=res)


def test_capability_add_and_drop() -> None:
    caps = spec_for(cap_add=["net_admin", "CAP_SYS_PTRACE"], cap_drop=["MKNOD", "cap_chown"])["process"]["capabilities"]
    assert "CAP_NET_ADMIN" in caps["bounding"] and "CAP_SYS_PTRACE" in caps["effective"]
    assert "CAP_MKNOD" not in caps["permitted"] and "CAP_CHOWN" not in caps["bounding"]
    assert spec_for(cap_drop=["ALL"], cap_add=["KILL"])["process"]["capabilities"]["bounding"] == ["CAP_KILL"]
    assert spec_for(cap_add=["ALL"])["process"]["capabilities"]["bounding"] == capabilities.all_capabilities()
    with pytest.raises(InvalidArgument, match="unknown capability"):
        spec_for(cap_add=["NOT_A_CAP"])


def test_privileged() -> None:
    s = spec_for(privileged=True)
    assert s["process"]["capabilities"]["bounding"] == capabilities.all_capabilities()
    assert "maskedPaths" not in s["linux"] and "readonlyPaths" not in s["linux"]
    assert s["linux"]["resources"]["devices"] == [{"allow": True, "access": "rwm"}]
    assert "ro" not in by_dest(s)["/sys"]["options"]
    assert any(d["path"] == "/dev/null" for d in s["linux"]["devices"])


def test_network_modes_and_netns_path() -> None:
    host = spec_for(network="host")
    assert "network" not in [n["type"] for n in host["linux"]["namespaces"]]
    assert host["linux"]["sysctl"] == {}
    joined = spec_for(netns_path="/run/netns/x")
    assert {"type": "network", "path": "/run/netns/x"} in joined["linux"]["namespaces"]
    uts_host = spec_for(uts="host", hostname="ignored")
    assert "hostname" not in uts_host


def test_user_mounts_etc_files_and_readonly_rootfs(tmp_path: Path) -> None:
    s = spec_for(readonly_rootfs=True, hosts_path="/x/hosts", hostname_path="/x/hostname",
                 resolv_conf_path="/x/resolv.conf",
                 mounts=[bind_mount("/srv/data", "/data/", readonly=True), tmpfs_mount("/run", "size=1m"),
                         tmpfs_mount("/dev/shm", "size=2m"), bind_mount("/srv/a", "/data/sub/a")])
    m = by_dest(s)
    assert s["root"]["readonly"] is True
    assert m["/etc/hosts"] == {"destination": "/etc/hosts", "type": "bind", "source": "/x/hosts",
                               "options": ["rbind", "rprivate", "ro"]}
    assert m["/data"]["options"] == ["rbind", "rprivate", "ro"]
    assert m["/run"]["options"] == ["noexec", "nosuid", "nodev", "rprivate", "size=1m"]
    assert m["/dev/shm"]["type"] == "tmpfs" and m["/dev/shm"]["options"][-1] == "size=2m"
    assert [x["destination"] for x in s["mounts"]].count("/dev/shm") == 1  # the user's replaces docker's
    dests = [x["destination"] for x in s["mounts"]]
    assert dests.index("/data") < dests.index("/data/sub/a")  # parents first
    with pytest.raises(InvalidArgument, match="must be absolute"):
        spec_for(mounts=[bind_mount("/a", "relative")])


def test_rlimits_init_and_annotations(tmp_path: Path) -> None:
    fake_init = tmp_path / "tini-static"
    fake_init.write_text("")
    s = spec_for(rlimits={"nofile": (1024, 2048)}, annotations={"k": "v"}, oom_score_adj=100,
                 sysctls={"net.core.somaxconn": "1024"}, init=True, init_path=str(fake_init),
                 no_new_privileges=True)
    assert s["process"]["rlimits"] == [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 2048}]
    assert s["annotations"] == {"k": "v"}
    assert s["process"]["oomScoreAdj"] == 100
    assert s["process"]["noNewPrivileges"] is True
    assert s["linux"]["sysctl"]["net.core.somaxconn"] == "1024"
    assert s["process"]["args"] == ["/sbin/docker-init", "--", "sh"]
    assert by_dest(s)["/sbin/docker-init"] == {"destination": "/sbin/docker-init", "type": "bind",
                                               "source": str(fake_init), "options": ["rbind", "rprivate", "ro"]}
    with pytest.raises(Unsupported, match="apt-get install tini"):
        spec_for(init=True, init_path=str(tmp_path / "missing"))
    with pytest.raises(InvalidArgument, match="invalid ulimit type"):
        spec_for(rlimits={"bogus": (1, 1)})
    with pytest.raises(InvalidArgument, match="soft limit must be less"):
        spec_for(rlimits={"nofile": (10, 5)})


def test_exec_process_merges_like_docker_exec() -> None:
    base = spec_for(env=["PATH=/bin", "A=1"], cwd="/app", uid=5, gid=6)["process"]
    p = exec_process(base, ["ls"], env=["A=2", "B=3"], tty=True)
    assert p["env"] == ["PATH=/bin", "A=2", "B=3"]
    assert p["cwd"] == "/app" and p["user"]["uid"] == 5 and p["terminal"] is True
    assert p["capabilities"] == base["capabilities"]
    p = exec_process(base, ["ls"], user=(0, 0, [0]), cwd="/", privileged=True)
    assert p["user"] == {"uid": 0, "gid": 0, "additionalGids": [0]}
    assert p["capabilities"]["bounding"] == capabilities.all_capabilities()
    assert base["args"] == ["sh"]  # the container's process is not changed


@pytest.fixture
def image_root(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"
                                     "nobody:x:65534:65534::/nonexistent:/bin/false\n")
    (root / "etc/group").write_text("root:x:0:\napp:x:1000:\nwheel:x:10:app,root\naudio:x:29:app\n"
                                    "nogroup:x:65534:\n")
    return root


@pytest.mark.parametrize("user, expected", [
    ("", (0, 0, [0, 10])),
    ("root", (0, 0, [0, 10])),
    ("app", (1000, 1000, [1000, 10, 29])),
    ("1000", (1000, 1000, [1000, 10, 29])),
    ("app:audio", (1000, 29, [29])),
    ("app:0", (1000, 0, [0])),
    ("4242", (4242, 0, [0])),
    ("4242:4343", (4242, 4343, [4343])),
])
def test_resolve_user(image_root: Path, user: str, expected: tuple) -> None:
    assert resolve_user(image_root, user) == expected


def test_resolve_user_errors_and_home(image_root: Path) -> None:
    with pytest.raises(InvalidArgument, match="^unable to find user nosuch: no matching entries in passwd file$"):
        resolve_user(image_root, "nosuch")
    with pytest.raises(InvalidArgument, match="^unable to find group nosuch: no matching entries in group file$"):
        resolve_user(image_root, "app:nosuch")
    with pytest.raises(InvalidArgument, match="uids and gids must be in range"):
        resolve_user(image_root, "99999999999")
    assert resolve_exec_user(image_root, "app").home == "/home/app"
    assert resolve_group(image_root, "audio") == 29 and resolve_group(image_root, "77") == 77


def test_image_symlinks_cannot_reach_host_files(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").symlink_to("../../../../../../etc/shadow")  # the host has one, the image not
    (root / "etc/group").symlink_to("/etc/group")
    with pytest.raises(InvalidArgument):
        resolve_user(root, "daemon")  # the host has "daemon"; the image does not
    assert secure_join(root, "/etc/passwd") == root / "etc/shadow"
    (root / "link").symlink_to("/..//etc/../..")
    assert secure_join(root, "/link/x") == root / "x"
    (root / "loop").symlink_to("loop")
    with pytest.raises(OSError):
        secure_join(root, "/loop/x")


@pytest.mark.parametrize("message, code", [
    ('exec: "x": executable file not found in $PATH', 127),
    ("executable file `x` not found in $PATH: No such file or directory", 127),
    ('exec: "/etc": permission denied', 126),
    ("open executable: Operation not permitted", 126),
    ("something else broke", 125),
])
def test_start_error_exit_codes(message: str, code: int) -> None:
    assert start_error_exit_code(message) == code


def test_unknown_runtime_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="^unknown or invalid runtime name: no-such-runtime$"):
        get_runtime("no-such-runtime", tmp_path)
    assert get_runtime(None, tmp_path).name == "builtin"


@pytest.mark.interop
def test_same_spec_as_docker(tmp_path: Path, docker_busybox: str) -> None:
    """What dockerd hands runc for the same flags: the parts we promise to match."""
    cid = subprocess.run(["docker", "run", "-d", "--rm", "--memory", "64m", "--cpus", "0.5", "--pids-limit", "50",
                          "--tmpfs", "/run:size=1m", docker_busybox, "sleep", "30"],
                         capture_output=True, text=True, check=True).stdout.strip()
    try:
        found: list[str] = []
        for _ in range(100):
            found = glob.glob(f"/run/docker/containerd/daemon/io.containerd.runtime.v2.task/moby/{cid}/config.json")
            if found:
                break
            time.sleep(0.05)
        if not found:
            pytest.skip("cannot find docker's config.json for the container")
        theirs = json.loads(Path(found[0]).read_text())
    finally:
        subprocess.run(["docker", "rm", "-f", cid], capture_output=True)
    ours = spec_for(container_id=cid, args=["sleep", "30"], resources=Resources(memory=64 << 20, cpus=0.5, pids_limit=50),
                    mounts=[tmpfs_mount("/run", "size=1m")])
    assert ours["process"]["capabilities"] == theirs["process"]["capabilities"]
    assert set(theirs["linux"]["maskedPaths"]) <= set(ours["linux"]["maskedPaths"])
    assert ours["linux"]["readonlyPaths"] == theirs["linux"]["readonlyPaths"]
    assert ours["linux"]["resources"]["devices"] == theirs["linux"]["resources"]["devices"]
    assert ours["linux"]["resources"]["memory"]["limit"] == theirs["linux"]["resources"]["memory"]["limit"]
    assert ours["linux"]["resources"]["memory"]["swap"] == theirs["linux"]["resources"]["memory"]["swap"]
    assert ours["linux"]["resources"]["pids"] == theirs["linux"]["resources"]["pids"]
    for key in ("quota", "period"):
        assert ours["linux"]["resources"]["cpu"][key] == theirs["linux"]["resources"]["cpu"][key]
    assert ours["linux"]["sysctl"] == theirs["linux"].get("sysctl", {})
    theirs_mounts = {m["destination"]: m for m in theirs["mounts"]}
    for dest, m in by_dest(ours).items():
        if dest in theirs_mounts:
            assert (m["type"], m["options"]) == (theirs_mounts[dest]["type"], theirs_mounts[dest]["options"]), dest
    assert set(theirs_mounts) - {"/etc/resolv.conf", "/etc/hostname", "/etc/hosts"} <= set(by_dest(ours))
    their_ns = {n["type"] for n in theirs["linux"]["namespaces"]}
    assert their_ns <= {n["type"] for n in ours["linux"]["namespaces"]}
    assert os.path.basename(theirs["linux"]["cgroupsPath"]) == os.path.basename(ours["linux"]["cgroupsPath"])
