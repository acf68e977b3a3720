"""Authentication with a registry: 401 challenges, Docker token auth, Basic auth.

A registry that wants credentials answers 401 with ``WWW-Authenticate``:

- ``Bearer realm="https://auth/token",service="registry",scope="repository:a/b:pull"``: get a
  token from the realm for the scopes this operation needs (``repository:<name>:pull`` or
  ``pull,push``; a cross-repository mount adds ``repository:<source>:pull``), sending the user's
  credentials with Basic auth (or, for an identity token, the OAuth2 refresh-token grant), then
  send ``Authorization: Bearer <token>``. Tokens are cached per set of scopes until they expire.
- ``Basic realm="..."``: send the credentials with every request.

Once a registry's challenge is known (from the ``/v2/`` ping), later requests carry the right
header from the start instead of paying a 401 round trip each.
"""
from __future__ import annotations

import base64
import json
import re
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable
from urllib.parse import urlencode, urlsplit

from dockyard.distribution.errors import RegistryError, Unauthorized, describe_body
from dockyard.distribution.credentials import Credentials

if TYPE_CHECKING:  # pragma: no cover
    from dockyard.distribution.transport import Response, Transport

_TOKEN_MAX = 1 << 20
_MIN_LIFETIME = 60.0
_TOKEN_PARAM = re.compile(r'\s*([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?')


@dataclass(frozen=True)
class Challenge:
    scheme: str                    # "bearer" or "basic" (lower case)
    params: tuple[tuple[str, str], ...]

    def get(self, name: str, default: str = "") -> str:
        for k, v in self.params:
            if k == name:
                return v
        return default


def parse_challenges(values: Iterable[str]) -> list[Challenge]:
    """Parse ``WWW-Authenticate`` header values into challenges (RFC 7235, as registries use it)."""
    out: list[Challenge] = []
    for value in values:
        text = value.strip()
        while text:
            m = re.match(r"([A-Za-z][A-Za-z0-9_-]*)\s*", text)
            if not m:
                break
            scheme = m.group(1).lower()
            text = text[m.end():]
            params: list[tuple[str, str]] = []
            while True:
                pm = _TOKEN_PARAM.match(text)
                if not pm or (pm.group(2) is None and pm.group(3) is None):
                    break
                value_ = pm.group(2) if pm.group(2) is not None else pm.group(3)
                params.append((pm.group(1).lower(), re.sub(r"\\(.)", r"\1", value_)))
                text = text[pm.end():]
            out.append(Challenge(scheme, tuple(params)))
            text = text.lstrip(", ")
    return out


def basic_header(creds: Credentials) -> str:
    return "Basic " + base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()


class Authorizer:
    """Adds the right ``Authorization`` header to requests for one registry."""

    def __init__(self, transport: "Transport", credentials: Callable[[], Credentials | None]) -> None:
        self._transport = transport
        self._credentials_source = credentials
        self._creds_loaded = False
        self._creds: Credentials | None = None
        self._challenge: Challenge | None = None
        self._tokens: dict[frozenset[str], tuple[str, float]] = {}
        self._lock = threading.Lock()
        self._fetch_locks: dict[frozenset[str], threading.Lock] = {}

    @property
    def credentials(self) -> Credentials | None:
        if not self._creds_loaded:
            self._creds = self._credentials_source()
            self._creds_loaded = True
        return self._creds

    @property
    def challenge(self) -> Challenge | None:
        return self._challenge

    def headers(self, scopes: Iterable[str]) -> dict[str, str]:
        """The header for a request needing ``scopes``, fetching a token when there is none yet."""
        ch = self._challenge
        if ch is None:
            return {}
        if ch.scheme == "basic":
            creds = self.credentials
            return {"Authorization": basic_header(creds)} if creds and creds.username else {}
        key = frozenset(scopes)
        with self._lock:
            cached = self._tokens.get(key)
            lock = self._fetch_locks.setdefault(key, threading.Lock())
        if cached and cached[1] > time.monotonic():
            return {"Authorization": f"Bearer {cached[0]}"}
        with lock:  # one fetch per scope set, however many threads need it
            with self._lock:
                cached = self._tokens.get(key)
            if not cached or cached[1] <= time.monotonic():
                cached = self._fetch_token(ch, key)
                with self._lock:
                    self._tokens[key] = cached
        return {"Authorization": f"Bearer {cached[0]}"}

    def learn(self, resp: "Response", scopes: Iterable[str]) -> bool:
        """Take a 401's challenge; returns whether retrying with new credentials can help."""
        challenges = parse_challenges(resp.headers.get_all("WWW-Authenticate") or [])
        chosen = next((c for c in challenges if c.scheme == "bearer"), None) or \
            next((c for c in challenges if c.scheme == "basic"), None)
        if chosen is None:
            return False
        with self._lock:
            self._challenge = chosen
            self._tokens.pop(frozenset(scopes), None)
        if chosen.scheme == "basic":
            creds = self.credentials
            return bool(creds and creds.username)
        return True

    # -- tokens -------------------------------------------------------------------------------
    def _fetch_token(self, ch: Challenge, scopes: frozenset[str]) -> tuple[str, float]:
        realm = ch.get("realm")
        parts = urlsplit(realm)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise RegistryError(f"the registry's token realm {realm!r} is not an http(s) URL")
        service = ch.get("service")
        wanted = sorted(scopes | ({ch.get("scope")} if ch.get("scope") else set()))
        creds = self.credentials
        if creds and creds.identity_token:
            form = {"grant_type": "refresh_token", "refresh_token": creds.identity_token,
                    "client_id": "dockyard", "service": service, "scope": " ".join(wanted)}
            resp = self._transport.request("POST", realm, body=urlencode(form).encode(),
                                           headers={"Content-Type": "application/x-www-form-urlencoded"})
        else:
            query: list[tuple[str, str]] = []
            if service:
                query.append(("service", service))
            query += [("scope", s) for s in wanted]
            headers = {}
            if creds and creds.username:
                query.append(("account", creds.username))
                headers["Authorization"] = basic_header(creds)
            sep = "&" if parts.query else "?"
            url = realm + (sep + urlencode(query) if query else "")
            resp = self._transport.request("GET", url, headers=headers)
        body = resp.read(_TOKEN_MAX)
        if resp.status in (401, 403):
            code, text = describe_body(resp.status, resp.reason, body)
            if not body.strip() and creds:
                text = "unauthorized: incorrect username or password"
            raise Unauthorized(text, resp.status, code or "UNAUTHORIZED", text)
        if resp.status != 200:
            _, text = describe_body(resp.status, resp.reason, body)
            raise RegistryError(f"getting a token from {realm} failed: {text}", resp.status)
        try:
            doc = json.loads(body)
            token = doc.get("token") or doc.get("access_token")
            lifetime = float(doc.get("expires_in") or _MIN_LIFETIME)
        except (ValueError, AttributeError, TypeError):
            raise RegistryError(f"the token server {realm} answered something that is not a token") from None
        if not isinstance(token, str) or not token:
            raise RegistryError(f"the token server {realm} answered without a token")
        # renew a little early so that a token never expires between the check and its use
        return token, time.monotonic() + max(lifetime, 10.0) - 5.0
