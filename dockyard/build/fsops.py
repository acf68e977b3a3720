"""COPY and ADD executed into a root filesystem, with docker's rules.

The destination is resolved inside the image's root (symlinks followed but never out of it).
A directory source copies its *contents*; a file goes into the destination when that ends with
``/`` or is an existing directory, else it becomes the destination. Missing parent
directories are created 0755 (owned by ``--chown`` for file copies, root otherwise, as the
classic builder does). Copied entries keep their permission bits (setuid/setgid/sticky
included) and modification times; context files become root-owned and files from another
stage keep their owners, unless ``--chown`` says otherwise. ``--chmod`` applies to every
copied entry. Hard links between copied files stay hard links. ADD extracts local tar archives
(plain, gzip, bzip2, xz, zstd) into the destination, keeping the archive's owners.

Directories that the copy writes into keep the modification time they had, and directories it
creates get the time of the copied source, so a COPY layer only changes when its inputs do.
"""
from __future__ import annotations

import os
import posixpath
import shutil
import stat
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterable

from dockyard.build.context import resolve_in_root
from dockyard.build.errors import BuildError

DIR_MODE = 0o755


@dataclass
class CopyItem:
    """One source to copy: a host path, how it is named in a destination directory."""

    path: Path
    name: str
    is_dir: bool
    keep_owner: bool = False          # from another stage/image: owners are kept
    walk: list[tuple[str, os.stat_result]] | None = None  # a directory's entries (filtered)
    data: bytes | None = None         # inline content (heredoc)
    extract: bool = False             # ADD of a local archive


@dataclass
class CopyOptions:
    owner: tuple[int, int] | None = None   # --chown
    chmod: int | None = None               # --chmod (None: keep)
    dest_is_dir: bool = False              # the destination ends with "/" (or several sources)
    data_mode: int = 0o644                 # mode of inline files when --chmod is not given
    mtime: float | None = None             # time for created directories


@dataclass
class _Touch:
    """Directory mtimes to put back after writing into them."""

    times: dict[str, tuple[int, int]] = field(default_factory=dict)

    def before_write(self, directory: str) -> None:
        if directory not in self.times:
            try:
                st = os.lstat(directory)
            except FileNotFoundError:
                return
            self.times[directory] = (st.st_atime_ns, st.st_mtime_ns)

    def restore(self) -> None:
        # deepest first, so restoring a child does not bump its parent again
        for d in sorted(self.times, key=len, reverse=True):
            try:
                os.utime(d, ns=self.times[d], follow_symlinks=False)
            except FileNotFoundError:
                pass


