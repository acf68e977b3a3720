"""Services on a single-node swarm, through the CLI, with real containers and real traffic."""
from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from typing import Any

import pytest

from .helpers import free_port, http_get, manager_processes, tasks_of, wait_for

HTTPD = ["httpd", "-f", "-p", "80", "-h", "/etc"]  # serves /etc/hostname: which task answered


def replicas(cli: Any, name: str) -> str:
    return cli("service", "ls", "--filter", f"name={name}", "--format", "{{.Replicas}}").stdout.strip()


def hostnames(port: int, n: int, **kw: Any) -> Counter[str]:
    return Counter(http_get(port, "/hostname", **kw).strip() for _ in range(n))


def test_swarm_init_leave_and_refusals(cli, root, clean_cluster):
    r = cli("service", "ls")
    assert r.returncode == 1
    assert r.stderr == ('Error response from daemon: This node is not a swarm manager. Use "docker swarm init" '
                        'or "docker swarm join" to connect this node to swarm and try again.\n')
    r = cli("swarm", "init", check=True)
    try:
        assert r.stdout.startswith("Swarm initialized: current node (")
        node_id = r.stdout.split("(")[1].split(")")[0]
        assert len(node_id) == 25
        assert manager_processes(root)
        r = cli("swarm", "init")
        assert r.returncode == 1 and "This node is already part of a swarm" in r.stderr
        lines = cli("node", "ls", check=True).stdout.splitlines()
        assert lines[0].split() == ["ID", "HOSTNAME", "STATUS", "AVAILABILITY", "MANAGER", "STATUS", "ENGINE", "VERSION"]
        assert lines[1].split()[:2] == [node_id, "*"] and lines[1].split()[3:6] == ["Ready", "Active", "Leader"]
        r = cli("swarm", "leave")
        assert r.returncode == 1 and "Use `--force` to ignore this message." in r.stderr
        assert cli("service", "inspect", "nope").stderr == "Error: no such service: nope\n"
        r = cli("service", "create", "--name", "bad name", "busybox")
        assert r.returncode == 1 and "name must be valid as a DNS name component" in r.stderr
    finally:
        r = cli("swarm", "leave", "--force")
    assert r.returncode == 0 and r.stdout == "Node left the swarm.\n"
    wait_for(lambda: not manager_processes(root), 10, "the manager to exit")
    assert cli("swarm", "leave", "--force").stderr == "Error response from daemon: This node is not part of a swarm\n"


def test_replicas_balance_recover_and_scale(cli, swarm, root, other_netns):
    client = swarm
    port = free_port()
    r = cli("service", "create", "--name", "web", "--replicas", "2", "-p", f"{port}:80",
            "--restart-delay", "0s", "--stop-grace-period", "1s", "busybox", *HTTPD, check=True)
    assert r.stdout.splitlines()[-1].startswith("verify: Service ") and r.stdout.rstrip().endswith("converged")
    service_id = r.stdout.splitlines()[0]
    ls = cli("service", "ls", check=True).stdout.splitlines()
    assert ls[0].split() == ["ID", "NAME", "MODE", "REPLICAS", "IMAGE", "PORTS"]
    assert ls[1].split() == [service_id[:12], "web", "replicated", "2/2", "busybox", f"*:{port}->80/tcp"]

    # tasks are ordinary containers, named and labelled as swarm's
    tasks = tasks_of(client, "web")
    assert sorted(t.name.rsplit(".", 1)[0] for t in tasks) == ["web.1", "web.2"]
    assert all(t.labels["com.docker.swarm.service.id"] == service_id for t in tasks)
    assert {t.name for t in tasks} <= set(cli("ps", "--format", "{{.Names}}").stdout.split())
    ids = {t.id[:12] for t in tasks}

    # balanced over both tasks, from the host's loopback and from another network namespace
    assert set(hostnames(port, 6)) == ids
    seen = Counter(other_netns.get(port, "/hostname").stdout.strip() for _ in range(4))
    assert set(seen) == ids, seen
    # and from a container on another network (its gateway is a host address)
    r = cli("run", "--rm", "busybox", "sh", "-c", "gw=$(ip route | awk '/default/ {print $3}'); "
            f"printf 'GET /hostname HTTP/1.0\\r\\n\\r\\n' | nc -w 5 $gw {port}", check=True)
    assert r.stdout.splitlines()[-1] in ids, r.stdout

    # a task removed with rm -f, or whose process is killed, is replaced
    victim = tasks[0]
    cli("rm", "-f", victim.id, check=True)
    wait_for(lambda: len(tasks_of(client, "web")) == 2 and victim.id not in {t.id for t in tasks_of(client, "web")},
             30, "a replacement for the removed task")
    pid = tasks_of(client, "web")[0].attrs["State"]["Pid"]
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: len({t.id for t in tasks_of(client, "web")} - {victim.id}) == 2 and all(
        t.attrs["State"]["Pid"] != pid for t in tasks_of(client, "web")), 30, "a replacement for the killed task")
    wait_for(lambda: replicas(cli, "web") == "2/2", 30, "2/2 replicas")
    ps = cli("service", "ps", "web", check=True).stdout
    assert "Failed" in ps and "\\_ web." in ps
    new_ids = {t.id[:12] for t in tasks_of(client, "web")}
    wait_for(lambda: set(hostnames(port, 6)) == new_ids, 20, "traffic to the replacements only")

    # scale up and down
    assert cli("service", "scale", "web=3", check=True).stdout.startswith("web scaled to 3\n")
    assert len(tasks_of(client, "web")) == 3
    assert len(set(hostnames(port, 9))) == 3
    cli("service", "scale", "web=1", check=True)
    wait_for(lambda: len(tasks_of(client, "web")) == 1, 20, "scale down to 1")
    only = tasks_of(client, "web")[0].id[:12]
    assert set(hostnames(port, 3)) == {only}

    # the manager is restarted by the next command if it dies; tasks keep running meanwhile
    for pid in manager_processes(root):
        os.kill(pid, signal.SIGKILL)
    cli("service", "scale", "web=2", check=True)
    assert manager_processes(root) and len(tasks_of(client, "web")) == 2

    assert cli("service", "rm", "web", check=True).stdout == "web\n"
    assert tasks_of(client, "web") == []
    from dockyard.cluster.ingress import Ingress

    wait_for(lambda: Ingress(client).leftovers() == [], 10, "no service rule left")
    assert cli("service", "ls", "-q").stdout == ""


