"""Build failures, each a one-line message naming what went wrong (file, line, step, path)."""
from __future__ import annotations

from dockyard.errors import DockyardError, InvalidArgument


class BuildError(DockyardError):
    """A build cannot go on: bad Dockerfile, missing source, failing step."""


class DockerfileSyntaxError(BuildError, InvalidArgument):
    """The Dockerfile cannot be parsed; the message names the file, the line and the instruction."""

    def __init__(self, message: str, filename: str = "Dockerfile", line: int = 0,
                 instruction: str = "") -> None:
        where = f"{filename}:{line}" if line else filename
        text = f"dockerfile parse error on line {line}: {message}" if line else f"dockerfile parse error: {message}"
        if instruction:
            text += f" (in {where}: {instruction})"
        elif line:
            text += f" (in {where})"
        super().__init__(text)
        self.filename = filename
        self.line = line
        self.instruction = instruction


class StepFailed(BuildError):
    """A RUN step exited non-zero; ``output`` holds what it printed, ``exit_status`` its code."""

    def __init__(self, message: str, exit_status: int, output: bytes = b"") -> None:
        super().__init__(message)
        self.exit_status = exit_status
        self.output = output
