"""Active snapshots and real overlay mounts; removal rules and garbage collection."""
from __future__ import annotations

import errno
import os
import stat

import pytest

from dockyard.errors import Conflict, NotFound
from dockyard.snapshot import mounts
from .tars import build, directory, reg

BASE = build(directory("etc"), reg("etc/passwd", b"root:x:0:0\n"), reg("etc/group", b"root:x:0:\n"),
             directory("var/cache"), reg("var/cache/old", b"old"), reg("bin/sh", b"#!", mode=0o755))
TOP = build(reg("etc/.wh.group"), reg("var/cache/.wh..wh..opq"), reg("var/cache/new", b"new"),
            reg("etc/passwd", b"root:x:0:0:changed\n"))


@pytest.fixture
def chain(unpack) -> str:
    base, _ = unpack(BASE)
    top, _ = unpack(TOP, parent=base)
    return top


def test_overlay_mount_shows_the_merged_layers(store, chain, tmp_path, mounted):
    snap = store.prepare("ctr-1", chain)
    assert snap.lowerdirs == store.lowerdirs(chain) and snap.parent == chain
    target = tmp_path / "rootfs"
    store.mount("ctr-1", target)
    mounted.append(target)
    assert mounts.is_mounted(target)
    assert (target / "etc/passwd").read_bytes() == b"root:x:0:0:changed\n"
    assert not (target / "etc/group").exists()  # whited out
    assert sorted(os.listdir(target / "var/cache")) == ["new"]  # opaque dir hides "old"
    assert (target / "bin/sh").read_bytes() == b"#!"
    (target / "etc/hostname").write_text("box\n")
    os.unlink(target / "bin/sh")
    assert (snap.upper / "etc/hostname").read_text() == "box\n"
    assert stat.S_ISCHR(os.lstat(snap.upper / "bin/sh").st_mode)  # overlayfs wrote a whiteout
    assert store.usage("ctr-1") == len("box\n")
    for lower in snap.lowerdirs:  # the committed layers are untouched
        assert not (lower / "etc/hostname").exists()
    assert (store.fs_dir(store.parents(chain)[0]) / "bin/sh").exists()


def test_readonly_mount_refuses_writes(store, chain, tmp_path, mounted):
    store.prepare("ro", chain)
    target = tmp_path / "ro"
    store.mount("ro", target, readonly=True)
    mounted.append(target)
    assert (target / "etc/passwd").exists()
    with pytest.raises(OSError) as exc:
        (target / "new-file").write_text("x")
    assert exc.value.errno == errno.EROFS


def test_snapshot_without_layers_is_a_bind_mount_of_upper(store, tmp_path, mounted):
    snap = store.prepare("scratch", None)
    assert snap.lowerdirs == []
    target = tmp_path / "scratch"
    store.mount("scratch", target)
    mounted.append(target)
    (target / "file").write_text("x")
    assert (snap.upper / "file").read_text() == "x"
    store.unmount(target)
    assert not mounts.is_mounted(target)
    store.unmount(target)  # not mounted any more: not an error


def test_many_layers_exceed_one_page_of_mount_options(store, unpack, tmp_path, mounted):
    parent = None
    for i in range(40):
        parent, _ = unpack(build(reg(f"layer{i:02d}", str(i).encode()), reg("top", str(i).encode())), parent=parent)
    lowers = store.lowerdirs(parent)
    assert len(":".join(map(str, lowers))) > os.sysconf("SC_PAGE_SIZE")
    store.prepare("tall", parent)
    target = tmp_path / "tall"
    store.mount("tall", target)
    mounted.append(target)
    assert (target / "layer00").read_text() == "0" and (target / "layer39").read_text() == "39"
    assert (target / "top").read_text() == "39"
    (target / "written").write_text("ok")
    assert (store.active("tall").upper / "written").read_text() == "ok"
    assert os.getcwd() != str(store.links_dir)  # the chdir happened in a child


def test_remove_unmounts_and_deletes(store, chain, tmp_path, mounted, root):
    snap = store.prepare("gone", chain)
    target = tmp_path / "gone"
    store.mount("gone", target)
    mounted.append(target)
    (target / "data").write_text("x")
    store.remove("gone")
    assert not mounts.is_mounted(target)
    assert not snap.upper.exists()
    with pytest.raises(NotFound):
        store.active("gone")
    with pytest.raises(NotFound):
        store.remove("gone")


def test_prepare_checks_key_and_parent(store, chain):
    store.prepare("dup", chain)
    with pytest.raises(Conflict):
        store.prepare("dup", chain)
    with pytest.raises(NotFound):
        store.prepare("orphan", "sha256:" + "9" * 64)


def test_remove_chain_refuses_layers_in_use(store, chain):
    base = store.parents(chain)[0]
    with pytest.raises(Conflict, match="is built on it"):
        store.remove_chain(base)
    store.prepare("user", chain)
    with pytest.raises(Conflict, match="in use by active snapshot 'user'"):
        store.remove_chain(chain)
    store.remove("user")
    store.remove_chain(chain)
    store.remove_chain(base)
    assert store.list() == []
    with pytest.raises(NotFound):
        store.remove_chain(base)


def test_list_reports_both_kinds(store, chain):
    store.prepare("c1", chain)
    infos = store.list()
    committed = [i for i in infos if i.kind == "committed"]
    active = [i for i in infos if i.kind == "active"]
    assert {i.chain_id for i in committed} == {chain, store.parents(chain)[0]}
    assert [(i.key, i.parent) for i in active] == [("c1", chain)]
    top = next(i for i in committed if i.chain_id == chain)
    assert top.size == len(b"new") + len(b"root:x:0:0:changed\n") and top.parent == store.parents(chain)[0]


def test_gc_keeps_what_is_needed(store, unpack, chain, root):
    base = store.parents(chain)[0]
    other, _ = unpack(build(reg("other", b"o")))
    other_child, _ = unpack(build(reg("child", b"c")), parent=other)
    lone, _ = unpack(build(reg("lone", b"l")))
    store.prepare("runs-on-other", other)
    (root / "snapshots/.tmp/deadbeef.999999999.junk").mkdir()  # a crashed unpack's leftovers
    removed = store.gc(keep={chain})
    assert set(removed) == {other_child, lone}
    assert all(store.has(c) for c in (chain, base, other))
    assert not store.has(other_child) and not store.has(lone)
    assert os.listdir(root / "snapshots/.tmp") == []
    store.remove("runs-on-other")
    removed = store.gc(keep=set())
    assert set(removed) == {chain, base, other}
    assert removed.index(chain) < removed.index(base)  # children go before their parents
    assert store.list() == []
