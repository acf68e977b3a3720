"""Build failures, each a one-line message naming what went wrong (file, line, step, path)."""
from __future__ import annotations

from dockyard.errors import DockyardError, InvalidArgument


class BuildError(DockyardError):
    """A build cannot go on: bad Dockerfile, missing source, failing step.

    docker's BuildKit client prints a failed build's error bare (no "Error: "). ``definition``
    is set when the Dockerfile itself was refused (parse, stages, target) before any step ran:
    BuildKit words those as the frontend's failure to create its build definition.
    """

    cli_prefix = ""
    definition = False


class DefinitionError(BuildError):
    """A Dockerfile value BuildKit refuses while making its definition (an EXPOSE port)."""

    definition = True


class DockerfileSyntaxError(BuildError, InvalidArgument):
    """The Dockerfile cannot be parsed; the message names the file, the line and the instruction."""

    def __init__(self, message: str, filename: str = "Dockerfile", line: int = 0,
                 instruction: str = "") -> None:
        # docker's words, both builders': "dockerfile parse error line 2: unknown instruction: FOO"
        text = f"dockerfile parse error line {line}: {message}" if line else f"dockerfile parse error: {message}"
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
