"""Networking end to end: name resolution, published ports, isolation, NAT, failure cleanup."""
from __future__ import annotations

import socket
import subprocess

import pytest

from dockyard.errors import Conflict, InvalidArgument
from dockyard.network.ports import parse_port_specs

BB = "busybox"


def test_containers_on_a_user_network_talk_tcp_by_name_and_alias(nets, boxes):
    nets.create("appnet")
    web = boxes("web", mode="appnet", aliases=["www"])
    client = boxes("client", mode="appnet")
    assert client.att.resolv_conf.startswith("nameserver 127.0.0.11") or \
        "nameserver 127.0.0.11" in client.att.resolv_conf
    web.httpd(8080, "hello from web\n")
    for name in ("web", "www", "web.appnet", web.id[:12]):
        out = client.sh(f"{BB} wget -q -O- http://{name}:8080/")
        assert out.stdout == "hello from web\n", (name, out.stderr)
    # plain TCP by alias, with nc
    out = client.sh(f"echo ping | {BB} nc -w 3 www 8080 | head -1")
    assert out.stdout.startswith("HTTP/1."), out.stderr
    # an unknown name is not invented
    assert client.sh(f"{BB} nslookup nosuchbox 127.0.0.11").returncode != 0


def test_names_are_gone_after_release(nets, boxes):
    nets.create("appnet")
    web = boxes("web", mode="appnet")
    client = boxes("client", mode="appnet")
    assert client.sh(f"{BB} nslookup web 127.0.0.11").returncode == 0
    nets.release(web.id)
    assert client.sh(f"{BB} nslookup web 127.0.0.11").returncode != 0


def test_published_port_serves_http_from_loopback_and_from_a_second_host(nets, boxes, second_host):
    """``-p 18181:80`` as dockerd 20.10: IPv4 by kernel DNAT (no socket of ours on the IPv4 side:
    nothing copies bytes in userspace) and ``[::]:18181`` by the userspace proxy."""
    web = boxes("web", ports=parse_port_specs(["18181:80"]))
    web.httpd(80, "published\n")
    assert [(b.host_ip, b.host_port, b.container_port) for b in web.att.ports] == [
        ("", 18181, 80), ("::", 18181, 80)]
    local = subprocess.run([BB, "wget", "-q", "-O-", "http://127.0.0.1:18181/"],
                           capture_output=True, text=True, timeout=20)
    assert local.stdout == "published\n", local.stderr
    over6 = subprocess.run(["curl", "-s", "-m", "5", "http://[::1]:18181/"],
                           capture_output=True, text=True, timeout=20)
    assert over6.stdout == "published\n", over6.stderr
    listening = subprocess.run(["ss", "-Hltn", "sport = :18181"], capture_output=True,
                               text=True).stdout.split()
    assert "[::]:18181" in listening and "0.0.0.0:18181" not in listening and "*:18181" not in listening
    remote = second_host.sh(f"{BB} wget -q -O- http://{second_host.host_ip}:18181/")
    assert remote.stdout == "published\n", remote.stderr
    settings = nets.settings(web.id)
    assert settings["Ports"] == {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "18181"},
                                            {"HostIp": "::", "HostPort": "18181"}]}
    assert settings["IPAddress"] == web.ip
    # released when the container stops: nothing answers any more, on either family
    web.stop()
    nets.release(web.id)
    for url in ("http://127.0.0.1:18181/", "http://[::1]:18181/"):
        gone = subprocess.run(["curl", "-s", "-m", "2", url], capture_output=True, text=True)
        assert gone.returncode != 0, url


def test_loopback_only_binding_and_random_host_port(nets, boxes):
    web = boxes("web", ports=parse_port_specs(["127.0.0.1::80"]))
    web.httpd(80, "random\n")
    (binding,) = web.att.ports
    assert binding.host_ip == "127.0.0.1" and binding.host_port > 0
    out = subprocess.run([BB, "wget", "-q", "-O-", f"http://127.0.0.1:{binding.host_port}/"],
                         capture_output=True, text=True, timeout=20)
    assert out.stdout == "random\n"


def test_publish_all_exposed_ports():
    specs = parse_port_specs(["8080:80"], publish_all=True, exposed=["80/tcp", "53/udp", "9000-9001"])
    assert [(s.container_port, s.proto, s.host_port) for s in specs] == [
        (80, "tcp", 8080), (53, "udp", 0), (9000, "tcp", 0), (9001, "tcp", 0)]


def test_a_taken_port_fails_before_anything_is_made(nets, boxes):
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(Conflict, match=f"Error starting userland proxy: listen tcp4 0.0.0.0:{port}: "
                                           "bind: address already in use"):
            boxes("web", ports=parse_port_specs([f"{port}:80"]))
    assert nets.leaks() == []
    assert nets.store.sandboxes() == [] and nets.store.endpoints() == []
    first = boxes("first", ports=parse_port_specs(["18182:80"]))
    assert first.att.ports
    with pytest.raises(Conflict, match="port is already allocated"):
        boxes("second", ports=parse_port_specs(["18182:80"]))
    assert len(nets.store.sandboxes()) == 1


