"""Side by side with docker: the same Dockerfile and context, built by ``docker build`` and by
dockyard, must give the same filesystem (paths, kinds, modes, owners, link targets, contents,
hard-link groups, deletions) and the same config fields."""
from __future__ import annotations

import subprocess

import pytest

import imagefs
from buildcases import BASE, BY_NAME, CASES
from conftest import docker_build, docker_cleanup

COMPARABLE = [c for c in CASES if c.builder is not None]


def _docker_image(case, ctx, builder: str) -> tuple[list[bytes], dict]:
    tag = f"dytest-build-{case.name}-{builder}:latest"
    proc = docker_build(ctx, tag, builder, case.build_args, case.target)
    try:
        assert proc.returncode == 0, f"docker build ({builder}) failed:\n{proc.stderr[-2000:]}"
        return imagefs.docker_image_layers(tag)
    finally:
        docker_cleanup(proc, tag)


@pytest.mark.interop
@pytest.mark.parametrize("case", COMPARABLE, ids=[c.name for c in COMPARABLE])
def test_same_image_as_docker(case, docker_base, build, client, tmp_path):
    """Config, history pattern, layer count, every layer's entries (whiteouts, kept times
    included) and the final filesystem, against the builder the case names."""
    ctx = case.materialize(tmp_path)
    theirs = _docker_image(case, ctx, case.builder)
    built = build(ctx, build_args=dict(case.build_args), target=case.target)
    ours = imagefs.dockyard_image_layers(client, built.image_id)
    diffs = imagefs.compare_images(theirs, ours, created_by=case.builder == "buildkit")
    if case.builder == "buildkit":
        diffs = [d for d in diffs if not d.endswith(imagefs.BUILDKIT_ETC_COPY_UP)]
    assert diffs == []


#: classic-builder cases whose history lines BuildKit writes as dockyard does (dockyard's
#: history follows BuildKit's wording; where the builders' results differ, the classic one wins)
HISTORY_AS_BUILDKIT = ["sweep-args", "sweep-add", "sweep-multistage", "sweep-copy-dest", "sweep-whiteouts",
                       "sweep-cmd-entrypoint"]


@pytest.mark.interop
@pytest.mark.parametrize("name", HISTORY_AS_BUILDKIT)
def test_history_lines_as_buildkit(name, docker_base, build, client, tmp_path):
    case = BY_NAME[name]
    ctx = case.materialize(tmp_path)
    theirs = _docker_image(case, ctx, "buildkit")
    built = build(ctx, build_args=dict(case.build_args), target=case.target)
    ours = imagefs.dockyard_image_layers(client, built.image_id)
    diffs = [d for d in imagefs.compare_images(theirs, ours, created_by=True)
             if not d.endswith(imagefs.BUILDKIT_ETC_COPY_UP)]
    assert diffs == []


@pytest.mark.interop
def test_docker_loads_and_runs_a_dockyard_image(docker_base, build, client, tmp_path):
    """Our gzip layers and config are a valid image for docker: save, load and run it there."""
    case = next(c for c in CASES if c.name == "workdir-run")
    built = build(case.materialize(tmp_path))
    client.images.tag(built.image_id, "dytest-build-export:latest")
    archive = tmp_path / "image.tar"
    with open(archive, "wb") as f:
        client.images.save(["dytest-build-export:latest"], f)
    try:
        load = subprocess.run(["docker", "load", "-i", str(archive)], capture_output=True, text=True)
        assert load.returncode == 0, load.stderr
        run = subprocess.run(["docker", "run", "--rm", "dytest-build-export:latest", "cat", "/app/sub/here", "/shell"],
                             capture_output=True, text=True)
        assert run.stdout == "/app/sub\nshell-changed\n", run.stderr
    finally:
        subprocess.run(["docker", "rmi", "-f", "dytest-build-export:latest"], capture_output=True)
    assert BASE
