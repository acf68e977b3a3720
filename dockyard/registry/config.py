"""The registry's configuration: one YAML file, checked strictly, with defaults for the common case.

``dockyard registry serve --addr 127.0.0.1:5000 --storage DIR`` needs no file at all; everything
else (TLS, users, roles, per-repository rules, immutable tags, retention, GC schedule, S3) lives in
one file given with ``--config``. Unknown keys are errors, so a typo never silently turns a
protection off. See docs/registry.md for the full reference.
"""
from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockyard.errors import InvalidArgument
from dockyard.registry.names import glob_to_regex

ACTIONS = ("pull", "push", "delete")
DEFAULT_ADDR = "127.0.0.1:5000"


def parse_duration(value: Any, where: str) -> float:
    """``90``, ``"90s"``, ``"30m"``, ``"24h"``, ``"7d"``, ``"2w"`` -> seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*", str(value))
    if not m:
        raise InvalidArgument(f"{where}: invalid duration {value!r} (use e.g. 30s, 15m, 24h, 7d)")
    n = float(m.group(1))
    return n * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}[m.group(2)]


def parse_size(value: Any, where: str) -> int:
    """``1048576``, ``"4MiB"``/``"4M"`` (powers of 1024), ``"4MB"`` (powers of 1000) -> bytes."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    m = re.fullmatch(r"\s*(\d+)\s*(?:([KMGT])(i?B)?|B)?\s*", str(value), re.I)
    if not m:
        raise InvalidArgument(f"{where}: invalid size {value!r} (use e.g. 4MiB, 10GiB)")
    if not m.group(2):
        return int(m.group(1))
    base = 1000 if (m.group(3) or "").upper() == "B" else 1024
    return int(m.group(1)) * base ** ("KMGT".index(m.group(2).upper()) + 1)


def split_addr(addr: str) -> tuple[str, int]:
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit():
        raise InvalidArgument(f"invalid address {addr!r}: use HOST:PORT, e.g. 127.0.0.1:5000")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


def is_loopback(host: str) -> bool:
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class Grant:
    users: set[str]
    roles: set[str]
    actions: set[str]


@dataclass
class RetentionPolicy:
    keep_last: int | None = None
    keep_tags: list[str] = field(default_factory=list)
    untagged_older_than: float | None = None


@dataclass
class RepositoryRule:
    pattern: str
    visibility: str | None = None          # "public" | "private" | None (inherit default)
    grants: list[Grant] = field(default_factory=list)
    immutable_tags: list[str] = field(default_factory=list)
    retention: RetentionPolicy | None = None

    def __post_init__(self) -> None:
        self.regex = glob_to_regex(self.pattern)
        self.tag_regexes = [glob_to_regex(p) for p in self.immutable_tags]

    def matches(self, repo: str) -> bool:
        return bool(self.regex.match(repo))


@dataclass
class User:
    name: str
    password_hash: str
    roles: set[str] = field(default_factory=set)
    admin: bool = False


@dataclass
class TokenConfig:
    realm: str | None = None               # None: <scheme>://<Host of the request>/token
    service: str = "dockyard-registry"
    issuer: str = "dockyard-registry"
    expiration: float = 300.0
    key: str | None = None                 # PEM private key; None: generated in the storage


@dataclass
class AuthConfig:
    open: bool | None = None               # None: open only when listening on loopback
    scheme: str = "token"                  # "token" (Docker token auth) or "basic"
    htpasswd: str | None = None
    users: dict[str, User] = field(default_factory=dict)
    roles: dict[str, set[str]] = field(default_factory=dict)   # role -> member user names
    default_visibility: str = "private"
    token: TokenConfig = field(default_factory=TokenConfig)


@dataclass
class StorageConfig:
    kind: str = "filesystem"
    root: str | None = None
    fsync: bool = True
    s3: dict[str, Any] = field(default_factory=dict)
    delete_enabled: bool = True
    delete_tags: bool = False       # DELETE /manifests/<tag>: off, as in the CNCF registry
    max_blob_size: int = 0
    upload_max_age: float = 7 * 86400


@dataclass
class Config:
    addr: str = DEFAULT_ADDR
    tls_cert: str | None = None
    tls_key: str | None = None
    shutdown_timeout: float = 30.0
    max_connections: int = 1000
    max_manifest_size: int = 4 * 1024 * 1024
    storage: StorageConfig = field(default_factory=StorageConfig)
    access_log: str = "stderr"
    auth: AuthConfig = field(default_factory=AuthConfig)
    repositories: list[RepositoryRule] = field(default_factory=list)
    gc_interval: float = 0.0
    gc_upload_grace: float = 3600.0
    retention_interval: float = 0.0
    metrics_enabled: bool = True
    path: str | None = None

    @property
    def open_access(self) -> bool:
        """Whether requests need no credentials at all."""
        if self.auth.open is not None:
            return self.auth.open
        return not self.auth.users and not self.auth.htpasswd

    def rule_for(self, repo: str) -> RepositoryRule | None:
        """The first repository rule whose pattern matches (rules are checked in file order)."""
        for rule in self.repositories:
            if rule.matches(repo):
                return rule
        return None


