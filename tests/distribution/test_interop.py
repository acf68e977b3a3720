"""dockyard and skopeo (and docker) on the same CNCF registry: byte-identical images both ways,
multi-platform indexes, ``--platform``."""
from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .helpers import OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST, sha, tar_layer, write_oci_layout

pytestmark = pytest.mark.interop


def _skopeo(*args: str) -> None:
    if shutil.which("skopeo") is None:
        pytest.skip("skopeo is not installed (apt-get install skopeo)")
    subprocess.run(["skopeo", "copy", "-q", *args], check=True, capture_output=True, timeout=120)


def _gzip_image(arch: str, sizes: tuple[int, ...] = (50_000, 3000)) -> tuple[bytes, dict[str, bytes]]:
    """(manifest bytes, blobs) of an image with gzip layers, as registries usually hold them."""
    blobs: dict[str, bytes] = {}
    descs, diff_ids = [], []
    for i, n in enumerate(sizes):
        tar = tar_layer(f"{arch}-{i}.bin", os.urandom(n))
        gz = gzip.compress(tar, mtime=0)
        blobs[sha(gz)] = gz
        descs.append({"mediaType": OCI_LAYER_GZIP, "digest": sha(gz), "size": len(gz)})
        diff_ids.append(sha(tar))
    config = json.dumps({"architecture": arch, "os": "linux", "config": {"Cmd": ["sh"]},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    blobs[sha(config)] = config
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                           "config": {"mediaType": OCI_CONFIG, "digest": sha(config), "size": len(config)},
                           "layers": descs}, indent=3).encode()
    return manifest, blobs


def _layout_blob(layout: Path, digest: str) -> bytes:
    return (layout / "blobs" / "sha256" / digest.split(":")[1]).read_bytes()


def test_skopeo_push_dockyard_pull_is_byte_identical(cli, client, cncf, tmp_path, docker_config):
    manifest, blobs = _gzip_image("amd64")
    layout = tmp_path / "layout"
    write_oci_layout(layout, [(manifest, None)], blobs)
    name = f"{cncf.host}/sk/one:1"
    _skopeo("--dest-tls-verify=false", f"oci:{layout}:latest", f"docker://{name}")
    r = cli("pull", name, check=True)
    assert f"Digest: {sha(manifest)}" in r.stdout
    image = client.images.get(name)
    assert client.content.read_bytes(image.manifest_digest) == manifest
    for digest, data in blobs.items():
        assert client.content.blob_path(digest).read_bytes() == data

    # and back: dockyard pushes the pulled image, skopeo reads exactly the same bytes
    cli("tag", name, f"{cncf.host}/sk/back:1", check=True)
    assert f"1: digest: {sha(manifest)} size: {len(manifest)}" in cli("push", f"{cncf.host}/sk/back:1", check=True).stdout
    out = tmp_path / "back"
    _skopeo("--src-tls-verify=false", f"docker://{cncf.host}/sk/back:1", f"oci:{out}:x")
    assert _layout_blob(out, sha(manifest)) == manifest


def test_dockyard_push_skopeo_pull_is_byte_identical(cli, client, busybox, cncf, tmp_path, docker_config):
    name = f"{cncf.host}/sk/busybox:1"
    cli("tag", "busybox", name, check=True)
    digest = client.distribution.push(name)[0].digest
    out = tmp_path / "skopeo-pulled"
    _skopeo("--src-tls-verify=false", f"docker://{name}", f"oci:{out}:x")
    index = json.loads((out / "index.json").read_text())
    assert index["manifests"][0]["digest"] == digest
    manifest = json.loads(_layout_blob(out, digest))
    image = client.images.get(name)
    assert manifest["config"]["digest"] == image.id
    assert _layout_blob(out, image.id) == client.content.blob_path(image.id).read_bytes()
    layer = manifest["layers"][0]
    assert layer["mediaType"] == OCI_LAYER_GZIP
    # the gzip blob skopeo got is the one dockyard made and kept, and it unpacks to the local layer
    assert _layout_blob(out, layer["digest"]) == client.content.blob_path(layer["digest"]).read_bytes()
    assert sha(gzip.decompress(_layout_blob(out, layer["digest"]))) == image.layers[0].diff_id


