"""docker's pull/push output: a line per layer, redrawn with a progress bar on a terminal.

On a terminal each layer keeps one line, rewritten in place (cursor up, clear, write, cursor down)
with docker's bar ``Downloading [=====>      ]  1.23MB/4.56MB``. Anywhere else only status changes
are printed, one plain line each (``316a00387565: Pull complete``), exactly like docker's
non-interactive output, so logs and tests see stable text.
"""
from __future__ import annotations

import threading
import time
from typing import TextIO

_BAR_WIDTH = 50
_MIN_INTERVAL = 0.1


def human_size(n: float) -> str:
    """docker's HumanSizeWithPrecision(n, 3): decimal units, three significant digits."""
    units = ("B", "kB", "MB", "GB", "TB", "PB")
    i = 0
    while n >= 1000 and i < len(units) - 1:
        n /= 1000.0
        i += 1
    return f"{n:.3g}{units[i]}"


def bar(current: int, total: int) -> str:
    """``[====>     ]  1.2MB/3.4MB`` (just the numbers when the total is unknown)."""
    if total <= 0:
        return f"{human_size(current):>8}"
    filled = min(_BAR_WIDTH, int(current * 100 / total) // 2)
    return f"[{'=' * filled}>{' ' * (_BAR_WIDTH - filled)}] {human_size(current):>8}/{human_size(total)}"


class Progress:
    """Where pull/push report what they do. ``out=None`` makes it silent."""

    def __init__(self, out: TextIO | None, tty: bool | None = None) -> None:
        self.out = out
        if tty is None:
            try:
                tty = bool(out is not None and out.isatty())
            except (AttributeError, ValueError):
                tty = False
        self.tty = tty
        self._lock = threading.Lock()
        self._ids: list[str] = []          # the layer lines currently on screen (terminal only)
        self._text: dict[str, str] = {}
        self._last: dict[str, float] = {}

    def _write(self, text: str) -> None:
        assert self.out is not None
        self.out.write(text)
        self.out.flush()

    def message(self, text: str) -> None:
        """A line of its own (``Digest: ...``); later layer lines start a new block."""
        if self.out is None:
            return
        with self._lock:
            self._ids.clear()
            self._write(text + "\n")

    def layer(self, layer_id: str, status: str) -> None:
        """A layer's status changed (``Pulling fs layer``, ``Pushed``, ...)."""
        self._show(layer_id, f"{layer_id}: {status}", always=True)

    def advance(self, layer_id: str, status: str, current: int, total: int) -> None:
        """Bytes moved for a layer: a bar on a terminal, nothing in plain output."""
        if not self.tty:
            return
        self._show(layer_id, f"{layer_id}: {status} {bar(current, total)}", always=current >= total > 0)

    def _show(self, layer_id: str, line: str, always: bool) -> None:
        if self.out is None:
            return
        with self._lock:
            if not self.tty:
                self._write(line + "\n")
                return
            now = time.monotonic()
            if not always and now - self._last.get(layer_id, 0.0) < _MIN_INTERVAL:
                return
            self._last[layer_id] = now
            if self._text.get(layer_id) == line and layer_id in self._ids:
                return
            self._text[layer_id] = line
            if layer_id not in self._ids:
                self._ids.append(layer_id)
                self._write(line + "\n")
                return
            up = len(self._ids) - self._ids.index(layer_id)
            self._write(f"\x1b[{up}A\r\x1b[2K{line}\r\x1b[{up}B")


SILENT = Progress(None)
