"""push and pull against the CNCF registry: docker's output, digests and IDs preserved both ways."""
from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from .helpers import OCI_LAYER_GZIP, OCI_MANIFEST, content_blobs, dockyard_env, sha

pytestmark = pytest.mark.interop
REPO = Path(__file__).resolve().parents[2]


def dy(root: Path, *args: str, input: str | None = None, env: dict[str, str] | None = None,
       check: bool = True) -> subprocess.CompletedProcess[str]:
    """The CLI on another state root (a second machine, as far as the registry can tell)."""
    full = dockyard_env(root)
    full.update(env or {})
    proc = subprocess.run([sys.executable, "-m", "dockyard", *args], capture_output=True, text=True,
                          input=input, env=full, cwd=REPO, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"dockyard {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return proc


def registry_manifest(url: str, repo: str, ref: str) -> bytes:
    req = urllib.request.Request(f"{url}/v2/{repo}/manifests/{ref}", headers={"Accept": OCI_MANIFEST})
    return urllib.request.urlopen(req).read()


def test_push_then_pull_round_trip(cli, client, busybox, cncf, tmp_path, docker_config):
    name = f"{cncf.host}/rt/busybox:1.0"
    cli("tag", "busybox", name, check=True)
    short = client.images.get("busybox").layers[0].diff_id[7:19]

    out = cli("push", name, check=True).stdout.splitlines()
    assert out[0] == f"The push refers to repository [{cncf.host}/rt/busybox]"
    assert out[1:3] == [f"{short}: Preparing", f"{short}: Pushed"]
    m = re.fullmatch(r"1\.0: digest: (sha256:[0-9a-f]{64}) size: (\d+)", out[3])
    assert m, out
    digest = m.group(1)
    raw = registry_manifest(cncf.url, "rt/busybox", "1.0")
    assert sha(raw) == digest and len(raw) == int(m.group(2))
    assert json.loads(raw)["layers"][0]["mediaType"] == OCI_LAYER_GZIP  # uncompressed locally, gzip on the wire
    assert f"{cncf.host}/rt/busybox@{digest}" in client.images.get(name).repo_digests

    again = cli("push", name, check=True).stdout
    assert f"{short}: Layer already exists" in again and f"1.0: digest: {digest} size:" in again

    other = f"{cncf.host}/rt/other:1.0"
    cli("tag", "busybox", other, check=True)
    assert f"{short}: Mounted from rt/busybox" in cli("push", other, check=True).stdout

    root2 = tmp_path / "second"
    layer = json.loads(raw)["layers"][0]["digest"][7:19]
    lines = dy(root2, "pull", name).stdout.splitlines()
    assert lines == ["1.0: Pulling from rt/busybox", f"{layer}: Pulling fs layer", f"{layer}: Verifying Checksum",
                     f"{layer}: Download complete", f"{layer}: Pull complete", f"Digest: {digest}",
                     f"Status: Downloaded newer image for {name}", name]
    from dockyard import Client

    with Client(root2) as c2:
        image = c2.images.get(name)
        assert image.id == busybox
        assert image.target_digest == image.manifest_digest == digest
        assert image.repo_digests == [f"{cncf.host}/rt/busybox@{digest}"]
        assert c2.content.read_bytes(digest) == raw  # the registry's bytes, kept as-is
        assert image.top_chain_id and c2.snapshots.has(image.top_chain_id)

    assert dy(root2, "pull", name).stdout.splitlines() == [  # docker says nothing about layers here
        "1.0: Pulling from rt/busybox", f"Digest: {digest}", f"Status: Image is up to date for {name}", name]

    # pushing the pulled image elsewhere sends the same bytes: same manifest digest
    moved = f"{cncf.host}/rt/moved:1.0"
    dy(root2, "tag", name, moved)
    assert f"1.0: digest: {digest} size:" in dy(root2, "push", moved).stdout


def test_pull_by_digest_all_tags_and_quiet(cli, busybox, cncf, tmp_path, docker_config):
    for tag in ("a", "b"):
        cli("tag", "busybox", f"{cncf.host}/tags/bb:{tag}", check=True)
        cli("push", "-q", f"{cncf.host}/tags/bb:{tag}", check=True)
    digest = sha(registry_manifest(cncf.url, "tags/bb", "a"))

    root2 = tmp_path / "second"
    by_digest = f"{cncf.host}/tags/bb@{digest}"
    lines = dy(root2, "pull", by_digest).stdout.splitlines()
    assert lines[0] == f"{by_digest}: Pulling from tags/bb"
    assert lines[-1] == by_digest
    from dockyard import Client

    with Client(root2) as c2:
        image = c2.images.get(by_digest)
        assert image.id == busybox and image.repo_tags == []

    out = dy(root2, "pull", "-a", f"{cncf.host}/tags/bb").stdout.splitlines()
    assert "a: Pulling from tags/bb" in out and "b: Pulling from tags/bb" in out
    assert out[-1] == f"{cncf.host}/tags/bb"
    with Client(root2) as c2:
        assert sorted(c2.images.get(busybox).repo_tags) == [f"{cncf.host}/tags/bb:a", f"{cncf.host}/tags/bb:b"]

    assert dy(root2, "pull", "-q", f"{cncf.host}/tags/bb:a").stdout == f"{cncf.host}/tags/bb:a\n"
    bad = dy(root2, "pull", "-a", f"{cncf.host}/tags/bb:a", check=False)
    assert bad.returncode == 1 and bad.stderr == "tag can't be used with --all-tags/-a\n"


def test_library_pull_for_run(cli, client, busybox_tar, cncf, tmp_path, docker_config):
    """client.distribution.pull is what ``run`` calls for a missing image."""
    from dockyard import Client
    from dockyard.image.busybox import BUSYBOX_CHANGES

    pusher = Client(tmp_path / "pusher")
    pusher.images.import_rootfs(str(busybox_tar), f"{cncf.host}/lib/bb:latest", changes=BUSYBOX_CHANGES)
    pusher.distribution.push(f"{cncf.host}/lib/bb")
    pusher.close()
    err = io.StringIO()
    image = client.distribution.pull(f"{cncf.host}/lib/bb", progress=err)
    assert image.repo_tags == [f"{cncf.host}/lib/bb:latest"]
    assert err.getvalue().splitlines()[-1] == f"Status: Downloaded newer image for {cncf.host}/lib/bb:latest"
    assert client.distribution.pull(f"{cncf.host}/lib/bb").id == image.id  # silent without progress
    out = cli("pull", f"{cncf.host}/lib/bb", check=True).stdout.splitlines()
    assert out[:2] == ["Using default tag: latest", "latest: Pulling from lib/bb"]
    assert out[-2:] == [f"Status: Image is up to date for {cncf.host}/lib/bb:latest", f"{cncf.host}/lib/bb:latest"]
    out = cli("push", f"{cncf.host}/lib/bb", check=True).stdout.splitlines()
    assert out[:2] == ["Using default tag: latest", f"The push refers to repository [{cncf.host}/lib/bb]"]


def test_bad_names_and_missing_images(cli, busybox, cncf, root, docker_config):
    r = cli("pull", f"{cncf.host}/a..b")
    assert (r.returncode, r.stderr) == (1, "invalid reference format\n")
    r = cli("pull", f"{cncf.host}/Upper/case")
    assert r.returncode == 1
    assert r.stderr == "invalid reference format: repository name (Upper/case) must be lowercase\n"
    r = cli("push", f"{cncf.host}/nothing/here:1")
    assert r.returncode == 1
    assert r.stderr == f"An image does not exist locally with the tag: {cncf.host}/nothing/here\n"
    r = cli("pull", f"{cncf.host}/nothing/here:1")
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr == (f"Error response from daemon: manifest for {cncf.host}/nothing/here:1 not found: "
                        "manifest unknown: manifest unknown\n")
    assert cli("image", "ls", "-q").stdout.split() == [busybox[7:19]]


def test_insecure_registry_rules(cli, busybox, tmp_path, docker_config):
    """A registry off loopback needs verified TLS unless it is listed as insecure."""
    import socket

    from .helpers import CncfRegistry

    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("198.51.100.1", 9))  # no packet is sent: this only picks the outgoing address
            addr = s.getsockname()[0]
    except OSError:
        addr = "127.0.0.1"
    if addr.startswith("127."):
        pytest.skip("no non-loopback address on this machine")
    reg = CncfRegistry(tmp_path / "offloop", addr=addr)
    try:
        name = f"{reg.host}/insecure/bb:1"
        cli("tag", "busybox", name, check=True)
        r = cli("push", name)
        assert r.returncode == 1
        assert r.stderr == f'Get "https://{reg.host}/v2/": http: server gave HTTP response to HTTPS client\n'  # as docker
        r = cli("push", "--insecure-registry", reg.host, name)
        assert r.returncode == 0, r.stderr
        cli("rmi", name, check=True)
        r = cli("pull", name, env={"DOCKYARD_INSECURE_REGISTRIES": f"{addr}/32"})
        assert r.returncode == 0, r.stderr
        assert r.stdout.splitlines()[-1] == name
    finally:
        reg.stop()