def test_multi_platform_index(cli, client, cncf, tmp_path, root, docker_config):
    amd, amd_blobs = _gzip_image("amd64")
    arm, arm_blobs = _gzip_image("arm64")
    layout = tmp_path / "multi"
    write_oci_layout(layout, [(amd, {"os": "linux", "architecture": "amd64"}),
                              (arm, {"os": "linux", "architecture": "arm64", "variant": "v8"})],
                     {**amd_blobs, **arm_blobs})
    index_digest = json.loads((layout / "index.json").read_text())["manifests"][0]["digest"]
    name = f"{cncf.host}/sk/multi:1"
    _skopeo("--all", "--dest-tls-verify=false", f"oci:{layout}:latest", f"docker://{name}")

    r = cli("pull", "--platform", "linux/arm64", name, check=True)
    assert f"Digest: {index_digest}" in r.stdout
    image = client.images.get(name)
    assert image.config_doc["architecture"] == "arm64"
    assert (image.target_digest, image.manifest_digest) == (index_digest, sha(arm))
    assert image.repo_digests == [f"{cncf.host}/sk/multi@{index_digest}"]
    assert not client.content.exists(sha(amd))  # only the wanted platform was fetched

    # only one platform here: pushing sends that platform's manifest
    cli("tag", name, f"{cncf.host}/sk/single:1", check=True)
    assert f"1: digest: {sha(arm)} size: {len(arm)}" in cli("push", f"{cncf.host}/sk/single:1", check=True).stdout

    r = cli("pull", "--platform", "linux/amd64", f"{cncf.host}/sk/multi@{index_digest}", check=True)
    amd_id = json.loads(amd)["config"]["digest"]
    assert client.images.get(amd_id).config_doc["architecture"] == "amd64"
    assert client.images.get(amd_id).repo_digests == [f"{cncf.host}/sk/multi@{index_digest}"]
    # both platforms present now: the amd64 image pushes as the whole index, byte for byte
    cli("tag", amd_id, f"{cncf.host}/sk/copy:1", check=True)
    out = cli("push", f"{cncf.host}/sk/copy:1", check=True).stdout
    assert f"1: digest: {index_digest} size:" in out

    r = cli("pull", "--platform", "linux/s390x", name)
    assert r.returncode == 1 and r.stderr == "Error response from daemon: no matching manifest for linux/s390x in the manifest list entries\n"
    r = cli("pull", "--platform", "linux/arm64", f"{cncf.host}/sk/single:1")
    assert r.returncode == 0, r.stderr
    r = cli("pull", "--platform", "linux/ppc64le", f"{cncf.host}/sk/single:1")
    assert r.returncode == 1
    assert r.stderr == (f"Error response from daemon: image with reference {cncf.host}/sk/single:1 was found but does not match the "
                        "specified platform: wanted linux/ppc64le, actual: linux/arm64\n")


def _docker_ok() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0


def test_docker_pulls_what_dockyard_pushed(cli, client, busybox, cncf, docker_config):
    if not _docker_ok():
        pytest.skip("docker (CLI + daemon) is not available")
    name = f"{cncf.host}/dockerpeer/busybox:{os.getpid()}"
    cli("tag", "busybox", name, check=True)
    digest = client.distribution.push(name)[0].digest
    try:
        subprocess.run(["docker", "pull", "-q", name], check=True, capture_output=True, timeout=120)
        inspect = json.loads(subprocess.run(["docker", "image", "inspect", name], check=True,
                                            capture_output=True, text=True).stdout)[0]
        assert inspect["Id"] == busybox
        assert inspect["RepoDigests"] == [f"{cncf.host}/dockerpeer/busybox@{digest}"]
    finally:
        subprocess.run(["docker", "rmi", "-f", name], capture_output=True)
