"""The volume commands, and volumes in containers, side by side with the docker CLI (docker 28
client, the dockerd 20.10 here) on the same busybox rootfs.

Each case runs one command line in both engines; stdout, stderr and the exit code must be the
same once IDs, the program's name and the state root (``/var/lib/docker`` vs the test's root)
are normalised. Everything a test makes carries this process's ID in its name and is removed
from both engines at the end, whatever happened.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import time
from typing import Any, Iterator

import pytest

from tests.sidebyside import SideBySide, normalise_ids, tag_busybox_in_both

pytestmark = pytest.mark.interop

P = f"vp{os.getpid()}"
TAG = f"{P}-bb"
VOLUMES = [f"{P}_{n}" for n in ("a", "b", "t", "cp", "nc", "mc", "v", "auto", "nd", "tm")]
CONTAINERS = [f"{P}_{n}" for n in ("c1", "c2", "r")]


class Both(SideBySide):
    """The volume harness: the state root differs too (``/var/lib/docker`` vs the test's)."""

    def __init__(self, cli: Any, root: str) -> None:
        super().__init__(cli, {"{P}": P, "{IMG}": TAG})
        self.root = root

    def normalise(self, text: str, docker: bool) -> str:
        if docker:
            text = text.replace("/var/lib/docker/", "<ROOT>/")
        else:
            text = text.replace(self.root + "/", "<ROOT>/")
        return normalise_ids(text, docker)


@pytest.fixture
def both(cli, root, busybox, docker_busybox) -> Iterator[Both]:
    tag_busybox_in_both(cli, docker_busybox, TAG)
    b = Both(cli, str(root))
    try:
        yield b
    finally:
        subprocess.run(["docker", "rm", "-f", "-v", *CONTAINERS], capture_output=True)
        subprocess.run(["docker", "volume", "rm", "-f", *VOLUMES], capture_output=True)
        subprocess.run(["docker", "rmi", f"{TAG}:latest"], capture_output=True)
        cli("rm", "-f", "-v", *CONTAINERS)
        cli("volume", "rm", "-f", *VOLUMES)


def test_create_ls_inspect_rm_prune(both):
    both.setup("volume create --name {P}_a --label {P}=1 --label tier=db")
    both.setup("volume create -d local {P}_b")
    both.setup("volume create -o type=tmpfs -o device=tmpfs -o o=size=1m --label {P}=2 {P}_t")
    theirs, mine = both.setup("volume inspect {P}_a")
    want, got = json.loads(theirs)[0], json.loads(mine)[0]
    assert list(want) == list(got)
    for doc in (want, got):
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)", doc["CreatedAt"])
        assert doc["Mountpoint"].endswith(f"/volumes/{P}_a/_data")
    both.same(
        "volume create {P}_a", "volume create --name {P}_a",
        "volume create --name {P}_x {P}_y", "volume create x", "volume create 'a b'",
        "volume create -o bogus=1 {P}_x", "volume create -d nosuch {P}_x",
        "volume create -o o=bind {P}_x", "volume create -o device=/tmp {P}_x",
        "volume create -o size=1m {P}_x", "volume create -o bogus=1 {P}_a",
        "volume ls --filter name={P}", "volume ls -q --filter name={P}",
        "volume ls -q --filter label={P}=1", "volume ls -q --filter label={P}",
        "volume ls -q --filter name={P} --filter driver=local",
        "volume ls -q --filter name={P} --filter dangling=true",
        "volume ls -q --filter name={P} --filter dangling=false",
        "volume ls --filter name=^{P}_a --format '{{.Name}} {{.Driver}} {{.Scope}} {{.Label \"tier\"}} {{.Mountpoint}}'",
        "volume ls --filter name={P}_t --format '{{json .}}'",
        "volume ls --filter name={P}_b --format 'table {{.Name}}\\t{{.Driver}}\\t{{.Labels}}'",
        "volume ls --filter bogus=1", "volume ls --filter bogus", "volume ls --filter dangling=maybe",
        "volume ls --format '{{.Nope}}'",
        "volume inspect -f '{{.Name}} {{.Driver}} {{.Scope}} {{json .Labels}} {{json .Options}} {{.Mountpoint}}' {P}_a {P}_b {P}_t",
        "volume inspect nosuch", "volume inspect {P}_b nosuch -f '{{.Name}}'",
        "volume rm nosuch", "volume rm -f nosuch", "volume rm {P}_b nosuch",
        # docker 20.10 prunes every unused volume, named ones too (-a needs API 1.42), but
        # never one made with driver options
        "volume prune -f --filter label={P}=2", "volume prune -f --filter label={P}=1",
        "volume ls -q --filter name={P}",
        "volume prune -f --filter bogus",
    )
    both.check()


