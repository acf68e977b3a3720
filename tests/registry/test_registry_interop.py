"""Interop, the proof: skopeo, podman and docker push to and pull from dockyard's registry."""
from __future__ import annotations

import filecmp
import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Callable

import pytest

from dockyard.registry.auth import hash_password, write_htpasswd

from .helpers import Reg, make_oci_layout

pytestmark = pytest.mark.interop


def run(*cmd: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180,
                          env={**os.environ, **(env or {})})
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def _tree_identical(a: Path, b: Path) -> bool:
    cmp = filecmp.dircmp(a, b)
    if cmp.left_only or cmp.right_only or cmp.diff_files or cmp.funny_files:
        return False
    _match, mismatch, errors = filecmp.cmpfiles(a, b, cmp.common_files, shallow=False)
    return not mismatch and not errors and all(_tree_identical(a / d, b / d) for d in cmp.common_dirs)


@pytest.fixture
def layout(tmp_path: Path, busybox_tar: Path) -> Path:
    out = tmp_path / "layout"
    make_oci_layout(out, busybox_tar, "1")
    return out


@pytest.fixture
def auth_reg(start_registry: Callable[..., Reg], tmp_path: Path) -> Reg:
    htpasswd = tmp_path / "htpasswd"
    write_htpasswd(str(htpasswd), {"dev": hash_password("dev-pw", 4)})
    return start_registry({"auth": {"htpasswd": str(htpasswd)}, "repositories": [
        {"pattern": "**", "grants": [{"users": ["dev"], "actions": ["pull", "push", "delete"]}]}]})


@pytest.mark.skipif(not shutil.which("skopeo"), reason="skopeo is not installed")
def test_skopeo_copy_in_and_out_is_byte_identical(reg: Reg, layout: Path, tmp_path: Path) -> None:
    ref = f"docker://{reg.host}/interop/busybox:1"
    run("skopeo", "copy", "--dest-tls-verify=false", f"oci:{layout}:1", ref)
    back = tmp_path / "back"
    run("skopeo", "copy", "--src-tls-verify=false", ref, f"oci:{back}:1")
    assert _tree_identical(layout / "blobs", back / "blobs")
    assert json.loads((layout / "index.json").read_text()) == json.loads((back / "index.json").read_text())
    tags = run("skopeo", "list-tags", "--tls-verify=false", f"docker://{reg.host}/interop/busybox").stdout
    assert '"1"' in tags
    # skopeo's delete goes through the manifest DELETE endpoint
    run("skopeo", "delete", "--tls-verify=false", ref)
    assert reg("GET", "/v2/interop/busybox/manifests/1").status_code == 404


@pytest.mark.skipif(not shutil.which("skopeo"), reason="skopeo is not installed")
def test_skopeo_with_token_auth(auth_reg: Reg, layout: Path) -> None:
    ref = f"docker://{auth_reg.host}/private/busybox:1"
    bad = run("skopeo", "copy", "--dest-tls-verify=false", "--dest-creds", "dev:wrong",
              f"oci:{layout}:1", ref, check=False)
    assert bad.returncode != 0 and "unauthorized" in bad.stderr.lower()
    assert auth_reg.server.store.repositories() == []
    run("skopeo", "copy", "--dest-tls-verify=false", "--dest-creds", "dev:dev-pw", f"oci:{layout}:1", ref)
    out = run("skopeo", "inspect", "--tls-verify=false", "--creds", "dev:dev-pw", ref).stdout
    assert '"Os": "linux"' in out


@pytest.mark.skipif(not shutil.which("podman"), reason="podman is not installed")
def test_podman_push_and_pull(auth_reg: Reg, layout: Path, tmp_path: Path) -> None:
    authfile = str(tmp_path / "podman-auth.json")
    name = f"{auth_reg.host}/podman/busybox:{uuid.uuid4().hex[:8]}"
    copy = f"{auth_reg.host}/podman/copy:1"
    run("podman", "login", "--tls-verify=false", "--authfile", authfile, "-u", "dev", "-p", "dev-pw", auth_reg.host)
    try:
        run("skopeo", "copy", "--dest-tls-verify=false", "--dest-authfile", authfile, f"oci:{layout}:1", f"docker://{name}")
        run("podman", "pull", "--tls-verify=false", "--authfile", authfile, name)
        run("podman", "tag", name, copy)
        run("podman", "push", "--tls-verify=false", "--authfile", authfile, copy)
        run("podman", "rmi", "-f", copy)
        run("podman", "pull", "--tls-verify=false", "--authfile", authfile, copy)
    finally:
        run("podman", "rmi", "-f", name, copy, check=False)
    assert auth_reg.server.store.tag_names("podman/copy") == ["1"]


def _docker_ok() -> bool:
    return bool(shutil.which("docker")) and subprocess.run(["docker", "info"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _docker_ok(), reason="docker (CLI and a running dockerd) is not available")
def test_docker_login_push_pull(auth_reg: Reg, layout: Path, tmp_path: Path) -> None:
    env = {"DOCKER_CONFIG": str(tmp_path / "docker-config")}
    src = f"{auth_reg.host}/docker/busybox:1"
    pushed = f"{auth_reg.host}/docker/pushed:1"
    bad = subprocess.run(["docker", "login", "-u", "dev", "--password-stdin", auth_reg.host], input="wrong",
                         capture_output=True, text=True, env={**os.environ, **env})
    assert bad.returncode != 0 and "unauthorized" in bad.stderr.lower()
    proc = subprocess.run(["docker", "login", "-u", "dev", "--password-stdin", auth_reg.host], input="dev-pw",
                          capture_output=True, text=True, env={**os.environ, **env})
    assert proc.returncode == 0, proc.stderr
    run("skopeo", "copy", "--dest-tls-verify=false", "--dest-creds", "dev:dev-pw", f"oci:{layout}:1", f"docker://{src}")
    try:
        run("docker", "pull", src, env=env)
        run("docker", "tag", src, pushed, env=env)
        out = run("docker", "push", pushed, env=env).stdout
        assert "digest: sha256:" in out
        run("docker", "rmi", pushed, src, env=env)
        run("docker", "pull", pushed, env=env)
    finally:
        run("docker", "rmi", "-f", pushed, src, check=False, env=env)
    assert auth_reg.server.store.tag_names("docker/pushed") == ["1"]
