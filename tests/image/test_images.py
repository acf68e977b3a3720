"""The image store through the library and the CLI: import, tag, ls, rm, inspect, history, prune."""
from __future__ import annotations

import gzip
import io
import json

import pytest

from dockyard.errors import Conflict, InvalidArgument, NotFound

from .tarutil import tar_of


def test_import_busybox(client, busybox, busybox_tar):
    image = client.images.get("busybox")
    assert image.id == busybox
    assert image.repo_tags == ["busybox:latest"]
    assert image.config["Cmd"] == ["sh"]
    assert image.size > 1_000_000
    assert len(image.layers) == 1
    # the layer is the tar itself: its digest is its diff ID
    assert image.layers[0].digest == image.layers[0].diff_id
    # lookups by full ID, short ID, sha256: prefix and full name
    for name in (busybox, busybox[7:], busybox[7:19], busybox[:15], "docker.io/library/busybox:latest"):
        assert client.images.resolve_id(name) == busybox


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_import_compressed(client, compression):
    raw = tar_of({"hello.txt": b"hello\n"})
    if compression == "gzip":
        data = gzip.compress(raw)
    else:
        import zstandard

        data = zstandard.ZstdCompressor().compress(raw)
    image = client.images.import_rootfs(io.BytesIO(data), "hello:1", changes=["ENV A=1", "CMD cat /hello.txt"])
    assert image.layers[0].diff_id == "sha256:" + __import__("hashlib").sha256(raw).hexdigest()
    assert image.config["Env"] == ["A=1"]
    assert image.config["Cmd"] == ["/bin/sh", "-c", "cat /hello.txt"]


