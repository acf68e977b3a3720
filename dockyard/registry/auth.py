"""Who may do what: users (bcrypt), roles, per-repository rules, and Docker token auth.

Three layers, each small:

* :class:`UserDB` checks a name and password against bcrypt hashes from the config and an
  ``htpasswd`` file (re-read when it changes, so ``dockyard registry user add`` needs no restart).
  A verified password is remembered for a few minutes: bcrypt is deliberately slow, and docker
  asks for a new token for every repository it touches.
* :class:`AccessPolicy` turns the config's repository rules into the set of actions (pull, push,
  delete) an identity has on a repository: admins everything, public repositories pull for anyone,
  then the grants of the first rule whose pattern matches.
* :class:`TokenAuthority` issues and verifies the signed JWTs of the Docker token spec
  (``access: [{type, name, actions}]``, ES256). The registry serves its own ``/token`` endpoint.
"""
from __future__ import annotations

import base64
import hashlib
import os
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockyard.errors import InvalidArgument
from dockyard.registry.config import ACTIONS, Config, TokenConfig, User

CACHE_SECONDS = 300.0


@dataclass(frozen=True)
class Identity:
    """The caller of one request. ``name`` None is anonymous."""

    name: str | None
    roles: frozenset[str] = frozenset()
    admin: bool = False

    @property
    def display(self) -> str:
        return self.name or "-"


ANONYMOUS = Identity(None)


def hash_password(password: str, rounds: int = 12) -> str:
    import bcrypt

    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=rounds)).decode()


def read_htpasswd(path: str) -> dict[str, str]:
    """``name:$2y$...`` lines (Apache ``htpasswd -B`` format); other hash kinds are refused."""
    users: dict[str, str] = {}
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return users
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, pw = line.partition(":")
        if not sep or not pw.startswith("$2"):
            raise InvalidArgument(f"{path}:{n}: only bcrypt entries (htpasswd -B) are supported")
        users[name] = pw
    return users


