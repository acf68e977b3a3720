"""Progress as docker's JSON messages (what ``docker pull`` and ``docker build`` render).

Pull and push report through :class:`dockyard.distribution.progress.Progress`; here each
report becomes one message of the response stream: ``{"status": "Pulling fs layer", "id":
"a1b2c3"}``, ``{"status": "Downloading", "progressDetail": {"current": n, "total": m}, ...}``.
Builds write text; each write becomes ``{"stream": text}``.
"""
from __future__ import annotations

import re
import threading
import time
from typing import Any

from dockyard.distribution.progress import Progress, bar

_PULLING = re.compile(r"^(\S+): Pulling from (.+)$")
_MIN_INTERVAL = 0.1


class JSONProgress(Progress):
    """A distribution progress that writes docker's JSON messages to a response stream."""

    def __init__(self, stream: Any) -> None:
        super().__init__(None, tty=False)
        self.stream = stream
        self._json_lock = threading.Lock()
        self._last_advance: dict[str, float] = {}

    def _send(self, msg: dict[str, Any]) -> None:
        with self._json_lock:
            self.stream.json(msg)

    def message(self, text: str) -> None:
        m = _PULLING.match(text)
        if m:
            self._send({"status": f"Pulling from {m.group(2)}", "id": m.group(1)})
        else:
            self._send({"status": text})

    def layer(self, layer_id: str, status: str) -> None:
        self._send({"status": status, "progressDetail": {}, "id": layer_id})

    def advance(self, layer_id: str, status: str, current: int, total: int) -> None:
        now = time.monotonic()
        if now - self._last_advance.get(layer_id, 0.0) < _MIN_INTERVAL and not (total and current >= total):
            return
        self._last_advance[layer_id] = now
        detail: dict[str, int] = {"current": int(current)}
        if total > 0:
            detail["total"] = int(total)
        self._send({"status": status, "progressDetail": detail, "progress": bar(current, total), "id": layer_id})


class TextToStream:
    """A text file whose writes become ``{"stream": text}`` messages (build output)."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        if text:
            with self._lock:
                self.stream.json({"stream": text})
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False
