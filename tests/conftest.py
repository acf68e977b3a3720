"""Shared fixtures: a temporary state root per test, an offline busybox image, the CLI."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Callable, Iterator

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    r = tmp_path / "root"
    r.mkdir()
    monkeypatch.setenv("DOCKYARD_ROOT", str(r))
    yield r
    if (r / "networks").is_dir():  # a bridge network stays up between containers: take it down
        from dockyard import Client

        with Client(r) as c:
            c.networks.cleanup()


@pytest.fixture
def client(root: Path):
    from dockyard import Client

    c = Client(root)
    yield c
    c.close()


@pytest.fixture(scope="session")
def busybox_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from dockyard.image.busybox import build_rootfs_tar

    out = tmp_path_factory.mktemp("busybox") / "busybox-rootfs.tar"
    return build_rootfs_tar(out)


@pytest.fixture
def busybox(client, busybox_tar: Path) -> str:
    """busybox:latest imported into the test's state root; returns the image ID."""
    from dockyard.image.busybox import BUSYBOX_CHANGES

    image = client.images.import_rootfs(str(busybox_tar), "busybox:latest", changes=BUSYBOX_CHANGES)
    return image.id


CliRunner = Callable[..., "subprocess.CompletedProcess[str]"]


@pytest.fixture
def cli(root: Path) -> CliRunner:
    """Run the dockyard CLI on the test's root: cli("image", "ls", input=None, check=False)."""

    def run(*args: str, input: str | bytes | None = None, check: bool = False,
            timeout: float = 120, text: bool = True, env: dict[str, str] | None = None):
        full_env = dict(os.environ)
        full_env["DOCKYARD_ROOT"] = str(root)
        if env:
            full_env.update(env)
        proc = subprocess.run([sys.executable, "-m", "dockyard", *args], input=input,
                              capture_output=True, text=text, timeout=timeout, env=full_env,
                              cwd=str(REPO))
        if check and proc.returncode != 0:
            raise AssertionError(f"dockyard {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
        return proc

    return run


def docker_available() -> bool:
    """A docker CLI and a running dockerd (the side-by-side tests compare with it)."""
    import shutil

    return shutil.which("docker") is not None and subprocess.run(
        ["docker", "info"], capture_output=True).returncode == 0


@pytest.fixture(scope="session")
def docker_busybox(busybox_tar: Path):
    """The same busybox rootfs imported into docker (removed at the end of the session)."""
    if not docker_available():
        pytest.skip("docker CLI or daemon not available")
    from dockyard.image.busybox import BUSYBOX_CHANGES

    tag = f"dockyard-test-busybox:{os.getpid()}"
    changes = [arg for change in BUSYBOX_CHANGES for arg in ("-c", change)]  # the same config as `busybox`
    subprocess.run(["docker", "import", *changes, str(busybox_tar), tag], check=True, capture_output=True)
    yield tag
    subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)
