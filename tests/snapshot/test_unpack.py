"""Unpacking layers: formats, metadata, whiteouts, idempotence, concurrency, chain IDs."""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import subprocess
import sys
import tarfile

import pytest

from dockyard.errors import DigestMismatch, NotFound
from dockyard.snapshot.store import chain_id
from .tars import (build, compress, device, diff_id, directory, fifo, hardlink, reg,
                                 symlink)

BASIC = build(directory("etc", mode=0o755), reg("etc/hostname", b"box\n"), reg("bin/tool", b"#!/bin/sh\n", mode=0o755))


@pytest.mark.parametrize("compression, media_type", [
    ("none", "application/vnd.oci.image.layer.v1.tar"),
    ("gzip", "application/vnd.oci.image.layer.v1.tar+gzip"),
    ("zstd", "application/vnd.oci.image.layer.v1.tar+zstd"),
    ("gzip", "application/vnd.oci.image.layer.v1.tar"),  # mislabelled: the magic bytes decide
    ("none", "application/vnd.docker.image.rootfs.diff.tar.gzip"),
    ("xz", ""),
    ("bzip2", ""),
])
def test_compressions_unpack_to_the_same_tree(store, unpack, compression, media_type):
    cid, size = unpack(BASIC, compression=compression, media_type=media_type)
    assert cid == diff_id(BASIC)
    assert size == len(b"box\n") + len(b"#!/bin/sh\n")
    fs = store.fs_dir(cid)
    assert (fs / "etc/hostname").read_bytes() == b"box\n"
    assert os.access(fs / "bin/tool", os.X_OK)
    assert store.has(cid)


def test_multi_member_gzip_is_one_stream(store):
    tar = BASIC
    blob = compress(tar[:3000], "gzip") + compress(tar[3000:], "gzip")
    cid, _ = store.unpack(None, diff_id(tar), io.BytesIO(blob), "application/vnd.oci.image.layer.v1.tar+gzip")
    assert (store.fs_dir(cid) / "etc/hostname").read_bytes() == b"box\n"


def test_metadata_is_preserved(store, unpack):
    tar = build(
        directory("srv", mode=0o750, uid=1000, gid=1001, mtime=1_500_000_000),
        reg("srv/setuid", b"x", mode=0o4755, uid=0, gid=0),
        reg("srv/setgid", b"x", mode=0o2711, uid=1000, gid=50),
        directory("tmp", mode=0o1777),
        reg("srv/owned", b"data", mode=0o640, uid=1234, gid=5678, mtime=1_234_567_890),
        reg("srv/cap", b"", xattrs={"user.comment": "hello", "security.capability":
                                    "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"}),
        symlink("srv/abs", "/etc/passwd", uid=1000, gid=1000),
        symlink("srv/rel", "../etc/x"),
        hardlink("srv/owned-link", "srv/owned"),
        fifo("srv/pipe", mode=0o620),
    )
    cid, _ = unpack(tar)
    fs = store.fs_dir(cid)
    st = os.stat(fs / "srv/setuid")
    assert stat.S_IMODE(st.st_mode) == 0o4755
    st = os.stat(fs / "srv/setgid")
    assert stat.S_IMODE(st.st_mode) == 0o2711 and (st.st_uid, st.st_gid) == (1000, 50)
    assert stat.S_IMODE(os.stat(fs / "tmp").st_mode) == 0o1777
    st = os.stat(fs / "srv/owned")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_mtime) == (0o640, 1234, 5678, 1_234_567_890)
    assert os.stat(fs / "srv/owned-link").st_ino == st.st_ino and st.st_nlink == 2
    st = os.stat(fs / "srv")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_mtime) == (0o750, 1000, 1001, 1_500_000_000)
    assert os.readlink(fs / "srv/abs") == "/etc/passwd"
    assert os.lstat(fs / "srv/abs").st_uid == 1000
    assert os.readlink(fs / "srv/rel") == "../etc/x"
    assert stat.S_ISFIFO(os.lstat(fs / "srv/pipe").st_mode)
    assert stat.S_IMODE(os.lstat(fs / "srv/pipe").st_mode) == 0o620
    assert os.getxattr(fs / "srv/cap", "user.comment") == b"hello"
    assert os.getxattr(fs / "srv/cap", "security.capability")[:4] == b"\x01\x00\x00\x02"


