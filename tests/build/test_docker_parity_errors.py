"""Build failures side by side with docker: the same last error line and exit code.

Dockerfile mistakes and failing steps are compared with BuildKit as docker 20.10 drives it
(``DOCKER_BUILDKIT=1 /usr/bin/docker build``); what docker's client checks before it sends a
context (a missing Dockerfile or context directory, the operand count) is compared with the
docker CLI's own build command. Only the last line is compared: BuildKit's live log (step
numbers, timings, cache lines) is not meaningful to match.

Never give dockerd 20.10's BuildKit a Dockerfile with only ARG lines: it crashes the daemon.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from buildcases import BASE

pytestmark = pytest.mark.interop

TAG = f"dyparity-build-{os.getpid()}"

CASES = {  # name: (Dockerfile, extra docker build flags)
    "unknown-instruction": (f"FROM {BASE}\nFOO bar\n", []),
    "env-without-args": (f"FROM {BASE}\nENV\n", []),
    "from-without-args": ("FROM\n", []),
    "copy-one-arg": (f"FROM {BASE}\nCOPY x\n", []),
    "unknown-flag": (f"FROM {BASE}\nCOPY --bogus=1 x /y\n", []),
    "run-before-from": ("RUN true\n", []),
    "empty": ("", []),
    "only-comments": ("# nothing here\n\n", []),
    "unknown-target": (f"FROM {BASE} AS a\nRUN true\n", ["--target", "nosuch"]),
    "copy-missing": (f"FROM {BASE}\nCOPY nothere /x\n", []),
    "add-missing": (f"FROM {BASE}\nADD nothere /x\n", []),
    "run-fails": (f"FROM {BASE}\nRUN exit 3\n", []),
    "exec-run-fails": (f'FROM {BASE}\nRUN ["sh", "-c", "exit 4"]\n', []),
    "bad-port": (f"FROM {BASE}\nEXPOSE abc\n", []),
}


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _docker(args: list[str], buildkit: bool, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "DOCKER_BUILDKIT": "1" if buildkit else "0"}
    exe = "/usr/bin/docker" if buildkit and os.path.exists("/usr/bin/docker") else "docker"
    try:
        return subprocess.run([exe, "build", *args], capture_output=True, text=True, env=env, cwd=str(cwd),
                              stdin=subprocess.DEVNULL, timeout=120)
    finally:
        subprocess.run(["docker", "rmi", "-f", TAG], capture_output=True)


@pytest.mark.parametrize("case", sorted(CASES))
def test_dockerfile_failures_as_buildkit(case, docker_base, base, cli, tmp_path):
    dockerfile, flags = CASES[case]
    (tmp_path / "Dockerfile").write_text(dockerfile)
    want = _docker(["-q", "-t", TAG, *flags, str(tmp_path)], True, tmp_path)
    got = cli("build", "-q", *flags, str(tmp_path))
    assert (got.returncode, _last_line(got.stderr)) == (want.returncode, _last_line(want.stderr))
    assert got.returncode == 1 and got.stdout == ""


@pytest.mark.parametrize("chown", ["ghost", "1:ghostgrp", "ghost:0"])
def test_unknown_chown_names_fail_as_classic_builder(chown, docker_base, base, cli, tmp_path):
    """The classic builder refuses a --chown name the image does not know; BuildKit 20.10
    silently uses 0 instead. dockyard refuses, with the classic builder's words."""
    (tmp_path / "Dockerfile").write_text(f"FROM {BASE}\nCOPY --chown={chown} Dockerfile /x\n")
    want = _docker(["-q", "-t", TAG, str(tmp_path)], False, tmp_path)
    got = cli("build", "-q", str(tmp_path))
    assert (got.returncode, _last_line(got.stderr)) == (want.returncode, _last_line(want.stderr)) != (0, "")


def test_context_failures_as_docker_client(docker_base, cli, tmp_path):
    """Checked by docker's client before anything is sent: its wording, bare, exit 1."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (tmp_path / "a-file").write_text("FROM scratch\n")
    for args in ([str(ctx)], ["-f", str(tmp_path / "elsewhere.Dockerfile"), str(ctx)],
                 [str(tmp_path / "nosuchdir")], [str(tmp_path / "a-file")], [], ["-t", "Bad:Ref", str(ctx)]):
        want = _docker(args, False, tmp_path)
        got = cli("build", *args)
        expected = want.stderr.split("environment-variable.\n", 1)[-1].lstrip("\n").replace("docker", "dockyard")
        assert (got.returncode, got.stderr) == (want.returncode, expected), args
        assert got.returncode == (125 if "-t" in args else 1)


def test_unconsumed_build_arg_warns_as_classic_builder(docker_base, base, cli, tmp_path):
    """BuildKit says nothing; dockyard keeps the classic builder's warning (on stderr), which
    ``-q`` hides as docker's does."""
    (tmp_path / "Dockerfile").write_text(f"FROM {BASE}\nARG USED\nRUN true\n")
    args = ["--build-arg", "USED=1", "--build-arg", "FOO=1", str(tmp_path)]
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}
    want = subprocess.run(["docker", "build", "--no-cache", "--force-rm", "-t", TAG, *args], capture_output=True,
                          text=True, env=env)
    try:
        from conftest import docker_cleanup

        docker_cleanup(want, TAG)
    finally:
        subprocess.run(["docker", "rmi", "-f", TAG], capture_output=True)
    warning = "[Warning] One or more build-args [FOO] were not consumed"
    assert want.returncode == 0 and warning in want.stdout
    got = cli("build", *args)
    assert got.returncode == 0 and warning in got.stderr.splitlines()
    quiet = cli("build", "-q", *args)  # docker's -q shows the ID only, the warning neither
    assert quiet.returncode == 0 and quiet.stderr == ""


