"""``container export``: a tar of a container's filesystem, as ``docker export`` writes it.

What goes in is the container's root filesystem as its layers make it — the image, the
container's changes, and docker's "init" layer — but not what is mounted over it at run time
(volumes, binds, ``/proc``, ``/sys``, the ``/dev`` tmpfs, the hosts/hostname/resolv.conf binds).
So, as docker's:

* where the image has nothing there, ``/.dockerenv``, ``/etc/hostname``, ``/etc/hosts``,
  ``/etc/resolv.conf`` and ``/dev/console`` are the init layer's empty 0755 files (what a running
  container reads there is bind-mounted), ``/etc/mtab`` the link to ``/proc/mounts``, ``/dev``,
  ``/dev/pts``, ``/dev/shm``, ``/proc``, ``/sys`` directories, dated from the container's
  creation (and so are ``/etc`` and ``/dev`` when the init layer adds to them);
* entries are named without a leading ``./`` and come in lexical order (Go's filepath.Walk);
  modes carry the file type bits (``0o100644``) as Go's tar headers do; owners carry the host's
  user and group names; hard links stay links; sockets are left out;
* an ``export`` event is recorded, as dockerd does.

The tree is walked by a child that has ``chroot``-ed into the container's mounted root, so a
symlink the container made (``/x -> /``) can never lead the walk onto the host (a running
container can change its files while the walk runs). A stopped container's layers are mounted
for the time of the export. The tar streams through a pipe: nothing is staged on disk.
"""
from __future__ import annotations

import os
import stat
import tarfile
from typing import Any, BinaryIO

# docker's init layer (daemon/initlayer): made in every container, above the image
INIT_FILES = (".dockerenv", "dev/console", "etc/hostname", "etc/hosts", "etc/resolv.conf")
INIT_DIRS = ("dev", "dev/pts", "dev/shm", "proc", "sys")
INIT_LINKS = {"etc/mtab": "/proc/mounts"}

TTY_REFUSAL = "cowardly refusing to save to a terminal. Use the -o flag or redirect"


def export_container(client: Any, ref: str, out: BinaryIO) -> None:
    """Write the tar of container ``ref``'s filesystem to ``out`` (running or not)."""
    from dockyard.engine.archive import piped_from_chroot
    from dockyard.engine.events import emit_container
    from dockyard.engine.timeutil import parse_rfc3339
    from dockyard.errors import DockyardError

    svc = client.containers
    rec = svc.load(ref)
    created = (parse_rfc3339(str(rec.config.get("Created") or "")) or 0) // 1_000_000_000
    users, groups = _host_names()
    with _mounted_rootfs(client, rec) as root:
        def produce(fd: int) -> None:
            with os.fdopen(fd, "wb") as f:
                write_tree(f, created, users, groups)

        if piped_from_chroot(root, produce, out) != 0:
            raise DockyardError(f"failed to export container {rec.id}: the archive could not be written")
    emit_container(client, rec, "export")


class _mounted_rootfs:
    """The container's root as its layers make it: the mount the monitor keeps while it runs;
    mounted here (and unmounted after) when it is stopped."""

    def __init__(self, client: Any, rec: Any) -> None:
        self.client, self.rec, self.mounted = client, rec, False

    def __enter__(self) -> str:
        from dockyard.snapshot.mounts import is_mounted

        if not is_mounted(self.rec.rootfs):
            self.client.snapshots.mount(self.rec.id, self.rec.rootfs)
            self.mounted = True
        return str(self.rec.rootfs)

    def __exit__(self, *exc: object) -> None:
        if self.mounted and not self.client.containers.store.monitor_alive(self.rec):
            self.client.snapshots.unmount(self.rec.rootfs)


def _host_names() -> tuple[dict[int, str], dict[int, str]]:
    """uid -> user and gid -> group names of the host (read before the chroot: the tar's
    names are the host's, as dockerd's are)."""
    import grp
    import pwd

    users = {p.pw_uid: p.pw_name for p in reversed(pwd.getpwall())}
    groups = {g.gr_gid: g.gr_name for g in reversed(grp.getgrall())}
    return users, groups


def write_tree(f: BinaryIO, created: int, users: dict[int, str], groups: dict[int, str]) -> None:
    """The tar of ``/`` (the child's root) with docker's init layer on top, to ``f``."""
    with tarfile.open(fileobj=f, mode="w|", format=tarfile.GNU_FORMAT) as tf:
        _walk(tf, "", created, users, groups, {})


