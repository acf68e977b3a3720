"""docker's seccomp profile and ``--security-opt`` on every runtime.

The same bundles (made by our spec generator) run on the built-in runtime, runc and crun: a
program inside finds ``Seccomp: 2`` in /proc/self/status, the syscalls docker's profile refuses
fail with EPERM (ENOSYS for ``clone3`` and for syscalls newer than the profile), the ones it
allows work, and ``--privileged`` / ``seccomp=unconfined`` lift the filter. A static C probe
reaches the syscalls busybox cannot. The generated ``linux.seccomp`` is compared with the one
dockerd writes for ``docker run`` of the same image.
"""
from __future__ import annotations

import ctypes
import errno
import json
import os
import shutil
import struct
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from dockyard.errors import InvalidArgument
from dockyard.runtime import seccomp as sc
from dockyard.runtime import seccomp_bpf
from dockyard.runtime.capabilities import DEFAULT_CAPABILITIES
from dockyard.runtime.seccomp import default_seccomp
from dockyard.runtime.seccomp_syscalls import syscall_table
from dockyard.runtime.spec import ContainerSpecOptions, bind_mount, exec_process, generate_spec

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


# ------------------------------------------------------------------------------ the BPF compiler
# The built-in runtime's programs are checked against libseccomp's (what runc and crun load):
# both are run by a small cBPF interpreter on every syscall number of every architecture, with
# argument values around each comparison, and must return the same action (runc's -ENOSYS stub
# for syscalls above the profile's highest one is added to libseccomp's answer).


SCMP_CMP = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4, "SCMP_CMP_GE": 5,
            "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}
ARCH_TOKEN = {"SCMP_ARCH_X86_64": 0xC000003E, "SCMP_ARCH_X86": 0x40000003, "SCMP_ARCH_X32": 0x4000003E,
              "SCMP_ARCH_AARCH64": 0xC00000B7, "SCMP_ARCH_ARM": 0x40000028}


def run_bpf(program: bytes, nr: int, arch: int, args: tuple[int, ...] = (0,) * 6) -> int:
    """Interpret a seccomp cBPF program on one ``struct seccomp_data``."""
    data = struct.pack("<iIQ6Q", nr, arch, 0, *args)
    insns = list(seccomp_bpf.decode(program))
    a, pc = 0, 0
    while True:
        code, jt, jf, k = insns[pc]
        if code == 0x20:
            a = struct.unpack_from("<I", data, k)[0]
        elif code == 0x54:
            a &= k
        elif code == 0x05:
            pc += k
        elif code in (0x15, 0x25, 0x35, 0x45):
            taken = {0x15: a == k, 0x25: a > k, 0x35: a >= k, 0x45: bool(a & k)}[code]
            pc += jt if taken else jf
        elif code == 0x06:
            return k
        else:
            raise AssertionError(f"unexpected BPF instruction {code:#x}")
        pc += 1


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


