"""docker-archive and OCI layout in and out, with real peers (docker, podman, skopeo, umoci)."""
from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import tarfile
import uuid
from pathlib import Path

import pytest

from dockyard.errors import DigestMismatch, InvalidContent


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tar_of(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in members.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def docker_ok() -> bool:
    return shutil.which("docker") is not None and subprocess.run(
        ["docker", "info"], capture_output=True).returncode == 0


needs_docker = pytest.mark.skipif(not docker_ok(), reason="no docker daemon running")
needs_skopeo = pytest.mark.skipif(not shutil.which("skopeo"), reason="skopeo not installed")
needs_podman = pytest.mark.skipif(not shutil.which("podman"), reason="podman not installed")


@pytest.mark.parametrize("fmt", ["docker", "oci"])
def test_save_load_roundtrip_keeps_digests(client, busybox, tmp_path, root, fmt):
    before = client.images.get("busybox")
    out = tmp_path / "bb.tar"
    with open(out, "wb") as f:
        client.images.save(["busybox"], f, format=fmt)
    client.images.remove("busybox")
    with open(out, "rb") as f:
        lines = client.images.load(f)
    assert lines == ["Loaded image: busybox:latest"]
    after = client.images.get("busybox")
    assert after.id == before.id
    assert [l.diff_id for l in after.layers] == [l.diff_id for l in before.layers]
    assert after.manifest_digest == before.manifest_digest


def test_docker_format_has_both_layouts(client, busybox, tmp_path):
    out = tmp_path / "bb.tar"
    with open(out, "wb") as f:
        client.images.save(["busybox"], f)
    with tarfile.open(out) as tf:
        names = set(tf.getnames())
        manifest = json.load(tf.extractfile("manifest.json"))
        index = json.load(tf.extractfile("index.json"))
        for name in names:
            if name.startswith("blobs/sha256/") and tf.getmember(name).isfile():
                assert sha(tf.extractfile(name).read()) == "sha256:" + name.rsplit("/", 1)[1]
    assert {"manifest.json", "index.json", "oci-layout", "repositories"} <= names
    assert manifest[0]["RepoTags"] == ["busybox:latest"]
    assert manifest[0]["Config"] == "blobs/sha256/" + busybox[7:]
    assert index["manifests"][0]["annotations"]["io.containerd.image.name"] == "docker.io/library/busybox:latest"


def test_save_several_and_by_id(client, busybox, tmp_path):
    client.images.tag("busybox", "second:1")
    out = io.BytesIO()
    client.images.save(["busybox", "second:1"], out)
    out.seek(0)
    client.images.remove(busybox, force=True)
    lines = client.images.load(out)
    assert sorted(lines) == ["Loaded image: busybox:latest", "Loaded image: second:1"]
    out = io.BytesIO()
    client.images.save([busybox[7:19]], out)  # by ID: every tag goes along, like docker
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tf:
        tags = json.load(tf.extractfile("manifest.json"))[0]["RepoTags"]
    assert sorted(tags) == ["busybox:latest", "second:1"]


# -- real peers ------------------------------------------------------------------------------------
@needs_docker
@pytest.mark.interop
def test_docker_save_loads_with_identical_digests(client, busybox_tar, tmp_path):
    tag = f"dockyard-test-{uuid.uuid4().hex[:8]}:1"
    subprocess.run(["docker", "import", "-c", 'CMD ["sh"]', str(busybox_tar), tag], check=True, capture_output=True)
    try:
        docker_id = subprocess.run(["docker", "image", "inspect", "-f", "{{.Id}}", tag], check=True,
                                   capture_output=True, text=True).stdout.strip()
        layers = json.loads(subprocess.run(["docker", "image", "inspect", "-f", "{{json .RootFS.Layers}}", tag],
                                           check=True, capture_output=True, text=True).stdout)
        archive = tmp_path / "docker.tar"
        subprocess.run(["docker", "save", "-o", str(archive), tag], check=True)
        with open(archive, "rb") as f:
            assert client.images.load(f) == [f"Loaded image: {tag}"]
        image = client.images.get(tag)
        assert image.id == docker_id
        assert [l.diff_id for l in image.layers] == layers
        # and back: dockyard's save loads in docker under the same ID
        out = tmp_path / "dockyard.tar"
        with open(out, "wb") as f:
            client.images.save([tag], f)
        subprocess.run(["docker", "rmi", tag], check=True, capture_output=True)
        r = subprocess.run(["docker", "load", "-i", str(out)], check=True, capture_output=True, text=True)
        assert f"Loaded image: {tag}" in r.stdout
        assert subprocess.run(["docker", "image", "inspect", "-f", "{{.Id}}", tag], check=True,
                              capture_output=True, text=True).stdout.strip() == docker_id
    finally:
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)


