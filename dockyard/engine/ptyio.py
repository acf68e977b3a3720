"""Reading a pty master: Linux reports the end of a terminal (every holder of its other side
gone) as EIO, not as an empty read. Callers want the usual EOF; this gives it to them."""
from __future__ import annotations

import errno
import os


def read_pty(fd: int, size: int = 65536) -> bytes:
    """``os.read`` that returns b"" at a terminal's end (EIO); other errors propagate
    (``BlockingIOError`` included, for non-blocking callers)."""
    try:
        return os.read(fd, size)
    except OSError as exc:
        if exc.errno != errno.EIO:
            raise
        return b""
