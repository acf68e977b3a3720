"""``dockyard events``: the state root's event journal, written by every process, read as docker's
``docker events`` prints it.

The journal itself (concurrent appends from many processes, rotation with a follower reading
across it, moby's filter rules), then what users see: the events of a container's life in
docker's order with docker's attributes (what the CLI did, and what the monitor saw on its own:
``die`` with the exit code, ``health_status``), ``--since``/``--until``/``--filter``/``--format``,
a stream that follows until Ctrl-C, the API's ``/events`` showing what the CLI did, and the
same command sequence side by side with ``docker events``.
"""
from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from dockyard.engine import events as journal
from tests.engine.service_helper import api_service
from tests.sidebyside import tag_busybox_in_both

REPO = Path(__file__).resolve().parents[2]


def _now() -> str:
    return f"{time.time():.9f}"


def _actions(dy, since: str, *extra: str) -> list[str]:
    out = dy.ok("events", "--since", since, "--until", _now(), "--format",
                "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}", *extra)
    return out.splitlines()


# ------------------------------------------------------------------------------ the journal
def test_concurrent_appends_from_many_processes_never_interleave(tmp_path: Path) -> None:
    code = ("import sys; from dockyard.engine import events as j\n"
            "for i in range(200): j.emit(sys.argv[1], 'container', 'start', sys.argv[2] * 64, {'n': str(i), 'pad': 'x' * 300})")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path), c], cwd=REPO) for c in "abcdef"]
    assert all(p.wait(60) == 0 for p in procs)
    lines = journal.journal_path(tmp_path).read_bytes().splitlines()
    assert len(lines) == 6 * 200
    seen: dict[str, list[int]] = {}
    for line in lines:
        event = json.loads(line)  # a torn or interleaved line would not parse
        seen.setdefault(event["id"][0], []).append(int(event["Actor"]["Attributes"]["n"]))
    assert all(ns == list(range(200)) for ns in seen.values())  # each writer's order is kept


