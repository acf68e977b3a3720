"""The container lifecycle on every runtime: run, logs, exec, stop, kill, pause, restart, rm.

Each test runs once on the built-in runtime, once on runc and once on crun (``runtime``
fixture); what a user sees must not depend on the runtime.
"""
from __future__ import annotations

import json
import time

import pytest


def test_run_rm_output_and_exit_code(dy, runtime, root):
    p = dy("run", "--rm", "--network", "none", "busybox", "sh", "-c", "echo out1; echo err1 >&2; echo out2; exit 3")
    assert p.returncode == 3
    assert p.stdout == "out1\nout2\n"
    assert p.stderr == "err1\n"
    assert dy.ok("ps", "-aq") == ""  # --rm: gone when run returns
    assert not list((root / "containers").glob("[0-9a-f]*"))


def test_start_errors_have_dockers_exit_codes(dy, runtime):
    p = dy("run", "--rm", "--network", "none", "busybox", "nosuchcmd")
    assert p.returncode == 127
    assert 'exec: "nosuchcmd": executable file not found in $PATH' in p.stderr or "nosuchcmd" in p.stderr
    p = dy("run", "--rm", "--network", "none", "busybox", "/etc")
    assert p.returncode == 126
    p = dy("run", "--name", "nouser", "--network", "none", "-u", "nosuchuser", "busybox", "true")
    assert p.returncode == 125
    assert "unable to find user nosuchuser: no matching entries in passwd file" in p.stderr
    state = dy.state("nouser")
    assert state["Status"] == "created" and state["ExitCode"] == 125
    assert "unable to find user" in state["Error"]


def test_logs_exact_per_stream_and_json_file(dy, runtime, root):
    script = "for i in 1 2 3; do echo o$i; echo e$i >&2; done; printf tail-no-newline"
    cid = dy.ok("run", "--network", "none", "--name", "lg", "busybox", "sh", "-c", script) and dy.inspect("lg")["Id"]
    p = dy("logs", "lg")
    assert p.stdout == "o1\no2\no3\ntail-no-newline"
    assert p.stderr == "e1\ne2\ne3\n"
    log = root / "containers" / cid / f"{cid}-json.log"
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [list(r) for r in records[:1]] == [["log", "stream", "time"]]
    assert [r["log"] for r in records if r["stream"] == "stdout"] == ["o1\n", "o2\n", "o3\n", "tail-no-newline"]
    assert [r["log"] for r in records if r["stream"] == "stderr"] == ["e1\n", "e2\n", "e3\n"]
    times = [r["time"] for r in records]
    assert all(t.endswith("Z") and "T" in t for t in times)


def test_exec_joins_namespaces_and_cgroup(dy, runtime):
    dy.run_d("--name", "ex", "-e", "FOO=bar", "-w", "/srv", "busybox", "sleep", "60")
    script = ("for n in pid net mnt uts ipc; do [ $(readlink /proc/1/ns/$n) = $(readlink /proc/self/ns/$n) ] "
              "|| echo differs $n; done; [ \"$(cat /proc/1/cgroup)\" = \"$(cat /proc/self/cgroup)\" ] "
              "|| echo cgroup differs; echo $FOO; pwd")
    p = dy("exec", "ex", "sh", "-c", script)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "bar\n/srv\n"
    p = dy("exec", "-e", "FOO=baz", "-w", "/tmp", "-u", "nobody", "ex", "sh", "-c", "echo $FOO; pwd; id -u")
    assert p.stdout == "baz\n/tmp\n65534\n"
    assert dy("exec", "ex", "sh", "-c", "exit 7").returncode == 7
    p = dy("exec", "ex", "nosuchcmd")
    assert p.returncode == 126
    p = dy("exec", "-u", "nosuchuser", "ex", "true")
    assert p.returncode == 126 and "unable to find user nosuchuser" in p.stdout  # docker: on stdout
    assert dy("exec", "-i", "ex", "cat", input="piped\n").stdout == "piped\n"