def libseccomp_program(config: dict[str, Any], native: str) -> bytes:
    """What runc asks libseccomp for (``InitSeccomp``/``matchCall``), exported as cBPF."""
    try:
        lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    except OSError:
        pytest.skip("libseccomp is not installed")
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_arch_add.argtypes = lib.seccomp_arch_remove.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                           ctypes.POINTER(_ArgCmp)]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    lib.seccomp_arch_native.restype = ctypes.c_uint32
    default = seccomp_bpf.action_value(config["defaultAction"], config.get("defaultErrnoRet"))
    ctx = lib.seccomp_init(default)
    try:
        host = lib.seccomp_arch_native()
        if ARCH_TOKEN[native] != host:
            assert lib.seccomp_arch_add(ctx, ARCH_TOKEN[native]) == 0
            assert lib.seccomp_arch_remove(ctx, host) == 0
        for arch in config.get("architectures") or []:
            lib.seccomp_arch_add(ctx, ARCH_TOKEN[arch])
        for call in config.get("syscalls") or []:
            act = seccomp_bpf.action_value(call["action"], call.get("errnoRet"))
            if act == default:
                continue
            conds = [_ArgCmp(a["index"], SCMP_CMP[a["op"]], a["value"], a.get("valueTwo", 0)) for a in call.get("args") or []]
            groups = [[c] for c in conds] if len({c.arg for c in conds}) < len(conds) else [conds]
            for name in call["names"]:
                nr = lib.seccomp_syscall_resolve_name(name.encode())
                if nr == -1:
                    continue
                for group in groups:
                    arr = (_ArgCmp * len(group))(*group) if group else None
                    rc = lib.seccomp_rule_add_array(ctx, act, nr, len(group), arr)
                    assert rc == 0, (name, rc)
        r, w = os.pipe()
        try:
            assert lib.seccomp_export_bpf(ctx, w) == 0
            os.close(w)
            w = -1
            chunks = []
            while chunk := os.read(r, 65536):
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(r)
            if w >= 0:
                os.close(w)
    finally:
        lib.seccomp_release(ctx)


def probe_args(config: dict[str, Any]) -> list[tuple[int, ...]]:
    """Argument vectors around every value the profile compares with."""
    vectors: set[tuple[int, ...]] = {(0,) * 6}
    for call in config.get("syscalls") or []:
        for arg in call.get("args") or []:
            for v in {arg["value"], arg.get("valueTwo", 0)}:
                for x in (v, v - 1, v + 1, v ^ (1 << 32), v ^ 1, v | 0xFFFFFFFF00000000, v & 0xFFFFFFFF, ~v):
                    vec = [0] * 6
                    vec[arg["index"]] = x & 0xFFFFFFFFFFFFFFFF
                    vectors.add(tuple(vec))
    return sorted(vectors)


def assert_same_as_libseccomp(config: dict[str, Any], native: str) -> int:
    ours = seccomp_bpf.compile_filter(config, machine={"SCMP_ARCH_X86_64": "x86_64", "SCMP_ARCH_AARCH64": "aarch64"}[native])
    theirs = libseccomp_program(config, native)
    default = seccomp_bpf.action_value(config["defaultAction"], config.get("defaultErrnoRet"))
    stub = default not in (seccomp_bpf.RET_ALLOW, seccomp_bpf.RET_LOG)
    listed = config.get("architectures") or []
    arches = [native] + [a for a in listed if a != native and a in seccomp_bpf.HOST_ARCHES["x86_64" if native == "SCMP_ARCH_X86_64" else "aarch64"][1]]
    vectors = probe_args(config)
    checked = 0
    for arch in arches:
        table = syscall_table(arch)
        names = {n for call in config.get("syscalls") or [] for n in call["names"]}
        last = max((table[n] for n in names if n in table), default=0)
        audit = seccomp_bpf.AUDIT_ARCH[arch]
        base = seccomp_bpf.X32_SYSCALL_BIT if arch == "SCMP_ARCH_X32" else 0
        numbers = sorted(set(table.values()) | {base + n for n in (500, 999, 1000, 4095)})
        conditional = {table[n] for call in config.get("syscalls") or [] if call.get("args")
                       for n in call["names"] if n in table}
        for nr in numbers:
            for args in vectors if nr in conditional else [(0,) * 6]:
                expected = run_bpf(theirs, nr, audit, args)
                if stub and arch in listed and last and nr > last:
                    expected = seccomp_bpf.RET_ERRNO | errno.ENOSYS
                got = run_bpf(ours.program, nr, audit, args)
                assert got == expected, (arch, nr, [hex(a) for a in args], hex(got), hex(expected))
                checked += 1
    foreign = "SCMP_ARCH_AARCH64" if native == "SCMP_ARCH_X86_64" else "SCMP_ARCH_X86_64"
    assert run_bpf(ours.program, 0, seccomp_bpf.AUDIT_ARCH[foreign]) == run_bpf(theirs, 0, seccomp_bpf.AUDIT_ARCH[foreign]) == 0
    return checked


