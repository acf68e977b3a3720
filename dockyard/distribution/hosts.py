"""Docker's naming rules for registries: which host serves a name, over HTTPS or plain HTTP.

- The registry comes from the reference (``localhost:5000/a/b`` → ``localhost:5000``); a name
  without one means Docker Hub, whose API is served by ``registry-1.docker.io`` and whose
  credentials docker files under ``https://index.docker.io/v1/``.
- HTTPS with certificate verification by default. *Insecure* registries — loopback addresses
  (``localhost``, 127.0.0.0/8, ::1) and the hosts or CIDRs listed in ``insecure-registries`` —
  are tried over HTTPS without verification first, then over plain HTTP, as docker does.
- The insecure list comes from ``<root>/config.json`` (``{"insecure-registries": [...]}``, the
  key of docker's ``daemon.json``), ``DOCKYARD_INSECURE_REGISTRIES`` (comma-separated) and the
  ``--insecure-registry`` flag of the commands.
- Extra CAs and client certificates are read from docker's ``/etc/docker/certs.d/<host>/``
  (``*.crt`` CAs, ``*.cert`` + ``*.key`` client pairs); ``DOCKYARD_CERTS_D`` points elsewhere.
"""
from __future__ import annotations

import ipaddress
import json
import os
import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from dockyard.errors import InvalidArgument

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
DOCKER_HUB_CREDENTIALS_KEY = "https://index.docker.io/v1/"
_HUB_ALIASES = {"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}
_LOOPBACK_CIDR = ipaddress.ip_network("127.0.0.0/8")


def api_host(domain: str) -> str:
    """The host[:port] that serves the registry API for a reference's domain."""
    return DOCKER_HUB_API if domain in _HUB_ALIASES else domain


def credentials_key(domain: str) -> str:
    """The key docker's config.json uses for a registry's credentials."""
    return DOCKER_HUB_CREDENTIALS_KEY if domain in _HUB_ALIASES else domain


def normalize_server(server: str | None) -> str:
    """``docker login SERVER`` → the registry domain (``https://localhost:5000/`` → ``localhost:5000``).

    No server means Docker Hub, as with docker.
    """
    if not server:
        return DOCKER_HUB
    s = server.strip()
    for prefix in ("https://", "http://"):
        if s.lower().startswith(prefix):
            s = s[len(prefix):]
            break
    s = s.split("/", 1)[0]
    if not s or any(c.isspace() for c in s) or "@" in s:
        raise InvalidArgument(f"invalid registry address {server!r}: use HOST[:PORT]")
    if s in _HUB_ALIASES or server.rstrip("/") == DOCKER_HUB_CREDENTIALS_KEY.rstrip("/"):
        return DOCKER_HUB
    return s


def split_host_port(netloc: str) -> tuple[str, int | None]:
    """``host:port`` / ``[::1]:5000`` → (host, port)."""
    if netloc.startswith("["):
        host, _, rest = netloc[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    host, sep, port = netloc.rpartition(":")
    if sep and port.isdigit() and ":" not in host:
        return host, int(port)
    return netloc, None


@dataclass
class RegistrySettings:
    """Which registries may be reached without verified TLS, and where to find their certificates."""

    insecure: list[str] = field(default_factory=list)
    certs_dir: Path = Path("/etc/docker/certs.d")

    @classmethod
    def load(cls, root: str | os.PathLike[str] | None, extra: Iterable[str] = ()) -> "RegistrySettings":
        insecure: list[str] = []
        if root is not None:
            path = Path(root) / "config.json"
            try:
                doc = json.loads(path.read_text())
            except FileNotFoundError:
                doc = {}
            except (OSError, ValueError) as exc:
                raise InvalidArgument(f"{path}: not valid JSON ({exc})") from None
            listed = doc.get("insecure-registries", []) if isinstance(doc, dict) else []
            if not isinstance(listed, list) or not all(isinstance(x, str) for x in listed):
                raise InvalidArgument(f'{path}: "insecure-registries" must be a list of host[:port] or CIDR strings')
            insecure += listed
        env = os.environ.get("DOCKYARD_INSECURE_REGISTRIES", "")
        insecure += [x.strip() for x in env.split(",") if x.strip()]
        insecure += [x for x in extra if x]
        certs = os.environ.get("DOCKYARD_CERTS_D")
        return cls(insecure=insecure, certs_dir=Path(certs) if certs else Path("/etc/docker/certs.d"))

    def is_insecure(self, netloc: str) -> bool:
        """Docker's rule: loopback, a listed host[:port], or an address inside a listed CIDR."""
        host, _ = split_host_port(netloc)
        if netloc in self.insecure or host in self.insecure:
            return True
        networks = [_LOOPBACK_CIDR, ipaddress.ip_network("::1/128")]
        for entry in self.insecure:
            if "/" in entry:
                try:
                    networks.append(ipaddress.ip_network(entry, strict=False))
                except ValueError:
                    raise InvalidArgument(f"insecure registry {entry!r} is not a valid CIDR") from None
        for addr in _addresses(host):
            if any(addr.version == n.version and addr in n for n in networks):
                return True
        return False

    def tls_context(self, netloc: str, verify: bool) -> ssl.SSLContext:
        """A client TLS context for a registry host, with its certs.d CAs and client certificate."""
        ctx = ssl.create_default_context()
        if not verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        d = self.certs_dir / netloc
        if d.is_dir():
            for f in sorted(d.iterdir()):
                if f.suffix == ".crt":
                    ctx.load_verify_locations(cafile=str(f))
                elif f.suffix == ".cert":
                    key = f.with_suffix(".key")
                    if not key.is_file():
                        raise InvalidArgument(f"missing key {key.name} for client certificate {f}")
                    ctx.load_cert_chain(str(f), str(key))
        return ctx


def _addresses(host: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The IP addresses a host name stands for (the literal itself when it is one)."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    if host == "localhost":
        return [ipaddress.ip_address("127.0.0.1")]
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return []
    out = []
    for info in infos:
        try:
            out.append(ipaddress.ip_address(info[4][0].split("%", 1)[0]))
        except ValueError:
            continue
    return out
