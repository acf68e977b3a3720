"""The distribution spec's error codes, as one exception type the HTTP layer turns into a response.

Every failure a client can see is a :class:`RegistryError` carrying the spec's code (``BLOB_UNKNOWN``,
``DENIED``, ...; the spec allows no others in a 4xx JSON body), the HTTP status the spec pairs with
it (or the one the situation needs, e.g. 416 for a chunk out of order) and a message for people. Handlers raise;
the server renders ``{"errors": [{"code", "message", "detail"}]}`` with the right status, so no
handler can forget the body format or store half a request before failing.

The body's ``message`` is the code's fixed text, word for word the CNCF registry's (clients such as
docker print it: "manifest unknown: manifest unknown"), unless the error is raised ``public``;
the handler's own explanation goes to the access log instead.
"""
from __future__ import annotations

from typing import Any

# code -> (default HTTP status, default message) as in OCI distribution-spec v1.1 "Error Codes"
CODES: dict[str, tuple[int, str]] = {
    "BLOB_UNKNOWN": (404, "blob unknown to registry"),
    "BLOB_UPLOAD_INVALID": (400, "blob upload invalid"),
    "BLOB_UPLOAD_UNKNOWN": (404, "blob upload unknown to registry"),
    "DIGEST_INVALID": (400, "provided digest did not match uploaded content"),
    "MANIFEST_BLOB_UNKNOWN": (400, "blob unknown to registry"),
    "MANIFEST_INVALID": (400, "manifest invalid"),
    "MANIFEST_UNKNOWN": (404, "manifest unknown"),
    "NAME_INVALID": (400, "invalid repository name"),
    "NAME_UNKNOWN": (404, "repository name not known to registry"),
    "SIZE_INVALID": (400, "provided length did not match content length"),
    "UNAUTHORIZED": (401, "authentication required"),
    "DENIED": (403, "requested access to the resource is denied"),
    "UNSUPPORTED": (405, "The operation is unsupported."),
    "TOOMANYREQUESTS": (429, "too many requests"),
    # not in the spec: the CNCF registry's answer to a catalog page larger than it serves
    "PAGINATION_NUMBER_INVALID": (400, "invalid number of results requested"),
}


NO_DETAIL: Any = object()  # "no detail at all", where a code's default detail would be {}


class RegistryError(Exception):
    """A spec error: ``code`` from :data:`CODES`, optional status override, detail and headers."""

    def __init__(self, code: str, message: str | None = None, *, status: int | None = None,
                 detail: Any = None, headers: dict[str, str] | None = None, public: bool = False) -> None:
        default_status, default_message = CODES[code]
        self.code = code
        self.message = message or default_message
        self.public_message = self.message if public else default_message
        self.status = status or default_status
        # the CNCF registry's detail for these codes when it has nothing to add
        if detail is NO_DETAIL:
            detail = None
        elif detail is None and code in ("MANIFEST_INVALID", "BLOB_UPLOAD_INVALID"):
            detail = {}
        self.detail = detail
        self.headers = dict(headers or {})
        super().__init__(f"{code}: {self.message}")

    def body(self) -> dict[str, Any]:
        err: dict[str, Any] = {"code": self.code, "message": self.public_message}
        if self.detail is not None or self.code == "UNAUTHORIZED":  # CNCF's says "detail":null
            err["detail"] = self.detail
        return {"errors": [err]}
