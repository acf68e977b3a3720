"""A streaming tar reader that hands file data straight from the decompressor to a file.

Python's ``tarfile`` in stream mode copies every byte through several small buffers, which caps
a layer unpack well below disk speed. This reader parses each 512-byte header with the
documented ``tarfile.TarInfo.frombuf`` (checksums, base-256 numbers, ustar prefixes, V7
directories) and handles the extensions layers use itself: PAX extended and global headers
(``path``, ``linkpath``, ``size``, ``uid``, ``gid``, ``mtime``, ``atime``, ``SCHILY.xattr.*``,
``LIBARCHIVE.xattr.*``) and GNU long names and link names. Sparse files and multi-volume
archives are refused: no image tool writes them into layers.

The reader never interprets a name: it only reports what the archive says. Deciding where an
entry may go is the job of :mod:`dockyard.snapshot.unpack`.
"""
from __future__ import annotations

import base64
import json
import os
import struct
import tarfile
import urllib.parse
from dataclasses import dataclass, field
from typing import Callable, Iterator, NamedTuple

from dockyard.content.durability import WRITEBACK_STEP, start_writeback
from dockyard.errors import InvalidContent, Unsupported

BLOCK = 512
_ZERO_BLOCK = bytes(BLOCK)
WRITEBACK_MIN = 256 << 10  # smaller files are left to the final sync
_META_LIMIT = 16 << 20  # PAX headers and GNU long names: generous, but never a memory bomb

REGULAR = frozenset({tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE})
# Entries whose size field never announces data (Go's archive/tar and tarfile agree).
HEADER_ONLY = frozenset({tarfile.LNKTYPE, tarfile.SYMTYPE, tarfile.CHRTYPE, tarfile.BLKTYPE,
                         tarfile.DIRTYPE, tarfile.FIFOTYPE})


@dataclass
class Entry:
    """One archive member, after PAX and GNU extensions are applied."""

    name: str
    type: bytes
    size: int
    mode: int
    uid: int
    gid: int
    mtime_ns: int
    atime_ns: int | None
    linkname: str
    devmajor: int
    devminor: int
    xattrs: dict[str, bytes] = field(default_factory=dict)


class Header(NamedTuple):
    """The fields of one 512-byte header block that matter for unpacking."""

    name: str
    mode: int
    uid: int
    gid: int
    size: int
    mtime: int
    type: bytes
    linkname: str
    devmajor: int
    devminor: int


# name mode uid gid size mtime chksum type linkname magic+version uname gname devmajor devminor prefix
_USTAR = struct.Struct("100s8s8s8s12s12s8sc100s8s32s32s8s8s155s12x")
_POSIX_MAGIC = b"ustar\x0000"


def _octal(field: bytes) -> int:
    return int(field.split(b"\0", 1)[0].strip(b" ") or b"0", 8)


def _text(field: bytes) -> str:
    return field.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def parse_header(block: bytes) -> Header:
    """Parse a header block. The common case (octal numbers, unsigned checksum) is decoded here
    at a fraction of ``tarfile``'s cost; anything else (base-256 numbers, signed checksums, a bad
    block) goes to ``tarfile.TarInfo.frombuf``, which raises ``tarfile.HeaderError`` if the block
    is not a header at all."""
    try:
        (name, mode, uid, gid, size, mtime, chksum, type_, linkname, magic, _, _, devmajor, devminor,
         prefix) = _USTAR.unpack(block)
        if _octal(chksum) != sum(block) - sum(chksum) + 256:
            raise ValueError("checksum")
        name_s = _text(name)
        if magic == _POSIX_MAGIC and prefix[0]:
            name_s = _text(prefix) + "/" + name_s
        if type_ == tarfile.AREGTYPE and name_s.endswith("/"):
            type_ = tarfile.DIRTYPE
        return Header(name_s, _octal(mode), _octal(uid), _octal(gid), _octal(size), _octal(mtime), type_,
                      _text(linkname), _octal(devmajor), _octal(devminor))
    except ValueError:
        info = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
        return Header(info.name, info.mode, info.uid, info.gid, info.size, int(info.mtime), info.type,
                      info.linkname, info.devmajor, info.devminor)


def _pad(size: int) -> int:
    return -size % BLOCK


def _decimal_ns(text: str) -> int:
    """A PAX time ("1700000000.123456789", maybe negative) in nanoseconds."""
    sign = -1 if text.startswith("-") else 1
    whole, _, frac = text.lstrip("+-").partition(".")
    return sign * (int(whole or "0") * 1_000_000_000 + int((frac + "000000000")[:9]))


