"""Layer writing: an overlay upper dir becomes a reproducible OCI layer with docker's whiteouts,
compressed into one gzip member that every reader accepts."""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
import zlib

from dockyard.build.gzipfast import BLOCK, GzipWriter
from dockyard.build.layerdiff import TarEmitter, write_layer


def _gz(data: bytes) -> bytes:
    out = io.BytesIO()
    w = GzipWriter(out.write)
    for i in range(0, len(data), 300_000):
        w.write(data[i:i + 300_000])
    diff_id, size = w.close()
    assert diff_id == "sha256:" + hashlib.sha256(data).hexdigest() and size == len(data)
    return out.getvalue()


def test_gzip_is_one_valid_member_for_any_data():
    text = b"compressible line of text\n" * 200_000
    noise = os.urandom(3 * BLOCK + 12345)
    for data in (b"", b"x", text, noise, text[:BLOCK] + noise + text[:777]):
        blob = _gz(data)
        assert gzip.decompress(blob) == data
        d = zlib.decompressobj(31)
        assert d.decompress(blob) == data and d.eof and d.unused_data == b""  # a single member
    assert len(_gz(text)) < len(text) / 20          # text is compressed
    assert len(_gz(noise)) < len(noise) * 1.001     # random data is stored, not inflated
    assert _gz(text + noise) == _gz(text + noise)   # same input, same bytes


def _upper(tmp_path):
    up = tmp_path / "upper"
    (up / "dir" / "sub").mkdir(parents=True)
    (up / "dir" / "sub" / "file").write_text("content")
    os.link(up / "dir" / "sub" / "file", up / "dir" / "hardlink")
    os.symlink("sub/file", up / "dir" / "symlink")
    os.mknod(up / "deleted", 0o600 | 0o020000, os.makedev(0, 0))   # overlay whiteout
    (up / "opaque").mkdir()
    os.setxattr(up / "opaque", "trusted.overlay.opaque", b"y")
    (up / "opaque" / "new").write_text("n")
    os.mkfifo(up / "fifo")
    for p in up.rglob("*"):
        os.utime(p, (2_000_000_000, 2_000_000_000), follow_symlinks=False)
    return up


def test_upper_dir_to_docker_style_tar(tmp_path):
    chunks: list[bytes] = []
    emitter = TarEmitter(chunks.append, epoch=1_000_000_000)
    emitter.add_tree(_upper(tmp_path))
    emitter.finish()
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tf:
        members = {m.name: m for m in tf}
    assert list(members) == [".wh.deleted", "dir", "dir/hardlink", "dir/sub", "dir/sub/file", "dir/symlink",
                             "fifo", "opaque", "opaque/.wh..wh..opq", "opaque/new"]
    assert members["dir/sub/file"].islnk() and members["dir/sub/file"].linkname == "dir/hardlink"
    assert members["dir/symlink"].issym() and members["fifo"].isfifo()
    assert members[".wh.deleted"].isfile() and members[".wh.deleted"].size == 0
    assert all(m.mtime == 1_000_000_000 for m in members.values())  # clamped to SOURCE_DATE_EPOCH
    assert not any(k.startswith("SCHILY.xattr.trusted") for m in members.values() for k in m.pax_headers)


def test_write_layer_into_the_content_store(client, tmp_path):
    up = _upper(tmp_path)
    a = write_layer(up, client.content, epoch=1)
    b = write_layer(up, client.content, epoch=1)
    assert (a.digest, a.diff_id, a.media_type) == (b.digest, b.diff_id, b.media_type)
    assert a.media_type.endswith("+gzip")
    with client.content.open(a.digest) as blob:
        raw = gzip.decompress(blob.read())
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == a.diff_id


def test_incompressible_layers_are_stored_plain(client, tmp_path):
    up = tmp_path / "up"
    up.mkdir()
    (up / "random.bin").write_bytes(os.urandom(6 << 20))
    (up / "text.txt").write_text("text\n" * 1000)
    layer = write_layer(up, client.content)
    assert layer.media_type == "application/vnd.oci.image.layer.v1.tar"
    assert layer.diff_id == layer.digest  # a plain tar is its own diff
    with client.content.open(layer.digest) as blob:
        names = tarfile.open(fileobj=io.BytesIO(blob.read())).getnames()
    assert names == ["random.bin", "text.txt"]


def _tree(top):
    """Everything about a directory tree that a lower layer of overlayfs reads."""
    import stat as st_

    out = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            s = os.lstat(p)
            xattrs = tuple(sorted((n, os.getxattr(p, n, follow_symlinks=False))
                                  for n in os.listxattr(p, follow_symlinks=False) if n.startswith("trusted.overlay.")))
            content = open(p, "rb").read() if st_.S_ISREG(s.st_mode) else (
                os.readlink(p) if st_.S_ISLNK(s.st_mode) else None)
            whiteout = st_.S_ISCHR(s.st_mode) and s.st_rdev == 0  # its time means nothing to overlayfs
            out[os.path.relpath(p, top)] = (s.st_mode, s.st_uid, s.st_gid, s.st_rdev,
                                            None if whiteout else int(s.st_mtime), content, xattrs)
    return out


def test_committed_snapshot_is_what_unpacking_the_layer_gives(build, client, tmp_path):
    """A step's snapshot is its upper dir, adopted; it must equal an unpack of its layer."""
    from dockyard.snapshot.unpack import unpack_layer

    built = build(None, "FROM dytest-busybox\nRUN rm /bin/ls && rm -rf /root && mkdir /root && echo x > /root/f "
                        "&& ln /root/f /root/g && chmod 4755 /bin/busybox && mkfifo /fifo && ln -s /x /sym\n",
                  source_date_epoch=1_500_000_000)
    image = client.images.get(built.image_id)
    layer = image.layers[-1]
    committed = client.snapshots.fs_dir(image.top_chain_id)
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    with client.content.open(layer.digest) as blob:
        unpack_layer(blob, fresh, layer.media_type)
    assert _tree(committed) == _tree(fresh)
