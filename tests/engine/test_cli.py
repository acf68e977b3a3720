"""The container CLI as a user sees it: ps/inspect output, run options, bad input, cp, top, stats."""
from __future__ import annotations

import io
import json
import os
import re
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

NONE = ("--network", "none")


# ------------------------------------------------------------------------------------ ps
def test_ps_columns_status_and_flags(dy):
    dy.run_d("--name", "up1", "busybox", "sleep", "60")
    dy.ok("create", *NONE, "--name", "made", "-l", "tier=web", "busybox", "sh", "-c", "echo a long command line here")
    dy("run", *NONE, "--name", "done3", "busybox", "sh", "-c", "exit 3")
    lines = dy.ok("ps").splitlines()
    assert re.match(r"^CONTAINER ID   IMAGE     COMMAND      CREATED\s+STATUS\s+PORTS     NAMES$", lines[0]), lines[0]
    assert len(lines) == 2 and lines[1].endswith("up1") and '"sleep 60"' in lines[1]
    rows = dy.ok("ps", "-a", "--format", "{{.Names}}|{{.Status}}|{{.Command}}|{{.State}}").splitlines()
    assert rows[0].startswith("done3|Exited (3) ") and rows[0].endswith("|\"sh -c 'exit 3'\"|exited")
    assert rows[1] == "made|Created|\"sh -c 'echo a long …\"|created"
    assert rows[2].startswith("up1|Up ") and rows[2].endswith("|running")
    ids = dy.ok("ps", "-aq").split()
    assert len(ids) == 3 and all(len(i) == 12 for i in ids)
    assert len(dy.ok("ps", "-aq", "--no-trunc").split()[0]) == 64
    assert dy.ok("ps", "-n", "1", "--format", "{{.Names}}") == "done3\n"
    assert dy.ok("ps", "-l", "--format", "{{.Names}}") == "done3\n"
    assert dy.ok("ps", "-a", "-f", "label=tier=web", "--format", "{{.Names}}") == "made\n"
    assert dy.ok("ps", "-a", "-f", "name=made", "--format", "{{.Label \"tier\"}}") == "web\n"
    assert dy.ok("ps", "-f", "status=exited", "--format", "{{.Names}}") == "done3\n"
    assert dy.ok("ps", "-a", "-f", "exited=3", "--format", "{{.Names}}") == "done3\n"
    assert dy.ok("ps", "-a", "-f", "name=up", "--format", "{{.Names}}") == "up1\n"
    assert dy.ok("ps", "-a", "-f", "ancestor=busybox", "-q") .count("\n") == 3
    assert dy.ok("ps", "-a", "-f", "before=done3", "--format", "{{.Names}}") == "made\nup1\n"
    assert dy.ok("ps", "-a", "-f", "since=up1", "--format", "{{.Names}}") == "done3\nmade\n"
    row = json.loads(dy.ok("ps", "-a", "-n", "1", "--format", "json"))
    assert set(row) >= {"ID", "Image", "Command", "CreatedAt", "RunningFor", "Status", "State", "Names", "Ports",
                        "Labels", "Mounts", "Networks", "Size"}
    sized = dy.ok("ps", "-a", "-s").splitlines()
    assert sized[0].endswith("NAMES     SIZE") and re.search(r"\(virtual [\d.]+[kM]B\)$", sized[1])


def test_ps_bad_filters(dy):
    p = dy("ps", "-f", "foo=bar")
    assert p.returncode == 1 and "Invalid filter 'foo'" in p.stderr
    p = dy("ps", "-f", "status=foo")
    assert p.returncode == 1 and "Invalid filter 'status=foo'" in p.stderr
    p = dy("ps", "-f", "health=foo")
    assert p.returncode == 1 and "Unrecognised filter value for health: foo" in p.stderr