@needs_skopeo
@pytest.mark.interop
def test_skopeo_oci_archive_both_ways(client, busybox, tmp_path):
    saved = tmp_path / "dy-oci.tar"
    with open(saved, "wb") as f:
        client.images.save(["busybox"], f, format="oci")
    # skopeo reads our OCI archive and writes an OCI layout dir
    layout = tmp_path / "layout"
    subprocess.run(["skopeo", "copy", "-q", f"oci-archive:{saved}", f"oci:{layout}:bb"], check=True)
    index = json.loads((layout / "index.json").read_text())
    manifest = json.loads((layout / "blobs" / "sha256" / index["manifests"][0]["digest"][7:]).read_text())
    assert manifest["config"]["digest"] == busybox
    # and skopeo's own archive loads in dockyard with the same digests
    back = tmp_path / "skopeo.tar"
    subprocess.run(["skopeo", "copy", "-q", f"oci:{layout}:bb", f"oci-archive:{back}:example.com/bb:2"], check=True)
    with open(back, "rb") as f:
        lines = client.images.load(f)
    assert lines == ["Loaded image: example.com/bb:2"]
    assert client.images.get("example.com/bb:2").id == busybox
    # our docker-format archive is also a docker-archive for skopeo
    dock = tmp_path / "dy-docker.tar"
    with open(dock, "wb") as f:
        client.images.save(["busybox"], f)
    r = subprocess.run(["skopeo", "inspect", "--raw", "--config", f"docker-archive:{dock}"], check=True,
                       capture_output=True)
    assert sha(r.stdout) == busybox


@needs_skopeo
@pytest.mark.interop
def test_skopeo_docker_archive_loads(client, busybox, tmp_path):
    src = tmp_path / "dy.tar"
    with open(src, "wb") as f:
        client.images.save(["busybox"], f, format="oci")
    out = tmp_path / "skopeo-docker.tar"
    subprocess.run(["skopeo", "copy", "-q", f"oci-archive:{src}", f"docker-archive:{out}:copied/bb:3"], check=True)
    with open(out, "rb") as f:
        assert client.images.load(f) == ["Loaded image: copied/bb:3"]
    assert client.images.get("copied/bb:3").id == busybox


