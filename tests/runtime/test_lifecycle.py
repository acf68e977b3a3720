"""One lifecycle suite, three runtimes: the built-in runtime, runc and crun run the same bundles
(made by our spec generator over an overlay of the busybox rootfs) and must behave alike.
That runc and crun pass is our proof that the bundles are right."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest

from dockyard.runtime import cgroups
from dockyard.runtime.spec import (DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS, Resources, bind_mount,
                                   exec_process, resolve_user, tmpfs_mount)

from .conftest import Bundle, HarnessError, Monitor

DOCKER_DEFAULT_CAPS = "00000000a80425fb"


def sections(out: str) -> dict[str, str]:
    """Split ``== name ==`` delimited output of a probe script into its sections."""
    found: dict[str, list[str]] = {}
    current = None
    for line in out.splitlines():
        if line.startswith("== ") and line.endswith(" =="):
            current = line[3:-3]
            found[current] = []
        elif current is not None:
            found[current].append(line)
    return {k: "\n".join(v).strip() for k, v in found.items()}


def cgroup_dirs(cgroups_path: str) -> list[Path]:
    return [d for d in cgroups.Cgroup(cgroups_path).dirs.values() if d.exists()]


def host_mountpoints_under(path: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(str(path) + "/")
                or line.split()[4] == str(path)]


PROBE = r"""
echo "== pid =="; echo $$
echo "== pid1 =="; tr '\0' ' ' < /proc/1/cmdline; echo
echo "== hostname =="; hostname
echo "== hosts =="; cat /etc/hosts
echo "== resolv =="; cat /etc/resolv.conf
echo "== root =="; ls /
echo "== host-files =="; ls /work /var/lib/dockyard 2>&1 | head -n 3
echo "== caps =="; grep -E '^Cap(Eff|Bnd|Prm)' /proc/self/status
echo "== procsys =="; (echo x > /proc/sys/kernel/domainname) 2>&1
echo "== sysfs =="; (touch /sys/kernel/x) 2>&1
echo "== masked =="
for p in %(masked)s; do
  if [ -d $p ]; then echo "$p $(ls -A $p | wc -l)"; elif [ -e $p ]; then echo "$p $(wc -c < $p)"; fi
