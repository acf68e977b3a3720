"""``dockyard build`` and ``docker build`` (the classic builder, what ``docker build`` runs on
dockerd 20.10) driven the same way from the command line: the context from a directory, from a
tar or a Dockerfile on stdin, ``-f`` outside the context, ``--label``, ``--build-arg NAME``
from the environment, ``--iidfile``, ``-q``, and ``ADD`` of URLs served on 127.0.0.1 (both
engines download on the host, so both reach its loopback). What comes out is compared, not the
progress text: ``image inspect``'s config, and ``docker save`` against ``dockyard image save``
(every layer's entries and the final filesystem).
"""
from __future__ import annotations

import io
import json
import os
import re
import subprocess
import tarfile
import threading
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest

import imagefs
from buildcases import BASE

pytestmark = pytest.mark.interop

TAG = f"dytest-cli-build-{os.getpid()}"
ID_LINE = re.compile(r"^sha256:[0-9a-f]{64}\n$")
COMPARED = ("Cmd", "Entrypoint", "Env", "WorkingDir", "User", "Labels", "ExposedPorts", "Volumes", "StopSignal",
            "Healthcheck", "Shell", "OnBuild")


def docker_build(args: list[str], cwd: Path, input: bytes | None = None,
                 env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The classic builder (``DOCKER_BUILDKIT=0``); the tag and its parent chain are removed by
    :func:`docker_rmi` (each test builds one image per tag, single-stage)."""
    full = {**os.environ, "DOCKER_BUILDKIT": "0", **(env or {})}
    return subprocess.run(["docker", "build", "-t", TAG, *args], capture_output=True, cwd=str(cwd), env=full,
                          input=input if input is not None else b"", timeout=180)


def docker_rmi() -> None:
    subprocess.run(["docker", "rmi", "-f", TAG], capture_output=True)


def both_images(cli, tmp_path: Path) -> tuple[tuple[list[bytes], dict], tuple[list[bytes], dict]]:
    """docker's ``TAG`` (through ``docker save``) and dockyard's (through ``dockyard image save``)."""
    theirs = imagefs.docker_image_layers(TAG)
    out = tmp_path / "ours.tar"
    cli("image", "save", "-o", str(out), TAG, check=True)
    return theirs, imagefs.saved_image(out.read_bytes())


def inspected_config(text: str) -> dict:
    cfg = json.loads(text)[0]["Config"]
    return {k: cfg.get(k) or None for k in COMPARED}


def assert_same_images(cli, tmp_path: Path) -> None:
    want = subprocess.run(["docker", "image", "inspect", TAG], capture_output=True, text=True)
    got = cli("image", "inspect", TAG)
    assert inspected_config(got.stdout) == inspected_config(want.stdout)
    assert imagefs.compare_images(*both_images(cli, tmp_path)) == []


@pytest.fixture
def ctx(tmp_path: Path) -> Path:
    d = tmp_path / "ctx"
    (d / "dir").mkdir(parents=True)
    (d / "a.txt").write_text("a\n")
    (d / "dir" / "b.txt").write_text("b\n")
    (d / "Dockerfile").write_text(f"FROM {BASE}\nCOPY a.txt /in-context-dockerfile\n")
    return d


def test_flags_side_by_side(docker_base, base, cli, ctx, tmp_path):
    """-f outside the context, --label (also empty), --build-arg NAME from the environment,
    an unused build arg, --no-cache, --iidfile and -q: the same image, the same ID line."""
    outside = tmp_path / "elsewhere" / "Build.df"
    outside.parent.mkdir()
    outside.write_text(f"FROM {BASE}\nARG FROMENV\nARG DEFAULTED=dflt\nLABEL seen=$FROMENV\n"
                       "RUN echo \"$FROMENV $DEFAULTED\" > /args\nCOPY dir /dir/\n")
    flags = ["-f", str(outside), "--label", "extra=1", "--label", "empty=", "--build-arg", "FROMENV",
             "--build-arg", "UNUSED=x", "--no-cache", "--iidfile"]
    env = {"FROMENV": "from-env"}
    try:
        want = docker_build(["-q", *flags, str(tmp_path / "docker.iid"), str(ctx)], tmp_path, env=env)
        assert want.returncode == 0, want.stderr
        got = cli("build", "-t", TAG, "-q", *flags, str(tmp_path / "ours.iid"), str(ctx), env=env)
        assert got.returncode == 0, got.stderr
        # -q: the ID line alone on stdout, nothing else (no warning either); --iidfile: the same
        # line (the classic builder keeps the newline under -q)
        assert ID_LINE.match(want.stdout.decode()) and ID_LINE.match(got.stdout)
        assert got.stderr == "" and _without_notice(want.stderr) == ""
        assert (tmp_path / "docker.iid").read_text() == want.stdout.decode()
        assert (tmp_path / "ours.iid").read_text() == got.stdout
        assert_same_images(cli, tmp_path)
    finally:
        docker_rmi()


def test_unused_build_arg_warning_and_log(docker_base, base, cli, ctx, tmp_path):
    """Without -q both print the classic builder's warning (docker in its log on stdout,
    dockyard in its progress on stderr). dockerd lists the names in Go's random map order,
    dockyard sorts them."""
    warning = re.compile(r"^\[Warning\] One or more build-args \[(.*)\] were not consumed$", re.M)
    args = ["--build-arg", "ZED=1", "--build-arg", "NOPE=2", str(ctx)]
    try:
        want = docker_build(args, tmp_path)
        assert want.returncode == 0, want.stderr
        assert sorted(warning.findall(want.stdout.decode())[0].split()) == ["NOPE", "ZED"]
    finally:
        docker_rmi()
    got = cli("build", *args)
    assert got.returncode == 0 and got.stdout == ""
    assert warning.findall(got.stderr) == ["NOPE ZED"]


def _without_notice(stderr: bytes) -> str:
    """docker's stderr less the CLI's notice that the classic builder is deprecated."""
    return stderr.decode().split("environment-variable.\n", 1)[-1].lstrip("\n")


def _tar_of(directory: Path) -> bytes:
    """GNU format: docker's client takes a PAX tar on stdin for a Dockerfile."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for path in sorted(directory.rglob("*")):
            tf.add(path, arcname=str(path.relative_to(directory)), recursive=False)
    return buf.getvalue()


