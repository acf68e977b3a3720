"""The content store: atomic, verified, concurrent, crash-safe, and protected by leases."""
from __future__ import annotations

import hashlib
import io
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from dockyard.content import digest as dg
from dockyard.errors import DigestMismatch, DockyardError, InvalidArgument, NotFound


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_write_read_roundtrip_and_verify(client):
    data = os.urandom(3 << 20)
    d = client.content.write_bytes(data)
    assert d == sha(data)
    assert client.content.info(d).size == len(data)
    assert client.content.read_bytes(d) == data
    # blobs are read-only once committed
    assert not os.access(client.content.blob_path(d), os.W_OK) or os.geteuid() == 0
    assert oct(client.content.blob_path(d).stat().st_mode & 0o777) == "0o444"


def test_sha512_accepted(client):
    data = b"hello sha512"
    d = "sha512:" + hashlib.sha512(data).hexdigest()
    assert client.content.write_bytes(data, expected=d) == d
    assert client.content.read_bytes(d) == data


def test_wrong_digest_is_refused_and_leaves_nothing(client):
    data = b"some content"
    wrong = sha(b"other content")
    with pytest.raises(DigestMismatch, match="digest mismatch"):
        client.content.ingest(io.BytesIO(data), expected=wrong)
    assert not client.content.exists(wrong)
    assert list(client.content.list()) == []
    assert client.content.in_progress() == []


def test_truncated_stream_is_refused(client):
    data = b"x" * 1000
    with pytest.raises(DigestMismatch, match="truncated"):
        client.content.ingest(io.BytesIO(data[:500]), expected=sha(data), size=1000)
    assert list(client.content.list()) == []


def test_corruption_detected_on_read(client):
    d = client.content.write_bytes(b"original bytes")
    p = client.content.blob_path(d)
    os.chmod(p, 0o644)
    p.write_bytes(b"tampered bytes")
    with pytest.raises(DigestMismatch, match="corrupted"):
        client.content.read_bytes(d)
    with pytest.raises(DigestMismatch):
        with client.content.open(d) as r:
            r.read()


def test_invalid_and_missing_digests(client):
    with pytest.raises(InvalidArgument):
        client.content.info("sha256:xyz")
    with pytest.raises(InvalidArgument):
        client.content.info("md5:" + "a" * 32)
    with pytest.raises(InvalidArgument):
        client.content.blob_path("sha256:../../etc/passwd")
    with pytest.raises(NotFound):
        client.content.info(sha(b"never written"))


def test_resumable_writer(client):
    data = os.urandom(200_000)
    w = client.content.writer(ref="upload-1")
    w.write(data[:100_000])
    w.close()  # broken connection: keep what we have
    w2 = client.content.writer(ref="upload-1")
    assert w2.offset == 100_000
    w2.write(data[100_000:])
    assert w2.commit(expected_digest=sha(data), expected_size=len(data)) == sha(data)
    assert client.content.read_bytes(sha(data)) == data


def test_same_ref_is_locked_while_written(client):
    w = client.content.writer(ref="busy")
    try:
        with pytest.raises(DockyardError, match="locked"):
            client.content.writer(ref="busy")
    finally:
        w.abort()


WRITER = textwrap.dedent("""
    import sys, time
    from dockyard import Client
    c = Client(sys.argv[1])
    data = bytes(range(256)) * (int(sys.argv[2]) // 256)
    with c.content.writer() as w:
        for i in range(0, len(data), 1 << 16):
            w.write(data[i:i + (1 << 16)])
            time.sleep(float(sys.argv[3]))
        print(w.commit(expected_size=len(data)))
""")


