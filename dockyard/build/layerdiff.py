"""A layer from a directory of changes: a sorted, reproducible tar, stored in the content store
gzip-compressed (or plain, when its data does not compress).

The directory is an overlayfs upper dir (what a RUN or COPY step changed) or a plain directory
(``COPY --link``). Overlay's own markers become OCI whiteouts as docker's overlay2 driver writes
them: a 0:0 character device is a deleted path (``.wh.NAME``), a directory with
``trusted.overlay.opaque=y`` replaced a lower one (``DIR/.wh..wh..opq``). Entries are written in
byte order of their names; hard links inside the layer stay hard links; only the
``security.capability`` xattr is kept (as docker keeps it); modification times are clamped to
``SOURCE_DATE_EPOCH`` when it is set, so the same inputs always give the same layer digest.
"""
from __future__ import annotations

import os
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from dockyard.build.gzipfast import GzipWriter

if TYPE_CHECKING:  # pragma: no cover
    from dockyard.content.store import ContentStore, Lease

LAYER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
PLAIN_LAYER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar"
OPAQUE_XATTR = "trusted.overlay.opaque"
CAPABILITY_XATTR = "security.capability"
_BLOCK = 512
_READ = 1 << 20


@dataclass
class LayerBlob:
    """A layer written to the content store (``digest``/``size`` compressed)."""

    digest: str
    size: int
    diff_id: str
    media_type: str = LAYER_MEDIA_TYPE
    file_bytes: int = 0  # regular-file data in the layer


def _getxattr(path: str, name: str) -> bytes | None:
    try:
        return os.getxattr(path, name, follow_symlinks=False)
    except OSError:
        return None


def _header(name: str, st: os.stat_result, kind: bytes, epoch: int | None, link: str = "",
            size: int = 0, pax: dict[str, str] | None = None, mode: int | None = None) -> bytes:
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.mode = stat.S_IMODE(st.st_mode) if mode is None else mode
    ti.uid = st.st_uid
    ti.gid = st.st_gid
    ti.uname = ti.gname = ""
    mtime = int(st.st_mtime)
    if epoch is not None and mtime > epoch:
        mtime = epoch
    ti.mtime = max(mtime, 0)
    ti.size = size
    ti.linkname = link
    if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        ti.devmajor = os.major(st.st_rdev)
        ti.devminor = os.minor(st.st_rdev)
    if pax:
        ti.pax_headers = pax
    return ti.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


class TarEmitter:
    """Writes a tar stream of a directory tree to ``out`` (a callable taking bytes).

    With ``fix_tree`` the tree is made to hold exactly what the tar says, so that it can serve
    as the layer's committed snapshot: overlay's own bookkeeping xattrs (``origin``,
    ``impure``, ... but not ``opaque``) are removed, sockets deleted, and modification times
    clamped to ``epoch`` on disk as they are in the tar. ``file_bytes`` counts the regular-file
    data (each inode once), the size a snapshot records.
    """

    def __init__(self, out: Callable[[bytes], Any], epoch: int | None = None, fix_tree: bool = False) -> None:
        self.out = out
        self.epoch = epoch
        self.fix_tree = fix_tree
        self.file_bytes = 0
        self._links: dict[tuple[int, int], str] = {}

    def add_tree(self, top: Path, skip: frozenset[str] = frozenset()) -> None:
        """Every entry under ``top`` (not ``top`` itself), names relative to it, sorted; the
        non-directories named in ``skip`` (relative paths) are left out."""
        self._skip = skip
        self._walk(str(top), "")

    def _walk(self, host_dir: str, rel: str) -> None:
        try:
            names = sorted(os.listdir(host_dir), key=os.fsencode)
        except FileNotFoundError:
            return
        for name in names:
            path = os.path.join(host_dir, name)
            child = f"{rel}{name}"
            st = os.lstat(path)
            if stat.S_ISDIR(st.st_mode):
                self.add_entry(path, child, st)
                self._walk(path, child + "/")
            elif child not in getattr(self, "_skip", ()):
                self.add_entry(path, child, st)

    def add_entry(self, path: str, name: str, st: os.stat_result) -> None:
        """One entry. ``name`` has no leading slash; directories get a trailing one."""
        mode = st.st_mode
        pax: dict[str, str] = {}
        if self.fix_tree and not self._fix(path, st):
            return
        cap = _getxattr(path, CAPABILITY_XATTR) if not stat.S_ISLNK(mode) else None
        if cap is not None:
            pax["SCHILY.xattr." + CAPABILITY_XATTR] = cap.decode("latin-1")
        if stat.S_ISCHR(mode) and st.st_rdev == 0:  # overlay whiteout
            head, _, base = name.rpartition("/")
            wh = f"{head}/.wh.{base}" if head else f".wh.{base}"
            self.out(_header(wh, st, tarfile.REGTYPE, self.epoch, mode=0o600))
            return
        if stat.S_ISDIR(mode):
            self.out(_header(name + "/", st, tarfile.DIRTYPE, self.epoch, pax=pax))
            if _getxattr(path, OPAQUE_XATTR) == b"y":
                self.out(_header(f"{name}/.wh..wh..opq", st, tarfile.REGTYPE, self.epoch,
                                 mode=stat.S_IMODE(mode) & 0o777))
            return
        if stat.S_ISLNK(mode):
            self.out(_header(name, st, tarfile.SYMTYPE, self.epoch, link=os.readlink(path)))
            return
        if stat.S_ISREG(mode):
            if st.st_nlink > 1:
                key = (st.st_dev, st.st_ino)
                first = self._links.get(key)
                if first is not None:
                    self.out(_header(name, st, tarfile.LNKTYPE, self.epoch, link=first, pax=pax))
                    return
                self._links[key] = name
            self._file(path, name, st, pax)
            return
        kind = tarfile.FIFOTYPE if stat.S_ISFIFO(mode) else tarfile.CHRTYPE if stat.S_ISCHR(mode) \
            else tarfile.BLKTYPE if stat.S_ISBLK(mode) else None
        if kind is None:
            return  # sockets are not layer material (docker skips them too)
        self.out(_header(name, st, kind, self.epoch, pax=pax))

    def _fix(self, path: str, st: os.stat_result) -> bool:
        """Make one tree entry match its tar entry; False if the entry was removed."""
        if stat.S_ISSOCK(st.st_mode):
            os.unlink(path)
            return False
        try:
            names = os.listxattr(path, follow_symlinks=False)
        except OSError:
            names = []
        for n in names:
            if n.startswith("trusted.overlay.") and n != OPAQUE_XATTR:
                os.removexattr(path, n, follow_symlinks=False)
        if self.epoch is not None and st.st_mtime > self.epoch:
            os.utime(path, (self.epoch, self.epoch), follow_symlinks=False)
        return True

    def _file(self, path: str, name: str, st: os.stat_result, pax: dict[str, str]) -> None:
        size = st.st_size
        self.file_bytes += size
        self.out(_header(name, st, tarfile.REGTYPE, self.epoch, size=size, pax=pax))
        left = size
        with open(path, "rb") as f:
            while left > 0:
                chunk = f.read(min(_READ, left))
                if not chunk:
                    break
                self.out(chunk)
                left -= len(chunk)
        if left > 0:  # the file shrank while we read it: pad to the announced size
            self.out(b"\0" * left)
        pad = (-size) % _BLOCK
        if pad:
            self.out(b"\0" * pad)

    def finish(self) -> None:
        self.out(b"\0" * (_BLOCK * 2))