@pytest.mark.parametrize("native", ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"])
@pytest.mark.parametrize("caps", [list(DEFAULT_CAPABILITIES), [], list(DEFAULT_CAPABILITIES) + ["CAP_SYS_ADMIN", "CAP_SYS_PTRACE"]],
                         ids=["default-caps", "no-caps", "sys-admin"])
def test_default_profile_compiles_like_libseccomp(native: str, caps: list[str]) -> None:
    machine = {"SCMP_ARCH_X86_64": "x86_64", "SCMP_ARCH_AARCH64": "aarch64"}[native]
    config = default_seccomp(caps, machine=machine)
    assert assert_same_as_libseccomp(config, native) > 700


OPERATOR_PROFILE = {
    "defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"],
    "syscalls": [
        {"names": ["read", "write", "close"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["openat"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 2, "value": 0x1_0000_0040, "op": "SCMP_CMP_EQ"}]},
        {"names": ["mkdir"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 1, "value": 0x2_0000_0000, "op": "SCMP_CMP_NE"}]},
        {"names": ["rmdir"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 0x1_8000_0000, "op": "SCMP_CMP_GT"}]},
        {"names": ["chdir"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 0x1_8000_0000, "op": "SCMP_CMP_GE"}]},
        {"names": ["fchdir"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 0x1_8000_0000, "op": "SCMP_CMP_LT"}]},
        {"names": ["rename"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 0x1_8000_0000, "op": "SCMP_CMP_LE"}]},
        {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 0xFFFF_0000_7E02_0000, "valueTwo": 0x0001_0000_0000_0000, "op": "SCMP_CMP_MASKED_EQ"}]},
        {"names": ["mmap"], "action": "SCMP_ACT_TRACE", "errnoRet": 7,
         "args": [{"index": 0, "value": 5, "op": "SCMP_CMP_EQ"}, {"index": 3, "value": 9, "op": "SCMP_CMP_GE"}]},
        {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
         "args": [{"index": 1, "value": 9, "op": "SCMP_CMP_EQ"}, {"index": 1, "value": 15, "op": "SCMP_CMP_EQ"}]},
        {"names": ["getpid"], "action": "SCMP_ACT_TRAP"},
        {"names": ["getppid"], "action": "SCMP_ACT_LOG"},
        {"names": ["gettid"], "action": "SCMP_ACT_KILL_PROCESS"},
        {"names": ["getuid"], "action": "SCMP_ACT_KILL"},
        {"names": ["chown32", "no_such_syscall"], "action": "SCMP_ACT_ALLOW"},
    ],
}


@pytest.mark.parametrize("default", ["SCMP_ACT_ERRNO", "SCMP_ACT_ALLOW", "SCMP_ACT_KILL_PROCESS"])
def test_every_operator_and_action_like_libseccomp(default: str) -> None:
    config = dict(OPERATOR_PROFILE, defaultAction=default)
    assert assert_same_as_libseccomp(config, "SCMP_ARCH_X86_64") > 500
    program = seccomp_bpf.compile_filter(config, machine="x86_64").program
    audit = seccomp_bpf.AUDIT_ARCH["SCMP_ARCH_X86_64"]
    openat = syscall_table("SCMP_ARCH_X86_64")["openat"]
    assert run_bpf(program, openat, audit, (0, 0, 0x1_0000_0040, 0, 0, 0)) == seccomp_bpf.RET_ALLOW
    if default != "SCMP_ACT_ALLOW":
        assert run_bpf(program, openat, audit, (0, 0, 0x40, 0, 0, 0)) != seccomp_bpf.RET_ALLOW  # high word counts