# ------------------------------------------------------------------------------------ inspect
def test_inspect_document_is_dockers(dy, client):
    dy.ok("create", *NONE, "--name", "insp", "-m", "64m", "--cpus", "0.5", "-c", "512", "--pids-limit", "50",
          "--restart", "on-failure:3", "--cap-add", "NET_ADMIN", "--cap-drop", "CHOWN", "--read-only", "--init",
          "-e", "A=1", "-l", "k=v", "-w", "/work", "--log-opt", "max-size=1m", "busybox", "sh", "-c", "true")
    doc = dy.inspect("insp")
    assert re.fullmatch(r"[0-9a-f]{64}", doc["Id"])
    assert doc["Name"] == "/insp" and doc["Path"] == "sh" and doc["Args"] == ["-c", "true"]
    assert doc["Image"] == client.images.get("busybox").id and doc["Image"].startswith("sha256:")
    assert doc["Driver"] == "overlay2" and doc["RestartCount"] == 0
    assert list(doc["State"]) == ["Status", "Running", "Paused", "Restarting", "OOMKilled", "Dead", "Pid", "ExitCode",
                                  "Error", "StartedAt", "FinishedAt"]
    assert doc["State"]["Status"] == "created" and doc["State"]["StartedAt"] == "0001-01-01T00:00:00Z"
    hc = doc["HostConfig"]
    assert (hc["Memory"], hc["NanoCpus"], hc["CpuShares"], hc["PidsLimit"]) == (64 * 1024 * 1024, 500_000_000, 512, 50)
    assert hc["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert (hc["CapAdd"], hc["CapDrop"], hc["ReadonlyRootfs"], hc["Init"], hc["Privileged"]) == \
        (["CAP_NET_ADMIN"], ["CAP_CHOWN"], True, True, False)  # as dockerd records them
    assert hc["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "1m"}}
    assert hc["NetworkMode"] == "none" and hc["AutoRemove"] is False and hc["Binds"] is None
    cfg = doc["Config"]
    assert cfg["Env"][0] == "A=1" and cfg["Labels"]["k"] == "v" and cfg["WorkingDir"] == "/work"
    assert cfg["Image"] == "busybox" and cfg["Cmd"] == ["sh", "-c", "true"] and cfg["Hostname"] == doc["Id"][:12]
    assert "none" in doc["NetworkSettings"]["Networks"]
    assert doc["Mounts"] == []
    p = dy("container", "inspect", "insp", "nosuch")
    assert p.returncode == 1 and "No such container: nosuch" in p.stderr
    assert json.loads(p.stdout)[0]["Name"] == "/insp"
    assert dy.ok("inspect", "--format", "{{.State.Status}} {{.HostConfig.Memory}}", "insp") == "created 67108864\n"


# ------------------------------------------------------------------------------------ run options
def test_run_options_reach_the_container(dy, tmp_path):
    envfile = tmp_path / "env"
    envfile.write_text("# comment\nFROMFILE=yes\nOVER=file\n")
    host_dir = tmp_path / "share"
    host_dir.mkdir()
    (host_dir / "f").write_text("from host\n")
    script = ("echo $FROMFILE $OVER; hostname; pwd; id -u; cat /data/f; touch /data/x 2>/dev/null || echo ro-bind; "
              "touch /etc/x 2>/dev/null || echo ro-root; touch /scratch/x && echo tmpfs-ok; "
              "cat /proc/1/cmdline | tr '\\0' ' '; echo")
    p = dy("run", "--rm", *NONE, "--env-file", str(envfile), "-e", "OVER=flag", "-h", "myhost", "-w", "/made/here",
           "-u", "1234", "-v", f"{host_dir}:/data:ro", "--read-only", "--tmpfs", "/scratch", "--init",
           "busybox", "sh", "-c", script)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[:5] == ["yes flag", "myhost", "/made/here", "1234", "from host"]
    assert lines[5:8] == ["ro-bind", "ro-root", "tmpfs-ok"]
    assert lines[8].startswith("/sbin/docker-init -- sh -c")


def test_limits_and_capabilities(dy):
    cid = dy.run_d("--name", "lim", "-m", "32m", "--pids-limit", "20", "--cap-drop", "ALL", "busybox", "sleep", "60")
    from dockyard.runtime.cgroups import Cgroup

    cg = Cgroup(f"/dockyard/{cid}")
    mem = cg.dir_for("memory")
    if mem is not None:
        assert (mem / "memory.limit_in_bytes").read_text().strip() == str(32 * 1024 * 1024)
    pids = cg.dir_for("pids")
    if pids is not None:
        assert (pids / "pids.max").read_text().strip() == "20"
    assert dy.ok("exec", "lim", "sh", "-c", "grep CapEff /proc/self/status") == "CapEff:\t0000000000000000\n"
    assert "CapEff:\t000001ff" in dy.ok("exec", "--privileged", "lim", "sh", "-c", "grep CapEff /proc/self/status")


def test_entrypoint_rules(dy):
    assert dy.ok("run", "--rm", *NONE, "--entrypoint", "echo", "busybox", "a", "b") == "a b\n"
    assert dy.ok("run", "--rm", *NONE, "--entrypoint", "echo", "busybox") == "\n"  # the image's CMD is dropped
    assert dy.ok("run", "--rm", *NONE, "--entrypoint", "", "busybox", "echo", "c") == "c\n"
    p = dy("run", "--rm", *NONE, "--entrypoint", "", "busybox")
    assert p.returncode == 125 and "No command specified" in p.stderr


# ------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("args,code,message", [
    (("-m", "1x"), 125, "invalid argument \"1x\" for \"-m, --memory\" flag: invalid suffix: 'x'"),
    (("-m", "4m"), 125, "Minimum memory limit allowed is 6MB"),
    (("--cpus", "abc"), 125, "failed to parse abc as a rational number"),
    (("--pids-limit", "x"), 125, 'strconv.ParseInt: parsing "x": invalid syntax'),
    (("--restart", "bogus"), 125, "invalid restart policy 'bogus'"),
    (("--restart", "always:3"), 125, "maximum retry count cannot be used with restart policy 'always'"),
    (("--restart", "on-failure:x"), 125, "maximum retry count must be an integer"),
    (("--rm", "--restart", "always"), 125, "conflicting options: cannot specify both --restart and --rm"),
    (("-w", "rel"), 125, "the working directory 'rel' is invalid, it needs to be an absolute path"),
    (("--health-interval", "10us", "--health-cmd", "true"), 125, "Interval in Healthcheck cannot be less than 1ms"),
    (("--log-opt", "foo=bar"), 125, "unknown log opt 'foo' for json-file log driver"),
    (("--log-driver", "bogus"), 125, 'error looking up logging plugin bogus: plugin "bogus" not found'),
    (("--runtime", "nosuch"), 125, "Unknown runtime specified nosuch"),
    (("--name", "a b"), 125, "Invalid container name (a b), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"),
    (("--env-file", "/nonexistent"), 125, "open /nonexistent: no such file or directory"),
])
def test_bad_run_input(dy, args, code, message):
    p = dy("run", *NONE, *args, "busybox", "true")
    assert p.returncode == code, p.stderr
    assert message in p.stderr.splitlines()[0]  # one clear line (then docker's usage hint, if docker gives one)
    assert "Traceback" not in p.stderr
    assert dy.ok("ps", "-aq") == ""  # and nothing half-made