def write_htpasswd(path: str, users: dict[str, str]) -> None:
    """Rewrite an htpasswd file atomically (0600: it holds password hashes)."""
    p = Path(path)
    tmp = p.with_name(f".{p.name}.{uuid.uuid4().hex}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("".join(f"{name}:{pw}\n" for name, pw in sorted(users.items())))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, p)


class UserDB:
    def __init__(self, config: Config) -> None:
        self.config = config
        self._htpasswd: dict[str, str] = {}
        self._htpasswd_mtime: float | None = None
        self._lock = threading.Lock()
        self._verified: dict[tuple[str, bytes], tuple[str, float]] = {}
        self._pepper = secrets.token_bytes(16)

    def _users(self) -> dict[str, str]:
        path = self.config.auth.htpasswd
        hashes = {}
        if path:
            try:
                mtime = os.stat(path).st_mtime
            except FileNotFoundError:
                mtime = None
            with self._lock:
                if mtime != self._htpasswd_mtime:
                    self._htpasswd = read_htpasswd(path) if mtime is not None else {}
                    self._htpasswd_mtime = mtime
                hashes.update(self._htpasswd)
        hashes.update({name: u.password_hash for name, u in self.config.auth.users.items()})
        return hashes

    def identity(self, name: str) -> Identity:
        """Roles and admin flag of a user known by name (from a token's ``sub``)."""
        user: User | None = self.config.auth.users.get(name)
        roles = set(user.roles) if user else set()
        roles.update(role for role, members in self.config.auth.roles.items() if name in members)
        return Identity(name, frozenset(roles), bool(user and user.admin) or "admin" in roles)

    def authenticate(self, name: str, password: str) -> Identity | None:
        """The identity if the password is right, else None (constant work for unknown users)."""
        import bcrypt

        stored = self._users().get(name)
        key = (name, hashlib.sha256(self._pepper + password.encode()).digest())
        now = time.monotonic()
        with self._lock:
            hit = self._verified.get(key)
        if stored is not None and hit is not None and hit[0] == stored and now - hit[1] < CACHE_SECONDS:
            return self.identity(name)
        candidate = (stored or "$2b$12$" + "a" * 53).encode()
        try:
            ok = bcrypt.checkpw(password.encode(), candidate)
        except ValueError:
            ok = False
        if not ok or stored is None:
            return None
        with self._lock:
            self._verified[key] = (stored, now)
        return self.identity(name)


class AccessPolicy:
    """The actions an identity has on a repository, from the config's rules."""

    def __init__(self, config: Config) -> None:
        self.config = config

    def visibility(self, repo: str) -> str:
        rule = self.config.rule_for(repo)
        return (rule.visibility if rule and rule.visibility else self.config.auth.default_visibility)

    def actions(self, who: Identity, repo: str) -> set[str]:
        if self.config.open_access or who.admin:
            return set(ACTIONS)
        granted: set[str] = set()
        if self.visibility(repo) == "public":
            granted.add("pull")
        rule = self.config.rule_for(repo)
        if rule is not None and who.name is not None:
            for g in rule.grants:
                if who.name in g.users or "*" in g.users or who.roles & g.roles:
                    granted |= g.actions
        return granted

    def is_immutable(self, repo: str, tag: str) -> bool:
        rule = self.config.rule_for(repo)
        return bool(rule and any(rx.match(tag) for rx in rule.tag_regexes))


def parse_scope(scope: str) -> list[tuple[str, str, set[str]]]:
    """``repository:a/b:pull,push registry:catalog:*`` -> [(type, name, actions)]."""
    out = []
    for item in scope.split():
        parts = item.split(":")
        if len(parts) < 3:
            continue
        type_ = parts[0].split("(")[0]  # "repository(plugin)" -> "repository"
        name = ":".join(parts[1:-1])   # names never contain ":", but tolerate host:port forms
        actions = {a for a in parts[-1].split(",") if a}
        if "*" in actions and type_ == "repository":
            actions = set(ACTIONS)
        out.append((type_, name, actions))
    return out


@dataclass
class TokenClaims:
    subject: str | None
    access: dict[tuple[str, str], set[str]] = field(default_factory=dict)

    def allows(self, type_: str, name: str, action: str) -> bool | None:
        """True/False if the token speaks about the resource, None if it does not mention it."""
        actions = self.access.get((type_, name))
        if actions is None:
            return None
        return action in actions or "*" in actions


class TokenAuthority:
    """Issues and verifies the registry's bearer tokens (ES256 JWTs)."""

    def __init__(self, token: TokenConfig, key_dir: Path) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        self.config = token
        path = Path(token.key) if token.key else key_dir / "token-key.pem"
        if path.exists():
            self._key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        elif token.key:
            raise InvalidArgument(f"auth.token.key: {path} does not exist")
        else:
            self._key = ec.generate_private_key(ec.SECP256R1())
            pem = self._key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption())
            tmp = path.with_name(path.name + f".{uuid.uuid4().hex}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(pem)
            os.replace(tmp, path)
        if isinstance(self._key, ec.EllipticCurvePrivateKey):
            self.algorithm = "ES256"
        else:
            self.algorithm = "RS256"
        self._public = self._key.public_key()
        der = self._public.public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
        self.kid = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")

    def issue(self, who: Identity, access: list[dict[str, Any]]) -> dict[str, Any]:
        """The token endpoint's JSON response for an identity and the access it was granted."""
        import jwt

        now = int(time.time())
        exp = int(self.config.expiration)
        claims = {"iss": self.config.issuer, "sub": who.name or "", "aud": self.config.service,
                  "exp": now + exp, "nbf": now - 5, "iat": now, "jti": uuid.uuid4().hex,
                  "access": access}
        token = jwt.encode(claims, self._key, algorithm=self.algorithm, headers={"kid": self.kid})
        issued = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
        return {"token": token, "access_token": token, "expires_in": exp, "issued_at": issued}

    def verify(self, token: str) -> TokenClaims | None:
        """The token's claims if it is ours, unexpired and for this service; else None."""
        import jwt

        try:
            claims = jwt.decode(token, self._public, algorithms=[self.algorithm],
                                audience=self.config.service, issuer=self.config.issuer, leeway=10)
        except jwt.PyJWTError:
            return None
        access: dict[tuple[str, str], set[str]] = {}
        for entry in claims.get("access") or []:
            if isinstance(entry, dict):
                key = (str(entry.get("type")), str(entry.get("name")))
                access.setdefault(key, set()).update(str(a) for a in entry.get("actions") or [])
        return TokenClaims(claims.get("sub") or None, access)


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    """(user, password) from an ``Authorization: Basic`` header, or None."""
    if not header or not header[:6].lower() == "basic ":
        return None
    try:
        raw = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    user, sep, password = raw.partition(":")
    return (user, password) if sep else None
