"""Platforms (``os/arch[/variant]``): the host's, parsing ``--platform``, and picking one from an index."""
from __future__ import annotations

import platform as _platform
from dataclasses import dataclass

from dockyard.errors import InvalidArgument, NotFound

_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
         "armv7l": "arm", "armv6l": "arm", "i386": "386", "i686": "386", "ppc64le": "ppc64le",
         "s390x": "s390x", "riscv64": "riscv64"}


# containerd's (Go's) lists: a lone --platform word must be one of these
_KNOWN_OS = frozenset("aix android darwin dragonfly freebsd hurd illumos ios js linux nacl netbsd openbsd plan9 "
                      "solaris windows zos".split())
_KNOWN_ARCH = frozenset("386 amd64 amd64p32 arm armbe arm64 arm64be ppc64 ppc64le loong64 mips mipsle mips64 "
                        "mips64le mips64p32 mips64p32le ppc riscv riscv64 s390 s390x sparc sparc64 wasm".split())


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        return f"{self.os}/{self.architecture}" + (f"/{self.variant}" if self.variant else "")

    def matches(self, desc_platform: dict | None) -> bool:
        if not desc_platform:
            return False
        if desc_platform.get("os") != self.os or desc_platform.get("architecture") != self.architecture:
            return False
        return not self.variant or desc_platform.get("variant", "") in ("", self.variant)


def host() -> Platform:
    machine = _platform.machine()
    arch = _ARCH.get(machine, machine)
    variant = ""
    if arch == "arm64":
        variant = "v8"
    elif machine.startswith("armv7"):
        variant = "v7"
    elif machine.startswith("armv6"):
        variant = "v6"
    return Platform("linux", arch, variant)


def parse(text: str | None) -> Platform:
    if not text:
        return host()
    parts = text.lower().split("/")
    if len(parts) == 1:  # containerd: a known OS, else a known architecture, else refused
        if parts[0] in _KNOWN_OS:
            return Platform(parts[0], host().architecture)
        arch = _ARCH.get(parts[0], parts[0])
        if arch in _KNOWN_ARCH:
            return Platform("linux", arch)
        raise InvalidArgument(f'"{text}": unknown operating system or architecture: invalid argument')
    if len(parts) in (2, 3) and all(parts):
        return Platform(parts[0], _ARCH.get(parts[1], parts[1]), parts[2] if len(parts) == 3 else "")
    raise InvalidArgument(f'"{text}": unknown operating system or architecture: invalid argument')


def select(manifests: list[dict], want: Platform) -> dict:
    """The index entry for ``want`` (exact variant first, then any variant)."""
    exact = [m for m in manifests if want.matches(m.get("platform")) and
             (not want.variant or m.get("platform", {}).get("variant", "") == want.variant)]
    loose = [m for m in manifests if want.matches(m.get("platform"))]
    for group in (exact, loose):
        if group:
            return group[0]
    raise NotFound(f"no matching manifest for {want} in the manifest list entries")