class Copier:
    """Copies items into ``root`` (a mounted image filesystem)."""

    def __init__(self, root: str, options: CopyOptions) -> None:
        self.root = root.rstrip("/") or "/"
        self.opt = options
        self._touch = _Touch()
        self._links: dict[tuple[int, int], str] = {}

    # -- destination helpers -------------------------------------------------------------------
    def host(self, container_path: str, follow_last: bool = True) -> str:
        return resolve_in_root(self.root, container_path, follow_last)

    def _container(self, host_path: str) -> str:
        rel = os.path.relpath(host_path, self.root)
        return "/" if rel == "." else "/" + rel

    def mkdir_all(self, container_path: str, owner: tuple[int, int] | None,
                  last_owner: tuple[int, int] | None = None) -> str:
        """Create a directory and its missing parents (inside the root); returns its host path.
        ``owner`` is for created parents, ``last_owner`` for the directory itself."""
        parts = [p for p in container_path.split("/") if p]
        current = "/"
        for i, part in enumerate(parts):
            nxt = posixpath.join(current, part)
            host = self.host(nxt)
            try:
                st = os.stat(host)
            except FileNotFoundError:
                st = None
            if st is not None and stat.S_ISDIR(st.st_mode):
                current = self._container(host)
                continue
            if st is not None:
                raise BuildError(f"cannot create directory {nxt}: a file with that name exists in the image")
            parent = os.path.dirname(host)
            self._touch.before_write(parent)
            os.mkdir(host, DIR_MODE)
            os.chmod(host, DIR_MODE)
            own = last_owner if (i == len(parts) - 1 and last_owner is not None) else owner
            if own is not None:
                os.lchown(host, own[0], own[1])
            t = self.opt.mtime
            if t is not None:
                self._touch.times.setdefault(host, (int(t * 1e9), int(t * 1e9)))
            current = self._container(host)
        return self.host(current)

    # -- the copy ------------------------------------------------------------------------------
    def copy(self, items: Iterable[CopyItem], dest: str) -> None:
        """Copy every item to ``dest`` (an absolute container path)."""
        items = list(items)
        try:
            for item in items:
                self._copy_one(item, dest)
        finally:
            self._touch.restore()

    def _copy_one(self, item: CopyItem, dest: str) -> None:
        chown = self.opt.owner
        self._links = {}  # hard links are kept within one source tree only, as docker keeps them
        if item.extract:
            target_dir = self.mkdir_all(dest, None)
            self._extract(item.path, target_dir)
            return
        if item.is_dir:
            target_dir = self.mkdir_all(dest, None, last_owner=chown or (0, 0))
            self._copy_tree(item, target_dir)
            return
        target = self.host(dest)
        if self.opt.dest_is_dir or os.path.isdir(target):
            target_dir = self.mkdir_all(dest, chown or (0, 0))
            target = os.path.join(target_dir, item.name)
        else:
            parent = posixpath.dirname(dest.rstrip("/")) or "/"
            parent_host = self.mkdir_all(parent, chown or (0, 0))
            target = os.path.join(parent_host, posixpath.basename(dest.rstrip("/")))
            if os.path.islink(target):  # docker writes through a symlink at the destination
                target = self.host(self._container(target))
        if item.data is not None:
            self._write_data(item, target)
        else:
            st = os.lstat(item.path)
            self._copy_entry(str(item.path), target, st, item.keep_owner)

    def _write_data(self, item: CopyItem, target: str) -> None:
        self._replace(target, want_dir=False)
        with open(target, "wb") as f:
            f.write(item.data or b"")
        mode = self.opt.chmod if self.opt.chmod is not None else self.opt.data_mode
        os.chmod(target, mode)
        own = self.opt.owner or (0, 0)
        os.lchown(target, own[0], own[1])
        if self.opt.mtime is not None:
            os.utime(target, (self.opt.mtime, self.opt.mtime))

    def _copy_tree(self, item: CopyItem, target_dir: str) -> None:
        entries = item.walk if item.walk is not None else _walk_all(item.path)
        dirs: list[tuple[str, os.stat_result]] = []
        for rel, st in entries:
            src = os.path.join(str(item.path), rel)
            dst = os.path.join(target_dir, rel)
            self._copy_entry(src, dst, st, item.keep_owner)
            if stat.S_ISDIR(st.st_mode):
                dirs.append((dst, st))
        for dst, st in reversed(dirs):  # directory times last: writing inside them changed them
            os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
            self._touch.times.pop(dst, None)

    def _replace(self, target: str, want_dir: bool) -> None:
        """Make room for a new entry at ``target`` (never following a symlink there)."""
        self._touch.before_write(os.path.dirname(target))
        try:
            st = os.lstat(target)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            if want_dir:
                return
            raise BuildError(f"cannot copy to {self._container(target)}: it is a directory in the image")
        os.unlink(target)

    def _owner(self, st: os.stat_result, keep: bool) -> tuple[int, int]:
        if self.opt.owner is not None:
            return self.opt.owner
        return (st.st_uid, st.st_gid) if keep else (0, 0)

    def _copy_entry(self, src: str, dst: str, st: os.stat_result, keep_owner: bool) -> None:
        mode = st.st_mode
        uid, gid = self._owner(st, keep_owner)
        perm = stat.S_IMODE(mode) if self.opt.chmod is None else self.opt.chmod
        if stat.S_ISDIR(mode):
            self._replace(dst, want_dir=True)
            if not os.path.isdir(dst) or os.path.islink(dst):
                os.mkdir(dst, 0o700)
            os.chmod(dst, perm)
            os.lchown(dst, uid, gid)
            return
        self._replace(dst, want_dir=False)
        if stat.S_ISREG(mode):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in self._links:
                os.link(self._links[key], dst)
                return
            shutil.copyfile(src, dst, follow_symlinks=False)
            if st.st_nlink > 1:
                self._links[key] = dst
        elif stat.S_ISLNK(mode):
            os.symlink(os.readlink(src), dst)
            os.lchown(dst, uid, gid)
            os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
            return
        elif stat.S_ISFIFO(mode):
            os.mkfifo(dst, 0o600)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            os.mknod(dst, (mode & 0o170000) | 0o600, st.st_rdev)
        else:
            return  # sockets
        if self.opt.chmod is not None or (keep_owner and self.opt.owner is None):
            os.lchown(dst, uid, gid)
            os.chmod(dst, perm)
        else:
            # docker's classic builder chowns copied files after writing them, and the kernel
            # then drops setuid (and setgid on group-executable files): do the same
            os.chmod(dst, perm)
            os.lchown(dst, uid, gid)
        _copy_capability(src, dst)
        os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)

    # -- ADD archives -----------------------------------------------------------------------
    def _extract(self, archive: Path, target_dir: str) -> None:
        with open_archive(archive) as stream:
            extract_tar(stream, target_dir, self._touch)


def _copy_capability(src: str, dst: str) -> None:
    try:
        cap = os.getxattr(src, "security.capability", follow_symlinks=False)
    except OSError:
        return
    try:
        os.setxattr(dst, "security.capability", cap, follow_symlinks=False)
    except OSError:
        pass


def _walk_all(top: Path) -> list[tuple[str, os.stat_result]]:
    """Every entry under ``top`` (sorted, lstat), for a directory from another stage."""
    out: list[tuple[str, os.stat_result]] = []

    def visit(d: str, rel: str) -> None:
        for name in sorted(os.listdir(d)):
            p = os.path.join(d, name)
            st = os.lstat(p)
            r = f"{rel}{name}"
            out.append((r, st))
            if stat.S_ISDIR(st.st_mode):
                visit(p, r + "/")

    visit(str(top), "")
    return out


