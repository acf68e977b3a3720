"""``dockyard image build`` / ``dockyard build`` / ``dockyard builder build`` on the command line."""
from __future__ import annotations

import io
import json
import re
import tarfile


def _ctx(tmp_path, dockerfile="FROM dytest-busybox\nCOPY a.txt /a.txt\nRUN echo built > /built\n"):
    (tmp_path / "a.txt").write_text("a\n")
    (tmp_path / "Dockerfile").write_text(dockerfile)
    return tmp_path


def test_tags_quiet_iidfile_labels(cli, client, base, tmp_path):
    ctx = _ctx(tmp_path)
    iid = tmp_path / "iid"
    proc = cli("image", "build", "-q", "-t", "app:1", "-t", "registry.local:5000/app", "--label", "team=build",
               "--label", "empty", "--iidfile", str(iid), str(ctx))
    assert proc.returncode == 0, proc.stderr
    image_id = proc.stdout.strip()
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", image_id)
    assert iid.read_text() == image_id + "\n"  # under -q the classic builder ends it with a newline
    image = client.images.get("app:1")
    assert image.id == image_id and client.images.get("registry.local:5000/app:latest").id == image_id
    assert image.config["Labels"] == {"team": "build", "empty": ""}


def test_build_alias_and_builder_build(cli, base, tmp_path):
    ctx = _ctx(tmp_path)
    a = cli("build", "-q", str(ctx))
    b = cli("builder", "build", "-q", str(ctx))
    assert a.returncode == b.returncode == 0 and a.stdout == b.stdout


def test_plain_progress_marks_cache_hits_with_durations(cli, base, tmp_path):
    ctx = _ctx(tmp_path)
    first = cli("build", "--progress", "plain", "-t", "p", str(ctx))
    assert first.returncode == 0, first.stderr
    assert first.stdout == ""
    err = first.stderr
    assert "#1 [1/3] FROM docker.io/library/dytest-busybox" in err and "#2 [2/3] COPY a.txt /a.txt" in err
    assert re.search(r"^#3 \[3/3\] RUN echo built > /built\n#3 DONE \d+\.\ds$", err, re.M)
    assert re.search(r"^#4 writing image sha256:[0-9a-f]{64} done$", err, re.M)
    assert "#4 naming to docker.io/library/p:latest done" in err
    second = cli("build", "--progress", "plain", str(ctx)).stderr
    assert "#2 CACHED" in second and "#3 CACHED" in second


def test_run_output_streams_with_timestamps(cli, base, tmp_path):
    ctx = _ctx(tmp_path, "FROM dytest-busybox\nRUN echo first && sleep 0.3 && echo second\n")
    err = cli("build", "--progress", "plain", str(ctx)).stderr
    times = [float(t) for t in re.findall(r"^#2 (\d+\.\d{3}) (?:first|second)$", err, re.M)]
    assert len(times) == 2 and times[1] - times[0] >= 0.25


def test_dockerfile_flag_and_stdin(cli, client, base, tmp_path):
    ctx = _ctx(tmp_path)
    (tmp_path / "other.Dockerfile").write_text("FROM dytest-busybox\nCOPY a.txt /from-other\n")
    proc = cli("build", "-q", "-f", str(tmp_path / "other.Dockerfile"), "-t", "other", str(ctx))
    assert proc.returncode == 0, proc.stderr
    assert "/from-other" in _paths(client, "other")
    proc = cli("build", "-q", "-f", "-", "-t", "stdin-df", str(ctx), input="FROM dytest-busybox\nCOPY a.txt /via-stdin\n")
    assert proc.returncode == 0, proc.stderr
    assert "/via-stdin" in _paths(client, "stdin-df")


def test_context_tar_on_stdin(cli, client, base, tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in (("Dockerfile", b"FROM dytest-busybox\nCOPY data/ /data/\n"), ("data/x", b"x\n")):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    proc = cli("build", "-q", "-t", "fromtar", "-", input=buf.getvalue(), text=False)
    assert proc.returncode == 0, proc.stderr
    assert "/data/x" in _paths(client, "fromtar")


def test_dockerfile_on_stdin_without_context(cli, client, base):
    proc = cli("build", "-q", "-t", "nocontext", "-", input="FROM dytest-busybox\nRUN echo hi > /hi\n")
    assert proc.returncode == 0, proc.stderr
    assert "/hi" in _paths(client, "nocontext")
    proc = cli("build", "-q", "-", input="FROM dytest-busybox\nCOPY x /x\n")
    assert proc.returncode == 1 and "no build context" in proc.stderr


def test_network_none(cli, client, base, tmp_path):
    ctx = _ctx(tmp_path, "FROM dytest-busybox\nRUN cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' ' > /ifaces\n")
    proc = cli("build", "-q", "--network", "none", "-t", "nonet", str(ctx))
    assert proc.returncode == 0, proc.stderr
    assert _file(client, "nonet", "/ifaces") == b"lo\n"
    proc = cli("build", "-q", "--network", "bridge0", str(ctx))
    assert proc.returncode == 1 and "network mode" in proc.stderr


def test_image_is_inspectable(cli, base, tmp_path):
    ctx = _ctx(tmp_path, "FROM dytest-busybox\nENV A=1\nCMD [\"cat\", \"/a.txt\"]\nCOPY a.txt /\n")
    cli("build", "-q", "-t", "insp", str(ctx), check=True)
    proc = cli("image", "inspect", "insp")
    assert proc.returncode == 0, proc.stderr
    cfg = json.loads(proc.stdout)[0]["Config"]
    assert cfg["Cmd"] == ["cat", "/a.txt"] and "A=1" in cfg["Env"]


def _paths(client, ref: str) -> set[str]:
    import imagefs

    table, _ = imagefs.dockyard_image_fs(client, ref)
    return set(table.entries)


def _file(client, ref: str, path: str) -> bytes:
    import imagefs

    return imagefs.file_content(client, ref, path)
