"""The real docker CLI (v28 here) against ``dockyard system service``: everyday commands give
docker's output and exit codes. Containers run with ``--network none`` (no bridge to clean up)."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .helpers import REPO, need_docker

pytestmark = [pytest.mark.interop, need_docker]
NONE = ("--network", "none")


def test_version_and_info(api) -> None:
    out = api.docker("version", "--format", "{{.Server.APIVersion}} {{.Server.MinAPIVersion}}", check=True).stdout
    assert out.split() == ["1.43", "1.24"]
    info = json.loads(api.docker("info", "--format", "{{json .}}", check=True).stdout)
    assert info["Images"] == 1 and info["OSType"] == "linux"
    assert info["DockerRootDir"] == str(api.root)


def test_images_lists_busybox(api) -> None:
    out = api.docker("images", "--format", "{{.Repository}}:{{.Tag}}", check=True).stdout
    assert out.split() == ["busybox:latest"]


def test_run_rm_prints_output_and_returns_the_exit_code(api) -> None:
    proc = api.docker("run", "--rm", *NONE, "busybox", "echo", "hi")
    assert (proc.returncode, proc.stdout) == (0, "hi\n")
    proc = api.docker("run", "--rm", *NONE, "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (proc.returncode, proc.stdout, proc.stderr) == (3, "out\n", "err\n")
    assert api.docker("ps", "-aq", check=True).stdout == ""  # --rm removed them


def test_run_with_stdin(api) -> None:
    proc = api.docker("run", "--rm", "-i", *NONE, "busybox", "sh", "-c", "tr a-z A-Z", input="piped in\n")
    assert (proc.returncode, proc.stdout) == (0, "PIPED IN\n")


def test_run_errors(api) -> None:
    proc = api.docker("run", "--rm", *NONE, "busybox", "no-such-command")
    assert proc.returncode == 127 and "executable file not found" in proc.stderr
    proc = api.docker("run", "--rm", *NONE, "--pull", "never", "nosuch:1", "true")
    assert proc.returncode == 125 and "No such image: nosuch:1" in proc.stderr


def test_detached_lifecycle_ps_logs_exec_stop_rm(api) -> None:
    cid = api.docker("run", "-d", "--name", "web", *NONE, "busybox", "sh", "-c",
                     "trap 'exit 0' TERM; echo started; while true; do sleep 0.1; done", check=True).stdout.strip()
    assert len(cid) == 64
    ps = api.docker("ps", "--format", "{{.ID}} {{.Names}} {{.Image}} {{.State}}", check=True).stdout
    assert ps.split() == [cid[:12], "web", "busybox", "running"]
    deadline = time.monotonic() + 10
    while "started" not in api.docker("logs", "web").stdout and time.monotonic() < deadline:
        time.sleep(0.1)
    assert api.docker("logs", "web", check=True).stdout == "started\n"
    proc = api.docker("exec", "web", "sh", "-c", "echo in-exec; echo err >&2; exit 5")
    assert (proc.returncode, proc.stdout, proc.stderr) == (5, "in-exec\n", "err\n")
    proc = api.docker("exec", "-i", "web", "cat", input="via stdin\n")
    assert (proc.returncode, proc.stdout) == (0, "via stdin\n")
    proc = api.docker("exec", "-t", "web", "sh", "-c", "tty; exit 4")
    assert proc.returncode == 4 and proc.stdout.strip() == "/dev/pts/0"
    assert api.docker("stop", "web", check=True).stdout.strip() == "web"
    doc = json.loads(api.docker("inspect", "web", check=True).stdout)[0]
    assert doc["State"]["Status"] == "exited" and doc["State"]["ExitCode"] == 0
    assert api.docker("rm", "web", check=True).stdout.strip() == "web"
    proc = api.docker("rm", "web")
    assert proc.returncode == 1 and "No such container: web" in proc.stderr


def test_inspect_container_and_image(api) -> None:
    api.docker("create", "--name", "ins", *NONE, "-e", "A=1", "-l", "k=v", "busybox", "echo", check=True)
    doc = json.loads(api.docker("inspect", "ins", check=True).stdout)[0]
    assert doc["Name"] == "/ins" and doc["Path"] == "echo" and "A=1" in doc["Config"]["Env"]
    assert doc["Config"]["Labels"] == {"k": "v"} and doc["HostConfig"]["NetworkMode"] == "none"
    assert doc["HostConfig"]["IpcMode"] == "private" and doc["HostConfig"]["ShmSize"] == 67108864
    image = json.loads(api.docker("image", "inspect", "busybox", check=True).stdout)[0]
    assert image["Id"] == doc["Image"] and image["RepoTags"] == ["busybox:latest"]
    proc = api.docker("inspect", "nothing-by-that-name")
    assert proc.returncode == 1 and "No such object: nothing-by-that-name" in proc.stderr


def test_cp_both_ways(api, tmp_path: Path) -> None:
    api.docker("run", "-d", "--name", "files", *NONE, "busybox", "sleep", "60", check=True)
    src = tmp_path / "in.txt"
    src.write_text("from the host\n")
    api.docker("cp", str(src), "files:/tmp/", check=True)
    api.docker("cp", str(src), "files:/tmp/renamed.txt", check=True)
    out = api.docker("exec", "files", "cat", "/tmp/in.txt", "/tmp/renamed.txt", check=True).stdout
    assert out == "from the host\n" * 2
    api.docker("exec", "files", "sh", "-c", "mkdir -p /data/sub && echo deep > /data/sub/f", check=True)
    api.docker("cp", "files:/data", str(tmp_path / "out"), check=True)
    assert (tmp_path / "out" / "sub" / "f").read_text() == "deep\n"
    api.docker("cp", "files:/tmp/in.txt", str(tmp_path / "back.txt"), check=True)
    assert (tmp_path / "back.txt").read_text() == "from the host\n"
    proc = api.docker("cp", "files:/no/such/file", str(tmp_path))
    assert proc.returncode == 1 and "/no/such/file" in proc.stderr  # v28 shows dockerd's message, 20.10 its own


def test_tag_and_rmi(api) -> None:
    api.docker("tag", "busybox", "example/box:1", check=True)
    tags = api.docker("images", "--format", "{{.Repository}}:{{.Tag}}", check=True).stdout.split()
    assert sorted(tags) == ["busybox:latest", "example/box:1"]
    assert api.docker("rmi", "example/box:1", check=True).stdout.strip() == "Untagged: example/box:1"
    proc = api.docker("rmi", "example/box:1")
    assert proc.returncode == 1 and "No such image: example/box:1" in proc.stderr


def test_build_a_small_context(api, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "hello.txt").write_text("copied\n")
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY hello.txt /hello.txt\nRUN echo ran > /ran\n"
                                    "ARG WHO=nobody\nLABEL who=$WHO\nCMD cat /hello.txt /ran\n")
    proc = api.docker("build", "-t", "built:1", "--build-arg", "WHO=api", str(ctx), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Successfully tagged built:1" in proc.stdout
    image_id = api.docker("image", "inspect", "built:1", "--format", "{{.Id}}", check=True).stdout.strip()
    assert f"Successfully built {image_id[7:19]}" in proc.stdout
    labels = api.docker("image", "inspect", "built:1", "--format", "{{json .Config.Labels}}", check=True).stdout
    assert json.loads(labels) == {"who": "api"}
    assert api.docker("run", "--rm", *NONE, "built:1", check=True).stdout == "copied\nran\n"
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN exit 7\n")
    proc = api.docker("build", str(ctx), timeout=120)
    assert proc.returncode == 7 and "returned a non-zero code: 7" in proc.stderr  # dockerd's classic builder


def test_volume_create_ls_rm(api) -> None:
    assert api.docker("volume", "create", "data1", check=True).stdout.strip() == "data1"
    assert api.docker("volume", "ls", "--format", "{{.Name}} {{.Driver}}", check=True).stdout.split() == ["data1", "local"]
    out = api.docker("run", "--rm", *NONE, "-v", "data1:/data", "busybox", "sh", "-c",
                     "echo kept > /data/f && cat /data/f", check=True).stdout
    assert out == "kept\n"
    assert api.docker("volume", "rm", "data1", check=True).stdout.strip() == "data1"
    assert api.docker("volume", "ls", "-q", check=True).stdout == ""
    proc = api.docker("volume", "rm", "data1")
    assert proc.returncode == 1 and "no such volume" in proc.stderr.lower()


def test_network_create_ls_rm(api) -> None:
    net_id = api.docker("network", "create", "apinet", check=True).stdout.strip()
    try:
        rows = api.docker("network", "ls", "--format", "{{.Name}} {{.Driver}}", check=True).stdout.splitlines()
        assert "apinet bridge" in rows and "none null" in rows
        doc = json.loads(api.docker("network", "inspect", "apinet", check=True).stdout)[0]
        assert doc["Id"] == net_id and doc["Driver"] == "bridge"
        proc = api.docker("network", "create", "apinet")
        assert proc.returncode == 1 and "already exists" in proc.stderr
    finally:
        assert api.docker("network", "rm", "apinet").stdout.strip() == "apinet"
    assert "apinet" not in api.docker("network", "ls", check=True).stdout


def test_save_and_load(api, tmp_path: Path) -> None:
    api.docker("tag", "busybox", "saved:1", check=True)
    archive = tmp_path / "saved.tar"
    api.docker("save", "-o", str(archive), "saved:1", check=True)
    assert archive.stat().st_size > 100_000
    api.docker("rmi", "saved:1", check=True)
    assert api.docker("load", "-i", str(archive), check=True).stdout.strip() == "Loaded image: saved:1"
    assert api.docker("run", "--rm", *NONE, "saved:1", "echo", "loaded", check=True).stdout == "loaded\n"
    api.docker("rmi", "saved:1", check=True)


def _serve_registry(tmp_path: Path, *args: str) -> tuple[subprocess.Popen, str]:
    """``dockyard registry serve`` on a free loopback port, with its own root."""
    import socket

    from registry.helpers import free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "dockyard", "--root", str(tmp_path / "regroot"), "registry",
                             "serve", "--addr", f"127.0.0.1:{port}", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, cwd=str(REPO))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    return proc, f"127.0.0.1:{port}"


@pytest.fixture
def registry(tmp_path: Path):
    proc, addr = _serve_registry(tmp_path)
    try:
        yield addr
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def auth_registry(tmp_path: Path):
    """A registry that wants a login (token auth; user alice, password secret123)."""
    config = tmp_path / "registry.yml"
    config.write_text(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {tmp_path / 'regdata'}\n"
                      f"auth:\n  htpasswd: {tmp_path / 'users.htpasswd'}\nrepositories:\n  - pattern: \"**\"\n"
                      "    visibility: private\n    grants:\n      - {users: [\"*\"], actions: [pull, push]}\n")
    subprocess.run([sys.executable, "-m", "dockyard", "registry", "user", "add", "alice", "--config", str(config),
                    "--password-stdin"], input="secret123\n", text=True, check=True, capture_output=True,
                   cwd=str(REPO))
    proc, addr = _serve_registry(tmp_path, "--config", str(config))
    try:
        yield addr
    finally:
        proc.terminate()
        proc.wait(10)


def test_push_and_pull_with_a_registry(api, registry: str) -> None:
    ref = f"{registry}/team/box:1"
    api.docker("tag", "busybox", ref, check=True)
    proc = api.docker("push", ref, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"The push refers to repository [{registry}/team/box]" in proc.stdout
    assert "1: digest: sha256:" in proc.stdout
    api.docker("rmi", ref, check=True)
    proc = api.docker("pull", ref, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "1: Pulling from team/box" in proc.stdout and f"Status: Downloaded newer image for {ref}" in proc.stdout
    assert api.docker("run", "--rm", *NONE, ref, "echo", "pulled", check=True).stdout == "pulled\n"
    proc = api.docker("pull", f"{registry}/team/nosuch:1", timeout=60)
    assert proc.returncode == 1 and "not found" in proc.stderr
    api.docker("rmi", ref, check=True)


def test_more_container_verbs(api) -> None:
    api.docker("run", "-d", "--name", "busy", *NONE, "busybox", "sh", "-c",
               "trap 'exit 0' TERM; i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done", check=True)
    top = api.docker("top", "busy", check=True).stdout
    assert top.splitlines()[0].split()[:3] == ["UID", "PID", "PPID"] and "while true" in top
    stats = api.docker("stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}", "busy", check=True).stdout
    assert stats.split()[0] == "busy" and int(stats.split()[1]) >= 1
    assert api.docker("pause", "busy", check=True).stdout.strip() == "busy"
    assert api.docker("inspect", "-f", "{{.State.Status}}", "busy", check=True).stdout.strip() == "paused"
    api.docker("unpause", "busy", check=True)
    api.docker("rename", "busy", "busier", check=True)
    follow = subprocess.Popen(["docker", "-H", api.host, "logs", "-f", "busier"], stdout=subprocess.PIPE, text=True)
    assert follow.stdout is not None
    first = [follow.stdout.readline() for _ in range(3)]
    assert first == ["tick 0\n", "tick 1\n", "tick 2\n"]
    api.docker("restart", "-t", "5", "busier", check=True)
    follow.wait(20)  # the stream ends when the container stops
    follow.stdout.close()
    assert api.docker("inspect", "-f", "{{.State.Status}}", "busier", check=True).stdout.strip() == "running"
    api.docker("kill", "busier", check=True)
    assert api.docker("wait", "busier", check=True).stdout.strip() == "137"
    pruned = api.docker("container", "prune", "-f", check=True).stdout
    assert "Deleted Containers:" in pruned
    assert api.docker("ps", "-aq", check=True).stdout == ""
    df = api.docker("system", "df", check=True).stdout
    assert df.splitlines()[0].split()[:2] == ["TYPE", "TOTAL"]


def test_attach_to_a_running_container(api) -> None:
    api.docker("run", "-d", "-i", "--name", "att", *NONE, "busybox", "sh", "-c",
               "read line; echo got:$line; exit 6", check=True)
    proc = api.docker("attach", "att", input="hello\n")
    assert (proc.returncode, proc.stdout) == (6, "got:hello\n")


def test_events_show_container_lifecycle(api) -> None:
    since = str(int(time.time()) - 1)
    api.docker("run", "--rm", *NONE, "--name", "evt", "busybox", "true", check=True)
    until = str(int(time.time()) + 2)
    time.sleep(0.5)
    out = api.docker("events", "--since", since, "--until", until, "--filter", "container=evt",
                     "--format", "{{.Action}}", timeout=30, check=True).stdout.split()
    assert out[:4] == ["create", "attach", "start", "die"] and "destroy" in out  # as dockerd


def test_login_through_the_daemon_then_push_with_x_registry_auth(api, auth_registry: str, tmp_path: Path) -> None:
    env = {"DOCKER_CONFIG": str(tmp_path / "docker-config")}
    ref = f"{auth_registry}/team/private:1"
    api.docker("tag", "busybox", ref, check=True)
    proc = api.docker("push", ref, env=env, timeout=120)
    assert proc.returncode == 1 and "unauthorized" in proc.stderr
    proc = api.docker("login", "-u", "alice", "--password-stdin", auth_registry, input="wrong\n", env=env)
    assert proc.returncode == 1 and "incorrect username or password" in proc.stderr
    proc = api.docker("login", "-u", "alice", "--password-stdin", auth_registry, input="secret123\n", env=env)
    assert proc.returncode == 0 and "Login Succeeded" in proc.stdout
    proc = api.docker("push", ref, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    api.docker("rmi", ref, check=True)
    proc = api.docker("pull", ref, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    api.docker("rmi", ref, check=True)


def test_import_and_history(api, tmp_path: Path) -> None:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        data = b"imported file\n"
        info = tarfile.TarInfo("hello.txt")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    proc = subprocess.run(["docker", "-H", api.host, "import", "-c", "LABEL src=import", "-m", "from a test",
                           "-", "imported:1"], input=buf.getvalue(), capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    image_id = proc.stdout.decode().strip()
    assert image_id.startswith("sha256:")
    doc = json.loads(api.docker("image", "inspect", "imported:1", check=True).stdout)[0]
    assert doc["Id"] == image_id and doc["Config"]["Labels"] == {"src": "import"}
    rows = api.docker("history", "--format", "{{.ID}}|{{.Comment}}", "--no-trunc", "imported:1",
                      check=True).stdout.splitlines()
    assert rows == [f"{image_id}|from a test"]
    api.docker("rmi", "imported:1", check=True)


def test_logs_tail_timestamps_and_streams(api) -> None:
    api.docker("run", "--name", "talk", *NONE, "busybox", "sh", "-c", "echo a; echo b; echo c >&2", check=True)
    proc = api.docker("logs", "--tail", "1", "talk", check=True)
    assert (proc.stdout, proc.stderr) == ("", "c\n")  # the last line is stderr's
    proc = api.docker("logs", "-t", "talk", check=True)
    lines = proc.stdout.splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == ["a", "b"]
    assert all(line[:4].isdigit() and line.split(" ", 1)[0].endswith("Z") for line in lines)
    proc = api.docker("logs", "--until", "1h", "talk", check=True)  # until an hour ago: nothing
    assert (proc.stdout, proc.stderr) == ("", "")
