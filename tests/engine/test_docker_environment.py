"""What a program sees inside the container, side by side with docker on the same rootfs:
capabilities and seccomp in /proc/self/status, the mount table (types, options, order), /dev,
rlimits, identity, the oom score. Both run with ``--network none`` so only the runtime differs.
Run on the built-in runtime and runc (docker's runtime; crun lays out /sys/fs/cgroup and /dev
its own way, so it is compared with nothing here)."""
from __future__ import annotations

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
