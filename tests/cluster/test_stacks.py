"""``stack deploy/ls/services/ps/rm`` with a compose file (v3 subset)."""
from __future__ import annotations

from .helpers import free_port, http_get, tasks_of, wait_for

COMPOSE = """\
version: "3.8"
services:
  web:
    image: busybox
    command: httpd -f -p 80 -h /etc
    environment:
      GREETING: hello
    ports:
      - "{port}:80"
    stop_grace_period: 1s
    healthcheck:
      test: ["CMD", "test", "-f", "/etc/hostname"]
      interval: 300ms
      retries: 2
    deploy:
      replicas: {replicas}
      update_config:
        parallelism: 2
        order: start-first
  worker:
    image: busybox
    command: ["sleep", "600"]
    stop_grace_period: 1s
"""


def test_stack_deploy_update_and_rm(cli, swarm, tmp_path):
    port = free_port()
    compose = tmp_path / "stack.yml"
    compose.write_text(COMPOSE.format(port=port, replicas=2))
    r = cli("stack", "deploy", "-c", str(compose), "app", check=True)
    assert r.stdout == "Creating service app_web\nCreating service app_worker\n"
    assert cli("stack", "ls", check=True).stdout.split() == ["NAME", "SERVICES", "app", "2"]
    wait_for(lambda: len(tasks_of(swarm, "app_web")) == 2 and len(tasks_of(swarm, "app_worker")) == 1, 30,
             "the stack's tasks")
    wait_for(lambda: _answers(port), 30, "the published port to answer")
    assert len({http_get(port, "/hostname") for _ in range(6)}) == 2
    web = tasks_of(swarm, "app_web")[0]
    assert web.labels["com.docker.stack.namespace"] == "app"
    assert "GREETING=hello" in web.attrs["Config"]["Env"]
    assert web.attrs["Config"]["Healthcheck"]["Test"] == ["CMD", "test", "-f", "/etc/hostname"]
    rows = [line.split() for line in cli("stack", "services", "app", check=True).stdout.splitlines()]
    assert rows[0] == ["ID", "NAME", "MODE", "REPLICAS", "IMAGE", "PORTS"]
    assert [row[1] for row in rows[1:]] == ["app_web", "app_worker"]
    assert rows[1][5] == f"*:{port}->80/tcp"
    assert "app_worker.1" in cli("stack", "ps", "app", check=True).stdout

    # deploying again updates in place: the replica count changes, the tasks stay
    compose.write_text(COMPOSE.format(port=port, replicas=3))
    r = cli("stack", "deploy", "-c", str(compose), "app", check=True)
    assert r.stdout.startswith("Updating service app_web (id: ")
    wait_for(lambda: len(tasks_of(swarm, "app_web")) == 3, 30, "3 web tasks")
    assert web.id in {t.id for t in tasks_of(swarm, "app_web")}

    r = cli("stack", "rm", "app", check=True)
    assert r.stdout == "Removing service app_web\nRemoving service app_worker\n"
    assert cli("stack", "ls").stdout.split() == ["NAME", "SERVICES"]
    assert tasks_of(swarm, "app_web") == [] and tasks_of(swarm, "app_worker") == []
    assert cli("stack", "rm", "app").stderr == "Nothing found in stack: app\n"


def test_stack_deploy_refuses_bad_files(cli, swarm, tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("services:\n  web:\n    command: true\n")
    r = cli("stack", "deploy", "-c", str(bad), "app")
    assert r.returncode == 1 and "Service web has neither an image nor a build context specified" in r.stderr
    r = cli("stack", "deploy", "-c", str(tmp_path / "missing.yml"), "app")
    assert r.returncode == 1 and "missing.yml" in r.stderr
    assert cli("stack", "ls").stdout.split() == ["NAME", "SERVICES"]


def _answers(port: int) -> bool:
    try:
        http_get(port, "/hostname", timeout=2)
        return True
    except OSError:
        return False
