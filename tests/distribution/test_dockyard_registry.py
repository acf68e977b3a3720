"""The client against dockyard's own registry (``dockyard registry serve``) with Docker token auth."""
from __future__ import annotations

import json
from typing import Iterator

import pytest

from .helpers import PASSWORD, USER, content_blobs
from .test_roundtrip import dy


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """dockyard's registry on loopback: token auth, alice may do anything under alice/, bob nothing."""
    import bcrypt

    from dockyard.registry import config as cfgmod
    from dockyard.registry.server import RegistryServer

    work = tmp_path_factory.mktemp("dockyard-registry")
    pw = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(5)).decode()
    doc = {"http": {"addr": "127.0.0.1:0"}, "log": {"access": "off"},
           "storage": {"filesystem": {"rootdirectory": str(work / "data")}},
           "auth": {"users": {USER: {"password": pw}, "bob": {"password": pw}}},
           "repositories": [{"pattern": f"{USER}/**", "grants": [{"users": [USER], "actions": ["*"]}]}]}
    server = RegistryServer(cfgmod.from_dict(doc, work)).start()
    yield f"localhost:{server.port}"
    server.stop()


def test_round_trip_with_token_auth(cli, client, busybox, token_registry, tmp_path, docker_config):
    host = token_registry
    r = cli("login", "-u", USER, "--password-stdin", host, input="wrong\n")
    assert r.returncode == 1
    assert r.stderr == f'Error response from daemon: Get "http://{host}/v2/": unauthorized: incorrect username or password\n'
    assert not (docker_config / "config.json").exists()

    name = f"{host}/{USER}/app:1"
    cli("tag", "busybox", name, check=True)
    r = cli("push", name)
    assert r.returncode == 1 and r.stderr == "unauthorized: authentication required\n"

    assert cli("login", "-u", USER, "--password-stdin", host, input=PASSWORD).returncode == 0
    out = cli("push", name, check=True).stdout.splitlines()
    digest = out[-1].split()[2]
    assert out[-1] == f"1: digest: {digest} size: {out[-1].split()[-1]}"

    other = f"{host}/{USER}/other:1"
    cli("tag", "busybox", other, check=True)
    assert f"Mounted from {USER}/app" in cli("push", other, check=True).stdout

    root2 = tmp_path / "second"
    lines = dy(root2, "pull", name, env={"DOCKER_CONFIG": str(docker_config)}).stdout.splitlines()
    assert lines[-3:] == [f"Digest: {digest}", f"Status: Downloaded newer image for {name}", name]
    from dockyard import Client

    with Client(root2) as c2:
        assert c2.images.get(name).id == busybox
        assert c2.images.get(name).manifest_digest == digest

    denied = f"{host}/bob/app:1"
    cli("tag", "busybox", denied, check=True)
    r = cli("push", denied)
    assert (r.returncode, r.stderr) == (1, "denied: requested access to the resource is denied\n")
    root3 = tmp_path / "third"
    r = dy(root3, "pull", denied, env={"DOCKER_CONFIG": str(docker_config)}, check=False)
    assert r.returncode == 1 and r.stderr.startswith(f"Error response from daemon: pull access denied for {host}/bob/app, ")
    assert content_blobs(root3) == set()


def test_skopeo_reads_what_dockyard_pushed_with_tokens(cli, client, busybox, token_registry, tmp_path,
                                                       docker_config):
    import shutil
    import subprocess

    if shutil.which("skopeo") is None:
        pytest.skip("skopeo is not installed")
    host = token_registry
    assert cli("login", "-u", USER, "--password-stdin", host, input=PASSWORD).returncode == 0
    name = f"{host}/{USER}/sk:1"
    cli("tag", "busybox", name, check=True)
    digest = client.distribution.push(name)[0].digest
    out = tmp_path / "sk"
    subprocess.run(["skopeo", "copy", "-q", "--src-tls-verify=false", "--src-creds", f"{USER}:{PASSWORD}",
                    f"docker://{name}", f"oci:{out}:x"], check=True, capture_output=True, timeout=120)
    assert json.loads((out / "index.json").read_text())["manifests"][0]["digest"] == digest
