"""``dockyard export``: the container's filesystem as ``docker export`` writes it.

The tar holds the image plus the container's changes plus docker's init layer (empty 0755
hosts/hostname/resolv.conf/.dockerenv/dev/console, /etc/mtab -> /proc/mounts), never what is
mounted at run time (volumes, binds); running and stopped containers alike; a symlink the
container made never leads the walk onto the host; ``-o`` is all or nothing; docker's refusals.
The same image and the same changes give the same entries (names, types, modes, owners, sizes,
link targets) as ``docker export``.
"""
from __future__ import annotations

import io
import os
import pty
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.engine.conftest import mounts_under
from tests.sidebyside import tag_busybox_in_both

REPO = Path(__file__).resolve().parents[2]
CHANGES = "echo hi > /root/new && rm /bin/zcat && mkdir -p /srv/a && ln -s / /srv/escape && ln /srv/a/../../root/new /srv/hard"


def _entries(data: bytes) -> dict[str, tuple[str, str, str, int, str]]:
    """name -> (type, mode, owner, size, link target), as ``tar tv`` shows them."""
    out = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        for m in tf.getmembers():
            kind = {tarfile.DIRTYPE: "d", tarfile.SYMTYPE: "l", tarfile.LNKTYPE: "h"}.get(m.type, "-")
            out[m.name.rstrip("/")] = (kind, oct(m.mode), f"{m.uname or m.uid}/{m.gname or m.gid}", m.size, m.linkname)
    return out