def test_failed_pull_keeps_nothing(cli, cncf, root, docker_config):
    cli("pull", f"{cncf.host}/missing/image:1")
    assert not any(p for p in content_blobs(root))


def test_compressed_layer_is_remade_identically_after_gc(cli, client, busybox, cncf, app_server, docker_config):
    """The gzip blob made on the first push may be collected; the next push remakes the same bytes."""
    from dockyard.gc import collect

    from .helpers import Forwarder

    cli("tag", "busybox", f"{cncf.host}/gc/a:1", check=True)
    digest = client.distribution.push(f"{cncf.host}/gc/a:1")[0].digest
    layer = json.loads(registry_manifest(cncf.url, "gc/a", "1"))["layers"][0]["digest"]
    assert client.content.exists(layer)
    cli("rmi", f"{cncf.host}/gc/a:1", check=True)
    collect(client)
    assert not client.content.exists(layer)  # the compressed copy was only a cache

    other = app_server(Forwarder(f"127.0.0.1:{cncf.port}"))  # another registry name, same storage
    cli("tag", "busybox", f"{other.host}/gc/b:1", check=True)
    out = cli("push", f"{other.host}/gc/b:1", check=True).stdout
    assert "Pushed" in out and f"1: digest: {digest} size:" in out
    assert client.content.exists(layer)