def has_changes(top: Path) -> bool:
    try:
        with os.scandir(top) as it:
            return any(True for _ in it)
    except FileNotFoundError:
        return False


class _LayerSink:
    """Receives the tar and decides, from its first bytes, how to store it.

    A layer whose first ``PROBE`` bytes do not compress (random data, archives, media) is stored
    as a plain tar — compressing it would cost time and save nothing, and its digest is then its
    diff ID, hashed once. Others are gzip-compressed. The choice depends only on the bytes, so
    the same input always gives the same blob."""

    PROBE = 4 << 20

    def __init__(self, writer: Any) -> None:
        self.writer = writer
        self._probe: bytearray | None = bytearray()
        self._gz: GzipWriter | None = None

    def write(self, data: bytes) -> None:
        if self._probe is None:
            (self._gz.write if self._gz is not None else self.writer.write)(data)
            return
        self._probe += data
        if len(self._probe) >= self.PROBE:
            self._decide()

    def _decide(self) -> None:
        probe, self._probe = bytes(self._probe or b""), None
        if _compressible(probe):
            self._gz = GzipWriter(self.writer.write)
            self._gz.write(probe)
        else:
            self.writer.write(probe)

    def close(self) -> tuple[str | None, str]:
        """(diff_id or None when it is the blob digest, media type)."""
        if self._probe is not None:
            self._decide()
        if self._gz is not None:
            return self._gz.close()[0], LAYER_MEDIA_TYPE
        return None, PLAIN_LAYER_MEDIA_TYPE


def _compressible(data: bytes) -> bool:
    """Whether deflate gains more than 10% on a few 64 KiB samples of ``data``."""
    import zlib

    if not data:
        return True
    step = max(len(data) // 4, 1)
    samples = [data[i:i + (64 << 10)] for i in range(0, len(data), step)][:4]
    raw = sum(len(x) for x in samples)
    packed = sum(len(zlib.compress(x, 1)) for x in samples)
    return packed < raw * 0.9


def write_layer(top: Path, content: "ContentStore", lease: "Lease | None" = None,
                epoch: int | None = None, fix_tree: bool = False, skip: frozenset[str] = frozenset()) -> LayerBlob:
    """Diff ``top`` into a layer blob in the content store (gzip, or a plain tar when the data
    does not compress); ``fix_tree``: see :class:`TarEmitter`; ``skip``: files left out."""
    writer = content.writer(lease=lease)
    try:
        sink = _LayerSink(writer)
        emitter = TarEmitter(sink.write, epoch, fix_tree=fix_tree)
        emitter.add_tree(top, skip)
        emitter.finish()
        diff_id, media_type = sink.close()
        digest = writer.commit()
        size = writer.offset
    except BaseException:
        writer.abort()
        raise
    return LayerBlob(digest=digest, size=size, diff_id=diff_id or digest, media_type=media_type,
                     file_bytes=emitter.file_bytes)