def test_only_healthy_tasks_get_traffic_and_unhealthy_ones_are_replaced(cli, swarm):
    client = swarm
    port = free_port()
    cli("service", "create", "-d", "--name", "hc", "--replicas", "2", "-p", f"{port}:80",
        "--health-cmd", "test -f /tmp/ok", "--health-interval", "300ms", "--health-retries", "1",
        "--health-start-period", "60s", "--restart-delay", "0s", "--stop-grace-period", "1s",
        "busybox", *HTTPD, check=True)
    wait_for(lambda: len(tasks_of(client, "hc")) == 2 and all(
        t.attrs["State"].get("Health", {}).get("Status") == "starting" for t in tasks_of(client, "hc")),
        30, "two starting tasks")
    # listening, but not healthy yet: no endpoint behind the port
    time.sleep(0.5)  # (a few passes of the manager: what we assert is that nothing happens)
    try:
        http_get(port, "/hostname", timeout=2)
        raise AssertionError("a task that is not healthy got traffic")
    except OSError:
        pass
    first, second = tasks_of(client, "hc")
    first.exec_run(["touch", "/tmp/ok"])
    wait_for(lambda: _try(port) == first.id[:12], 20, "traffic to the healthy task")
    assert set(hostnames(port, 6)) == {first.id[:12]}
    second.exec_run(["touch", "/tmp/ok"])
    wait_for(lambda: len(set(hostnames(port, 4))) == 2, 20, "traffic to both healthy tasks")
    # the first turns unhealthy: out of the balancer, replaced by a new task
    first.exec_run(["rm", "/tmp/ok"])
    wait_for(lambda: first.id not in {t.id for t in tasks_of(client, "hc")}, 20, "the unhealthy task to go")
    seen = hostnames(port, 6)
    assert set(seen) == {second.id[:12]}, (seen, first.id[:12], second.id[:12], _debug(cli, swarm, "hc"))
    wait_for(lambda: len(tasks_of(client, "hc")) == 2, 20, "its replacement")
    ps = cli("service", "ps", "--no-trunc", "hc").stdout
    assert "unhealthy container" in ps


def _debug(cli: Any, client: Any, name: str) -> str:
    from dockyard.network.firewall import run_iptables

    return "\n".join([cli("service", "ps", "--no-trunc", name).stdout, cli("ps", "-a").stdout,
                      run_iptables("nat", "-S").stdout, *(f"{t.name} {t.attrs['NetworkSettings']['Networks']}"
                                                           for t in tasks_of(client, name))])


def _try(port: int) -> str | None:
    try:
        return http_get(port, "/hostname", timeout=2).strip()
    except OSError:
        return None


