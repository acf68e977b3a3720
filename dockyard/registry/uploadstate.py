"""The ``_state`` query parameter of upload Locations, in the CNCF registry's shape.

The CNCF registry puts its upload state (repository, upload id, offset, start time) into every
upload Location as ``?_state=<base64 JSON>`` and answers ``BLOB_UPLOAD_INVALID`` (404) to a request
on an upload URL that does not carry a matching one. Clients only ever follow the Location they
were given, so dockyard does the same: identical URL shapes and identical answers to a made-up or
cross-repository upload URL. The token is a consistency check, not a secret: the upload's real
state stays in storage (so a client may resume from an older Location after a broken connection).
"""
from __future__ import annotations

import base64
import json
import time
from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    from dockyard.registry.store import Upload


def pack_upload_state(upload: "Upload") -> str:
    """The URL-quoted ``_state`` value for ``upload`` at its current size."""
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(upload.started))
    doc = {"Name": upload.repo, "UUID": upload.id, "Offset": upload.size, "StartedAt": started}
    raw = base64.urlsafe_b64encode(json.dumps(doc, separators=(",", ":")).encode()).decode()
    return quote(raw, safe="")


def upload_state_matches(value: str | None, repo: str, upload_id: str) -> bool:
    """True if ``value`` (already URL-decoded) is a state token for this repository and upload."""
    if not value:
        return False
    try:
        doc = json.loads(base64.urlsafe_b64decode(value.encode() + b"=" * (-len(value) % 4)))
    except ValueError:
        return False
    return isinstance(doc, dict) and doc.get("Name") == repo and doc.get("UUID") == upload_id
