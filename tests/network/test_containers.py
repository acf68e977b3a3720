"""The same guarantees with real containers, through the CLI (engine + runtime + network service)."""
from __future__ import annotations

import json
import subprocess

import pytest

BB = "busybox"
SERVE = "mkdir -p /www && echo {text} > /www/index.html && exec httpd -f -p {port} -h /www"


@pytest.fixture
def dy(cli, nets):
    """The CLI with busybox imported; removes every container and volume afterwards (before the
    ``nets`` fixture checks that nothing is left on the host)."""
    cli("image", "busybox", check=True)
    yield cli
    ids = cli("ps", "-aq").stdout.split()
    if ids:
        cli("rm", "-f", "-v", *ids)
    cli("volume", "prune", "-f")


def run_d(dy, *args: str) -> str:
    proc = dy("run", "-d", *args)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def wait_serving(dy, name: str, port: int) -> None:
    for _ in range(100):
        if dy("exec", name, "sh", "-c", f"nc 127.0.0.1 {port} </dev/null").returncode == 0:
            return
    raise AssertionError(f"{name} never listened on {port}")


def test_two_containers_talk_by_name_and_alias(dy):
    assert dy("network", "create", "appnet").returncode == 0
    run_d(dy, "--name", "web", "--network", "appnet", "--network-alias", "www", BB, "sh", "-c",
          SERVE.format(text="hello", port=8080))
    wait_serving(dy, "web", 8080)
    for host in ("web", "www"):
        out = dy("run", "--rm", "--network", "appnet", BB, "wget", "-q", "-O-", f"http://{host}:8080/")
        assert out.stdout == "hello\n", out.stderr
    out = dy("run", "--rm", "--network", "appnet", BB, "sh", "-c", "echo x | nc www 8080 | head -1")
    assert out.stdout.startswith("HTTP/1."), out.stderr
    info = json.loads(dy("inspect", "web").stdout)[0]["NetworkSettings"]["Networks"]["appnet"]
    assert "www" in info["Aliases"] and info["IPAddress"].startswith(info["Gateway"].rsplit(".", 1)[0])


def test_published_port_from_host_and_second_host_then_released(dy, second_host):
    run_d(dy, "--name", "pub", "-p", "18380:80", BB, "sh", "-c", SERVE.format(text="pub", port=80))
    wait_serving(dy, "pub", 80)
    assert dy("port", "pub").stdout == "80/tcp -> 0.0.0.0:18380\n80/tcp -> [::]:18380\n"
    for url in ("http://127.0.0.1:18380/", "http://[::1]:18380/"):
        local = subprocess.run(["curl", "-s", url], capture_output=True, text=True)
        assert local.stdout == "pub\n", url
    remote = second_host.sh(f"{BB} wget -q -O- http://{second_host.host_ip}:18380/")
    assert remote.stdout == "pub\n", remote.stderr
    taken = dy("run", "-d", "-p", "18380:80", BB, "sleep", "5")
    assert taken.returncode == 125 and "port is already allocated" in taken.stderr
    assert dy("stop", "-t", "1", "pub").returncode == 0
    for url in ("http://127.0.0.1:18380/", "http://[::1]:18380/"):
        gone = subprocess.run(["curl", "-s", "-m", "2", url], capture_output=True)
        assert gone.returncode != 0, url


def test_publish_all_uses_free_host_ports(dy):
    run_d(dy, "--name", "all", "--expose", "80", "-P", BB, "sh", "-c", SERVE.format(text="p", port=80))
    wait_serving(dy, "all", 80)
    line = dy("port", "all", "80").stdout.strip()
    port = int(line.rsplit(":", 1)[1])
    out = subprocess.run(["curl", "-s", f"http://127.0.0.1:{port}/"], capture_output=True, text=True)
    assert out.stdout == "p\n"


def test_internal_network_and_isolation(dy, second_host, tmp_path):
    second_host.httpd(8000, tmp_path / "outside", "outside\n")
    url = f"http://{second_host.ip}:8000/"
    dy("network", "create", "--internal", "sealed", check=True)
    dy("network", "create", "open", check=True)
    out = dy("run", "--rm", "--network", "open", BB, "wget", "-q", "-O-", url)
    assert out.stdout == "outside\n", out.stderr
    # (the trailing "exit" keeps sh as PID 1: the kernel ignores a SIGTERM sent to init)
    blocked = dy("run", "--rm", "--network", "sealed", BB, "sh", "-c", f"timeout 3 wget -q -O- {url}; exit $?")
    assert blocked.returncode != 0 and blocked.stdout == ""
    run_d(dy, "--name", "target", "--network", "sealed", BB, "sh", "-c", SERVE.format(text="t", port=80))
    wait_serving(dy, "target", 80)
    ip = json.loads(dy("inspect", "target").stdout)[0]["NetworkSettings"]["Networks"]["sealed"]["IPAddress"]
    same = dy("run", "--rm", "--network", "sealed", BB, "wget", "-q", "-O-", f"http://{ip}/")
    assert same.stdout == "t\n"
    other = dy("run", "--rm", "--network", "open", BB, "sh", "-c", f"timeout 3 wget -q -O- http://{ip}/; exit $?")
    assert other.returncode != 0 and other.stdout == ""
    in_use = dy("network", "rm", "sealed")
    assert in_use.returncode == 1 and "has active endpoints" in in_use.stderr


def test_volume_data_survives_rm_and_is_shared(dy):
    assert dy("run", "--name", "writer", "-v", "shared:/data", BB, "sh", "-c",
              "echo kept > /data/f").returncode == 0
    refused = dy("volume", "rm", "shared")
    assert refused.returncode == 1 and "volume is in use" in refused.stderr
    dy("rm", "writer", check=True)
    out = dy("run", "--rm", "-v", "shared:/data:ro", BB, "cat", "/data/f")
    assert out.stdout == "kept\n"
    run_d(dy, "--name", "sharer", "-v", "shared:/data", BB, "sh", "-c", "echo from-a > /data/a; sleep 30")
    out = dy("run", "--rm", "--volumes-from", "sharer", BB, "sh", "-c",
             "for i in 1 2 3 4 5 6 7 8 9 10; do [ -f /data/a ] && break; sleep 0.2; done; cat /data/a")
    assert out.stdout == "from-a\n"


def test_volume_prefilled_from_the_image_and_anonymous_removed_with_rm_v(dy):
    out = dy("run", "--rm", "-v", "etcvol:/etc", BB, "cat", "/etc/passwd")
    assert out.stdout.startswith("root:x:0:0"), out.stderr
    assert dy("run", "--name", "anon", "-v", "/scratch", BB, "true").returncode == 0
    assert len(dy("volume", "ls", "-q").stdout.split()) == 2
    dy("rm", "-v", "anon", check=True)
    assert dy("volume", "ls", "-q").stdout.split() == ["etcvol"]
    bad = dy("run", "--rm", "-v", "etcvol:/etc/passwd", BB, "true")
    assert bad.returncode == 125 and "cannot mount volume over existing file" in bad.stderr