def test_stop_sends_stop_signal_then_sigkill_after_timeout(dy, runtime):
    dy.run_d("--name", "stubborn", "busybox", "sh", "-c", "trap '' TERM; echo ready; while :; do sleep 0.1; done")
    dy.wait_for("stubborn", lambda d: d["State"]["Running"])
    time.sleep(0.3)  # the trap is set
    t0 = time.monotonic()
    assert dy.ok("stop", "-t", "1", "stubborn") == "stubborn\n"
    took = time.monotonic() - t0
    assert 0.9 <= took < 4.0, took
    st = dy.state("stubborn")
    assert (st["Status"], st["ExitCode"], st["Running"]) == ("exited", 137, False)

    dy.run_d("--name", "polite", "busybox", "sh", "-c", "trap 'echo bye; exit 0' TERM; while :; do sleep 0.1; done")
    time.sleep(0.4)
    t0 = time.monotonic()
    dy.ok("stop", "polite")
    assert time.monotonic() - t0 < 3
    assert dy.state("polite")["ExitCode"] == 0
    assert dy.ok("logs", "polite") == "bye\n"


def test_stop_signal_from_flag_and_kill_signal(dy, runtime):
    dy.run_d("--name", "sig", "--stop-signal", "USR1", "busybox", "sh", "-c",
             "trap 'echo usr1; exit 5' USR1; trap 'echo usr2' USR2; while :; do sleep 0.1; done")
    time.sleep(0.4)
    dy.ok("kill", "-s", "USR2", "sig")
    time.sleep(0.4)
    assert dy.state("sig")["Running"]
    dy.ok("stop", "sig")
    assert dy.state("sig")["ExitCode"] == 5
    assert dy.ok("logs", "sig") == "usr2\nusr1\n"


def test_kill_pause_and_bad_states(dy, runtime):
    cid = dy.run_d("--name", "pz", "busybox", "sleep", "60")
    dy.ok("pause", "pz")
    st = dy.state("pz")
    assert (st["Status"], st["Paused"], st["Running"]) == ("paused", True, True)
    assert "(Paused)" in dy.ok("ps", "--format", "{{.Status}}")
    p = dy("exec", "pz", "true")
    assert p.returncode == 1 and "Container pz is paused, unpause the container before exec" in p.stderr
    p = dy("pause", "pz")
    assert p.returncode == 1 and f"Container {cid} is already paused" in p.stderr
    dy.ok("unpause", "pz")
    p = dy("unpause", "pz")
    assert p.returncode == 1 and f"Container {cid} is not paused" in p.stderr
    p = dy("rm", "pz")
    assert p.returncode == 1 and "You cannot remove a running container" in p.stderr
    assert dy.ok("kill", "pz") == "pz\n"
    st = dy.state("pz")
    assert (st["Status"], st["ExitCode"]) == ("exited", 137)
    p = dy("kill", "pz")
    assert p.returncode == 1 and f"Cannot kill container: pz: Container {cid} is not running" in p.stderr
    p = dy("exec", "pz", "true")
    assert p.returncode == 1 and f"Container {cid} is not running" in p.stderr
    dy.ok("start", "pz")
    assert dy.state("pz")["Running"]
    dy.ok("rm", "-f", "pz")
    assert dy.ok("ps", "-aq") == ""


def test_restart_verb_and_wait(dy, runtime):
    dy.run_d("--name", "rs", "busybox", "sh", "-c", "echo started; sleep 60")
    first = dy.state("rs")["StartedAt"]
    dy.ok("restart", "-t", "0", "rs")
    st = dy.state("rs")
    assert st["Running"] and st["StartedAt"] != first
    dy.run_d("--name", "wt", "busybox", "sh", "-c", "sleep 0.3; exit 4")
    assert dy.ok("wait", "wt") == "4\n"
    assert dy.ok("wait", "wt") == "4\n"  # already stopped


