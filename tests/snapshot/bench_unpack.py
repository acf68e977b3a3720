"""Benchmark: unpack a large random-content layer from the content store, as an image load does.

Not part of the test run (no ``test_`` prefix). Usage::

    .venv/bin/python tests/snapshot/bench_unpack.py [--mib 1024] [--compression none|gzip|zstd]

Prints MiB/s of uncompressed layer data, measured from opening the blob to the committed
snapshot (decompression, diff_id hashing, the content store's blob verification, file writes
and the final syncfs when DOCKYARD_FSYNC is not 0).
"""
from __future__ import annotations

import argparse
import hashlib
import io
import os
import shutil
import tarfile
import tempfile
import time
from pathlib import Path


def write_layer(path: Path, mib: int, compression: str) -> tuple[str, int]:
    """A tar of random files (4 MiB each, plus 1000 small ones); returns (diff_id, tar bytes)."""
    h = hashlib.sha256()
    raw = open(path, "wb")
    if compression == "gzip":
        import gzip

        out = gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1)
    elif compression == "zstd":
        import zstandard

        out = zstandard.ZstdCompressor(level=1).stream_writer(raw)
    else:
        out = raw

    class Hashing(io.RawIOBase):
        n = 0

        def writable(self) -> bool:
            return True

        def write(self, b) -> int:  # noqa: ANN001
            h.update(b)
            out.write(b)
            self.n += len(b)
            return len(b)

    sink = Hashing()
    with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT, bufsize=1 << 20) as tf:
        big = 4 << 20
        for i in range(max(1, (mib << 20) // big)):
            info = tarfile.TarInfo(f"data/{i % 16}/file{i}")
            info.size = big
            tf.addfile(info, io.BytesIO(os.urandom(big)))
        for i in range(1000):
            info = tarfile.TarInfo(f"small/{i % 20}/s{i}")
            data = os.urandom(2000)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    if out is not raw:
        out.close()
    raw.close()
    return f"sha256:{h.hexdigest()}", sink.n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mib", type=int, default=1024)
    ap.add_argument("--compression", choices=["none", "gzip", "zstd"], default="gzip")
    ap.add_argument("--dir", default=None, help="work directory (default: a temp dir)")
    args = ap.parse_args()
    from dockyard import Client

    work = Path(tempfile.mkdtemp(prefix="dy-bench-", dir=args.dir))
    try:
        layer = work / "layer"
        diff_id, tar_size = write_layer(layer, args.mib, args.compression)
        client = Client(work / "root")
        with open(layer, "rb") as f:
            blob, _ = client.content.ingest(f)
        os.unlink(layer)
        os.sync()
        start = time.perf_counter()
        cpu = time.process_time()
        with client.content.open(blob) as reader:
            _, size = client.snapshots.unpack(None, diff_id, reader, f"tar+{args.compression}")
        wall = time.perf_counter() - start
        cpu = time.process_time() - cpu
        print(f"unpack {args.compression}: {tar_size / 2**20:.0f} MiB layer ({size / 2**20:.0f} MiB of files) "
              f"in {wall:.2f}s wall, {cpu:.2f}s cpu -> {tar_size / 2**20 / wall:.0f} MiB/s")
        client.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