def test_volumes_in_containers(both):
    both.setup("volume create --label {P}=1 {P}_v")
    both.setup("run -d --name {P}_c1 -v {P}_v:/data -v /anon {IMG} sleep 300")
    # docker lists a container's Mounts in no fixed order (it walks a Go map)
    both.same("inspect -f '{{range .Mounts}}{{.Type}} {{.Destination}} {{.RW}} {{.Mode}} {{.Driver}} "
              "{{.Propagation}}{{println}}{{end}}' {P}_c1", unordered=True)
    both.same(
        "volume rm {P}_v", "volume rm -f {P}_v",
        "inspect -f '{{json .Config.Volumes}}' {P}_c1",
        # -v name:/path makes the volume; an empty one gets the image's content (not with nocopy)
        "run --rm -v {P}_cp:/etc {IMG} true", "run --rm -v {P}_cp:/x {IMG} ls /x/passwd /x/group",
        "run --rm -v {P}_nc:/etc:nocopy {IMG} ls /etc",
        "run --rm --mount type=volume,src={P}_mc,dst=/etc,volume-nocopy,volume-label=k=v {IMG} ls /etc",
        "volume inspect -f '{{json .Labels}}' {P}_mc",
        "run --rm --mount type=tmpfs,dst=/t,tmpfs-size=1m {IMG} sh -c 'grep \" /t \" /proc/mounts'",
        "run --rm --mount type=bind,src=/etc,dst=/h,readonly {IMG} sh -c 'grep \" /h \" /proc/mounts | cut -d\" \" -f4 | cut -d, -f1'",
        "run --rm -v /x -v {P}_v:/x {IMG} true",
        # --mount and -v mistakes: the CLI's own, then the daemon's
        "run --rm --mount src=x {IMG} true", "run --rm --mount type=volume,dst=/t,bind-propagation=shared {IMG} true",
        "run --rm --mount type=bind,src=/nonexistent-{P},dst=/x {IMG} true",
        "run --rm --mount type=tmpfs,src=x,dst=/t {IMG} true", "run --rm --mount type=bind,dst=/t {IMG} true",
        "run --rm --mount type=nosuch,dst=/t {IMG} true", "run --rm --mount type=bind,src=/tmp,dst=t {IMG} true",
        "run --rm --mount type=bind,src=/tmp,dst=/ {IMG} true", "run --rm --mount type=volume,src=/tmp,dst=/t {IMG} true",
        "run --rm -v /tmp:/ {IMG} true", "run --rm -v {P}_x:/x:bogus {IMG} true",
        "run --rm -v 'bad name:/x' {IMG} true",
        # a driver-option volume is mounted at start: a missing device fails then (127)
        "volume create -o type=none -o o=bind -o device=/nonexistent-{P} {P}_nd",
        "run --rm -v {P}_nd:/x {IMG} true",
        "volume create -o type=tmpfs -o device=tmpfs -o o=size=1m,uid=5 {P}_tm",
        "run --rm -v {P}_tm:/x {IMG} sh -c 'grep \" /x \" /proc/mounts; stat -c %u:%a /x'",
    )
    # the anonymous volume: kept by rm, removed by rm -v (docker's and ours alike)
    for engine in (both.docker, both.ours):
        anon = engine("inspect -f '{{range .Mounts}}{{if eq .Destination \"/anon\"}}{{.Name}}{{end}}{{end}}' {P}_c1").stdout.strip()
        assert re.fullmatch(r"[0-9a-f]{64}", anon)
        assert engine(f"volume inspect -f '{{{{.Labels}}}}' {anon}").stdout == "map[]\n"
        assert engine("rm -f -v {P}_c1").returncode == 0
        assert engine(f"volume inspect {anon}").returncode == 1
        assert engine("volume inspect -f '{{.Name}}' {P}_v").stdout == f"{P}_v\n"
    both.check()


def test_run_rm_removes_anonymous_volumes(both):
    both.setup("run -d --rm --name {P}_r -v /anon -v {P}_auto:/named {IMG} sleep 4")
    engines = (both.docker, both.ours)
    names = [e("inspect -f '{{range .Mounts}}{{if eq .Destination \"/anon\"}}{{.Name}}{{end}}{{end}}' {P}_r")
             .stdout.strip() for e in engines]
    assert all(re.fullmatch(r"[0-9a-f]{64}", n) for n in names), names
    deadline = time.monotonic() + 20
    for engine, anon in zip(engines, names):
        while engine(f"volume inspect {anon}").returncode == 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert engine(f"volume inspect {anon}").returncode == 1, "run --rm kept the anonymous volume"
        assert engine("volume inspect -f '{{.Name}}' {P}_auto").stdout == f"{P}_auto\n"
    both.check()


def test_image_volume_becomes_an_anonymous_volume(both, busybox_tar):
    """A ``VOLUME`` of the image: an anonymous volume filled with the image's content there."""
    for engine in (both.docker, both.ours):
        made = engine(f"import -c 'CMD [\"sh\"]' -c 'VOLUME /etc' {busybox_tar} {TAG}:vol")
        assert made.returncode == 0, made.stderr
    try:
        both.setup("run -d --name {P}_c2 {IMG}:vol sleep 300")
        both.same("inspect -f '{{json .Config.Volumes}} {{range .Mounts}}{{.Type}} {{.Destination}} "
                  "{{.Mode}} {{.RW}} {{.Driver}}{{end}}' {P}_c2",
                  "exec {P}_c2 ls /etc/passwd /etc/group")
        for engine in (both.docker, both.ours):
            anon = engine("inspect -f '{{range .Mounts}}{{.Name}}{{end}}' {P}_c2").stdout.strip()
            assert engine(f"volume inspect -f '{{{{.Labels}}}} {{{{.Options}}}}' {anon}").stdout == "map[] map[]\n"
            assert engine("rm -f {P}_c2").returncode == 0
            assert engine(f"volume rm {anon}").stdout == f"{anon}\n"  # rm without -v keeps it
        both.check()
    finally:
        subprocess.run(["docker", "rmi", f"{TAG}:vol"], capture_output=True)
