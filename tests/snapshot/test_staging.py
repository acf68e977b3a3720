"""Staged layers: unpacked while their bytes are fed, published by ``unpack`` without a re-read,
and never trusted beyond what was verified."""
from __future__ import annotations

import io
import os

import pytest

from dockyard.errors import DigestMismatch, DockyardError
from .tars import build, compress, diff_id, reg

LAYER = build(reg("etc/hostname", b"staged\n"), reg("data/big", os.urandom(3 << 20)))


class Unreadable(io.RawIOBase):
    """A blob that must not be read: the staged tree is used instead."""

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # noqa: ANN001
        raise AssertionError("the blob was read although a staged layer was offered")


def feed(staged, blob: bytes, step: int = 700_000) -> None:
    for i in range(0, len(blob), step):
        staged.feed(blob[i:i + step])


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
def test_staged_layer_is_published_without_reading_the_blob(store, compression):
    blob = compress(LAYER, compression)
    with store.staging() as area:
        staged = area.start(caller_hashes=True)
        feed(staged, blob)
        # the caller's digest of the fed bytes: the diff_id only when they are uncompressed
        staged.finish(diff_id(blob))
        assert staged.diff_id == diff_id(LAYER)
        area.ready(staged)
        area.sync()
        cid, size = store.unpack(None, diff_id(LAYER), Unreadable())
    assert (store.fs_dir(cid) / "etc/hostname").read_bytes() == b"staged\n"
    assert size == len(b"staged\n") + (3 << 20)
    assert list(store.tmp_dir.iterdir()) == []


def test_unused_and_failed_stagings_leave_nothing(store):
    with store.staging() as area:
        unused = area.start()
        feed(unused, LAYER)
        unused.finish()
        area.ready(unused)
        broken = area.start()
        feed(broken, b"this is not a tar" * 100)
        broken.finish()
        area.ready(broken)
        assert broken.failed
        abandoned = area.start()
        feed(abandoned, LAYER[:100_000])  # the feed stops half-way (e.g. a truncated archive)
    assert list(store.tmp_dir.iterdir()) == []
    assert store.list() == []


def test_a_wrong_fed_digest_is_never_used(store):
    """A caller vouching the wrong digest gets no shortcut: unpack reads and verifies the blob."""
    with store.staging() as area:
        staged = area.start(caller_hashes=True)
        feed(staged, LAYER)
        staged.finish(diff_id(b"other bytes"))
        area.ready(staged)
        with pytest.raises(AssertionError, match="blob was read"):
            store.unpack(None, diff_id(LAYER), Unreadable())
        cid, _ = store.unpack(None, diff_id(LAYER), io.BytesIO(LAYER))
    assert (store.fs_dir(cid) / "etc/hostname").read_bytes() == b"staged\n"


def test_hostile_staged_layer_falls_back_to_the_usual_error(store, tmp_path):
    bad = build(reg("../../../../../../../../../../../../" + str(tmp_path / "escaped"), b"x"))
    with store.staging() as area:
        staged = area.start(caller_hashes=True)
        feed(staged, bad)
        staged.finish(diff_id(bad))
        area.ready(staged)
        assert staged.failed
        with pytest.raises(DockyardError, match="outside the layer directory"):
            store.unpack(None, diff_id(bad), io.BytesIO(bad))
    assert not (tmp_path / "escaped").exists()
    assert list(store.tmp_dir.iterdir()) == []


def test_staged_layer_is_only_used_with_its_own_policy(store):
    from dockyard.snapshot.unpack import UnpackPolicy

    with store.staging() as area:
        staged = area.start(caller_hashes=True)
        feed(staged, LAYER)
        staged.finish(diff_id(LAYER))
        area.ready(staged)
        with pytest.raises(AssertionError):
            store.unpack(None, diff_id(LAYER), Unreadable(), policy=UnpackPolicy(allow_devices=True))


def test_compressed_staged_layer_checks_its_own_diff_id(store):
    blob = compress(LAYER, "gzip")
    with store.staging() as area:
        staged = area.start(caller_hashes=True)
        feed(staged, blob)
        staged.finish(diff_id(b"wrong"))  # ignored: a compressed blob's digest is not the diff_id
        assert staged.diff_id == diff_id(LAYER)
        area.ready(staged)
        with pytest.raises(DigestMismatch):
            store.unpack(None, diff_id(b"not this layer"), io.BytesIO(blob))


def test_a_tampered_store_blob_is_caught_though_hashed_once(client, store):
    """Unpacking an uncompressed blob from the content store hashes it once: the store's
    verifying reader's digest is the diff_id. A blob altered on disk still fails, and nothing
    is kept."""
    d = client.content.write_bytes(LAYER)
    path = client.content.blob_path(d)
    os.chmod(path, 0o644)
    tampered = bytearray(LAYER)
    tampered[-2000] ^= 1  # in the file data of data/big, same length
    path.write_bytes(bytes(tampered))
    with pytest.raises(DigestMismatch, match="corrupted"):
        with client.content.open(d) as blob:
            store.unpack(None, diff_id(LAYER), blob)
    assert store.list() == []
    assert list(store.tmp_dir.iterdir()) == []
    path.write_bytes(LAYER)  # intact again: the same path unpacks
    with client.content.open(d) as blob:
        cid, _ = store.unpack(None, diff_id(LAYER), blob)
    assert (store.fs_dir(cid) / "etc/hostname").read_bytes() == b"staged\n"