def _virtual(tf: tarfile.TarFile, name: str, kind: bytes, created: int, target: str = "") -> None:
    ti = GoTarInfo(name)
    ti.type = kind
    ti.type_bits = _TYPE_BITS[kind]
    ti.mode = 0o777 if kind == tarfile.SYMTYPE else 0o755
    ti.mtime = created
    ti.uname = ti.gname = "root"
    ti.linkname = target
    tf.addfile(ti)


def _children(rel: str) -> list[str]:
    """Names in directory ``rel``, with the init layer's that the tree lacks, sorted."""
    try:
        names = set(os.listdir("/" + rel if rel else "/"))
    except OSError:
        return []
    prefix = rel + "/" if rel else ""
    for path in (*INIT_FILES, *INIT_DIRS, *INIT_LINKS):
        parent, _, leaf = path.rpartition("/")
        if parent == rel:
            names.add(leaf)
    return sorted(names, key=lambda n: (prefix + n).encode("utf-8", "surrogateescape"))


def _walk(tf: tarfile.TarFile, rel: str, created: int, users: dict[int, str], groups: dict[int, str],
          inodes: dict[tuple[int, int], str]) -> None:
    for name in _children(rel):
        path = f"{rel}/{name}" if rel else name
        try:
            st: os.stat_result | None = os.lstat("/" + path)
        except FileNotFoundError:
            st = None
        if st is None:  # what the init layer adds where the image has nothing
            if path in INIT_FILES:
                _virtual(tf, path, tarfile.REGTYPE, created)
            elif path in INIT_LINKS:
                _virtual(tf, path, tarfile.SYMTYPE, created, INIT_LINKS[path])
            elif path in INIT_DIRS:
                _virtual(tf, path, tarfile.DIRTYPE, created)
                _walk(tf, path, created, users, groups, inodes)  # its init children
            continue  # else: gone meanwhile
        if stat.S_ISSOCK(st.st_mode):
            continue  # sockets are not archived (as docker's)
        # a directory the init layer adds files to is dated from then, as in docker's layers
        mtime = max(int(st.st_mtime), created) if _gets_init_files(path) else None
        _add(tf, path, st, users, groups, inodes, mtime)
        if stat.S_ISDIR(st.st_mode):
            _walk(tf, path, created, users, groups, inodes)


def _gets_init_files(rel: str) -> bool:
    """Whether the init layer adds an entry directly inside directory ``rel`` (one it lacks)."""
    for path in (*INIT_FILES, *INIT_LINKS, *INIT_DIRS):
        parent, _, _ = path.rpartition("/")
        if parent == rel and parent and not os.path.lexists("/" + path):
            return True
    return False


class GoTarInfo(tarfile.TarInfo):
    """A header whose mode keeps the file type bits (``0o100644``, ``0o40755``, ``0o120777``), as
    Go's ``tar.FileInfoHeader`` — and so ``docker export`` — writes it (Python keeps 0o7777)."""

    type_bits = 0

    def tobuf(self, format: int = tarfile.DEFAULT_FORMAT, encoding: str = tarfile.ENCODING,  # noqa: A002
              errors: str = "surrogateescape") -> bytes:
        buf = super().tobuf(format, encoding, errors)
        if not self.type_bits:
            return buf
        head = bytearray(buf[-tarfile.BLOCKSIZE:])  # the entry's own header (long names come first)
        head[100:108] = b"%07o\0" % ((self.mode & 0o7777) | self.type_bits)
        head[148:156] = b" " * 8
        head[148:156] = b"%06o\0 " % sum(head)
        return buf[:-tarfile.BLOCKSIZE] + bytes(head)


_TYPE_BITS = {tarfile.REGTYPE: stat.S_IFREG, tarfile.LNKTYPE: stat.S_IFREG, tarfile.DIRTYPE: stat.S_IFDIR,
              tarfile.SYMTYPE: stat.S_IFLNK, tarfile.FIFOTYPE: stat.S_IFIFO, tarfile.CHRTYPE: stat.S_IFCHR,
              tarfile.BLKTYPE: stat.S_IFBLK}


