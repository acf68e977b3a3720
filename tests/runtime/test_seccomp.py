"""docker's seccomp profile and ``--security-opt`` on every runtime.

The same bundles (made by our spec generator) run on the built-in runtime, runc and crun: a
program inside finds ``Seccomp: 2`` in /proc/self/status, the syscalls docker's profile refuses
fail with EPERM (ENOSYS for ``clone3`` and for syscalls newer than the profile), the ones it
allows work, and ``--privileged`` / ``seccomp=unconfined`` lift the filter. A static C probe
reaches the syscalls busybox cannot. The generated ``linux.seccomp`` is compared with the one
dockerd writes for ``docker run`` of the same image.
"""
from __future__ import annotations

import errno
import json
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from dockyard.runtime.spec import bind_mount, exec_process

from .conftest import Bundle, HarnessError, Monitor

PROBE_C = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

static void report(const char *name, long result) { printf("%s %d\n", name, result < 0 ? errno : 0); fflush(stdout); }

int main(void) {
    char src[8] = "abcdefg", dst[8];
    struct iovec local = {dst, sizeof dst}, remote = {src, sizeof src};
    report("getpid", syscall(SYS_getpid));
    report("personality_query", syscall(SYS_personality, 0xffffffffUL));
    report("personality_linux32", syscall(SYS_personality, 0x0008UL));
    syscall(SYS_personality, 0UL);
    report("personality_no_aslr", syscall(SYS_personality, 0x0040000UL));
    syscall(SYS_personality, 0UL);
    report("keyctl", syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3 /* session */, 0));
    report("add_key", syscall(SYS_add_key, "dockyard_no_such_type", "desc", "x", 1, -3));
    report("process_vm_readv", syscall(SYS_process_vm_readv, getpid(), &local, 1, &remote, 1, 0));
    report("clone3", syscall(435 /* clone3 */, NULL, 0));
    report("fchmodat2", syscall(452 /* fchmodat2 */, AT_FDCWD, "/tmp", 01777, 0));
    report("reboot", syscall(SYS_reboot, 0, 0, 0, NULL));
    report("unshare_user", syscall(SYS_unshare, CLONE_NEWUSER));
    return 0;
}
"""
ENOSYS, EPERM = errno.ENOSYS, errno.EPERM
DEFAULT_PATH = ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]


@pytest.fixture(scope="session")
def probe_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A static program that makes raw syscalls and prints ``<name> <errno>`` (0 = success)."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is needed to build the syscall probe")
    d = tmp_path_factory.mktemp("seccomp-probe")
    (d / "probe.c").write_text(PROBE_C)
    res = subprocess.run(["gcc", "-static", "-O1", "-o", str(d / "probe"), str(d / "probe.c")],
                         capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot build a static binary: {res.stderr.strip()[:200]}")
    return d / "probe"


def run_probe(bundle: Bundle, monitor: Monitor, probe: Path, name: str, **options: Any) -> dict[str, int]:
    bundle.write(name, ["/probe"], mounts=[bind_mount(str(probe), "/probe", readonly=True)], **options)
    code, out, err = monitor.run(name, bundle)
    assert code == 0, err
    return {k: int(v) for k, v in (line.split() for line in out.splitlines())}


def status_fields(text: str) -> dict[str, str]:
    return {k: v.strip() for k, _, v in (line.partition(":") for line in text.splitlines()) if k}


# ------------------------------------------------------------------------------ from inside
def test_default_profile_is_loaded(bundle: Bundle, monitor: Monitor) -> None:
    bundle.write("status", ["sh", "-c", "grep -E '^(Seccomp|Seccomp_filters|NoNewPrivs):' /proc/self/status"])
    code, out, err = monitor.run("status", bundle)
    assert code == 0, err
    assert status_fields(out) == {"Seccomp": "2", "Seccomp_filters": "1", "NoNewPrivs": "0"}


@pytest.mark.parametrize("how", ["privileged", "unconfined"])
def test_privileged_and_unconfined_have_no_filter(bundle: Bundle, monitor: Monitor, how: str) -> None:
    options: dict[str, Any] = {"privileged": True} if how == "privileged" else {
        "security_opt": ["seccomp=unconfined"]}
    spec = bundle.write("nofilter", ["sh", "-c", "grep -E '^Seccomp:' /proc/self/status"], **options)
    assert "seccomp" not in spec["linux"]
    code, out, err = monitor.run("nofilter", bundle)
    assert code == 0, err
    assert status_fields(out) == {"Seccomp": "0"}


def test_blocked_and_allowed_syscalls(bundle: Bundle, monitor: Monitor, probe_binary: Path) -> None:
    confined = run_probe(bundle, monitor, probe_binary, "confined")
    free = run_probe(bundle, monitor, probe_binary, "free", security_opt=["seccomp=unconfined"])
    # allowed by docker's profile (personality only with the values it lists)
    for name in ("getpid", "personality_query", "personality_linux32"):
        assert confined[name] == 0 == free[name], name
    # refused with EPERM by the profile, while the kernel itself would let them through
    for name in ("personality_no_aslr", "keyctl", "add_key", "process_vm_readv", "unshare_user"):
        assert confined[name] == EPERM, name
    for name in ("personality_no_aslr", "keyctl", "add_key", "process_vm_readv"):
        assert free[name] != EPERM, name
    assert confined["reboot"] == EPERM
    # clone3 has its own rule (ENOSYS, so that libc falls back to clone)
    assert confined["clone3"] == ENOSYS and free["clone3"] != ENOSYS
    # syscalls newer than the profile: runc's stub answers ENOSYS (crun leaves them to the default)
    assert free["fchmodat2"] == 0
    assert confined["fchmodat2"] == (EPERM if monitor.runtime == "crun" else ENOSYS)


def test_busybox_tools_refused(bundle: Bundle, monitor: Monitor) -> None:
    script = "unshare -U true; echo unshare=$?; (mount -t tmpfs none /mnt) 2>&1; mkdir /tmp/d && echo mkdir-ok"
    bundle.write("tools", ["sh", "-c", script])
    code, out, err = monitor.run("tools", bundle)
    assert code == 0, err
    assert out.splitlines() == ["unshare=1", "mount: permission denied (are you root?)", "mkdir-ok"]
    assert "Operation not permitted" in err  # unshare(CLONE_NEWUSER): EPERM from the filter


def test_cap_sys_admin_unlocks_its_syscalls(bundle: Bundle, monitor: Monitor) -> None:
    spec = bundle.write("admin", ["sh", "-c", "mkdir -p /mnt && mount -t tmpfs none /mnt && echo mounted; unshare -u hostname x && echo unshared"],
                        cap_add=["SYS_ADMIN"])
    names = {n for rule in spec["linux"]["seccomp"]["syscalls"] for n in rule["names"]}
    assert {"mount", "unshare", "setns"} <= names
    code, out, err = monitor.run("admin", bundle)
    assert code == 0, err
    assert out.splitlines() == ["mounted", "unshared"]


def test_custom_profile_denies_mkdir(bundle: Bundle, monitor: Monitor, tmp_path: Path) -> None:
    profile = tmp_path / "no-mkdir.json"
    profile.write_text(json.dumps({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}],
    }))
    bundle.write("nomkdir", ["sh", "-c", "mkdir /tmp/x; echo rc=$?; touch /tmp/f && echo touch-ok"],
                 security_opt=[f"seccomp={profile}"])
    code, out, err = monitor.run("nomkdir", bundle)
    assert code == 0, err
    assert out.splitlines() == ["rc=1", "touch-ok"]
    assert "Operation not permitted" in err


def test_custom_profile_errno_and_arguments(bundle: Bundle, monitor: Monitor, probe_binary: Path) -> None:
    """errnoRet, and a rule on an argument value: only ``personality(0x40000)`` is refused."""
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EACCES,
         "args": [{"index": 0, "value": 0x40000, "op": "SCMP_CMP_EQ"}]}]}
    result = run_probe(bundle, monitor, probe_binary, "args", security_opt=["seccomp=" + json.dumps(profile)])
    assert result["personality_no_aslr"] == errno.EACCES
    assert result["personality_linux32"] == 0 and result["keyctl"] != EPERM


def test_kill_process_action(bundle: Bundle, monitor: Monitor) -> None:
    profile = {"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["rmdir"], "action": "SCMP_ACT_KILL_PROCESS"}]}
    bundle.write("kill", ["sh", "-c", "rmdir /tmp/nosuch; echo status=$?"],
                 security_opt=["seccomp=" + json.dumps(profile)])
    code, out, err = monitor.run("kill", bundle)
    assert code == 0, err
    assert out.splitlines() == ["status=159"]  # 128 + SIGSYS


def test_exec_gets_the_container_filter(bundle: Bundle, monitor: Monitor) -> None:
    spec = bundle.write("execsc", ["sleep", "30"])
    monitor.create("execsc", bundle)
    monitor.call("start", id="execsc")
    proc = exec_process(spec["process"], ["sh", "-c", "grep -E '^Seccomp:' /proc/self/status; unshare -U true; echo rc=$?"])
    pid = monitor.exec("execsc", proc, key="e1")
    assert monitor.call("wait", pid=pid) == 0
    assert monitor.read("e1.out").splitlines() == ["Seccomp:\t2", "rc=1"]


def test_no_new_privileges(bundle: Bundle, monitor: Monitor) -> None:
    spec = bundle.write("nnp", ["sh", "-c", "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status"],
                        security_opt=["no-new-privileges"])
    assert spec["process"]["noNewPrivileges"] is True
    code, out, err = monitor.run("nnp", bundle)
    assert code == 0, err
    assert status_fields(out) == {"NoNewPrivs": "1", "Seccomp": "2"}


def test_a_bad_action_fails_create(bundle: Bundle, monitor: Monitor) -> None:
    bundle.write("badact", ["true"], security_opt=['seccomp={"defaultAction":"SCMP_ACT_NOPE"}'])
    with pytest.raises(HarnessError) as info:
        monitor.create("badact", bundle)
    assert info.value.message.startswith("OCI runtime create failed")
    assert "SCMP_ACT_NOPE" in info.value.message


# ------------------------------------------------------------------------------ docker's own spec
def _docker_ready() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0


@pytest.fixture(scope="module")
def docker_image(busybox_tar: Path) -> Any:
    if not _docker_ready():
        pytest.skip("dockerd is not reachable (docker info failed)")
    tag = f"dockyard-seccomp-test:{uuid.uuid4().hex[:12]}"
    subprocess.run(["docker", "import", str(busybox_tar), tag], check=True, capture_output=True)
    try:
        yield tag
    finally:
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)


def docker_seccomp(image: str, *flags: str) -> tuple[dict[str, Any], list[str]]:
    """dockerd's ``linux.seccomp`` and bounding set for ``docker run <flags> <image>``."""
    cid = subprocess.run(["docker", "create", *flags, image, "sleep", "30"], check=True, capture_output=True,
                         text=True).stdout.strip()
    try:
        subprocess.run(["docker", "start", cid], check=True, capture_output=True)
        path = Path("/run/docker/containerd/daemon/io.containerd.runtime.v2.task/moby") / cid / "config.json"
        deadline = time.monotonic() + 10
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        cfg = json.loads(path.read_text())
        return cfg["linux"].get("seccomp"), cfg["process"]["capabilities"].get("bounding") or []
    finally:
        subprocess.run(["docker", "rm", "-f", cid], capture_output=True)


@pytest.mark.interop
@pytest.mark.parametrize("flags, ours", [
    ((), {}),
    (("--cap-add", "SYS_ADMIN", "--cap-add", "SYS_PTRACE"), {"cap_add": ["SYS_ADMIN", "SYS_PTRACE"]}),
    (("--cap-drop", "ALL"), {"cap_drop": ["ALL"]}),
    (("--security-opt", "seccomp=unconfined"), {"security_opt": ["seccomp=unconfined"]}),
])
def test_same_seccomp_as_dockerd(bundle: Bundle, docker_image: str, flags: tuple[str, ...], ours: dict[str, Any]) -> None:
    theirs, bounding = docker_seccomp(docker_image, *flags)
    spec = bundle.write("cmp", ["sleep", "30"], **ours)
    assert spec["process"]["capabilities"]["bounding"] == bounding
    mine = spec["linux"].get("seccomp")
    if theirs is None:
        assert mine is None
        return

    def rules(obj: dict[str, Any]) -> set[str]:
        return {json.dumps([name, r["action"], r.get("errnoRet"), r.get("args")], sort_keys=True)
                for r in obj.get("syscalls", []) for name in r["names"]}

    assert rules(mine) == rules(theirs)
    assert mine == theirs  # and the same object, rule for rule