# -- archives ---------------------------------------------------------------------------------
def _magic(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read(512)


def archive_kind(path: Path) -> str | None:
    """'tar', 'gzip', 'bzip2', 'xz' or 'zstd' when ``path`` is a tar archive ADD extracts."""
    try:
        head = _magic(path)
    except OSError:
        return None
    kind = None
    if head[:2] == b"\x1f\x8b":
        kind = "gzip"
    elif head[:3] == b"BZh":
        kind = "bzip2"
    elif head[:6] == b"\xfd7zXZ\x00":
        kind = "xz"
    elif head[:4] == b"\x28\xb5\x2f\xfd":
        kind = "zstd"
    try:
        with open_archive(path, kind) as stream:
            block = stream.read(512)
    except Exception:  # noqa: BLE001 - anything unreadable is simply "not an archive"
        return None
    return (kind or "tar") if _is_tar_header(block) else None


def _is_tar_header(block: bytes) -> bool:
    if len(block) < 512 or block == b"\0" * 512:
        return False
    try:
        tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        return False
    return True


class _Closing:
    def __init__(self, f: BinaryIO, extra: BinaryIO | None = None) -> None:
        self.f = f
        self.extra = extra

    def __enter__(self) -> BinaryIO:
        return self.f

    def __exit__(self, *exc: object) -> None:
        self.f.close()
        if self.extra is not None:
            self.extra.close()


def open_archive(path: Path, kind: str | None = "auto") -> _Closing:
    if kind == "auto":
        k = archive_kind(path)
        kind = None if k in (None, "tar") else k
    import bz2
    import gzip
    import lzma

    raw = open(path, "rb")
    if kind == "gzip":
        return _Closing(gzip.GzipFile(fileobj=raw), raw)  # type: ignore[arg-type]
    if kind == "bzip2":
        return _Closing(bz2.BZ2File(raw), raw)  # type: ignore[arg-type]
    if kind == "xz":
        return _Closing(lzma.LZMAFile(raw), raw)  # type: ignore[arg-type]
    if kind == "zstd":
        import zstandard

        return _Closing(zstandard.ZstdDecompressor().stream_reader(raw), raw)  # type: ignore[arg-type]
    return _Closing(raw)


def extract_tar(stream: BinaryIO, target_dir: str, touch: _Touch | None = None) -> None:
    """Extract a tar into ``target_dir``: names cleaned and kept inside, owners and modes kept."""
    touch = touch or _Touch()
    dirs: list[tuple[str, tarfile.TarInfo]] = []
    with tarfile.open(fileobj=stream, mode="r|") as tf:
        for ti in tf:
            parts: list[str] = []
            for p in ti.name.split("/"):
                if p in ("", "."):
                    continue
                if p == "..":
                    if parts:
                        parts.pop()
                    continue
                parts.append(p)
            if not parts:
                continue
            rel = "/".join(parts)
            parent = resolve_in_root(target_dir, posixpath.dirname(rel) or ".", True)
            os.makedirs(parent, DIR_MODE, exist_ok=True)
            dst = os.path.join(parent, parts[-1])
            touch.before_write(parent)
            try:
                st = os.lstat(dst)
            except FileNotFoundError:
                st = None
            if st is not None and not (ti.isdir() and stat.S_ISDIR(st.st_mode)):
                if stat.S_ISDIR(st.st_mode):
                    shutil.rmtree(dst)
                else:
                    os.unlink(dst)
            if ti.isdir():
                if st is None or not stat.S_ISDIR(st.st_mode):
                    os.mkdir(dst, 0o700)
                dirs.append((dst, ti))
            elif ti.isreg():
                src = tf.extractfile(ti)
                with open(dst, "wb") as f:
                    if src is not None:
                        shutil.copyfileobj(src, f, 1 << 20)
            elif ti.issym():
                os.symlink(ti.linkname, dst)
            elif ti.islnk():
                link_parts = [p for p in ti.linkname.split("/") if p not in ("", ".", "..")]
                os.link(resolve_in_root(target_dir, "/".join(link_parts), False), dst)
                # docker applies the link header's owner, mode and time to the shared inode
                # (owner only when it is a symlink), as both of its builders do
                if os.path.islink(dst):
                    os.lchown(dst, ti.uid, ti.gid)
                    continue
            elif ti.isfifo():
                os.mkfifo(dst, 0o600)
            elif ti.ischr() or ti.isblk():
                kind = stat.S_IFCHR if ti.ischr() else stat.S_IFBLK
                os.mknod(dst, kind | 0o600, os.makedev(ti.devmajor, ti.devminor))
            else:
                continue
            os.lchown(dst, ti.uid, ti.gid)
            if not ti.issym():
                os.chmod(dst, ti.mode & 0o7777)
            os.utime(dst, (ti.mtime, ti.mtime), follow_symlinks=False)
    for dst, ti in reversed(dirs):
        os.chmod(dst, ti.mode & 0o7777)
        os.lchown(dst, ti.uid, ti.gid)
        os.utime(dst, (ti.mtime, ti.mtime))
        touch.times.pop(dst, None)