@needs_podman
@pytest.mark.interop
def test_podman_load_and_save(client, busybox, tmp_path):
    name = f"localhost/dockyard-test-{uuid.uuid4().hex[:8]}:1"
    client.images.tag("busybox", name)
    archive = tmp_path / "dy.tar"
    with open(archive, "wb") as f:
        client.images.save([name], f)
    try:
        r = subprocess.run(["podman", "load", "-i", str(archive)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        pid = subprocess.run(["podman", "image", "inspect", "-f", "{{.Id}}", name], check=True,
                             capture_output=True, text=True).stdout.strip()
        assert pid == busybox[7:]
        back = tmp_path / "podman.tar"
        subprocess.run(["podman", "save", "-q", "-o", str(back), name], check=True)
        client.images.remove(name)
        with open(back, "rb") as f:
            client.images.load(f)
        assert client.images.get(name).id == busybox
    finally:
        subprocess.run(["podman", "rmi", "-f", name], capture_output=True)


@pytest.mark.interop
@pytest.mark.skipif(not shutil.which("umoci"), reason="umoci not installed")
def test_umoci_made_layout_loads(client, tmp_path):
    layout = tmp_path / "umoci"
    subprocess.run(["umoci", "init", "--layout", str(layout)], check=True)
    subprocess.run(["umoci", "new", "--image", f"{layout}:v1"], check=True)
    subprocess.run(["umoci", "config", "--image", f"{layout}:v1", "--config.cmd", "sh"], check=True)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        tf.add(layout, arcname=".")
    buf.seek(0)
    lines = client.images.load(buf)
    assert lines[0].startswith("Loaded image ID: sha256:")
    image = client.images.get(lines[0].rsplit(" ", 1)[1])
    assert image.config["Cmd"] == ["sh"]


# -- hostile and broken archives ---------------------------------------------------------------------
def _store_is_clean(client) -> None:
    from dockyard.gc import collect

    collect(client)
    assert client.images.list(all=True) == []
    assert list(client.content.list()) == []
    assert client.snapshots.list() == []


def _docker_archive(layer: bytes, config: dict | None = None, layer_name: str = "l/layer.tar",
                    extra: dict[str, bytes] | None = None, manifest: list | None = None) -> bytes:
    config = config or {"architecture": "amd64", "os": "linux", "config": {},
                        "rootfs": {"type": "layers", "diff_ids": [sha(layer)]}}
    cfg = json.dumps(config).encode()
    members = {f"{sha(cfg)[7:]}.json": cfg, layer_name: layer}
    members["manifest.json"] = json.dumps(manifest if manifest is not None else [
        {"Config": f"{sha(cfg)[7:]}.json", "RepoTags": ["evil:1"], "Layers": [layer_name]}]).encode()
    members.update(extra or {})
    return tar_of(members)


def test_minimal_docker_archive_loads(client):
    layer = tar_of({"hello": b"hi"})
    assert client.images.load(io.BytesIO(_docker_archive(layer))) == ["Loaded image: evil:1"]


@pytest.mark.parametrize("case", ["not-a-tar", "truncated", "wrong-diff-id", "missing-layer",
                                  "blob-name-mismatch", "no-manifest", "bad-json", "index-missing-blob",
                                  "unknown-layer-type", "traversal-names", "manifest-missing-config"])
def test_broken_archives_are_refused_cleanly(client, case):
    layer = tar_of({"hello": b"hi"})
    if case == "not-a-tar":
        data = b"\x00garbage" * 1000
    elif case == "truncated":
        data = _docker_archive(layer + b"\0" * 100_000)[:3000]
    elif case == "wrong-diff-id":
        data = _docker_archive(layer, config={"rootfs": {"type": "layers", "diff_ids": [sha(b"other")]}})
    elif case == "missing-layer":
        data = _docker_archive(layer, manifest=[{"Config": "x.json", "RepoTags": ["a:1"], "Layers": ["nope/layer.tar"]}])
    elif case == "blob-name-mismatch":
        data = tar_of({f"blobs/sha256/{'0' * 64}": b"not what the name says", "index.json": b'{"manifests":[]}'})
    elif case == "no-manifest":
        data = tar_of({"hello": b"hi"})
    elif case == "bad-json":
        data = tar_of({"manifest.json": b"{not json"})
    elif case == "index-missing-blob":
        data = tar_of({"index.json": json.dumps({"schemaVersion": 2, "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha(b"gone"), "size": 4}]}).encode(),
            "oci-layout": b'{"imageLayoutVersion":"1.0.0"}'})
    elif case == "unknown-layer-type":
        cfg = json.dumps({"rootfs": {"type": "layers", "diff_ids": [sha(layer)]}}).encode()
        man = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                          "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(cfg), "size": len(cfg)},
                          "layers": [{"mediaType": "application/x-evil", "digest": sha(layer), "size": len(layer)}]}).encode()
        data = tar_of({f"blobs/sha256/{sha(cfg)[7:]}": cfg, f"blobs/sha256/{sha(layer)[7:]}": layer,
                       f"blobs/sha256/{sha(man)[7:]}": man,
                       "index.json": json.dumps({"schemaVersion": 2, "manifests": [
                           {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha(man), "size": len(man)}]}).encode()})
    elif case == "traversal-names":
        data = _docker_archive(layer, layer_name="../../../../tmp/dockyard-evil-layer.tar")
    else:  # manifest-missing-config
        data = tar_of({"manifest.json": json.dumps([{"RepoTags": ["x:1"], "Layers": []}]).encode()})
    try:
        client.images.load(io.BytesIO(data))
    except (InvalidContent, DigestMismatch) as exc:
        assert "\n" not in str(exc)
    else:
        assert case == "traversal-names", f"{case} was accepted"
        assert not Path("/tmp/dockyard-evil-layer.tar").exists()
        return
    _store_is_clean(client)