def test_whiteouts_become_overlayfs_whiteouts(store, unpack):
    tar = build(reg("etc/.wh.passwd"), directory("var"), reg("var/.wh..wh..opq"), reg("var/kept", b"k"),
                reg(".wh.root-level"), reg("usr/.wh..wh.plnk"))
    cid, _ = unpack(tar)
    fs = store.fs_dir(cid)
    st = os.lstat(fs / "etc/passwd")
    assert stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == 0 and os.minor(st.st_rdev) == 0
    assert stat.S_ISCHR(os.lstat(fs / "root-level").st_mode)
    assert os.getxattr(fs / "var", "trusted.overlay.opaque") == b"y"
    assert (fs / "var/kept").read_bytes() == b"k"
    assert not any(name.startswith(".wh.") for _, dirs, files in os.walk(fs) for name in dirs + files)


def test_overlay_xattrs_from_the_archive_are_dropped(store, unpack):
    cid, _ = unpack(build(directory("d", xattrs={"trusted.overlay.redirect": "/etc", "user.ok": "1"})))
    fs = store.fs_dir(cid)
    assert os.getxattr(fs / "d", "user.ok") == b"1"
    with pytest.raises(OSError):
        os.getxattr(fs / "d", "trusted.overlay.redirect")


def test_whiteout_char_device_is_kept_other_devices_policy(store, unpack):
    from dockyard.snapshot.unpack import UnpackPolicy

    cid, _ = unpack(build(device("gone", 0, 0)))
    assert stat.S_ISCHR(os.lstat(store.fs_dir(cid) / "gone").st_mode)
    tar = build(device("dev/null", 1, 3))
    cid, _ = unpack(tar, policy=UnpackPolicy(allow_devices=True))
    st = os.lstat(store.fs_dir(cid) / "dev/null")
    assert stat.S_ISCHR(st.st_mode) and (os.major(st.st_rdev), os.minor(st.st_rdev)) == (1, 3)


def test_later_entries_replace_earlier_ones_without_writing_through_links(store, unpack):
    tar = build(reg("a", b"original"), hardlink("b", "a"), reg("b", b"replaced"),
                directory("d"), reg("d/inner", b"x"), reg("d", b"now a file"),
                reg("f", b"file"), directory("f"), reg("f/child", b"c"))
    cid, _ = unpack(tar)
    fs = store.fs_dir(cid)
    assert (fs / "a").read_bytes() == b"original"
    assert (fs / "b").read_bytes() == b"replaced"
    assert (fs / "d").read_bytes() == b"now a file"
    assert (fs / "f/child").read_bytes() == b"c"


def test_root_entry_sets_root_metadata_and_paths_are_cleaned(store, unpack):
    tar = build(directory("./", mode=0o711), reg("./a/../b//c", b"x"), reg("/abs/file", b"y"))
    cid, _ = unpack(tar)
    fs = store.fs_dir(cid)
    assert stat.S_IMODE(os.stat(fs).st_mode) == 0o711
    assert (fs / "b/c").read_bytes() == b"x"
    assert (fs / "abs/file").read_bytes() == b"y"  # leading "/" dropped, as docker and GNU tar do


def test_gnu_and_pax_extensions(store, unpack):
    long_dir = "/".join(["segment-%02d" % i for i in range(20)])
    tar_gnu = build(reg(f"{long_dir}/file", b"gnu", uid=10_000_000), symlink("ln", "t" * 150),
                    fmt=tarfile.GNU_FORMAT)
    cid, _ = unpack(tar_gnu)
    fs = store.fs_dir(cid)
    assert (fs / long_dir / "file").read_bytes() == b"gnu"
    assert os.stat(fs / long_dir / "file").st_uid == 10_000_000  # base-256 number field
    assert os.readlink(fs / "ln") == "t" * 150
    tar_pax = build(reg(f"{long_dir}/é-file", b"pax", mtime=1_600_000_000.5), global_pax={"comment": "hi"})
    cid, _ = unpack(tar_pax)
    st = os.stat(store.fs_dir(cid) / long_dir / "é-file")
    assert st.st_mtime_ns == 1_600_000_000_500_000_000


def test_wrong_diff_id_keeps_nothing(store, unpack, root):
    with pytest.raises(DigestMismatch) as exc:
        unpack(BASIC, diff_id="sha256:" + "0" * 64)
    assert "\n" not in str(exc.value) and "sha256:" + "0" * 64 in str(exc.value)
    assert store.list() == []
    assert os.listdir(root / "snapshots/.tmp") == []
    assert not store.has("sha256:" + "0" * 64)


def test_unpack_is_idempotent_and_does_not_read_the_blob_again(store, unpack):
    cid, size = unpack(BASIC)

    class Exploding(io.RawIOBase):
        def readinto(self, b):  # noqa: ANN001
            raise AssertionError("blob read although the layer is present")

    assert store.unpack(None, diff_id(BASIC), Exploding(), "") == (cid, size)
    assert len(store.list()) == 1


