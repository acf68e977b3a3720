"""docker-archive and OCI layout in and out, with real peers (docker, podman, skopeo, umoci)."""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path

import pytest

from dockyard.errors import DigestMismatch, InvalidContent

from .tarutil import sha, tar_of


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
    client.images.save([busybox[7:19]], out)  # by ID: no names go along, as docker 20.10's save
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tf:
        tags = json.load(tf.extractfile("manifest.json"))[0]["RepoTags"]
    assert tags is None
    out.seek(0)
    assert client.images.load(out) == [f"Loaded image ID: {busybox}"]


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


# -- the streaming load: layers unpacked as they arrive, verified once, nothing left behind ----------
def _layer(files: dict[str, bytes]) -> bytes:
    return tar_of(files)


def _gzip(data: bytes) -> bytes:
    import gzip

    return gzip.compress(data, mtime=0)


def _zstd(data: bytes) -> bytes:
    import zstandard

    return zstandard.ZstdCompressor().compress(data)


def _image_archive(blobs: list[bytes], diff_ids: list[str], fmt: str = "docker", tag: str = "st:1",
                   layer_paths: list[str] | None = None) -> bytes:
    """A docker-archive or OCI layout holding ``blobs`` as the image's layers (in order)."""
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                      "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    if fmt == "docker":
        paths = layer_paths or [f"l{i}/layer.tar" for i in range(len(blobs))]
        members = {f"{sha(cfg)[7:]}.json": cfg}
        members.update(zip(paths, blobs))
        members["manifest.json"] = json.dumps([{"Config": f"{sha(cfg)[7:]}.json", "RepoTags": [tag],
                                                "Layers": paths}]).encode()
        return tar_of(members)
    kinds = {b"\x1f\x8b": "+gzip", b"\x28\xb5": "+zstd"}
    layers = [{"mediaType": "application/vnd.oci.image.layer.v1.tar" + kinds.get(b[:2], ""),
               "digest": sha(b), "size": len(b)} for b in blobs]
    man = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                      "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(cfg),
                                 "size": len(cfg)}, "layers": layers}).encode()
    members = {f"blobs/sha256/{sha(b)[7:]}": b for b in [*blobs, cfg, man]}
    members["oci-layout"] = b'{"imageLayoutVersion":"1.0.0"}'
    members["index.json"] = json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha(man), "size": len(man),
         "annotations": {"io.containerd.image.name": f"docker.io/library/{tag}"}}]}).encode()
    return tar_of(members)


def _leftovers(client) -> list[str]:
    """Unfinished work that a finished load must not leave: ingests and unpacks in progress."""
    snaps = client.snapshots
    return [str(p) for p in [*client.content.ingest_dir.iterdir(), *snaps.tmp_dir.iterdir()]]


def _no_unpack_from_the_store(monkeypatch) -> None:
    """Make the unpack-from-blob path fail: a load that passes unpacked every layer while streaming."""
    import dockyard.snapshot.store as snapshot_store

    def refuse(*args, **kwargs):
        raise AssertionError("a layer was read back from the content store and unpacked again")

    monkeypatch.setattr(snapshot_store, "unpack_layer", refuse)


@pytest.mark.parametrize("fmt", ["docker", "oci"])
def test_layers_are_unpacked_while_the_archive_streams(client, monkeypatch, fmt):
    big = os.urandom(3 << 20)  # bigger than one read chunk: crosses chunk boundaries
    plain = _layer({"etc/hostname": b"box\n", "data/big": big})
    gz = _layer({"etc/motd": b"gzip layer\n"})
    zs = _layer({"etc/zstd": b"zstd layer\n", ".wh.gone": b""})
    blobs, diff_ids = [plain, _gzip(gz), _zstd(zs)], [sha(plain), sha(gz), sha(zs)]
    _no_unpack_from_the_store(monkeypatch)
    assert client.images.load(io.BytesIO(_image_archive(blobs, diff_ids, fmt))) == ["Loaded image: st:1"]
    image = client.images.get("st:1")
    fs = client.snapshots.lowerdirs(image.top_chain_id)
    assert [d.name for d in fs] == ["fs"] * 3
    assert (fs[2] / "data/big").read_bytes() == big
    assert (fs[1] / "etc/motd").read_bytes() == b"gzip layer\n"
    assert (fs[0] / "etc/zstd").read_bytes() == b"zstd layer\n"
    assert stat.S_ISCHR(os.lstat(fs[0] / "gone").st_mode)  # the whiteout, as overlayfs wants it
    assert image.size == len(big) + len(b"box\n") + len(b"gzip layer\n") + len(b"zstd layer\n")
    for blob in blobs:  # every blob in the store, whole and verified
        assert client.content.read_bytes(sha(blob)) == blob
    assert _leftovers(client) == []