def test_rotation_bounds_the_history_and_a_follower_reads_across_it(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(journal, "MAX_BYTES", 4096)
    follower = journal.Follower(tmp_path, from_start=False)
    got = []
    for i in range(100):
        journal.emit(tmp_path, "volume", "create", f"v{i}", {"driver": "local"})
        if i % 7 == 0:
            got += follower.poll()
    got += follower.poll()
    follower.close()
    assert [e["Actor"]["ID"] for e in got] == [f"v{i}" for i in range(100)]  # nothing lost or repeated
    path = journal.journal_path(tmp_path)
    assert path.with_name(path.name + ".1").exists()
    total = path.stat().st_size + path.with_name(path.name + ".1").stat().st_size
    assert total <= 2 * 4096 + 1024
    kept = [e["Actor"]["ID"] for e in journal.read(tmp_path)]
    assert kept == sorted(kept, key=lambda v: int(v[1:])) and kept[-1] == "v99" and len(kept) < 100


def test_filters_follow_mobys_rules() -> None:
    ev = journal.make_event("container", "exec_create: sh -c true", "abcdef" * 10 + "0123",
                            {"name": "web", "image": "busybox:latest", "tier": "front"})
    assert journal.matches(ev, {"container": ["abcdef"]})          # an ID prefix
    assert journal.matches(ev, {"container": ["web", "other"]})     # a name; one of the values
    assert journal.matches(ev, {"container": ["we"], "type": ["container"]})  # a name prefix too
    assert journal.matches(ev, {"event": ["exec_create"]})          # fuzzy for exec_create
    assert not journal.matches(ev, {"event": ["exec"]})
    assert journal.matches(ev, {"image": ["busybox"]}) and journal.matches(ev, {"image": ["busybox:latest"]})
    assert not journal.matches(ev, {"image": ["busy"]})
    assert journal.matches(ev, {"label": ["tier=front", "tier"]}) and not journal.matches(ev, {"label": ["tier=back"]})
    assert not journal.matches(ev, {"type": ["volume"]})
    net = journal.make_event("network", "connect", "f" * 64, {"container": "abc", "name": "bridge", "type": "bridge"})
    assert not journal.matches(net, {"container": ["abc"]})  # the actor is the network
    assert journal.matches(net, {"network": ["bridge"]})


def test_default_line_is_dockers() -> None:
    ev = journal.make_event("container", "die", "c" * 64, {"name": "x", "image": "busybox", "exitCode": "0"},
                            now_ns=1_795_000_000_123_456_789)
    assert journal.format_line(ev) == ("2026-11-18T11:06:40.123456789Z container die " + "c" * 64
                                       + " (exitCode=0, image=busybox, name=x)")
    assert ev["status"] == "die" and ev["from"] == "busybox" and ev["time"] == 1_795_000_000


# ------------------------------------------------------------------------------ the CLI
def test_a_containers_life_in_dockers_order(dy) -> None:
    since = _now()
    dy.ok("volume", "create", "evvol")
    dy.ok("create", "--name", "ev1", "--network", "none", "-v", "evvol:/data", "--label", "tier=a", "busybox", "sleep", "30")
    dy.ok("start", "ev1")
    dy.ok("exec", "ev1", "true")
    dy.ok("rename", "ev1", "ev2")
    dy.ok("stop", "-t", "1", "ev2")
    dy.ok("rm", "ev2")
    for _ in range(2):
        assert dy("run", "--rm", "--network", "none", "--name", "ev3", "busybox", "sh", "-c", "exit 3").returncode == 3
    dy.ok("tag", "busybox", "evtag:1")
    dy.ok("rmi", "evtag:1")
    dy.ok("volume", "rm", "evvol")
    lines = _actions(dy, since)
    assert lines[:14] == [
        "volume create <no value>",
        "container create ev1", "network connect none", "volume mount <no value>", "container start ev1",
        "container exec_create: true  ev1", "container exec_start: true  ev1", "container exec_die ev1",
        "container rename ev2", "container kill ev2", "container kill ev2", "container die ev2",
        "network disconnect none", "volume unmount <no value>"]
    assert lines[14:16] == ["container stop ev2", "container destroy ev2"]
    run = ["container create ev3", "container attach ev3", "network connect none", "container start ev3",
           "container die ev3", "network disconnect none", "container destroy ev3"]
    assert lines[16:30] == run + run
    assert lines[30] == "image tag evtag:1" and lines[31].startswith("image untag sha256:")
    assert lines[32:] == ["volume destroy <no value>"]
    raw = [json.loads(x) for x in dy.ok("events", "--since", since, "--until", _now(), "--format", "json",
                                        "--filter", "container=ev3", "--filter", "event=die").splitlines()]
    assert [e["Actor"]["Attributes"]["exitCode"] for e in raw] == ["3", "3"]
    labelled = _actions(dy, since, "--filter", "label=tier=a", "--filter", "event=start")
    assert labelled == ["container start ev1"]
    kills = dy.ok("events", "--since", since, "--until", _now(), "--filter", "event=kill",
                  "--format", "{{.Actor.Attributes.signal}}").split()
    assert kills == ["15", "9"]


def test_the_monitor_reports_health_changes(dy) -> None:
    since = _now()
    cid = dy.run_d("--health-cmd", "true", "--health-interval", "1s", "busybox", "sleep", "30")
    dy.wait_for(cid, lambda d: d["State"].get("Health", {}).get("Status") == "healthy")
    actions = _actions(dy, since, "--filter", "event=health_status")
    assert actions == ["container health_status: healthy " + dy.inspect(cid)["Name"].lstrip("/")]
    dy.ok("rm", "-f", cid)


def test_cp_and_top_events(dy, tmp_path: Path) -> None:
    since = _now()
    cid = dy.run_d("--name", "evcp", "busybox", "sleep", "30")
    dy.ok("top", "evcp")
    dy.ok("cp", "evcp:/etc/passwd", str(tmp_path / "passwd"))
    dy.ok("cp", str(tmp_path / "passwd"), "evcp:/tmp/")
    dy.ok("rm", "-f", cid)
    actions = [x.split()[1] for x in _actions(dy, since, "--filter", "container=evcp")]
    assert actions == ["create", "start", "top", "archive-path", "extract-to-dir", "kill", "die", "destroy"]


def test_the_monitor_reports_an_oom_kill_before_the_death(dy) -> None:
    since = _now()
    proc = dy("run", "--rm", "--network", "none", "--name", "evoom", "--memory", "8m", "--memory-swap", "8m", "busybox",
              "sh", "-c", "a=$(head -c 60000000 /dev/zero | tr '\\0' x)")
    assert proc.returncode == 137
    out = dy.ok("events", "--since", since, "--until", _now(), "--filter", "container=evoom",
                "--format", "{{.Action}} {{.Actor.Attributes.exitCode}}").splitlines()
    assert out[out.index("oom <no value>") + 1] == "die 137"


def test_commit_and_prune_events(dy) -> None:
    since = _now()
    dy.ok("run", "--name", "evc", "--network", "none", "busybox", "true")
    image = dy.ok("commit", "-m", "note", "evc", "evc:1").strip()
    dy.ok("container", "prune", "-f")
    out = dy.ok("events", "--since", since, "--until", _now(), "--format",
                "{{.Type}} {{.Action}} {{.Actor.ID}} {{json .Actor.Attributes}}").splitlines()
    tag, commit = out.index(f"image tag {image} " + '{"name":"evc:1"}'), [x for x in out if " commit " in x][0]
    assert json.loads(commit.split(" ", 3)[3]) == {"comment": "note", "image": "busybox", "imageID": image,
                                                  "imageRef": "evc:1", "name": "evc"}
    assert out.index(commit) == tag + 1
    assert out[-2].startswith("container destroy ") and out[-1].startswith("container prune  {\"reclaimed\":")
    dy.ok("rmi", "evc:1")


def test_times_filters_and_formats(dy) -> None:
    past = dy("events", "--since", "bogus")
    assert (past.returncode, past.stderr.strip()) == (1, 'failed to parse value as time or duration: "bogus"')
    backwards = dy("events", "--since", "1m", "--until", "2m")
    assert backwards.returncode == 1 and backwards.stderr.startswith("Error response from daemon: `since` time (")
    assert "cannot be after `until` time (" in backwards.stderr
    bad = dy("events", "--filter", "nokey")
    assert bad.returncode == 125 and 'bad format of filter (expected name=value)' in bad.stderr
    tmpl = dy("events", "--since", "1s", "--until", "0s", "--format", "{{.Nope")
    assert tmpl.returncode == 64 and tmpl.stderr.startswith("Error parsing format: ")
    dy.ok("volume", "create", "evfmt")
    out = dy.ok("events", "--since", "1m", "--until", "0s", "--format", "{{.Type}}|{{.Action}}|{{.Actor.ID}}|{{.Scope}}")
    assert out.splitlines()[-1] == "volume|create|evfmt|local"
    line = dy.ok("system", "events", "--since", "1m", "--until", "0s").splitlines()[-1]
    assert line.endswith(" volume create evfmt (driver=local)") and line[29] == "Z"  # nine digits, as docker
    assert dy.ok("events", "--since", "1m", "--until", "0s", "--filter", "type=container") == ""
    doc = json.loads(dy.ok("events", "--since", "1m", "--until", "0s", "--format", "{{json .}}").splitlines()[-1])
    assert list(doc) == ["Type", "Action", "Actor", "scope", "time", "timeNano"]  # dockerd's order, no id/status
    run = dy.ok("run", "--rm", "--network", "none", "--name", "evjs", "busybox", "true")
    assert run == ""
    docs = [json.loads(x) for x in dy.ok("events", "--since", "1m", "--until", "0s", "--format", "{{json .}}",
                                         "--filter", "container=evjs").splitlines()]
    assert list(docs[0]) == ["status", "id", "from", "Type", "Action", "Actor", "scope", "time", "timeNano"]
    assert list(docs[0]["Actor"]) == ["ID", "Attributes"]
    whole = dy.ok("events", "--since", "1m", "--until", "0s", "--format", "{{.}}", "--filter", "container=evjs")
    assert whole.startswith("{create " + docs[0]["id"] + " busybox container create {" + docs[0]["id"] + " map[")
    missing = dy("events", "--since", "1m", "--until", "0s", "--format", "{{.Foo}}", "--filter", "container=evjs")
    assert (missing.returncode, missing.stderr.strip()) == (64, 'Error parsing format: template: :1:2: executing "" '
                                                               'at <.Foo>: can\'t evaluate field Foo in type *events.Message')
    dy.ok("volume", "rm", "evfmt")


def test_events_stream_until_interrupted(dy, root: Path) -> None:
    env = dict(os.environ, DOCKYARD_ROOT=str(root))
    proc = subprocess.Popen([sys.executable, "-m", "dockyard", "events", "--filter", "type=container"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    try:
        time.sleep(1.0)  # following from now on: what came before is not shown
        dy.ok("run", "--rm", "--network", "none", "--name", "evstream", "busybox", "true")
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
        reader.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(" destroy " in x for x in lines):
            time.sleep(0.05)
        assert [x.split()[2] for x in lines] == ["create", "attach", "start", "die", "destroy"]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_the_api_shows_what_the_cli_did(dy, root: Path) -> None:
    with api_service(root) as sock_path:
        since = _now()
        dy.ok("run", "--rm", "--network", "none", "--name", "evapi", "busybox", "true")

        class Conn(http.client.HTTPConnection):
            def connect(self) -> None:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(str(sock_path))

        conn = Conn("localhost", timeout=20)
        conn.request("GET", f"/v1.43/events?since={since}&until={_now()}&filters="
                     + json.dumps({"container": ["evapi"]}).replace(" ", ""))
        body = conn.getresponse().read().decode()
        actions = [json.loads(x)["Action"] for x in body.splitlines() if x.strip()]
        assert actions == ["create", "attach", "start", "die", "destroy"]


# ------------------------------------------------------------------------------ side by side
@pytest.mark.interop
def test_same_events_as_docker(dy, docker_busybox: str) -> None:
    tag = f"evpar-{os.getpid()}"
    tag_busybox_in_both(dy, docker_busybox, tag)
    name, vol = f"evp{os.getpid()}", f"evpvol{os.getpid()}"
    script = [("volume", "create", vol),
              ("create", "--name", name, "--network", "none", "-v", f"{vol}:/data", tag, "sleep", "30"),
              ("start", name), ("exec", name, "true"), ("top", name), ("kill", "-s", "HUP", name),
              ("stop", "-t", "1", name),
              ("start", name), ("restart", "-t", "1", name), ("pause", name), ("unpause", name),
              ("rm", "-f", name), ("run", "--rm", "--network", "none", "--name", name + "r", tag, "sh", "-c", "exit 2"),
              ("tag", tag, f"{tag}-2:x"), ("rmi", f"{tag}-2:x"), ("volume", "rm", vol)]
    fmt = ("{{.Type}} {{.Action}} {{.Actor.Attributes.name}} {{.Actor.Attributes.exitCode}} "
           "{{.Actor.Attributes.signal}} {{.Actor.Attributes.destination}} {{.Actor.Attributes.driver}}")
    filters = ["--filter", f"container={name}", "--filter", f"container={name}r", "--filter", f"volume={vol}",
               "--filter", f"image={tag}-2:x", "--filter", "type=container", "--filter", "type=volume",
               "--filter", "type=image"]
    outputs = []
    try:
        for engine in ("docker", "dockyard"):
            since = _now()
            for args in script:
                if engine == "docker":
                    subprocess.run(["docker", *args], capture_output=True, timeout=60)
                else:
                    dy(*args)
            time.sleep(0.5)
            until = _now()
            cmd = ("events", "--since", since, "--until", until, "--format", fmt, *filters)
            out = (subprocess.run(["docker", *cmd], capture_output=True, text=True, timeout=60).stdout
                   if engine == "docker" else dy.ok(*cmd))
            # image untag/delete carry each engine's image ID as name
            outputs.append([x for x in out.splitlines() if not x.startswith(("image untag", "image delete"))])
    finally:
        subprocess.run(["docker", "rm", "-f", name, name + "r"], capture_output=True)
        subprocess.run(["docker", "volume", "rm", "-f", vol], capture_output=True)
        subprocess.run(["docker", "rmi", f"{tag}:latest", f"{tag}-2:x"], capture_output=True)
    assert outputs[1] == outputs[0]
