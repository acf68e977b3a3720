"""Linux capabilities by name and number, and docker's default set.

The spec generator speaks names (``CAP_NET_ADMIN``, as in OCI specs and ``--cap-add``); the
built-in runtime needs numbers for ``prctl(PR_CAPBSET_DROP)`` and ``capset``. One table serves both.
"""
from __future__ import annotations

from dockyard.errors import InvalidArgument

# Numbers from <linux/capability.h>; the index is the capability number.
CAPABILITY_NAMES: tuple[str, ...] = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
    "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)
CAPABILITY_NUMBERS: dict[str, int] = {name: i for i, name in enumerate(CAPABILITY_NAMES)}

# moby oci/caps/defaults.go, in docker's order.
DEFAULT_CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
)


def last_cap() -> int:
    """The highest capability number this kernel knows (``/proc/sys/kernel/cap_last_cap``)."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        return len(CAPABILITY_NAMES) - 1


def normalize(name: str) -> str:
    """``net_admin``, ``NET_ADMIN`` and ``CAP_NET_ADMIN`` all mean ``CAP_NET_ADMIN``; ``ALL`` stays."""
    upper = name.strip().upper()
    if upper == "ALL":
        return upper
    if not upper.startswith("CAP_"):
        upper = "CAP_" + upper
    if upper not in CAPABILITY_NUMBERS:
        raise InvalidArgument(f"unknown capability: {name!r}")
    return upper


def host_bounding_set() -> set[str]:
    """Capabilities this process may still hand out (its bounding set): a privileged container
    cannot get what the host has dropped (here CAP_SYS_RESOURCE)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapBnd:"):
                    mask = int(line.split()[1], 16)
                    return {n for i, n in enumerate(CAPABILITY_NAMES) if mask >> i & 1}
    except OSError:
        pass
    return set(CAPABILITY_NAMES[: last_cap() + 1])


def all_capabilities() -> list[str]:
    """Every capability the host can grant, in number order (``--privileged``, ``--cap-add ALL``)."""
    available = host_bounding_set()
    return [n for n in CAPABILITY_NAMES[: last_cap() + 1] if n in available]


def tweak(base: list[str] | tuple[str, ...], cap_add: list[str] | None = None,
          cap_drop: list[str] | None = None) -> list[str]:
    """docker's ``TweakCapabilities``: drop (``ALL`` empties the set) then add (``ALL`` = everything)."""
    adds = [normalize(c) for c in cap_add or []]
    drops = [normalize(c) for c in cap_drop or []]
    caps = [] if "ALL" in drops else [c for c in base if c not in drops]
    if "ALL" in adds:
        return all_capabilities()
    for c in adds:
        if c not in caps:
            caps.append(c)
    return caps


def mask(names: list[str] | tuple[str, ...]) -> int:
    """The bit mask of a list of capability names (unknown names are ignored, as runc does)."""
    m = 0
    for n in names:
        num = CAPABILITY_NUMBERS.get(n)
        if num is not None:
            m |= 1 << num
    return m
