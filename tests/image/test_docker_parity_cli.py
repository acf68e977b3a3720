"""The image commands side by side with docker's CLI on the same busybox rootfs: the same
stdout, stderr and exit code once what must differ is normalised (image IDs, sizes, ages and
the program's name).

Every docker image made here carries this module's name prefix and is removed at the end, even
on failure; ``image prune`` is only ever run with a label filter no other image has.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.interop

PREFIX = f"dyparity{os.getpid()}"
LABEL = f"dyparity={os.getpid()}"
REPO = Path(__file__).resolve().parents[2]


def _docker_ok() -> bool:
    return shutil.which("docker") is not None and subprocess.run(
        ["docker", "info"], capture_output=True).returncode == 0


class Side:
    """One CLI (docker, or dockyard on its own state root) run the same way."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.argv = argv
        self.env = {**os.environ, **(env or {})}

    def __call__(self, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([*self.argv, *args], capture_output=True, input=input,
                              stdin=None if input is not None else subprocess.DEVNULL,
                              env=self.env, cwd=str(REPO), timeout=120)


@pytest.fixture(scope="module")
def sides(tmp_path_factory: pytest.TempPathFactory, busybox_tar: Path):
    if not _docker_ok():
        pytest.skip("docker CLI or daemon not available")
    root = tmp_path_factory.mktemp("parity-root")
    docker = Side(["docker"])
    dockyard = Side([sys.executable, "-m", "dockyard"], {"DOCKYARD_ROOT": str(root)})
    try:
        for side in (docker, dockyard):
            proc = side("import", "-c", 'CMD ["sh"]', "-c", f"LABEL {LABEL}", str(busybox_tar), f"{PREFIX}:latest")
            assert proc.returncode == 0, proc.stderr
            assert side("tag", f"{PREFIX}:latest", f"{PREFIX}:v2").returncode == 0
        yield docker, dockyard
    finally:
        _docker_cleanup()


def _docker_cleanup() -> None:
    ps = subprocess.run(["docker", "ps", "-aq", "--filter", f"label={LABEL}"], capture_output=True, text=True)
    for cid in ps.stdout.split():
        subprocess.run(["docker", "rm", "-f", cid], capture_output=True)
    images = subprocess.run(["docker", "images", "-a", "--no-trunc", "--format", "{{.ID}}", "--filter",
                             f"label={LABEL}"], capture_output=True, text=True)
    for image_id in dict.fromkeys(images.stdout.split()):
        subprocess.run(["docker", "rmi", "-f", image_id], capture_output=True)


_ID = re.compile(r"(sha256:)?\b[0-9a-f]{64}\b|\b[0-9a-f]{12}\b")
_SIZE = re.compile(r"\b\d+(\.\d+)?(B|kB|MB|GB)\b")
_AGO = re.compile(r"(Less than a second|About a minute|About an hour|\d+ (seconds?|minutes|hours)) ago")
_STAMP = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?( \+0000 UTC|Z)")


def normalise(text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode()
    text = re.sub(r"\bdocker\b", "dockyard", text)
    text = _ID.sub("<id>", text)
    text = _AGO.sub("<ago>", text)
    text = _STAMP.sub("<time>", text)
    text = _SIZE.sub("<size>", text)
    text = re.sub(r"\b\d{6,}\b", "<bytes>", text)  # -H=false sizes
    return re.sub(r" {2,}", "  ", text)  # table columns are as wide as their (normalised) values


def same(sides, *args: str, input: bytes | None = None) -> tuple[str, str, int]:
    docker, dockyard = sides
    want, got = docker(*args, input=input), dockyard(*args, input=input)
    expected = (normalise(want.stdout), normalise(want.stderr), want.returncode)
    actual = (normalise(got.stdout), normalise(got.stderr), got.returncode)
    assert actual == expected, f"{args}: docker {expected!r}\ndockyard {actual!r}"
    return expected


@pytest.mark.parametrize("args", [
    [PREFIX], [f"{PREFIX}:v2"], ["-q", PREFIX], ["--digests", PREFIX], ["--no-trunc", PREFIX],
    ["-a", PREFIX], ["--filter", f"reference={PREFIX}:v2"], ["--filter", f"reference={PREFIX}*"],
    ["--filter", "dangling=true", PREFIX], ["--filter", f"label={LABEL}", PREFIX],
    ["--filter", "label=dyparity-none", PREFIX], ["--filter", f"before={PREFIX}:latest", PREFIX],
    ["--filter", f"since={PREFIX}:latest", PREFIX], ["--filter", "bogus=1"], ["--filter", "dangling=maybe"],
    ["--filter", "before=dyparity-nosuch"], ["--format", "json", PREFIX], ["--format", "table", PREFIX],
    ["--format", "{{.Repository}}:{{.Tag}} {{.Size}} {{.VirtualSize}}", PREFIX],
    ["--format", "table {{.Repository}}\t{{.Tag}}", PREFIX], ["--format", "{{.Bogus}}", PREFIX],
    ["dyparity-nosuch"], ["Bad:Ref"], ["a", "b"], ["--filter", "until=1h"], ["--filter", "label"],
    ["--filter", "reference=dyparity[0-9]*"], ["--filter", f"reference=*/{PREFIX}"],
])
def test_images(sides, args):
    same(sides, "images", *args)


@pytest.mark.parametrize("args", [
    ["dyparity-nosuch", f"{PREFIX}:x"], [PREFIX, "Bad:Ref"], [PREFIX, "bad::ref"], [PREFIX, ""],
    [PREFIX, "a@sha256:" + "0" * 64], ["UPPER", f"{PREFIX}:x"], [PREFIX], [PREFIX, "a", "b"],
])
def test_tag_errors(sides, args):
    _, _, rc = same(sides, "tag", *args)
    assert rc == 1


def test_rmi_untag_delete_conflict_and_missing(sides):
    for side in sides:
        assert side("tag", PREFIX, f"{PREFIX}:gone").returncode == 0
        assert side("tag", PREFIX, f"{PREFIX}-other:1").returncode == 0
    assert same(sides, "rmi", f"{PREFIX}:gone") == (f"Untagged: {PREFIX}:gone\n", "", 0)
    assert same(sides, "rmi", f"{PREFIX}:gone")[2] == 1                     # now missing
    out, err, rc = same(sides, "rmi", f"{PREFIX}-other:1", "dyparity-nosuch", f"{PREFIX}:v2")
    assert rc == 1 and out.count("Untagged:") == 2 and "No such image" in err
    same(sides, "rmi", "Bad:Ref")
    same(sides, "rmi")
    assert same(sides, "rmi", "-f", "dyparity-nosuch")[2] == 0   # -f: reported, not a failure
    for side in sides:
        assert side("tag", PREFIX, f"{PREFIX}:v2").returncode == 0
        made = side("create", "--label", LABEL, f"{PREFIX}:latest", "true")
        assert made.returncode == 0, made.stderr
    try:
        ids = [side("images", "-q", f"{PREFIX}:latest").stdout.decode().split()[0] for side in sides]
        docker, dockyard = sides
        want, got = docker("rmi", ids[0]), dockyard("rmi", ids[1])   # in use: refused, exit 1
        assert (normalise(got.stderr), got.returncode) == (normalise(want.stderr), want.returncode)
        assert want.returncode == 1 and b"(must be forced)" in want.stderr
        assert same(sides, "rmi", f"{PREFIX}:v2") == (f"Untagged: {PREFIX}:v2\n", "", 0)
        _, err, rc = same(sides, "rmi", f"{PREFIX}:latest")                  # the last name
        assert rc == 1 and "must force" in err
    finally:
        for side in sides:
            for cid in side("ps", "-aq", "--filter", f"label={LABEL}").stdout.decode().split():
                side("rm", cid)
            side("tag", f"{PREFIX}:latest", f"{PREFIX}:v2")


def test_inspect_keys_and_types(sides):
    docker, dockyard = sides

    def tree(value, path=""):
        kinds = {dict: "object", list: "array", str: "string", int: "number", float: "number",
                 bool: "bool", type(None): "null"}
        out = {path: kinds[type(value)]}
        if isinstance(value, dict):
            for k, v in value.items():
                out.update(tree(v, f"{path}.{k}"))
        elif isinstance(value, list) and value:
            out.update(tree(value[0], path + "[]"))
        return out

    want = tree(json.loads(docker("image", "inspect", PREFIX).stdout)[0])
    got = tree(json.loads(dockyard("image", "inspect", PREFIX).stdout)[0])
    missing = {k: v for k, v in want.items() if got.get(k) != v}
    assert missing == {}, f"keys docker prints that dockyard lacks or types differently: {missing}"
    for fmt in ("{{.Os}}/{{.Architecture}}", "{{.Comment}}", "{{json .RootFS}}", "{{.Config.Cmd}}",
                "{{json .RepoTags}}", "{{.GraphDriver.Name}}",
                # docker's typed object first ({{json .Config}} without empty fields, a nil Env
                # is []), then the raw JSON (Hostname is only there)
                "{{json .Config}}", "{{.Config.Env}}", "{{.Config.Labels}}", "{{.Config.Hostname}}",
                "{{.Container}}", "{{json .ContainerConfig.Cmd}}", "{{.Config.Bogus}}"):
        same(sides, "image", "inspect", "--format", fmt, PREFIX)
    assert same(sides, "image", "inspect", "dyparity-nosuch")[2] == 1
    same(sides, "inspect", "dyparity-nosuch")
    same(sides, "image", "inspect")


@pytest.mark.parametrize("args", [
    ["--format", "{{.ID}}|{{.CreatedBy}}|{{.Size}}|{{.Comment}}"], ["-H=false", "--format", "{{.CreatedSince}}|{{.Size}}"],
    ["--format", "json"], ["-q"], ["--no-trunc", "--format", "{{.ID}} {{.CreatedBy}}"], ["--format", "{{.CreatedAt}}"],
    [],
])
def test_history(sides, args):
    same(sides, "history", *args, PREFIX)


def test_history_errors(sides):
    assert same(sides, "history", "dyparity-nosuch")[2] == 1
    assert same(sides, "history")[2] == 1
    assert same(sides, "history", "a", "b")[2] == 1


def test_save_load_and_their_errors(sides, tmp_path):
    docker, dockyard = sides
    for side, name in ((docker, "d"), (dockyard, "y")):
        assert side("save", "-o", str(tmp_path / f"{name}.tar"), f"{PREFIX}:v2").returncode == 0
        image_id = side("images", "-q", "--no-trunc", f"{PREFIX}:v2").stdout.decode().split()[0]
        assert side("save", "-o", str(tmp_path / f"{name}-id.tar"), image_id).returncode == 0
    for suffix in ("", "-id"):
        want = docker("load", "-i", str(tmp_path / f"d{suffix}.tar"))
        got = dockyard("load", "-i", str(tmp_path / f"y{suffix}.tar"))
        assert (normalise(got.stdout), got.returncode) == (normalise(want.stdout), want.returncode) == (
            (f"Loaded image: {PREFIX}:v2\n", 0) if not suffix else ("Loaded image ID: <id>\n", 0))
    (tmp_path / "not.tar").write_bytes(b"not a tar")
    same(sides, "load", "-i", str(tmp_path / "missing.tar"))
    same(sides, "load", "-i", str(tmp_path / "not.tar"))
    same(sides, "load", "extra")
    same(sides, "save", "dyparity-nosuch")
    same(sides, "save", "-o", str(tmp_path / "x.tar"), PREFIX, "dyparity-nosuch")
    assert not (tmp_path / "x.tar").exists()
    same(sides, "save")


def test_import_output_and_errors(sides, busybox_tar, tmp_path):
    (tmp_path / "not.tar").write_bytes(b"not a tar")
    out, _, rc = same(sides, "import", "-c", f"LABEL {LABEL}", str(busybox_tar), f"{PREFIX}-imp:1")
    assert rc == 0 and out == "<id>\n"
    same(sides, "history", "--format", "{{.Comment}}", f"{PREFIX}-imp:1")
    same(sides, "import", str(tmp_path / "missing.tar"))
    same(sides, "import", str(tmp_path / "not.tar"), f"{PREFIX}-bad:1")
    same(sides, "import", str(busybox_tar), "Bad:Ref")
    same(sides, "import")


CHANGES = ["CMD echo hi", 'ENTRYPOINT ["/bin/sh"]', "ENV A=1 B=$A", "EXPOSE 80/udp 90", "USER 10:10", "WORKDIR /x",
           "VOLUME /data", "ONBUILD RUN x", 'HEALTHCHECK --interval=5s --retries=2 CMD ["true"]', "HEALTHCHECK NONE",
           "HEALTHCHECK --interval=bad CMD true", "HEALTHCHECK", "STOPSIGNAL 9", "RUN x", "FROM y", "BOGUS x",
           'SHELL ["/bin/bash"]']


@pytest.mark.parametrize("change", CHANGES)
def test_import_changes_give_dockers_config(sides, busybox_tar, change):
    """Every instruction `--change` accepts sets the config as dockerd does; the others are refused."""
    ref = f"{PREFIX}-chg:1"
    same(sides, "import", "-c", f"LABEL {LABEL}", "-c", change, str(busybox_tar), ref)
    same(sides, "image", "inspect", "-f", "{{json .Config}}", ref)
    for side in sides:
        side("rmi", ref)


def test_prune_output(sides, busybox_tar):
    # two imports under one name: the first becomes dangling, sharing its layer with the second
    for side in sides:
        for message in ("one", "two"):
            proc = side("import", "-m", message, "-c", f"LABEL {LABEL}", "-c", "LABEL prunable=1",
                        str(busybox_tar), f"{PREFIX}-prune:1")
            assert proc.returncode == 0
    flt = ["--filter", f"label={LABEL}", "--filter", "label=prunable=1"]
    assert same(sides, "image", "prune", "-f", *flt) == ("Deleted Images:\ndeleted: <id>\n\n"
                                                          "Total reclaimed space: <size>\n", "", 0)
    out, _, _ = same(sides, "image", "prune", "-a", "-f", *flt)
    assert out.startswith(f"Deleted Images:\nuntagged: {PREFIX}-prune:1\ndeleted: <id>\n")
    same(sides, "image", "prune", "-f", *flt)
    same(sides, "image", "prune", *flt)        # no terminal: the prompt, then no
    same(sides, "image", "prune", "-f", "--filter", "bogus=1")
    same(sides, "image", "prune", "-f", "--filter", "before=x")      # images' key, not prune's
    same(sides, "image", "prune", "-f", "--filter", "until=bogus")
    same(sides, "image", "prune", "-f", "--filter", "label")
    same(sides, "image", "prune", "-f", "--filter", "until=1h", *flt)
    same(sides, "image", "prune", "extra")
