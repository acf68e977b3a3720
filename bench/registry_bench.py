"""Push and pull a 200 MB, 4-layer image with skopeo: dockyard's registry vs the CNCF registry.

Both servers run side by side on free loopback ports with their own temporary storage (the CNCF
registry already listening on :5000 is never touched). Each round makes a new image (fresh random
layers, so neither skopeo's blob-info cache nor a cross-repository mount can skip the upload),
pushes it to both registries and pulls it back into a fresh OCI layout. The best of ``--rounds``
is reported with each server's peak resident memory (VmHWM) and dockyard/CNCF ratios (> 1 means
dockyard is faster).

    .venv/bin/python bench/registry_bench.py [--size-mb 200] [--layers 4] [--rounds 3]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import hashlib
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def make_oci_layout(dest: Path, size_mb: int, layers: int) -> int:
    """An OCI image layout with ``layers`` incompressible tar layers totalling ``size_mb`` MB."""
    blobs = dest / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    (dest / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    descs, diff_ids, total = [], [], 0
    per_layer = size_mb * 1_000_000 // layers
    for i in range(layers):
        payload = dest / f"payload{i}"
        with open(payload, "wb") as f:
            left = per_layer
            while left:
                n = min(left, 1 << 20)
                f.write(os.urandom(n))
                left -= n
        tmp = dest / f"layer{i}.tar"
        with tarfile.open(tmp, "w") as tf:
            tf.add(payload, arcname=f"data{i}.bin")
        payload.unlink()
        digest = sha256_file(tmp)
        size = tmp.stat().st_size
        tmp.rename(blobs / digest)
        descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar",
                      "digest": f"sha256:{digest}", "size": size})
        diff_ids.append(f"sha256:{digest}")
        total += size

    def put(obj: dict) -> dict:
        data = json.dumps(obj).encode()
        d = hashlib.sha256(data).hexdigest()
        (blobs / d).write_bytes(data)
        return {"digest": f"sha256:{d}", "size": len(data)}

    config = put({"architecture": "amd64", "os": "linux",
                  "rootfs": {"type": "layers", "diff_ids": diff_ids}, "config": {}})
    manifest = put({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config},
                    "layers": descs})
    (dest / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", **manifest,
         "annotations": {"org.opencontainers.image.ref.name": "bench"}}]}))
    return total


def wait_http(url: str, timeout: float = 15) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


def rss_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def start_dockyard(work: Path, port: int) -> subprocess.Popen:
    cfg = work / "dockyard.yml"
    cfg.write_text(f"http: {{addr: '127.0.0.1:{port}'}}\nlog: {{access: 'off'}}\n"
                   f"storage: {{filesystem: {{rootdirectory: '{work / 'dockyard-data'}'}}}}\n")
    return subprocess.Popen([sys.executable, "-m", "dockyard", "registry", "serve", "--config", str(cfg)],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def start_cncf(work: Path, port: int) -> subprocess.Popen:
    cfg = work / "cncf.yml"
    cfg.write_text(f"version: 0.1\nlog: {{level: error}}\nstorage:\n  filesystem:\n"
                   f"    rootdirectory: {work / 'cncf-data'}\n  delete: {{enabled: true}}\n"
                   f"http:\n  addr: 127.0.0.1:{port}\n")
    return subprocess.Popen(["docker-registry", "serve", str(cfg)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def skopeo(*args: str) -> float:
    t = time.perf_counter()
    subprocess.run(["skopeo", "copy", "-q", *args], check=True)
    return time.perf_counter() - t


def round_trip(name: str, port: int, layout: Path, i: int, work: Path) -> tuple[float, float]:
    """Seconds to push ``layout`` to a new repository, and to pull it back."""
    ref = f"docker://127.0.0.1:{port}/bench/img{i}:latest"
    push = skopeo("--dest-tls-verify=false", f"oci:{layout}:bench", ref)
    out = work / f"{name}-pull{i}"
    pull = skopeo("--src-tls-verify=false", ref, f"oci:{out}:bench")
    shutil.rmtree(out)
    return push, pull


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size-mb", type=int, default=200)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    for tool in ("skopeo", "docker-registry"):
        if not shutil.which(tool):
            print(f"{tool} is not installed; cannot run the comparison", file=sys.stderr)
            return 1
    with tempfile.TemporaryDirectory(prefix="registry-bench-") as tmp:
        work = Path(tmp)
        servers = {}
        try:
            for name, starter in (("cncf", start_cncf), ("dockyard", start_dockyard)):
                port = free_port()
                servers[name] = (starter(work, port), port)
            for proc, port in servers.values():
                wait_http(f"http://127.0.0.1:{port}/v2/")
            idle = {name: rss_kib(proc.pid, "VmRSS") for name, (proc, _) in servers.items()}
            times: dict[str, list[tuple[float, float]]] = {name: [] for name in servers}
            total = 0
            for i in range(args.rounds):
                layout = work / f"layout{i}"
                total = make_oci_layout(layout, args.size_mb, args.layers)
                for name, (_proc, port) in servers.items():
                    times[name].append(round_trip(name, port, layout, i, work))
                shutil.rmtree(layout)
            mib = total / (1 << 20)
            results = {name: {"push": mib / min(t[0] for t in times[name]),
                              "pull": mib / min(t[1] for t in times[name]),
                              "peak_mib": rss_kib(servers[name][0].pid, "VmHWM") / 1024,
                              "base_mib": idle[name] / 1024} for name in servers}
        finally:
            for proc, _ in servers.values():
                proc.terminate()
                proc.wait(timeout=30)
    print(f"image: {total / 1e6:.0f} MB in {args.layers} layers, best of {args.rounds} rounds (skopeo copy)")
    print(f"{'registry':<10}{'push MiB/s':>12}{'pull MiB/s':>12}{'peak RSS MiB':>14}{'idle RSS MiB':>14}")
    for name, r in results.items():
        print(f"{name:<10}{r['push']:>12.0f}{r['pull']:>12.0f}{r['peak_mib']:>14.1f}{r['base_mib']:>14.1f}")
    d, c = results["dockyard"], results["cncf"]
    print(f"ratio dockyard/cncf: push {d['push'] / c['push']:.2f}x, pull {d['pull'] / c['pull']:.2f}x, "
          f"peak memory {d['peak_mib'] / c['peak_mib']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
