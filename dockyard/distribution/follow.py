"""Read a blob while it downloads, so that a layer is unpacked as its bytes arrive (as docker does).

The download thread reports through a :class:`BlobFeed` where the data goes (the ingest file) and
how much of it is written; a :class:`FollowingReader` reads that file up to the written mark,
waiting for more until the download says it is complete. The file can be renamed into the
content store meanwhile (an open file survives a rename). Unpacking unverified bytes is safe:
the snapshot store checks the uncompressed stream against the config's diff ID, and the image is
registered only after every blob has been committed with its verified digest.

If the download has to start over (a server ignoring ``Range``, a resumed blob failing
verification), the file the reader follows is no longer the blob: the feed is marked *broken*
and the reader raises :class:`FeedBroken`, after which the caller unpacks from the committed blob.
"""
from __future__ import annotations

import io
import os
import threading


class FeedBroken(Exception):
    """The followed file was abandoned; unpack from the committed blob instead."""


class BlobFeed:
    """Where one blob's download stands, shared by the downloading thread and one follower."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.path: str | None = None
        self.written = 0
        self.done = False
        self.broken = False
        self.error: BaseException | None = None

    def start(self, path: str, offset: int) -> None:
        with self._cond:
            if self.path is not None and self.path != path:
                self.broken = True
            self.path, self.written = path, offset
            self._cond.notify_all()

    def wrote(self, total: int) -> None:
        with self._cond:
            self.written = total
            self._cond.notify_all()

    def restart(self) -> None:
        """The data written so far is being thrown away."""
        with self._cond:
            self.broken = True
            self._cond.notify_all()

    def finish(self, error: BaseException | None = None, path: str | None = None, size: int = 0) -> None:
        """The download ended: the blob of ``size`` bytes is at ``path``, or it failed with ``error``.

        The blob may have been written by another process, this feed never seeing a byte."""
        with self._cond:
            self.done = True
            self.error = error
            if path is not None:
                self.path = path
                self.written = size
            self._cond.notify_all()

    def wait_for(self, pos: int) -> tuple[str, int, bool]:
        """Block until bytes past ``pos`` exist or the download ended; returns (path, written, done)."""
        with self._cond:
            while not self.broken and self.error is None and (self.path is None or
                                                                (self.written <= pos and not self.done)):
                self._cond.wait()
            self._check()
            assert self.path is not None
            return self.path, self.written, self.done

    def wait_beyond(self, written: int) -> None:
        """Block until more than ``written`` bytes are reported or the download ended."""
        with self._cond:
            while not self.broken and self.error is None and not self.done and self.written <= written:
                self._cond.wait()
            self._check()

    def _check(self) -> None:
        if self.broken:
            raise FeedBroken("the download started over")
        if self.error is not None:
            raise FeedBroken(f"the download failed: {self.error}")


class FollowingReader(io.RawIOBase):
    """A stream over a file that is still being written, ending when its writer says so."""

    def __init__(self, feed: BlobFeed) -> None:
        self._feed = feed
        self._fd: int | None = None
        self._pos = 0

    def readable(self) -> bool:
        return True

    def _open(self) -> int:
        while self._fd is None:
            path, _, done = self._feed.wait_for(self._pos)
            try:
                self._fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                if done:
                    raise
                self._feed.wait_beyond(1 << 62)  # renamed on commit: wait for the final path
        return self._fd

    def readinto(self, b: "bytearray | memoryview") -> int:  # type: ignore[override]
        while True:
            _, written, done = self._feed.wait_for(self._pos)
            want = min(len(b), written - self._pos)
            if want <= 0:
                return 0  # the download is complete and everything was read
            n = os.preadv(self._open(), [memoryview(b)[:want]], self._pos)
            if n > 0:
                self._pos += n
                return n
            if done:
                raise FeedBroken(f"the blob ended at {self._pos} bytes, {written} were announced")
            # reported but not yet on disk (the writer's last small piece is flushed on commit)
            self._feed.wait_beyond(written)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        super().close()
