"""A full disk under the state root: one clear error line, and dockyard usable again once the
failed operation is over (what filled the disk was its own scratch space)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def small_root(tmp_path: Path, busybox_tar: Path) -> Iterator[Path]:
    """A state root on its own 8 MiB tmpfs, with busybox imported."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)], check=True)
    try:
        root = mnt / "root"
        dy(root, "image", "import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest", check=True)
        yield root
        dy(root, "container", "prune", "-f")
        from dockyard import Client

        with Client(root) as c:  # the default bridge stays up between containers, as docker0
            c.networks.cleanup()
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def dy(root: Path, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "dockyard", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "DOCKYARD_ROOT": str(root)}, cwd=str(REPO))
    assert not check or proc.returncode == 0, proc.stderr
    return proc


def used_kib(path: Path) -> int:
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize // 1024


def test_a_build_that_fills_the_disk_fails_cleanly_and_frees_it(small_root: Path, tmp_path: Path) -> None:
    before = used_kib(small_root)
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN dd if=/dev/zero of=/big bs=1M count=16\n")
    built = dy(small_root, "build", "-q", str(ctx))
    assert built.returncode == 1
    assert "Traceback" not in built.stderr
    assert built.stderr.splitlines()[-1] == \
        "executor failed running [/bin/sh -c dd if=/dev/zero of=/big bs=1M count=16]: exit code: 1"
    assert used_kib(small_root) < before + 256  # the step's layer is gone again
    listed = dy(small_root, "image", "ls", "--format", "{{.Repository}}:{{.Tag}}")
    assert listed.returncode == 0 and listed.stdout == "busybox:latest\n"


def test_a_full_disk_is_one_error_line(small_root: Path) -> None:
    filler = small_root.parent / "filler"
    with open(filler, "wb") as f:  # fill what is left
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError:
            pass
    for args, code in ((("image", "ls"), 1), (("run", "--rm", "busybox", "true"), 125)):
        out = dy(small_root, *args)
        assert (out.returncode, out.stderr) == \
            (code, f"Error: {small_root}/metadata.db: no space left on device\n"), args
    filler.unlink()
    assert dy(small_root, "run", "--rm", "busybox", "echo", "ok").stdout == "ok\n"