@pytest.fixture(autouse=True)
def _needs_docker():
    if shutil.which("docker") is None:
        pytest.skip("docker is not installed")


def test_config_and_history_as_buildkit(docker_base, base, cli, tmp_path):
    """Not an error, but what a side-by-side look shows first: the typed config (default PATH
    when the base has none, ArgsEscaped after CMD) and the history's CREATED BY lines."""
    (tmp_path / "Dockerfile").write_text(
        "FROM scratch\nENV A=1\nLABEL x=y\nEXPOSE 80 53/udp\nVOLUME /data\nWORKDIR /app\n"
        'ENTRYPOINT ["/bin/sh", "-c"]\nCMD ["echo hi"]\n')
    fmt = ["--format", "{{json .Config}}"]
    history = ["--format", "{{.CreatedBy}}|{{.Comment}}"]
    env = {**os.environ, "DOCKER_BUILDKIT": "1"}
    exe = "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else "docker"
    try:
        want = subprocess.run([exe, "build", "-q", "-t", TAG, str(tmp_path)], capture_output=True, text=True, env=env)
        assert want.returncode == 0, want.stderr
        want_config = subprocess.run(["docker", "image", "inspect", *fmt, TAG], capture_output=True, text=True).stdout
        want_history = subprocess.run(["docker", "history", *history, TAG], capture_output=True, text=True).stdout
    finally:
        subprocess.run(["docker", "rmi", "-f", TAG], capture_output=True)
    assert cli("build", "-q", "-t", TAG, str(tmp_path)).returncode == 0
    assert cli("image", "inspect", *fmt, TAG).stdout == want_config
    assert cli("history", *history, TAG).stdout == want_history


@pytest.mark.parametrize("case", ["run-fails", "copy-missing"])
def test_plain_progress_ends_as_buildkit(case, docker_base, base, cli, tmp_path):
    """The failed step's summary block and the error line after it (step numbers aside)."""
    dockerfile, flags = CASES[case]
    (tmp_path / "Dockerfile").write_text(dockerfile)
    want = _docker(["--progress=plain", "-t", TAG, *flags, str(tmp_path)], True, tmp_path)
    got = cli("build", "--progress=plain", *flags, str(tmp_path))

    def tail(text: str) -> list[str]:
        lines = [line for line in text.splitlines() if line.strip()]
        step_error = next(line for line in lines if " ERROR: " in line)
        return [step_error.split(" ", 1)[1], *lines[-4:]]

    assert tail(got.stderr) == tail(want.stderr)


def test_metadata_history_times_as_buildkit(docker_base, base, cli, tmp_path):
    """BuildKit dates a metadata step by the build's first new layer (or the layer before it):
    which history entries share the RUN's time is the same on both sides."""
    (tmp_path / "Dockerfile").write_text(f"FROM {BASE}\nENV A=1\nRUN echo x > /x\nLABEL b=2\n")
    env = {**os.environ, "DOCKER_BUILDKIT": "1"}
    exe = "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else "docker"
    fmt = ["--format", "{{.CreatedAt}}"]
    try:
        assert subprocess.run([exe, "build", "-q", "-t", TAG, str(tmp_path)], capture_output=True,
                              env=env).returncode == 0
        want = subprocess.run(["docker", "history", *fmt, TAG], capture_output=True, text=True).stdout.split()
    finally:
        subprocess.run(["docker", "rmi", "-f", TAG], capture_output=True)
    assert cli("build", "-q", "-t", TAG, str(tmp_path)).returncode == 0
    got = cli("history", *fmt, TAG).stdout.split()
    # newest first: LABEL, RUN, ENV (then the base, whose time may be this second too)
    assert [t == want[1] for t in want[:3]] == [t == got[1] for t in got[:3]] == [True, True, True]
    assert len(got) == len(want) == 4
