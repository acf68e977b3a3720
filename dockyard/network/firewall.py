"""Firewall rules (iptables, nft or legacy backend alike) in chains of our own.

docker and podman keep their own chains on this host; we never touch those. Each state root has
its own chains, reached by one jump rule from each built-in chain it needs:

``filter``  FORWARD -> <P>-FORWARD  (first rule: -> <P>-ISOLATION-1 -> <P>-ISOLATION-2)
``nat``     PREROUTING, OUTPUT (dst-type LOCAL) -> <P>-PORTS  (DNAT of published ports)
``nat``     POSTROUTING -> <P>-POSTROUTING  (masquerade outbound, loopback and hairpin traffic)

Every rule carries a comment ``dy:<root tag>:<owner>`` (owner: a network or container ID), so
that releasing an owner deletes exactly its rules, even after a crash left no other record.
Published ports are plain kernel DNAT: no userspace proxy on the data path.
"""
from __future__ import annotations

import os
import shlex
import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dockyard.errors import DockyardError, Unsupported
from dockyard.network.naming import Names

if TYPE_CHECKING:
    import subprocess

Rule = tuple[str, str, list[str]]  # (table, chain, match/target arguments)


_BACKEND: list[str] = []


def _which(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")


def _run(argv: list[str], text_input: str | None = None) -> "subprocess.CompletedProcess[str]":
    """Run an iptables tool. ``subprocess`` is imported here: a container start that needs no
    firewall change (the common case) never loads it."""
    import subprocess

    return subprocess.run(argv, input=text_input, capture_output=True, text=True)


def _forward_is_busy(binary: str) -> bool:
    """Has another tool (docker, podman, a firewall) put rules in this backend's FORWARD?"""
    proc = _run([binary, "-w", "10", "-S", "FORWARD"])
    lines = proc.stdout.splitlines() if proc.returncode == 0 else []
    return any(not line.startswith("-P") for line in lines) or "-P FORWARD DROP" in lines


def backend() -> str:
    """``iptables``, or ``iptables-legacy`` when only the legacy tables are in use.

    A packet passes both the legacy and the nft tables; rules must go where the other tools'
    FORWARD policy lives, or that policy drops our traffic. ``DOCKYARD_IPTABLES=legacy|nft``
    forces a choice."""
    if _BACKEND:
        return _BACKEND[0]
    forced = os.environ.get("DOCKYARD_IPTABLES", "")
    default = _which("iptables")
    legacy = _which("iptables-legacy")
    if not default and not legacy:
        raise Unsupported("iptables is not installed: install it with 'apt-get install iptables'")
    chosen = default or legacy
    if forced == "legacy" and legacy:
        chosen = legacy
    elif forced == "nft" and _which("iptables-nft"):
        chosen = _which("iptables-nft")
    elif not forced and default and legacy and os.path.realpath(default) != os.path.realpath(legacy):
        if not _forward_is_busy(default) and _forward_is_busy(legacy):
            chosen = legacy
    _BACKEND.append(str(chosen))
    return _BACKEND[0]


def _iptables() -> str:
    return backend()


def run_iptables(table: str, *args: str, check: bool = True) -> "subprocess.CompletedProcess[str]":
    proc = _run([_iptables(), "-w", "10", "-t", table, *args])
    if check and proc.returncode != 0:
        raise DockyardError(f"iptables -t {table} {' '.join(args)}: {proc.stderr.strip()}")
    return proc


@dataclass(frozen=True)
class PortRule:
    """One published port as programmed in the kernel."""

    proto: str
    host_ip: str  # "" or "0.0.0.0" for every address
    host_port: int
    container_ip: str
    container_port: int


class Firewall:
    """The chains and rules of one state root."""

    def __init__(self, names: Names) -> None:
        self.names = names
        p = names.chain_prefix
        self.forward = f"{p}-FORWARD"
        self.iso1 = f"{p}-ISOLATION-1"
        self.iso2 = f"{p}-ISOLATION-2"
        self.ports = f"{p}-PORTS"
        self.post = f"{p}-POSTROUTING"

    # -- reading and writing the rule set -------------------------------------------------------
    def listing(self) -> dict[str, list[list[str]]]:
        """``iptables -S`` of both tables, each line split into words (two quick calls)."""
        out: dict[str, list[list[str]]] = {}
        for table in ("filter", "nat"):
            proc = run_iptables(table, "-S", check=False)
            out[table] = [shlex.split(line) for line in proc.stdout.splitlines() if line.strip()]
        return out

    def apply(self, ops: list[tuple[str, list[str]]]) -> None:
        """Run rule commands (``-A``/``-I``/``-D``/``-N``/``-F``/``-X`` ...) as one
        ``iptables-restore --noflush``: one process, and all-or-nothing per table."""
        if not ops:
            return
        text = ""
        for table in ("filter", "nat"):
            lines = [" ".join(_restore_word(w) for w in words) for t, words in ops if t == table]
            if lines:
                text += f"*{table}\n" + "\n".join(lines) + "\nCOMMIT\n"
        name = os.path.basename(backend())
        restore = _which(name + "-restore" if name != "iptables" else "iptables-restore")
        if not restore:
            raise Unsupported("iptables-restore is not installed: install iptables")
        proc = _run([restore, "--noflush", "-w", "10"], text)
        if proc.returncode != 0:
            raise DockyardError(f"iptables-restore failed: {proc.stderr.strip()}")

    # -- chains and jumps -------------------------------------------------------------------
    def _chains(self) -> list[tuple[str, str]]:
        return [("filter", self.forward), ("filter", self.iso1), ("filter", self.iso2),
                ("nat", self.ports), ("nat", self.post)]

    def _jumps(self) -> list[tuple[str, str, list[str], bool]]:
        """(table, chain, rule, insert at top): the ways into our chains."""
        c = ["-m", "comment", "--comment", self.names.rule_comment("base")]
        local = ["-m", "addrtype", "--dst-type", "LOCAL"]
        return [
            ("filter", self.forward, [*c, "-j", self.iso1], True),
            ("filter", "FORWARD", [*c, "-j", self.forward], True),
            ("nat", "PREROUTING", [*local, *c, "-j", self.ports], False),
            ("nat", "OUTPUT", [*local, *c, "-j", self.ports], False),
            ("nat", "POSTROUTING", [*c, "-j", self.post], True),
        ]

    @staticmethod
    def _has_chain(listing: dict[str, list[list[str]]], table: str, chain: str) -> bool:
        return any(w[:2] == ["-N", chain] for w in listing.get(table, []))

    @staticmethod
    def _has_jump(listing: dict[str, list[list[str]]], table: str, chain: str, target: str) -> bool:
        return any(w[:2] == ["-A", chain] and w[-2:] == ["-j", target]
                   for w in listing.get(table, []))

    def ensure_base(self, listing: dict[str, list[list[str]]] | None = None) -> None:
        """Create our chains and jump rules if missing (idempotent)."""
        listing = listing or self.listing()
        ops: list[tuple[str, list[str]]] = [(t, ["-N", c]) for t, c in self._chains()
                                            if not self._has_chain(listing, t, c)]
        for table, chain, rule, top in self._jumps():
            if not self._has_jump(listing, table, chain, rule[-1]):
                ops.append((table, ["-I", chain, "1", *rule] if top else ["-A", chain, *rule]))
        self.apply(ops)

    def remove_base(self) -> None:
        """Delete the jumps and our chains (with whatever is left in them)."""
        listing = self.listing()
        ops: list[tuple[str, list[str]]] = []
        ours = {c for _, c in self._chains()}
        for table, lines in listing.items():
            for w in lines:
                if w[:1] == ["-A"] and w[1] not in ours and w[-2:-1] == ["-j"] and w[-1] in ours:
                    ops.append((table, ["-D", *w[1:]]))
        present = [(t, c) for t, c in self._chains() if self._has_chain(listing, t, c)]
        ops += [(t, ["-F", c]) for t, c in present] + [(t, ["-X", c]) for t, c in present]
        self.apply(ops)

    def has_base(self) -> bool:
        return run_iptables("filter", "-S", self.forward, check=False).returncode == 0

    # -- rules by owner ---------------------------------------------------------------------
    def add(self, rules: list[Rule], owner: str) -> None:
        """Append rules tagged with ``owner``, all at once (a failure adds none of them)."""
        comment = ["-m", "comment", "--comment", self.names.rule_comment(owner)]
        self.apply([(table, ["-A", chain, *args, *comment]) for table, chain, args in rules])

    def delete(self, rules: list[Rule], owner: str) -> None:
        """Delete rules ``add`` made with these exact arguments: one ``iptables-restore`` and no
        listing. If one is missing (a crash half-way, an outside flush) the whole batch is
        refused; then every rule of ``owner`` is found by its comment instead."""
        comment = ["-m", "comment", "--comment", self.names.rule_comment(owner)]
        try:
            self.apply([(table, ["-D", chain, *args, *comment]) for table, chain, args in rules])
        except DockyardError:
            self.delete_owner(owner)

    def count_owner(self, owner: str, listing: dict[str, list[list[str]]] | None = None) -> int:
        wanted = self.names.rule_comment(owner)
        listing = listing or self.listing()
        return sum(1 for lines in listing.values() for w in lines if wanted in w)

    def delete_owner(self, owner: str, listing: dict[str, list[list[str]]] | None = None) -> int:
        """Delete every rule tagged with ``owner`` from our chains; returns how many."""
        wanted = self.names.rule_comment(owner)
        ours = {c for _, c in self._chains()}
        listing = listing or self.listing()
        ops = [(table, ["-D", *w[1:]]) for table, lines in listing.items() for w in lines
               if w[:1] == ["-A"] and w[1] in ours and wanted in w]
        self.apply(ops)
        return len(ops)

    def owners(self) -> set[str]:
        """Owners that still have rules in our chains (for leak checks and repair)."""
        prefix = f"dy:{self.names.tag}:"
        found = {word[len(prefix):] for lines in self.listing().values() for w in lines
                 for word in w if word.startswith(prefix)}
        found.discard("base")
        return found

    # -- rule sets ---------------------------------------------------------------------------
    def network_rules(self, bridge: str, subnet: str, internal: bool) -> list[Rule]:
        """Forwarding, isolation and NAT for one bridge network."""
        rules: list[Rule] = [
            ("filter", self.iso1, ["-i", bridge, "!", "-o", bridge, "-j", self.iso2]),
            ("filter", self.iso2, ["-o", bridge, "-j", "DROP"]),
            ("filter", self.forward, ["-i", bridge, "-o", bridge, "-j", "ACCEPT"]),
            # 127.0.0.1:<published port> DNATed into the bridge needs a routable source
            ("nat", self.post, ["-s", "127.0.0.0/8", "-o", bridge, "-j", "MASQUERADE"]),
        ]
        if internal:
            rules += [
                ("filter", self.forward, ["-i", bridge, "!", "-o", bridge, "-j", "DROP"]),
                ("filter", self.forward, ["!", "-i", bridge, "-o", bridge, "-j", "DROP"]),
            ]
        else:
            rules += [
                ("filter", self.forward, ["-o", bridge, "-m", "conntrack", "--ctstate",
                                          "RELATED,ESTABLISHED", "-j", "ACCEPT"]),
                ("filter", self.forward, ["-o", bridge, "-m", "conntrack", "--ctstate", "DNAT",
                                          "-j", "ACCEPT"]),
                ("filter", self.forward, ["-i", bridge, "!", "-o", bridge, "-j", "ACCEPT"]),
                ("nat", self.post, ["-s", subnet, "!", "-o", bridge, "-j", "MASQUERADE"]),
                # hairpin: a container reaching a published port of its own network
                ("nat", self.post, ["-s", subnet, "-o", bridge, "-m", "conntrack", "--ctstate",
                                    "DNAT", "-j", "MASQUERADE"]),
            ]
        return rules

    def port_rules(self, ports: list[PortRule]) -> list[Rule]:
        rules: list[Rule] = []
        for p in ports:
            dest = ["-d", p.host_ip] if p.host_ip not in ("", "0.0.0.0") else []
            rules.append(("nat", self.ports, [*dest, "-p", p.proto, "-m", p.proto, "--dport",
                                              str(p.host_port), "-j", "DNAT", "--to-destination",
                                              f"{p.container_ip}:{p.container_port}"]))
        return rules


def _restore_word(word: str) -> str:
    """iptables-restore's quoting: double quotes around words with blanks, nothing else."""
    if word and not any(c in word for c in ' \t"\''):
        return word
    return '"' + word.replace('"', '\\"') + '"'


def published_host_ports() -> set[tuple[str, str, int]]:
    """(proto, host ip or "", port) DNATed by any dockyard root on this host.

    Another state root's containers are invisible in our database; their rules are not.
    """
    listing = run_iptables("nat", "-S", check=False)
    taken: set[tuple[str, str, int]] = set()
    for line in listing.stdout.splitlines():
        words = shlex.split(line)
        if len(words) < 2 or words[0] != "-A" or not words[1].endswith("-PORTS"):
            continue
        if not (words[1].startswith("DY-") or words[1] == "DOCKYARD-PORTS"):
            continue
        proto = words[words.index("-p") + 1] if "-p" in words else "tcp"
        dport = int(words[words.index("--dport") + 1]) if "--dport" in words else 0
        dest = words[words.index("-d") + 1].split("/")[0] if "-d" in words else ""
        taken.add((proto, dest, dport))
    return taken
