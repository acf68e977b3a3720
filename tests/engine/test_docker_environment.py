"""What a program sees inside the container, side by side with docker on the same rootfs:
capabilities and seccomp in /proc/self/status, the mount table (types, options, order), /dev,
rlimits, identity, the oom score. Both run with ``--network none`` so only the runtime differs.
Run on the built-in runtime and runc (docker's runtime; crun lays out /sys/fs/cgroup and /dev
its own way, so it is compared with nothing here)."""
from __future__ import annotations

import os
import re
import subprocess

import pytest

from tests.conftest import docker_available

pytestmark = pytest.mark.interop

COMMANDS = {
    "status": "grep -E '^(Cap|NoNewPrivs|Seccomp)' /proc/self/status",
    "mounts": "cat /proc/mounts",
    "dev": "ls -la /dev /dev/pts /dev/shm /dev/mqueue | sed 's/ [A-Z][a-z][a-z] [ 0-9][0-9] [ 0-9:]*[0-9] / DATE /'",
    "id": "id; umask",
    "limits": "ulimit -a",
    "oom": "cat /proc/self/oom_score_adj /proc/sys/net/ipv4/ip_unprivileged_port_start",
    "files": "stat -c '%n %a %U %G' /etc/hosts /etc/resolv.conf /etc/hostname /proc /sys /dev",
    "loopback": "ip link show lo | head -1; ip addr show lo | grep inet",
    "markers": "stat -c '%n %a %F %s %N' /.dockerenv /etc/mtab; df / | tail -1 | cut -c1-8",
}


def _normalise(name: str, text: str) -> str:
    if name == "mounts":  # the rootfs line names each engine's own layer directories
        text = re.sub(r"^overlay / overlay \S+", "overlay / overlay OPTIONS", text, flags=re.M)
        text = re.sub(r"^(\S+) (/etc/(?:hosts|hostname|resolv.conf)) ", r"DEVICE \2 ", text, flags=re.M)
    return text


@pytest.fixture
def docker_rootfs_image(docker_busybox: str) -> str:
    return docker_busybox


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_container_sees_what_docker_shows(dy, runtime, docker_rootfs_image, name):
    if not docker_available():
        pytest.skip("docker CLI or daemon not available")
    if runtime == "crun":
        pytest.skip("docker runs runc; crun's own /sys/fs/cgroup and /dev differ by design")
    cmd = COMMANDS[name]
    ours = dy("run", "--rm", "--network", "none", "busybox", "sh", "-c", cmd)
    theirs = subprocess.run(["docker", "run", "--rm", "--network", "none", docker_rootfs_image, "sh", "-c", cmd],
                            capture_output=True, text=True, timeout=120)
    assert theirs.returncode == 0, theirs.stderr
    assert ours.returncode == 0, ours.stderr
    assert _normalise(name, ours.stdout) == _normalise(name, theirs.stdout)


def test_exec_in_a_missing_directory_fails_as_runc_does(dy, runtime, docker_rootfs_image):
    if not docker_available():
        pytest.skip("docker CLI or daemon not available")
    if runtime != "builtin":
        pytest.skip("runc and crun also print their error on the exec's own stderr")
    name = f"dy-cwd-{runtime}"
    dy.run_d("--name", name, "busybox", "sleep", "30")
    theirs_id = subprocess.run(["docker", "run", "-d", "--network", "none", docker_rootfs_image, "sleep", "30"],
                               capture_output=True, text=True, check=True).stdout.strip()
    try:
        ours = dy("exec", "-w", "/nonexist", name, "true")
        theirs = subprocess.run(["docker", "exec", "-w", "/nonexist", theirs_id, "true"], capture_output=True, text=True)
        assert (ours.returncode, ours.stdout + ours.stderr) == (theirs.returncode, theirs.stdout + theirs.stderr)
    finally:
        dy("rm", "-f", name)
        subprocess.run(["docker", "rm", "-f", theirs_id], capture_output=True)


FLAG_CASES = [
    (["--oom-score-adj", "100"], "cat /proc/self/oom_score_adj"),
    (["--oom-score-adj", "2000"], "true"),
    (["--memory-swappiness", "10"], "cat /sys/fs/cgroup/memory/memory.swappiness 2>/dev/null || echo v2"),
    (["--device-cgroup-rule", "c 10:229 rwm"], "grep 10:229 /sys/fs/cgroup/devices/devices.list || echo v2"),
    (["--device-cgroup-rule", "x"], "true"),
    (["--userns", "host", "--isolation", "default", "--volume-driver", "local"], "echo ok"),
    (["--userns", "foo"], "true"),
    (["--isolation", "hyperv"], "true"),
    (["--storage-opt", "size=1G"], "true"),
    (["--disable-content-trust"], "echo trusted-flag-takes-no-value"),
]


@pytest.mark.parametrize("flags, cmd", FLAG_CASES, ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_run_flags_as_docker(dy, docker_rootfs_image, flags, cmd):
    """The less common run flags: applied, or refused with docker's message and exit code."""
    if not docker_available():
        pytest.skip("docker CLI or daemon not available")
    ours = dy("run", "--rm", "--network", "none", *flags, "busybox", "sh", "-c", cmd)
    theirs = subprocess.run(["docker", "run", "--rm", "--network", "none", *flags, docker_rootfs_image, "sh", "-c", cmd],
                            capture_output=True, text=True, timeout=120)
    assert ours.returncode == theirs.returncode, (ours.stderr, theirs.stderr)
    assert ours.stdout == theirs.stdout
    assert ours.stderr == theirs.stderr.replace("docker", "dockyard")


@pytest.mark.parametrize("flags", [
    ["--dns", "1.1.1.1", "--dns-search", "example.com"],
    ["--dns-opt", "ndots:2", "--dns", "9.9.9.9"],
    ["--dns-search", "example.com"],
], ids=lambda f: " ".join(f))
def test_dns_flags_write_resolv_conf_as_docker(dy, docker_rootfs_image, flags):
    """On a user network the embedded server stays the nameserver (the --dns servers are its
    upstreams); with --network none the given servers are written as they are."""
    if not docker_available():
        pytest.skip("docker CLI or daemon not available")
    net = f"dy-dns-{os.getpid()}"
    dy.ok("network", "create", "--subnet", "10.249.7.0/24", net)
    subprocess.run(["docker", "network", "create", "--subnet", "10.249.7.0/24", net], check=True, capture_output=True)
    try:
        for mode in (net, "none"):
            ours = dy.ok("run", "--rm", "--network", mode, *flags, "busybox", "cat", "/etc/resolv.conf")
            theirs = subprocess.run(["docker", "run", "--rm", "--network", mode, *flags, docker_rootfs_image,
                                     "cat", "/etc/resolv.conf"], capture_output=True, text=True, check=True).stdout
            assert ours == theirs, mode
    finally:
        dy("network", "rm", net)
        subprocess.run(["docker", "network", "rm", net], capture_output=True)


def test_exec_gets_the_containers_oom_score_adj(dy, runtime):
    """As with runc and docker: an exec'd process is as killable by the OOM killer as the container."""
    if runtime == "crun":
        pytest.skip("crun's exec leaves oom_score_adj alone (the process.json's oomScoreAdj is not applied)")
    name = f"dy-oom-{runtime}"
    dy.run_d("--name", name, "--oom-score-adj", "100", "busybox", "sleep", "30")
    try:
        assert dy.ok("exec", name, "cat", "/proc/self/oom_score_adj") == "100\n"
    finally:
        dy("rm", "-f", name)