# ---- loading ------------------------------------------------------------------------------
def _check_keys(obj: Any, allowed: set[str], where: str) -> dict[str, Any]:
    if obj is None:
        return {}
    if not isinstance(obj, dict):
        raise InvalidArgument(f"{where}: expected a mapping, got {type(obj).__name__}")
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise InvalidArgument(f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})")
    return obj


def _str_list(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"{where}: expected a list of strings")
    return list(value)


def _resolve_path(value: str | None, base: Path) -> str | None:
    if value is None:
        return None
    p = Path(os.path.expanduser(str(value)))
    return str(p if p.is_absolute() else (base / p))


def _grant(obj: Any, where: str) -> Grant:
    g = _check_keys(obj, {"users", "roles", "actions"}, where)
    actions = set(_str_list(g.get("actions", ["pull"]), f"{where}.actions"))
    if "*" in actions:
        actions = set(ACTIONS)
    bad = actions - set(ACTIONS)
    if bad:
        raise InvalidArgument(f"{where}.actions: unknown action {sorted(bad)[0]!r} (use pull, push, delete)")
    users = set(_str_list(g.get("users"), f"{where}.users"))
    roles = set(_str_list(g.get("roles"), f"{where}.roles"))
    if not users and not roles:
        raise InvalidArgument(f"{where}: a grant needs users or roles")
    return Grant(users, roles, actions)


def _retention(obj: Any, where: str) -> RetentionPolicy:
    r = _check_keys(obj, {"keep_last", "keep_tags", "untagged_older_than"}, where)
    keep_last = r.get("keep_last")
    if keep_last is not None and (not isinstance(keep_last, int) or keep_last < 0):
        raise InvalidArgument(f"{where}.keep_last: expected a number >= 0")
    age = r.get("untagged_older_than")
    return RetentionPolicy(keep_last=keep_last, keep_tags=_str_list(r.get("keep_tags"), f"{where}.keep_tags"),
                           untagged_older_than=parse_duration(age, f"{where}.untagged_older_than")
                           if age is not None else None)


def _rule(obj: Any, i: int) -> RepositoryRule:
    where = f"repositories[{i}]"
    r = _check_keys(obj, {"pattern", "visibility", "grants", "immutable_tags", "retention"}, where)
    pattern = r.get("pattern")
    if not isinstance(pattern, str) or not pattern:
        raise InvalidArgument(f"{where}: 'pattern' is required (e.g. \"library/*\" or \"**\")")
    vis = r.get("visibility")
    if vis not in (None, "public", "private"):
        raise InvalidArgument(f"{where}.visibility: expected public or private, got {vis!r}")
    grants = r.get("grants") or []
    if not isinstance(grants, list):
        raise InvalidArgument(f"{where}.grants: expected a list")
    return RepositoryRule(
        pattern=pattern, visibility=vis,
        grants=[_grant(g, f"{where}.grants[{j}]") for j, g in enumerate(grants)],
        immutable_tags=_str_list(r.get("immutable_tags"), f"{where}.immutable_tags"),
        retention=_retention(r["retention"], f"{where}.retention") if r.get("retention") else None)


def _auth(obj: Any, base: Path) -> AuthConfig:
    a = _check_keys(obj, {"open", "scheme", "htpasswd", "users", "roles", "default_visibility",
                          "token"}, "auth")
    cfg = AuthConfig()
    if a.get("open") is not None:
        if not isinstance(a["open"], bool):
            raise InvalidArgument("auth.open: expected true or false")
        cfg.open = a["open"]
    cfg.scheme = a.get("scheme", "token")
    if cfg.scheme not in ("token", "basic"):
        raise InvalidArgument(f"auth.scheme: expected token or basic, got {cfg.scheme!r}")
    cfg.htpasswd = _resolve_path(a.get("htpasswd"), base)
    users = _check_keys(a.get("users"), set(a.get("users") or {}), "auth.users")
    for name, u in users.items():
        where = f"auth.users.{name}"
        u = _check_keys(u, {"password", "roles", "admin"}, where)
        pw = u.get("password")
        if not isinstance(pw, str) or not pw.startswith("$2"):
            raise InvalidArgument(f"{where}.password: expected a bcrypt hash ($2b$...); make one "
                                  "with 'dockyard registry user add'")
        cfg.users[name] = User(name, pw, set(_str_list(u.get("roles"), f"{where}.roles")),
                               bool(u.get("admin", False)))
    roles = _check_keys(a.get("roles"), set(a.get("roles") or {}), "auth.roles")
    for role, members in roles.items():
        cfg.roles[role] = set(_str_list(members, f"auth.roles.{role}"))
    cfg.default_visibility = a.get("default_visibility", "private")
    if cfg.default_visibility not in ("public", "private"):
        raise InvalidArgument("auth.default_visibility: expected public or private")
    t = _check_keys(a.get("token"), {"realm", "service", "issuer", "expiration", "key"}, "auth.token")
    cfg.token = TokenConfig(realm=t.get("realm"), service=t.get("service", "dockyard-registry"),
                            issuer=t.get("issuer", "dockyard-registry"),
                            expiration=parse_duration(t.get("expiration", 300), "auth.token.expiration"),
                            key=_resolve_path(t.get("key"), base))
    return cfg