@pytest.mark.parametrize("how", ["tar", "tar-f", "dockerfile-stdin", "dockerfile-only"])
def test_stdin_side_by_side(how, docker_base, base, cli, ctx, tmp_path):
    """``build - < ctx.tar`` (its Dockerfile, or ``-f`` a path inside it), ``-f - DIR`` and a
    lone Dockerfile on stdin (no context)."""
    (ctx / "sub").mkdir()
    (ctx / "sub" / "Alt.df").write_text(f"FROM {BASE}\nCOPY dir/b.txt /alt\nCOPY . /all/\n")
    # a tar context is not filtered by its .dockerignore (only the Dockerfile in use and the
    # .dockerignore itself are left out when listed); a directory context is. (Listed here, the
    # .dockerignore stays out of /all: for -f - docker's client adds a random name to it.)
    (ctx / ".dockerignore").write_text("secret\nsub/Alt.df\nDockerfile\n.dockerignore\n")
    (ctx / "secret").write_text("s\n")
    (ctx / "Dockerfile").write_text(f"FROM {BASE}\nCOPY . /all/\n")
    stdin_df = f"FROM {BASE}\nWORKDIR /from-stdin\nCOPY a.txt .\nCOPY . /all/\n".encode()
    args, data = {
        "tar": (["-"], _tar_of(ctx)),
        "tar-f": (["-f", "sub/Alt.df", "-"], _tar_of(ctx)),
        "dockerfile-stdin": (["-f", "-", str(ctx)], stdin_df),
        "dockerfile-only": (["-"], f"FROM {BASE}\nENV ONLY=1\nRUN echo x > /x\n".encode()),
    }[how]
    try:
        want = docker_build(["-q", *args], tmp_path, input=data)
        assert want.returncode == 0, want.stderr
        got = cli("build", "-q", "-t", TAG, *args, input=data, text=False)
        assert got.returncode == 0, got.stderr
        assert_same_images(cli, tmp_path)
    finally:
        docker_rmi()


