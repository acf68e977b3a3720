"""Layers written by a real peer (umoci) unpack and stack to the same tree the peer produces."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(shutil.which("umoci") is None, reason="umoci is not installed (apt-get install umoci)"),
]


def _umoci(*args: str) -> None:
    subprocess.run(["umoci", *args], check=True, capture_output=True, timeout=120)


def _tree(root: Path) -> dict[str, tuple]:
    """Everything a container would see of a file tree (directory mtimes aside: overlayfs shows
    the top-most layer's directory)."""
    out: dict[str, tuple] = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            p = Path(dirpath, name)
            st = os.lstat(p)
            rel = str(p.relative_to(root))
            if stat.S_ISREG(st.st_mode):
                extra = (hashlib.sha256(p.read_bytes()).hexdigest(), st.st_mtime_ns)
            elif stat.S_ISLNK(st.st_mode):
                extra = (os.readlink(p),)
            else:
                extra = ()
            out[rel] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, *extra)
    return out


def test_umoci_image_stacks_to_the_same_tree(store, tmp_path, mounted):
    layout, bundle = tmp_path / "oci", tmp_path / "bundle"
    _umoci("init", "--layout", str(layout))
    _umoci("new", "--image", f"{layout}:t")
    _umoci("unpack", "--image", f"{layout}:t", str(bundle))
    rootfs = bundle / "rootfs"
    # layer 1: files, a setuid binary, owners, symlinks, a hard link, a tree to delete later
    (rootfs / "etc").mkdir()
    (rootfs / "etc/passwd").write_text("root:x:0:0\n")
    (rootfs / "etc/group").write_text("root:x:0:\n")
    (rootfs / "bin").mkdir()
    (rootfs / "bin/su").write_bytes(b"\x7fELF")
    os.chmod(rootfs / "bin/su", 0o4755)
    os.link(rootfs / "bin/su", rootfs / "bin/su-link")
    os.symlink("/etc/passwd", rootfs / "passwd-link")
    (rootfs / "home/user").mkdir(parents=True)
    os.chown(rootfs / "home/user", 1000, 1000)
    (rootfs / "var/cache").mkdir(parents=True)
    for i in range(5):
        (rootfs / f"var/cache/old{i}").write_text(str(i))
    _umoci("repack", "--image", f"{layout}:t", str(bundle))
    # layer 2 (from a fresh unpack: repack diffs against the bundle's original image):
    # deletions (whiteouts), a replaced directory, a changed file
    bundle = tmp_path / "bundle2"
    _umoci("unpack", "--image", f"{layout}:t", str(bundle))
    rootfs = bundle / "rootfs"
    os.unlink(rootfs / "etc/group")
    shutil.rmtree(rootfs / "var/cache")
    (rootfs / "var/cache").mkdir()
    (rootfs / "var/cache/new").write_text("new")
    (rootfs / "etc/passwd").write_text("root:x:0:0:changed\n")
    _umoci("repack", "--image", f"{layout}:t", str(bundle))
    _umoci("unpack", "--image", f"{layout}:t", str(tmp_path / "expected"))

    index = json.loads((layout / "index.json").read_text())
    blob = lambda d: layout / "blobs" / d.replace(":", "/")  # noqa: E731
    manifest = json.loads(blob(index["manifests"][0]["digest"]).read_text())
    config = json.loads(blob(manifest["config"]["digest"]).read_text())
    parent = None
    for desc, diff_id in zip(manifest["layers"], config["rootfs"]["diff_ids"]):
        with open(blob(desc["digest"]), "rb") as f:
            parent, _ = store.unpack(parent, diff_id, f, desc["mediaType"])
    assert len(store.lowerdirs(parent)) == 2

    store.prepare("check", parent)
    target = tmp_path / "mnt"
    store.mount("check", target, readonly=True)
    mounted.append(target)
    ours, theirs = _tree(target), _tree(tmp_path / "expected/rootfs")
    assert ours == theirs
    assert "etc/group" not in ours and sorted(os.listdir(target / "var/cache")) == ["new"]
