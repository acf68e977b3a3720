"""``system info/df/prune/version`` and the generic ``inspect``, through the CLI."""
from __future__ import annotations

import re

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


def _table(text: str) -> list[dict[str, str]]:
    """Rows of an aligned docker table, cut at the header's column starts."""
    lines = text.splitlines()
    header = lines[0]
    starts = [m.start() for m in re.finditer(r"(?:^|(?<=   ))\S", header)]
    names = [header[a:b].strip() for a, b in zip(starts, starts[1:] + [None])]
    return [{n: line[a:b].strip() for n, a, b in zip(names, starts, starts[1:] + [None])} for line in lines[1:]]


def test_df_verbose_splits_shared_and_unique_layers(cli, busybox, tmp_path):
    """Two images on one base: the base layer is shared, the child's own layer unique to it."""
    (tmp_path / "Dockerfile").write_text("FROM busybox\nRUN head -c 100000 /dev/urandom > /blob\n")
    cli("build", "-q", "-t", "child:1", str(tmp_path), check=True)
    cli("volume", "create", "dfvol", check=True)
    cli("run", "--name", "dfuser", "-v", "dfvol:/d", "child:1", "sh", "-c", "head -c 5000 /dev/zero > /d/f", check=True)
    out = cli("system", "df", "-v", check=True).stdout
    sections = out.split("\n\n")
    assert sections[0] == "Images space usage:"
    images = {row["REPOSITORY"]: row for row in _table(sections[1])}
    assert images["busybox"]["UNIQUE SIZE"] == "0B"          # all of busybox is shared with child:1
    assert images["busybox"]["SHARED SIZE"] == images["child"]["SHARED SIZE"] != "0B"
    assert images["child"]["UNIQUE SIZE"] in ("100kB", "100.1kB", "100.4kB", "102.4kB")  # its own layer
    assert (images["child"]["CONTAINERS"], images["busybox"]["CONTAINERS"]) == ("1", "0")
    assert sections[2] == "Containers space usage:"
    [ctr] = _table(sections[3])
    assert (ctr["NAMES"], ctr["IMAGE"], ctr["LOCAL VOLUMES"]) == ("dfuser", "child:1", "1")
    assert _table(sections[5]) == [{"VOLUME NAME": "dfvol", "LINKS": "1", "SIZE": "5kB"}]
    assert sections[6].startswith("Build cache usage: ")