def test_far_jumps_get_trampolines() -> None:
    """Hundreds of conditional rules push targets beyond a conditional jump's 255-instruction reach."""
    config = {"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"], "syscalls": [
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": v, "op": "SCMP_CMP_EQ"}]}
        for v in range(150)] + [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"}]}
    compiled = seccomp_bpf.compile_filter(config, machine="x86_64")
    assert compiled.length > 600
    assert assert_same_as_libseccomp(config, "SCMP_ARCH_X86_64") > 0


def test_compiled_filters_are_cached(tmp_path: Path) -> None:
    config = default_seccomp(list(DEFAULT_CAPABILITIES))
    first = seccomp_bpf.load_or_compile(config, tmp_path)
    entries = list(tmp_path.iterdir())
    assert len(entries) == 1 and entries[0].suffix == ".bpf"
    start = time.perf_counter()
    again = seccomp_bpf.load_or_compile(config, tmp_path)
    assert time.perf_counter() - start < 0.005
    assert again == first
    entries[0].write_bytes(b"garbage")  # a corrupt entry is recompiled, never loaded
    assert seccomp_bpf.load_or_compile(config, tmp_path) == first


@pytest.mark.parametrize("config, message", [
    ({"defaultAction": "SCMP_ACT_NOPE"}, "string SCMP_ACT_NOPE is not a valid action for seccomp"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_VAX"]}, "string SCMP_ARCH_VAX is not a valid arch"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW",
                                                      "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_ABOUT"}]}]},
     "string SCMP_CMP_ABOUT is not a valid operator"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW",
                                                      "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]},
     "argument index 6 is out of range"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "flags": ["SECCOMP_FILTER_FLAG_NEW_LISTENER"]}, "not yet supported"),
])
def test_compile_errors(config: dict[str, Any], message: str) -> None:
    with pytest.raises(seccomp_bpf.SeccompError, match=message):
        seccomp_bpf.compile_filter(config, machine="x86_64")


# ------------------------------------------------------------------------------ --security-opt and profiles