def test_compressed_archive_loads(client, monkeypatch):
    import gzip

    layer = _layer({"hello": b"hi"})
    data = gzip.compress(_image_archive([layer], [sha(layer)]))  # docker save | gzip
    _no_unpack_from_the_store(monkeypatch)
    assert client.images.load(io.BytesIO(data)) == ["Loaded image: st:1"]
    assert client.images.get("st:1").layers[0].diff_id == sha(layer)


def test_a_layer_used_twice_and_a_reload(client):
    layer = _layer({"same": b"twice"})
    data = _image_archive([layer, layer], [sha(layer), sha(layer)], fmt="oci")
    client.images.load(io.BytesIO(data))
    image = client.images.get("st:1")
    assert len(client.snapshots.lowerdirs(image.top_chain_id)) == 2
    # loading again: blobs already there are skipped, the image is the same
    assert client.images.load(io.BytesIO(data)) == ["Loaded image: st:1"]
    assert client.images.get("st:1").id == image.id
    assert _leftovers(client) == []


def test_unreferenced_tar_in_the_archive_is_not_kept(client):
    layer = _layer({"a": b"1"})
    stray = _layer({"not": b"a layer of this image"})
    data = _image_archive([layer], [sha(layer)], layer_paths=["l0/layer.tar"])
    # a tar that no manifest names (staged like any layer, then dropped)
    data = tar_of({"stray/layer.tar": stray, **{m.name: tarfile.open(fileobj=io.BytesIO(data)).extractfile(m).read()
                                              for m in tarfile.open(fileobj=io.BytesIO(data))}})
    client.images.load(io.BytesIO(data))
    assert len(client.snapshots.list()) == 1
    assert _leftovers(client) == []


