"""Hostile layers: nothing is ever written outside the layer directory, errors are one clear line,
and a refused layer leaves nothing visible behind."""
from __future__ import annotations

import io
import os
import stat
from pathlib import Path
from typing import Callable

import pytest

from dockyard.errors import DigestMismatch, DockyardError
from .tars import build, compress, device, diff_id, directory, hardlink, reg, symlink

UP = "../" * 24  # from any layer dir, enough to reach "/"


def _outside_state(outside: Path) -> list[tuple]:
    """Everything about the bait directory that a successful escape could change."""
    out = []
    for dirpath, dirs, files in os.walk(outside):
        for name in sorted(dirs + files):
            p = Path(dirpath, name)
            st = os.lstat(p)
            data = p.read_bytes() if stat.S_ISREG(st.st_mode) else None
            out.append((str(p), st.st_mode, st.st_nlink, data, sorted(os.listxattr(p, follow_symlinks=False))))
    st = os.lstat(outside)
    out.append((str(outside), st.st_mode, st.st_nlink, None, sorted(os.listxattr(outside))))
    return out


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    bait = tmp_path / "outside"
    bait.mkdir()
    (bait / "secret").write_bytes(b"do not touch")
    return bait


def _stray_pwned(tmp_path: Path, root: Path) -> list[Path]:
    """Files named pwned anywhere under tmp_path except inside committed layer dirs."""
    snaps = root / "snapshots"
    found = []
    for dirpath, dirs, files in os.walk(tmp_path):
        for name in dirs + files:
            if name.startswith("pwned"):
                p = Path(dirpath, name)
                inside = p.is_relative_to(snaps) and p.relative_to(snaps).parts[0] not in (".tmp", "l", "active")
                if not inside:
                    found.append(p)
    return found


# (id, members(outside) -> tar, message fragment)
Refused = tuple[str, Callable[[Path], bytes], str]
REFUSED: list[Refused] = [
    ("dotdot-escape", lambda o: build(reg(UP + str(o)[1:] + "/pwned", b"x")), "points outside the layer directory"),
    ("dotdot-in-the-middle", lambda o: build(reg("a/b/../../../pwned", b"x")), "points outside the layer directory"),
    ("write-through-symlink", lambda o: build(symlink("evil", str(o)), reg("evil/pwned", b"x")),
     'goes through "evil", which is a symlink'),
    ("relative-symlinked-dir", lambda o: build(symlink("up", UP.rstrip("/")), reg("up" + str(o) + "/pwned", b"x")),
     'goes through "up", which is a symlink'),
    ("symlink-chain", lambda o: build(symlink("a", "b"), symlink("b", str(o)), reg("a/pwned", b"x")),
     'goes through "a", which is a symlink'),
    ("dir-replaced-by-symlink", lambda o: build(directory("d"), reg("d/ok", b"1"), symlink("d", str(o)),
                                                reg("d/pwned", b"x")), 'goes through "d", which is a symlink'),
    ("hardlink-escape", lambda o: build(hardlink("pwned", UP + str(o)[1:] + "/secret")),
     "points outside the layer directory"),
    ("hardlink-absolute", lambda o: build(hardlink("pwned", str(o / "secret"))), "which is not in this layer"),
    ("hardlink-through-symlink", lambda o: build(symlink("s", str(o)), hardlink("pwned", "s/secret")),
     'goes through "s", which is a symlink'),
    ("char-device", lambda o: build(device("dev/sda", 8, 0)), "device nodes are not allowed in layers"),
    ("block-device", lambda o: build(device("dev/sda", 8, 0, block=True)), "is a block device (8:0)"),
    ("whiteout-of-dotdot", lambda o: build(reg("a/.wh..")), "names no file in its directory"),
    ("whiteout-escape", lambda o: build(reg(UP + str(o)[1:] + "/.wh.secret")), "points outside the layer directory"),
    ("whiteout-through-symlink", lambda o: build(symlink("s", str(o)), reg("s/.wh.secret")),
     'goes through "s", which is a symlink'),
    ("opaque-through-symlink", lambda o: build(symlink("s", str(o)), reg("s/.wh..wh..opq")),
     'goes through "s", which is a symlink'),
    ("name-component-too-long", lambda o: build(reg("pwned" + "x" * 300, b"x")), "File name too long"),
    ("file-under-a-file", lambda o: build(reg("f", b"1"), reg("f/pwned", b"x")), 'goes through "f", which is not a directory'),
]


@pytest.mark.parametrize("case", REFUSED, ids=[c[0] for c in REFUSED])
def test_hostile_entries_are_refused(store, root, tmp_path, outside, case):
    _, make, fragment = case
    before = _outside_state(outside)
    tar = make(outside)
    with pytest.raises(DockyardError) as exc:
        store.unpack(None, diff_id(tar), io.BytesIO(tar), "")
    message = str(exc.value)
    assert "\n" not in message and len(message) < 400, message
    assert message.startswith(f"layer {diff_id(tar)}: "), message
    assert fragment in message, message
    assert _outside_state(outside) == before
    assert _stray_pwned(tmp_path, root) == []
    assert store.list() == [] and not store.has(diff_id(tar))
    assert os.listdir(root / "snapshots/.tmp") == []


# Entries that look dangerous but are fine: they must land inside the layer and nowhere else.
def test_absolute_paths_land_inside_the_layer(store, root, tmp_path, outside):
    before = _outside_state(outside)
    tar = build(reg(str(outside / "pwned"), b"x"), symlink(str(outside / "pwned-link"), "/etc/shadow"))
    cid = store.unpack(None, diff_id(tar), io.BytesIO(tar), "")[0]
    inside = store.fs_dir(cid) / str(outside)[1:]
    assert (inside / "pwned").read_bytes() == b"x"
    assert os.readlink(inside / "pwned-link") == "/etc/shadow"
    assert _outside_state(outside) == before
    assert _stray_pwned(tmp_path, root) == []