def test_two_processes_write_the_same_blob(root, tmp_path):
    size = 4 << 20
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(root), str(size), "0.001"],
                              stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    expected = sha(bytes(range(256)) * (size // 256))
    assert outs == [expected, expected]
    from dockyard import Client

    c = Client(root)
    assert [b.digest for b in c.content.list()] == [expected]
    assert c.content.read_bytes(expected, max_size=size) == bytes(range(256)) * (size // 256)


def test_kill_9_during_ingest_leaves_a_consistent_store(root):
    p = subprocess.Popen([sys.executable, "-c", WRITER, str(root), str(8 << 20), "0.02"])
    from dockyard import Client

    c = Client(root)
    deadline = time.time() + 20
    while time.time() < deadline and not any(n > 0 for _, n, _ in c.content.in_progress()):
        time.sleep(0.05)
    assert c.content.in_progress(), "the writer never started"
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert list(c.content.list()) == []  # nothing half-written is visible
    assert c.content.clean_ingests() == 1  # the next command repairs
    assert c.content.in_progress() == []


@pytest.fixture
def small_fs(tmp_path):
    """A 1 MiB tmpfs (unmounted afterwards, pass or fail)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)]).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)])


def test_full_disk_gives_one_clear_error(small_fs):
    from dockyard import Client

    c = Client(small_fs / "root")
    with pytest.raises(DockyardError, match="no space left on device"):
        c.content.ingest(io.BytesIO(os.urandom(2 << 20)))
    assert list(c.content.list()) == []
    assert c.content.in_progress() == []
    c.close()


def test_leases_protect_blobs_from_gc(client):
    from dockyard.gc import collect

    with client.content.lease() as lease:
        d = client.content.write_bytes(b"in flight", lease=lease)
        assert d not in collect(client)["blobs"]
        assert client.content.exists(d)
    # the operation ended without making an image: the blob is garbage now
    assert d in collect(client)["blobs"]
    assert not client.content.exists(d)


def test_dead_process_lease_is_released(root):
    code = textwrap.dedent("""
        import os, sys
        from dockyard import Client
        c = Client(sys.argv[1])
        cm = c.content.lease()
        lease = cm.__enter__()
        c.content.write_bytes(b"orphan", lease=lease)
        os._exit(0)   # dies without releasing the lease
    """)
    subprocess.run([sys.executable, "-c", code, str(root)], check=True)
    from dockyard import Client
    from dockyard.gc import collect

    c = Client(root)
    assert collect(c)["blobs"] == [sha(b"orphan")]


def test_digest_helpers():
    assert dg.short_id("sha256:" + "ab" * 32) == "abababababab"
    assert dg.is_digest("sha256:" + "0" * 64)
    assert not dg.is_digest("sha256:" + "0" * 63)
    assert not dg.is_digest("sha256:" + "A" * 64)


def test_background_writer_stores_exactly_what_was_hashed(client):
    chunks = [os.urandom(1 << 20) for _ in range(20)] + [b"tail"]
    buf = bytearray(b"reused buffer")  # a caller may reuse a mutable buffer after write returns
    with client.content.writer(background=True) as w:
        for c in chunks:
            w.write(c)
        w.write(buf)
        buf[:] = b"X" * len(buf)
        d = w.commit()
    data = b"".join(chunks) + b"reused buffer"
    assert d == sha(data)
    assert client.content.read_bytes(d, max_size=64 << 20) == data
    assert client.content.in_progress() == []


def test_background_writer_full_disk_is_one_clear_error(small_fs):
    from dockyard import Client

    c = Client(small_fs / "root")
    with pytest.raises(DockyardError, match="no space left on device"):
        with c.content.writer(background=True) as w:
            for _ in range(4):
                w.write(os.urandom(1 << 20))
            w.commit()
    assert list(c.content.list()) == []
    assert c.content.in_progress() == []
    c.close()


def test_many_blobs_one_sync(client):
    """Blobs written, made durable by one sync, then committed without an fsync each."""
    datas = [os.urandom(1000 + i) for i in range(5)]
    writers = []
    for data in datas:
        w = client.content.writer()
        w.write(data)
        w.flush()
        writers.append(w)
    assert list(client.content.list()) == []  # nothing visible before the commits
    client.content.sync()
    digests = [w.commit(sha(d), len(d), synced=True) for w, d in zip(writers, datas)]
    client.content.sync_names({"sha256"})
    assert digests == [sha(d) for d in datas]
    assert sorted(b.digest for b in client.content.list()) == sorted(digests)
    with pytest.raises(DigestMismatch):  # synced=True never skips verification
        w = client.content.writer()
        w.write(b"abc")
        w.commit(sha(b"abd"), synced=True)
    assert client.content.in_progress() == []