@pytest.mark.parametrize("opt, message", [
    ("foo", 'invalid --security-opt 1: "foo"'),
    ("foo=bar", 'invalid --security-opt 2: "foo=bar"'),
    ("no-new-privileges:maybe", 'invalid --security-opt 2: "no-new-privileges:maybe"'),
    ("seccomp=/nonexistent/profile.json", "opening seccomp profile (/nonexistent/profile.json) failed: "
                                          "open /nonexistent/profile.json: no such file or directory"),
])
def test_daemon_security_opt_errors(opt: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        sc.parse_security_opts([opt])
    assert str(info.value) == message


def test_daemon_security_opts() -> None:
    assert sc.parse_security_opts(["no-new-privileges"]).no_new_privileges is True
    assert sc.parse_security_opts(["no-new-privileges:true"]).no_new_privileges is True
    assert sc.parse_security_opts(["no-new-privileges=false"]).no_new_privileges is False
    assert sc.parse_security_opts([]).no_new_privileges is None
    opts = sc.parse_security_opts(["seccomp:unconfined", "apparmor=unconfined", "label=disable", "disable"])
    assert (opts.seccomp_profile, opts.apparmor_profile, opts.label_options) == ("unconfined", "unconfined",
                                                                                 ["disable", "disable"])


def test_cli_reads_profile_files(tmp_path: Path) -> None:
    profile = tmp_path / "p.json"
    profile.write_text('{\n  "defaultAction": "SCMP_ACT_ALLOW",\n  "syscalls": []\n}\n')
    assert sc.resolve_security_opts([f"seccomp={profile}", "no-new-privileges", "seccomp=unconfined"]) == [
        'seccomp={"defaultAction":"SCMP_ACT_ALLOW","syscalls":[]}', "no-new-privileges", "seccomp=unconfined"]
    for opt, message in (("foo", 'Invalid --security-opt: "foo"'), ("seccomp=", 'Invalid --security-opt: "seccomp="'),
                         (f"seccomp={tmp_path}", f"opening seccomp profile ({tmp_path}) failed: read {tmp_path}: is a directory")):
        with pytest.raises(InvalidArgument) as info:
            sc.resolve_security_opts([opt])
        assert str(info.value) == message and info.value.exit_code == 125
    (tmp_path / "bad.json").write_text("{bad")
    with pytest.raises(InvalidArgument, match=r"compacting json for seccomp profile \(.*bad.json\) failed"):
        sc.resolve_security_opts([f"seccomp={tmp_path / 'bad.json'}"])


@pytest.mark.parametrize("profile, message", [
    ('{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64"],"archMap":[{"architecture":"SCMP_ARCH_X86_64"}]}',
     "'architectures' and 'archMap' were specified in the seccomp profile, use either 'architectures' or 'archMap'"),
    ('{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"name":"mkdir","names":["mkdir"],"action":"SCMP_ACT_ERRNO"}]}',
     "'name' and 'names' were specified in the seccomp profile, use either 'name' or 'names'"),
    ('{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO","includes":{"minKernel":"4.x"}}]}',
     'Decoding seccomp profile failed: invalid kernel version: "4.x", expected "<kernel>.<major>": '
     'strconv.ParseUint: parsing "x": invalid syntax'),
    ("[1]", "Decoding seccomp profile failed: json: cannot unmarshal array into Go value of type seccomp.Seccomp"),
])
def test_profile_errors_like_moby(profile: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        sc.container_seccomp(sc.parse_security_opts(["seccomp=" + profile]), False, [])
    assert str(info.value) == message


def test_profile_conversion_like_moby() -> None:
    assert sc.container_seccomp(sc.parse_security_opts(["seccomp={}"]), False, []) is None  # disabled
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"name": "mkdir", "action": "SCMP_ACT_ERRNO"},
        {"names": ["rmdir"], "action": "SCMP_ACT_ERRNO", "includes": {"minKernel": "99.1"}},
        {"names": ["chdir"], "action": "SCMP_ACT_ERRNO", "excludes": {"minKernel": "4.1"}},
        {"names": ["link"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13, "includes": {"caps": ["CAP_CHOWN"]}},
        {"names": ["unlink"], "action": "SCMP_ACT_ERRNO", "excludes": {"caps": ["CAP_CHOWN"]}}]}
    out = sc.profile_to_oci(profile, ["CAP_CHOWN"], machine="x86_64", kernel=(6, 1))
    assert out == {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"},
        {"names": ["link"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}


def test_default_profile_on_arm64() -> None:
    out = sc.default_seccomp(list(DEFAULT_CAPABILITIES), machine="aarch64")
    assert out["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    names = {n for r in out["syscalls"] for n in r["names"]}
    assert {"cacheflush", "set_tls", "arm_fadvise64_64"} <= names and not {"arch_prctl", "modify_ldt"} & names
    x86 = sc.default_seccomp(list(DEFAULT_CAPABILITIES), machine="x86_64")
    assert x86["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]


def test_spec_security_options() -> None:
    def spec(**kw: Any) -> dict[str, Any]:
        return generate_spec(ContainerSpecOptions(container_id="c", args=["true"], **kw))

    default = spec()
    assert default["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"
    assert default["process"]["noNewPrivileges"] is False
    assert "seccomp" not in spec(privileged=True)["linux"]
    assert "seccomp" not in spec(security_opt=["seccomp=unconfined"])["linux"]
    assert spec(security_opt=["seccomp=builtin"])["linux"]["seccomp"] == default["linux"]["seccomp"]
    assert spec(no_new_privileges=True)["process"]["noNewPrivileges"] is True  # the older flag still works
    assert spec(no_new_privileges=True, security_opt=["no-new-privileges=false"])["process"]["noNewPrivileges"] is False
    assert spec(security_opt=["no-new-privileges:true"])["process"]["noNewPrivileges"] is True
    with pytest.raises(InvalidArgument, match='invalid --security-opt 2: "x=y"'):
        spec(security_opt=["x=y"])
