"""Registry credentials in docker's ``config.json``, so that ``docker login`` and ``dockyard login`` share them.

The file is ``$DOCKYARD_CONFIG/config.json``, else ``$DOCKER_CONFIG/config.json``, else
``~/.docker/config.json``. Its format is docker's:

- ``auths``: ``{"localhost:5000": {"auth": base64("user:password")}}`` (Docker Hub's key is
  ``https://index.docker.io/v1/``); an ``identitytoken`` replaces the password for OAuth logins.
- ``credsStore``: a helper for every registry; ``credHelpers``: a helper per registry. A helper is
  the program ``docker-credential-<name>`` speaking docker's protocol: ``get`` / ``erase`` read the
  server address on stdin, ``store`` reads ``{"ServerURL", "Username", "Secret"}``; ``get`` answers
  the same JSON, and a ``Username`` of ``<token>`` marks an identity token.

The file is rewritten atomically (a temp file in the same directory, then ``rename``) with mode
0600, keeping every key we do not manage, so a crash never leaves half a file and other users of
the machine can never read the secrets.
"""
from __future__ import annotations

import base64
import binascii
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dockyard.distribution.hosts import credentials_key
from dockyard.errors import DockyardError, InvalidArgument

_HELPER_TIMEOUT = 60
_NOT_FOUND = "credentials not found"


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = ""
    identity_token: str = ""


def config_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Where docker's client configuration lives for this process."""
    if explicit:
        return Path(explicit)
    for var in ("DOCKYARD_CONFIG", "DOCKER_CONFIG"):
        value = os.environ.get(var)
        if value:
            return Path(value)
    return Path.home() / ".docker"


def _hostname(key: str) -> str:
    """docker's ConvertToHostname: ``https://host:5000/v1/`` → ``host:5000``."""
    for prefix in ("https://", "http://"):
        if key.startswith(prefix):
            key = key[len(prefix):]
            break
    return key.split("/", 1)[0]


