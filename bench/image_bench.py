#!/usr/bin/env python3
"""Image load/save throughput beside docker, podman and skopeo, as ratios (one run, same files).

Makes a ~1 GiB, 8-layer image (8 x 128 MiB of random data, uncompressed layers) as a
docker-archive, then times, median of N runs each:
  load:  dockyard image load | podman load | docker load | skopeo copy docker-archive: -> oci:
  save:  dockyard image save | podman save | docker save
and the peak RSS of the dockyard process (it must stay flat: under 64 MiB whatever the size).

    .venv/bin/python bench/image_bench.py [--layers 8] [--layer-mib 128] [--runs 3]
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

VENV_DY = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "dockyard"


def make_archive(path: Path, layers: int, layer_mib: int, tag: str) -> int:
    """A docker-archive with ``layers`` random uncompressed layers; returns its size."""
    diff_ids, names = [], []
    with open(path, "wb") as out, tarfile.open(fileobj=out, mode="w|") as tf:
        for i in range(layers):
            payload_name = f"l{i}"
            data = os.urandom(layer_mib << 20)
            layer = io.BytesIO()
            with tarfile.open(fileobj=layer, mode="w") as lt:
                ti = tarfile.TarInfo(payload_name)
                ti.size = len(data)
                lt.addfile(ti, io.BytesIO(data))
            blob = layer.getvalue()
            d = hashlib.sha256(blob).hexdigest()
            diff_ids.append(f"sha256:{d}")
            ti = tarfile.TarInfo(f"{d}/layer.tar")
            ti.size = len(blob)
            tf.addfile(ti, io.BytesIO(blob))
            names.append(f"{d}/layer.tar")
        cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
                          "created": "2024-01-01T00:00:00Z",
                          "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
        cname = hashlib.sha256(cfg).hexdigest() + ".json"
        for name, data in ((cname, cfg),
                           ("manifest.json", json.dumps([{"Config": cname, "RepoTags": [tag], "Layers": names}]).encode())):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    return path.stat().st_size


def timed(cmd: list[str] | str, runs: int, before: str | None = None) -> tuple[float, float]:
    """Median wall time and the command's own peak RSS in MiB (os.wait4: that process tree only)."""
    times, peaks = [], []
    for _ in range(runs):
        if before:
            subprocess.run(before, shell=True, capture_output=True)
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, shell=isinstance(cmd, str), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(p.pid, 0)
        dt = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode != 0:
            raise SystemExit(f"failed: {cmd}\n{p.stderr.read().decode()[-2000:] if p.stderr else ''}")
        times.append(dt)
        peaks.append(usage.ru_maxrss / 1024)
    return statistics.median(times), max(peaks)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--layer-mib", type=int, default=128)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    tag = "dockyard-bench/huge:1"
    work = Path(tempfile.mkdtemp(prefix="dockyard-imgbench-"))
    root = work / "root"
    try:
        archive = work / "huge.tar"
        size = make_archive(archive, args.layers, args.layer_mib, tag)
        mib = size / (1 << 20)
        print(f"image: {args.layers} layers, {mib:.0f} MiB docker-archive; median of {args.runs} runs\n")
        dy = f"{VENV_DY} --root {root}"
        rows: list[tuple[str, str, float, float]] = []
        load = {
            "dockyard": (f"{dy} image load -q -i {archive}", f"{dy} rmi -f {tag}"),
            "podman": (f"podman load -q -i {archive}", f"podman rmi -f {tag}"),
            "docker": (f"docker load -q -i {archive}", f"docker rmi -f {tag}"),
            "skopeo": (f"skopeo copy -q docker-archive:{archive} oci:{work}/oci:1", f"rm -rf {work}/oci"),
        }
        save = {
            "dockyard": f"{dy} image save -o {work}/out-dy.tar {tag}",
            "podman": f"podman save -q -o {work}/out-podman.tar {tag}",
            "docker": f"docker save -o {work}/out-docker.tar {tag}",
        }
        available = {k for k in load if k == "dockyard" or shutil.which(k)}
        if "docker" in available and subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
            available.discard("docker")
        for tool, (cmd, cleanup) in load.items():
            if tool in available:
                t, peak = timed(cmd, args.runs, before=cleanup)
                rows.append(("load", tool, t, peak))
        for tool, cmd in save.items():
            if tool in available:
                t, peak = timed(cmd, args.runs, before=f"rm -f {work}/out-{tool}.tar")
                rows.append(("save", tool, t, peak))
        print(f"{'op':<6}{'tool':<10}{'median s':>10}{'MiB/s':>10}{'peak MiB':>10}{'dockyard speed-up':>20}")
        for op in ("load", "save"):
            mine = next(t for o, tool, t, _ in rows if o == op and tool == "dockyard")
            for o, tool, t, peak in rows:
                if o != op:
                    continue
                ratio = "" if tool == "dockyard" else f"{t / mine:.2f}x"
                print(f"{op:<6}{tool:<10}{t:>10.2f}{mib / t:>10.0f}{peak:>10.1f}{ratio:>20}")
    finally:
        for cmd in (["podman", "rmi", "-f", tag], ["docker", "rmi", "-f", tag]):
            if shutil.which(cmd[0]):
                subprocess.run(cmd, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