done
echo "== netdevs =="; ls /sys/class/net
echo "== ping_group =="; cat /proc/sys/net/ipv4/ping_group_range
echo "== dev =="; ls /dev
echo "== devnull =="; echo discard > /dev/null && echo ok
echo "== mounts =="; awk '{print $5}' /proc/self/mountinfo
"""


def test_isolation_from_inside(bundle: Bundle, monitor: Monitor) -> None:
    bundle.write("iso", ["sh", "-c", PROBE % {"masked": " ".join(DEFAULT_MASKED_PATHS)}])
    code, out, err = monitor.run("iso", bundle)
    assert code == 0, err
    s = sections(out)
    assert s["pid"] == "1"
    assert s["pid1"].startswith("sh -c")
    assert s["hostname"] == "ctr"
    assert "10.1.2.3\tctr" in s["hosts"]
    assert s["resolv"] == "nameserver 10.0.0.53"
    assert s["root"].split() == sorted(p.name for p in bundle.rootfs.iterdir())
    assert "No such file or directory" in s["host-files"]
    caps = dict(line.split(":\t") for line in s["caps"].splitlines())
    assert caps == {"CapPrm": DOCKER_DEFAULT_CAPS, "CapEff": DOCKER_DEFAULT_CAPS, "CapBnd": DOCKER_DEFAULT_CAPS}
    assert "Read-only file system" in s["procsys"]
    assert "Read-only file system" in s["sysfs"]
    on_host = [p for p in DEFAULT_MASKED_PATHS if os.path.exists(p)]
    assert on_host, "no masked path exists on this host"
    assert s["masked"].splitlines() == [f"{p} 0" for p in on_host]  # there, but empty
    assert s["netdevs"].split() == ["lo"]
    assert s["ping_group"].split() == ["0", "2147483647"]
    for node in ("null", "zero", "full", "random", "urandom", "tty", "pts", "ptmx", "shm", "mqueue",
                 "fd", "stdin", "stdout", "stderr"):
        assert node in s["dev"].split(), node
    assert s["devnull"] == "ok"
    mounts = s["mounts"].split()
    assert mounts[0] == "/"
    for m in ("/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup", "/etc/hosts",
              "/etc/hostname", "/etc/resolv.conf", *(p for p in DEFAULT_READONLY_PATHS if os.path.exists(p)),
              *on_host):
        assert m in mounts, m
    assert not any(m.startswith(("/work", "/tmp/pytest", str(bundle.path))) for m in mounts)


@pytest.fixture(scope="session")
def escape_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A static program that tries the classic double-chroot escape, then lists '/'."""
    import shutil

    if shutil.which("gcc") is None:
        pytest.skip("gcc is needed to build the chroot-escape probe")
    d = tmp_path_factory.mktemp("escape")
    src = d / "escape.c"
    src.write_text(r"""
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>
int main(void) {
    mkdir("/tmp/jail", 0755);
    if (chroot("/tmp/jail") != 0) { perror("chroot"); return 2; }
    for (int i = 0; i < 64; i++) chdir("..");
    if (chroot(".") != 0) { perror("chroot ."); return 2; }
    execl("/bin/ls", "ls", "/", (char *)0);
    perror("exec"); return 3;
}
""")
    out = d / "escape"
    res = subprocess.run(["gcc", "-static", "-O2", "-o", str(out), str(src)], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot build a static binary: {res.stderr.strip()[:200]}")
    return out


def test_chroot_escape_stays_in_rootfs(bundle: Bundle, monitor: Monitor, escape_binary: Path) -> None:
    bundle.write("escape", ["/escape"], mounts=[bind_mount(str(escape_binary), "/escape", readonly=True)])
    code, out, err = monitor.run("escape", bundle)
    assert code == 0, err
    listing = out.split()
    assert "work" not in listing
    assert listing == sorted([*(p.name for p in bundle.rootfs.iterdir()), "escape"]) or \
        set(listing) == {p.name for p in bundle.rootfs.iterdir()} | {"escape"}


@pytest.mark.parametrize("user, expected, caps", [
    ("nobody", "uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)", "0000000000000000"),
    ("1234:5", "uid=1234 gid=5(tty) groups=5(tty)", "0000000000000000"),
    ("daemon", "uid=1(daemon) gid=1(daemon) groups=1(daemon)", "0000000000000000"),
    ("0", "uid=0(root) gid=0(root) groups=0(root)", DOCKER_DEFAULT_CAPS),
])
def test_user_by_name_and_number(bundle: Bundle, monitor: Monitor, user: str, expected: str, caps: str) -> None:
    uid, gid, gids = resolve_user(bundle.rootfs, user)
    bundle.write("user", ["sh", "-c", "id; grep CapEff /proc/self/status; echo $HOME"],
                 uid=uid, gid=gid, additional_gids=gids)
    code, out, err = monitor.run("user", bundle)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == expected
    assert lines[1].split() == ["CapEff:", caps]


def test_env_and_cwd(bundle: Bundle, monitor: Monitor) -> None:
    bundle.write("envcwd", ["sh", "-c", 'echo "$FOO"; pwd; echo "$HOME"'],
                 env=["PATH=/bin", "FOO=bar baz"], cwd="/srv/app")
    code, out, err = monitor.run("envcwd", bundle)
    assert code == 0, err
    assert out.splitlines() == ["bar baz", "/srv/app", "/root"]


def test_exit_code_of_the_command(bundle: Bundle, monitor: Monitor) -> None:
    bundle.write("exit7", ["sh", "-c", "exit 7"])
    assert monitor.run("exit7", bundle)[0] == 7


@pytest.mark.parametrize("command, code, words", [
    ("nosuchcommand", 127, "not found"),
    ("/nosuch/program", 127, "no such file"),
    ("/etc/passwd", 126, "permission denied"),
])
def test_start_failures_exit_like_docker(bundle: Bundle, monitor: Monitor, command: str, code: int, words: str) -> None:
    spec = bundle.write("fail", [command])
    with pytest.raises(HarnessError) as info:
        monitor.create("fail", bundle)
        monitor.call("start", id="fail")
    assert info.value.kind == "ProcessStartError"
    assert info.value.exit_code == code
    assert words in info.value.message.lower()
    assert info.value.message.startswith("OCI runtime create failed")
    if monitor.runtime == "builtin":  # a failed create leaves nothing behind
        with pytest.raises(HarnessError) as gone:
            monitor.call("state", id="fail")
        assert gone.value.kind == "NotFound"
        assert cgroup_dirs(spec["linux"]["cgroupsPath"]) == []


def test_signals_reach_pid1(bundle: Bundle, monitor: Monitor) -> None:
    bundle.write("sig", ["sh", "-c", 'trap "echo got-term; exit 42" TERM; echo ready; while :; do sleep 0.05; done'])
    pid = monitor.create("sig", bundle)
    monitor.call("start", id="sig")
    wait_for(lambda: "ready" in monitor.read("sig.out"))
    monitor.call("kill", id="sig", signal=signal.SIGTERM)
    assert monitor.call("wait", pid=pid) == 42
    assert "got-term" in monitor.read("sig.out")
    monitor.call("delete", id="sig")


def _have_init() -> bool:
    from dockyard.runtime.spec import INIT_CANDIDATES

    return any(os.path.isfile(c) for c in INIT_CANDIDATES)


@pytest.mark.skipif(not _have_init(), reason="--init needs tini (apt-get install tini)")
def test_init_reaps_and_forwards_signals(bundle: Bundle, monitor: Monitor) -> None:
    spec = bundle.write("init", ["sleep", "100"], init=True)
    assert spec["process"]["args"][:2] == ["/sbin/docker-init", "--"]
    pid = monitor.create("init", bundle)
    monitor.call("start", id="init")
    proc = exec_process(spec["process"], ["sh", "-c", "tr '\\0' ' ' < /proc/1/cmdline"])
    epid = monitor.exec("init", proc, key="init-exec")
    assert monitor.call("wait", pid=epid) == 0
    assert monitor.read("init-exec.out").startswith("/sbin/docker-init -- sleep 100")
    monitor.call("kill", id="init", signal=signal.SIGTERM)  # plain `sleep` as PID 1 would ignore it
    assert monitor.call("wait", pid=pid) == 143
    monitor.call("delete", id="init")


def ns_links(pid: int) -> dict[str, str]:
    return {n: os.readlink(f"/proc/{pid}/ns/{n}") for n in ("mnt", "pid", "net", "uts", "ipc", "cgroup")}


def test_exec_joins_namespaces_and_cgroup(bundle: Bundle, monitor: Monitor) -> None:
    spec = bundle.write("ex", ["sleep", "60"])
    pid = monitor.create("ex", bundle)
    monitor.call("start", id="ex")
    assert monitor.call("state", id="ex")["status"] == "running"
    epid = monitor.exec("ex", exec_process(spec["process"], ["sleep", "60"]), key="ex-sleep")
    assert ns_links(epid) == ns_links(pid)
    assert ns_links(epid) != ns_links(os.getpid())
    assert Path(f"/proc/{epid}/cgroup").read_text() == Path(f"/proc/{pid}/cgroup").read_text()
    assert epid in cgroups.container_pids(spec["linux"]["cgroupsPath"])

    uid, gid, gids = resolve_user(bundle.rootfs, "nobody")
    probe = exec_process(spec["process"], ["sh", "-c", 'echo $$ $FOO; tr "\\0" " " < /proc/1/cmdline; echo; id; pwd'],
                         env=["FOO=exec"], user=(uid, gid, gids), cwd="/tmp")
    ppid = monitor.exec("ex", probe, key="ex-probe")
    assert monitor.call("wait", pid=ppid) == 0
    lines = monitor.read("ex-probe.out").splitlines()
    assert lines[0].split()[1] == "exec" and lines[0].split()[0] != "1"
    assert lines[1].strip() == "sleep 60"
    assert lines[2] == "uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)"
    assert lines[3] == "/tmp"

    with pytest.raises(HarnessError) as info:
        monitor.exec("ex", exec_process(spec["process"], ["nosuchcommand"]), key="ex-missing")
    assert info.value.exit_code == 127
    assert info.value.message.startswith("OCI runtime exec failed")

    monitor.call("kill", id="ex", signal=signal.SIGKILL)
    assert monitor.call("wait", pid=pid) == 137
    assert monitor.call("wait", pid=epid) == 137  # the pid namespace died with its init
    monitor.call("delete", id="ex")


def test_memory_limit_oom_kill(bundle: Bundle, monitor: Monitor) -> None:
    spec = bundle.write("oom", ["dd", "if=/dev/zero", "of=/dev/null", "bs=96M", "count=1"],
                        resources=Resources(memory=32 * 1024 * 1024))
    path = spec["linux"]["cgroupsPath"]
    pid = monitor.create("oom", bundle)
    monitor.call("start", id="oom")
    assert monitor.call("wait", pid=pid) == 137
    assert cgroups.oom_killed(path)
    stats = cgroups.read_stats(path)
    assert stats["oom_kill"] >= 1
    assert stats["memory"]["limit"] == 32 * 1024 * 1024
    monitor.call("delete", id="oom")
    assert cgroup_dirs(path) == []


def test_fork_bomb_stops_at_pids_limit(bundle: Bundle, monitor: Monitor) -> None:
    bundle.write("pids", ["sh", "-c", "i=0; while [ $i -lt 40 ]; do sleep 30 & i=$((i+1)); echo $i; done"],
                 resources=Resources(pids_limit=10))
    code, out, err = monitor.run("pids", bundle)
    assert code != 0
    assert out.split()[-1] == "9"  # sh itself + 9 sleeps = 10 tasks
    assert "fork" in err


def test_cpu_quota_holds(bundle: Bundle, monitor: Monitor) -> None:
    spec = bundle.write("cpu", ["sh", "-c", "while :; do :; done"], resources=Resources(cpus=0.5))
    path = spec["linux"]["cgroupsPath"]
    monitor.create("cpu", bundle)
    monitor.call("start", id="cpu")
    time.sleep(0.3)
    u0, t0 = cgroups.read_stats(path)["cpu"]["usage_ns"], time.monotonic()
    time.sleep(1.5)
    u1, t1 = cgroups.read_stats(path)["cpu"]["usage_ns"], time.monotonic()
    share = (u1 - u0) / 1e9 / (t1 - t0)
    assert 0.1 < share < 0.65, share  # the quota caps it (a busy host may give it less)
    monitor.call("delete", id="cpu", force=True)


def test_pause_and_resume(bundle: Bundle, monitor: Monitor) -> None:
    spec = bundle.write("pause", ["sh", "-c", "while :; do :; done"], resources=Resources(cpus=0.3))
    path = spec["linux"]["cgroupsPath"]
    pid = monitor.create("pause", bundle)
    monitor.call("start", id="pause")
    monitor.call("pause", id="pause")
    assert monitor.call("state", id="pause")["status"] == "paused"
    u0 = cgroups.read_stats(path)["cpu"]["usage_ns"]
    time.sleep(0.3)
    assert cgroups.read_stats(path)["cpu"]["usage_ns"] - u0 < 5_000_000
    monitor.call("resume", id="pause")
    assert monitor.call("state", id="pause")["status"] == "running"
    time.sleep(0.3)
    assert cgroups.read_stats(path)["cpu"]["usage_ns"] - u0 > 20_000_000
    monitor.call("kill", id="pause", signal=signal.SIGKILL)
    assert monitor.call("wait", pid=pid) == 137
    monitor.call("delete", id="pause")


def test_tty_over_console_socket(bundle: Bundle, monitor: Monitor) -> None:
    spec = bundle.write("tty", ["sh", "-c", 'tty; read line; echo "got:$line"; exit 3'], tty=True)
    pid = monitor.create("tty", bundle, console=True)
    monitor.call("start", id="tty")
    assert "/dev/pts/0" in monitor.call("console_read", key="tty", until="/dev/pts/0")
    monitor.call("console_write", key="tty", data="hello\n")
    assert "got:hello" in monitor.call("console_read", key="tty", until="got:hello")
    assert monitor.call("wait", pid=pid) == 3
    monitor.call("console_close", key="tty")
    monitor.call("delete", id="tty")
    assert spec["process"]["terminal"] is True


def test_readonly_rootfs_and_mounts(bundle: Bundle, monitor: Monitor, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "greeting").write_text("hi from the host\n")
    bundle.write("ro", ["sh", "-c", "cat /data/greeting; (touch /x) 2>&1; (touch /data/y) 2>&1; "
                                    "touch /dev/shm/ok /scratch/ok && echo writable; "
                                    "grep -E ' /scratch ' /proc/self/mountinfo | grep -c tmpfs"],
                 readonly_rootfs=True, mounts=[bind_mount(str(data), "/data", readonly=True), tmpfs_mount("/scratch")])
    code, out, err = monitor.run("ro", bundle)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "hi from the host"
    assert "Read-only file system" in lines[1]
    assert "Read-only file system" in lines[2]
    assert lines[3:] == ["writable", "1"]
    assert not (data / "y").exists()


def test_states_and_cleanup(bundle: Bundle, monitor: Monitor) -> None:
    spec = bundle.write("life", ["sh", "-c", "echo started; sleep 60"])
    path = spec["linux"]["cgroupsPath"]
    pid = monitor.create("life", bundle)
    st = monitor.call("state", id="life")
    assert st["status"] == "created" and st["pid"] == pid
    assert monitor.read("life.out") == ""  # nothing runs before start
    monitor.call("start", id="life")
    wait_for(lambda: monitor.read("life.out") == "started\n")
    assert monitor.call("state", id="life")["status"] == "running"
    with pytest.raises(HarnessError):
        monitor.call("start", id="life")
    with pytest.raises(HarnessError) as busy:
        monitor.call("delete", id="life")
    assert busy.value.kind == "Conflict"
    monitor.call("kill", id="life", signal=signal.SIGKILL)
    assert monitor.call("wait", pid=pid) == 137
    assert monitor.call("state", id="life")["status"] == "stopped"
    monitor.call("delete", id="life")
    with pytest.raises(HarnessError) as gone:
        monitor.call("state", id="life")
    assert gone.value.kind == "NotFound"
    assert cgroup_dirs(path) == []
    assert monitor.call("children") == []
    assert host_mountpoints_under(bundle.path) == [str(bundle.rootfs)]


def test_force_delete_of_running_container_leaves_nothing(bundle: Bundle, monitor: Monitor) -> None:
    spec = bundle.write("forced", ["sh", "-c", "sleep 60 & sleep 60 & sleep 60"])
    path = spec["linux"]["cgroupsPath"]
    pid = monitor.create("forced", bundle)
    monitor.call("start", id="forced")
    wait_for(lambda: len(cgroups.container_pids(path)) == 3)
    monitor.call("delete", id="forced", force=True)
    assert monitor.call("wait", pid=pid) == 137
    assert cgroup_dirs(path) == []
    assert monitor.call("children") == []
    with pytest.raises(HarnessError):
        monitor.call("state", id="forced")


def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


@pytest.fixture
def named_netns() -> Iterator[str]:
    """A network namespace made beforehand, as the network code hands one in (ip netns)."""
    import shutil
    import uuid

    if shutil.which("ip") is None:
        pytest.skip("iproute2 is needed to make a named network namespace")
    name = f"dyrt-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "add", "dyrt0", "type", "veth", "peer", "name", "dyrt1"], check=True)
        yield f"/run/netns/{name}"
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def test_joins_a_given_network_namespace(bundle: Bundle, monitor: Monitor, named_netns: str) -> None:
    bundle.write("netns", ["sh", "-c", "ls /sys/class/net; readlink /proc/self/ns/net"], netns_path=named_netns)
    code, out, err = monitor.run("netns", bundle)
    assert code == 0, err
    lines = out.split()
    assert sorted(lines[:-1]) == ["dyrt0", "dyrt1", "lo"]
    assert lines[-1] == f"net:[{os.stat(named_netns).st_ino}]"


def test_host_network(bundle: Bundle, monitor: Monitor) -> None:
    spec = bundle.write("hostnet", ["readlink", "/proc/self/ns/net"], network="host")
    assert "net.ipv4.ping_group_range" not in spec["linux"]["sysctl"]
    code, out, err = monitor.run("hostnet", bundle)
    assert code == 0, err
    assert out.strip() == os.readlink("/proc/self/ns/net")


def test_overlay_mount_in_the_spec(bundle: Bundle, monitor: Monitor, tmp_path: Path) -> None:
    from dockyard.runtime.spec import overlay_mount

    lower, upper, work = tmp_path / "ov-lower", tmp_path / "ov-upper", tmp_path / "ov-work"
    for d in (lower, upper, work):
        d.mkdir()
    (lower / "from-lower").write_text("lower\n")
    bundle.write("ovl", ["sh", "-c", "cat /merged/from-lower; echo new > /merged/written"],
                 mounts=[overlay_mount("/merged", [str(lower)], str(upper), str(work))])
    code, out, err = monitor.run("ovl", bundle)
    assert code == 0, err
    assert out == "lower\n"
    assert (upper / "written").read_text() == "new\n"
    assert not (lower / "written").exists()


@pytest.mark.parametrize("cgroupns", ["private", "host"])
def test_cgroup_view_inside(bundle: Bundle, monitor: Monitor, cgroupns: str) -> None:
    """/sys/fs/cgroup shows the container's own cgroup (its limits), with or without a cgroup ns."""
    if cgroups.is_v2():
        probe = "cat /sys/fs/cgroup/memory.max; grep '^0::' /proc/self/cgroup; mkdir /sys/fs/cgroup/x 2>&1"
    else:
        probe = ("cat /sys/fs/cgroup/memory/memory.limit_in_bytes; grep ':memory:' /proc/self/cgroup; "
                 "mkdir /sys/fs/cgroup/memory/x 2>&1")
    spec = bundle.write("cgview", ["sh", "-c", probe + "; true"], cgroupns=cgroupns,
                        resources=Resources(memory=48 * 1024 * 1024))
    code, out, err = monitor.run("cgview", bundle)
    assert code == 0, err
    limit, membership, mkdir = out.splitlines()
    assert limit == str(48 * 1024 * 1024)
    expected = "/" if cgroupns == "private" else spec["linux"]["cgroupsPath"]
    assert membership.rsplit(":", 1)[1] == expected
    assert "Read-only file system" in mkdir


def test_host_pid_and_ipc_namespaces(bundle: Bundle, monitor: Monitor) -> None:
    bundle.write("hostpid", ["sh", "-c", "echo $$; readlink /proc/self/ns/pid; readlink /proc/self/ns/ipc"], pid="host", ipc="host")
    code, out, err = monitor.run("hostpid", bundle)
    assert code == 0, err
    pid, pidns, ipcns = out.split()
    assert pid != "1"
    assert pidns == os.readlink("/proc/self/ns/pid") and ipcns == os.readlink("/proc/self/ns/ipc")