@pytest.mark.parametrize("case", ["escape", "device", "wrong-diff-id", "truncated-layer", "corrupt-gzip"])
def test_bad_layers_in_a_streamed_load_are_refused_cleanly(client, tmp_path, case):
    """The layer is staged while it streams, fails or does not match, and the normal unpack then
    reports it exactly as before: one line, nothing kept, nothing written outside."""
    bait = tmp_path / "bait"
    good = _layer({"ok": b"fine"})
    if case == "escape":
        bad = _layer({f"{'../' * 30}{bait}": b"escaped"})
        blobs, diff_ids = [good, bad], [sha(good), sha(bad)]
    elif case == "device":
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tf:
            ti = tarfile.TarInfo("dev/sda")
            ti.type, ti.devmajor, ti.devminor = tarfile.BLKTYPE, 8, 0
            tf.addfile(ti)
        bad = buf.getvalue()
        blobs, diff_ids = [good, bad], [sha(good), sha(bad)]
    elif case == "wrong-diff-id":
        blobs, diff_ids = [good], [sha(b"something else")]
    elif case == "truncated-layer":
        big = _layer({"big": os.urandom(2 << 20)})
        bad = big[:len(big) // 2]
        blobs, diff_ids = [good, bad], [sha(good), sha(big)]
    else:
        bad = _gzip(good)[:-12] + b"\xff" * 12
        blobs, diff_ids = [bad], [sha(good)]
    with pytest.raises((InvalidContent, DigestMismatch)) as err:
        client.images.load(io.BytesIO(_image_archive(blobs, diff_ids)))
    assert "\n" not in str(err.value)
    assert not bait.exists()
    assert _leftovers(client) == []
    _store_is_clean(client)


def test_truncated_archive_mid_layer_leaves_nothing(client):
    layer = _layer({"big": os.urandom(3 << 20)})
    data = _image_archive([layer], [sha(layer)])
    with pytest.raises(InvalidContent, match="truncated"):
        client.images.load(io.BytesIO(data[: len(data) // 2]))
    assert _leftovers(client) == []
    _store_is_clean(client)


@pytest.mark.skipif(not os.access("/usr/bin/time", os.X_OK), reason="GNU time (/usr/bin/time) not installed")
def test_load_and_save_memory_stays_flat(cli, tmp_path):
    """A 96 MiB image loads and saves in well under 64 MiB of client memory (nothing is held
    whole). Measured with GNU time: a process started from pytest's would report pytest's own
    peak, inherited through vfork+exec."""
    payload = tmp_path / "payload"
    with open(payload, "wb") as f:
        for _ in range(32):
            f.write(os.urandom(1 << 20))
    layer_paths, diff_ids = [], []
    for i in range(3):
        layer = tmp_path / f"layer{i}.tar"
        with tarfile.open(layer, "w") as tf:
            tf.add(payload, arcname=f"f{i}")
        with open(layer, "rb") as f:
            diff_ids.append("sha256:" + hashlib.file_digest(f, "sha256").hexdigest())
        layer_paths.append(layer)
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                      "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    (tmp_path / "config.json").write_bytes(cfg)
    names = [f"l{i}/layer.tar" for i in range(3)]
    (tmp_path / "manifest.json").write_text(json.dumps([{"Config": "config.json", "RepoTags": ["st:1"],
                                                        "Layers": names}]))
    archive = tmp_path / "img.tar"
    with tarfile.open(archive, "w") as tf:
        for path, name in zip(layer_paths, names):
            tf.add(path, arcname=name)
        tf.add(tmp_path / "config.json", arcname="config.json")
        tf.add(tmp_path / "manifest.json", arcname="manifest.json")

    def peak(*args: str) -> float:
        out = tmp_path / "rss"
        r = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", str(out), sys.executable, "-m", "dockyard", *args],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        return int(out.read_text().split()[-1]) / 1024

    assert peak("image", "load", "-q", "-i", str(archive)) < 64
    assert peak("image", "save", "-o", str(tmp_path / "out.tar"), "st:1") < 64
    assert cli("image", "inspect", "-f", "{{len .RootFS.Layers}}", "st:1", check=True).stdout.strip() == "3"


def test_kill_9_in_the_middle_of_a_load_leaves_a_consistent_store(root, tmp_path):
    """Half an archive in, layers staged and blobs being written: kill -9. Nothing half-done is
    visible, and the next gc removes every leftover."""
    import signal
    import time

    from dockyard import Client
    from dockyard.gc import collect

    layers = [_layer({f"f{i}": os.urandom(6 << 20)}) for i in range(3)]
    data = _image_archive(layers, [sha(l) for l in layers])
    proc = subprocess.Popen([sys.executable, "-m", "dockyard", "--root", str(root), "image", "load"],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        proc.stdin.write(data[: len(data) // 2])  # the second layer is half-way
        proc.stdin.flush()
        c = Client(root)
        deadline = time.time() + 30
        while time.time() < deadline:
            staged = [p for p in c.snapshots.tmp_dir.iterdir() if p.name.startswith("staged.")]
            if len(staged) >= 2 and c.content.in_progress():
                break
            time.sleep(0.05)
        else:
            pytest.fail("the load never staged two layers")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert c.images.list(all=True) == []
    assert c.snapshots.list() == []
    assert list(c.content.list()) == []  # the blobs waited for the one sync at the end
    collect(c)
    assert _leftovers(c) == []
    c.close()


def test_many_blobs_are_committed_in_batches(client, monkeypatch):
    """Past PENDING_LIMIT unfinished blobs, the load syncs and commits a batch and goes on."""
    import dockyard.image.archive_load as archive_load

    monkeypatch.setattr(archive_load, "PENDING_LIMIT", 2)
    _no_unpack_from_the_store(monkeypatch)
    layers = [_layer({f"f{i}": os.urandom(1000 + i)}) for i in range(5)]
    client.images.load(io.BytesIO(_image_archive(layers, [sha(l) for l in layers], fmt="oci")))
    image = client.images.get("st:1")
    assert len(client.snapshots.lowerdirs(image.top_chain_id)) == 5
    assert _leftovers(client) == []