class _Handler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # quiet
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path.startswith("/attachment/"):
            body = b"disposed\n"
            self.send_response(200)
            self.send_header("Content-Disposition", 'attachment; filename="named-by-header.txt"')
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()


@contextmanager
def serve(directory: Path) -> Iterator[int]:
    """A file server on 127.0.0.1 (a free port), stopped on exit."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: _Handler(*a, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_add_url_side_by_side(docker_base, base, cli, ctx, tmp_path):
    """ADD of URLs: the name (URL path, query left out; else Content-Disposition), mode 0600, the
    Last-Modified time, a file destination, an archive that is not extracted."""
    served = tmp_path / "served"
    served.mkdir()
    (served / "file.txt").write_text("served\n")
    (served / "arch.tar").write_bytes(_tar_of(ctx / "dir"))
    (served / "sp ace.txt").write_text("spaced\n")
    for p in served.iterdir():
        os.utime(p, (1_600_000_000, 1_600_000_000))
    with serve(served) as port:
        url = f"http://127.0.0.1:{port}"
        (ctx / "Dockerfile").write_text(
            f"FROM {BASE}\nADD {url}/file.txt /u/\nADD {url}/file.txt?x=1 /q/\nADD {url}/file.txt /as-file\n"
            f"ADD {url}/arch.tar /arch/\nADD {url}/attachment/ /cd/\nADD {url}/file.txt#frag /frag/\nADD --chown=1:2 {url}/file.txt /owned/\n"
            f"ADD {url}/sp%20ace.txt /pct/\n")
        try:
            want = docker_build(["-q", str(ctx)], tmp_path)
            assert want.returncode == 0, want.stderr
            got = cli("build", "-q", "-t", TAG, str(ctx))
            assert got.returncode == 0, got.stderr
            assert_same_images(cli, tmp_path)
        finally:
            docker_rmi()


def test_onbuild_triggers_from_a_base_image(docker_base, base, cli, ctx, tmp_path):
    """ONBUILD triggers recorded in one build run in the next build that starts FROM the image
    (not a stage): ARG/ENV/COPY from the child's context/RUN/WORKDIR, in the child's history."""
    parent_tag = f"{TAG}-parent"
    parent = tmp_path / "parent"
    parent.mkdir()
    (parent / "Dockerfile").write_text(
        f"FROM {BASE}\nONBUILD ARG WHO=child\nONBUILD COPY a.txt /from-child-context\n"
        "ONBUILD RUN echo \"$WHO\" > /who\nONBUILD WORKDIR /onbuild\nLABEL parent=1\n")
    (ctx / "Dockerfile").write_text(f"FROM {parent_tag}\nRUN pwd > /where\n")
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}
    try:
        made = subprocess.run(["docker", "build", "-q", "-t", parent_tag, str(parent)], capture_output=True, env=env)
        assert made.returncode == 0, made.stderr
        assert cli("build", "-q", "-t", parent_tag, str(parent)).returncode == 0
        want = docker_build(["-q", "--build-arg", "WHO=given", str(ctx)], tmp_path)
        assert want.returncode == 0, want.stderr
        got = cli("build", "-q", "-t", TAG, "--build-arg", "WHO=given", str(ctx))
        assert got.returncode == 0, got.stderr
        assert_same_images(cli, tmp_path)
    finally:
        docker_rmi()
        subprocess.run(["docker", "rmi", "-f", parent_tag], capture_output=True)