def test_layers_stack_by_chain_id(store, unpack):
    top = build(reg("top", b"t"))
    base_cid, _ = unpack(BASIC)
    top_cid, _ = unpack(top, parent=base_cid)
    assert top_cid == chain_id([diff_id(BASIC), diff_id(top)])
    expected = "sha256:" + hashlib.sha256(f"{diff_id(BASIC)} {diff_id(top)}".encode()).hexdigest()
    assert top_cid == expected
    assert store.parents(top_cid) == [base_cid]
    assert store.lowerdirs(top_cid) == [store.fs_dir(top_cid), store.fs_dir(base_cid)]
    with pytest.raises(NotFound):
        unpack(top, parent="sha256:" + "1" * 64)


def test_chain_id_matches_the_oci_spec_example():
    # ChainID(A|B|C) = sha256(ChainID(A|B) + " " + DiffID(C)), ChainID(A) = DiffID(A)
    a, b, c = ("sha256:" + ch * 64 for ch in "abc")
    ab = "sha256:" + hashlib.sha256(f"{a} {b}".encode()).hexdigest()
    abc = "sha256:" + hashlib.sha256(f"{ab} {c}".encode()).hexdigest()
    assert chain_id([a]) == a
    assert chain_id([a, b, c]) == abc


def test_lease_is_recorded_before_the_layer_is_visible(client, store, unpack):
    with client.content.lease() as lease:
        cid, _ = unpack(BASIC, lease=lease)
        assert cid in client.content.leased("snapshot")
        assert store.gc(set()) == []
    assert store.gc(set()) == [cid]
    assert not store.has(cid)


def test_two_processes_unpacking_the_same_layer_both_succeed(tmp_path, root, store):
    tar = build(*(reg(f"d/f{i}", os.urandom(20000)) for i in range(300)))
    layer = tmp_path / "layer.tar.gz"
    layer.write_bytes(compress(tar, "gzip"))
    script = (
        "import sys\n"
        "from dockyard import Client\n"
        "c = Client(sys.argv[1])\n"
        "with open(sys.argv[2], 'rb') as f:\n"
        "    print(c.snapshots.unpack(None, sys.argv[3], f, '')[0])\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(root), str(layer), diff_id(tar)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], results
    assert {out.strip() for out, _ in results} == {diff_id(tar)}
    assert len(store.list()) == 1
    assert len(os.listdir(store.fs_dir(diff_id(tar)) / "d")) == 300
    assert os.listdir(root / "snapshots/.tmp") == []


def test_database_row_lost_in_a_crash_is_rebuilt_from_the_layer_dir(client, store, unpack):
    cid, size = unpack(BASIC)
    client.state.db().execute("DELETE FROM snapshot_layers")
    assert store.has(cid)
    assert [(i.chain_id, i.size) for i in store.list()] == [(cid, size)]


def test_usage_counts_hardlinks_once(store, unpack):
    cid, size = unpack(build(reg("a", b"x" * 1000), hardlink("b", "a"), reg("c", b"y" * 10)))
    assert size == 1010
    assert store.usage(cid) == 1010


def test_large_file_streams_in_bounded_memory(root, tmp_path):
    """A 160 MiB gzip layer is unpacked in 1 MiB chunks: the process never holds it in memory."""
    data_size = 160 << 20
    path = tmp_path / "big.tar.gz"
    h = hashlib.sha256()
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1) as gz:
        info = tarfile.TarInfo("big")
        info.size = data_size
        header = info.tobuf(tarfile.PAX_FORMAT)
        for chunk in [header] + [bytes(1 << 20)] * (data_size >> 20) + [bytes(1024)]:
            h.update(chunk)
            gz.write(chunk)
    # The peak is VmHWM after resetting it at start (clear_refs 5): ru_maxrss would include the
    # peak of pytest's own process, which a child inherits through vfork+exec.
    script = (
        "import re, sys\n"
        "open('/proc/self/clear_refs', 'w').write('5')\n"
        "from dockyard import Client\n"
        "c = Client(sys.argv[1])\n"
        "with open(sys.argv[2], 'rb') as f:\n"
        "    cid, size = c.snapshots.unpack(None, sys.argv[3], f, '')\n"
        "print(size, re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1))\n"
    )
    out = subprocess.run([sys.executable, "-c", script, str(root), str(path), f"sha256:{h.hexdigest()}"],
                         capture_output=True, text=True, timeout=120, check=True).stdout.split()
    size, max_rss_kib = int(out[0]), int(out[1])
    assert size == data_size
    assert max_rss_kib < 100 * 1024, f"peak RSS {max_rss_kib} KiB for a {data_size >> 20} MiB layer"
