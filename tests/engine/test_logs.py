"""Logs: json-file rotation, --tail/--since/--until/-t, and logs -f following a running container."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from dockyard.engine.timeutil import parse_rfc3339

NONE = ("--network", "none")


def test_rotation_keeps_max_file_files(dy, root):
    script = "i=0; while [ $i -lt 300 ]; do echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; i=$((i+1)); done"
    cid = dy.ok("run", *NONE, "-d", "--log-opt", "max-size=2k", "--log-opt", "max-file=3", "busybox", "sh", "-c",
                script).strip()
    dy.ok("wait", cid)
    d = root / "containers" / cid
    files = sorted(p.name for p in d.iterdir() if p.name.startswith(f"{cid}-json.log"))
    assert files == [f"{cid}-json.log", f"{cid}-json.log.1", f"{cid}-json.log.2"]
    for f in files:
        assert (d / f).stat().st_size <= 2048 + 200  # rotated once it reached max-size
    out = dy.ok("logs", cid).splitlines()
    assert out[-1].startswith("line-299-") and len(out) < 300
    numbers = [int(line.split("-")[1]) for line in out]
    assert numbers == list(range(numbers[0], 300))  # what is kept is contiguous and in order


def test_tail_since_until_timestamps(dy, root):
    cid = dy.run_d("busybox", "sh", "-c", "echo a; echo b; sleep 1.2; echo c; echo d >&2")
    dy.ok("wait", cid)
    assert dy.ok("logs", "--tail", "2", cid) == "c\n"  # d is on stderr
    p = dy("logs", "-n", "2", cid)
    assert (p.stdout, p.stderr) == ("c\n", "d\n")
    assert dy.ok("logs", "--tail", "0", cid) == ""
    log = root / "containers" / cid / f"{cid}-json.log"
    recs = [json.loads(line) for line in log.read_text().splitlines()]
    t_c = parse_rfc3339(recs[2]["time"])
    assert dy.ok("logs", "--since", str(t_c / 1e9 - 0.1), cid) == "c\n"
    assert dy.ok("logs", "--until", recs[1]["time"], cid) == "a\nb\n"
    stamped = dy.ok("logs", "-t", cid).splitlines()
    assert stamped[0].endswith(" a") and len(stamped[0].split()[0]) == len("2006-01-02T15:04:05.000000000Z")
    assert dy.ok("logs", "--since", "1h", cid) == "a\nb\nc\n"
    p = dy("logs", "--since", "yesterday-ish", cid)
    assert p.returncode == 1


def test_logs_follow_streams_and_ends_with_the_container(dy, root):
    cid = dy.run_d("busybox", "sh", "-c", "for i in 1 2 3; do echo tick$i; sleep 0.3; done")
    env = dict(os.environ, DOCKYARD_ROOT=str(root))
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "dockyard", "logs", "-f", cid], stdout=subprocess.PIPE, env=env)
    first = proc.stdout.readline()
    assert first == b"tick1\n" and time.monotonic() - t0 < 0.8  # streamed, not at the end
    rest = proc.stdout.read()
    assert proc.wait(timeout=10) == 0
    assert rest == b"tick2\ntick3\n"


def test_log_driver_none(dy):
    cid = dy.run_d("--log-driver", "none", "busybox", "echo", "x")
    dy.ok("wait", cid)
    p = dy("logs", cid)
    assert p.returncode == 1 and "configured logging driver does not support reading" in p.stderr
    assert dy.inspect(cid)["LogPath"] == ""


def test_tty_output_is_logged_as_stdout(dy):
    cid = dy.run_d("-t", "busybox", "sh", "-c", "echo out; echo err >&2")
    dy.ok("wait", cid)
    p = dy("logs", cid, text=False)
    assert p.stdout == b"out\r\nerr\r\n" and p.stderr == b""