class CredentialStore:
    """Get, store and erase registry credentials in docker's config.json (and its helpers)."""

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self.path = config_dir(directory) / "config.json"

    # -- the file -----------------------------------------------------------------------------
    def load(self) -> dict[str, Any]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise DockyardError(f"cannot read {self.path}: {exc.strerror}") from None
        if not text.strip():
            return {}
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise InvalidArgument(f"{self.path} is not valid JSON ({exc}); fix or remove it") from None
        if not isinstance(doc, dict):
            raise InvalidArgument(f"{self.path} is not a JSON object; fix or remove it")
        return doc

    def save(self, doc: dict[str, Any]) -> None:
        """Write the file atomically with mode 0600 (following a symlinked config.json, as docker does)."""
        target = Path(os.path.realpath(self.path))
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        data = json.dumps(doc, indent="\t").encode()
        from dockyard.atomicfile import replacing

        with replacing(target, ".config.json.", durable=True) as f:
            f.write(data)

    # -- lookups ------------------------------------------------------------------------------
    @staticmethod
    def _helper(doc: dict[str, Any], key: str) -> str | None:
        helpers = doc.get("credHelpers")
        if isinstance(helpers, dict):
            for k, name in helpers.items():
                if (k == key or _hostname(k) == _hostname(key)) and isinstance(name, str) and name:
                    return name
        store = doc.get("credsStore")
        return store if isinstance(store, str) and store else None

    @staticmethod
    def _auth_entry(doc: dict[str, Any], key: str) -> tuple[str, dict[str, Any]] | None:
        auths = doc.get("auths")
        if not isinstance(auths, dict):
            return None
        if isinstance(auths.get(key), dict):
            return key, auths[key]
        for k, v in auths.items():
            if isinstance(v, dict) and _hostname(k) == _hostname(key):
                return k, v
        return None

    def get(self, domain: str) -> Credentials | None:
        """The credentials for a registry domain, or None (anonymous)."""
        key = credentials_key(domain)
        doc = self.load()
        helper = self._helper(doc, key)
        if helper:
            return _helper_get(helper, key)
        found = self._auth_entry(doc, key)
        if found is None:
            return None
        k, entry = found
        username, password = entry.get("username") or "", entry.get("password") or ""
        auth = entry.get("auth")
        if isinstance(auth, str) and auth:
            try:
                username, sep, password = base64.b64decode(auth, validate=False).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                raise InvalidArgument(f'{self.path}: the "auth" of {k} is not base64 of user:password') from None
            if not sep:
                raise InvalidArgument(f'{self.path}: the "auth" of {k} is not base64 of user:password')
        token = entry.get("identitytoken") or ""
        if not username and not token:
            return None
        return Credentials(str(username), str(password), str(token))

    def store(self, domain: str, creds: Credentials) -> str:
        """Save credentials; returns where they went (the file path, or the helper's name)."""
        key = credentials_key(domain)
        doc = self.load()
        helper = self._helper(doc, key)
        auths = doc.get("auths")
        if not isinstance(auths, dict):
            auths = doc["auths"] = {}
        found = self._auth_entry(doc, key)
        if found is not None and found[0] != key:
            del auths[found[0]]
        if helper:
            secret = creds.identity_token or creds.password
            user = "<token>" if creds.identity_token else creds.username
            _run_helper(helper, "store", json.dumps({"ServerURL": key, "Username": user, "Secret": secret}))
            auths[key] = {}
            self.save(doc)
            return f"docker-credential-{helper}"
        entry: dict[str, Any] = {"auth": base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()}
        if creds.identity_token:
            entry = {"auth": base64.b64encode(f"{creds.username}:".encode()).decode(),
                     "identitytoken": creds.identity_token}
        auths[key] = entry
        self.save(doc)
        return str(self.path)

    def erase(self, domain: str) -> bool:
        """Forget a registry's credentials; returns whether there were any."""
        key = credentials_key(domain)
        if not self.path.exists():
            return False
        doc = self.load()
        helper = self._helper(doc, key)
        had = False
        if helper:
            try:
                _run_helper(helper, "erase", key)
                had = True
            except DockyardError as exc:
                if _NOT_FOUND not in str(exc):
                    raise
        found = self._auth_entry(doc, key)
        if found is not None:
            del doc["auths"][found[0]]
            had = True
            self.save(doc)
        return had

    def uses_helper(self, domain: str) -> bool:
        return self._helper(self.load(), credentials_key(domain)) is not None


# -- docker-credential-<name> protocol --------------------------------------------------------------
def _run_helper(name: str, action: str, stdin: str) -> str:
    program = f"docker-credential-{name}"
    if shutil.which(program) is None:
        raise DockyardError(f"credential helper {program} not found in $PATH "
                            "(config.json names it in credsStore or credHelpers)")
    try:
        proc = subprocess.run([program, action], input=stdin, capture_output=True, text=True,
                              timeout=_HELPER_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise DockyardError(f"credential helper {program} {action} did not answer in {_HELPER_TIMEOUT}s") from None
    except OSError as exc:
        raise DockyardError(f"cannot run credential helper {program}: {exc.strerror}") from None
    if proc.returncode != 0:
        out = (proc.stdout.strip() or proc.stderr.strip() or f"exit status {proc.returncode}").splitlines()[0]
        raise DockyardError(f"credential helper {program} {action} failed: {out}")
    return proc.stdout


def _helper_get(name: str, key: str) -> Credentials | None:
    try:
        out = _run_helper(name, "get", key)
    except DockyardError as exc:
        if _NOT_FOUND in str(exc):
            return None
        raise
    try:
        doc = json.loads(out)
        username, secret = str(doc.get("Username") or ""), str(doc.get("Secret") or "")
    except (ValueError, AttributeError):
        raise DockyardError(f"credential helper docker-credential-{name} answered something that is "
                            "not its JSON protocol") from None
    if not username and not secret:
        return None
    if username == "<token>":
        return Credentials("", "", secret)
    return Credentials(username, secret)
