"""--format mistakes, side by side with the docker CLI on the same image: a field the row type
lacks, a key a struct lacks, a key a map lacks, a template that does not parse. Same stderr line
(docker's Go type names included), same stdout, same exit code."""
from __future__ import annotations

import json
import subprocess

import pytest

from tests.conftest import docker_available

pytestmark = pytest.mark.interop


@pytest.fixture
def both(cli, busybox, docker_busybox):
    """(dockyard, docker) runners over the same busybox rootfs, both tagged fmt-err:latest."""
    cli("tag", "busybox", "fmt-err:latest", check=True)
    subprocess.run(["docker", "tag", docker_busybox, "fmt-err:latest"], check=True, capture_output=True)

    def docker(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=60)

    try:
        yield cli, docker
    finally:
        subprocess.run(["docker", "rmi", "fmt-err:latest"], capture_output=True)


@pytest.mark.parametrize("args", [
    ("images", "--format", "{{.Nope}}", "fmt-err"),
    ("images", "--format", "table {{.ID}}\t{{.Nope}}", "fmt-err"),
    ("images", "--format", "{{.ID", "fmt-err"),
    ("image", "inspect", "--format", "{{.Config.Nope}}", "fmt-err"),
    ("image", "inspect", "--format", "{{.Os}}{{.Nope}}", "fmt-err", "fmt-err"),
    ("image", "inspect", "--format", "{{.Config.Labels.nope}}|{{json .Config.Labels}}", "fmt-err"),
    ("image", "inspect", "--format", "{{.Os", "fmt-err"),
    ("inspect", "--format", "{{.Os}}", "fmt-err", "no-such-object-here"),
    ("history", "--format", "{{.Nope}}", "fmt-err"),
    ("info", "--format", "{{.Nope}}"),
    ("version", "--format", "{{.Nope}}"),
    ("info", "--format", "{{.Driver}} {{.OSType}} {{.Swarm.LocalNodeState}} {{.LoggingDriver}} {{.CgroupDriver}}"),
])
def test_format_errors_as_docker(both, args):
    ours, docker = both
    mine, theirs = ours(*args), docker(*args)
    assert (mine.returncode, mine.stdout, mine.stderr) == (theirs.returncode, theirs.stdout, theirs.stderr)


def test_volume_and_network_rows_have_dockers_fields(cli):
    if not docker_available():
        pytest.skip("docker CLI or daemon not available")
    name = "dy-fmt-fields-vol"
    cli("volume", "create", "--label", "a=b", name, check=True)
    subprocess.run(["docker", "volume", "create", "--label", "a=b", name], check=True, capture_output=True)
    try:
        for args in (["volume", "ls", "--filter", f"name={name}"], ["network", "ls", "--filter", "name=bridge"]):
            mine = json.loads(cli(*args, "--format", "json", check=True).stdout.splitlines()[0])
            theirs = json.loads(subprocess.run(["docker", *args, "--format", "json"], check=True,
                                               capture_output=True, text=True).stdout.splitlines()[0])
            assert sorted(mine) == sorted(theirs), args
            template = '{{.Label "a"}}|{{.Scope}}|{{.Driver}}'
            mine_line = cli(*args, "--format", template, check=True).stdout
            theirs_line = subprocess.run(["docker", *args, "--format", template], check=True,
                                         capture_output=True, text=True).stdout
            assert mine_line == theirs_line, args
    finally:
        cli("volume", "rm", name)
        subprocess.run(["docker", "volume", "rm", name], capture_output=True)
