"""``dockyard volume`` and ``dockyard network`` verbs: docker's output formats, messages, exit codes."""
from __future__ import annotations

import json


def test_volume_verbs(cli):
    assert cli("volume", "create", "--label", "a=b", "site").stdout == "site\n"
    assert cli("volume", "ls").stdout == "DRIVER    VOLUME NAME\nlocal     site\n"
    assert cli("volume", "ls", "-q", "--filter", "label=a=b").stdout == "site\n"
    assert cli("volume", "ls", "--format", "{{.Name}}:{{.Driver}}").stdout == "site:local\n"
    info = json.loads(cli("volume", "inspect", "site").stdout)
    assert info[0]["Labels"] == {"a": "b"} and info[0]["Options"] is None
    mount = cli("volume", "inspect", "-f", "{{.Mountpoint}}", "site").stdout.strip()
    assert mount.endswith("/volumes/site/_data")
    bad = cli("volume", "create", "v")
    assert bad.returncode == 1 and bad.stderr == ("Error response from daemon: create v: volume name is too short, names "
                                                  "should be at least two alphanumeric characters\n")
    both = cli("volume", "rm", "site", "missing")
    assert both.returncode == 1 and both.stdout == "site\n"
    assert both.stderr == "Error response from daemon: get missing: no such volume\n"
    assert cli("volume", "rm", "-f", "missing").returncode == 0
    cli("volume", "create", "junk", check=True)
    pruned = cli("volume", "prune", "-f")
    assert pruned.stdout.startswith("Deleted Volumes:\njunk\n") and "Total reclaimed space:" in pruned.stdout
    assert cli("volume", "prune", input="n\n").stdout.startswith("WARNING! This will remove all local volumes")


def test_network_verbs_without_containers(cli, client):
    try:
        listing = cli("network", "ls").stdout.splitlines()
        assert listing[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
        assert [line.split()[1:] for line in listing[1:]] == [
            ["bridge", "bridge", "local"], ["host", "host", "local"], ["none", "null", "local"]]
        created = cli("network", "create", "--subnet", "10.252.9.0/24", "--label", "x=y", "webnet")
        assert created.returncode == 0 and len(created.stdout.strip()) == 64
        cfg = cli("network", "inspect", "-f", "{{json .IPAM.Config}}", "webnet").stdout.strip()
        assert json.loads(cfg) == [{"Subnet": "10.252.9.0/24"}]  # docker shows no gateway it was not given
        overlap = cli("network", "create", "--subnet", "10.252.9.0/25", "other")
        assert overlap.returncode == 1
        assert overlap.stderr == "Error response from daemon: Pool overlaps with other one on this address space\n"
        dup = cli("network", "create", "webnet")
        assert dup.returncode == 1 and "already exists" in dup.stderr
        predefined = cli("network", "rm", "bridge")
        assert predefined.stderr == ("Error response from daemon: bridge is a pre-defined network and cannot be removed\n"
                                 "exit status 1\n")  # docker 28 CLI adds that line
        assert cli("network", "ls", "-q", "--filter", "label=x=y").stdout.strip() == created.stdout.strip()[:12]
        rm = cli("network", "rm", "webnet", "nosuch")
        assert rm.returncode == 1 and rm.stdout == "webnet\n"
        assert rm.stderr == "Error response from daemon: network nosuch not found\nexit status 1\n"
        assert cli("network", "prune", "-f").returncode == 0
    finally:
        client.networks.cleanup()
        assert client.networks.host_objects() == []
