"""Exceptions that carry a message for people and the exit code docker would use.

Every layer raises these; the CLI prints ``Error: <message>`` on one line and exits with
``exit_code``. Commands that start containers (run, create, start, exec) turn dockyard's own
failures into 125 as docker does; the others use 1, also as docker does.
"""
from __future__ import annotations


class DockyardError(Exception):
    """Base class: a failure with a one-line, human message."""

    exit_code: int = 1
    #: what the CLI prints before the message; docker prints some errors bare (template errors)
    cli_prefix: str = "Error: "

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message


class NotFound(DockyardError):
    """An object (image, container, blob, volume, network, ...) does not exist."""


class Conflict(DockyardError):
    """The request clashes with the current state (a name in use, an image in use, ...)."""


class InvalidArgument(DockyardError):
    """The user's input is malformed (a bad reference, a bad flag value, ...)."""


class DigestMismatch(DockyardError):
    """Content did not hash to the digest it was announced with."""


class InvalidContent(DockyardError):
    """An archive, manifest or config could not be understood (corrupt, truncated, unknown type)."""


class Unsupported(DockyardError):
    """The request is understood but not supported here."""