def test_import_changes(client):
    image = client.images.import_rootfs(
        io.BytesIO(tar_of({"a": b"x"})), "changes:1",
        changes=['ENTRYPOINT ["/bin/app"]', "EXPOSE 80 53/udp", "LABEL a=b \"c d\"=e", "USER 1000:1000",
                 "WORKDIR /srv", "WORKDIR data", "VOLUME /data", "ENV P=/x", "ENV Q=$P/y", "HEALTHCHECK --retries=2 CMD true"],
        message="my message")
    c = image.config
    assert c["Entrypoint"] == ["/bin/app"]
    assert c["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert c["Labels"] == {"a": "b", "c d": "e"}
    assert c["User"] == "1000:1000"
    assert c["WorkingDir"] == "/srv/data"
    assert c["Volumes"] == {"/data": {}}
    assert c["Env"] == ["P=/x", "Q=/x/y"]
    assert c["Healthcheck"] == {"Test": ["CMD-SHELL", "true"], "Retries": 2}
    assert client.images.inspect("changes:1")["Comment"] == "my message"


def test_import_rejects_bad_input_and_stores_nothing(client):
    with pytest.raises(InvalidArgument):
        client.images.import_rootfs(io.BytesIO(tar_of({"a": b"x"})), "Bad_Name")
    with pytest.raises(InvalidArgument):
        client.images.import_rootfs(io.BytesIO(b"x"), "ok:1", changes=["RUN echo nope"])
    with pytest.raises(NotFound):
        client.images.import_rootfs("/nonexistent/rootfs.tar", "ok:1")
    with pytest.raises(Exception) as exc:
        client.images.import_rootfs(io.BytesIO(b"this is not a tar archive at all" * 100), "ok:1")
    assert "\n" not in str(exc.value)
    truncated = tar_of({"big": b"y" * 100_000})[:50_000]
    with pytest.raises(Exception):
        client.images.import_rootfs(io.BytesIO(truncated), "ok:2")
    assert client.images.list(all=True) == []
    from dockyard.gc import collect

    collect(client)
    assert list(client.content.list()) == []
    assert [s for s in client.snapshots.list()] == []


def test_tag_and_remove_like_docker(client, busybox):
    images = client.images
    images.tag("busybox", "a/b:1")
    images.tag(busybox[7:19], "localhost:5000/c")
    assert sorted(images.get("busybox").repo_tags) == ["a/b:1", "busybox:latest", "localhost:5000/c:latest"]
    # removing one of several names only untags
    assert images.remove("a/b:1") == [{"Untagged": "a/b:1"}]
    # by ID with several names: docker refuses without -f
    with pytest.raises(Conflict, match=r"\(must be forced\) - image is referenced in multiple repositories"):
        images.remove(busybox[7:19])
    report = images.remove(busybox[7:19], force=True)
    assert {"Untagged": "busybox:latest"} in report
    assert {"Untagged": "localhost:5000/c:latest"} in report
    assert {"Deleted": busybox} in report
    with pytest.raises(NotFound, match="No such image: busybox:latest"):
        images.get("busybox")
    # its layer went too
    assert client.snapshots.list() == []
    assert list(client.content.list()) == []


def test_last_tag_removal_deletes(client, busybox):
    report = client.images.remove("busybox")
    assert report[0] == {"Untagged": "busybox:latest"}
    assert {"Deleted": busybox} in report


def test_retag_makes_old_image_dangling(client, busybox):
    other = client.images.import_rootfs(io.BytesIO(tar_of({"f": b"1"})), "busybox:latest")
    assert other.id != busybox
    dangling = client.images.list(filters={"dangling": ["true"]})
    assert [i.id for i in dangling] == [busybox]
    pruned = client.images.prune()
    assert {"Deleted": busybox} in pruned["ImagesDeleted"]
    assert [i.id for i in client.images.list(all=True)] == [other.id]


def test_filters(client, busybox):
    client.images.import_rootfs(io.BytesIO(tar_of({"f": b"1"})), "other/thing:2", changes=["LABEL team=x"])
    ids = lambda **f: [i.repo_tags[0] for i in client.images.list(filters={k: [v] for k, v in f.items()})]
    assert ids(reference="busybox") == ["busybox:latest"]
    assert ids(reference="other/*") == ["other/thing:2"]
    assert ids(reference="*:2") == []  # docker: "*" never matches a "/" (Go's path.Match)
    assert ids(reference="*/*:2") == ["other/thing:2"]
    assert ids(label="team") == ["other/thing:2"]
    assert ids(label="team=y") == []
    assert ids(dangling="true") == []
    with pytest.raises(InvalidArgument, match="Invalid filter 'color'"):
        client.images.list(filters={"color": ["red"]})


def test_inspect_shape(client, busybox):
    doc = client.images.inspect("busybox")
    for key in ("Id", "RepoTags", "RepoDigests", "Parent", "Comment", "Created", "Config", "Architecture",
                "Os", "Size", "GraphDriver", "RootFS", "Metadata"):
        assert key in doc
    assert doc["Id"] == busybox
    assert doc["RootFS"]["Type"] == "layers" and len(doc["RootFS"]["Layers"]) == 1
    assert doc["Config"]["Cmd"] == ["sh"] and doc["Config"]["Entrypoint"] is None
    assert doc["GraphDriver"]["Name"] == "overlay2"
    hist = client.images.history("busybox")
    assert len(hist) == 1 and hist[0]["Id"] == busybox and hist[0]["Size"] > 0


# -- the CLI -------------------------------------------------------------------------------------
def test_cli_images_table_and_formats(cli, busybox_tar):
    assert cli("image", "import", str(busybox_tar), "busybox:1", "-c", 'CMD ["sh"]', check=True).stdout.startswith("sha256:")
    out = cli("images", check=True).stdout.splitlines()
    assert out[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert out[1].split()[:2] == ["busybox", "1"]
    assert len(out[1].split()[2]) == 12
    q = cli("images", "-q", check=True).stdout.split()
    assert len(q) == 1 and len(q[0]) == 12
    assert len(cli("images", "-q", "--no-trunc", check=True).stdout.strip()) == 71
    fmt = cli("images", "--format", "{{.Repository}}:{{.Tag}}", check=True).stdout.strip()
    assert fmt == "busybox:1"
    js = json.loads(cli("images", "--format", "json", check=True).stdout.splitlines()[0])
    assert js["Repository"] == "busybox" and js["Tag"] == "1"
    assert cli("image", "inspect", "-f", "{{json .Config.Cmd}}", "busybox:1", check=True).stdout.strip() == '["sh"]'


def test_cli_errors_and_exit_codes(cli):
    r = cli("image", "inspect", "nope")
    assert r.returncode == 1 and r.stdout.strip() == "[]" and "No such image: nope" in r.stderr
    r = cli("rmi", "nope")
    assert r.returncode == 1 and "No such image: nope:latest" in r.stderr
    r = cli("tag", "nope", "x")
    assert r.returncode == 1
    r = cli("images", "--bogus")
    assert r.returncode == 125
    r = cli("image", "load", "-i", "/nonexistent.tar")
    assert r.returncode == 1 and r.stderr.count("\n") == 1
    r = cli("nosuchcommand")
    assert r.returncode != 0
