"""Helpers of the orchestrator's tests: polling with deadlines, HTTP through published ports,
the host objects a swarm may leave behind, and another network namespace to send traffic from."""
from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable


def wait_for(pred: Callable[[], Any], timeout: float = 30.0, what: str = "condition", interval: float = 0.1) -> Any:
    """Poll ``pred`` until it returns something truthy; fail with ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {value!r})")
        time.sleep(interval)


def free_port() -> int:
    from dockyard.network.firewall import published_host_ports

    taken = {p for _, _, p in published_host_ports()}
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in taken:
            return port


def http_get(port: int, path: str = "/", host: str = "127.0.0.1", timeout: float = 5.0) -> str:
    with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=timeout) as resp:
        return resp.read().decode()


def manager_processes(root: Path) -> list[int]:
    """PIDs of manager processes of this state root (from /proc: not trusting our own files)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"dockyard.cluster.manager" in cmd and str(root).encode() in cmd:
            found.append(int(pid))
    return found


def leftovers(client: Any, root: Path) -> list[str]:
    from dockyard.cluster.ingress import Ingress

    found = [f"manager process {pid}" for pid in manager_processes(root)]
    found += [f"container {c.name}" for c in client.containers.list(all=True)]
    found += [f"iptables: {r}" for r in Ingress(client).leftovers()]
    found += [f"network {n.name}" for n in client.networks.list() if n.name == "ingress"]
    return found


class OtherNamespace:
    """A network namespace linked to the host by a veth pair (another machine, for traffic
    that does not come from the host's own stack)."""

    def __init__(self, tag: str) -> None:
        n = int(tag, 16) % 4096
        self.name = f"dyct{tag}"
        self.host_if, self.peer_if = f"dyct{tag}a", f"dyct{tag}b"
        base = f"100.{64 + n // 1024}.{(n % 1024) // 4}.{(n % 4) * 64}"
        a, b, c, d = (int(x) for x in base.split("."))
        self.host_ip, self.ip = f"{a}.{b}.{c}.{d + 1}", f"{a}.{b}.{c}.{d + 2}"
        for cmd in (["ip", "netns", "add", self.name],
                    ["ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.peer_if],
                    ["ip", "link", "set", self.peer_if, "netns", self.name],
                    ["ip", "addr", "add", f"{self.host_ip}/26", "dev", self.host_if],
                    ["ip", "link", "set", self.host_if, "up"],
                    ["ip", "-n", self.name, "addr", "add", f"{self.ip}/26", "dev", self.peer_if],
                    ["ip", "-n", self.name, "link", "set", self.peer_if, "up"],
                    ["ip", "-n", self.name, "link", "set", "lo", "up"]):
            subprocess.run(cmd, check=True, capture_output=True)

    def get(self, port: int, path: str = "/") -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", "netns", "exec", self.name, "curl", "-sS", "-m", "5",
                               f"http://{self.host_ip}:{port}{path}"],
                              capture_output=True, text=True, timeout=30)

    def close(self) -> None:
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)


def tasks_of(client: Any, name: str) -> list[Any]:
    """The running task containers of a service."""
    return client.containers.list(filters={"label": [f"com.docker.swarm.service.name={name}"]})
