#!/usr/bin/env python3
"""Image load/save throughput beside docker, podman and skopeo, as ratios (one run, same files).

Makes a ~1 GiB, 8-layer image (8 x 128 MiB, one file per layer) as a docker-archive or an OCI
layout tar, its layers uncompressed (random data, as the issue's benchmark) or compressed
(gzip/zstd, half-compressible data), then times, median of N runs each:
  load:  dockyard image load | podman load | docker load | skopeo copy <archive> -> oci: dir
  save:  dockyard image save | podman save | docker save
and the peak RSS of each tool's process (dockyard's must stay flat: under 64 MiB whatever the
size). The peak is measured by GNU time (``/usr/bin/time -f %M``) when it is installed: a
process started straight from this (large) Python process would inherit its RSS high-water mark
through vfork+exec, which is what made every earlier figure read the same.

    .venv/bin/python bench/image_bench.py [--layers 8] [--layer-mib 128] [--runs 3]
        [--compress none|gzip|zstd] [--format docker|oci] [--tools dockyard,podman,...]
        [--ops load,save] [--baseline GIT-REV]

``--baseline REV`` adds a "dy@REV" row: the same CLI from that commit's ``dockyard/`` (taken
with ``git archive``), run beside the working tree's, for before/after figures in one run.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import zlib
from pathlib import Path

VENV_DY = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "dockyard"
GNU_TIME = "/usr/bin/time"
CHUNK = 1 << 20


def _layer_payload(seed: int, i: int, compressible: bool) -> bytes:
    """1 MiB of data: random, or half random and half text (compresses about 2:1)."""
    rnd = os.urandom(CHUNK if not compressible else CHUNK // 2)
    if not compressible:
        return rnd
    text = (f"line {seed} {i} of some fairly repetitive layer content\n" * 20000).encode()[: CHUNK // 2]
    return rnd + text


def _write_layer(path: Path, index: int, mib: int, compress: str) -> tuple[str, str]:
    """One layer (a tar with one file of ``mib`` MiB), compressed as asked, written to ``path``
    without holding it in memory. Returns (diff_id, blob digest)."""
    diff = hashlib.sha256()
    blob = hashlib.sha256()
    comp = None
    if compress == "gzip":
        comp = zlib.compressobj(1, zlib.DEFLATED, 31)
    elif compress == "zstd":
        import zstandard

        comp = zstandard.ZstdCompressor(level=1).compressobj()
    with open(path, "wb") as out:
        def emit(data: bytes) -> None:
            diff.update(data)
            if comp is not None:
                data = comp.compress(data)
            blob.update(data)
            out.write(data)

        ti = tarfile.TarInfo(f"l{index}")
        ti.size = mib << 20
        ti.mode = 0o644
        ti.mtime = 1_700_000_000
        emit(ti.tobuf(format=tarfile.PAX_FORMAT))
        for i in range(mib):
            emit(_layer_payload(index, i, compress != "none"))
        emit(b"\0" * 1024)  # end of archive (the data is a multiple of 512 bytes)
        if comp is not None:
            tail = comp.flush()
            blob.update(tail)
            out.write(tail)
    return f"sha256:{diff.hexdigest()}", f"sha256:{blob.hexdigest()}"


def make_archive(path: Path, layers: int, layer_mib: int, tag: str, compress: str = "none",
                 fmt: str = "docker") -> int:
    """A docker-archive (or OCI layout tar) with ``layers`` one-file layers; returns its size.
    Memory stays small: each layer goes through a temporary file."""
    work = path.parent / "layers"
    work.mkdir(exist_ok=True)
    media = {"none": "application/vnd.oci.image.layer.v1.tar",
             "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
             "zstd": "application/vnd.oci.image.layer.v1.tar+zstd"}[compress]
    diff_ids, descs, names = [], [], []
    with open(path, "wb") as out, tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:
        if fmt == "oci":
            tf.addfile(_dir("blobs/"))
            tf.addfile(_dir("blobs/sha256/"))
        for i in range(layers):
            tmp = work / f"layer{i}"
            diff_id, digest = _write_layer(tmp, i, layer_mib, compress)
            diff_ids.append(diff_id)
            size = tmp.stat().st_size
            descs.append({"mediaType": media, "digest": digest, "size": size})
            name = f"blobs/sha256/{digest[7:]}" if fmt == "oci" else f"{digest[7:]}/layer.tar"
            names.append(name)
            ti = tarfile.TarInfo(name)
            ti.size = size
            with open(tmp, "rb") as f:
                tf.addfile(ti, f)
            tmp.unlink()
        cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
                          "created": "2024-01-01T00:00:00Z",
                          "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
        cfg_digest = hashlib.sha256(cfg).hexdigest()
        if fmt == "oci":
            manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                                   "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                              "digest": f"sha256:{cfg_digest}", "size": len(cfg)},
                                   "layers": descs}).encode()
            man_digest = hashlib.sha256(manifest).hexdigest()
            index = json.dumps({"schemaVersion": 2, "manifests": [
                {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": f"sha256:{man_digest}",
                 "size": len(manifest), "annotations": {"io.containerd.image.name": f"docker.io/{tag}",
                                                        "org.opencontainers.image.ref.name": tag.rsplit(":", 1)[1]}}]})
            files = [(f"blobs/sha256/{cfg_digest}", cfg), (f"blobs/sha256/{man_digest}", manifest),
                     ("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'), ("index.json", index.encode())]
        else:
            files = [(f"{cfg_digest}.json", cfg),
                     ("manifest.json", json.dumps([{"Config": f"{cfg_digest}.json", "RepoTags": [tag],
                                                    "Layers": names}]).encode())]
        for name, data in files:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, _Bytes(data))
    shutil.rmtree(work, ignore_errors=True)
    return path.stat().st_size


def _dir(name: str) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type = tarfile.DIRTYPE
    ti.mode = 0o755
    return ti


class _Bytes:
    def __init__(self, data: bytes) -> None:
        self._data, self._pos = data, 0

    def read(self, n: int = -1) -> bytes:
        out = self._data[self._pos:] if n < 0 else self._data[self._pos:self._pos + n]
        self._pos += len(out)
        return out


def baseline_cli(rev: str, work: Path) -> str:
    """A shell command running the dockyard CLI of commit ``rev`` (its package unpacked in
    ``work``; the editable install's import hook is removed so that it is the one imported)."""
    repo = Path(__file__).resolve().parent.parent
    dest = work / "baseline"
    dest.mkdir()
    archive = subprocess.run(["git", "-C", str(repo), "archive", rev, "dockyard"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    launcher = dest / "dockyard_cli.py"
    launcher.write_text(
        "import sys\n"
        "sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in getattr(f, '__name__', repr(f)).lower()]\n"
        f"sys.path.insert(0, {str(dest)!r})\n"
        "from dockyard.cli.main import main\n"
        f"assert __import__('dockyard').__file__.startswith({str(dest)!r})\n"
        "sys.exit(main())\n")
    return f"{sys.executable} {launcher}"


class ToolFailed(Exception):
    """A peer could not do the operation on this archive (e.g. docker < 25 and an OCI layout)."""


def timed(cmd: str, runs: int, before: str | None = None) -> tuple[float, float | None]:
    """Median wall time and the command's own peak RSS in MiB (None when it cannot be measured)."""
    times, peaks = [], []
    use_time = os.access(GNU_TIME, os.X_OK)
    for _ in range(runs):
        if before:
            subprocess.run(before, shell=True, capture_output=True)
        with tempfile.NamedTemporaryFile("r", prefix="rss-") as rss:
            argv = [GNU_TIME, "-f", "%M", "-o", rss.name, "sh", "-c", cmd] if use_time else ["sh", "-c", cmd]
            t0 = time.perf_counter()
            p = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            dt = time.perf_counter() - t0
            if p.returncode != 0:
                raise ToolFailed(p.stderr.decode().strip().splitlines()[-1:] or ["exit status %d" % p.returncode])
            if use_time:
                peaks.append(int(rss.read().split()[-1]) / 1024)
        times.append(dt)
    return statistics.median(times), (max(peaks) if peaks else None)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--layer-mib", type=int, default=128)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--compress", choices=["none", "gzip", "zstd"], default="none")
    ap.add_argument("--format", choices=["docker", "oci"], default="docker")
    ap.add_argument("--tools", default="dockyard,podman,docker,skopeo")
    ap.add_argument("--ops", default="load,save")
    ap.add_argument("--baseline", metavar="GIT-REV", help="also time the CLI of this commit")
    args = ap.parse_args()
    tag = "dockyard-bench/huge:1"
    work = Path(tempfile.mkdtemp(prefix="dockyard-imgbench-"))
    root = work / "root"
    try:
        archive = work / "huge.tar"
        size = make_archive(archive, args.layers, args.layer_mib, tag, args.compress, args.format)
        mib = size / (1 << 20)
        src = "oci-archive" if args.format == "oci" else "docker-archive"
        print(f"image: {args.layers} layers ({args.compress}), {mib:.0f} MiB {src}; median of {args.runs} runs\n")
        dy = f"{VENV_DY} --root {root}"
        load = {
            "dockyard": (f"{dy} image load -q -i {archive}", f"{dy} rmi -f {tag}"),
            "podman": (f"podman load -q -i {archive}", f"podman rmi -f {tag}"),
            "docker": (f"docker load -q -i {archive}", f"docker rmi -f {tag}"),
            "skopeo": (f"skopeo copy -q {src}:{archive} oci:{work}/oci:1", f"rm -rf {work}/oci"),
        }
        save = {
            "dockyard": f"{dy} image save -o {work}/out-dy.tar {tag}",
            "podman": f"podman save -q -o {work}/out-podman.tar {tag}",
            "docker": f"docker save -o {work}/out-docker.tar {tag}",
        }
        wanted = set(args.tools.split(","))
        ours = {"dockyard"}
        if args.baseline:
            base = f"{baseline_cli(args.baseline, work)} --root {work / 'root-base'}"
            name = f"dy@{args.baseline}"
            load = {"dockyard": load["dockyard"], name: (f"{base} image load -q -i {archive}",
                                                         f"{base} rmi -f {tag}"), **load}
            save = {"dockyard": save["dockyard"], name: f"{base} image save -o {work}/out-base.tar {tag}", **save}
            wanted.add(name)
            ours.add(name)
        available = {k for k in load if k in wanted and (k in ours or shutil.which(k))}
        if "docker" in available and subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
            available.discard("docker")
        ops = args.ops.split(",")
        rows: list[tuple[str, str, float, float | None]] = []
        if "load" in ops or "save" in ops:
            for tool, (cmd, cleanup) in load.items():
                if tool in available:
                    runs = args.runs if "load" in ops else 1
                    try:
                        t, peak = timed(cmd, runs, before=cleanup)
                    except ToolFailed as exc:
                        print(f"{tool} load failed: {exc.args[0][0]}")
                        available.discard(tool)
                        continue
                    if "load" in ops:
                        rows.append(("load", tool, t, peak))
        if "save" in ops:
            for tool, cmd in save.items():
                if tool in available:
                    try:
                        t, peak = timed(cmd, args.runs, before=f"rm -f {work}/out-*.tar")
                    except ToolFailed as exc:
                        print(f"{tool} save failed: {exc.args[0][0]}")
                        continue
                    rows.append(("save", tool, t, peak))
        print(f"{'op':<6}{'tool':<18}{'median s':>10}{'MiB/s':>10}{'peak MiB':>10}{'dockyard speed-up':>20}")
        for op in ops:
            mine = next((t for o, tool, t, _ in rows if o == op and tool == "dockyard"), None)
            for o, tool, t, peak in rows:
                if o != op:
                    continue
                ratio = "" if tool == "dockyard" or mine is None else f"{t / mine:.2f}x"
                shown = "n/a" if peak is None else f"{peak:.1f}"
                print(f"{op:<6}{tool:<18}{t:>10.2f}{mib / t:>10.0f}{shown:>10}{ratio:>20}")
    finally:
        for cmd in (["podman", "rmi", "-f", tag], ["docker", "rmi", "-f", tag]):
            if shutil.which(cmd[0]):
                subprocess.run(cmd, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
