"""More of docker's behaviour: signal proxy, OOM kills, auto-removal, attach streams, health timeouts."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

NONE = ("--network", "none")


def test_signals_to_the_cli_reach_the_container(dy, root):
    env = dict(os.environ, DOCKYARD_ROOT=str(root))
    proc = subprocess.Popen([sys.executable, "-m", "dockyard", "run", "--name", "sp", *NONE, "busybox", "sh", "-c",
                             "trap 'echo got-usr1' USR1; trap 'echo got-term; exit 7' TERM; echo ready; "
                             "while :; do sleep 0.1; done"], stdout=subprocess.PIPE, env=env)
    assert proc.stdout.readline() == b"ready\n"
    proc.send_signal(signal.SIGUSR1)
    assert proc.stdout.readline() == b"got-usr1\n"
    proc.send_signal(signal.SIGTERM)
    assert proc.stdout.readline() == b"got-term\n"
    assert proc.wait(timeout=10) == 7


def test_sig_proxy_false(dy, root):
    env = dict(os.environ, DOCKYARD_ROOT=str(root))
    proc = subprocess.Popen([sys.executable, "-m", "dockyard", "run", "--sig-proxy=false", "--name", "nsp", *NONE,
                             "busybox", "sh", "-c", "trap 'echo got-usr1' USR1; echo ready; sleep 5"],
                            stdout=subprocess.PIPE, env=env)
    assert proc.stdout.readline() == b"ready\n"
    proc.send_signal(signal.SIGUSR1)  # kills the CLI (default action), not the container
    proc.wait(timeout=10)
    assert dy.state("nsp")["Running"]


def test_oom_killed(dy):
    p = dy("run", *NONE, "--name", "oom", "-m", "8m", "--memory-swap", "8m", "busybox", "sh", "-c",
           "x=a; while :; do x=$x$x; done")
    st = dy.state("oom")
    assert p.returncode == 137 and st["ExitCode"] == 137 and st["OOMKilled"] is True


def test_detached_rm_removes_on_exit_with_its_volumes(dy, root, client):
    cid = dy.ok("run", "-d", "--rm", *NONE, "-v", "/anon", "busybox", "sh", "-c", "sleep 0.2").strip()
    vols = [v.name for v in client.volumes.list()]
    assert len(vols) == 1
    deadline = time.monotonic() + 10
    while dy.ok("ps", "-aq") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert dy.ok("ps", "-aq") == ""
    assert not (root / "containers" / cid).exists()
    assert [v.name for v in client.volumes.list()] == []  # --rm removes anonymous volumes


def test_attach_choices_and_cidfile(dy, tmp_path):
    cidfile = tmp_path / "cid"
    p = dy("run", "-a", "stderr", "--cidfile", str(cidfile), *NONE, "busybox", "sh", "-c", "echo out; echo err >&2")
    assert (p.returncode, p.stdout, p.stderr) == (0, "", "err\n")
    assert dy.inspect(cidfile.read_text())["Config"]["AttachStdout"] is False
    p = dy("run", "-d", "-a", "stdout", *NONE, "busybox", "true")
    assert (p.returncode, p.stderr) == (1, "conflicting options: cannot specify both --attach and --detach\n")  # as docker


def test_attach_to_running_non_tty_container(dy, root):
    dy.run_d("-i", "--name", "att", "busybox", "sh", "-c", "while read l; do echo echo:$l; done")
    env = dict(os.environ, DOCKYARD_ROOT=str(root))
    proc = subprocess.Popen([sys.executable, "-m", "dockyard", "attach", "att"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, env=env)
    time.sleep(0.3)
    proc.stdin.write(b"hello\n")
    proc.stdin.flush()
    assert proc.stdout.readline() == b"echo:hello\n"
    proc.stdin.close()  # StdinOnce is false for run -d -i: the container keeps its stdin
    time.sleep(0.3)
    proc.kill()
    proc.wait()
    assert dy.state("att")["Running"]
    p = dy("run", *NONE, "--name", "gone", "busybox", "true")
    p = dy("attach", "gone")
    assert p.returncode == 1 and "You cannot attach to a stopped container, start it first" in p.stderr


def test_health_timeout_and_image_healthcheck_disabled(dy):
    dy.run_d("--name", "slow", "--health-cmd", "sleep 5", "--health-interval", "300ms", "--health-timeout", "200ms",
             "--health-retries", "1", "busybox", "sleep", "60")
    doc = dy.wait_for("slow", lambda d: d["State"].get("Health", {}).get("Status") == "unhealthy")
    last = doc["State"]["Health"]["Log"][-1]
    assert last["ExitCode"] == -1 and last["Output"] == "Health check exceeded timeout (200ms)"
    dy.run_d("--name", "nohc", "--no-healthcheck", "busybox", "sleep", "60")
    assert "Health" not in dy.state("nohc")
    assert dy.inspect("nohc")["Config"]["Healthcheck"] == {"Test": ["NONE"]}


def test_stop_signal_flag_and_stop_on_stopped(dy):
    dy.run_d("--name", "ss", "busybox", "sh", "-c", "trap 'exit 12' HUP; while :; do sleep 0.1; done")
    time.sleep(0.3)
    assert dy.ok("stop", "-s", "HUP", "ss") == "ss\n"
    assert dy.state("ss")["ExitCode"] == 12
    assert dy.ok("stop", "ss") == "ss\n"  # already stopped: fine, as docker


def test_start_running_container_is_a_noop(dy):
    cid = dy.run_d("--name", "twice", "busybox", "sleep", "60")
    started = dy.state("twice")["StartedAt"]
    assert dy.ok("start", "twice") == "twice\n"
    assert dy.state("twice")["StartedAt"] == started
    assert dy.state(cid)["Pid"] > 0


def test_api_objects(client, busybox, root):
    out = client.containers.run("busybox", ["sh", "-c", "echo hi"], network_mode="none", remove=True)
    assert out == b"hi\n"
    c = client.containers.run("busybox", "sleep 60", detach=True, name="apiobj", network_mode="none",
                              environment={"K": "V"}, labels={"a": "b"})
    assert c.status == "running" and c.name == "apiobj" and c.labels["a"] == "b"
    res = c.exec_run(["sh", "-c", "echo $K; echo e >&2"], demux=True)
    assert res.exit_code == 0 and res.output == (b"V\n", b"e\n")
    assert [x.id for x in client.containers.list()] == [c.id]
    c.stop(timeout=0)
    assert c.status == "exited" and c.wait()["StatusCode"] == 137
    assert c.attrs["State"]["ExitCode"] == 137
    c.remove()
    from dockyard.engine.containers import ContainerError

    with pytest.raises(ContainerError) as ei:
        client.containers.run("busybox", ["sh", "-c", "exit 3"], network_mode="none", remove=True)
    assert ei.value.exit_status == 3
    assert client.containers.image_users(client.images.get("busybox").id) == []


def test_default_bridge_network_and_published_port(dy, root, client):
    """The network service's hooks: a bridge address, a published port, released on stop."""
    import urllib.request

    pytest.importorskip("dockyard.network.service", reason="no network service")
    port = 20000 + os.getpid() % 10000
    dy.ok("run", "-d", "--name", "web", "-p", f"{port}:80", "busybox", "sh", "-c",
          "echo hello > /tmp/i.html; httpd -f -p 80 -h /tmp")
    try:
        deadline = time.monotonic() + 5
        body = b""
        while time.monotonic() < deadline:
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/i.html", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        assert body == b"hello\n"
        assert dy.ok("port", "web") == f"80/tcp -> 0.0.0.0:{port}\n80/tcp -> [::]:{port}\n"  # as dockerd 20.10
        assert f"0.0.0.0:{port}->80/tcp" in dy.ok("ps", "--format", "{{.Ports}}")
        net = dy.inspect("web")["NetworkSettings"]
        assert net["IPAddress"] and "bridge" in net["Networks"]
        assert dy.ok("exec", "web", "hostname") == dy.inspect("web")["Id"][:12] + "\n"
    finally:
        dy.ok("rm", "-f", "web")
    assert client.networks.leaks() == []


