"""Build progress, as BuildKit prints it.

``plain``: one block per step on stderr — ``#5 [2/4] RUN make``, the step's output lines with
the seconds since it started, then ``#5 DONE 0.4s`` or ``#5 CACHED`` or ``#5 ERROR: ...``.
``tty`` (``--progress auto`` on a terminal): a compact ``=> [2/4] RUN make  0.4s`` line per
finished step, step output as it arrives, and a ``[+] Building`` summary. ``quiet`` (``-q``):
nothing, except the output of a step that fails.
"""
from __future__ import annotations

import sys
import threading
import time
from typing import TextIO


class Step:
    """One step as the progress output shows it."""

    def __init__(self, number: int, name: str) -> None:
        self.number = number
        self.name = name
        self.started = time.monotonic()
        self.output = bytearray()
        self.partial = b""
        self.finished = False

    def elapsed(self) -> float:
        return time.monotonic() - self.started


class Progress:
    """Thread-safe progress writer; ``mode`` is plain, tty or quiet."""

    def __init__(self, mode: str = "plain", out: TextIO | None = None) -> None:
        self.mode = mode
        self.out = out or sys.stderr
        self._lock = threading.Lock()
        self._counter = 0
        self._started = time.monotonic()
        self._done = 0
        self._total = 0

    def _write(self, text: str) -> None:
        try:
            self.out.write(text)
            self.out.flush()
        except (BrokenPipeError, ValueError):
            pass

    def start(self, name: str) -> Step:
        with self._lock:
            self._counter += 1
            self._total += 1
            step = Step(self._counter, name)
            if self.mode == "plain":
                self._write(f"#{step.number} {name}\n")
        return step

    def log(self, step: Step, data: bytes) -> None:
        """Output of a running step (arbitrary chunks; printed line by line)."""
        with self._lock:
            step.output += data
            if self.mode == "quiet":
                return
            text = step.partial + data
            lines = text.split(b"\n")
            step.partial = lines.pop()
            for line in lines:
                self._line(step, line)

    def _line(self, step: Step, line: bytes) -> None:
        s = line.decode("utf-8", "replace").rstrip("\r")
        if self.mode == "plain":
            self._write(f"#{step.number} {step.elapsed():.3f} {s}\n")
        elif self.mode == "tty":
            self._write(f"#{step.number} {step.elapsed():.3f} {s}\n")

    def note(self, step: Step, text: str) -> None:
        """A status line inside a step (``writing image sha256:... done``)."""
        with self._lock:
            if self.mode == "plain":
                self._write(f"#{step.number} {text}\n")

    def _flush_partial(self, step: Step) -> None:
        if step.partial and self.mode != "quiet":
            self._line(step, step.partial)
        step.partial = b""

    def done(self, step: Step, cached: bool = False) -> None:
        with self._lock:
            if step.finished:
                return
            step.finished = True
            self._done += 1
            self._flush_partial(step)
            if self.mode == "plain":
                self._write(f"#{step.number} CACHED\n\n" if cached else f"#{step.number} DONE {step.elapsed():.1f}s\n\n")
            elif self.mode == "tty":
                prefix = "=> CACHED " if cached else "=> "
                self._write(f"{prefix}{step.name:<60} {step.elapsed():.1f}s\n")

    def error(self, step: Step, message: str) -> None:
        with self._lock:
            if step.finished:
                return
            step.finished = True
            self._flush_partial(step)
            if self.mode == "quiet" and step.output:
                self._write(step.output.decode("utf-8", "replace"))
                if not step.output.endswith(b"\n"):
                    self._write("\n")
            elif self.mode == "plain":  # then BuildKit's summary of the failed step
                self._write(f"#{step.number} ERROR: {message}\n------\n > {step.name}:\n------\n")
            elif self.mode == "tty":
                self._write(f"=> ERROR {step.name:<54} {step.elapsed():.1f}s\n")

    def warn(self, text: str) -> None:
        """A warning line in the log; ``-q`` hides it, as docker's ``build -q`` does."""
        if self.mode == "quiet":
            return
        with self._lock:
            self._write(text.rstrip("\n") + "\n")

    def finish(self, ok: bool) -> None:
        with self._lock:
            if self.mode == "tty":
                state = "FINISHED" if ok else "ERROR"
                self._write(f"[+] Building {time.monotonic() - self._started:.1f}s ({self._done}/{self._total}) {state}\n")