def _export(dy, ref: str) -> bytes:
    proc = dy("export", ref, text=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_stopped_container_with_its_changes_and_the_init_layer(dy, tmp_path: Path) -> None:
    dy.ok("run", "--name", "exp1", "--network", "none", "-v", f"{tmp_path}:/mnt/host", "busybox",
          "sh", "-c", CHANGES + " && echo secret > /mnt/host/inside-volume")
    entries = _entries(_export(dy, "exp1"))
    assert entries["root/new"][0] == "-" and entries["root/new"][3] == 3
    assert "bin/zcat" not in entries and "bin/cat" in entries
    assert entries["srv/escape"] == ("l", "0o120777", "root/root", 0, "/")
    assert entries["srv/hard"][0] == "h" and entries["srv/hard"][4] == "root/new"
    assert not any(n.startswith("srv/escape/") for n in entries)  # the link was not followed
    for name in (".dockerenv", "etc/hosts", "etc/hostname", "etc/resolv.conf", "dev/console"):
        assert entries[name] == ("-", "0o100755", "root/root", 0, ""), name
    for name in ("dev", "dev/pts", "dev/shm", "proc", "sys"):
        assert entries[name][0] == "d", name
    assert entries["etc/mtab"] == ("l", "0o120777", "root/root", 0, "/proc/mounts")
    assert "mnt/host" in entries and not any(n.startswith("mnt/host/") for n in entries)  # volumes stay out
    names = [n for n in entries]
    assert names == sorted(names) and not any(n.startswith(("./", "/")) for n in names)
    assert mounts_under(dy.root) == []  # a stopped container is mounted for the export only
    events = dy.ok("events", "--since", "1m", "--until", "0s", "--filter", "event=export", "--format", "{{.Action}}")
    assert events.split() == ["export"]


def test_running_container_and_output_file(dy, tmp_path: Path) -> None:
    cid = dy.run_d("busybox", "sh", "-c", "echo running > /tmp/state; sleep 30")
    dy.wait_for(cid, lambda d: d["State"]["Running"])
    dy.ok("exec", cid, "test", "-f", "/tmp/state")
    (tmp_path / "out").mkdir()
    out = tmp_path / "out" / "c.tar"
    assert dy("export", "-o", str(out), cid).stdout == ""
    assert oct(out.stat().st_mode & 0o777) == "0o600"  # as docker's CLI writes it
    with tarfile.open(out) as tf:
        assert tf.extractfile("tmp/state").read() == b"running\n"
        assert tf.getmember("etc/hosts").size == 0  # the init layer's file, not the running bind
    assert sorted(os.listdir(tmp_path / "out")) == ["c.tar"]  # no temporary file left
    assert dy.state(cid)["Running"]
    dy.ok("rm", "-f", cid)


def test_dockers_refusals(dy, tmp_path: Path) -> None:
    tmp_path = tmp_path / "out"
    tmp_path.mkdir()
    dy.ok("create", "--name", "exp2", "--network", "none", "busybox", "true")
    (tmp_path / "afile").write_text("x")
    cases = {
        ("export", "nosuch"): (1, "Error response from daemon: No such container: nosuch"),
        ("export", "-o", str(tmp_path), "exp2"): (1, "failed to export container: cannot write to a directory"),
        ("export", "-o", str(tmp_path / "afile" / "x.tar"), "exp2"):
            (1, f"failed to export container: invalid output path: stat {tmp_path / 'afile'}: not a directory"),
        ("export", "-o", str(tmp_path / "no" / "x.tar"), "exp2"):
            (1, f"failed to export container: invalid output path: stat {tmp_path / 'no'}: no such file or directory"),
    }
    for args, (code, err) in cases.items():
        proc = dy(*args)
        assert (proc.returncode, proc.stderr.strip(), proc.stdout) == (code, err, ""), args
    missing = dy("export", "-o", str(tmp_path / "gone.tar"), "nosuch")
    assert missing.returncode == 1 and sorted(os.listdir(tmp_path)) == ["afile"]  # nothing half-written
    # stdout a terminal: refused before anything is read
    master, slave = pty.openpty()
    try:
        env = dict(os.environ, DOCKYARD_ROOT=str(dy.root))
        proc = subprocess.run([sys.executable, "-m", "dockyard", "export", "exp2"], stdout=slave,
                              stderr=subprocess.PIPE, text=True, env=env, cwd=REPO, timeout=60)
    finally:
        os.close(slave)
        os.close(master)
    assert (proc.returncode, proc.stderr.strip()) == (1, "cowardly refusing to save to a terminal. Use the -o flag or redirect")


@pytest.mark.interop
def test_same_entries_as_docker_export(dy, docker_busybox: str) -> None:
    tag = f"exppar-{os.getpid()}"
    name = f"exp{os.getpid()}"
    tag_busybox_in_both(dy, docker_busybox, tag)
    try:
        subprocess.run(["docker", "run", "--name", name, "--network", "none", tag, "sh", "-c", CHANGES],
                       check=True, capture_output=True, timeout=60)
        theirs = _entries(subprocess.run(["docker", "export", name], check=True, capture_output=True,
                                         timeout=60).stdout)
        dy.ok("run", "--name", name, "--network", "none", tag, "sh", "-c", CHANGES)
        mine = _entries(_export(dy, name))
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
        subprocess.run(["docker", "rmi", f"{tag}:latest"], capture_output=True)
    assert list(mine) == list(theirs)  # the same entries in the same order
    assert mine == theirs


def _recent(data: bytes) -> list[str]:
    """The entries dated from the container's life (the init layer's and its changes)."""
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        return [m.name for m in tf.getmembers() if m.mtime > 86400]


@pytest.mark.interop
def test_never_started_container_as_docker_exports_it(dy, docker_busybox: str) -> None:
    tag, name = f"expnew-{os.getpid()}", f"expn{os.getpid()}"
    tag_busybox_in_both(dy, docker_busybox, tag)
    try:
        subprocess.run(["docker", "create", "--name", name, tag, "true"], check=True, capture_output=True)
        theirs = subprocess.run(["docker", "export", name], check=True, capture_output=True, timeout=60).stdout
        dy.ok("create", "--name", name, "--network", "none", tag, "true")
        mine = _export(dy, name)
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
        subprocess.run(["docker", "rmi", f"{tag}:latest"], capture_output=True)
    assert _entries(mine) == _entries(theirs)
    assert _recent(mine) == _recent(theirs)  # /etc and /dev dated from the creation, as the init layer's
