"""An offline base image: a busybox rootfs made from the host's static busybox binary.

Debian's ``busybox-static`` package installs ``/bin/busybox``; every applet becomes a symlink to
it, as in the official image. The tar is reproducible (sorted, mtime 0, root-owned), so its
digest only changes when the binary does.
"""
from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

from dockyard.errors import NotFound

# what the official busybox image's config says (PATH as docker's default, a shell as CMD)
BUSYBOX_CHANGES = ["ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", 'CMD ["sh"]']
CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")
PASSWD = "root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
GROUP = "root:x:0:\ndaemon:x:1:\ntty:x:5:\nnogroup:x:65534:\n"


def find_busybox() -> str:
    for c in CANDIDATES:
        if os.path.isfile(c) and not os.path.islink(c):
            out = subprocess.run(["file", "-b", c], capture_output=True, text=True).stdout if shutil.which("file") else ""
            if "dynamically" in out:
                continue
            return c
    raise NotFound("a static busybox was not found: install it with 'apt-get install busybox-static'")


def build_rootfs_tar(out: str | os.PathLike[str], busybox: str | None = None) -> Path:
    """Write a busybox rootfs tar to ``out`` and return its path."""
    bb = busybox or find_busybox()
    applets = subprocess.run([bb, "--list-full"], capture_output=True, text=True, check=True).stdout.split()
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")

    def info(name: str, type_: bytes = tarfile.REGTYPE, mode: int = 0o644) -> tarfile.TarInfo:
        ti = tarfile.TarInfo(name)
        ti.type = type_
        ti.mode = mode
        ti.mtime = 0
        ti.uid = ti.gid = 0
        ti.uname = ti.gname = "root"
        return ti

    dirs = {"bin": 0o755, "dev": 0o755, "etc": 0o755, "home": 0o755, "proc": 0o555, "root": 0o700,
            "sys": 0o555, "tmp": 0o1777, "usr": 0o755, "usr/bin": 0o755, "usr/sbin": 0o755,
            "sbin": 0o755, "var": 0o755, "var/spool": 0o755, "var/spool/mail": 0o755, "var/www": 0o755}
    entries: list[tuple[tarfile.TarInfo, bytes | None]] = []
    for d, mode in dirs.items():
        entries.append((info(d, tarfile.DIRTYPE, mode), None))
    data = Path(bb).read_bytes()
    bi = info("bin/busybox", mode=0o755)
    bi.size = len(data)
    entries.append((bi, data))
    for name, text in (("etc/passwd", PASSWD), ("etc/group", GROUP)):
        ti = info(name)
        ti.size = len(text)
        entries.append((ti, text.encode()))
    seen = {"bin/busybox"}
    for applet in applets:
        rel = applet.lstrip("/")
        if rel in seen or rel.rsplit("/", 1)[0] not in dirs:
            continue
        seen.add(rel)
        link = info(rel, tarfile.SYMTYPE, 0o777)
        depth = rel.count("/")
        link.linkname = "../" * (depth) + "bin/busybox" if depth > 1 else ("busybox" if rel.startswith("bin/") else "../bin/busybox")
        entries.append((link, None))
    entries.sort(key=lambda e: e[0].name)
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tf:
        for ti, payload in entries:
            tf.addfile(ti, io.BytesIO(payload) if payload is not None else None)
    os.replace(tmp, out)
    return out
