"""Bad registries and broken transfers: one clear error line, nothing stored, and resumable downloads."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from .helpers import (AppServer, FakeImage, FakeRegistry, Forwarder, StorageServer, content_blobs, sha,
                      tar_layer)


def _image(size: int = 200_000) -> FakeImage:
    return FakeImage([tar_layer("a.bin", os.urandom(size)), tar_layer("b.bin", os.urandom(1000))])


def _nothing_stored(cli, root: Path) -> None:
    assert content_blobs(root) == set()
    assert cli("image", "ls", "-q").stdout == ""


def _serve(app_server, fake: FakeRegistry) -> AppServer:
    srv = app_server(fake)
    fake.host = srv.host
    return srv


def test_digest_mismatch_from_a_malicious_server(cli, root, app_server, docker_config):
    image = _image()
    fake = FakeRegistry("evil/app", image)
    layer = sha(image.layers[0])
    fake.tamper[layer] = os.urandom(len(image.layers[0]))  # right size, wrong bytes
    srv = _serve(app_server, fake)
    r = cli("pull", f"{srv.host}/evil/app")
    assert r.returncode == 1
    assert r.stderr.startswith(f"Error response from daemon: failed to verify blob {layer} from {srv.host}/evil/app: digest mismatch")
    assert r.stderr.count("\n") == 1
    _nothing_stored(cli, root)
    assert not cli("image", "inspect", f"{srv.host}/evil/app").returncode == 0


def test_manifest_digest_is_verified(cli, root, app_server, docker_config):
    image = _image(1000)
    fake = FakeRegistry("evil/app", image)
    other = _image(1000)
    wanted = sha(image.manifest)
    fake.manifests[wanted] = (other.manifest, "application/vnd.oci.image.manifest.v1+json")
    srv = _serve(app_server, fake)
    r = cli("pull", f"{srv.host}/evil/app@{wanted}")
    assert r.returncode == 1
    assert r.stderr.startswith(f"Error response from daemon: manifest verification failed for digest {wanted}: ")
    _nothing_stored(cli, root)


def test_manifest_naming_a_missing_blob(cli, root, app_server, docker_config):
    image = _image(1000)
    fake = FakeRegistry("gone/app", image)
    missing = sha(image.layers[1])
    del fake.blobs[missing]
    srv = _serve(app_server, fake)
    r = cli("pull", f"{srv.host}/gone/app")
    assert r.returncode == 1
    assert r.stderr == (f"Error response from daemon: manifest names a blob the registry does not have: {missing} "
                        "(blob unknown: blob unknown to registry)\n")
    _nothing_stored(cli, root)


def test_truncated_download_then_resume(cli, client, root, app_server, docker_config):
    """A connection cut mid-blob fails the pull (retries off) but keeps the partial data; the
    next pull asks only for the rest with Range and gets the same image."""
    image = _image(600_000)
    fake = FakeRegistry("cut/app", image)
    layer = sha(image.layers[0])
    fake.truncate[layer] = 250_000
    srv = _serve(app_server, fake)
    r = cli("pull", f"{srv.host}/cut/app", env={"DOCKYARD_PULL_RETRIES": "0"})
    assert r.returncode == 1
    assert r.stderr.startswith(f'Error response from daemon: Get "http://{srv.host}/v2/cut/app/blobs/{layer}": connection closed after ')
    assert r.stderr.count("\n") == 1
    assert cli("image", "ls", "-q").stdout == ""
    partial = {ref: size for ref, size, _ in client.content.in_progress()}
    assert partial == {f"pull-{layer}": 250_000}

    del fake.truncate[layer]
    srv.requests.clear()
    r = cli("pull", f"{srv.host}/cut/app", check=True)
    assert r.stdout.splitlines()[-1] == f"{srv.host}/cut/app:latest"
    ranges = [h.get("Range") for m, p, h in srv.requests if m == "GET" and p.endswith(layer)]
    assert ranges == ["bytes=250000-"]
    assert client.images.get(f"{srv.host}/cut/app").id == sha(image.config)
    assert client.content.in_progress() == []


def test_retry_resumes_within_one_pull(cli, client, app_server, docker_config):
    image = _image(300_000)
    fake = FakeRegistry("flaky/app", image)
    layer = sha(image.layers[0])
    srv = _serve(app_server, fake)
    cuts = iter([100_000, 50_000])

    def flaky(h):  # the first two transfers of the layer break, the third completes
        if h.command == "GET" and h.path.endswith(layer):
            fake.truncate[layer] = next(cuts, None)
            if fake.truncate[layer] is None:
                del fake.truncate[layer]
        fake(h)

    srv.httpd.app = flaky
    r = cli("pull", f"{srv.host}/flaky/app", check=True)
    assert "Pull complete" in r.stdout
    ranges = [h.get("Range") for m, p, h in srv.requests if m == "GET" and p.endswith(layer)]
    assert ranges == [None, "bytes=100000-", "bytes=150000-"]


@pytest.mark.interop
def test_resume_through_a_proxy_to_the_cncf_registry(cli, client, root, cncf, tmp_path, app_server,
                                                     docker_config):
    """The brief's scenario: a proxy kills the connection mid-blob; pulling again resumes."""
    from dockyard import Client

    payload = tmp_path / "payload.tar"
    payload.write_bytes(tar_layer("big.bin", os.urandom(2_000_000)))
    with Client(tmp_path / "pusher") as pusher:
        pusher.images.import_rootfs(str(payload), f"{cncf.host}/resume/app:1")
        digest = pusher.distribution.push(f"{cncf.host}/resume/app:1")[0].digest
    proxy = Forwarder(f"127.0.0.1:{cncf.port}")
    proxy.cut_blobs_after = 700_000
    srv = app_server(proxy)
    name = f"{srv.host}/resume/app:1"
    r = cli("pull", name, env={"DOCKYARD_PULL_RETRIES": "1"})
    assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
    (ref, size, _), = client.content.in_progress()
    assert size == 1_400_000  # two attempts of 700 kB each, the second resumed from the first
    proxy.cut_blobs_after = None
    srv.requests.clear()
    r = cli("pull", name, check=True)
    assert f"Digest: {digest}" in r.stdout
    ranges = [h.get("Range") for m, p, h in srv.requests if m == "GET" and "/blobs/" in p and h.get("Range")]
    assert ranges == ["bytes=1400000-"]