def test_interactive_stdin_and_start_attach(dy, runtime):
    p = dy("run", "-i", "--rm", "--network", "none", "busybox", "sh", "-c", "cat; echo done >&2", input="line1\nline2\n")
    assert (p.returncode, p.stdout, p.stderr) == (0, "line1\nline2\n", "done\n")
    dy.ok("create", "--name", "sa", "--network", "none", "busybox", "sh", "-c", "echo o; echo e >&2; exit 6")
    p = dy("start", "-a", "sa")
    assert (p.returncode, p.stdout, p.stderr) == (6, "o\n", "e\n")
    dy.ok("create", "-i", "--name", "si", "--network", "none", "busybox", "sh", "-c", "read x; echo got $x")
    p = dy("start", "-ai", "si", input="hello\n")
    assert (p.returncode, p.stdout) == (0, "got hello\n")


@pytest.mark.parametrize("policy,script,expect_runs,expect_code", [
    ("no", "exit 1", 1, 1),
    ("on-failure:2", "exit 1", 3, 1),
    ("on-failure", "exit 0", 1, 0),
])
def test_restart_policies_that_end(dy, runtime, policy, script, expect_runs, expect_code):
    dy.run_d("--name", "rp", "--restart", policy, "busybox", "sh", "-c", f"echo run; {script}")
    doc = dy.wait_for("rp", lambda d: d["State"]["Status"] == "exited", timeout=15)
    assert doc["RestartCount"] == expect_runs - 1
    assert doc["State"]["ExitCode"] == expect_code
    assert doc["HostConfig"]["RestartPolicy"]["Name"] == policy.split(":")[0]
    assert dy.ok("logs", "rp") == "run\n" * expect_runs


@pytest.mark.parametrize("policy", ["always", "unless-stopped"])
def test_restart_always_backs_off_and_stop_ends_it(dy, runtime, root, policy):
    cid = dy.run_d("--name", "ra", "--restart", policy, "busybox", "sh", "-c", "echo run")
    doc = dy.wait_for("ra", lambda d: d["RestartCount"] >= 4, timeout=15)
    assert doc["State"]["Status"] in ("running", "restarting")
    dy.ok("stop", "ra")
    st = dy.state("ra")
    assert st["Status"] == "exited"
    count = dy.inspect("ra")["RestartCount"]
    time.sleep(0.5)
    assert dy.inspect("ra")["RestartCount"] == count  # stopped by hand: no more restarts
    # docker's back-off: 100 ms, doubling, between the starts
    log = root / "containers" / cid / f"{cid}-json.log"
    from dockyard.engine.timeutil import parse_rfc3339

    stamps = [parse_rfc3339(json.loads(line)["time"]) / 1e9 for line in log.read_text().splitlines()]
    gaps = [b - a for a, b in zip(stamps, stamps[1:])][:4]
    assert gaps[0] >= 0.09 and gaps[1] >= 0.19 and gaps[2] >= 0.39, gaps


def test_healthcheck_transitions(dy, runtime):
    dy.run_d("--name", "hc", "--health-cmd", "test -f /tmp/ok && echo fine", "--health-interval", "200ms",
             "--health-retries", "2", "busybox", "sleep", "60")
    assert "(health: starting)" in dy.ok("ps", "--format", "{{.Status}}")
    doc = dy.wait_for("hc", lambda d: d["State"]["Health"]["Status"] == "unhealthy")
    assert doc["State"]["Health"]["FailingStreak"] >= 2
    assert "(unhealthy)" in dy.ok("ps", "--format", "{{.Status}}")
    dy.ok("exec", "hc", "touch", "/tmp/ok")
    doc = dy.wait_for("hc", lambda d: d["State"]["Health"]["Status"] == "healthy")
    h = doc["State"]["Health"]
    assert h["FailingStreak"] == 0
    assert h["Log"][-1]["ExitCode"] == 0 and h["Log"][-1]["Output"] == "fine\n"
    assert len(h["Log"]) <= 5
    assert dy.ok("ps", "--filter", "health=healthy", "--format", "{{.Names}}") == "hc\n"