def _tarinfo(path: str, st: os.stat_result, users: dict[int, str], groups: dict[int, str],
             inodes: dict[tuple[int, int], str]) -> tarfile.TarInfo | None:
    """The header for one entry, built from its lstat (not ``gettarinfo``: its user and group
    lookups would go through NSS, which inside the chroot could load the container's libraries)."""
    mode = st.st_mode
    ti = GoTarInfo(path)
    ti.mode = stat.S_IMODE(mode)
    ti.uid, ti.gid = st.st_uid, st.st_gid
    ti.uname, ti.gname = users.get(st.st_uid, ""), groups.get(st.st_gid, "")
    ti.mtime = int(st.st_mtime)
    if stat.S_ISREG(mode):
        key = (st.st_ino, st.st_dev)
        if st.st_nlink > 1 and key in inodes:
            ti.type, ti.linkname = tarfile.LNKTYPE, inodes[key]
        else:
            if st.st_nlink > 1:
                inodes[key] = path
            ti.type, ti.size = tarfile.REGTYPE, st.st_size
    elif stat.S_ISDIR(mode):
        ti.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(mode):
        ti.type, ti.linkname = tarfile.SYMTYPE, os.readlink("/" + path)
    elif stat.S_ISFIFO(mode):
        ti.type = tarfile.FIFOTYPE
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        ti.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
        ti.devmajor, ti.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    else:
        return None
    ti.type_bits = _TYPE_BITS[ti.type]
    return ti


def _add(tf: tarfile.TarFile, path: str, st: os.stat_result, users: dict[int, str], groups: dict[int, str],
         inodes: dict[tuple[int, int], str], mtime: int | None = None) -> None:
    try:
        ti = _tarinfo(path, st, users, groups, inodes)
    except OSError:
        return  # changed meanwhile
    if ti is None:
        return
    if mtime is not None:
        ti.mtime = mtime
    if ti.type != tarfile.REGTYPE:
        tf.addfile(ti)
        return
    try:
        fd = os.open("/" + path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return  # removed or replaced meanwhile
    with os.fdopen(fd, "rb") as src:
        now = os.fstat(fd)
        if (now.st_ino, now.st_dev) != (st.st_ino, st.st_dev):
            return  # replaced meanwhile
        tf.addfile(ti, _Exactly(src, ti.size))


class _Exactly:
    """A file read as exactly ``size`` bytes (a file that shrank while being read is padded
    with zeros; one that grew is cut), so the tar stays well-formed."""

    def __init__(self, f: BinaryIO, size: int) -> None:
        self.f, self.left = f, size

    def read(self, n: int = -1) -> bytes:
        if self.left <= 0:
            return b""
        n = self.left if n < 0 else min(n, self.left)
        data = self.f.read(n)
        if len(data) < n:
            data += b"\0" * (n - len(data))
        self.left -= len(data)
        return data


def check_output_path(path: str) -> None:
    """The docker CLI's checks of ``-o`` before anything is asked (``failed to export container:
    ...``, printed bare, exit 1)."""
    from dockyard.errors import DockyardError

    def fail(why: str) -> DockyardError:
        err = DockyardError(f"failed to export container: {why}")
        err.cli_prefix = ""
        return err

    parent = os.path.dirname(os.path.normpath(path))
    if parent and parent != ".":
        try:
            parent_st = os.stat(parent)
        except OSError as exc:
            raise fail(f"invalid output path: stat {parent}: {_go_strerror(exc)}") from None
        if not stat.S_ISDIR(parent_st.st_mode):
            raise fail(f"invalid output path: stat {parent}: not a directory")
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise fail(f"stat {path}: {_go_strerror(exc)}") from None
    if stat.S_ISDIR(st.st_mode) or os.path.islink(path):
        raise fail("cannot write to a directory")
    if not stat.S_ISREG(st.st_mode):
        kind = "got a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "got an irregular file"
        raise fail(f'invalid output path: "{path}" must be a directory or a regular file: {kind}')


def _go_strerror(exc: OSError) -> str:
    text = os.strerror(exc.errno) if exc.errno else str(exc)
    return text[:1].lower() + text[1:]


def export_to_file(client: Any, ref: str, path: str) -> None:
    """``export -o``: written to a temporary file beside ``path`` (mode 0600, as docker's
    CLI), renamed over it when complete; a failure leaves nothing behind."""
    from dockyard.atomicfile import replacing

    check_output_path(path)
    with replacing(path, ".docker_temp_") as out:
        export_container(client, ref, out)