def from_dict(doc: Any, base: Path | None = None, path: str | None = None) -> Config:
    """Build a Config from a parsed YAML document (``base`` resolves relative paths)."""
    base = base or Path.cwd()
    d = _check_keys(doc, {"version", "http", "storage", "log", "auth", "repositories", "gc",
                          "retention", "metrics"}, "config")
    cfg = Config(path=path)
    http = _check_keys(d.get("http"), {"addr", "tls", "shutdown_timeout", "max_manifest_size",
                                       "max_connections"}, "http")
    cfg.addr = str(http.get("addr", DEFAULT_ADDR))
    split_addr(cfg.addr)
    tls = _check_keys(http.get("tls"), {"certificate", "key"}, "http.tls")
    cfg.tls_cert = _resolve_path(tls.get("certificate"), base)
    cfg.tls_key = _resolve_path(tls.get("key"), base)
    if bool(cfg.tls_cert) != bool(cfg.tls_key):
        raise InvalidArgument("http.tls: both certificate and key are needed")
    cfg.shutdown_timeout = parse_duration(http.get("shutdown_timeout", 30), "http.shutdown_timeout")
    cfg.max_manifest_size = parse_size(http.get("max_manifest_size", "4MiB"), "http.max_manifest_size")
    cfg.max_connections = int(http.get("max_connections", 1000))
    if cfg.max_connections < 1:
        raise InvalidArgument("http.max_connections: expected a number >= 1")

    s = _check_keys(d.get("storage"), {"filesystem", "s3", "delete", "max_blob_size",
                                       "upload_max_age"}, "storage")
    st = StorageConfig()
    if s.get("filesystem") is not None and s.get("s3") is not None:
        raise InvalidArgument("storage: choose one of filesystem or s3")
    if s.get("s3") is not None:
        st.kind = "s3"
        st.s3 = dict(_check_keys(s["s3"], {"endpoint", "region", "bucket", "prefix", "accesskey",
                                           "secretkey", "local_dir", "secure"}, "storage.s3"))
        if not st.s3.get("bucket"):
            raise InvalidArgument("storage.s3.bucket is required")
        if st.s3.get("local_dir"):
            st.s3["local_dir"] = _resolve_path(st.s3["local_dir"], base)
    else:
        fs = _check_keys(s.get("filesystem"), {"rootdirectory", "fsync"}, "storage.filesystem")
        st.root = _resolve_path(fs.get("rootdirectory"), base)
        st.fsync = bool(fs.get("fsync", True))
    delete = _check_keys(s.get("delete"), {"enabled", "tags"}, "storage.delete")
    st.delete_enabled = bool(delete.get("enabled", True))
    st.delete_tags = bool(delete.get("tags", False))
    st.max_blob_size = parse_size(s.get("max_blob_size", 0), "storage.max_blob_size")
    st.upload_max_age = parse_duration(s.get("upload_max_age", "7d"), "storage.upload_max_age")
    cfg.storage = st

    log = _check_keys(d.get("log"), {"access"}, "log")
    cfg.access_log = str(log.get("access", "stderr"))
    if cfg.access_log not in ("stderr", "stdout", "off"):
        cfg.access_log = _resolve_path(cfg.access_log, base) or "stderr"
    cfg.auth = _auth(d.get("auth"), base)
    rules = d.get("repositories") or []
    if not isinstance(rules, list):
        raise InvalidArgument("repositories: expected a list of rules")
    cfg.repositories = [_rule(r, i) for i, r in enumerate(rules)]
    gc = _check_keys(d.get("gc"), {"interval", "upload_grace"}, "gc")
    cfg.gc_interval = parse_duration(gc.get("interval", 0), "gc.interval")
    cfg.gc_upload_grace = parse_duration(gc.get("upload_grace", "1h"), "gc.upload_grace")
    ret = _check_keys(d.get("retention"), {"interval"}, "retention")
    cfg.retention_interval = parse_duration(ret.get("interval", 0), "retention.interval")
    metrics = _check_keys(d.get("metrics"), {"enabled"}, "metrics")
    cfg.metrics_enabled = bool(metrics.get("enabled", True))
    return cfg


def load(path: str | os.PathLike[str]) -> Config:
    """Read and check a YAML configuration file."""
    import yaml

    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise InvalidArgument(f"cannot read registry config {str(p)!r}: {exc.strerror}") from None
    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise InvalidArgument(f"{p}: invalid YAML: {str(exc).splitlines()[0]}") from None
    return from_dict(doc, p.absolute().parent, str(p.absolute()))
