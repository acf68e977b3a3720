"""``dockyard exec`` as users time it: the argparse-free path (``dockyard.cli.fast_exec``) gives the
same output, exit codes and errors as the ordinary one, and stays lean (no argparse, json, re,
socket, typing, pathlib or sqlite3 imported)."""
from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO


def test_stdio_exit_codes_and_flags(dy) -> None:
    cid = dy.run_d("--name", "fx", "busybox", "sleep", "300")
    p = dy("exec", "fx", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (p.returncode, p.stdout, p.stderr) == (3, "out\n", "err\n")
    assert dy.ok("exec", "-e", "A=1", "-u", "1000", "-w", "/tmp", "fx", "sh", "-c", "echo $A $(id -u) $PWD") \
        == "1 1000 /tmp\n"
    assert dy.ok("exec", "-i", "fx", "cat", input="hello\n") == "hello\n"
    assert dy.ok("exec", "fx", "cat", input="not read\n") == ""  # no -i: stdin is /dev/null
    assert dy.ok("exec", cid[:10], "hostname") == dy.ok("exec", "/fx", "hostname")  # ID prefix, /name
    assert dy.ok("exec", "-d", "fx", "touch", "/tmp/flag") == ""
    dy.ok("exec", "fx", "sh", "-c", "for i in $(seq 50); do [ -e /tmp/flag ] && exit 0; sleep 0.1; done; exit 1")
    p = dy("exec", "fx", "nosuch")
    assert p.returncode == 126
    assert p.stdout.startswith("OCI runtime exec failed: exec failed: unable to start container process: "
                               'exec: "nosuch": executable file not found in $PATH')  # docker: on stdout


def test_errors_match_the_ordinary_path(dy) -> None:
    """Each error once through the fast path and once through argparse (``--env-file /dev/null``
    changes nothing but takes the ordinary path)."""
    cid = dy.run_d("--name", "fe", "busybox", "sleep", "300")
    ordinary = ("--env-file", "/dev/null")
    for flags in ((), ordinary):
        p = dy("exec", *flags, "nosuch", "true")
        assert (p.returncode, p.stderr) == (1, "Error response from daemon: No such container: nosuch\n")
    dy.ok("pause", "fe")
    for flags in ((), ordinary):
        p = dy("exec", *flags, "fe", "true")
        assert (p.returncode, p.stderr) == (1, "Error response from daemon: Container fe is paused, unpause the container before exec\n")
    dy.ok("unpause", "fe")
    dy.ok("stop", "-t", "0", "fe")
    for flags in ((), ordinary):
        p = dy("exec", *flags, "fe", "true")
        assert (p.returncode, p.stderr) == (1, f"Error response from daemon: Container {cid} is not running\n")


def test_fast_path_imports_little(dy, root) -> None:
    dy.run_d("--name", "lean", "busybox", "sleep", "300")
    code = ("import sys\nbefore = set(sys.modules)\nfrom dockyard.cli.main import main\n"
            "rc = main(['exec', 'lean', 'true'])\nprint(rc, ' '.join(sorted(set(sys.modules) - before)))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(REPO),
                         env={"DOCKYARD_ROOT": str(root), "PATH": "/usr/bin:/bin"}, timeout=60, check=True).stdout
    rc, _, modules = out.strip().partition(" ")
    assert rc == "0"
    heavy = {"argparse", "json", "re", "socket", "typing", "pathlib", "sqlite3", "enum", "dockyard.client"}
    assert heavy.isdisjoint(modules.split()), modules
