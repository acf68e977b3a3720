"""Errors of the registry client, and how a registry's JSON error body becomes one line.

Registries answer failures with ``{"errors": [{"code": "MANIFEST_UNKNOWN", "message": ...}]}``;
docker shows such an error as ``manifest unknown: <message>`` (the code lower-cased, underscores
as spaces), and so do we, so that messages read the same with either tool.
"""
from __future__ import annotations

import json

from dockyard.errors import DockyardError


class RegistryError(DockyardError):
    """The registry refused a request.

    ``status`` is the HTTP status, ``code`` the spec's error code, ``text`` the registry's own
    words (``denied: requested access to the resource is denied``) for callers that compose
    docker's messages; ``message`` also names the request.
    """

    def __init__(self, message: str, status: int = 0, code: str = "", text: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.text = text or message


class Unauthorized(RegistryError):
    """Credentials are missing or wrong, or the token does not grant the repository."""


class TransferError(DockyardError):
    """The connection broke (refused, reset, timed out, cut short): retrying may succeed.

    A download that fails this way keeps its partial data in the content store's ingest area,
    so the next attempt resumes with a ``Range`` request instead of starting over.
    """


def describe_body(status: int, reason: str, body: bytes) -> tuple[str, str]:
    """(code, docker-style text) for an error response, e.g. ``("MANIFEST_UNKNOWN", "manifest unknown: ...")``."""
    try:
        doc = json.loads(body.decode("utf-8", "replace")) if body else None
    except ValueError:
        doc = None
    errors = doc.get("errors") if isinstance(doc, dict) else None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        first = errors[0]
        code = str(first.get("code") or "")
        message = str(first.get("message") or "")
        label = code.lower().replace("_", " ") or "error"
        text = f"{label}: {message}" if message else label
        return code, _one_line(text)
    if isinstance(doc, dict) and isinstance(doc.get("details") or doc.get("error"), str):
        return "", _one_line(str(doc.get("details") or doc.get("error")))
    if status == 401:
        return "UNAUTHORIZED", "unauthorized: authentication required"
    if status == 403:
        return "DENIED", "denied: requested access to the resource is denied"
    return "", f"{status} {reason}".strip()


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
