"""The ``/etc/hosts`` and ``/etc/resolv.conf`` a container gets, written the way docker writes them."""
from __future__ import annotations

from pathlib import Path

HOSTS_HEADER = ("127.0.0.1\tlocalhost\n"
                "::1\tlocalhost ip6-localhost ip6-loopback\n"
                "fe00::0\tip6-localnet\n"
                "ff00::0\tip6-mcastprefix\n"
                "ff02::1\tip6-allnodes\n"
                "ff02::2\tip6-allrouters\n")
FALLBACK_NAMESERVERS = ("8.8.8.8", "8.8.4.4")


def hosts(hostname: str | None, ips: list[str], extra: list[tuple[str, str]] = ()) -> str:
    """The header, ``--add-host`` entries, then the container's own address(es) and hostname."""
    text = HOSTS_HEADER
    for name, ip in extra:
        text += f"{ip}\t{name}\n"
    if hostname:
        for ip in ips:
            text += f"{ip}\t{hostname}\n"
    return text


def host_resolv_conf(path: str | Path = "/etc/resolv.conf") -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def resolv_conf(embedded_dns: bool, host_conf: str | None = None) -> str:
    """Embedded DNS: ``nameserver 127.0.0.11`` keeping the host's search and options.
    Otherwise the host's file without loopback nameservers (unreachable from the container)."""
    text = host_resolv_conf() if host_conf is None else host_conf
    search: list[str] = []
    options: list[str] = []
    servers: list[str] = []
    for line in text.splitlines():
        words = line.split()
        if not words or words[0].startswith(("#", ";")):
            continue
        if words[0] == "nameserver" and len(words) > 1:
            servers.append(words[1])
        elif words[0] in ("search", "domain"):
            search = words[1:]
        elif words[0] == "options":
            options.extend(words[1:])
    out = ""
    if search:
        out += "search " + " ".join(search) + "\n"
    if embedded_dns:
        out += "nameserver 127.0.0.11\n"
        opts = [o for o in options if not o.startswith("ndots:")] + ["ndots:0"]
        out += "options " + " ".join(opts) + "\n"
        return out
    usable = [s for s in servers if not s.startswith("127.") and s != "::1"]
    for s in usable or list(FALLBACK_NAMESERVERS):
        out += f"nameserver {s}\n"
    if options:
        out += "options " + " ".join(options) + "\n"
    return out


def custom_resolv_conf(embedded_dns: bool, servers: list[str], search: list[str],
                       options: list[str]) -> str:
    """``--dns``/``--dns-search``/``--dns-opt`` as docker writes them: on a user network the
    embedded server stays the nameserver (the ``--dns`` servers become its upstreams) and
    ``ndots:0`` ends the options unless they set ``ndots``; elsewhere the given servers are
    written (the host's when none are given)."""
    base = resolv_conf(embedded_dns) if not servers else ""
    out = ""
    if search:
        out += "search " + " ".join(search) + "\n"
    elif base:
        out += "".join(line + "\n" for line in base.splitlines() if line.startswith("search "))
    if embedded_dns:  # the user's options, then ndots:0 unless they set ndots
        out += "nameserver 127.0.0.11\n"
        opts = list(options) + ([] if any(o.startswith("ndots:") for o in options) else ["ndots:0"])
        return out + "options " + " ".join(opts) + "\n"
    if servers:
        out += "".join(f"nameserver {s}\n" for s in servers)
    else:
        out += "".join(line + "\n" for line in base.splitlines() if line.startswith("nameserver "))
    if options:
        out += "options " + " ".join(options) + "\n"
    return out