def test_entries_replacing_symlinks_do_not_follow_them(store, root, tmp_path, outside):
    before = _outside_state(outside)
    tar = build(symlink("f", str(outside / "secret")), reg("f", b"overwritten?"),
                symlink("d", str(outside)), directory("d"), reg("d/pwned", b"inside"),
                symlink("h", str(outside / "secret")), hardlink("h", "f"))
    cid = store.unpack(None, diff_id(tar), io.BytesIO(tar), "")[0]
    fs = store.fs_dir(cid)
    assert (fs / "f").read_bytes() == b"overwritten?" and not (fs / "f").is_symlink()
    assert (fs / "d").is_dir() and not (fs / "d").is_symlink()
    assert os.stat(fs / "h").st_ino == os.stat(fs / "f").st_ino
    assert _outside_state(outside) == before
    assert _stray_pwned(tmp_path, root) == []


def test_very_long_paths_stay_inside(store, root, tmp_path, outside):
    deep = "/".join(["d" * 200] * 40)  # 8 KiB: longer than PATH_MAX, fine with openat
    tar = build(reg(deep + "/pwned", b"deep"))
    cid = store.unpack(None, diff_id(tar), io.BytesIO(tar), "")[0]
    fd = os.open(store.fs_dir(cid), os.O_RDONLY)
    try:
        for part in deep.split("/"):
            nfd = os.open(part, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nfd
        with os.fdopen(os.open("pwned", os.O_RDONLY, dir_fd=fd), "rb") as f:
            assert f.read() == b"deep"
    finally:
        os.close(fd)
    assert _stray_pwned(tmp_path, root) == []
    store.remove_chain(cid)  # the fd-based removal copes with paths beyond PATH_MAX


def test_setuid_file_keeps_its_mode_inside_the_layer(store, root, tmp_path):
    tar = build(reg("usr/bin/pwned-su", b"\x7fELF", mode=0o4755))
    cid = store.unpack(None, diff_id(tar), io.BytesIO(tar), "")[0]
    target = store.fs_dir(cid) / "usr/bin/pwned-su"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o4755
    assert target.is_relative_to(root / "snapshots") and _stray_pwned(tmp_path, root) == []


# Broken streams: one line, nothing half-written visible.
def _truncated_tar() -> tuple[bytes, str]:
    tar = build(reg("a", os.urandom(5000)), reg("b", os.urandom(5000)))
    return tar[:7000], diff_id(tar)


def _corrupt_gzip() -> tuple[bytes, str]:
    tar = build(*(reg(f"f{i}", os.urandom(3000)) for i in range(10)))
    blob = bytearray(compress(tar, "gzip"))
    for i in range(200, 260):
        blob[i] ^= 0x5A
    return bytes(blob), diff_id(tar)


def _truncated_gzip() -> tuple[bytes, str]:
    tar = build(reg("a", os.urandom(50000)))
    return compress(tar, "gzip")[:-100], diff_id(tar)


def _corrupt_zstd() -> tuple[bytes, str]:
    tar = build(*(reg(f"f{i}", b"abc" * 5000) for i in range(10)))
    blob = bytearray(compress(tar, "zstd"))
    for i in range(20, 60):
        blob[i] ^= 0xFF
    return bytes(blob), diff_id(tar)


def _not_a_tar() -> tuple[bytes, str]:
    return b"this is not a tar archive, just some text that goes on " * 20, "sha256:" + "2" * 64


def _bad_pax() -> tuple[bytes, str]:
    tar = bytearray(build(reg("x" * 120, b"data")))  # the long name goes into a PAX header
    tar[512:514] = b"99"  # record length now points past the header
    return bytes(tar), diff_id(bytes(tar))


def _wrong_diff_id() -> tuple[bytes, str]:
    return compress(build(reg("a", b"a")), "gzip"), "sha256:" + "3" * 64


BROKEN = [
    ("truncated-tar", _truncated_tar, "truncated tar archive"),
    ("corrupt-gzip", _corrupt_gzip, "corrupt gzip data"),
    ("truncated-gzip", _truncated_gzip, "truncated gzip data"),
    ("corrupt-zstd", _corrupt_zstd, "corrupt zstd data"),
    ("not-a-tar", _not_a_tar, "invalid tar header at offset 0"),
    ("bad-pax-header", _bad_pax, "invalid PAX header"),
    ("wrong-diff-id", _wrong_diff_id, "does not match the image's diff_id"),
]


@pytest.mark.parametrize("case", BROKEN, ids=[c[0] for c in BROKEN])
def test_broken_layers_give_one_line_and_leave_nothing(store, root, case):
    _, make, fragment = case
    blob, expected = make()
    with pytest.raises(DockyardError) as exc:
        store.unpack(None, expected, io.BytesIO(blob), "application/vnd.oci.image.layer.v1.tar+gzip")
    message = str(exc.value)
    assert "\n" not in message and fragment in message, message
    assert message.startswith(f"layer {expected}: ")
    if case[0] == "wrong-diff-id":
        assert isinstance(exc.value, DigestMismatch)
    assert store.list() == [] and not store.has(expected)
    assert os.listdir(root / "snapshots/.tmp") == []
    assert [p for p in os.listdir(root / "snapshots") if not p.startswith(".") and p not in ("l", "active")] == []
