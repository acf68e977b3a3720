"""Bad input: one clear message, the right exit code, and nothing left behind."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from dockyard.build.errors import BuildError, DockerfileSyntaxError, StepFailed


def _leftovers(client, root: Path) -> list[str]:
    out = []
    active = [s for s in client.snapshots.list() if s.kind == "active"]
    if active:
        out.append(f"active snapshots: {[s.key for s in active]}")
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split()[4] for line in f if str(root) in line.split()[4]]
    if mounts:
        out.append(f"mounts: {mounts}")
    for d in ("build/tmp", "build/runtime"):
        p = root / d
        left = [n for n in os.listdir(p) if not n.startswith(".")] if p.is_dir() else []  # .x: runtime caches
        if left:
            out.append(f"{d}: {left}")
    for cg in ("/sys/fs/cgroup/memory/dockyard/build", "/sys/fs/cgroup/pids/dockyard/build",
               "/sys/fs/cgroup/unified/dockyard/build"):
        if os.path.isdir(cg) and [e for e in os.listdir(cg) if e.startswith("dyb-")]:
            out.append(f"cgroups left in {cg}")
    return out


def test_failing_run_shows_output_and_code_and_leaves_nothing(build, client, root, tmp_path):
    before = {i.id for i in client.images.list(all=True)}
    with pytest.raises(StepFailed) as info:
        build(None, "FROM dytest-busybox\nRUN echo to-stdout; echo to-stderr >&2; sleep 30 & exit 7\n", tags=["never"])
    err = info.value
    assert err.exit_status == 7
    assert err.message == ("executor failed running [/bin/sh -c echo to-stdout; echo to-stderr >&2; sleep 30 & exit 7]: "
                           "exit code: 7")  # docker 20.10's BuildKit words
    assert b"to-stdout\n" in err.output and b"to-stderr\n" in err.output
    assert {i.id for i in client.images.list(all=True)} == before
    assert not client.images.exists("never")
    assert _leftovers(client, root) == []


def test_failing_run_through_cli(cli, base, tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM dytest-busybox\nRUN echo visible-output && false\n")
    proc = cli("build", "--progress", "plain", str(tmp_path))
    assert proc.returncode == 1
    assert "#2 0." in proc.stderr and "visible-output" in proc.stderr
    assert proc.stderr.rstrip().endswith("\nexecutor failed running [/bin/sh -c echo visible-output && false]: "
                                         "exit code: 1")
    quiet = cli("build", "-q", str(tmp_path))
    assert quiet.returncode == 1 and "visible-output" in quiet.stderr and quiet.stdout == ""


def test_syntax_error_names_file_line_instruction(cli, base, tmp_path):
    (tmp_path / "custom.Dockerfile").write_text("FROM dytest-busybox\nRUN true\nEXPOSE\n")
    proc = cli("build", "-f", str(tmp_path / "custom.Dockerfile"), str(tmp_path))
    assert proc.returncode == 1
    assert proc.stderr.strip() == ("failed to solve with frontend dockerfile.v0: failed to create LLB definition: "
                                   "dockerfile parse error line 3: EXPOSE requires at least one argument")


@pytest.mark.parametrize("dockerfile,message", [
    ("FROM dytest-busybox\nCOPY missing.txt /x\n", 'failed to compute cache key: "/missing.txt" not found: not found'),
    ("FROM dytest-busybox\nCOPY ../outside /x\n", "COPY failed: forbidden path outside the build context: ../outside ()"),
    ("FROM dytest-busybox\nCOPY ignored.txt /x\n", 'failed to compute cache key: "/ignored.txt" not found: not found'),
    ("FROM dytest-busybox\nCOPY a.txt b.txt /notadir\n",
     "When using COPY with more than one source file, the destination must be a directory and end with a /"),
    ("FROM dytest-busybox\nCOPY --from=nostage-image:404 /a /b\n", "failed to resolve source image nostage-image:404"),
    ("FROM dytest-busybox\nCOPY --chown=nosuchuser a.txt /x\n", "can't find uid for user nosuchuser"),
    ("FROM dytest-busybox\nADD http://127.0.0.1:9/x.tgz /x\n", "ADD failed: cannot download http://127.0.0.1:9/x.tgz"),
    ("FROM dytest-busybox\nSTOPSIGNAL NOTASIGNAL\n", "Invalid signal: NOTASIGNAL"),
    ("FROM dytest-busybox\nUSER nobody\nRUN --mount=type=secret,id=x true\n", "type=secret is not supported"),
])
def test_bad_sources_are_named(build, client, root, tmp_path, dockerfile, message):
    (tmp_path / "a.txt").write_text("a")
    (tmp_path / "b.txt").write_text("b")
    (tmp_path / "ignored.txt").write_text("i")
    (tmp_path / ".dockerignore").write_text("ignored.txt\n")
    with pytest.raises(BuildError) as info:
        build(tmp_path, dockerfile)
    assert message in info.value.message
    assert _leftovers(client, root) == []


def test_unknown_target_and_unused_args(cli, base, tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM dytest-busybox AS a\nARG USED\nRUN true\n")
    proc = cli("build", "--target", "nope", str(tmp_path))
    assert proc.returncode == 1 and proc.stderr.strip() == ("failed to solve with frontend dockerfile.v0: "
                                                  "failed to create LLB definition: target stage nope could not be found")
    proc = cli("build", "--build-arg", "USED=1", "--build-arg", "EXTRA=2", "--build-arg", "HTTP_PROXY=x",
               str(tmp_path))
    assert proc.returncode == 0
    assert "[Warning] One or more build-args [EXTRA] were not consumed" in proc.stderr.splitlines()


def test_unknown_base_image(build):
    with pytest.raises(BuildError, match="failed to resolve source image"):
        build(None, "FROM localhost:1/none/such:tag\nRUN true\n")


def test_bad_context_and_dockerfile_paths(cli, base, tmp_path):
    proc = cli("build", str(tmp_path / "nope"))
    assert proc.returncode == 1 and 'path "' in proc.stderr and "not found" in proc.stderr
    proc = cli("build", str(tmp_path))
    assert proc.returncode == 1 and "Dockerfile" in proc.stderr
    proc = cli("build", "-f", "-", "-", input="FROM x\n")
    assert proc.returncode == 1 and "can't use stdin for both build context and dockerfile" in proc.stderr
    proc = cli("build", "https://example.com/repo.git")
    assert proc.returncode == 1 and "remote build contexts are not supported" in proc.stderr


def test_syntax_error_class_is_invalid_argument():
    from dockyard.errors import InvalidArgument

    assert issubclass(DockerfileSyntaxError, InvalidArgument)


def test_leftovers_of_a_killed_build_are_reaped(build, client, root, tmp_path):
    import subprocess

    dead = subprocess.Popen(["true"])
    dead.wait()
    snaps = client.snapshots
    base_chain = client.images.get("dytest-busybox").top_chain_id
    key = f"build-{dead.pid}-deadbeef"
    snaps.prepare(key, base_chain)
    target = root / "build" / "tmp" / f"{dead.pid}-cafe" / "mnt"
    snaps.mount(key, target)
    build(None, "FROM dytest-busybox\nRUN echo fresh > /fresh\n", no_cache=True)
    assert key not in [s.key for s in snaps.list()]
    assert not (root / "build" / "tmp" / f"{dead.pid}-cafe").exists()
    assert _leftovers(client, root) == []


def test_empty_dockerfile(build):
    for text, message in (("", "the Dockerfile cannot be empty"), ("# only a comment\n\n", "file with no instructions")):
        with pytest.raises(BuildError) as info:
            build(None, text)
        assert info.value.message == message and info.value.definition
