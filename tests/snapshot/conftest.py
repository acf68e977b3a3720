"""Fixtures for snapshot tests: the store on a temporary root, a layer helper, mount cleanup."""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Callable

import pytest

from . import tars

if os.geteuid() != 0:  # pragma: no cover
    pytest.skip("snapshot tests need root (mknod, chown, overlay mounts)", allow_module_level=True)


@pytest.fixture
def store(client):
    return client.snapshots


Unpack = Callable[..., "tuple[str, int]"]


@pytest.fixture
def unpack(store) -> Unpack:
    """unpack(tar_bytes, parent=None, compression="none") -> (chain_id, size)."""

    def run(tar: bytes, parent: str | None = None, compression: str = "none", media_type: str = "",
            diff_id: str | None = None, **kw):
        blob = tars.compress(tar, compression)
        return store.unpack(parent, diff_id or tars.diff_id(tar), io.BytesIO(blob), media_type, **kw)

    return run


@pytest.fixture
def mounted(tmp_path: Path):
    """A list to append mount targets to; every one is unmounted at teardown, pass or fail."""
    from dockyard.snapshot import mounts

    targets: list[Path] = []
    yield targets
    for target in reversed(targets):
        mounts.unmount(target)
    leftover = [m for m in mounts.mount_points() if m.startswith(str(tmp_path))]
    assert not leftover, f"mounts left behind: {leftover}"