def test_redirected_blobs_never_get_the_token(cli, client, app_server, docker_config):
    image = _image(5000)
    storage = StorageServer(image.blobs)
    store_srv = app_server(storage)
    fake = FakeRegistry("redir/app", image)
    fake.bearer = fake.token_given = "good-token"
    fake.redirect_blobs = f"http://{store_srv.host}"
    srv = _serve(app_server, fake)
    r = cli("pull", f"{srv.host}/redir/app", check=True)
    assert r.stdout.splitlines()[-1] == f"{srv.host}/redir/app:latest"
    assert len(storage.seen) == 3  # config + 2 layers, all from the storage host
    assert all("Authorization" not in h for h in storage.seen)
    token_requests = [p for m, p, h in srv.requests if p.startswith("/token")]
    assert token_requests and all("scope=repository%3Aredir%2Fapp%3Apull" in p for p in token_requests)


def test_token_for_another_repository(cli, root, app_server, docker_config):
    fake = FakeRegistry("mine/app", _image(1000))
    fake.bearer = "token-for-mine/app"
    fake.token_given = "token-for-someone/else"
    srv = _serve(app_server, fake)
    r = cli("pull", f"{srv.host}/mine/app")
    assert r.returncode == 1
    assert r.stderr == (f"Error response from daemon: pull access denied for {srv.host}/mine/app, repository does not exist or may "
                        "require 'dockyard login': unauthorized: token not valid for this repository\n")
    _nothing_stored(cli, root)


def test_connection_refused_is_one_line(cli, docker_config):
    from .helpers import free_port

    port = free_port()
    r = cli("pull", f"localhost:{port}/x/y")
    assert r.returncode == 1
    assert r.stderr == (f'Error response from daemon: Get "http://localhost:{port}/v2/": '
                        f"dial tcp 127.0.0.1:{port}: connect: connection refused\n")  # docker's words


@pytest.mark.interop
@pytest.mark.parametrize("size", [300_000, 17_000_000], ids=["monolithic-put", "streaming-patch"])
def test_push_survives_a_cut_upload(cli, client, cncf, tmp_path, app_server, docker_config, size):
    """The first upload request is cut mid-body; the push starts the blob over and succeeds."""
    from dockyard import Client

    payload = tmp_path / "payload.tar"
    payload.write_bytes(tar_layer("big.bin", os.urandom(size)))
    proxy = Forwarder(f"127.0.0.1:{cncf.port}")
    cut = {"done": False}

    def app(h):
        if h.command in ("PUT", "PATCH") and "/blobs/uploads/" in h.path and not cut["done"] \
                and int(h.headers.get("Content-Length") or 0) > 100_000:
            cut["done"] = True
            h.rfile.read(50_000)
            h.close_connection = True
            import socket

            h.connection.shutdown(socket.SHUT_RDWR)
            return
        proxy(h)

    srv = app_server(app)
    name = f"{srv.host}/cutpush/app:1"
    client.images.import_rootfs(str(payload), name)
    r = cli("push", name)
    assert r.returncode == 0, r.stderr
    assert cut["done"]
    digest = r.stdout.splitlines()[-1].split()[2]
    with Client(tmp_path / "check") as other:
        assert other.distribution.pull(f"{cncf.host}/cutpush/app@{digest}").id == client.images.get(name).id


def test_two_pulls_of_one_image_at_once(cli, client, root, app_server, docker_config):
    """The second process waits for the first one's download of a blob instead of fetching it
    again, then unpacks the blob the first one committed."""
    import subprocess
    import sys

    from .helpers import dockyard_env

    image = _image(400_000)
    fake = FakeRegistry("two/app", image)
    layer = sha(image.layers[0])
    fake.slow[layer] = 1.5
    srv = _serve(app_server, fake)
    cli("image", "ls", check=True)  # the state root exists before both start
    cmd = [sys.executable, "-m", "dockyard", "pull", "-q", f"{srv.host}/two/app"]
    procs = [subprocess.Popen(cmd, env=dockyard_env(root), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    results = [p.communicate(timeout=60) + (p.returncode,) for p in procs]
    assert [r[2] for r in results] == [0, 0], results
    assert all(r[0] == f"{srv.host}/two/app:latest\n" for r in results)
    gets = [p for m, p, h in srv.requests if m == "GET" and p.endswith(layer)]
    assert len(gets) == 1  # one download, shared
    assert client.images.get(f"{srv.host}/two/app").id == sha(image.config)
