"""Volumes: lifecycle, in-use protection, pre-fill, anonymous volumes, --mount/-v grammar, driver options."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from dockyard.errors import Conflict, DockyardError, InvalidArgument, NotFound
from dockyard.volume.mounts import parse_mount, parse_volume_flag, validate, volume_flag_spec

CID1, CID2, CID3 = "1" * 64, "2" * 64, "3" * 64


@pytest.fixture
def vols(client):
    svc = client.volumes
    yield svc
    for cid in svc.store.container_ids():
        svc.forget(cid, remove_anonymous=True)
    with open("/proc/self/mountinfo") as f:
        assert str(client.state.path) not in f.read(), "a volume mount was left behind"


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    """An image's unpacked content: /data with files, /etc/passwd a file, /link -> /data."""
    r = tmp_path / "rootfs"
    (r / "data" / "sub").mkdir(parents=True)
    (r / "data" / "sub" / "hello.txt").write_text("from the image\n")
    os.chown(r / "data" / "sub", 1, 1)
    (r / "etc").mkdir()
    (r / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (r / "link").symlink_to("/data")
    return r


def test_create_inspect_list_remove(vols):
    v = vols.create("data1", labels={"team": "a"})
    info = vols.inspect("data1")
    assert info["Name"] == "data1" and info["Driver"] == "local" and info["Scope"] == "local"
    assert info["Labels"] == {"team": "a"} and info["Options"] is None
    assert Path(info["Mountpoint"]).is_dir() and info["Mountpoint"].endswith("/volumes/data1/_data")
    assert vols.create("data1").name == "data1"  # creating it again is a no-op, as in docker
    assert [x.name for x in vols.list({"label": ["team=a"]})] == ["data1"]
    assert vols.list({"label": ["team=b"]}) == []
    vols.remove("data1")
    with pytest.raises(NotFound, match="get data1: no such volume"):
        vols.inspect("data1")
    assert not Path(v.mountpoint).exists()
    vols.remove("data1", force=True)


def test_bad_names_and_options(vols):
    with pytest.raises(InvalidArgument, match="volume name is too short"):
        vols.create("v")
    with pytest.raises(InvalidArgument, match="includes invalid characters"):
        vols.create("bad/name")
    with pytest.raises(InvalidArgument, match='invalid option: "foo"'):
        vols.create("opts", options={"foo": "bar"})
    assert vols.list() == []


def test_volume_in_use_is_refused_and_data_outlives_the_container(vols, rootfs):
    vols.resolve_mounts(CID1, [parse_volume_flag("keep:/data")], rootfs_path=rootfs)
    (Path(vols.mountpoint("keep")) / "written.txt").write_text("by the container\n")
    with pytest.raises(Conflict) as err:
        vols.remove("keep")
    assert str(err.value) == f"remove keep: volume is in use - [{CID1}]"
    vols.forget(CID1, remove_anonymous=True)  # `rm -v` keeps named volumes
    assert (Path(vols.mountpoint("keep")) / "written.txt").read_text() == "by the container\n"
    vols.remove("keep")


def test_two_containers_share_a_volume(vols):
    a = vols.resolve_mounts(CID1, [parse_volume_flag("shared:/a")])
    b = vols.resolve_mounts(CID2, [parse_mount("type=volume,source=shared,target=/b,readonly")])
    assert a[0]["source"] == b[0]["source"]
    assert "rw" in a[0]["options"] and "ro" in b[0]["options"]
    assert vols.store.refs("shared") == [CID1, CID2]


def test_prefill_from_the_image_on_first_use_only(vols, rootfs):
    mounts = vols.resolve_mounts(CID1, [parse_volume_flag("filled:/data")], rootfs_path=rootfs)
    data = Path(mounts[0]["source"])
    assert (data / "sub" / "hello.txt").read_text() == "from the image\n"
    assert os.stat(data / "sub").st_uid == 1  # owners come along
    (data / "sub" / "hello.txt").write_text("changed\n")
    vols.resolve_mounts(CID2, [parse_volume_flag("filled:/data")], rootfs_path=rootfs)
    assert (data / "sub" / "hello.txt").read_text() == "changed\n"
    # nocopy, and a symlinked target resolved inside the rootfs
    plain = vols.resolve_mounts(CID3, [parse_volume_flag("plain:/data:nocopy"),
                                       parse_volume_flag("vialink:/link")], rootfs_path=rootfs)
    assert list(Path(plain[0]["source"]).iterdir()) == []
    assert (Path(plain[1]["source"]) / "sub" / "hello.txt").exists()


def test_a_volume_over_a_file_is_refused_and_nothing_is_left(vols, rootfs):
    with pytest.raises(InvalidArgument, match="cannot mount volume over existing file"):
        vols.resolve_mounts(CID1, [parse_volume_flag("first:/data"),
                                   parse_volume_flag("clash:/etc/passwd")], rootfs_path=rootfs)
    assert vols.list() == [] and vols.store.container(CID1) is None


def test_anonymous_volumes_from_flags_and_image(vols, rootfs):
    specs = [parse_volume_flag("/scratch")]
    mounts = vols.resolve_mounts(CID1, specs, image={"Volumes": {"/data": {}}}, rootfs_path=rootfs)
    assert [m["destination"] for m in mounts] == ["/scratch", "/data"]
    names = [m["Name"] for m in vols.mounts_inspect(CID1)]
    assert all(len(n) == 64 for n in names)
    assert (Path(mounts[1]["source"]) / "sub" / "hello.txt").exists()
    # a second resolve (start after create) keeps the same anonymous volumes
    again = vols.resolve_mounts(CID1, specs, image={"Volumes": {"/data": {}}}, rootfs_path=rootfs)
    assert [m["source"] for m in again] == [m["source"] for m in mounts]
    assert sorted(vols.forget(CID1, remove_anonymous=True)) == sorted(names)
    assert vols.list() == []


def test_volumes_from_copies_mounts_with_a_mode(vols, tmp_path):
    host_dir = tmp_path / "hostdir"
    host_dir.mkdir()
    vols.resolve_mounts(CID1, [parse_volume_flag("named:/n"), parse_volume_flag(f"{host_dir}:/h")])
    mounts = vols.resolve_mounts(CID2, [], volumes_from=[f"{CID1[:12]}:ro"])
    assert {m["destination"]: m["options"][-1] for m in mounts} == {"/n": "ro", "/h": "ro"}
    with pytest.raises(NotFound):
        vols.resolve_mounts(CID3, [], volumes_from=["nosuchcontainer"])


def test_tmpfs_driver_option_mounts_on_use_and_unmounts_after_last(vols):
    vols.create("ram", options={"type": "tmpfs", "device": "tmpfs", "o": "size=1m"})
    assert vols.inspect("ram")["Options"] == {"type": "tmpfs", "device": "tmpfs", "o": "size=1m"}
    vols.resolve_mounts(CID1, [parse_volume_flag("ram:/ram")])
    vols.resolve_mounts(CID2, [parse_volume_flag("ram:/ram")])
    point = str(vols.mountpoint("ram"))

    def mounted() -> bool:
        with open("/proc/self/mountinfo") as f:
            return any(line.split()[4] == point for line in f)

    assert mounted()
    vols.release(CID1)
    assert mounted()
    vols.release(CID2)
    assert not mounted()


def test_bind_device_option(vols, tmp_path):
    device = tmp_path / "device"
    device.mkdir()
    (device / "f").write_text("on the device\n")
    vols.create("bound", options={"type": "none", "o": "bind", "device": str(device)})
    mounts = vols.resolve_mounts(CID1, [parse_volume_flag("bound:/b")])
    assert (Path(mounts[0]["source"]) / "f").read_text() == "on the device\n"
    vols.forget(CID1)
    # as in docker, a missing device is found when the volume is mounted, not at create
    vols.create("nodevice", options={"type": "none", "o": "bind", "device": str(tmp_path / "x")})
    with pytest.raises(DockyardError, match=r"failed to mount local volume: mount .*/x:.*, "
                       r"flags: 0x1000: no such file or directory"):
        vols.resolve_mounts(CID1, [parse_volume_flag("nodevice:/b")])
    with pytest.raises(InvalidArgument, match='missing required option: "type"'):
        vols.create("notype", options={"device": str(device)})


def test_bind_and_tmpfs_mounts(vols, tmp_path):
    with pytest.raises(InvalidArgument, match="bind source path does not exist"):
        vols.resolve_mounts(CID1, [parse_mount(f"type=bind,source={tmp_path}/missing,target=/m")])
    created = tmp_path / "made-by-v"
    mounts = vols.resolve_mounts(CID1, [parse_volume_flag(f"{created}:/m:ro"),
                                        parse_mount("type=tmpfs,target=/t,tmpfs-size=64k")])
    assert created.is_dir()  # -v creates a missing host directory, --mount does not
    assert mounts[0] == {"destination": "/m", "type": "bind", "source": str(created),
                         "options": ["rbind", "rprivate", "ro"]}
    assert mounts[1]["type"] == "tmpfs" and "size=65536" in mounts[1]["options"]
    shown = vols.mounts_inspect(CID1)
    assert shown[0]["Type"] == "bind" and shown[0]["RW"] is False and shown[1]["Type"] == "tmpfs"


@pytest.mark.parametrize("raw, message", [
    ("typo", "invalid field 'typo' must be a key=value pair"),
    ("type=bind", "target is required"),
    ("type=foo,target=/x", 'invalid mount config for type "foo": mount type unknown'),
    ("type=bind,target=/x", 'invalid mount config for type "bind": field Source must not be empty'),
    ("type=volume,target=rel", "mount path must be absolute"),
    ("type=tmpfs,source=x,target=/t", "field Source must not be specified"),
    ("type=bind,source=/a,target=/b,volume-nocopy", "cannot mix 'volume-*' options"),
    ("type=volume,target=/b,foo=bar", "unexpected key 'foo' in 'foo=bar'"),
    ("type=volume,target=/b,readonly=maybe", "invalid value for readonly: maybe"),
])
def test_invalid_mount_strings(raw, message):
    with pytest.raises(InvalidArgument) as err:
        validate(parse_mount(raw))  # the CLI's checks, then the daemon's
    assert message in str(err.value)


@pytest.mark.parametrize("raw, message", [
    ("a:b", "invalid volume specification: 'a:b'"),
    ("a:/b:xx", "invalid mode: xx"),
    ("a:/b:c:d", "invalid volume specification"),
    ("bad name:/x", "includes invalid characters"),
])
def test_invalid_volume_flags(raw, message):
    with pytest.raises(InvalidArgument, match=message):
        volume_flag_spec(raw)  # the daemon's check; the CLI's parse_volume_flag never fails
    parse_volume_flag(raw)


def test_volume_flag_forms():
    assert parse_volume_flag("/data").source == "" and parse_volume_flag("/data").type == "volume"
    v = parse_volume_flag("name:/data:ro")
    assert (v.type, v.source, v.target, v.read_only) == ("volume", "name", "/data", True)
    b = parse_volume_flag("/host/dir/:/ctr/:rw,rshared")
    assert (b.type, b.source, b.target, b.propagation) == ("bind", "/host/dir", "/ctr", "rshared")
    m = parse_mount("type=volume,src=v1,dst=/d,volume-label=a=b,volume-opt=type=tmpfs,volume-nocopy")
    assert m.volume_labels == (("a", "b"),) and m.volume_options == (("type", "tmpfs"),) and m.nocopy


def test_prune_removes_only_unused(vols):
    vols.create("unused1")
    vols.create("kept")
    vols.resolve_mounts(CID1, [parse_volume_flag("kept:/k")])
    (Path(vols.mountpoint("unused1")) / "blob").write_bytes(b"x" * 1000)
    removed, space = vols.prune()
    assert removed == ["unused1"] and space >= 1000
    assert [v.name for v in vols.list()] == ["kept"]
    assert [v.name for v in vols.list({"dangling": ["true"]})] == []


def test_data_survives_a_new_client(vols, root):
    from dockyard import Client

    vols.create("durable")
    (Path(vols.mountpoint("durable")) / "f").write_text("still here\n")
    with Client(root) as again:
        assert (Path(again.volumes.get("durable").mountpoint) / "f").read_text() == "still here\n"
