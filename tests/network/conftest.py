"""Fixtures for networking tests: stand-in containers (a netns from ``attach`` plus busybox
processes run in it), a second host (a netns on a veth link), and a leak check after each test.

Until the engine runs real containers, a "box" is exactly what the runtime would get: the
network namespace ``attach`` made, with busybox run inside it by ``nsenter`` and, for name
lookups, the ``/etc/resolv.conf`` and ``/etc/hosts`` that ``attach`` returned bind-mounted in a
private mount namespace.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

BUSYBOX = shutil.which("busybox") or "/bin/busybox"

if os.geteuid() != 0 or not shutil.which("iptables") or not os.path.exists(BUSYBOX):
    pytest.skip("networking tests need root, iptables and busybox", allow_module_level=True)


class Box:
    """A stand-in container: the network namespace ``attach`` gave it, busybox inside."""

    def __init__(self, svc: Any, workdir: Path, cid: str, name: str, **kw: Any) -> None:
        self.svc = svc
        self.id = cid
        self.name = name
        self.att = svc.attach(cid, name=name, **kw)
        self.dir = workdir / cid[:12]
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "resolv.conf").write_text(self.att.resolv_conf)
        (self.dir / "hosts").write_text(self.att.hosts)
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def ip(self) -> str:
        assert self.att.ip
        return self.att.ip

    def _argv(self, script: str) -> list[str]:
        assert self.att.netns_path
        setup = (f"mount --bind {self.dir}/resolv.conf /etc/resolv.conf && "
                 f"mount --bind {self.dir}/hosts /etc/hosts && ")
        return ["nsenter", f"--net={self.att.netns_path}", "unshare", "-m", "--propagation",
                "private", "sh", "-c", setup + script]

    def sh(self, script: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self._argv(script), capture_output=True, text=True, timeout=timeout)

    def spawn(self, script: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(self._argv("exec " + script), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        self.procs.append(proc)
        return proc

    def httpd(self, port: int, text: str) -> None:
        www = self.dir / "www"
        www.mkdir(exist_ok=True)
        (www / "index.html").write_text(text)
        self.spawn(f"{BUSYBOX} httpd -f -p {port} -h {www}")
        wait_for(lambda: self.sh(f"{BUSYBOX} nc -w 1 127.0.0.1 {port} </dev/null").returncode == 0)

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, 9)
                p.wait()
        self.procs.clear()


def wait_for(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


@pytest.fixture
def nets(client: Any) -> Any:
    """The network service of the test's root; afterwards nothing of any container may be left,
    and the explicit teardown must leave no host object of the root at all (the default bridge
    stays up between containers until then, as docker0 does)."""
    svc = client.networks
    yield svc
    try:
        # containers are released by now: removing the networks must leave nothing behind but
        # the default bridge's own bridge and rules
        for n in svc.list():
            if not n.builtin:
                svc.remove(n.id)
        leftover = svc.leaks()
    finally:
        svc.cleanup()
    assert svc.host_objects() == []
    assert leftover == [], f"the test left host objects behind: {leftover}"


@pytest.fixture
def boxes(nets: Any, tmp_path: Path) -> Any:
    """``boxes("web", mode="mynet", ...)`` makes a Box; all are released at the end."""
    made: list[Box] = []

    def make(name: str, **kw: Any) -> Box:
        cid = os.urandom(32).hex()
        box = Box(nets, tmp_path / "boxes", cid, name, **kw)
        made.append(box)
        return box

    yield make
    for box in made:
        box.stop()
        nets.release(box.id)


class SecondHost:
    """Another machine: a netns linked to this host by a veth pair on 198.18.x.0/30
    (the benchmarking range, so nothing real is ever addressed)."""

    def __init__(self, tag: str, workdir: Path) -> None:
        from dockyard.network import netns
        from pyroute2 import IPRoute

        n = int(tag, 16) % 16384
        base = f"198.{18 + n // 8192}.{(n % 8192) // 32}.{(n % 32) * 8}"
        a, b, c, d = (int(x) for x in base.split("."))
        self.host_ip = f"{a}.{b}.{c}.{d + 1}"
        self.ip = f"{a}.{b}.{c}.{d + 2}"
        self.path = workdir / "host2.netns"
        self.ifname = f"th{tag}a"
        netns.create(self.path)
        with IPRoute() as ipr:
            ipr.link("add", ifname=self.ifname, kind="veth", peer={"ifname": f"th{tag}b"})
            fd = os.open(self.path, os.O_RDONLY)
            try:
                ipr.link("set", index=ipr.link_lookup(ifname=f"th{tag}b")[0], net_ns_fd=fd)
            finally:
                os.close(fd)
            idx = ipr.link_lookup(ifname=self.ifname)[0]
            ipr.addr("add", index=idx, address=self.host_ip, prefixlen=29)
            ipr.link("set", index=idx, state="up")
        with IPRoute(netns=str(self.path)) as nsr:
            idx = nsr.link_lookup(ifname=f"th{tag}b")[0]
            nsr.addr("add", index=idx, address=self.ip, prefixlen=29)
            nsr.link("set", index=idx, state="up")
            nsr.link("set", index=nsr.link_lookup(ifname="lo")[0], state="up")
        self.procs: list[subprocess.Popen[bytes]] = []

    def sh(self, script: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["nsenter", f"--net={self.path}", "sh", "-c", script],
                              capture_output=True, text=True, timeout=timeout)

    def httpd(self, port: int, www: Path, text: str) -> None:
        www.mkdir(parents=True, exist_ok=True)
        (www / "index.html").write_text(text)
        self.procs.append(subprocess.Popen(
            ["nsenter", f"--net={self.path}", BUSYBOX, "httpd", "-f", "-p", str(port), "-h",
             str(www)], start_new_session=True))
        wait_for(lambda: self.sh(f"{BUSYBOX} nc -w 1 127.0.0.1 {port} </dev/null").returncode == 0)

    def close(self) -> None:
        from dockyard.network import links, netns

        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, 9)
                p.wait()
        links.delete_link(self.ifname)
        netns.remove(self.path)


@pytest.fixture
def second_host(nets: Any, tmp_path: Path) -> Any:
    host = SecondHost(nets.names.tag, tmp_path)
    yield host
    host.close()


def free_ports(count: int) -> list[int]:
    """Ports free on both families right now (a V6ONLY probe, then IPv4), all different."""
    import socket

    found: list[int] = []
    while len(found) < count:
        with socket.socket(socket.AF_INET6) as s6:
            s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s6.bind(("::", 0))
            port = s6.getsockname()[1]
            with socket.socket() as s4:
                try:
                    s4.bind(("0.0.0.0", port))
                except OSError:
                    continue
        if port not in found:
            found.append(port)
    return found
