"""Safe layer extraction: every entry lands inside the layer directory, whatever the tar says.

How an entry is kept inside:

* Names are cleaned lexically; a leading ``/`` is dropped (as docker and GNU tar do) and a
  ``..`` that would climb above the layer root is refused.
* Every directory is opened one component at a time with ``O_NOFOLLOW|O_DIRECTORY`` relative
  to its parent's fd (``openat``), so no path is ever resolved through a symlink; an entry whose
  parent is a symlink (made earlier in the same tar) is refused. Directory fds are kept in a
  small LRU cache, which is also what makes extraction fast: a file costs one ``openat`` on a
  cached parent fd, never a walk of its whole path.
* The final component is created with ``O_EXCL|O_NOFOLLOW`` (``mkdirat``, ``symlinkat``,
  ``linkat`` without ``AT_SYMLINK_FOLLOW``, ``mknodat``); an entry already there is removed first
  (a directory with the fd-based ``rmtree``), so a file is never written through a symlink or
  into another file's hard-link sibling.
* Hard-link targets are looked up the same way and must already exist in this layer.
* Device nodes are refused, except the 0:0 character device that *is* an overlayfs whiteout.

OCI whiteouts become overlayfs ones: ``.wh.NAME`` becomes a 0:0 character device ``NAME``, and
``.wh..wh..opq`` sets ``trusted.overlay.opaque=y`` on its directory. Other ``trusted.overlay.*``
xattrs in the archive are dropped: they would steer overlayfs (redirects, metacopy).
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import tarfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from dockyard.errors import DockyardError, InvalidContent
from dockyard.snapshot.layerstream import LayerStream
from dockyard.snapshot.tarstream import REGULAR, Entry, TarReader

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_DIR_CACHE = 256


@dataclass(frozen=True)
class UnpackPolicy:
    """What a layer may contain beyond files, directories, links and FIFOs."""

    allow_devices: bool = False  # other character and block devices (never from untrusted images)
    allow_whiteout_devices: bool = True  # 0:0 character devices, i.e. overlayfs whiteouts as-is


class UnsafeEntry(InvalidContent):
    """A tar entry that would write outside its layer, or that the policy forbids."""


def quote(name: str, limit: int = 120) -> str:
    """A name for a one-line message: control characters escaped, very long names shortened."""
    text = json.dumps(name, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 4] + '..."'


def split_name(name: str) -> list[str]:
    """Clean a tar name into components under the layer root; refuse any climb above it."""
    parts: list[str] = []
    for part in name.split("/"):
        if part == "" or part == ".":
            continue
        if part == "..":
            if not parts:
                raise UnsafeEntry(f"tar entry {quote(name)} points outside the layer directory")
            parts.pop()
        else:
            parts.append(part)
    return parts


class _DirFds:
    """Directory fds of the layer, by relative path ("" is the root), opened without following
    symlinks. An LRU cache: tar entries come grouped by directory, so a few hundred fds make
    almost every lookup a dict hit."""

    def __init__(self, root_fd: int) -> None:
        self.root_fd = root_fd
        self._cache: OrderedDict[str, int] = OrderedDict()

    def get(self, path: str, create: bool = True, entry: str = "") -> int:
        """The fd of directory ``path``; missing directories are made (0755) when ``create``."""
        if not path:
            return self.root_fd
        fd = self._cache.get(path)
        if fd is not None:
            self._cache.move_to_end(path)
            return fd
        # Walk down from the deepest cached ancestor.
        start = path
        fd = None
        while fd is None:
            start, _, _ = start.rpartition("/")
            fd = self._cache.get(start) if start else self.root_fd
        rest = path[len(start) + 1:] if start else path
        current = start
        for comp in rest.split("/"):
            current = f"{current}/{comp}" if current else comp
            fd = self._open_child(fd, comp, current, create, entry or path)
        return fd

    def _open_child(self, parent_fd: int, name: str, path: str, create: bool, entry: str) -> int:
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
        except FileNotFoundError:
            if not create:
                raise
            os.mkdir(name, 0o755, dir_fd=parent_fd)
            fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
        except NotADirectoryError:
            st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
            what = "a symlink" if stat.S_ISLNK(st.st_mode) else "not a directory"
            raise UnsafeEntry(f"tar entry {quote(entry)} goes through {quote(path)}, which is {what} "
                              "in this layer") from None
        self._cache[path] = fd
        if len(self._cache) > _DIR_CACHE:
            _, old = self._cache.popitem(last=False)
            os.close(old)
        return fd

    def forget(self, path: str) -> None:
        """Drop ``path`` and everything below it (the directory is being removed or replaced)."""
        prefix = path + "/"
        for key in [k for k in self._cache if k == path or k.startswith(prefix)]:
            os.close(self._cache.pop(key))

    def close(self) -> None:
        for fd in self._cache.values():
            os.close(fd)
        self._cache.clear()


class LayerExtractor:
    """Applies tar entries to an (initially empty) layer directory."""

    def __init__(self, dest: Path, policy: UnpackPolicy = UnpackPolicy(), label: str = "layer",
                 writeback: bool = False) -> None:
        self.policy = policy
        self.label = label
        self.writeback = writeback
        # docker's layer size (moby's directory.Size): the lstat size of every non-directory —
        # regular-file data plus each symlink's target length; a hard link adds nothing
        self.size = 0
        self._root_fd = os.open(dest, _DIR_FLAGS)
        self._dirs = _DirFds(self._root_fd)
        self._dir_times: list[tuple[str, int, int]] = []
        self._as_root = os.geteuid() == 0

    # -- entry points ---------------------------------------------------------------------
    def apply(self, entry: Entry, reader: TarReader) -> None:
        try:
            self._apply(entry, reader)
        except UnsafeEntry as exc:  # raised without the layer's name: add it
            raise UnsafeEntry(f"{self.label}: {exc.message}") from None
        except DockyardError:
            raise
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DockyardError(f"{self.label}: no space left on device while unpacking; "
                                    "free space and try again") from None
            raise InvalidContent(f"{self.label}: cannot unpack tar entry {quote(entry.name)}: "
                                 f"{exc.strerror or exc}") from None
        except ValueError as exc:  # an embedded NUL byte, mostly
            raise InvalidContent(f"{self.label}: cannot unpack tar entry {quote(entry.name)}: {exc}") from None

    def finish(self) -> None:
        """Set directory times last: creating their children changed them."""
        for path, atime, mtime in reversed(self._dir_times):
            try:
                os.utime(self._dirs.get(path, create=False), ns=(atime, mtime))
            except (OSError, DockyardError):
                continue  # replaced by a later entry: nothing to date
        self._dir_times.clear()

    def close(self) -> None:
        self._dirs.close()
        os.close(self._root_fd)

    # -- one entry ------------------------------------------------------------------------
    def _apply(self, e: Entry, reader: TarReader) -> None:
        parts = split_name(e.name)
        if not parts:  # the layer root itself ("./")
            if e.type == tarfile.DIRTYPE:
                self._set_attrs(self._root_fd, e, always_chown=True)
                self._dir_times.append(("", *self._times(e)))
            return
        name = parts[-1]
        parent = "/".join(parts[:-1])
        if name.startswith(WHITEOUT_PREFIX):
            self._whiteout(e, parent, name)
            return
        pfd = self._dirs.get(parent, entry=e.name)
        t = e.type
        if t in REGULAR:
            fd = self._create(pfd, parent, name, lambda: os.open(name, _FILE_FLAGS, 0o600, dir_fd=pfd))
            try:
                self.size += reader.copy_to(fd, e.name, self.writeback)
                self._set_attrs(fd, e)
                os.utime(fd, ns=self._times(e))
            finally:
                os.close(fd)
        elif t == tarfile.DIRTYPE:
            path = "/".join(parts)
            try:
                os.mkdir(name, 0o700, dir_fd=pfd)
            except FileExistsError:
                st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
                if not stat.S_ISDIR(st.st_mode):
                    os.unlink(name, dir_fd=pfd)
                    os.mkdir(name, 0o700, dir_fd=pfd)
            self._set_attrs(self._dirs.get(path, entry=e.name), e, always_chown=True)
            self._dir_times.append((path, *self._times(e)))
        elif t == tarfile.SYMTYPE:
            self._create(pfd, parent, name, lambda: os.symlink(e.linkname, name, dir_fd=pfd))
            self._set_attrs_at(pfd, name, e, symlink=True)
            self.size += len(os.fsencode(e.linkname))
        elif t == tarfile.LNKTYPE:
            self._hardlink(e, parent, name, parts)
        elif t == tarfile.FIFOTYPE:
            self._create(pfd, parent, name, lambda: os.mkfifo(name, 0o600, dir_fd=pfd))
            self._set_attrs_at(pfd, name, e)
        elif t in (tarfile.CHRTYPE, tarfile.BLKTYPE):
            whiteout = t == tarfile.CHRTYPE and e.devmajor == 0 and e.devminor == 0
            if not (self.policy.allow_devices or (whiteout and self.policy.allow_whiteout_devices)):
                kind = "character" if t == tarfile.CHRTYPE else "block"
                raise UnsafeEntry(f"tar entry {quote(e.name)} is a {kind} device "
                                  f"({e.devmajor}:{e.devminor}); device nodes are not allowed in layers")
            kind_bit = stat.S_IFCHR if t == tarfile.CHRTYPE else stat.S_IFBLK
            self._create(pfd, parent, name, lambda: os.mknod(
                name, kind_bit | 0o600, os.makedev(e.devmajor, e.devminor), dir_fd=pfd))
            self._set_attrs_at(pfd, name, e)
        else:
            raise UnsafeEntry(f"tar entry {quote(e.name)} has an unknown type {e.type!r}")

    def _create(self, pfd: int, parent: str, name: str, make):  # noqa: ANN001, ANN202
        """Run ``make`` (an O_EXCL-style creation); if the name is taken, remove it and retry."""
        try:
            return make()
        except FileExistsError:
            self._remove(pfd, parent, name)
            return make()

    def _remove(self, pfd: int, parent: str, name: str) -> None:
        try:
            st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            self._dirs.forget(f"{parent}/{name}" if parent else name)
            shutil.rmtree(name, dir_fd=pfd)
        else:
            os.unlink(name, dir_fd=pfd)

    def _hardlink(self, e: Entry, parent: str, name: str, parts: list[str]) -> None:
        target = split_name(e.linkname)
        if not target:
            raise UnsafeEntry(f"hard link {quote(e.name)} has an empty or root target")
        if target == parts:
            return  # a link to itself: nothing to do (removing it first would lose the file)
        try:
            # dup: the next lookup may evict this fd from the cache
            src_fd = os.dup(self._dirs.get("/".join(target[:-1]), create=False, entry=e.linkname))
        except FileNotFoundError:
            src_fd = -1
        try:
            pfd = self._dirs.get(parent, entry=e.name)
            try:
                if src_fd < 0:
                    raise FileNotFoundError
                self._create(pfd, parent, name, lambda: os.link(
                    target[-1], name, src_dir_fd=src_fd, dst_dir_fd=pfd, follow_symlinks=False))
            except FileNotFoundError:
                raise UnsafeEntry(f"hard link {quote(e.name)} points to {quote(e.linkname)}, "
                                  "which is not in this layer") from None
        finally:
            if src_fd >= 0:
                os.close(src_fd)

    def _whiteout(self, e: Entry, parent: str, name: str) -> None:
        pfd = self._dirs.get(parent, entry=e.name)
        if name == OPAQUE_MARKER:
            os.setxattr(pfd, OPAQUE_XATTR, b"y")
            return
        if name.startswith(WHITEOUT_PREFIX + WHITEOUT_PREFIX):
            return  # other AUFS metadata (.wh..wh.plnk, .wh..wh.aufs): nothing to apply
        hidden = name[len(WHITEOUT_PREFIX):]
        if hidden in ("", ".", ".."):
            raise UnsafeEntry(f"whiteout {quote(e.name)} names no file in its directory")
        self._create(pfd, parent, hidden, lambda: os.mknod(hidden, stat.S_IFCHR, os.makedev(0, 0), dir_fd=pfd))
        if self._as_root and (e.uid or e.gid):
            os.chown(hidden, e.uid, e.gid, dir_fd=pfd, follow_symlinks=False)

    # -- metadata -------------------------------------------------------------------------
    @staticmethod
    def _times(e: Entry) -> tuple[int, int]:
        atime = e.atime_ns if e.atime_ns is not None and e.atime_ns >= e.mtime_ns else e.mtime_ns
        return atime, e.mtime_ns

    def _set_attrs(self, fd: int, e: Entry, always_chown: bool = False) -> None:
        """Owner, then mode (chown clears setuid/setgid), then xattrs, on an open fd.

        A node this process just made is already root's: chown only when that must change
        (an existing directory may be named twice, so directories always get it)."""
        if self._as_root and (e.uid or e.gid or always_chown):
            os.fchown(fd, e.uid, e.gid)
        os.fchmod(fd, e.mode & 0o7777)
        for key, value in e.xattrs.items():
            if _xattr_allowed(key):
                _ignore_unsupported(os.setxattr, fd, key, value)

    def _set_attrs_at(self, pfd: int, name: str, e: Entry, symlink: bool = False) -> None:
        """The same for a node that cannot be opened for writing (symlink, FIFO, device).

        The node was created a moment ago by this process in a directory only it writes to, so
        naming it relative to its parent fd is race-free; symlinks are never followed."""
        if self._as_root and (e.uid or e.gid):
            os.chown(name, e.uid, e.gid, dir_fd=pfd, follow_symlinks=False)
        if not symlink:
            os.chmod(name, e.mode & 0o7777, dir_fd=pfd)
        if e.xattrs:
            proc_path = f"/proc/self/fd/{pfd}/{name}"
            for key, value in e.xattrs.items():
                if _xattr_allowed(key):
                    _ignore_unsupported(os.setxattr, proc_path, key, value, follow_symlinks=False)
        os.utime(name, ns=self._times(e), dir_fd=pfd, follow_symlinks=False)


def _xattr_allowed(key: str) -> bool:
    return not key.startswith("trusted.overlay.")


def _ignore_unsupported(func, *args, **kwargs) -> None:  # noqa: ANN001
    """xattrs the filesystem does not take (user.* on a symlink, security.selinux without SELinux)
    are dropped, as docker does."""
    try:
        func(*args, **kwargs)
    except OSError as exc:
        if exc.errno not in (errno.ENOTSUP, errno.EPERM, errno.EOPNOTSUPP):
            raise


def extract_stream(stream: LayerStream, dest: Path, policy: UnpackPolicy = UnpackPolicy(),
                   label: str = "layer", writeback: bool = False) -> int:
    """Extract the uncompressed layer ``stream`` into the empty directory ``dest`` and read it to
    its end (trailing bytes count in the diff_id); returns the bytes of regular-file data.
    ``writeback`` starts writing big files to disk while the rest is unpacked (for a caller
    that syncs afterwards)."""
    reader = TarReader(stream.read_chunk, label)
    extractor = LayerExtractor(dest, policy, label, writeback=writeback)
    try:
        for entry in reader:
            extractor.apply(entry, reader)
        extractor.finish()
    finally:
        extractor.close()
    stream.drain()
    return extractor.size


def unpack_layer(blob: BinaryIO, dest: Path, media_type: str = "", policy: UnpackPolicy = UnpackPolicy(),
                 label: str = "layer", *, writeback: bool = False,
                 blob_digest: str | None = None) -> tuple[str, int, str]:
    """Extract a (compressed) layer blob into the empty directory ``dest``.

    Returns ``(diff_id, size, compression)``: the digest of the uncompressed stream as read, the
    bytes of regular-file data written, and the compression detected. The caller compares the
    diff_id with the expected one; on any error ``dest`` holds a partial tree to be discarded.
    ``blob_digest``: only for a blob reader that raises at its end unless its bytes hash to it
    (the content store's); an uncompressed blob is then not hashed a second time.
    """
    stream = LayerStream(blob, media_type, label, prefetch=True, blob_digest=blob_digest)
    try:
        size = extract_stream(stream, dest, policy, label, writeback)
    finally:
        stream.close()
    return stream.digest or "", size, stream.compression