def test_commit_makes_an_image_of_the_changes(dy, client):
    dy.run_d("--name", "cm", "busybox", "sh", "-c", "echo committed > /hello; rm /bin/vi; sleep 60")
    time.sleep(0.3)
    image_id = dy.ok("commit", "-c", 'CMD ["cat", "/hello"]', "-m", "my change", "cm", "mine:v1").strip()
    assert image_id == client.images.get("mine:v1").id
    assert dy.state("cm")["Running"] and not dy.state("cm")["Paused"]  # paused only meanwhile
    assert dy.ok("run", "--rm", *NONE, "mine:v1") == "committed\n"
    p = dy("run", "--rm", *NONE, "mine:v1", "ls", "/bin/vi")
    assert p.returncode == 1  # the deletion is a whiteout in the new layer
    assert len(client.images.get("mine:v1").layers) == len(client.images.get("busybox").layers) + 1


def test_slow_reader_gets_all_output(dy, root):
    """Back-pressure: a client that reads late still gets every byte, and so does the log."""
    env = dict(os.environ, DOCKYARD_ROOT=str(root))
    proc = subprocess.Popen([sys.executable, "-m", "dockyard", "run", "--name", "big", *NONE, "busybox", "sh", "-c",
                             "head -c 3000000 /dev/zero | tr '\\0' a; echo; echo done"],
                            stdout=subprocess.PIPE, env=env)
    time.sleep(3)  # the container is done writing long before we read
    out = proc.stdout.read()
    assert proc.wait(timeout=30) == 0
    assert out == b"a" * 3000000 + b"\ndone\n"
    logged = dy("logs", "big", text=False).stdout
    assert logged == out


