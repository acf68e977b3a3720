"""Fixtures for the orchestrator's tests: a swarm on the test's state root, torn down (and
checked for leftovers: manager process, task containers, service rules, the ingress network)
even when the test fails."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

import pytest

from .helpers import OtherNamespace, leftovers, manager_processes

if os.geteuid() != 0:  # pragma: no cover
    pytest.skip("the orchestrator's tests need root (containers, bridges, iptables)", allow_module_level=True)


@pytest.fixture
def clean_cluster(client: Any, root: Path, busybox: str) -> Iterator[Any]:
    """The test's root (busybox imported), with whatever swarm the test makes taken down and
    checked at the end: no manager, task container, service rule or ingress network may stay."""
    yield client
    from dockyard.cluster import manager
    from dockyard.cluster.ingress import Ingress
    from dockyard.cluster.service import Swarm
    from dockyard.cluster.store import ClusterStore

    try:
        if ClusterStore(client.state).swarm() is not None:
            Swarm(client).leave(force=True)
        left = leftovers(client, root)
    finally:  # whatever happened: nothing of the test may stay on the host
        manager.stop(client)
        for pid in manager_processes(root):
            os.kill(pid, 9)
        for c in client.containers.list(all=True):
            c.remove(force=True)
        Ingress(client).remove_all()
    assert left == [], f"the test left things behind: {left}"


@pytest.fixture
def swarm(clean_cluster: Any) -> Any:
    """A single-node swarm on the test's root (busybox imported); left and checked at the end."""
    from dockyard.cluster.service import Swarm

    Swarm(clean_cluster).init()
    return clean_cluster


@pytest.fixture
def other_netns(root: Path) -> Iterator[OtherNamespace]:
    from dockyard.network.naming import root_tag

    ns = OtherNamespace(root_tag(root))
    try:
        yield ns
    finally:
        ns.close()