def test_internal_network_blocks_traffic_out(nets, boxes, second_host, tmp_path):
    second_host.httpd(8000, tmp_path / "outside", "outside\n")
    nets.create("sealed", internal=True)
    nets.create("open")
    sealed = boxes("sealed", mode="sealed")
    opened = boxes("opened", mode="open")
    url = f"http://{second_host.ip}:8000/"
    assert opened.sh(f"timeout 3 {BB} wget -q -O- {url}").stdout == "outside\n"
    assert sealed.sh(f"timeout 2 {BB} wget -q -O- {url}").returncode != 0
    # docker gives an internal network's containers a default route too; the firewall seals it
    gateway = nets.get("sealed").gateway
    assert sealed.att.gateway == gateway and f"default via {gateway}" in sealed.sh("ip route").stdout


def test_two_networks_cannot_reach_each_other(nets, boxes):
    nets.create("red")
    nets.create("blue")
    target = boxes("target", mode="red")
    target.httpd(8080, "red\n")
    friend = boxes("friend", mode="red")
    stranger = boxes("stranger", mode="blue")
    assert friend.sh(f"{BB} wget -q -O- http://{target.ip}:8080/").stdout == "red\n"
    assert stranger.sh(f"timeout 2 {BB} wget -q -O- http://{target.ip}:8080/").returncode != 0
    assert stranger.sh(f"{BB} nslookup target 127.0.0.11").returncode != 0


def test_overlapping_subnets_are_refused_and_leave_nothing(nets):
    nets.create("one", subnet="10.251.7.0/24")
    with pytest.raises(Conflict, match="Pool overlaps with other one on this address space"):
        nets.create("two", subnet="10.251.7.128/25")
    with pytest.raises(Conflict, match="already exists"):
        nets.create("one")
    assert [n.name for n in nets.list() if not n.builtin] == ["one"]
    nets.remove("one")
    with pytest.raises(InvalidArgument):
        nets.create("bad", subnet="10.0.0.0/33")
    with pytest.raises(InvalidArgument, match="no matching subnet for gateway"):
        nets.create("bad", subnet="10.251.8.0/24", gateway="10.9.9.9")


def test_removing_a_network_in_use_is_refused(nets, boxes):
    nets.create("busy")
    box = boxes("user", mode="busy")
    with pytest.raises(Conflict, match="has active endpoints"):
        nets.remove("busy")
    with pytest.raises(Conflict, match="pre-defined network"):
        nets.remove("bridge")
    nets.release(box.id)
    nets.remove("busy")


def test_release_is_idempotent_and_works_from_a_fresh_process(nets, boxes, root):
    from dockyard import Client

    nets.create("appnet")
    box = boxes("box", mode="appnet", ports=parse_port_specs(["18183:80"]))
    other = Client(root)  # another CLI invocation, knowing only the records
    other.networks.release(box.id)
    other.networks.release(box.id)
    other.close()
    assert nets.store.sandboxes() == []
    assert nets.firewall.owners() == {nets.get("appnet").id[:12]}


def test_connect_and_disconnect_a_running_box(nets, boxes):
    nets.create("front")
    nets.create("back")
    db = boxes("db", mode="back")
    db.httpd(5432, "db\n")
    app = boxes("app", mode="front")
    assert app.sh(f"timeout 2 {BB} wget -q -O- http://{db.ip}:5432/").returncode != 0
    nets.connect("back", app.id, name="app", aliases=["api"])
    assert "eth1" in app.sh("ip -o link").stdout
    assert app.sh(f"{BB} wget -q -O- http://{db.ip}:5432/").stdout == "db\n"
    assert db.sh(f"{BB} nslookup api 127.0.0.11").returncode == 0
    nets.disconnect("back", app.id)
    assert "eth1" not in app.sh("ip -o link").stdout
    with pytest.raises(Conflict):
        nets.disconnect("back", app.id)


def test_none_host_and_container_modes(nets, boxes):
    lonely = boxes("lonely", mode="none")
    assert lonely.att.ip is None and lonely.sh("ip -o link").stdout.count(":") >= 1
    assert "eth0" not in lonely.sh("ip -o link").stdout
    hosty = nets.attach("h" * 64, name="hosty", mode="host")
    assert hosty.netns_path is None and hosty.oci_namespace() is None
    nets.release("h" * 64)
    web = boxes("web")
    side = nets.attach("s" * 64, name="side", mode=f"container:{web.id}")
    assert side.netns_path == web.att.netns_path
    nets.release("s" * 64)
    assert web.sh("ip -o link").returncode == 0  # the owner's namespace is untouched
    with pytest.raises(InvalidArgument, match="conflicting options"):
        nets.attach("t" * 64, mode=f"container:{web.id}", ports=parse_port_specs(["80"]))


def test_dns_forwards_other_names_to_the_upstream(nets, boxes, monkeypatch):
    from dnslib import A, DNSRecord, QTYPE, RR
    import threading

    upstream = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    upstream.bind(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        upstream.settimeout(0.2)
        while not stop.is_set():
            try:
                data, addr = upstream.recvfrom(4096)
            except OSError:
                continue
            q = DNSRecord.parse(data)
            r = q.reply()
            r.add_answer(RR(q.q.qname, QTYPE.A, rdata=A("192.0.2.123"), ttl=60))
            upstream.sendto(r.pack(), addr)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    monkeypatch.setenv("DOCKYARD_DNS_UPSTREAM", f"127.0.0.1:{upstream.getsockname()[1]}")
    try:
        nets.create("fwd")
        box = boxes("asker", mode="fwd")
        out = box.sh(f"{BB} nslookup example.test 127.0.0.11")
        assert "192.0.2.123" in out.stdout, out.stdout + out.stderr
    finally:
        stop.set()
        t.join()
        upstream.close()
