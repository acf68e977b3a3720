"""dockyard's Engine API side by side with dockerd: the same docker CLI commands and docker-py
calls against both, compared after normalising what must differ (IDs, the root directory).

The image is the same busybox rootfs in both, under the same name (``docker_busybox``'s tag,
also given to dockyard's busybox), so commands are identical. Every container, volume, network
and image made here is named ``dyparity-<pid>-...`` and removed from both engines, even when a
test fails; failing classic builds run with ``--force-rm`` so that dockerd keeps no container.
"""
from __future__ import annotations

import io
import json
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from distribution.helpers import CncfRegistry, cncf  # noqa: F401  (a fixture)

from .helpers import ApiService, UnixHTTPConnection, _has_dockerpy, need_docker, need_dockerpy

pytestmark = [pytest.mark.interop, need_docker]
PREFIX = f"dyparity-{os.getpid()}"
_HEX = re.compile(r"\b[0-9a-f]{64}\b|\b[0-9a-f]{12}\b")


class Pair:
    """The docker CLI against dockerd and against dockyard, with the same arguments."""

    def __init__(self, api: ApiService, image: str) -> None:
        self.api = api
        self.image = image

    def dockerd(self, *args: str, input: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        env["DOCKER_BUILDKIT"] = "0"
        return subprocess.run(["docker", *args], input=input, capture_output=True, text=True, timeout=timeout, env=env)

    def dockyard(self, *args: str, input: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        return self.api.docker(*args, input=input, timeout=timeout, env={"DOCKER_BUILDKIT": "0"})

    def norm(self, text: str) -> str:
        text = text.replace(str(self.api.root), "<ROOT>").replace("/var/lib/docker", "<ROOT>")
        return _HEX.sub("<ID>", text)

    def run(self, *args: str, input: str | None = None) -> tuple[tuple[int, str, str], tuple[int, str, str]]:
        """Both results as (exit code, stdout, stderr), normalised."""
        d = self.dockerd(*args, input=input)
        y = self.dockyard(*args, input=input)
        return ((d.returncode, self.norm(d.stdout), self.norm(d.stderr)),
                (y.returncode, self.norm(y.stdout), self.norm(y.stderr)))

    def same(self, *args: str, input: str | None = None) -> tuple[int, str, str]:
        """Run on both; exit code, stdout and stderr must match. Returns dockyard's."""
        d, y = self.run(*args, input=input)
        assert y == d, f"docker {' '.join(args)}:\n dockerd:  {d}\n dockyard: {y}"
        return y

    def request(self, engine: str, path: str) -> tuple[int, Any]:
        """A GET on one engine's socket (``dockerd`` or ``dockyard``): status and JSON body."""
        if engine == "dockyard":
            status, _, body = self.api.request("GET", path)
        else:
            conn = UnixHTTPConnection("/var/run/docker.sock")
            try:
                conn.request("GET", path)
                resp = conn.getresponse()
                status, body = resp.status, resp.read()
            finally:
                conn.close()
        return status, json.loads(body)

    def cleanup(self) -> None:
        for run in (self.dockerd, self.dockyard):
            ids = run("ps", "-aq", "--filter", f"name={PREFIX}").stdout.split()
            if ids:
                run("rm", "-f", "-v", *ids)
            for kind in ("network", "volume"):
                names = [n for n in run(kind, "ls", "-q", "--filter", f"name={PREFIX}").stdout.split()]
                if names:
                    run(kind, "rm", *names)
            refs = [r for r in run("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
                    if PREFIX in r]
            if refs:
                run("rmi", "-f", *refs)

    def remove_build_leftovers(self) -> None:
        """dockerd's classic builder keeps the images of the steps before a failing one: the
        untagged images descending from our busybox go."""
        base = self.dockerd("image", "inspect", "-f", "{{.Id}}", self.image).stdout.strip()
        if not base:
            return
        for image in self.dockerd("images", "-q", "--no-trunc", "-f", "dangling=true").stdout.split():
            parent = image
            for _ in range(20):
                parent = self.dockerd("image", "inspect", "-f", "{{.Parent}}", parent).stdout.strip()
                if parent in ("", base):
                    break
            if parent == base:
                self.dockerd("rmi", image)


@pytest.fixture(scope="module")
def pair(api: ApiService, docker_busybox: str) -> Iterator[Pair]:
    api.docker("tag", "busybox", docker_busybox, check=True)
    p = Pair(api, docker_busybox)
    try:
        yield p
    finally:
        p.cleanup()
        p.remove_build_leftovers()


@pytest.fixture(autouse=True)
def _clean_both(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "pair" in request.fixturenames:
        request.getfixturevalue("pair").cleanup()


def _paths(obj: Any, prefix: str = "") -> set[str]:
    """The key paths of a JSON document (map keys that are data, such as labels, left out)."""
    out: set[str] = set()
    if isinstance(obj, dict):
        for k, v in obj.items():
            if prefix.endswith((".Labels", ".Networks", ".Ports", ".ExposedPorts", ".Options", ".Containers")):
                return {prefix + ".*"}
            out.add(f"{prefix}.{k}")
            out |= _paths(v, f"{prefix}.{k}")
    elif isinstance(obj, list) and obj and isinstance(obj[0], dict):
        out |= _paths(obj[0], prefix + "[]")
    return out


def _wait_for_output(run: Any, name: str, text: str) -> None:
    deadline = time.monotonic() + 10
    while text not in run("logs", name).stdout and time.monotonic() < deadline:
        time.sleep(0.1)


# ------------------------------------------------------------------------------ errors
def test_error_messages_and_exit_codes_match(pair: Pair) -> None:
    img = pair.image
    for args in (("inspect", "nosuch-ctr"), ("rm", "nosuch-ctr"), ("logs", "nosuch-ctr"), ("stop", "nosuch-ctr"),
                 ("image", "inspect", "nosuch-img:1"), ("rmi", "nosuch-img:1"), ("tag", "nosuch-img:1", "x:1"),
                 ("volume", "inspect", "nosuch-vol"), ("volume", "rm", "nosuch-vol"),
                 ("network", "inspect", "nosuch-net"), ("network", "rm", "nosuch-net"),
                 ("run", "--rm", "--pull", "never", "nosuch-img:1", "true"), ("cp", "nosuch-ctr:/x", "/tmp"),
                 ("kill", "nosuch-ctr"), ("save", "nosuch-img:1"), ("save", "nosuch-img"),
                 ("run", "--rm", "--network", "nosuch-net", img, "true"),
                 ("rm", "-f", "nosuch-ctr"), ("rmi", "-f", "nosuch-img:1")):
        pair.same(*args)
    name = f"{PREFIX}-err"
    pair.same("create", "--name", name, "--network", "none", img, "sleep", "30")
    pair.same("create", "--name", name, img, "true")  # 409: the name is in use
    pair.same("exec", name, "true")                   # not running
    pair.same("kill", name)                           # not running, named as given
    pair.same("start", name)
    pair.same("rm", name)                             # running: must force
    pair.same("pause", name)
    pair.same("pause", name)                          # already paused
    pair.same("unpause", name)
    pair.same("exec", name, "nosuch-cmd")             # 126, the runtime's message on stdout
    pair.same("port", name, "99")
    pair.same("rename", name, name)


# ------------------------------------------------------------------------------ containers
def test_run_and_exec_output_and_exit_codes_match(pair: Pair) -> None:
    img = pair.image
    pair.same("run", "--rm", "--network", "none", img, "echo", "hi")
    pair.same("run", "--rm", "--network", "none", img, "sh", "-c", "echo out; echo err >&2; exit 3")
    pair.same("run", "--rm", "-i", "--network", "none", img, "tr", "a-z", "A-Z", input="piped\n")
    pair.same("run", "--rm", "--network", "none", "-e", "A=B", "-w", "/tmp", "-u", "1000", img,
              "sh", "-c", "echo $A; pwd; id")
    name = f"{PREFIX}-exec"
    pair.run("run", "-d", "--name", name, "--network", "none", img, "sh", "-c",
             "trap 'exit 0' TERM; echo started; while true; do sleep 0.1; done")
    _wait_for_output(pair.dockerd, name, "started")
    _wait_for_output(pair.dockyard, name, "started")
    pair.same("logs", name)
    pair.same("exec", name, "sh", "-c", "echo x; echo y >&2; exit 5")
    pair.same("exec", "-e", "A=1", "-w", "/etc", name, "sh", "-c", "echo $A; pwd")
    pair.same("exec", "-i", name, "cat", input="via stdin\n")
    d, y = pair.run("top", name, "-o", "pid,comm")  # PIDs differ: the header and the shell
    assert y[0] == d[0] == 0 and y[1].splitlines()[0] == d[1].splitlines()[0]
    assert y[1].split()[3] == d[1].split()[3] == "sh"
    pair.same("stats", "--no-stream", "--format", "{{.Name}}", name)
    pair.same("rename", name, name + "-2")
    pair.same("kill", "-s", "USR1", name + "-2")
    pair.same("stop", name + "-2")
    pair.same("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}} {{.Name}}", name + "-2")
    pair.same("rm", name + "-2")


def test_detached_run_logs_follow_wait_and_start_attach_match(pair: Pair) -> None:
    img = pair.image
    name = f"{PREFIX}-d"
    pair.run("run", "-d", "--name", name, "--network", "none", img, "sh", "-c", "echo a; sleep 0.5; echo b >&2; exit 4")
    pair.same("logs", "-f", name)
    pair.same("wait", name)
    pair.same("logs", "--details", name)
    pair.same("ps", "-a", "--filter", f"name={name}", "--format", "{{.Names}} {{.State}} {{.Command}}")
    pair.same("rm", name)
    pair.run("create", "--name", name, "--network", "none", img, "sh", "-c", "echo created; exit 2")
    pair.same("start", "-a", name)
    pair.same("start", "-a", name)  # again: same output, same code


def test_inspect_ps_and_ls_documents_have_dockerds_keys(pair: Pair) -> None:
    img = pair.image
    name = f"{PREFIX}-keys"
    for run in (pair.dockerd, pair.dockyard):
        run("volume", "create", f"{PREFIX}-kv")
        run("run", "-d", "--name", name, "-v", f"{PREFIX}-kv:/data", "-e", "A=1", "-l", "k=v", "--network", "none",
            img, "sleep", "30")
    for args in (("inspect", name), ("inspect", "-s", name), ("image", "inspect", img),
                 ("volume", "inspect", f"{PREFIX}-kv"), ("network", "inspect", "host")):
        d = json.loads(pair.dockerd(*args).stdout)
        y = json.loads(pair.dockyard(*args).stdout)
        assert _paths(y) == _paths(d), f"{args}: missing {_paths(d) - _paths(y)}, extra {_paths(y) - _paths(d)}"
    for args in (("ps", "--filter", f"name={name}", "--format", "json"), ("images", "--format", "json", img),
                 ("volume", "ls", "--filter", f"name={PREFIX}", "--format", "json"),
                 ("stats", "--no-stream", "--format", "json", name)):
        d = json.loads(pair.dockerd(*args).stdout.splitlines()[0])
        y = json.loads(pair.dockyard(*args).stdout.splitlines()[0])
        assert sorted(y) == sorted(d), args
    d = json.loads(pair.dockerd("inspect", name).stdout)[0]
    y = json.loads(pair.dockyard("inspect", name).stdout)[0]
    assert {k: y["Mounts"][0][k] for k in ("Type", "Name", "Destination", "Driver", "Mode", "RW")} == \
        {k: d["Mounts"][0][k] for k in ("Type", "Name", "Destination", "Driver", "Mode", "RW")}


def test_cp_both_ways_and_prune_match(pair: Pair, tmp_path: Path) -> None:
    img = pair.image
    name = f"{PREFIX}-cp"
    (tmp_path / "f.txt").write_text("hello\n")
    pair.run("run", "-d", "--name", name, "--network", "none", img, "sleep", "30")
    pair.same("cp", str(tmp_path / "f.txt"), f"{name}:/tmp/")
    pair.same("exec", name, "cat", "/tmp/f.txt")
    for run, out in ((pair.dockerd, "d"), (pair.dockyard, "y")):
        assert run("cp", f"{name}:/etc/hostname", str(tmp_path / out)).returncode == 0
        assert (tmp_path / out).read_text().strip()
    pair.same("cp", f"{name}:/nosuch", str(tmp_path))
    pair.same("cp", str(tmp_path / "nosuch"), f"{name}:/tmp")
    label = f"{PREFIX}-prune=1"
    pair.run("create", "--label", label, "--name", f"{name}-p", "--network", "none", img, "true")
    pair.same("container", "prune", "-f", "--filter", f"label={label}")


# ------------------------------------------------------------------------------ volumes, networks
def test_volume_and_network_commands_match(pair: Pair) -> None:
    img = pair.image
    vol, net, ctr = f"{PREFIX}-vol", f"{PREFIX}-net", f"{PREFIX}-n"
    pair.same("volume", "create", "--label", "a=b", vol)
    pair.same("volume", "create", vol)
    pair.same("volume", "ls", "--filter", f"name={vol}", "--format", "{{.Name}} {{.Driver}} {{.Labels}}")
    pair.same("volume", "inspect", "--format", "{{.Name}} {{.Driver}} {{.Mountpoint}} {{.Scope}}", vol)
    pair.same("run", "--rm", "--network", "none", "-v", f"{vol}:/data", img, "sh", "-c", "echo x > /data/f")
    pair.same("volume", "rm", vol)  # free again once --rm is done
    pair.same("volume", "rm", vol)
    pair.run("network", "create", net)
    pair.same("network", "create", net)
    pair.same("network", "ls", "--filter", f"name={net}", "--format", "{{.Name}} {{.Driver}} {{.Scope}}")
    pair.same("network", "inspect", "--format", "{{.Name}} {{.Driver}} {{.Internal}} {{.Attachable}}", net)
    pair.run("run", "-d", "--name", ctr, "--network", net, img, "sleep", "30")
    pair.same("network", "connect", net, ctr)  # already: 403's message
    pair.same("network", "inspect", "--format", "{{range .Containers}}{{.Name}}{{end}}", net)
    pair.same("network", "disconnect", net, ctr)
    pair.same("network", "disconnect", net, ctr)
    pair.same("network", "connect", net, ctr)
    pair.same("inspect", "--format", "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}", ctr)
    pair.same("network", "rm", net)  # in use
    pair.same("rm", "-f", ctr)
    pair.same("network", "rm", net)
    pair.same("network", "rm", "bridge")


def test_none_network_membership_matches(pair: Pair) -> None:
    net, ctr = f"{PREFIX}-net", f"{PREFIX}-none"
    pair.run("network", "create", net)
    pair.run("run", "-d", "--name", ctr, "--network", "none", pair.image, "sleep", "30")
    pair.same("network", "connect", net, ctr)  # dockerd: not with a container in private (none) mode
    assert f"{ctr}" in pair.dockyard("network", "inspect", "none", "--format", "{{json .Containers}}").stdout
    pair.same("network", "disconnect", "none", ctr)


# ------------------------------------------------------------------------------ images
def test_image_commands_match(pair: Pair, tmp_path: Path) -> None:
    img = pair.image
    ref = f"{PREFIX}-img:1"
    pair.same("tag", img, ref)
    pair.same("images", "--format", "{{.Repository}}:{{.Tag}}", ref)
    pair.same("image", "inspect", "--format", "{{.Os}} {{.Architecture}} {{json .Config.Cmd}}", ref)
    pair.same("rmi", ref)
    pair.same("rmi", ref)
    for run, out in ((pair.dockerd, "d.tar"), (pair.dockyard, "y.tar")):
        assert run("tag", img, ref).returncode == 0
        assert run("save", "-o", str(tmp_path / out), ref).returncode == 0
        assert run("rmi", ref).returncode == 0
    assert pair.norm(pair.dockerd("load", "-i", str(tmp_path / "d.tar")).stdout) == \
        pair.norm(pair.dockyard("load", "-i", str(tmp_path / "y.tar")).stdout) == f"Loaded image: {ref}\n"


def test_classic_build_matches(pair: Pair, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "f.txt").write_text("copied\n")
    (ctx / "Dockerfile").write_text(f"FROM {pair.image}\nARG GREETING=hello\nRUN echo \"$GREETING\" > /g\n"
                                    "COPY f.txt /f.txt\nCMD [\"cat\", \"/g\", \"/f.txt\"]\n")
    ref = f"{PREFIX}-built:1"
    d = pair.dockerd("build", "--force-rm", "-t", ref, "--build-arg", "GREETING=hey", str(ctx), timeout=120)
    y = pair.dockyard("build", "--force-rm", "-t", ref, "--build-arg", "GREETING=hey", str(ctx), timeout=120)
    assert (y.returncode, d.returncode) == (0, 0), y.stderr
    steps = [line for line in d.stdout.splitlines() if line.startswith(("Step ", "Successfully tagged"))]
    assert [line for line in y.stdout.splitlines() if line.startswith(("Step ", "Successfully tagged"))] == steps
    assert re.search(r"^Successfully built [0-9a-f]{12}$", y.stdout, re.M)
    pair.same("run", "--rm", "--network", "none", ref)
    pair.same("build", "-q", "-t", ref, str(ctx))  # the image ID alone
    (ctx / "Dockerfile").write_text(f"FROM {pair.image}\nRUN echo before\nRUN sh -c 'echo boom >&2; exit 7'\n")
    d = pair.dockerd("build", "--force-rm", str(ctx), timeout=120)
    y = pair.dockyard("build", "--force-rm", str(ctx), timeout=120)
    assert y.returncode == d.returncode == 7
    assert y.stderr.splitlines()[-1] == d.stderr.splitlines()[-1] == \
        "The command '/bin/sh -c sh -c 'echo boom >&2; exit 7'' returned a non-zero code: 7"
    assert "before\n" in y.stdout and "boom" in y.stdout + y.stderr
    d = pair.dockerd("build", "-q", "--force-rm", str(ctx), timeout=120)  # quiet: the output only on failure
    y = pair.dockyard("build", "-q", "--force-rm", str(ctx), timeout=120)
    assert y.returncode == d.returncode == 7 and y.stdout == d.stdout == ""
    assert [s for s in y.stderr.splitlines() if s.startswith("Step ")] == \
        [s for s in d.stderr.splitlines() if s.startswith("Step ")]
    (ctx / "Dockerfile").write_text(f"FROM {pair.image} AS one\nRUN true\nFROM one AS two\nLABEL a=b\n"
                                    f"FROM {pair.image}\nCOPY --from=one /etc/hostname /x\n")
    d = pair.dockerd("build", "--force-rm", "--target", "two", str(ctx), timeout=120)
    y = pair.dockyard("build", "--force-rm", "--target", "two", str(ctx), timeout=120)
    assert [s for s in y.stdout.splitlines() if s.startswith("Step ")] == \
        [s for s in d.stdout.splitlines() if s.startswith("Step ")] != []
    (ctx / "Dockerfile").write_text(f"FROM {pair.image}\nNOSUCH x\n")
    pair.same("build", str(ctx))  # a syntax error: a plain 400 before the build starts


def test_push_and_pull_through_the_registry_match(pair: Pair, cncf: CncfRegistry) -> None:
    """Both engines push to and pull from a CNCF registry of this test's own (127.0.0.0/8 is
    insecure by default for dockerd and dockyard alike, so plain HTTP on any port works)."""
    _push_and_pull(pair, f"127.0.0.1:{cncf.port}")


def _push_and_pull(pair: Pair, registry: str) -> None:
    for run, who in ((pair.dockerd, "d"), (pair.dockyard, "y")):
        ref = f"{registry}/{PREFIX}/{who}:1"
        assert run("tag", pair.image, ref).returncode == 0
        pushed = run("push", ref)
        assert pushed.returncode == 0 and f"The push refers to repository [{registry}/{PREFIX}/{who}]" in pushed.stdout
        assert re.search(r"^1: digest: sha256:[0-9a-f]{64} size: \d+$", pushed.stdout, re.M)
        engine = "dockerd" if who == "d" else "dockyard"
        status, doc = pair.request(engine, f"/distribution/{ref}/json")  # docker-py's get_registry_data
        assert status == 200 and doc["Platforms"] == [{"architecture": "amd64", "os": "linux"}]
        assert sorted(doc["Descriptor"]) == ["digest", "mediaType", "size"]
        assert pair.request(engine, f"/distribution/{ref[:-2]}:nosuch/json") == \
            (404, {"message": "manifest unknown: manifest unknown"})
        assert run("rmi", ref).returncode == 0
        pulled = run("pull", ref)
        assert pulled.returncode == 0, pulled.stderr
        assert pulled.stdout.splitlines()[0] == f"1: Pulling from {PREFIX}/{who}"
        assert pulled.stdout.splitlines()[-2:] == [f"Status: Downloaded newer image for {ref}", ref]
        assert run("pull", "-q", ref).stdout == ref + "\n"
        assert run("rmi", ref).returncode == 0
        if _has_dockerpy():
            import docker

            client = docker.DockerClient(base_url="unix:///var/run/docker.sock") if who == "d" else \
                pair.api.dockerpy()
            image = client.images.pull(f"{registry}/{PREFIX}/{who}", tag="1")
            assert ref in image.tags and image.attrs["RepoDigests"][0].startswith(f"{registry}/{PREFIX}/{who}@sha256:")
            with pytest.raises(docker.errors.NotFound, match="manifest unknown"):
                client.images.pull(f"{registry}/{PREFIX}/{who}", tag="nosuch")
            client.images.remove(ref)
    pair.same("pull", f"{registry}/{PREFIX}/nosuch:1")


# ------------------------------------------------------------------------------ events
def test_container_events_match(pair: Pair) -> None:
    img = pair.image
    name = f"{PREFIX}-ev"
    since = str(int(time.time()) - 1)
    for run in (pair.dockerd, pair.dockyard):
        run("run", "-d", "--name", name, "--network", "none", img, "sleep", "30")
        run("exec", name, "true")
        run("rename", name, name + "2")
        run("kill", "-s", "HUP", name + "2")
        run("stop", "-t", "1", name + "2")
        run("start", name + "2")
        run("restart", "-t", "1", name + "2")
        run("rm", "-f", name + "2")
        run("run", "--rm", "--name", name + "3", "--network", "none", img, "true")
    time.sleep(1)
    until = str(int(time.time()) + 1)
    fmt = "{{.Type}} {{.Action}} {{.Actor.Attributes.name}} {{.Actor.Attributes.signal}} {{.Actor.Attributes.exitCode}}"
    args = ("events", "--since", since, "--until", until, "--format", fmt, "--filter", "type=container")
    for n in ("", "2", "3"):
        args += ("--filter", f"container={name}{n}")
    d, y = pair.run(*args)
    assert y == d
    assert "container kill " + name + "2 9 <no value>" in y[1] and "container attach" in y[1]


# ------------------------------------------------------------------------------ docker-py
@need_dockerpy
def test_dockerpy_calls_match(pair: Pair) -> None:
    import docker

    def exercise(client: Any) -> dict[str, Any]:
        img = pair.image
        r: dict[str, Any] = {}
        r["run"] = client.containers.run(img, ["sh", "-c", "echo out; echo err >&2"], remove=True, network_mode="none")
        try:
            client.containers.run(img, ["sh", "-c", "echo bad >&2; exit 3"], remove=True, network_mode="none")
        except docker.errors.ContainerError as exc:
            r["run_error"] = (exc.exit_status, exc.stderr)
        c = client.containers.run(img, ["sh", "-c", "for i in 1 2 3; do echo $i; done; sleep 0.2"], detach=True,
                                  name=f"{PREFIX}-py", network_mode="none")
        r["stream"] = b"".join(c.logs(stream=True, follow=True))
        r["wait"] = c.wait()
        c.reload()
        r["status"] = c.status
        c.remove()
        c = client.containers.run(img, ["sleep", "30"], detach=True, name=f"{PREFIX}-py2", network_mode="none")
        r["exec"] = tuple(c.exec_run(["sh", "-c", "echo hi; exit 4"]))
        r["exec_demux"] = tuple(c.exec_run(["sh", "-c", "echo o; echo e >&2"], demux=True))
        r["exec_env"] = tuple(c.exec_run("sh -c 'pwd; echo $X'", environment={"X": "y"}, workdir="/tmp"))
        doc = client.api.inspect_container(c.id)
        r["inspect"] = _paths(doc)
        c.remove(force=True)
        try:
            client.containers.get("nosuch-ctr")
        except docker.errors.NotFound as exc:
            r["not_found"] = exc.explanation
        try:
            client.images.get("nosuch-img:1")
        except docker.errors.ImageNotFound as exc:
            r["image_not_found"] = exc.explanation
        df = f"FROM {img}\nARG A=1\nRUN echo built-$A > /b\nCMD cat /b\n".encode()
        image, _ = client.images.build(fileobj=io.BytesIO(df), tag=f"{PREFIX}-py:1", buildargs={"A": "2"},
                                       forcerm=True)
        r["build_tags"] = image.tags
        r["build_run"] = client.containers.run(f"{PREFIX}-py:1", remove=True, network_mode="none")
        try:
            client.images.build(fileobj=io.BytesIO(f"FROM {img}\nRUN exit 5\n".encode()), forcerm=True)
        except docker.errors.BuildError as exc:
            r["build_error"] = exc.msg
        client.images.remove(f"{PREFIX}-py:1")
        nothing = {"label": f"{PREFIX}-none=1"}
        r["prune"] = (client.containers.prune(filters=nothing), client.volumes.prune(filters=nothing),
                      client.networks.prune(filters=nothing))
        return r

    d = exercise(docker.DockerClient(base_url="unix:///var/run/docker.sock", timeout=120))
    y = exercise(pair.api.dockerpy())
    assert y == d