def test_bad_references(dy):
    p = dy("run", "--rm", *NONE, "--pull", "never", "nosuchimage", "true")
    assert p.returncode == 125 and "No such image: nosuchimage:latest" in p.stderr
    p = dy("create", *NONE, "--pull", "never", "nosuchimage")
    assert p.returncode == 1
    dy.ok("create", *NONE, "--name", "taken", "busybox", "true")
    cid = dy.inspect("taken")["Id"]
    msg = (f'Conflict. The container name "/taken" is already in use by container "{cid}". '
           "You have to remove (or rename) that container to be able to reuse that name.")
    p = dy("run", *NONE, "--name", "taken", "busybox", "true")
    assert p.returncode == 125 and msg in p.stderr
    p = dy("create", *NONE, "--name", "taken", "busybox", "true")
    assert p.returncode == 1 and msg in p.stderr
    for verb in ("stop", "kill", "rm", "wait", "pause", "restart"):
        p = dy(verb, "nosuch")
        assert p.returncode == 1 and "No such container: nosuch" in p.stderr, (verb, p.stderr)
    for verb in ("logs", "exec", "top", "port", "attach"):
        args = (verb, "nosuch", "true") if verb == "exec" else (verb, "nosuch")
        p = dy(*args)
        assert p.returncode == 1 and "No such container: nosuch" in p.stderr, (verb, p.stderr)
    p = dy("exec", "taken", "true")
    assert p.returncode == 1 and f"Container {cid} is not running" in p.stderr
    p = dy("start", "nosuch")
    assert p.returncode == 1 and "No such container: nosuch" in p.stderr
    assert "failed to start containers: nosuch" in p.stderr


