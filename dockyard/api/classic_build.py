"""The classic builder's output for ``POST /build`` (what ``DOCKER_BUILDKIT=0 docker build``
and docker-py's ``images.build`` get from dockerd): ``Step 2/5 : RUN make``, the step's output
as it was printed, `` ---> Using cache`` for a cached step, and a failing RUN as ``The command
'/bin/sh -c make' returned a non-zero code: 2`` with that code in ``errorDetail`` (the docker CLI
exits with it).

dockyard's builder reports BuildKit-style steps (only FROM and the filesystem-changing ones);
the classic builder numbers every instruction, so the Dockerfile's instructions are numbered
here and the ones between two reported steps (ARG, ENV, CMD, ...) are shown as they are passed.
"""
from __future__ import annotations

import re
from typing import Any, TextIO

from dockyard.build.progress import Progress, Step

_STEP_NAME = re.compile(r"^\[(?:[^\]]*? )?\d+/\d+\] (.*)$")
# how the builder words a failing RUN (BuildKit's newer and older spellings)
_FAILED_RUN = (re.compile(r'^process "(.*)" did not complete successfully: exit code: (\d+)$', re.S),
               re.compile(r'^executor failed running \[(.*)\]: exit code: (\d+)$', re.S))
EXPORT_STEP = "exporting to image"


def instruction_texts(dockerfile: bytes, target: str | None = None) -> list[str]:
    """The Dockerfile's instructions as the classic builder shows them (first line of each),
    up to the end of the ``target`` stage when one is named (the classic builder stops there)."""
    from dockyard.build.dockerfile import parse

    try:
        nodes = parse(dockerfile).nodes
    except Exception:  # noqa: BLE001 - the build itself reports the syntax error
        return []
    if target:
        in_target = False
        for i, n in enumerate(nodes):
            if n.cmd == "FROM":
                if in_target:
                    nodes = nodes[:i]
                    break
                args = [a.lower() for a in n.args]
                in_target = len(args) >= 3 and args[-2] == "as" and args[-1] == target.lower()
    return [n.original.split("\n", 1)[0].strip() for n in nodes]


class TextBuffer:
    """Build output held back (``q=1``): sent only if the build fails, as dockerd does."""

    def __init__(self) -> None:
        self._parts: list[str] = []

    def write(self, text: str) -> int:
        self._parts.append(text)
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def text(self) -> str:
        return "".join(self._parts)


class ClassicProgress(Progress):
    """A build progress writing the classic builder's text."""

    def __init__(self, out: "TextIO | TextBuffer", instructions: list[str]) -> None:
        super().__init__("plain", out)  # type: ignore[arg-type]
        self.instructions = instructions
        self._next = 0
        self._hidden: set[int] = set()

    def _announce(self, text: str) -> None:
        """``Step i/n`` lines for the instructions up to the one reported as ``text``."""
        total = len(self.instructions)
        found = self._find(lambda t: t == text)
        if found is None:  # the builder names it its own way (FROM docker.io/library/x): by command
            command = text.split(" ", 1)[0].upper()
            found = self._find(lambda t: t.split(" ", 1)[0].upper() == command)
        if found is None:
            self._write(f"Step {self._next}/{total} : {text}\n")  # not in the file: shown where we are
            return
        for j in range(self._next, found + 1):
            self._write(f"Step {j + 1}/{total} : {self.instructions[j]}\n")
        self._next = found + 1

    def _find(self, wanted: Any) -> int | None:
        return next((i for i in range(self._next, len(self.instructions)) if wanted(self.instructions[i])), None)

    def _announce_rest(self) -> None:
        total = len(self.instructions)
        for j in range(self._next, total):
            self._write(f"Step {j + 1}/{total} : {self.instructions[j]}\n")
        self._next = total

    def start(self, name: str) -> Step:
        with self._lock:
            self._counter += 1
            step = Step(self._counter, name)
            if name == EXPORT_STEP:
                self._hidden.add(step.number)
                self._announce_rest()
            else:
                m = _STEP_NAME.match(name)
                self._announce(m.group(1) if m else name)
        return step

    def _line(self, step: Step, line: bytes) -> None:
        if step.number not in self._hidden:
            self._write(line.decode("utf-8", "replace") + "\n")

    def note(self, step: Step, text: str) -> None:
        pass  # "writing image ... done": the classic builder says "Successfully built" instead

    def done(self, step: Step, cached: bool = False) -> None:
        with self._lock:
            if step.finished:
                return
            step.finished = True
            self._flush_partial(step)
            if cached:
                self._write(" ---> Using cache\n")

    def error(self, step: Step, message: str) -> None:
        with self._lock:
            if not step.finished:
                step.finished = True
                self._flush_partial(step)

    def finish(self, ok: bool) -> None:
        pass


def classic_error(exc: Any) -> tuple[str, int]:
    """A build failure as dockerd's classic builder words it, and the exit code it carries
    (a failing RUN's own code; 1 for anything else, which the docker CLI uses too)."""
    message = getattr(exc, "message", None) or str(exc)
    code = getattr(exc, "exit_status", None)
    for pattern in _FAILED_RUN:
        m = pattern.match(message)
        if m:
            return f"The command '{m.group(1)}' returned a non-zero code: {m.group(2)}", int(m.group(2))
    return message, int(code) if isinstance(code, int) and code > 0 else 1
