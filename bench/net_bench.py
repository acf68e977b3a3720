"""Throughput and added latency through a published port: dockyard vs docker vs podman.

The same nginx (the host's binary and its libraries, packed as a rootfs) serves a 4 KiB file in
a container; ``wrk`` (Debian's) loads it on 127.0.0.1:<published port>, the way a user on the
host reaches a published service. The baseline is wrk against the container's own address
(bridge, no NAT). Ratios are against that baseline, measured in the same run.

    apt-get install wrk nginx-light      # (with a policy-rc.d that stops nginx from starting)
    .venv/bin/python bench/net_bench.py [--duration 5] [--connections 16]

dockyard runs the container through ``dockyard run`` when the engine is there; otherwise it
attaches a network namespace with ``NetworkService.attach`` and starts nginx in it with
``nsenter`` + ``chroot`` (the data path, netns + veth + bridge + DNAT, is the same).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NGINX_CONF = """user root;
daemon off;
worker_processes 1;
pid /tmp/nginx.pid;
error_log stderr;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path /tmp/cb; proxy_temp_path /tmp/px; fastcgi_temp_path /tmp/fc;
    uwsgi_temp_path /tmp/uw; scgi_temp_path /tmp/sc;
    sendfile on; tcp_nopush on; keepalive_requests 100000;
    server { listen 80; root /www; }
}
"""
IMAGE = "dyneBench/nginx".lower()


def sh(*cmd: str, check: bool = True, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=check, **kw)


def build_rootfs(out: Path) -> Path:
    """nginx + the shared libraries it links, a config and a 4 KiB page, as a rootfs tar."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    libs = re.findall(r"(/\S+\.so[.\d]*)", sh("ldd", nginx).stdout)
    tar_path = out / "nginx-rootfs.tar"
    with tarfile.open(tar_path, "w") as tf:
        for d in ("tmp", "www", "etc/nginx", "var/log/nginx", "var/lib/nginx", "run"):
            ti = tarfile.TarInfo(d)
            ti.type, ti.mode = tarfile.DIRTYPE, 0o1777 if d == "tmp" else 0o755
            tf.addfile(ti)
        tf.add(nginx, "usr/sbin/nginx")
        for lib in libs:
            tf.add(os.path.realpath(lib), lib.lstrip("/"))
        for name, text in (("etc/nginx/nginx.conf", NGINX_CONF), ("www/index.html", "x" * 4096),
                           ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"),
                           ("etc/group", "root:x:0:\n")):
            data = text.encode()
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode = len(data), 0o644
            import io

            tf.addfile(ti, io.BytesIO(data))
    return tar_path


def wrk(url: str, duration: int, connections: int) -> dict[str, float]:
    out = sh("wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", url,
             timeout=duration + 30).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 1e-3, "ms": 1.0, "s": 1000.0}[p50.group(2)]
    return {"rps": rps, "p50_ms": float(p50.group(1)) * scale}


