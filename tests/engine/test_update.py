"""``dockyard update``: new limits for a container, applied at once when it runs.

A running container's cgroup gets the new values (read back from the cgroup files, and from
inside the container), ``inspect`` shows them, a stopped container starts with them, a new
restart policy holds from the container's next exit on, a refused update (by the checks or by
the kernel) changes nothing; the same command sequence gives docker's output, messages and
exit codes, and the same HostConfig, side by side.
"""
from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.engine.service_helper import api_service
from tests.sidebyside import SideBySide, tag_busybox_in_both

LIMITS = ("Memory", "MemorySwap", "MemoryReservation", "NanoCpus", "CpuPeriod", "CpuQuota", "CpuShares",
          "CpusetCpus", "CpusetMems", "PidsLimit", "BlkioWeight", "RestartPolicy")


def _cgroup(cid: str):
    from dockyard.runtime.cgroups import Cgroup
    from dockyard.runtime.spec import CGROUP_PARENT

    return Cgroup(f"{CGROUP_PARENT.rstrip('/')}/{cid}")


def _read(cg, controller: str, v1: str, v2: str) -> str:
    d = cg.dir_for(controller)
    return (d / (v2 if cg.v2 else v1)).read_text().strip()


def test_running_container_gets_the_new_limits_at_once(dy) -> None:
    cid = dy.run_d("busybox", "sleep", "30")
    out = dy.ok("update", "--memory", "64m", "--memory-swap", "128m", "--memory-reservation", "32m", "--cpus", "0.5",
                "--cpu-shares", "256", "--pids-limit", "50", "--cpuset-cpus", "0", cid[:12])
    assert out == cid[:12] + "\n"  # the name as given
    cg = _cgroup(cid)
    assert _read(cg, "memory", "memory.limit_in_bytes", "memory.max") == str(64 << 20)
    assert _read(cg, "pids", "pids.max", "pids.max") == "50"
    assert _read(cg, "cpuset", "cpuset.cpus", "cpuset.cpus") == "0"
    if cg.v2:
        assert _read(cg, "cpu", "", "cpu.max") == "50000 100000"
    else:
        assert _read(cg, "cpu", "cpu.cfs_quota_us", "") == "50000"
        assert _read(cg, "cpu", "cpu.shares", "") == "256"
        assert _read(cg, "memory", "memory.memsw.limit_in_bytes", "") == str(128 << 20)
        assert _read(cg, "memory", "memory.soft_limit_in_bytes", "") == str(32 << 20)
        inside = dy.ok("exec", cid, "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes").strip()
        assert inside == str(64 << 20)  # what the container itself sees
    host = dy.inspect(cid)["HostConfig"]
    assert (host["Memory"], host["MemorySwap"], host["MemoryReservation"], host["NanoCpus"], host["CpuShares"],
            host["PidsLimit"], host["CpusetCpus"]) == (64 << 20, 128 << 20, 32 << 20, 500_000_000, 256, 50, "0")
    dy.ok("update", "--pids-limit", "-1", cid)
    assert _read(cg, "pids", "pids.max", "pids.max") == "max"
    assert dy.inspect(cid)["HostConfig"]["PidsLimit"] == 0
    events = dy.ok("events", "--since", "1m", "--until", "0s", "--filter", "event=update", "--format", "{{.Action}}")
    assert events.split() == ["update", "update"]
    dy.ok("rm", "-f", cid)


def test_stopped_container_starts_with_them(dy) -> None:
    dy.ok("create", "--name", "up1", "--network", "none", "busybox", "sleep", "30")
    assert dy.ok("update", "-m", "48m", "--memory-swap", "-1", "up1") == "up1\n"
    assert (dy.inspect("up1")["HostConfig"]["Memory"], dy.inspect("up1")["HostConfig"]["MemorySwap"]) == (48 << 20, -1)
    dy.ok("start", "up1")
    cid = dy.inspect("up1")["Id"]
    assert _read(_cgroup(cid), "memory", "memory.limit_in_bytes", "memory.max") == str(48 << 20)
    dy.ok("rm", "-f", "up1")


def test_a_new_restart_policy_holds_from_the_next_exit(dy) -> None:
    cid = dy.run_d("busybox", "sh", "-c", "sleep 1; exit 3")
    assert dy.ok("update", "--restart", "on-failure:2", cid) == cid + "\n"
    doc = dy.wait_for(cid, lambda d: d["RestartCount"] == 2 and not d["State"]["Running"], timeout=20)
    assert doc["State"]["ExitCode"] == 3 and doc["HostConfig"]["RestartPolicy"] == {"Name": "on-failure",
                                                                                   "MaximumRetryCount": 2}
    refused = dy("update", "--restart", "always", dy.run_d("--rm", "busybox", "sleep", "30"))
    assert refused.returncode == 1 and refused.stderr.strip().endswith(
        "Restart policy cannot be updated because AutoRemove is enabled for the container")


