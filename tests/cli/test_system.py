"""``system info/df/prune/version`` and the generic ``inspect``, through the CLI."""
from __future__ import annotations

import json


def test_version_and_info(cli, busybox):
    assert cli("--version", check=True).stdout.startswith("dockyard version ")
    out = cli("version", check=True).stdout
    assert "API version:" in out
    info = cli("info", check=True).stdout
    assert " Images: 1" in info and " Storage Driver: overlay2" in info and "Cgroup Version:" in info
    doc = json.loads(cli("info", "--format", "{{json .}}", check=True).stdout)
    assert doc["Images"] == 1 and doc["Driver"] == "overlay2"
    assert cli("info", "--format", "{{.DefaultRuntime}}", check=True).stdout.strip() == "builtin"


def test_df_and_prune_with_every_kind_of_object(cli, busybox):
    cli("volume", "create", "keep", check=True)
    cli("volume", "create", "drop", check=True)
    cli("network", "create", "dropnet", check=True)
    cli("run", "--name", "user", "-v", "keep:/data", "busybox", "sh", "-c", "echo hi > /data/f", check=True)
    cli("tag", "busybox", "extra:1", check=True)
    rows = {line.split()[0] + (line.split()[1] if line.startswith("Local") or line.startswith("Build") else ""):
            line.split() for line in cli("system", "df", check=True).stdout.splitlines()[1:]}
    assert rows["Images"][1] == "1"            # one image (two names)
    assert rows["Containers"][1:3] == ["1", "0"]  # one container, not running
    assert rows["LocalVolumes"][2:4] == ["2", "1"]  # two volumes, one in use
    # prune everything unused: the stopped container, the unused network and volumes, images
    out = cli("system", "prune", "-a", "-f", "--volumes", check=True).stdout
    assert "Deleted Containers:" in out and "Deleted Networks:" in out and "Deleted Volumes:" in out
    assert "Total reclaimed space:" in out
    assert cli("ps", "-aq", check=True).stdout.strip() == ""
    assert "dropnet" not in cli("network", "ls", check=True).stdout
    assert cli("volume", "ls", "-q", check=True).stdout.split() == []
    assert cli("images", "-q", check=True).stdout.strip() == ""


def test_prune_asks_first(cli, busybox):
    r = cli("system", "prune", input="n\n")
    assert r.returncode == 0 and "Are you sure you want to continue? [y/N]" in r.stdout
    assert cli("images", "-q", check=True).stdout.strip() != ""


def test_generic_inspect(cli, busybox):
    cli("volume", "create", "v1", check=True)
    docs = json.loads(cli("inspect", "busybox", "v1", check=True).stdout)
    assert docs[0]["Id"] == busybox and docs[1]["Name"] == "v1"
    r = cli("inspect", "nothing-by-that-name")
    assert r.returncode == 1 and r.stdout.strip() == "[]" and "No such object: nothing-by-that-name" in r.stderr
    assert cli("inspect", "--type", "image", "-f", "{{.Id}}", "busybox", check=True).stdout.strip() == busybox