@pytest.mark.parametrize("order", ["default", "stop-first"])
def test_rolling_update_serves_every_request(cli, swarm, tmp_path, order):
    """A client loop during ``service update --image``: no failed request, and the new version
    is what is served at the end. The default for a published port is start-first; stop-first
    drains each old task out of the balancer before stopping it."""
    for version in ("1", "2"):
        ctx = tmp_path / f"v{version}"
        ctx.mkdir()
        (ctx / "Dockerfile").write_text(f"FROM busybox\nRUN mkdir -p /www && echo version-{version} > /www/index.html\n")
        cli("build", "-q", "-t", f"site:{version}", str(ctx), check=True)
    port = free_port()
    flags = [] if order == "default" else ["--update-order", order]
    cli("service", "create", "--name", "site", "--replicas", "2", "-p", f"{port}:80", "--stop-grace-period", "1s",
        *flags, "site:1", "httpd", "-f", "-p", "80", "-h", "/www", check=True)
    assert http_get(port) == "version-1\n"
    results: Counter[str] = Counter()
    errors: list[str] = []
    stop = threading.Event()

    def client_loop() -> None:
        while not stop.is_set():
            try:
                results[http_get(port, timeout=5).strip()] += 1
            except OSError as exc:
                errors.append(repr(exc))

    loop = threading.Thread(target=client_loop)
    loop.start()
    try:
        wait_for(lambda: sum(results.values()) >= 20, 20, "the client loop to run")
        r = cli("service", "update", "--image", "site:2", "site", check=True)
        assert r.stdout.startswith("site\n") and r.stdout.rstrip().endswith("converged")
        after = sum(results.values())
        wait_for(lambda: sum(results.values()) >= after + 20, 20, "requests after the update")
    finally:
        stop.set()
        loop.join()
    assert errors == [], f"{len(errors)} failed requests (of {sum(results.values())}): {errors[:5]}"
    assert results["version-1"] > 0 and results["version-2"] > 0, results
    assert {http_get(port) for _ in range(4)} == {"version-2\n"}
    images = {t.attrs["Config"]["Image"] for t in tasks_of(swarm, "site")}
    assert images == {"site:2"}
    status = cli("service", "inspect", "-f", "{{.UpdateStatus.State}} {{.Spec.UpdateConfig.Order}}", "site").stdout
    assert status == f"completed {'start-first' if order == 'default' else order}\n"
    ps = cli("service", "ps", "site").stdout
    assert ps.count("Shutdown") >= 2 and "site:1" in ps and "site:2" in ps


def test_update_env_force_and_inspect(cli, swarm):
    cli("service", "create", "--name", "env", "--replicas", "1", "-e", "A=1", "--update-order", "stop-first",
        "--stop-grace-period", "1s", "busybox", "sleep", "600", check=True)
    first = tasks_of(swarm, "env")[0]
    cli("service", "update", "--env-add", "B=2", "--env-rm", "A", "env", check=True)
    task = tasks_of(swarm, "env")[0]
    assert task.id != first.id
    env = task.attrs["Config"]["Env"]
    assert "B=2" in env and not any(e.startswith("A=") for e in env)
    cli("service", "update", "--force", "env", check=True)
    assert tasks_of(swarm, "env")[0].id != task.id
    out = cli("service", "inspect", "--pretty", "env", check=True).stdout
    assert "Name:           env\n" in out and "Update order:      stop-first" in out
    doc = cli("service", "inspect", "-f", "{{json .Spec.TaskTemplate.ContainerSpec.Env}} {{.Spec.TaskTemplate.ForceUpdate}}",
              "env").stdout
    assert doc == '["B=2"] 1\n'
    r = cli("service", "create", "--name", "env", "busybox")
    assert r.returncode == 1 and "already exists" in r.stderr


def test_published_port_conflicts(cli, swarm):
    port = free_port()
    cli("service", "create", "-d", "--name", "a", "-p", f"{port}:80", "busybox", *HTTPD, check=True)
    r = cli("service", "create", "-d", "--name", "b", "-p", f"{port}:80", "busybox", *HTTPD)
    assert r.returncode == 1
    assert f"port '{port}' is already in use by service 'a'" in r.stderr
    r = cli("run", "-d", "--name", "taker", "-p", f"{port}:80", "busybox", "true")
    assert r.returncode != 0 and "port is already allocated" in r.stderr
    cli("rm", "-f", "taker")  # (docker too leaves the container it could not start)


def test_restart_condition_none_and_logs(cli, swarm):
    cli("service", "create", "-d", "--name", "once", "--restart-condition", "none", "busybox",
        "sh", "-c", "echo hello from $(hostname)", check=True)
    wait_for(lambda: "Complete" in cli("service", "ps", "once").stdout, 30, "the task to complete")
    time.sleep(1)  # (passes of the manager: the task must not come back)
    ps = cli("service", "ps", "once").stdout.splitlines()
    assert len(ps) == 2 and ps[1].split()[4:6] == ["Shutdown", "Complete"]
    assert cli("service", "ls", "--format", "{{.Name}} {{.Replicas}}").stdout == "once 0/1\n"


