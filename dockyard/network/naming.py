"""Names of every host object a state root creates: bridges, veths, firewall chains, run dirs.

Several state roots (a user's, and every test's) may share one host, so each root gets a short
tag (a hash of its path) that is part of every name it creates. That keeps roots from colliding
and lets a leak check find exactly what one root left behind. Linux limits interface names to
15 characters; iptables chain names to 28.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from dockyard.state import DEFAULT_ROOT

DEFAULT_BRIDGE = "dockyard0"
IFNAME_MAX = 15


def root_tag(root: str | Path) -> str:
    """Six hex digits that stand for one state root in host-wide names."""
    return hashlib.sha256(str(Path(root).absolute()).encode()).hexdigest()[:6]


class Names:
    """Host-wide names for one state root."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).absolute()
        self.tag = root_tag(self.root)
        self.is_default_root = str(self.root) == DEFAULT_ROOT

    def bridge(self, network_id: str, default_network: bool) -> str:
        """``dockyard0`` for the default root's ``bridge`` network, else ``dy<tag>-<id6>``."""
        if default_network and self.is_default_root:
            return DEFAULT_BRIDGE
        return f"dy{self.tag}-{network_id[:6]}"

    def _pair_hash(self, container_id: str, network_id: str) -> str:
        return hashlib.sha256(f"{container_id}/{network_id}".encode()).hexdigest()[:7]

    def veth_host(self, container_id: str, network_id: str) -> str:
        """The host end of a container's veth on one network (``ve<tag><hash7>``)."""
        return f"ve{self.tag}{self._pair_hash(container_id, network_id)}"

    def veth_peer_tmp(self, container_id: str, network_id: str) -> str:
        """The container end's name until it is moved into the netns and renamed ``ethN``."""
        return f"vp{self.tag}{self._pair_hash(container_id, network_id)}"

    def owns_link(self, ifname: str) -> bool:
        """True for an interface this root created (used by cleanup and the leak check)."""
        if self.is_default_root and ifname == DEFAULT_BRIDGE:
            return True
        return len(ifname) >= 8 and ifname[:2] in ("dy", "ve", "vp") and ifname[2:8] == self.tag

    @property
    def chain_prefix(self) -> str:
        return "DOCKYARD" if self.is_default_root else f"DY-{self.tag}"

    @property
    def run_dir(self) -> Path:
        """Per-root directory under /run: netns mount points and the DNS daemon's socket.
        /run is a tmpfs, so nothing stale survives a reboot."""
        return Path(f"/run/dockyard-{self.tag}")

    def netns_path(self, container_id: str) -> Path:
        return self.run_dir / "netns" / container_id

    def rule_comment(self, owner: str) -> str:
        """Every firewall rule carries ``dy:<tag>:<owner>`` so release finds it after a crash."""
        return f"dy:{self.tag}:{owner[:12]}"
