"""Side by side with docker: the same Dockerfile and context, built by ``docker build`` and by
dockyard, must give the same filesystem (paths, kinds, modes, owners, link targets, contents,
hard-link groups, deletions) and the same config fields."""
from __future__ import annotations

import subprocess

import pytest

import imagefs
from buildcases import BASE, CASES
from conftest import docker_build, docker_cleanup

COMPARABLE = [c for c in CASES if c.builder is not None]


@pytest.mark.interop
@pytest.mark.parametrize("case", COMPARABLE, ids=[c.name for c in COMPARABLE])
def test_same_image_as_docker(case, docker_base, build, client, tmp_path):
    ctx = case.materialize(tmp_path)
    tag = f"dytest-build-{case.name}:latest"
    proc = docker_build(ctx, tag, case.builder, case.build_args, case.target)
    if proc.returncode != 0:
        docker_cleanup(proc, tag)
    assert proc.returncode == 0, f"docker build failed:\n{proc.stderr[-2000:]}"
    try:
        docker_fs, docker_doc = imagefs.docker_image_fs(tag)
    finally:
        docker_cleanup(proc, tag)
    built = build(ctx, build_args=dict(case.build_args), target=case.target)
    ours_fs, ours_doc = imagefs.dockyard_image_fs(client, built.image_id)
    assert imagefs.diff_tables(docker_fs, ours_fs) == []
    assert imagefs.config_fields(ours_doc) == imagefs.config_fields(docker_doc)


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
