"""Build layer tars entry by entry, including the hostile ones no normal tool would write."""
from __future__ import annotations

import gzip
import hashlib
import io
import tarfile

Member = tuple[tarfile.TarInfo, bytes | None]


def reg(name: str, data: bytes = b"", mode: int = 0o644, uid: int = 0, gid: int = 0,
        mtime: float = 1_600_000_000, xattrs: dict[str, str] | None = None) -> Member:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.uid, info.gid, info.mtime = len(data), mode, uid, gid, mtime
    if xattrs:
        info.pax_headers = {f"SCHILY.xattr.{k}": v for k, v in xattrs.items()}
    return info, data


def directory(name: str, mode: int = 0o755, uid: int = 0, gid: int = 0, mtime: float = 1_600_000_000,
              xattrs: dict[str, str] | None = None) -> Member:
    info, _ = reg(name, b"", mode, uid, gid, mtime, xattrs)
    info.type = tarfile.DIRTYPE
    return info, None


def symlink(name: str, target: str, uid: int = 0, gid: int = 0) -> Member:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode, info.uid, info.gid = tarfile.SYMTYPE, target, 0o777, uid, gid
    return info, None


def hardlink(name: str, target: str) -> Member:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = tarfile.LNKTYPE, target, 0o644
    return info, None


def device(name: str, major: int, minor: int, block: bool = False) -> Member:
    info = tarfile.TarInfo(name)
    info.type = tarfile.BLKTYPE if block else tarfile.CHRTYPE
    info.devmajor, info.devminor, info.mode = major, minor, 0o600
    return info, None


def fifo(name: str, mode: int = 0o600) -> Member:
    info = tarfile.TarInfo(name)
    info.type, info.mode = tarfile.FIFOTYPE, mode
    return info, None


def build(*members: Member, fmt: int = tarfile.PAX_FORMAT,
          global_pax: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt, pax_headers=global_pax or {}) as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def diff_id(tar: bytes) -> str:
    return "sha256:" + hashlib.sha256(tar).hexdigest()


def compress(tar: bytes, kind: str) -> bytes:
    if kind == "gzip":
        return gzip.compress(tar, mtime=0)
    if kind == "zstd":
        import zstandard

        return zstandard.ZstdCompressor().compress(tar)
    if kind == "xz":
        import lzma

        return lzma.compress(tar)
    if kind == "bzip2":
        import bz2

        return bz2.compress(tar)
    return tar
