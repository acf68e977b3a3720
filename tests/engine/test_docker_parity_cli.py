"""The container commands side by side with the docker CLI (docker 28 client, dockerd here) on
the same busybox rootfs, tagged with the same name in both: stdout, stderr and the exit code of
each command must be the same once what has to differ is normalised (container IDs, the program's
name ``docker`` vs ``dockyard``, ages such as "2 seconds ago": each engine was slower elsewhere). Failures are the point: missing containers, stopped ones, bad
flag values, start errors (126/127), template mistakes, ``cp`` mistakes.

Each test runs its commands in order in both engines and reports every difference at once; the
containers it makes (fixed names with this process's ID in them) are removed from both at the
end, whatever happened.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
from typing import Any, Iterator

import pytest

from tests.sidebyside import SideBySide, normalise_ids, tag_busybox_in_both

pytestmark = pytest.mark.interop

TAG = f"parity-bb-{os.getpid()}"
P = f"par{os.getpid()}"  # container name prefix: unique on a shared dockerd


class Both(SideBySide):
    """The container commands' harness: ages ("2 seconds ago") differ too, each engine being
    slower somewhere."""

    def __init__(self, cli: Any, tmp: str) -> None:
        super().__init__(cli, {"{P}": P, "{IMG}": TAG, "{TMP}": tmp})

    def normalise(self, text: str, docker: bool) -> str:
        text = re.sub(r"\b(Less than a second|About a minute|About an hour|\d+ (second|minute|hour)s?)\b",
                      "<AGE>", text)
        return normalise_ids(text, docker)


@pytest.fixture
def both(cli, busybox, docker_busybox, tmp_path) -> Iterator[Both]:
    tag_busybox_in_both(cli, docker_busybox, TAG)
    b = Both(cli, str(tmp_path))
    try:
        yield b
    finally:
        names = [f"{P}_{n}" for n in ("run", "exit", "new", "stopped", "ren", "k")]
        # and the unnamed ones a failed start leaves behind (docker keeps them as Created)
        names += subprocess.run(["docker", "ps", "-aq", "--filter", f"ancestor={TAG}"], capture_output=True,
                                text=True).stdout.split()
        subprocess.run(["docker", "rm", "-f", *names], capture_output=True)
        cli("rm", "-f", *names)
        subprocess.run(["docker", "rmi", f"{TAG}:latest"], capture_output=True)


# --------------------------------------------------------------------------- no container needed
MISSING = ["stop nosuch", "stop nosuch nosuch2", "kill nosuch", "rm nosuch", "rm -f nosuch", "restart nosuch",
           "pause nosuch", "unpause nosuch", "wait nosuch", "rename nosuch newname", "top nosuch", "port nosuch",
           "stats --no-stream nosuch", "logs nosuch", "exec nosuch true", "container inspect nosuch",
           "start nosuch", "attach nosuch", "cp nosuch:/etc/passwd {TMP}/x", "cp /etc/hostname nosuch:/tmp", "diff nosuch",
           "commit nosuch", "container prune -f --filter label={P}", "container prune -f --filter bogus=1"]
BAD_FLAGS = ["run --network none --memory abc {IMG} true", "run --network none --cpus -1 {IMG} true",
             "run --network none --cpus abc {IMG} true", "run --network none --restart bogus {IMG} true",
             "run --network none --restart on-failure:x {IMG} true", "run --network none -p bad {IMG} true",
             "run --network none -p 99999:80 {IMG} true", "run --rm --restart always {IMG} true",
             "run --network none --name 'bad name' {IMG} true", "run --network none --pids-limit abc {IMG} true",
             "run --network none --ulimit bogus {IMG} true", "run -d -a stdout {IMG} true",
             "run --network none -w relative {IMG} pwd", "run --network none --user nosuch {IMG} true",
             "run --pull never {IMG}-missing", "create --memory abc {IMG}", "create -p bad {IMG}",
             "create --restart bogus {IMG}", "create --cpus 5 {IMG}",
             "run --network none --rm --stop-signal bogus {IMG} true", "run --network none --rm --tmpfs rel {IMG} true",
             "run --network none --rm --sysctl bogus=1 {IMG} true", "run --network none --rm --ipc bogus {IMG} true",
             "run --network none --rm --pid bogus {IMG} true", "stats --no-stream nosuch1 nosuch2",
             "run --network none --rm -e =x {IMG} true", "run --network none --rm -l '' {IMG} true",
             "run --network none --rm -e 'A B=1' -e X=1 {IMG} sh -c 'echo $X'",
             "run --network none --rm --add-host bad {IMG} true", "run --network none --rm --add-host h:x {IMG} true",
             "run --network none --rm --dns bad {IMG} true", "run --network none --rm --gpus all {IMG} true",
             "run --network none --rm --log-opt max-size=abc {IMG} true",
             "run --network none --rm --log-opt max-file=0 {IMG} true",
             "ps --filter bogus=1", "ps --filter status=bogus", "ps --filter bogus", "ps -n x",
             "ps --filter exited=x", "ps --format '{{.Nope}}'", "stop -t x nosuch",
             "ps -q --format '{{.Nope}}'", "ps --format '{{.Names'", "ps -a --filter name=nomatch --format 'table {{.Nope}}'",
             "ps --format '{{.Nope}}' --filter bogus=1", "ps --format 'table {{.Names}}\t{{.Label \"x\"}}' --filter name=nomatch",
             "cp {TMP}/nonexist nosuch:/tmp", "cp a b", "cp a:/x b:/y"]


def test_missing_containers_and_bad_flags(both):
    both.same(*MISSING, *BAD_FLAGS)
    both.check()


def test_run_start_failures_and_exit_codes(both):
    both.same("run --rm --network none {IMG} nosuchcmd", "run --rm --network none {IMG} /etc/passwd",
              "run --rm --network none {IMG} /etc", "run --rm --network none --entrypoint nosuch {IMG}",
              "run --rm --network none {IMG} sh -c 'echo out; echo err >&2; exit 3'",
              "run --rm -d --network none --name {P}_k {IMG} true")
    both.check()


# --------------------------------------------------------------------------- containers in each state
def test_lifecycle_messages_on_running_stopped_and_created(both):
    both.setup("run -d --network none --name {P}_run -l app=web -l tier=1 {IMG} sleep 300")
    both.setup("run --network none --name {P}_exit -l app=db -l {P}=1 {IMG} sh -c 'echo hello; echo world; sleep 0.2; echo oops >&2; exit 3'", 3)
    both.setup("create --network none --name {P}_new {IMG} echo created")
    both.same(
        "run --network none --name {P}_run {IMG} true", "create --network none --name {P}_run {IMG} true",
        # ps: filters, formats, counts (only our containers: the dockerd is shared)
        "ps -a --filter name={P} --format '{{.Names}} {{.Status}} {{.State}} {{.Command}} {{.Image}}'",
        "ps -a --filter name={P} --format 'table {{.Names}}\\t{{.Labels}}\\t{{.Ports}}'",
        "ps -a --filter name={P} --format '{{.Label \"app\"}} {{.Networks}} {{.Mounts}} {{.LocalVolumes}}'",
        "ps -a -q --filter name={P}_exit --no-trunc", "ps --filter name={P} -q",
        "ps -a -q --filter name={P}_exit --format '{{.Names}}'",
        "ps -a --filter name={P} --filter status=exited --format '{{.Names}}'",
        "ps -a --filter name={P} --filter status=created --format '{{.Names}}'",
        "ps -a --filter name={P} --filter label=app=db --format '{{.Names}}'",
        "ps -a --filter name={P} --filter label=app --format '{{.Names}}'",
        "ps -a --filter name={P} --filter exited=3 --format '{{.Names}}'",
        "ps -a --filter name={P} --filter ancestor={IMG} --format '{{.Names}}'",
        "ps -a --filter name={P} --filter before={P}_new --format '{{.Names}}'",
        "ps -a --filter before=nosuch",
        "ps -a --filter name={P}_exit --format '{{json .Labels}} {{.Command}}' --no-trunc",
        # logs
        "logs {P}_exit", "logs --tail 1 {P}_exit", "logs --tail 2 {P}_exit", "logs --tail 0 {P}_exit", "logs --tail x {P}_exit",
        "logs -n -1 {P}_exit", "logs --since 1h {P}_exit", "logs --since bogus {P}_exit",
        "logs --until 2000-01-01 {P}_exit", "logs {P}_new",
        # the verbs on a container that does not run
        "pause {P}_exit", "pause {P}_new", "unpause {P}_exit", "unpause {P}_run", "top {P}_new",
        "kill {P}_exit", "kill {P}_new", "kill -s bogus {P}_run", "kill -s 999 {P}_run",
        "exec {P}_exit true", "exec {P}_new true", "wait {P}_exit", "wait {P}_exit {P}_new nosuch",
        "port {P}_exit", "port {P}_run", "port {P}_run 80", "port {P}_run 80/udp", "port {P}_run abc",
        "port {P}_run 70000", "diff {P}_new", "rm {P}_run", "rm {P}_run nosuch",
        "stats --no-stream --format '{{.Name}} {{.CPUPerc}} {{.MemUsage}} {{.NetIO}} {{.PIDs}}' {P}_exit",
        "stats --no-stream --format '{{.Name}} {{.PIDs}}' {P}_run",
        "stats --no-stream --format '{{.Nope}}' {P}_run", "stats --no-stream {P}_run nosuch",
        # exec failures: docker prints why the process did not start on stdout, exit 126
        "exec {P}_run nosuchcmd", "exec {P}_run /etc", "exec -u nosuch {P}_run true",
        "exec {P}_run sh -c 'exit 7'", "exec {P}_run",
        # cp mistakes
        "cp {P}_exit:/nonexist {TMP}/out", "cp {TMP}/nonexist {P}_exit:/tmp",
        "cp {P}_exit:/etc/passwd {TMP}/nodir/x", "cp {P}_exit {TMP}", "cp {P}_exit:/etc/passwd {P}_new:/tmp",
        "cp /etc/hostname {P}_run:/nodir/x", "exec --env-file /nonexist {P}_run true",
        # rename
        "rename {P}_new {P}_run", "rename {P}_new 'bad name'", "rename {P}_new {P}_new",
        "rename {P}_new {P}_ren", "rename {P}_ren {P}_new",
        "stop -t x {P}_new", "stop {P}_new", "stop --timeout 1 {P}_exit",
        # prune only what carries this test's label: the dockerd is shared
        "container prune -f --filter label={P}", "container prune -f --filter until=x",
    )
    both.check()


def _key_types(doc: Any, path: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    if isinstance(doc, dict):
        for k, v in doc.items():
            out[f"{path}/{k}"] = type(v).__name__
            out.update(_key_types(v, f"{path}/{k}"))
    return out


def test_inspect_has_dockers_keys_and_types(both):
    flags = "--network none -l a=b -e X=1 -v {TMP}:/h --restart on-failure:2 --memory 64m -p 80 --name {P}_k"
    both.setup(f"run -d {flags} {{IMG}} sleep 300")
    theirs = _key_types(json.loads(both.docker("container inspect {P}_k").stdout)[0])
    mine = _key_types(json.loads(both.ours("container inspect {P}_k").stdout)[0])
    wrong = {k: (t, mine.get(k)) for k, t in theirs.items() if mine.get(k) != t}
    extra = sorted(set(mine) - set(theirs))
    assert not wrong and not extra, f"docker vs dockyard types: {wrong}; only dockyard: {extra}"


# what inspect may show differently: identities, times, paths under each engine's root, the
# runtime's name, the network's addresses, and fields only one API version has
_PER_ENGINE = {"Id", "Created", "Image", "ResolvConfPath", "HostnamePath", "HostsPath", "LogPath", "GraphDriver",
               "State.StartedAt", "State.Pid", "HostConfig.Runtime", "HostConfig.MaskedPaths", "Config.Hostname",
               "Config.Image", "NetworkSettings", "Platform", "Driver", "ProcessLabel", "MountLabel",
               "HostConfig.CgroupnsMode"}


def _values(doc: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in doc.items():
        path = f"{prefix}{k}"
        if path in _PER_ENGINE:
            continue
        if isinstance(v, dict) and v:
            out.update(_values(v, path + "."))
        else:
            out[path] = v
    return out


def _mounts_sorted(doc: dict[str, Any]) -> dict[str, Any]:
    """dockerd lists Mounts from a Go map: in no particular order."""
    return {**doc, "Mounts": sorted(doc.get("Mounts") or [], key=lambda m: m.get("Destination", ""))}


def test_inspect_values_match_after_a_rich_run(both):
    flags = ("--network none -e A=1 -l k=v -w /tmp -u 1000:1000 --memory 64m --cpus 0.5 --restart on-failure:3 "
             "-h hh --add-host x:1.2.3.4 --tmpfs /t:size=1m --mount type=tmpfs,dst=/u -v {TMP}:/hostt:ro "
             "--cap-add net_admin --cap-drop CHOWN --init --read-only --stop-signal SIGUSR1 --ulimit nofile=100:200 "
             "--pids-limit 50 --shm-size 32m --name {P}_k")
    both.setup(f"run -d {flags} {{IMG}} sleep 300")
    theirs = _values(_mounts_sorted(json.loads(both.docker("container inspect {P}_k").stdout)[0]))
    mine = _values(_mounts_sorted(json.loads(both.ours("container inspect {P}_k").stdout)[0]))
    wrong = {k: (v, mine.get(k, "<absent>")) for k, v in theirs.items() if mine.get(k, "<absent>") != v}
    extra = {k: v for k, v in mine.items() if k not in theirs}
    assert not wrong and not extra, f"docker vs dockyard: {wrong}; only dockyard: {extra}"


def test_failed_starts_and_what_the_client_checks(both):
    both.setup("run --network none --name {P}_exit {IMG} nosuchcmd", 127)
    both.setup("create --network none --name {P}_new --memory 64m {IMG} sh -c 'echo one; echo two'")
    both.setup("run -d --network none --name {P}_run {IMG} sleep 300")
    both.same(
        "start {P}_exit", "start -a {P}_exit", "restart {P}_exit", "start -a {P}_new", "logs --details {P}_new",
        "attach {P}_new", "top {P}_run bogus", "top {P}_run -o pid,comm --no-headers",
        "commit nosuch bad::ref", "commit nosuch UPPER",
        "inspect -f '{{.State.Status}} {{.State.ExitCode}} {{.State.Error}} {{.HostConfig.MemorySwap}}' {P}_exit {P}_new",
        "inspect -f '{{json .State}}' {P}_exit",
    )
    both.setup("pause {P}_run")
    both.same("attach {P}_run", "exec {P}_run true", "pause {P}_run", "kill -s 999 {P}_run")
    both.check()
