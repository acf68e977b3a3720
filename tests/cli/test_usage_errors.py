"""Usage mistakes, side by side with the docker CLI: a missing or extra argument, an unknown
flag or command, a flag without its value. Same exit code (1 for arguments and commands, 125 for
flags) and the same message, "docker" read as "dockyard"."""
from __future__ import annotations

import subprocess

import pytest

from tests.conftest import docker_available

pytestmark = pytest.mark.interop

CASES = [
    ("foo",), ("container", "foo"), ("image", "foo"),
    ("run",), ("logs",), ("logs", "a", "b"), ("rm",), ("tag", "a"), ("exec",), ("exec", "a"),
    ("ps", "--bogus"), ("ps", "-z"), ("ps", "--filter"), ("images", "--format"), ("image", "ls", "--bogus"),
    ("pull",), ("push",), ("inspect",), ("network", "create"), ("volume", "rm"), ("save",),
]


@pytest.mark.parametrize("args", CASES, ids=lambda a: " ".join(a))
def test_usage_errors_as_docker(cli, args):
    if not docker_available():
        pytest.skip("docker CLI or daemon not available")
    mine = cli(*args, input="")
    theirs = subprocess.run(["docker", *args], input="", capture_output=True, text=True, timeout=60)
    assert mine.returncode == theirs.returncode
    assert mine.stdout == theirs.stdout.replace("docker", "dockyard")
    assert mine.stderr == theirs.stderr.replace("docker", "dockyard")