def test_service_logs_prefix(cli, swarm):
    cli("service", "create", "--name", "talk", "--replicas", "2", "--stop-grace-period", "1s", "busybox",
        "sh", "-c", "echo hi; exec sleep 600", check=True)
    wait_for(lambda: cli("service", "logs", "talk").stdout.count("| hi\n") == 2, 20, "both tasks' lines")
    out = cli("service", "logs", "talk").stdout.splitlines()
    ids = {t.labels["com.docker.swarm.task.id"][:12]: t for t in tasks_of(swarm, "talk")}
    prefixes = {line.split("@")[0] for line in out}
    assert prefixes == {f"talk.{t.name.split('.')[1]}.{tid}" for tid, t in ids.items()}
    assert cli("service", "logs", "--raw", "talk").stdout == "hi\nhi\n"


def test_service_logs_follow_sees_new_tasks(cli, swarm, root):
    import subprocess
    import sys

    cli("service", "create", "--name", "chat", "--replicas", "1", "--stop-grace-period", "1s", "busybox",
        "sh", "-c", "echo up $(hostname); exec sleep 600", check=True)
    follower = subprocess.Popen([sys.executable, "-m", "dockyard", "--root", str(root), "service", "logs", "-f",
                                 "chat"], stdout=subprocess.PIPE, text=True)
    try:
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(iter(follower.stdout.readline, "")), daemon=True)
        reader.start()
        wait_for(lambda: len(lines) == 1, 20, "the first task's line")
        cli("service", "scale", "chat=2", check=True)
        wait_for(lambda: len(lines) == 2, 20, "the new task's line")
        assert {line.split("| ")[1].split()[1] for line in lines} == {t.id[:12] for t in tasks_of(swarm, "chat")}
    finally:
        follower.kill()
        follower.wait()


def test_update_moves_the_published_port(cli, swarm):
    from dockyard.cluster.ingress import Ingress

    old, new = free_port(), free_port()
    cli("service", "create", "--name", "mover", "-p", f"{old}:80", "busybox", *HTTPD, check=True)
    assert _try(old)
    cli("service", "update", "--publish-rm", "80", "--publish-add", f"{new}:80", "mover", check=True)
    wait_for(lambda: _try(new) and not _try(old), 20, "the port to move")
    chains = [r for r in Ingress(swarm).leftovers() if r.startswith("-N ")]
    assert len(chains) == 1 and chains[0].endswith(f"-{new}"), chains
    assert cli("service", "ls", "--format", "{{.Ports}}").stdout == f"*:{new}->80/tcp\n"


def test_container_settings_reach_the_tasks(cli, swarm, tmp_path):
    env_file = tmp_path / "env"
    env_file.write_text("FROM_FILE=yes\n")
    cli("service", "create", "--name", "cfg", "--init", "--read-only", "--limit-memory", "64m", "--limit-cpu", "0.5",
        "--limit-pids", "50", "--cap-drop", "NET_RAW", "--env-file", str(env_file),
        "--mount", "type=volume,source=cfgdata,target=/data", "--container-label", "tier=web",
        "--stop-grace-period", "1s", "busybox", "sleep", "600", check=True)
    attrs = tasks_of(swarm, "cfg")[0].attrs
    host = attrs["HostConfig"]
    assert host["Init"] is True and host["ReadonlyRootfs"] is True
    assert (host["Memory"], host["NanoCpus"], host["PidsLimit"]) == (64 * 1024 * 1024, 500_000_000, 50)
    assert host["CapDrop"] == ["CAP_NET_RAW"] or host["CapDrop"] == ["NET_RAW"]
    assert "FROM_FILE=yes" in attrs["Config"]["Env"] and attrs["Config"]["Labels"]["tier"] == "web"
    assert [(m["Type"], m["Name"], m["Destination"]) for m in attrs["Mounts"]] == [("volume", "cfgdata", "/data")]
    cli("service", "update", "--mount-rm", "/data", "cfg", check=True)
    assert tasks_of(swarm, "cfg")[0].attrs["Mounts"] == []
    cli("service", "rm", "cfg", check=True)
    cli("volume", "rm", "cfgdata", check=True)


def test_rollback_returns_to_the_previous_spec(cli, swarm):
    cli("service", "create", "--name", "rb", "-e", "V=1", "--stop-grace-period", "1s", "busybox", "sleep", "600",
        check=True)
    r = cli("service", "rollback", "rb")
    assert r.returncode == 1 and "does not have a previous spec" in r.stderr
    cli("service", "update", "--env-add", "V=2", "rb", check=True)
    assert "V=2" in tasks_of(swarm, "rb")[0].attrs["Config"]["Env"]
    r = cli("service", "rollback", "rb", check=True)
    assert r.stdout.startswith("rb\nrollback: manually requested rollback\n")
    assert "V=1" in tasks_of(swarm, "rb")[0].attrs["Config"]["Env"]