def test_api_attach_resize_archive(client, busybox):
    """What the Docker-compatible API server drives: attach, resize, archives, diff, exec."""
    import io
    import tarfile

    from dockyard.engine import protocol
    from dockyard.engine.execution import open_exec, wait_exit

    c = client.containers.run("busybox", ["sh", "-c", "read l; echo got:$l; stty size; sleep 60"], detach=True,
                              name="apis", network_mode="none", tty=True, stdin_open=True)
    conn = client.containers.attach(c.id, stdin=True)
    client.containers.resize(c.id, 31, 97)
    conn.send(protocol.STDIN, b"hello\r")
    seen = b""
    while b"31 97" not in seen:
        kind, data = conn.recv_frame()
        assert kind == protocol.STDOUT
        seen += data
    assert b"got:hello" in seen
    conn.close()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        ti = tarfile.TarInfo("f.txt")
        ti.size = 3
        tf.addfile(ti, io.BytesIO(b"abc"))
    client.containers.put_archive(c.id, "/tmp", io.BytesIO(buf.getvalue()))
    out = io.BytesIO()
    client.containers.get_archive(c.id, "/tmp/f.txt", out)
    assert tarfile.open(fileobj=io.BytesIO(out.getvalue())).extractfile("f.txt").read() == b"abc"
    assert ("A", "/tmp/f.txt") in client.containers.diff(c.id)
    r, w = os.pipe()
    null = os.open(os.devnull, os.O_RDONLY)
    conn, pid, master = open_exec(client, c.id, ["sh", "-c", "echo via-api; exit 9"], [null, w, w])
    os.close(w)
    os.close(null)
    assert pid > 0 and master is None
    assert wait_exit(conn) == 9 and os.read(r, 100) == b"via-api\n"
    conn.close()
    os.close(r)
    client.containers.remove(c.id, force=True)


def test_start_from_a_threaded_process(client, busybox):
    """A multi-threaded caller (the API server) gets its monitor from a fresh interpreter, not a fork."""
    import threading

    from dockyard.engine.options import RunOptions, build_body

    body = build_body(RunOptions(image="busybox", command=["sh", "-c", "sleep 0.2; exit 5"], network="none"))
    c = client.containers.create(body, "threaded")
    result: dict[str, int] = {}
    waiter = threading.Thread(target=lambda: result.update(code=client.containers.wait(c.id, "next-exit")))
    waiter.start()
    time.sleep(0.1)
    client.containers.start(c.id)
    waiter.join(20)
    assert result == {"code": 5}
    assert client.containers.get(c.id).status == "exited"


def test_stat_path(client, busybox):
    c = client.containers.run("busybox", ["sh", "-c", "echo 1234 > /f; ln -s /f /l; sleep 60"], detach=True,
                              name="stt", network_mode="none")
    time.sleep(0.3)
    st = client.containers.stat_path(c.id, "/f")
    assert (st["name"], st["size"], st["linkTarget"]) == ("f", 5, "") and st["mode"] & 0o170000 == 0o100000
    assert client.containers.stat_path(c.id, "/l")["linkTarget"] == "/f"
    from dockyard.errors import NotFound

    with pytest.raises(NotFound, match="Could not find the file /nope in container"):
        client.containers.stat_path(c.id, "/nope")
    client.containers.remove(c.id, force=True)
