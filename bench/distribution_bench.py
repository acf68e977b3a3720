#!/usr/bin/env python3
"""dockyard's registry client beside skopeo: push and pull of a 200 MB, 4-layer image, same registry.

A CNCF registry (``docker-registry``) runs on a free loopback port with temporary storage (the
one on :5000 is never touched). Each round makes a new image — fresh random layers, so no tool
can skip an upload through a cache or a cross-repository mount — as an OCI layout with gzip
layers (incompressible data, so the bytes on the wire are the same for both tools), and:

  skopeo push:   skopeo copy oci:<layout> docker://<registry>/bench/sk<i>
  skopeo pull:   skopeo copy docker://<registry>/bench/sk<i> oci:<dir>        (blobs to a directory)
  dockyard push: dockyard push <registry>/bench/dy<i>            (image loaded beforehand, untimed)
  dockyard pull: dockyard pull <registry>/bench/dy<i>            (fresh state root; includes
                 verifying and unpacking every layer into snapshots, which skopeo does not do;
                 "dockyard fetch" is the moment the last blob is downloaded and verified in the
                 content store, the part that matches skopeo's work)

Both are timed as whole commands (process start included). Best of ``--rounds``; MiB/s of the
image's blob bytes and dockyard/skopeo ratios (> 1 means dockyard is faster).
``--uncompressed`` uses plain tar layers instead: skopeo sends them as they are, dockyard gzips
them first as docker does (a different amount of work; reported for information).

    .venv/bin/python bench/distribution_bench.py [--size-mb 200] [--layers 4] [--rounds 3]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from registry_bench import free_port, make_oci_layout, sha256_file, start_cncf, wait_http  # noqa: E402


def make_layout(dest: Path, size_mb: int, layers: int, gzip_layers: bool) -> tuple[int, str]:
    """An OCI layout with ``layers`` random layers totalling ``size_mb`` MB (the registry
    benchmark's image), gzip-compressed when asked; returns (blob bytes, image ID)."""
    from dockyard.build.gzipfast import GzipWriter

    total = make_oci_layout(dest, size_mb, layers)
    blobs = dest / "blobs" / "sha256"
    index = json.loads((dest / "index.json").read_text())
    entry = index["manifests"][0]
    manifest = json.loads((blobs / entry["digest"].split(":")[1]).read_text())
    if gzip_layers:
        total = 0
        for desc in manifest["layers"]:
            plain = blobs / desc["digest"].split(":")[1]
            packed = dest / "layer.tar.gz"
            with open(plain, "rb") as src, open(packed, "wb") as out:
                gz = GzipWriter(out.write)
                while chunk := src.read(1 << 20):
                    gz.write(chunk)
                gz.close()
            plain.unlink()
            digest = sha256_file(packed)
            desc.update(mediaType=desc["mediaType"] + "+gzip", digest=f"sha256:{digest}", size=packed.stat().st_size)
            packed.rename(blobs / digest)
            total += desc["size"]
        data = json.dumps(manifest).encode()
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        entry.update(digest=f"sha256:{digest}", size=len(data))
        (dest / "index.json").write_text(json.dumps(index))
    return total, manifest["config"]["digest"]


def timed(cmd: list[str], env: dict[str, str] | None = None) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)
    return time.perf_counter() - t


def timed_pull(cmd: list[str]) -> tuple[float, float]:
    """(seconds until every blob was downloaded and verified, seconds until the command ended).

    The first is when the last ``Download complete`` line appears: the same job as skopeo's
    copy into a directory. The second adds what only dockyard does: unpacking the layers that
    were still being unpacked, and registering the image.
    """
    t = time.perf_counter()
    fetched = 0.0
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.rstrip().endswith(": Download complete"):
                fetched = time.perf_counter() - t
    if proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, cmd)
    return fetched, time.perf_counter() - t


def dockyard(root: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "dockyard", "--root", str(root), *args]


def one_round(i: int, work: Path, host: str, size_mb: int, layers: int, gzip_layers: bool) -> tuple[int, dict[str, float]]:
    layout = work / f"layout{i}"
    total, _ = make_layout(layout, size_mb, layers, gzip_layers)
    t: dict[str, float] = {}
    t["skopeo push"] = timed(["skopeo", "copy", "-q", "--dest-tls-verify=false", f"oci:{layout}:bench",
                              f"docker://{host}/bench/sk{i}:latest"])
    out = work / f"skopeo-pull{i}"
    t["skopeo pull"] = timed(["skopeo", "copy", "-q", "--src-tls-verify=false",
                              f"docker://{host}/bench/sk{i}:latest", f"oci:{out}:bench"])
    shutil.rmtree(out)

    # the same kind of image for dockyard, with its own fresh layers (nothing to skip)
    shutil.rmtree(layout)
    _, image_id = make_layout(layout, size_mb, layers, gzip_layers)
    archive = work / f"layout{i}.tar"
    with tarfile.open(archive, "w") as tf:
        tf.add(layout, arcname=".")
    shutil.rmtree(layout)
    pusher = work / f"dy-push-root{i}"
    subprocess.run(dockyard(pusher, "load", "-q", "-i", str(archive)), check=True)
    archive.unlink()
    subprocess.run(dockyard(pusher, "tag", image_id, f"{host}/bench/dy{i}:latest"), check=True)
    t["dockyard push"] = timed(dockyard(pusher, "push", "-q", f"{host}/bench/dy{i}:latest"))
    shutil.rmtree(pusher)
    puller = work / f"dy-pull-root{i}"
    t["dockyard fetch"], t["dockyard pull"] = timed_pull(dockyard(puller, "pull", f"{host}/bench/dy{i}:latest"))
    shutil.rmtree(puller, ignore_errors=True)
    return total, t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size-mb", type=int, default=200)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--uncompressed", action="store_true", help="plain tar layers (dockyard gzips them on push)")
    args = ap.parse_args()
    for tool in ("skopeo", "docker-registry"):
        if not shutil.which(tool):
            print(f"{tool} is not installed; cannot run the comparison", file=sys.stderr)
            return 1
    with tempfile.TemporaryDirectory(prefix="distribution-bench-") as tmp:
        work = Path(tmp)
        port = free_port()
        proc = start_cncf(work, port)
        try:
            wait_http(f"http://127.0.0.1:{port}/v2/")
            host = f"127.0.0.1:{port}"
            rounds = [one_round(i, work, host, args.size_mb, args.layers, not args.uncompressed)
                      for i in range(args.rounds)]
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    total = rounds[0][0]
    mib = total / (1 << 20)
    best = {k: min(r[1][k] for r in rounds) for k in rounds[0][1]}
    kind = "plain tar" if args.uncompressed else "gzip"
    print(f"image: {total / 1e6:.0f} MB in {args.layers} {kind} layers, CNCF registry "
          f"(docker-registry), best of {args.rounds} rounds")
    print(f"{'':<16}{'seconds':>10}{'MiB/s':>10}")
    for k, v in best.items():
        print(f"{k:<16}{v:>10.2f}{mib / v:>10.0f}")
    print(f"ratio dockyard/skopeo: push {best['skopeo push'] / best['dockyard push']:.2f}x, "
          f"pull {best['skopeo pull'] / best['dockyard pull']:.2f}x (fetch only "
          f"{best['skopeo pull'] / best['dockyard fetch']:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
