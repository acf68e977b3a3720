"""Output framing and the copy loops of hijacked connections.

Without a TTY docker multiplexes stdout and stderr on one stream: each piece is preceded by
8 bytes — the stream (1 stdout, 2 stderr), three zero bytes, the length (big-endian uint32).
The monitor's wire format uses the same header, so its frames go to the client unchanged.
With a TTY there is one stream and the bytes go as they are.
"""
from __future__ import annotations

import os
import threading
from typing import Any, Callable

from dockyard.engine.protocol import HEADER


class Framer:
    def __init__(self, tty: bool) -> None:
        self.tty = tty

    def frame(self, stream: int, data: bytes) -> bytes:
        if self.tty or not data:
            return data
        return HEADER.pack(stream, len(data)) + data


def pump_input(recv: Callable[[], bytes], deliver: Callable[[bytes], Any], at_end: Callable[[], Any],
               detach_keys: bytes = b"", on_detach: Callable[[], Any] | None = None) -> threading.Thread:
    """A thread copying what the client sends (stdin) until it closes its side (or a write
    fails); ``at_end`` runs last in every case (it closes what the thread wrote to). With
    ``detach_keys`` (docker's ctrl-p ctrl-q) the sequence detaches instead of being delivered."""
    from dockyard.engine.terminal import DetachScanner

    scanner = DetachScanner(detach_keys)

    def run() -> None:
        try:
            while True:
                data = recv()
                if not data:
                    return
                detached = False
                if detach_keys:
                    data, detached = scanner.feed(data)
                if data:
                    deliver(data)
                if detached:
                    if on_detach is not None:
                        on_detach()
                    return
        except OSError:
            return
        finally:
            try:
                at_end()
            except OSError:
                pass

    t = threading.Thread(target=run, name="api-stdin", daemon=True)
    t.start()
    return t


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