def _median(runs: list[dict[str, float]]) -> dict[str, float]:
    import statistics

    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def wait_http(url: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if subprocess.run(["curl", "-sf", "-o", "/dev/null", url]).returncode == 0:
            return
        time.sleep(0.2)
    raise RuntimeError(f"{url} never answered")


class Dockyard:
    name = "dockyard"

    def __init__(self, tar: Path, work: Path, port: int) -> None:
        self.tar, self.work, self.port = tar, work, port
        self.root = work / "dyroot"
        self.proc: subprocess.Popen | None = None
        self.cid = "b" * 64
        self.client = None
        self.via = ""

    def start(self) -> str:
        """Returns the container's own IP (for the no-NAT baseline)."""
        cli = [sys.executable, "-m", "dockyard", "--root", str(self.root)]
        probe = subprocess.run([*cli, "run", "--help"], capture_output=True, text=True)
        if probe.returncode == 0:
            sh(*cli, "image", "import", str(self.tar), IMAGE)
            cid = sh(*cli, "run", "-d", "-p", f"{self.port}:80", IMAGE,
                     "/usr/sbin/nginx").stdout.strip()
            self.cid, self.via = cid, "dockyard run"
            info = json.loads(sh(*cli, "inspect", cid).stdout)[0]
            return info["NetworkSettings"]["IPAddress"]
        from dockyard import Client
        from dockyard.network.ports import parse_port_specs

        rootfs = self.work / "dyrootfs"
        rootfs.mkdir(exist_ok=True)
        with tarfile.open(self.tar) as tf:
            tf.extractall(rootfs)
        self.client = Client(self.root)
        att = self.client.networks.attach(self.cid, name="bench", mode="bridge",
                                          ports=parse_port_specs([f"{self.port}:80"]))
        self.proc = subprocess.Popen(["nsenter", f"--net={att.netns_path}", "chroot", str(rootfs),
                                      "/usr/sbin/nginx"], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        self.via = "NetworkService.attach + nsenter (no engine yet)"
        return att.ip

    def stop(self) -> None:
        if self.proc is not None:
            import signal

            os.killpg(self.proc.pid, signal.SIGKILL)  # nginx's master and worker
            self.proc.wait()
            self.client.networks.release(self.cid)
            self.client.networks.cleanup()
            self.client.close()
        else:
            cli = [sys.executable, "-m", "dockyard", "--root", str(self.root)]
            subprocess.run([*cli, "rm", "-f", self.cid], capture_output=True)


class Peer:
    """docker or podman, from the same rootfs tar."""

    def __init__(self, tool: str, tar: Path, port: int) -> None:
        self.name = self.tool = tool
        self.tar, self.port = tar, port
        self.cid = ""

    def start(self) -> str:
        sh(self.tool, "import", str(self.tar), f"{IMAGE}:latest")
        self.cid = sh(self.tool, "run", "-d", "-p", f"{self.port}:80", f"{IMAGE}:latest",
                      "/usr/sbin/nginx").stdout.strip()
        fmt = "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}"
        return sh(self.tool, "inspect", "-f", fmt, self.cid).stdout.strip()

    def stop(self) -> None:
        if self.cid:
            subprocess.run([self.tool, "rm", "-f", self.cid], capture_output=True)
        subprocess.run([self.tool, "rmi", f"{IMAGE}:latest"], capture_output=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--peers", default="docker,podman")
    ap.add_argument("--rounds", type=int, default=3, help="direct/published pairs; medians are shown")
    args = ap.parse_args()
    for tool in ("wrk", "nginx", "curl"):
        if not shutil.which(tool):
            print(f"{tool} is missing: apt-get install wrk nginx-light curl", file=sys.stderr)
            return 2
    work = Path(tempfile.mkdtemp(prefix="dy-netbench-"))
    tar = build_rootfs(work)
    runners = [Dockyard(tar, work, 18480)]
    for i, tool in enumerate(t for t in args.peers.split(",") if t):
        if shutil.which(tool):
            runners.append(Peer(tool, tar, 18481 + i))
        else:
            print(f"({tool} not installed: skipped)")
    rows = []
    try:
        for r in runners:
            try:
                ip = r.start()
                published = f"http://127.0.0.1:{r.port}/index.html"
                direct = f"http://{ip}/index.html"
                wait_http(published)
                wait_http(direct)
                wrk(published, 1, args.connections)  # warm up
                ds, ps = [], []
                for _ in range(args.rounds):  # interleaved: a noisy neighbour hits both alike
                    ds.append(wrk(direct, args.duration, args.connections))
                    ps.append(wrk(published, args.duration, args.connections))
                rows.append((r.name, _median(ds), _median(ps)))
            finally:
                r.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nnginx 4 KiB page, wrk -t1 -c{args.connections} -d{args.duration}s, median of "
          f"{args.rounds} interleaved rounds; "
          f"dockyard via {runners[0].via}")
    print(f"{'engine':10} {'direct req/s':>13} {'published req/s':>16} {'kept':>6} "
          f"{'p50 direct':>11} {'p50 published':>14} {'p50 x':>6}")
    for name, d, p in rows:
        print(f"{name:10} {d['rps']:13.0f} {p['rps']:16.0f} {p['rps'] / d['rps']:6.0%} "
              f"{d['p50_ms']:9.3f}ms {p['p50_ms']:12.3f}ms {p['p50_ms'] / d['p50_ms']:6.2f}")
    base = next((p["rps"] for n, _, p in rows if n == "dockyard"), None)
    if base:
        for name, _, p in rows:
            if name != "dockyard":
                print(f"dockyard published throughput / {name}'s: {base / p['rps']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