def test_name_rename_and_prefix(dy):
    cid = dy.ok("create", *NONE, "--name", "first", "busybox", "true").strip()
    dy.ok("rename", "first", "second")
    assert dy.inspect(cid[:6])["Name"] == "/second"
    dy.ok("create", *NONE, "--name", "first", "busybox", "true")  # the old name is free
    p = dy("rename", "second", "first")
    assert p.returncode == 1 and 'The container name "/first" is already in use' in p.stderr
    p = dy("rename", "second", "second")
    assert p.returncode == 1 and "Renaming a container with the same name as its current name" in p.stderr
    unnamed = dy.ok("create", *NONE, "busybox", "true").strip()
    assert re.fullmatch(r"[a-z]+_[a-z]+\d?", dy.inspect(unnamed)["Name"].lstrip("/"))


# ------------------------------------------------------------------------------------ top / stats / prune
def test_top_stats_port_prune(dy):
    dy.run_d("--name", "tp", "busybox", "sh", "-c", "sleep 60 & sleep 61")
    time.sleep(0.3)
    out = dy.ok("top", "tp").splitlines()
    assert out[0].split() == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    cmds = [line.split(None, 7)[7] for line in out[1:]]
    assert sorted(cmds) == ["sleep 60", "sleep 61"]  # sh execs its last command
    assert dy.ok("top", "tp", "-o", "pid,comm").splitlines()[0].split() == ["PID", "COMMAND"]
    stats = dy.ok("stats", "--no-stream", "tp").splitlines()
    assert stats[0].split("   ")[0] == "CONTAINER ID" and "MEM USAGE / LIMIT" in stats[0]
    assert stats[1].split()[1] == "tp" and stats[1].split()[-1] == "2"
    assert dy.ok("port", "tp") == ""
    dy.ok("create", *NONE, "--name", "old1", "busybox", "true")
    dy("run", *NONE, "--name", "old2", "busybox", "true")
    out = dy.ok("container", "prune", "-f")
    assert out.startswith("Deleted Containers:\n") and out.endswith("Total reclaimed space: 0B\n")
    assert dy.ok("ps", "-a", "--format", "{{.Names}}") == "tp\n"


# ------------------------------------------------------------------------------------ cp / diff
def test_cp_both_ways_and_tar_streams(dy, tmp_path):
    dy.run_d("--name", "cpy", "busybox", "sh", "-c", "mkdir -p /srv/d && echo inside > /srv/d/f && ln -s / /srv/esc && sleep 60")
    time.sleep(0.3)
    dy.ok("cp", "cpy:/srv/d/f", str(tmp_path / "got"))
    assert (tmp_path / "got").read_text() == "inside\n"
    dy.ok("cp", "cpy:/srv/d", str(tmp_path))
    assert (tmp_path / "d" / "f").read_text() == "inside\n"
    src = tmp_path / "up.txt"
    src.write_text("uploaded\n")
    dy.ok("cp", str(src), "cpy:/srv/")
    assert dy.ok("exec", "cpy", "cat", "/srv/up.txt") == "uploaded\n"
    dy.ok("cp", str(src), "cpy:/srv/renamed")
    assert dy.ok("exec", "cpy", "cat", "/srv/renamed") == "uploaded\n"
    # a symlink inside the container resolves inside it, never to the host's files
    dy.ok("cp", str(src), "cpy:/srv/esc/tmp/")
    assert dy.ok("exec", "cpy", "cat", "/tmp/up.txt") == "uploaded\n"
    assert not Path("/tmp/up.txt").exists() or Path("/tmp/up.txt").read_text() != "uploaded\n"
    # tar streams with -
    out = dy("cp", "cpy:/srv/d", "-", text=False)
    assert out.returncode == 0
    names = tarfile.open(fileobj=io.BytesIO(out.stdout)).getnames()
    assert sorted(names) == ["d", "d/f"]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        data = b"from a tar\n"
        ti = tarfile.TarInfo("t/in.txt")
        ti.size = len(data)
        tf.addfile(ti, io.BytesIO(data))
    assert dy("cp", "-", "cpy:/srv", input=buf.getvalue(), text=False).returncode == 0
    assert dy.ok("exec", "cpy", "cat", "/srv/t/in.txt") == "from a tar\n"
    p = dy("cp", "cpy:/nonexistent", str(tmp_path))
    assert p.returncode == 1 and "Could not find the file /nonexistent in container cpy" in p.stderr
    diff = dy.ok("diff", "cpy").splitlines()
    assert "A /srv" in diff and "A /srv/up.txt" in diff and "A /srv/d/f" in diff and "C /tmp" in diff
    assert not [line for line in diff if line.startswith(("A /etc", "C /etc"))]  # docker's init layer


