"""The ingress load balancer: a published port spreads new connections over a service's ready
tasks with kernel DNAT, never a userspace copy.

Per published port, a chain of our own in the ``nat`` table holds one DNAT rule per ready task,
``-m statistic --mode nth`` making them take turns (``--every N``, ``N-1``, ... 1: round robin).
The root's ``<P>-PORTS`` chain (reached from PREROUTING and OUTPUT for local destinations: other
hosts, other namespaces and the host's own 127.0.0.1) jumps to it for the port. When the ready
tasks change, the chain is flushed and refilled in *one* ``iptables-restore`` transaction: a new
connection sees either the old or the new set, never an empty chain. Connections already
established keep their conntrack entry and finish on their task (what makes draining work).

Rules carry the comment ``dy:<tag>:svc<id>`` as every dockyard rule carries its owner's.
"""
from __future__ import annotations

import shlex
from typing import Any

from dockyard.network.firewall import run_iptables

OWNER_PREFIX = "svc"


def owner(service_id: str) -> str:
    return f"{OWNER_PREFIX}{service_id[:9]}"


class Ingress:
    """The published ports of one state root's services."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.firewall = client.networks.firewall
        self.prefix = client.networks.names.chain_prefix
        self._programmed: dict[str, dict[str, tuple[str, ...]]] = {}  # service -> chain -> endpoints
        self._crossing: str | None = None  # the ingress bridge whose crossing rules are in place

    def chain(self, service_id: str, port: dict[str, Any]) -> str:
        proto = "u" if port.get("Protocol", "tcp") == "udp" else ""
        return f"{self.prefix}-S{service_id[:6]}-{port['PublishedPort']}{proto}"  # <= 28 chars

    def _nat(self) -> list[list[str]]:
        out = run_iptables("nat", "-S", check=False).stdout
        return [shlex.split(line) for line in out.splitlines() if line.strip()]

    def program(self, service_id: str, ports: list[dict[str, Any]], endpoints: list[str],
                force: bool = False) -> bool:
        """Point each published port at ``endpoints`` (task IPs) and take down the service's
        ports that are no longer published; returns True if the kernel's rules were rewritten."""
        wanted = {self.chain(service_id, p): tuple(sorted(endpoints)) for p in ports}
        if not force and self._programmed.get(service_id) == wanted:
            return False
        nat = self._nat()
        if ports and not any(w[:2] == ["-N", self.firewall.ports] for w in nat):
            self.firewall.ensure_base()
            nat = self._nat()
        comment = ["-m", "comment", "--comment", self.firewall.names.rule_comment(owner(service_id))]
        ops: list[tuple[str, list[str]]] = []
        for p in ports:
            chain = self.chain(service_id, p)
            proto = p.get("Protocol", "tcp")
            if not any(w[:2] == ["-N", chain] for w in nat):
                ops.append(("nat", ["-N", chain]))
            ops.append(("nat", ["-F", chain]))
            eps = wanted[chain]
            for i, ip in enumerate(eps):
                spread = ["-m", "statistic", "--mode", "nth", "--every", str(len(eps) - i), "--packet", "0"] \
                    if i < len(eps) - 1 else []
                ops.append(("nat", ["-A", chain, "-p", proto, *spread, *comment, "-j", "DNAT",
                                    "--to-destination", f"{ip}:{p['TargetPort']}"]))
            jump = ["-p", proto, "-m", proto, "--dport", str(p["PublishedPort"]), *comment, "-j", chain]
            if not any(w[:1] == ["-A"] and w[-2:] == ["-j", chain] for w in nat):
                ops.append(("nat", ["-A", self.firewall.ports, *jump]))
        stale = [w[1] for w in nat if w[:1] == ["-N"] and w[1].startswith(self._service_prefix(service_id))
                 and w[1] not in wanted]
        ops += self._removal(nat, stale)
        self.firewall.apply(ops)
        self._programmed[service_id] = wanted
        return True

    def allow_crossing(self, bridge: str, force: bool = False) -> None:
        """Let connections to published ports reach the ingress bridge from other networks.

        dockyard isolates networks from each other (``<P>-ISOLATION-1/2`` drop traffic between
        two bridges), which would also drop a container on another network connecting to
        ``<host address>:<published port>``: the DNAT sends it across. A published port is
        public, so two rules at the top of ISOLATION-1 let DNATed connections to and from the
        ingress bridge (and nothing else) through."""
        if self._crossing == bridge and not force:
            return
        from dockyard.network.firewall import run_iptables

        listing = [shlex.split(line) for line in run_iptables("filter", "-S", self.firewall.iso1, check=False)
                   .stdout.splitlines()]
        comment = ["-m", "comment", "--comment", self.firewall.names.rule_comment(f"{OWNER_PREFIX}ingress")]
        ops: list[tuple[str, list[str]]] = []
        if not any(w[:2] == ["-N", self.firewall.iso1] for w in listing):
            self.firewall.ensure_base()
        for direction in ("-o", "-i"):
            rule = [direction, bridge, "-m", "conntrack", "--ctstate", "DNAT", *comment, "-j", "RETURN"]
            if not any(w[2:] == rule for w in listing):
                ops.append(("filter", ["-I", self.firewall.iso1, "1", *rule]))
        self.firewall.apply(ops)
        self._crossing = bridge

    def forbid_crossing(self) -> None:
        """Take the crossing rules away (no service publishes a port any more)."""
        if self._crossing is not None:
            self.firewall.delete_owner(f"{OWNER_PREFIX}ingress")
            self._crossing = None

    def _service_prefix(self, service_id: str) -> str:
        return f"{self.prefix}-S{service_id[:6]}-"

    @staticmethod
    def _removal(nat: list[list[str]], chains: list[str]) -> list[tuple[str, list[str]]]:
        """Ops that delete ``chains`` and the jumps to them."""
        ops: list[tuple[str, list[str]]] = [
            ("nat", ["-D", *w[1:]]) for w in nat
            if w[:1] == ["-A"] and w[1] not in chains and w[-2:-1] == ["-j"] and w[-1] in chains]
        return ops + [("nat", ["-F", c]) for c in chains] + [("nat", ["-X", c]) for c in chains]

    def remove(self, service_id: str) -> None:
        """Take a service's ports down: its jumps, then its chains."""
        self._remove_where(lambda chain: chain.startswith(self._service_prefix(service_id)),
                           self.firewall.names.rule_comment(owner(service_id)))
        self._programmed.pop(service_id, None)

    def remove_all(self) -> None:
        """Every service port of this root, and the crossing rules (``swarm leave``, tests)."""
        self._remove_where(lambda chain: chain.startswith(f"{self.prefix}-S"),
                           f"dy:{self.firewall.names.tag}:{OWNER_PREFIX}")
        from dockyard.network.firewall import run_iptables

        tag = f"dy:{self.firewall.names.tag}:{OWNER_PREFIX}"
        rules = [shlex.split(line) for line in run_iptables("filter", "-S", check=False).stdout.splitlines()]
        self.firewall.apply([("filter", ["-D", *w[1:]]) for w in rules
                             if w[:1] == ["-A"] and any(x.startswith(tag) for x in w)])
        self._programmed.clear()
        self._crossing = None

    def _remove_where(self, is_ours: Any, comment_prefix: str) -> None:
        nat = self._nat()
        chains = [w[1] for w in nat if w[:1] == ["-N"] and is_ours(w[1])]
        ops = self._removal(nat, chains)
        # rules of ours by their comment whose chain is gone (jumps to a gone chain cannot exist)
        ops += [("nat", ["-D", *w[1:]]) for w in nat if w[:1] == ["-A"] and w[1] not in chains
                and w[-1] not in chains and any(word.startswith(comment_prefix) for word in w)]
        self.firewall.apply(ops)

    def leftovers(self) -> list[str]:
        """Service chains and rules of this root still in the kernel (for leak checks)."""
        from dockyard.network.firewall import run_iptables

        tag = f"dy:{self.firewall.names.tag}:{OWNER_PREFIX}"
        filt = [shlex.split(line) for line in run_iptables("filter", "-S", check=False).stdout.splitlines()]
        return [" ".join(w) for w in self._nat() + filt
                if (w[:1] == ["-N"] and w[1].startswith(f"{self.prefix}-S")) or any(x.startswith(tag) for x in w)]