def test_a_refused_update_changes_nothing(dy) -> None:
    cid = dy.run_d("--memory", "32m", "busybox", "sleep", "30")
    before = {k: dy.inspect(cid)["HostConfig"].get(k) for k in LIMITS}
    cases = [(("--memory", "128m"), f"Error response from daemon: Cannot update container {cid}: Memory limit should "
                                     "be smaller than already set memoryswap limit, update the memoryswap at the same time"),
             (("--memory", "3m"), "Error response from daemon: Minimum memory limit allowed is 6MB"),
             (("--cpus", "0.5", "--cpu-period", "100000"),
              "Error response from daemon: Conflicting options: Nano CPUs and CPU Period cannot both be set"),
             (("--cpuset-cpus", "63"), "Error response from daemon: Requested CPUs are not available - requested 63, "
                                       "available: " + open("/sys/devices/system/cpu/online").read().strip()),
             (("--restart", "bogus"), "Error response from daemon: invalid restart policy 'bogus'")]
    for flags, message in cases:
        proc = dy("update", *flags, cid)
        assert (proc.returncode, proc.stdout, proc.stderr.strip()) == (1, "", message), flags
    kernel = dy("update", "--memory-swap", "16m", cid)  # below the memory limit: the kernel refuses it
    assert kernel.returncode == 1 and kernel.stderr.startswith(f"Error response from daemon: Cannot update container {cid}: ")
    assert {k: dy.inspect(cid)["HostConfig"].get(k) for k in LIMITS} == before
    none = dy("update", cid)
    assert (none.returncode, none.stderr.strip()) == (1, "you must provide one or more flags when using this command")
    mixed = dy("update", "--cpu-shares", "512", "nosuch", cid)
    assert (mixed.returncode, mixed.stdout, mixed.stderr.strip()) == (
        1, cid + "\n", "Error response from daemon: No such container: nosuch")
    dy.ok("rm", "-f", cid)


def test_docker_py_update_and_export_through_the_api(dy, root: Path) -> None:
    docker = pytest.importorskip("docker", reason="docker-py is not installed (pip install docker)")
    with api_service(root) as sock:
        client = docker.DockerClient(base_url=f"unix://{sock}", version="1.43")
        try:
            c = client.containers.run("busybox", "sleep 30", detach=True, name="uppy", network_mode="none")
            assert c.update(mem_limit="48m", memswap_limit="96m", restart_policy={"Name": "unless-stopped"}) == \
                {"Warnings": []}
            c.reload()
            assert (c.attrs["HostConfig"]["Memory"], c.attrs["HostConfig"]["RestartPolicy"]["Name"]) == \
                (48 << 20, "unless-stopped")
            assert _read(_cgroup(c.id), "memory", "memory.limit_in_bytes", "memory.max") == str(48 << 20)
            with pytest.raises(docker.errors.APIError) as err:
                c.update(mem_limit="256m")
            assert err.value.status_code == 409 and "update the memoryswap at the same time" in str(err.value)
            names = tarfile.open(fileobj=io.BytesIO(b"".join(c.export()))).getnames()
            assert ".dockerenv" in names and "bin/busybox" in names
            c.remove(force=True)
        finally:
            client.close()


@pytest.mark.interop
def test_same_as_docker_update(cli, dy, docker_busybox: str, tmp_path: Path) -> None:
    tag, p = f"uppar-{os.getpid()}", f"upp{os.getpid()}"
    tag_busybox_in_both(cli, docker_busybox, tag)
    both = SideBySide(cli, {"{P}": p, "{IMG}": tag})
    try:
        both.setup("run -d --name {P}a --network none {IMG} sleep 60")
        both.setup("create --name {P}b --network none {IMG} true")
        both.setup("run -d --rm --name {P}c --network none {IMG} sleep 60")
        both.same("update {P}a", "update --memory 64m {P}a", "update --memory 32m --memory-swap 48m {P}a",
                  "update --memory 128m {P}a", "update --memory 3m {P}a", "update --memory-swap 200m {P}a",
                  "update --cpus 0.5 {P}a", "update --cpu-period 50000 {P}a", "update --cpu-quota 20000 {P}a",
                  "update --cpuset-cpus 0 --cpuset-mems 0 {P}a", "update --pids-limit 100 {P}a",
                  "update --blkio-weight 300 {P}a", "update --restart always {P}a", "update --restart bogus {P}a",
                  "update --memory-reservation 20m {P}a", "update --memory 64m nosuch {P}a nosuch2",
                  "update --cpus 100 {P}a", "update --cpuset-cpus 63 {P}a", "update --memory abc {P}a",
                  "update --pids-limit x {P}a", "update --restart always {P}c", "update --restart no {P}c",
                  "update --memory 64m --memory-swap -1 {P}b", "update --cpu-quota -1 {P}b",
                  "update --restart on-failure:3 {P}b", "update --cpu-shares 1 {P}b", "update --cpu-period 500 {P}b",
                  "update --cpus 0.5 --cpu-period 100000 {P}b", "update --blkio-weight abc {P}a",
                  "update --blkio-weight 70000 {P}a", "update --restart on-failure:x {P}a",
                  "update --cpu-period 1.5 {P}a", "update --memory-swap zz {P}a")
        for name in ("a", "b"):
            theirs = json.loads(both.docker(f"inspect {p}{name}").stdout)[0]["HostConfig"]
            mine = json.loads(both.ours(f"inspect {p}{name}").stdout)[0]["HostConfig"]
            assert {k: mine.get(k) for k in LIMITS} == {k: theirs.get(k) for k in LIMITS}, name
    finally:
        names = [f"{p}{n}" for n in "abc"]
        subprocess.run(["docker", "rm", "-f", *names], capture_output=True)
        cli("rm", "-f", *names)
        subprocess.run(["docker", "rmi", f"{tag}:latest"], capture_output=True)
    both.check()
