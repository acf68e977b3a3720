"""Fixtures for build tests: the base image (in dockyard and, when available, in docker) and a
``build`` helper that runs ``client.builder.build`` and returns the image ID and the output."""
from __future__ import annotations

import io
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from buildcases import BASE

BASE_CHANGES = ['CMD ["sh"]', "ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin"]


@dataclass
class Built:
    image_id: str
    output: str
    warnings: list[str]


@pytest.fixture
def base(client, busybox_tar: Path) -> str:
    """``dytest-busybox`` in the test's dockyard root (the same rootfs and config as docker's)."""
    client.images.import_rootfs(str(busybox_tar), BASE, changes=BASE_CHANGES)
    return BASE


@pytest.fixture
def build(client, base: str):
    """build(ctx_dir, dockerfile=None, **BuildOptions fields) -> Built."""
    from dockyard.build.context import BuildContext
    from dockyard.build.progress import Progress
    from dockyard.build.service import BuildOptions

    def run(ctx: Path | None, dockerfile: str | None = None, **kw: Any) -> Built:
        out = io.StringIO()
        data = dockerfile.encode() if dockerfile is not None else (Path(ctx) / "Dockerfile").read_bytes()
        context = BuildContext.from_dir(ctx) if ctx is not None else BuildContext.empty()
        with context:
            result = client.builder.build(BuildOptions(context=context, dockerfile=data,
                                                       progress=Progress("plain", out), **kw))
        return Built(result.image_id, out.getvalue(), result.warnings)

    return run


def _docker_ok() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


@pytest.fixture(scope="session")
def docker_base(busybox_tar: Path):
    """``dytest-busybox`` imported into docker from the same rootfs tar (removed at the end)."""
    if not _docker_ok():
        pytest.skip("docker is not installed or dockerd is not running")
    cmd = ["docker", "import"]
    for c in BASE_CHANGES:
        cmd += ["-c", c]
    subprocess.run([*cmd, str(busybox_tar), f"{BASE}:latest"], check=True, capture_output=True)
    yield BASE
    subprocess.run(["docker", "rmi", "-f", f"{BASE}:latest"], capture_output=True)


def docker_build(ctx: Path, tag: str, builder: str, build_args: dict[str, str] | None = None,
                 target: str | None = None) -> subprocess.CompletedProcess:
    """``docker build`` with the classic builder or BuildKit (the 20.10 client drives BuildKit
    without the buildx plugin). The images the classic builder leaves behind (one per step, and
    the other stages') are removed again by :func:`docker_cleanup`."""
    env = dict(os.environ)
    if builder == "buildkit":
        exe = "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else "docker"
        env["DOCKER_BUILDKIT"] = "1"
        quiet = ["-q"]
    else:
        exe = "docker"
        env["DOCKER_BUILDKIT"] = "0"
        quiet = []  # the step log names the images each step made
    cmd = [exe, "build", *quiet, "--no-cache", "--force-rm", "-t", tag]
    for k, v in (build_args or {}).items():
        cmd += ["--build-arg", f"{k}={v}"]
    if target:
        cmd += ["--target", target]
    return subprocess.run([*cmd, str(ctx)], capture_output=True, text=True, env=env)


def docker_cleanup(proc: subprocess.CompletedProcess, tag: str) -> None:
    """Remove the tag and every image a classic build made (children before parents)."""
    import re

    subprocess.run(["docker", "rmi", tag], capture_output=True)
    made: list[str] = []
    from_step = False
    for line in (proc.stdout or "").splitlines():
        if re.match(r"^Step \d+/\d+ : ", line):
            from_step = bool(re.match(r"^Step \d+/\d+ : FROM ", line, re.I))
        m = re.match(r"^ ---> ([0-9a-f]{12})$", line)
        if m and not from_step:
            made.append(m.group(1))
    for image_id in reversed(made):
        subprocess.run(["docker", "rmi", image_id], capture_output=True)