def test_cp_stopped_container(dy, tmp_path):
    dy("run", *NONE, "--name", "gone", "busybox", "sh", "-c", "echo later > /result")
    dy.ok("cp", "gone:/result", str(tmp_path / "r"))
    assert (tmp_path / "r").read_text() == "later\n"


def test_cp_never_loads_the_containers_nss_modules(dy, tmp_path):
    """docker's CVE-2019-14271: a copy works inside the container's root, where looking up a
    user or group name would make glibc follow the container's nsswitch.conf and load its
    libnss_*.so into a root process on the host. The container's module here leaves a marker
    when loaded; no copy in either direction may load it."""
    import shutil

    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed (apt-get install gcc)")
    src = tmp_path / "evil.c"
    src.write_text('#include <stdio.h>\n__attribute__((constructor)) static void pwn(void) {\n'
                   '  FILE *f = fopen("/pwned", "w"); if (f) { fputs("loaded", f); fclose(f); }\n}\n')
    lib = tmp_path / "libnss_evil.so.2"
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(lib), str(src)], check=True, capture_output=True)
    dy.run_d("--name", "nss", "busybox", "sh", "-c", "mkdir -p /lib/x86_64-linux-gnu && sleep 60")
    time.sleep(0.3)
    dy.ok("cp", str(lib), "nss:/lib/x86_64-linux-gnu/")
    dy.ok("exec", "nss", "sh", "-c", "cp /lib/x86_64-linux-gnu/libnss_evil.so.2 /lib/ && printf 'passwd: evil\\ngroup: evil\\n' > /etc/nsswitch.conf && "
          "echo x > /owned && chown 4242:4343 /owned")
    plain = tmp_path / "plain.txt"
    plain.write_text("in\n")
    dy.ok("cp", "nss:/owned", str(tmp_path / "out"))
    assert dy("cp", "nss:/etc", "-", text=False).returncode == 0
    dy.ok("cp", str(plain), "nss:/tmp/")
    dy.ok("cp", "-a", str(plain), "nss:/tmp/plain2")
    assert dy("exec", "nss", "test", "-e", "/pwned").returncode == 1, "a copy loaded the container's NSS module"
    assert (tmp_path / "out").read_text() == "x\n"


def test_cp_owners_as_docker(dy, tmp_path):
    """In: the files' own ids (the container's user with -a, when it has one). Out: the caller's."""
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "f").write_text("f\n")
    os.chown(tree / "f", 123, 456)
    dy.run_d("--name", "own", "-u", "1000:1000", "busybox", "sh", "-c", "echo o > /tmp/o && sleep 60")
    dy.ok("cp", str(tree), "own:/tmp/plain")
    dy.ok("cp", "-a", str(tree), "own:/tmp/arch")
    assert dy.ok("exec", "own", "stat", "-c", "%u:%g", "/tmp/plain/f", "/tmp/arch/f").split() == ["123:456", "1000:1000"]
    dy.ok("cp", "own:/tmp/o", str(tmp_path / "o"))
    st = os.stat(tmp_path / "o")
    assert (st.st_uid, st.st_gid) == (os.getuid(), os.getgid())
