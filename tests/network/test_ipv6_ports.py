"""Published ports on IPv6, as dockerd 20.10 does them: ``-p H:C`` also serves ``[::]:H`` through
a userspace proxy (ip6tables cannot DNAT to an IPv4 container), the IPv4 side stays kernel DNAT;
``-p 127.0.0.1:H:C`` is IPv4 only, ``-p [::1]:H:C`` IPv6 only. Also the PORTS column and the
``port`` ordering docker's CLI uses."""
from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys

import pytest

from dockyard.errors import Conflict
from dockyard.network import proxy
from dockyard.network.ports import ipv6_available, natural_key, parse_port_specs
from tests.network.conftest import free_ports

pytestmark = pytest.mark.skipif(not ipv6_available(), reason="the host has no IPv6")

UDP_ECHO = ("import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
            "s.bind(('0.0.0.0', {port}))\nwhile True:\n d, a = s.recvfrom(65535); s.sendto(b'echo:' + d, a)")


def _free_port() -> int:
    return free_ports(1)[0]


def _curl(url: str, *extra: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["curl", "-s", "-m", "5", *extra, url], capture_output=True, timeout=20)


def _udp(addr: str, port: int, data: bytes) -> bytes:
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    with socket.socket(fam, socket.SOCK_DGRAM) as s:
        s.settimeout(3)
        s.sendto(data, (addr, port))
        return s.recvfrom(65535)[0]


def _proxies(nets) -> list[int]:
    return proxy.running(nets.names.tag)


def test_ipv6_side_is_proxied_tcp_and_udp_then_released(nets, boxes, tmp_path):
    tport, uport, dead = _free_port(), _free_port(), _free_port()
    web = boxes("web", ports=parse_port_specs([f"{tport}:80", f"{uport}:53/udp", f"{dead}:81"]))
    web.httpd(80, "six\n")
    web.spawn(f"{sys.executable} -c \"{UDP_ECHO.format(port=53)}\"")
    assert [(b.proto, b.host_ip, b.host_port) for b in web.att.ports] == [
        ("udp", "", uport), ("udp", "::", uport), ("tcp", "", tport), ("tcp", "::", tport),
        ("tcp", "", dead), ("tcp", "::", dead)]
    assert _curl(f"http://[::1]:{tport}/").stdout == b"six\n"
    assert _curl(f"http://127.0.0.1:{tport}/").stdout == b"six\n"
    # a bigger body arrives intact through the splice path
    big = os.urandom(3 << 20)
    (web.dir / "www" / "big").write_bytes(big)
    got = _curl(f"http://[::1]:{tport}/big").stdout
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(big).hexdigest()
    # UDP: replies come back to each client from the proxy's socket
    deadline_tries = 20
    for _ in range(deadline_tries):
        try:
            assert _udp("::1", uport, b"ping") == b"echo:ping"
            break
        except TimeoutError:
            continue
    else:
        raise AssertionError("no UDP echo over IPv6")
    assert _udp("::1", uport, b"again") == b"echo:again"
    (pid,) = _proxies(nets)
    # a port nothing serves in the container: the client is closed at once (curl: empty
    # reply or reset), not left hanging until its timeout (28)
    assert _curl(f"http://[::1]:{dead}/").returncode in (52, 56)
    web.stop()
    nets.release(web.id)
    assert _proxies(nets) == [] and not os.path.exists(f"/proc/{pid}/cmdline")
    for fam, addr in ((socket.AF_INET6, "::"), (socket.AF_INET, "0.0.0.0")):
        with socket.socket(fam) as s:  # the ports are free again the moment release returns
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # (curl's TIME_WAITs)
            s.bind((addr, tport))


def test_a_taken_ipv6_port_fails_before_anything_is_made(nets, boxes):
    port = _free_port()
    with socket.socket(socket.AF_INET6) as s:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind(("::", port))
        s.listen()
        with pytest.raises(Conflict) as err:
            boxes("web", ports=parse_port_specs([f"{port}:80"]))
        msg = str(err.value)
        assert msg.startswith("driver failed programming external connectivity on endpoint web (")
        assert msg.endswith(f"): Error starting userland proxy: listen tcp6 [::]:{port}: bind: "
                            "address already in use")
        assert nets.store.sandboxes() == [] and nets.store.endpoints() == [] and _proxies(nets) == []
        assert nets.leaks() == []
        # 127.0.0.1 is IPv4 only: the IPv6 listener does not matter
        local = boxes("local", ports=parse_port_specs([f"127.0.0.1:{port}:80"]))
        assert [(b.host_ip, b.host_port) for b in local.att.ports] == [("127.0.0.1", port)]
        assert _proxies(nets) == []
    nets.release(local.id)
    first = boxes("first", ports=parse_port_specs([f"[::]:{port}:80"]))
    assert [b.host_ip for b in first.att.ports] == ["::"]
    with pytest.raises(Conflict, match=rf"Bind for :::{port} failed: port is already allocated"):
        boxes("second", ports=parse_port_specs([f"{port}:80"]))


def test_explicit_ipv6_address_is_ipv6_only(nets, boxes):
    port = _free_port()
    web = boxes("web", ports=parse_port_specs([f"[::1]:{port}:80"]))
    web.httpd(80, "loop6\n")
    assert [(b.host_ip, b.host_port, b.host_address) for b in web.att.ports] == [
        ("::1", port, f"[::1]:{port}")]
    assert nets.settings(web.id)["Ports"] == {"80/tcp": [{"HostIp": "::1", "HostPort": str(port)}]}
    assert _curl(f"http://[::1]:{port}/").stdout == b"loop6\n"
    assert _curl(f"http://127.0.0.1:{port}/").returncode != 0  # no IPv4 DNAT rule
    assert nets.firewall.count_owner(web.id) == 0
    with pytest.raises(Conflict, match="listen tcp6 \\[2001:db8::1\\]:.*cannot assign requested address"):
        boxes("bad", ports=parse_port_specs([f"[2001:db8::1]:{port}:80"]))


def test_ports_column_is_the_docker_clis():
    from dockyard.engine.view import format_ports

    ports = [{"PrivatePort": p, "Type": "tcp"} for p in (7002, 7000, 7001)]
    for ip in ("0.0.0.0", "::"):
        ports += [{"IP": ip, "PrivatePort": p, "PublicPort": p, "Type": "tcp"} for p in (18083, 18084)]
        ports += [{"IP": ip, "PrivatePort": 90, "PublicPort": 18090, "Type": "tcp"}]
    ports += [{"IP": "127.0.0.1", "PrivatePort": 18085, "PublicPort": 18085, "Type": "tcp"},
              {"IP": "::1", "PrivatePort": 80, "PublicPort": 8080, "Type": "udp"}]
    assert format_ports(ports) == (
        "7000-7002/tcp, 0.0.0.0:18083-18084->18083-18084/tcp, [::]:18083-18084->18083-18084/tcp, "
        "127.0.0.1:18085->18085/tcp, [::1]:8080->80/udp, 0.0.0.0:18090->90/tcp, [::]:18090->90/tcp")


def test_port_lines_sort_naturally():
    lines = ["443/tcp -> [::]:8443", "80/tcp -> [::]:8080", "443/tcp -> 0.0.0.0:8443",
             "80/tcp -> 0.0.0.0:8080", "9/udp -> 0.0.0.0:9"]
    assert sorted(lines, key=natural_key) == [
        "9/udp -> 0.0.0.0:9", "80/tcp -> 0.0.0.0:8080", "80/tcp -> [::]:8080",
        "443/tcp -> 0.0.0.0:8443", "443/tcp -> [::]:8443"]
