"""The default bridge stays up between containers (as docker0 does) and only explicit teardown
removes it; a container without published ports costs no firewall change; release leaves no veth."""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from dockyard.network import firewall, links, netns
from dockyard.network.ports import parse_port_specs
from dockyard.network.rtnl import RtnlError, host

from .conftest import BUSYBOX as BB


@pytest.fixture
def iptables_calls(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Every iptables/iptables-restore command the network service runs (they still run)."""
    calls: list[list[str]] = []
    real = firewall._run

    def spy(argv: list[str], text_input: str | None = None) -> Any:
        calls.append(argv)
        return real(argv, text_input)

    monkeypatch.setattr(firewall, "_run", spy)
    return calls


def bridge_of(nets: Any) -> str:
    name = nets.get("bridge").bridge
    assert name, "the default bridge has no interface yet"
    return name


def test_default_bridge_stays_up_and_later_containers_touch_no_firewall(nets, boxes, iptables_calls):
    first = boxes("first")
    bridge = bridge_of(nets)
    assert iptables_calls, "setting up the bridge programs its rules"
    nets.release(first.id)
    assert links.link_exists(bridge)
    assert nets.leaks() == []  # the bridge and its rules belong to the network, not to a container
    iptables_calls.clear()
    second = boxes("second")
    assert second.sh(f"{BB} ping -c 1 -W 2 {second.att.gateway}").returncode == 0
    nets.release(second.id)
    assert iptables_calls == []
    assert nets.leaks() == []  # its veth went with its namespace (the kernel does it shortly after)


def test_published_port_costs_one_restore_each_way(nets, boxes, iptables_calls):
    boxes("warm")  # the bridge is up from here on
    iptables_calls.clear()
    web = boxes("web", ports=parse_port_specs(["18184:80"]))
    restores = [c for c in iptables_calls if c[0].endswith("-restore")]
    assert len(restores) == 1
    assert web.id[:12] in nets.firewall.owners()
    iptables_calls.clear()
    nets.release(web.id)
    assert [c for c in iptables_calls if not c[0].endswith("-restore")] == []  # no listing
    assert web.id[:12] not in nets.firewall.owners()


def test_prune_takes_the_idle_default_bridge_down(nets, boxes):
    box = boxes("box")
    bridge = bridge_of(nets)
    assert nets.prune() == [] and links.link_exists(bridge)  # in use: stays
    nets.release(box.id)
    nets.prune()
    assert not links.link_exists(bridge)
    assert nets.host_objects() == []
    again = boxes("again")  # and comes back on the next use
    assert again.sh(f"{BB} ping -c 1 -W 2 {again.att.gateway}").returncode == 0


def test_release_deletes_the_veth_when_the_namespace_was_already_unpinned(nets, boxes):
    box = boxes("held")
    veth = nets.store.endpoints(container_id=box.id)[0].veth
    holder = os.open(box.att.netns_path, os.O_RDONLY)  # keeps the namespace (and veth) alive
    try:
        netns.remove(box.att.netns_path)  # as a crash between unpinning and the records would
        assert links.link_exists(veth)
        nets.release(box.id)
        assert not links.link_exists(veth)
    finally:
        os.close(holder)


def test_a_deleted_root_loses_its_bridge_when_another_root_sets_one_up(nets, boxes, tmp_path):
    from dockyard import Client

    gone_root = tmp_path / "gone-root"
    other = Client(gone_root)
    try:
        att = other.networks.attach(os.urandom(32).hex(), mode="bridge")
        stale_bridge = other.networks.get("bridge").bridge
        other.networks.release(att.container_id)
        stale_chain = other.networks.firewall.forward
    finally:
        other.close()
    assert stale_bridge and links.link_exists(stale_bridge)
    shutil.rmtree(gone_root)
    try:
        boxes("fresh")  # this root's first bridge: the set-up collects stale roots' leftovers
        assert not links.link_exists(stale_bridge)
        assert firewall.run_iptables("filter", "-S", stale_chain, check=False).returncode != 0
    finally:
        if links.link_exists(stale_bridge):  # never leave it on the host, even on failure
            Client(gone_root).networks.cleanup()
            shutil.rmtree(gone_root, ignore_errors=True)


def test_rtnl_reports_the_kernels_reason_and_missing_links():
    nl = host()
    assert nl.link("dy-no-such-if") is None
    assert nl.link("lo").index == 1
    with pytest.raises(RtnlError) as err:
        nl.add_bridge("x" * 20)  # longer than IFNAMSIZ
    assert err.value.errno and err.value.strerror
    assert not Path("/sys/class/net/" + "x" * 20).exists()
