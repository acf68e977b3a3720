"""Engine API fixtures: ``dockyard system service`` on a temporary root and socket, with the
offline busybox image, and the peers that drive it (the docker CLI, docker-py, raw HTTP).

One service per test module (starting one costs a Python start); every test removes the
containers it made (an autouse fixture), and the module ends with a leak check: no process
holding a file of the root (monitors), no mount under it, no cgroup of its containers.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from engine.conftest import assert_nothing_left

from .helpers import ApiService, make_service


def _remove_containers(root: Path) -> list[str]:
    from dockyard import Client

    ids = []
    with Client(root) as c:
        for ctr in c.containers.list(all=True):
            ids.append(ctr.id)
            try:
                c.containers.remove(ctr.id, force=True, volumes=True)
            except Exception:  # noqa: BLE001 - gone already
                pass
    return ids


def assert_no_leaks(root: Path, ids: list[str]) -> None:
    """Nothing of the root left on the host: processes, mounts, cgroups; then its bridges,
    firewall rules and namespaces are taken down (``network create`` tests make a bridge)."""
    from dockyard import Client

    with Client(root) as c:
        c.networks.cleanup()
    assert_nothing_left(root, ids)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, busybox_tar: Path) -> Iterator[ApiService]:
    """The service of this test module (started), on its own root."""
    svc = make_service(tmp_path_factory.mktemp("api"), busybox_tar)
    svc.start()
    ids: list[str] = []
    try:
        yield svc
    finally:
        svc.stop()
        ids = _remove_containers(svc.root)
        assert_no_leaks(svc.root, ids)


@pytest.fixture(autouse=True)
def _clean_containers(request: pytest.FixtureRequest) -> Iterator[None]:
    """Each test starts without the containers of the one before."""
    yield
    if "api" in request.fixturenames:
        _remove_containers(request.getfixturevalue("api").root)
