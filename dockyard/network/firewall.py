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

import shlex
import shutil
import subprocess
from dataclasses import dataclass

from dockyard.errors import DockyardError, Unsupported
from dockyard.network.naming import Names

Rule = tuple[str, str, list[str]]  # (table, chain, match/target arguments)


def _iptables() -> str:
    path = shutil.which("iptables") or shutil.which("iptables", path="/usr/sbin:/sbin")
    if not path:
        raise Unsupported("iptables is not installed: install it with 'apt-get install iptables'")
    return path


def run_iptables(table: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([_iptables(), "-w", "10", "-t", table, *args], capture_output=True,
                          text=True)
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

    # -- chains and jumps -------------------------------------------------------------------
    def _chains(self) -> list[tuple[str, str]]:
        return [("filter", self.forward), ("filter", self.iso1), ("filter", self.iso2),
                ("nat", self.ports), ("nat", self.post)]

    def _jumps(self) -> list[tuple[str, str, list[str], bool]]:
        """(table, builtin chain, rule, insert at top)"""
        c = ["-m", "comment", "--comment", self.names.rule_comment("base")]
        local = ["-m", "addrtype", "--dst-type", "LOCAL"]
        return [
            ("filter", "FORWARD", [*c, "-j", self.forward], True),
            ("nat", "PREROUTING", [*local, *c, "-j", self.ports], False),
            ("nat", "OUTPUT", [*local, *c, "-j", self.ports], False),
            ("nat", "POSTROUTING", [*c, "-j", self.post], True),
        ]

    def _chain_exists(self, table: str, chain: str) -> bool:
        return run_iptables(table, "-S", chain, check=False).returncode == 0

    def ensure_base(self) -> None:
        """Create our chains and jump rules if missing (idempotent)."""
        for table, chain in self._chains():
            if not self._chain_exists(table, chain):
                proc = run_iptables(table, "-N", chain, check=False)
                if proc.returncode != 0 and not self._chain_exists(table, chain):
                    raise DockyardError(f"cannot create iptables chain {chain}: {proc.stderr.strip()}")
        iso_jump = ["-m", "comment", "--comment", self.names.rule_comment("base"), "-j", self.iso1]
        if run_iptables("filter", "-C", self.forward, *iso_jump, check=False).returncode != 0:
            run_iptables("filter", "-I", self.forward, "1", *iso_jump)
        for table, chain, rule, top in self._jumps():
            if run_iptables(table, "-C", chain, *rule, check=False).returncode != 0:
                run_iptables(table, "-I" if top else "-A", chain, *(["1"] if top else []), *rule)

    def remove_base(self) -> None:
        """Delete the jumps and our chains (with whatever is left in them)."""
        for table, chain, rule, _ in self._jumps():
            while run_iptables(table, "-D", chain, *rule, check=False).returncode == 0:
                pass
        for table, chain in self._chains():
            run_iptables(table, "-F", chain, check=False)
        for table, chain in self._chains():
            run_iptables(table, "-X", chain, check=False)

    def has_base(self) -> bool:
        return self._chain_exists("filter", self.forward)

    # -- rules by owner ---------------------------------------------------------------------
    def add(self, rules: list[Rule], owner: str) -> None:
        """Append rules tagged with ``owner``; on failure, the ones already added are removed."""
        try:
            for table, chain, args in rules:
                run_iptables(table, "-A", chain, *args, "-m", "comment", "--comment",
                             self.names.rule_comment(owner))
        except DockyardError:
            self.delete_owner(owner)
            raise

    def delete_owner(self, owner: str) -> int:
        """Delete every rule tagged with ``owner`` from our chains; returns how many."""
        wanted = self.names.rule_comment(owner)
        count = 0
        for table, chain in self._chains():
            listing = run_iptables(table, "-S", chain, check=False)
            if listing.returncode != 0:
                continue
            for line in listing.stdout.splitlines():
                words = shlex.split(line)
                if words[:1] != ["-A"] or wanted not in words:
                    continue
                if run_iptables(table, "-D", *words[1:], check=False).returncode == 0:
                    count += 1
        return count

    def owners(self) -> set[str]:
        """Owners that still have rules in our chains (for leak checks and repair)."""
        found: set[str] = set()
        prefix = f"dy:{self.names.tag}:"
        for table, chain in self._chains():
            listing = run_iptables(table, "-S", chain, check=False)
            for line in listing.stdout.splitlines() if listing.returncode == 0 else []:
                for word in shlex.split(line):
                    if word.startswith(prefix):
                        found.add(word[len(prefix):])
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
