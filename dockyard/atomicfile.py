"""Replace a file all at once: write beside it, then rename over it.

Readers see the old file or the new one, never half of one, and a failure (or a kill) in the
middle leaves the target as it was plus, at worst, a hidden temporary file in the same directory.
Used where a user's file is rewritten (docker's ``config.json``, ``export -o``).
"""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from typing import BinaryIO, Iterator


@contextmanager
def replacing(path: str | os.PathLike[str], prefix: str, mode: int = 0o600,
              durable: bool = False) -> Iterator[BinaryIO]:
    """A binary file to write ``path``'s new content to; renamed over ``path`` when the block
    ends without an exception (after an fsync if ``durable``), removed otherwise."""
    target = os.fspath(path)
    fd, tmp = tempfile.mkstemp(prefix=prefix, dir=os.path.dirname(os.path.abspath(target)))
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            yield f
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
