#!/usr/bin/env python3
"""Build benchmark: dockyard beside docker (classic and BuildKit) and podman.

The app: FROM busybox:local, two RUN steps, a 10 MiB COPY, ENV and CMD (the anchors' build
context, /tmp/anchors/buildctx, made here if missing). Three figures per tool, each the median
wall time of whole commands (CLI start-up included):

* cold    — ``build --no-cache`` every time;
* cached  — the same build again, every step from the cache;
* change  — one byte of the copied file changed before each build (the COPY and what follows
            it rebuild, the RUN steps before it come from the cache).

Usage: ``python bench/build_bench.py [--runs N] [--tools dockyard,buildkit,classic,podman]``.
Prints a table and the ratio of each tool to BuildKit (< 1 means faster than BuildKit).
Not part of the test run.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOCKYARD = os.environ.get("DOCKYARD_BIN") or str(REPO / ".venv" / "bin" / "dockyard")
DOCKERFILE = """FROM busybox:local
RUN mkdir -p /app/data && echo hello > /app/data/a.txt && seq 1 1000 > /app/data/seq.txt
RUN for i in 1 2 3 4 5; do echo "line $i" >> /app/data/lines.txt; done && wc -l /app/data/lines.txt
COPY blob10m /app/blob10m
ENV APP_MODE=bench APP_DIR=/app
CMD ["cat", "/app/data/a.txt"]
"""


def sh(cmd: list[str], env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=env, capture_output=True, check=check)


def timed(cmd: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr.decode(errors='replace')[-2000:]}")
    return elapsed


def make_context(work: Path) -> Path:
    ctx = work / "ctx"
    ctx.mkdir()
    src = Path("/tmp/anchors/buildctx/blob10m")
    if src.exists():
        shutil.copy(src, ctx / "blob10m")
    else:
        (ctx / "blob10m").write_bytes(os.urandom(10 << 20))
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    (ctx / "Containerfile.podman").write_text(DOCKERFILE.replace("FROM busybox:local", "FROM localhost/busybox:local"))
    return ctx


def poke(ctx: Path, n: int) -> None:
    """Change one byte of the copied file (a different byte value each run)."""
    with open(ctx / "blob10m", "r+b") as f:
        f.seek(4096)
        f.write(bytes([n % 256]))


class Tool:
    def __init__(self, name: str, cmd: list[str], env: dict[str, str], cold_flag: str = "--no-cache") -> None:
        self.name, self.cmd, self.env, self.cold_flag = name, cmd, env, cold_flag

    def build(self, ctx: Path, cold: bool) -> list[str]:
        extra = [self.cold_flag] if cold else []
        return [*self.cmd, *extra, str(ctx)]


def tools(ctx: Path, work: Path, wanted: list[str]) -> list[Tool]:
    out = []
    base_env = dict(os.environ)
    if "dockyard" in wanted:
        root = work / "dockyard-root"
        env = dict(base_env, DOCKYARD_ROOT=str(root))
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        # the same base image as docker's (docker save | dockyard load), else the anchors' rootfs
        if shutil.which("docker") and sh(["docker", "image", "inspect", "busybox:local"], check=False).returncode == 0:
            save = subprocess.Popen(["docker", "save", "busybox:local"], stdout=subprocess.PIPE)
            subprocess.run([DOCKYARD, "load", "-q"], stdin=save.stdout, env=env, check=True, capture_output=True)
            save.wait()
        else:
            subprocess.run([DOCKYARD, "image", "import", "-c", 'CMD ["sh"]', "-c", "ENV PATH=/bin",
                            "/tmp/anchors/bb.tar", "busybox:local"], env=env, check=True, capture_output=True)
        # byte-compile once, as an installed package is: start-up must not include compiling
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "dockyard")], check=False,
                       capture_output=True)
        out.append(Tool("dockyard", [DOCKYARD, "build", "-q", "-t", "bench-dockyard"], env))
    if shutil.which("docker") and sh(["docker", "info"], check=False).returncode == 0:
        docker20 = "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else "docker"
        if "buildkit" in wanted:
            out.append(Tool("buildkit", [docker20, "build", "-q", "-t", "bench-buildkit"],
                            dict(base_env, DOCKER_BUILDKIT="1")))
        if "classic" in wanted:
            out.append(Tool("classic", ["docker", "build", "-q", "-t", "bench-classic"],
                            dict(base_env, DOCKER_BUILDKIT="0")))
    if "podman" in wanted and shutil.which("podman"):
        out.append(Tool("podman", ["podman", "build", "-q", "-f", str(ctx / "Containerfile.podman"),
                                   "-t", "bench-podman"], base_env))
    return out


def measure(tool: Tool, ctx: Path, runs: int) -> dict[str, float]:
    res: dict[str, float] = {}
    timed(tool.build(ctx, cold=True), tool.env)  # warm-up (pulls nothing: every base is local)
    res["cold"] = statistics.median(timed(tool.build(ctx, cold=True), tool.env) for _ in range(runs))
    timed(tool.build(ctx, cold=False), tool.env)
    res["cached"] = statistics.median(timed(tool.build(ctx, cold=False), tool.env) for _ in range(runs))
    times = []
    for i in range(runs):
        poke(ctx, i + 1)
        times.append(timed(tool.build(ctx, cold=False), tool.env))
    res["change"] = statistics.median(times)
    return res


def remove_dangling_bench_images() -> None:
    """The classic builder leaves each rebuilt image behind, untagged: remove those of this app."""
    if not shutil.which("docker"):
        return
    ids = sh(["docker", "images", "-q", "--filter", "dangling=true"], check=False).stdout.decode().split()
    for image_id in ids:
        env = sh(["docker", "image", "inspect", "-f", "{{json .Config.Env}}", image_id], check=False).stdout
        if b"APP_MODE=bench" in env:
            sh(["docker", "rmi", image_id], check=False)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--tools", default="dockyard,buildkit,classic,podman")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="build-bench-"))
    try:
        ctx = make_context(work)
        results = {}
        for tool in tools(ctx, work, args.tools.split(",")):
            print(f"measuring {tool.name} ...", file=sys.stderr, flush=True)
            results[tool.name] = measure(tool, ctx, args.runs)
        ref = results.get("buildkit")
        print(f"{'tool':<10}{'cold s':>10}{'cached s':>10}{'change s':>10}" + ("   ratio to BuildKit (cold/cached/change)" if ref else ""))
        for name, r in results.items():
            line = f"{name:<10}{r['cold']:>10.3f}{r['cached']:>10.3f}{r['change']:>10.3f}"
            if ref:
                line += "   " + " / ".join(f"{r[k] / ref[k]:.2f}" for k in ("cold", "cached", "change"))
            print(line)
    finally:
        if "dockyard" in args.tools:
            root = work / "dockyard-root"
            if root.exists():
                subprocess.run([DOCKYARD, "builder", "prune", "-a", "-f"], env=dict(os.environ, DOCKYARD_ROOT=str(root)),
                               capture_output=True)
        for tag in ("bench-buildkit", "bench-classic"):
            subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)
        remove_dangling_bench_images()
        subprocess.run(["podman", "rmi", "-f", "bench-podman"], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
