"""The filesystem backend: one directory tree, atomic writes by temp file + fsync + rename.

Blob bytes are stored once (``blobs/sha256/ab/<hex>``) whatever repositories link them, and
blob GETs are served with ``os.sendfile`` straight from these files. Uploads are staged under
``<root>/_uploads`` on the same filesystem so that committing one is a rename, not a copy.
"""
from __future__ import annotations

import errno
import os
import shutil
import uuid
from pathlib import Path
from typing import Iterator

from dockyard.registry.storage.base import Driver, RangeReader, Stat, fsync_dir


class _FileRange(RangeReader):
    def __init__(self, fd: int, start: int, length: int) -> None:
        super().__init__(length)
        self.fd = fd
        self.offset = start
        self._pos = start
        self._end = start + length

    def read(self, n: int) -> bytes:
        n = min(n, self._end - self._pos)
        if n <= 0:
            return b""
        data = os.pread(self.fd, n, self._pos)
        self._pos += len(data)
        return data

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class FilesystemDriver(Driver):
    name = "filesystem"

    def __init__(self, root: str | os.PathLike[str], fsync: bool = True) -> None:
        self.root = Path(root).absolute()
        self.root.mkdir(parents=True, exist_ok=True)
        self.local_dir = self.root / "_local"
        self.local_dir.mkdir(exist_ok=True)
        self._tmp = self.local_dir / "tmp"
        self._tmp.mkdir(exist_ok=True)
        self.fsync = fsync

    def _path(self, key: str) -> Path:
        return self.root / key

    def get(self, key: str) -> bytes | None:
        try:
            with open(self._path(key), "rb") as f:
                return f.read()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        tmp = self._tmp / uuid.uuid4().hex
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        self._rename_into(str(tmp), path)

    def _rename_into(self, src: str, path: Path) -> None:
        for attempt in range(5):
            try:
                os.rename(src, path)
                break
            except FileNotFoundError:
                # the parent is missing (new, or pruned by a concurrent delete): make it, retry
                if not os.path.exists(src) or attempt == 4:
                    raise
                path.parent.mkdir(parents=True, exist_ok=True)
        if self.fsync:
            fsync_dir(path.parent)

    def stat(self, key: str) -> Stat | None:
        try:
            st = os.stat(self._path(key))
        except (FileNotFoundError, NotADirectoryError):
            return None
        return Stat(st.st_size, st.st_mtime)

    def delete(self, key: str) -> bool:
        try:
            os.unlink(self._path(key))
        except (FileNotFoundError, NotADirectoryError):
            return False
        self._prune(self._path(key).parent)
        return True

    def _prune(self, directory: Path) -> None:
        """Remove now-empty parent directories (never the root) so listings stay exact."""
        while directory != self.root and self.root in directory.parents:
            try:
                os.rmdir(directory)
            except OSError:
                return
            directory = directory.parent

    def delete_tree(self, prefix: str) -> None:
        path = self._path(prefix)
        shutil.rmtree(path, ignore_errors=True)
        self._prune(path.parent)

    def list_dir(self, prefix: str) -> list[str]:
        try:
            return os.listdir(self._path(prefix))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def walk(self, prefix: str) -> Iterator[tuple[str, Stat]]:
        base = self._path(prefix)
        for dirpath, _dirs, files in os.walk(base):
            rel = os.path.relpath(dirpath, self.root)
            for name in files:
                try:
                    st = os.stat(os.path.join(dirpath, name))
                except FileNotFoundError:
                    continue
                yield f"{rel}/{name}", Stat(st.st_size, st.st_mtime)

    def ingest(self, local_path: str, key: str, size: int, sha256_hex: str | None) -> None:
        if self.fsync:
            fd = os.open(local_path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        try:
            self._rename_into(local_path, self._path(key))
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            tmp = self._tmp / uuid.uuid4().hex  # staging dir on another filesystem: copy once
            shutil.copyfile(local_path, tmp)
            os.unlink(local_path)
            self._rename_into(str(tmp), self._path(key))

    def open_range(self, key: str, start: int, length: int) -> RangeReader:
        fd = os.open(self._path(key), os.O_RDONLY)
        return _FileRange(fd, start, length)

    def touch(self, key: str) -> None:
        try:
            os.utime(self._path(key))
        except FileNotFoundError:
            pass

    def clean_temporary(self, older_than: float) -> int:
        import time

        removed = 0
        cutoff = time.time() - older_than
        for entry in os.scandir(self._tmp):
            try:
                if entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed += 1
            except FileNotFoundError:
                continue
        return removed

    def check(self) -> None:
        os.statvfs(self.root)
        if not os.access(self.root, os.W_OK):
            raise OSError(f"storage directory {self.root} is not writable")

    def describe(self) -> str:
        return f"filesystem:{self.root}"