def parse_pax(data: bytes) -> dict[str, bytes]:
    """PAX records (``"%d %s=%s\\n"``) to raw keyword -> value bytes."""
    out: dict[str, bytes] = {}
    pos = 0
    while pos < len(data):
        if data[pos] == 0:  # NUL padding after the last record
            break
        sp = data.find(b" ", pos)
        if sp < 0:
            raise ValueError("record without a length")
        length = int(data[pos:sp])
        if length <= 0 or pos + length > len(data):
            raise ValueError("record length out of range")
        record = data[sp + 1:pos + length]
        if not record.endswith(b"\n") or b"=" not in record:
            raise ValueError("malformed record")
        key, _, value = record[:-1].partition(b"=")
        out[key.decode("utf-8", "surrogateescape")] = value
        pos += length
    return out


class TarReader:
    """Iterate over :class:`Entry` objects; while an entry is current, ``copy_to(fd)`` writes its
    data (the reader skips whatever the caller did not read when it moves on)."""

    def __init__(self, read_chunk: Callable[[], bytes], label: str = "layer") -> None:
        self._read_chunk = read_chunk
        self.label = label
        self._buf = b""
        self._pos = 0
        self._offset = 0  # stream offset of self._buf[0], for error messages
        self._remaining = 0  # data bytes of the current entry not yet read
        self._pad_due = 0  # padding after the current entry's data

    # -- buffer ---------------------------------------------------------------------------
    def _fill(self) -> bool:
        chunk = self._read_chunk()
        if not chunk:
            return False
        self._offset += self._pos
        self._buf = self._buf[self._pos:] + chunk if self._pos < len(self._buf) else chunk
        self._pos = 0
        return True

    def _read_exact(self, n: int, what: str) -> bytes:
        while len(self._buf) - self._pos < n:
            if not self._fill():
                raise self._truncated(what)
        out = self._buf[self._pos:self._pos + n]
        self._pos += n
        return out

    def _skip(self, n: int, what: str) -> None:
        while n:
            avail = len(self._buf) - self._pos
            if not avail:
                if not self._fill():
                    raise self._truncated(what)
                continue
            step = min(avail, n)
            self._pos += step
            n -= step

    def _truncated(self, what: str) -> InvalidContent:
        return InvalidContent(f"{self.label}: truncated tar archive (unexpected end of data in {what})")

    def _truncated_file(self, name: str) -> InvalidContent:
        shown = json.dumps(name, ensure_ascii=False)
        if len(shown) > 120:
            shown = shown[:116] + '..."'
        return self._truncated(f"the data of {shown}")

    def _pieces(self, name: str) -> Iterator[tuple[bytes, int, int]]:
        """The current entry's (``name``'s) data as ``(buffer, start, end)`` pieces of the read
        buffer, consumed as they are yielded."""
        while self._remaining:
            avail = len(self._buf) - self._pos
            if not avail:
                if not self._fill():
                    raise self._truncated_file(name)
                continue
            start = self._pos
            step = min(avail, self._remaining)
            self._pos += step
            self._remaining -= step
            yield self._buf, start, start + step

    def copy_to(self, fd: int, name: str, writeback: bool = False) -> int:
        """Write the current entry's (``name``'s) data to ``fd``; returns the number of bytes.

        With ``writeback`` the kernel is asked to start writing each 8 MiB to disk as soon as it
        is written, so that the sync before the layer is published has little left to wait for."""
        total = 0
        flushed = 0
        for buf, start, end in self._pieces(name):
            view = memoryview(buf)[start:end]
            while view:
                written = os.write(fd, view)
                view = view[written:]
            total += end - start
            if writeback and total - flushed >= WRITEBACK_STEP:
                start_writeback(fd, flushed, total - flushed)
                flushed = total
        if writeback and total > flushed and total >= WRITEBACK_MIN:
            start_writeback(fd, flushed, total - flushed)
        return total

    def data_chunks(self, name: str) -> Iterator[bytes]:
        """The current entry's (``name``'s) data, as the stream delivers it: whole chunks where
        they fall inside the entry (no copy), slices only where the entry starts or ends."""
        for buf, start, end in self._pieces(name):
            yield buf if start == 0 and end == len(buf) else buf[start:end]

    # -- headers --------------------------------------------------------------------------
    def _next_block(self) -> bytes | None:
        """The next header block, or None at a clean end of the stream."""
        if len(self._buf) - self._pos < BLOCK:
            while len(self._buf) - self._pos < BLOCK:
                if not self._fill():
                    if self._pos == len(self._buf):
                        return None  # end of stream on a block boundary: tolerated, as Go's archive/tar does
                    raise self._truncated("a tar header")
        block = self._buf[self._pos:self._pos + BLOCK]
        self._pos += BLOCK
        return block

    def _meta(self, size: int, what: str) -> bytes:
        if size > _META_LIMIT:
            raise InvalidContent(f"{self.label}: {what} of {size} bytes is too large")
        data = self._read_exact(size, what)
        self._skip(_pad(size), what)
        return data

    def __iter__(self) -> Iterator[Entry]:
        global_pax: dict[str, bytes] = {}
        pax: dict[str, bytes] = {}
        long_name: str | None = None
        long_link: str | None = None
        while True:
            if self._remaining:
                self._skip(self._remaining, "file data")
                self._remaining = 0
            if self._pad_due:
                self._skip(self._pad_due, "file data")
                self._pad_due = 0
            offset = self._offset + self._pos
            block = self._next_block()
            if block is None or block == _ZERO_BLOCK:
                return  # end-of-archive marker (the caller drains the rest for the digest)
            try:
                info = parse_header(block)
            except tarfile.HeaderError as exc:
                raise InvalidContent(f"{self.label}: invalid tar header at offset {offset} ({exc})") from None
            t = info.type
            if t in (tarfile.XHDTYPE, tarfile.SOLARIS_XHDTYPE, tarfile.XGLTYPE):
                try:
                    records = parse_pax(self._meta(info.size, "a PAX header"))
                except ValueError as exc:
                    raise InvalidContent(f"{self.label}: invalid PAX header at offset {offset} ({exc})") from None
                (global_pax if t == tarfile.XGLTYPE else pax).update(records)
                continue
            if t == tarfile.GNUTYPE_LONGNAME:
                long_name = self._meta(info.size, "a GNU long name").rstrip(b"\0").decode("utf-8", "surrogateescape")
                continue
            if t == tarfile.GNUTYPE_LONGLINK:
                long_link = self._meta(info.size, "a GNU long link name").rstrip(b"\0").decode("utf-8", "surrogateescape")
                continue
            if t == tarfile.GNUTYPE_SPARSE or t == b"M":
                raise Unsupported(f"{self.label}: GNU sparse and multi-volume tar entries are not supported "
                                  f"({info.name!r})")
            if t == b"V":  # GNU volume label: carries no file
                self._skip(info.size + _pad(info.size), "a volume label")
                continue
            entry = self._entry(info, {**global_pax, **pax}, long_name, long_link)
            pax, long_name, long_link = {}, None, None
            # data the caller does not read is skipped when it asks for the next entry
            self._remaining = 0 if entry.type in HEADER_ONLY else entry.size
            self._pad_due = _pad(self._remaining)
            yield entry

    def _entry(self, info: Header, pax: dict[str, bytes], long_name: str | None,
               long_link: str | None) -> Entry:
        name = long_name if long_name is not None else info.name
        linkname = long_link if long_link is not None else info.linkname
        size, uid, gid = info.size, info.uid, info.gid
        mtime_ns = int(info.mtime) * 1_000_000_000
        atime_ns: int | None = None
        xattrs: dict[str, bytes] = {}
        try:
            for key, value in pax.items():
                if key == "path":
                    name = value.decode("utf-8", "surrogateescape")
                elif key == "linkpath":
                    linkname = value.decode("utf-8", "surrogateescape")
                elif key == "size":
                    size = int(value)
                elif key == "uid":
                    uid = int(value)
                elif key == "gid":
                    gid = int(value)
                elif key == "mtime":
                    mtime_ns = _decimal_ns(value.decode())
                elif key == "atime":
                    atime_ns = _decimal_ns(value.decode())
                elif key.startswith("SCHILY.xattr."):
                    xattrs[key[len("SCHILY.xattr."):]] = value
                elif key.startswith("LIBARCHIVE.xattr."):
                    xname = urllib.parse.unquote(key[len("LIBARCHIVE.xattr."):])
                    xattrs.setdefault(xname, base64.b64decode(value + b"=" * (-len(value) % 4)))
                elif key.startswith("GNU.sparse."):
                    raise Unsupported(f"{self.label}: GNU sparse tar entries are not supported ({name!r})")
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidContent(f"{self.label}: invalid PAX header for {name!r} ({exc})") from None
        if size < 0 or uid < 0 or gid < 0:
            raise InvalidContent(f"{self.label}: invalid tar header for {name!r} (negative size or id)")
        if info.type == tarfile.DIRTYPE:
            name = name.rstrip("/") or name
        return Entry(name=name, type=info.type, size=size, mode=info.mode, uid=uid, gid=gid,
                     mtime_ns=mtime_ns, atime_ns=atime_ns, linkname=linkname,
                     devmajor=info.devmajor, devminor=info.devminor, xattrs=xattrs)
