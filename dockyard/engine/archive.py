"""``cp`` and ``diff``: files between a container and the host, and what a container changed.

Paths inside a container are only ever resolved by a child process that has ``chroot``-ed into
the container's root (``/proc/<pid>/root`` while it runs: its own mounts, volumes included; its
mounted writable layer otherwise), as docker's chrootarchive does. So a symlink the image or the
container made (``/data -> /``, ``/x -> ../../..``) resolves inside the container, never on the
host. Data crosses as a tar stream on a pipe — the same stream ``cp ... -`` reads and writes.
"""
from __future__ import annotations

import os
import stat
import sys
import tarfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, Iterator

from dockyard.engine.events import emit_container
from dockyard.errors import DockyardError, InvalidArgument, NotFound


def split_arg(arg: str) -> tuple[str | None, str]:
    """docker's rule: ``NAME:PATH`` names a container unless the part before ``:`` has a ``/``
    (or the whole thing starts with ``/`` or ``.``)."""
    if arg.startswith(("/", ".")) or ":" not in arg:
        return None, arg
    ref, _, path = arg.partition(":")
    if "/" in ref:
        return None, arg
    return ref, path


@contextmanager
def container_root(client: Any, ref: str) -> Iterator[tuple[Any, str]]:
    """(record, host path of the container's root) for the duration; mounts a stopped one."""
    svc = client.containers
    rec = svc.load(ref)
    pid = int(rec.state.get("Pid") or 0)
    if rec.status in ("running", "paused") and pid and os.path.exists(f"/proc/{pid}/root"):
        yield rec, f"/proc/{pid}/root"
        return
    mounted = False
    from dockyard.snapshot.mounts import is_mounted

    if not is_mounted(rec.rootfs):
        client.snapshots.mount(rec.id, rec.rootfs)
        mounted = True
    try:
        yield rec, str(rec.rootfs)
    finally:
        if mounted and not svc.store.monitor_alive(rec):
            client.snapshots.unmount(rec.rootfs)


class _Report(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


NOT_FOUND, NOT_DIR, IS_DIR = 3, 4, 5


def _fork_chrooted(root: str, body: Any) -> int:
    """Fork a child that chroots into ``root`` and runs ``body()``; its pid. The child exits 0,
    or with a ``_Report`` code, or 1 (its error on stderr)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 1
        # no user/group name lookups past the chroot: glibc would follow the container's
        # nsswitch.conf and load its libnss_*.so into this root process (docker's CVE-2019-14271);
        # tarfile then uses numeric ids, and names come from the files (users.id_names)
        tarfile.pwd = None  # type: ignore[attr-defined]
        tarfile.grp = None  # type: ignore[attr-defined]
        try:
            os.chroot(root)
            os.chdir("/")
            body()
            code = 0
        except _Report as exc:
            code = exc.code
        except BaseException as exc:  # noqa: BLE001
            os.write(2, f"{exc}\n".encode())
        finally:
            os._exit(code)
    return pid


def _status(pid: int) -> int:
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def tar_out(root: str, path: str, out: BinaryIO, follow_link: bool = False) -> int:
    """Write a tar of ``path`` (resolved inside ``root``) to ``out``; returns its status."""
    from dockyard.runtime.users import id_names  # imported here: the child cannot after its chroot

    return piped_from_chroot(root, lambda w: _child_tar(w, path, follow_link, id_names), out)


def piped_from_chroot(root: str, produce: Any, out: BinaryIO) -> int:
    """Run ``produce(fd)`` in a child chrooted into ``root`` and copy what it writes on ``fd``
    to ``out`` as it comes; the child's status (0, a ``_Report`` code, or 1)."""
    r, w = os.pipe()

    def body() -> None:
        os.close(r)
        produce(w)

    pid = _fork_chrooted(root, body)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        while True:
            chunk = f.read(1 << 16)
            if not chunk:
                break
            out.write(chunk)
    return _status(pid)


def _child_tar(w: int, path: str, follow_link: bool, id_names: Any) -> None:
    norm = os.path.normpath("/" + path)
    target = os.path.realpath(norm) if follow_link else norm
    if not os.path.lexists(target):
        raise _Report("not found", NOT_FOUND)
    if path.endswith("/") and not os.path.isdir(target):
        raise _Report("not a directory", NOT_DIR)
    name = os.path.basename(norm.rstrip("/")) or "/"
    users, groups = id_names("/")

    def named(ti: tarfile.TarInfo) -> tarfile.TarInfo:
        ti.uname, ti.gname = users.get(ti.uid, ""), groups.get(ti.gid, "")
        return ti

    with os.fdopen(w, "wb") as f, tarfile.open(fileobj=f, mode="w|", format=tarfile.GNU_FORMAT) as tf:
        if path.endswith("/.") and os.path.isdir(target):
            for entry in sorted(os.listdir(target)):
                tf.add(os.path.join(target, entry), arcname=entry, filter=named)
        else:
            tf.add(target, arcname=name if name != "/" else ".", filter=named)


def tar_in(root: str, dest: str, data: BinaryIO, rename_to: str | None = None,
           owner: tuple[int, int] | None = None) -> int:
    """Extract a tar stream into ``dest`` (a directory resolved inside ``root``), with the
    entries' numeric owners, or every entry owned by ``owner`` (uid, gid)."""
    r, w = os.pipe()

    def body() -> None:
        os.close(w)
        d = os.path.normpath("/" + dest)
        if not os.path.isdir(d):
            raise _Report("not found", NOT_FOUND if not os.path.lexists(d) else NOT_DIR)
        with os.fdopen(r, "rb") as f, tarfile.open(fileobj=f, mode="r|*") as tf:
            for member in tf:
                name = member.name
                if rename_to is not None:
                    _, _, rest = name.partition("/")
                    name = rename_to + ("/" + rest if rest else "")
                member.name = name.lstrip("/")
                if owner is not None:
                    member.uid, member.gid = owner
                tf.extract(member, d, set_attrs=True, filter="fully_trusted")

    pid = _fork_chrooted(root, body)
    os.close(r)
    try:
        with os.fdopen(w, "wb") as f:
            while True:
                chunk = data.read(1 << 16)
                if not chunk:
                    break
                f.write(chunk)
    except BrokenPipeError:
        pass
    return _status(pid)


def _stat_in(root: str, path: str) -> str:
    """"dir", "file", "none" (or "nodir": a parent is missing) for a path inside ``root``."""
    r, w = os.pipe()

    def body() -> None:
        os.close(r)
        p = os.path.normpath("/" + path)
        kind = "dir" if os.path.isdir(p) else "file" if os.path.lexists(p) else \
            ("none" if os.path.isdir(os.path.dirname(p)) else "nodir")
        os.write(w, kind.encode())

    pid = _fork_chrooted(root, body)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        kind = f.read().decode()
    _status(pid)
    return kind or "nodir"


def path_stat(root: str, path: str) -> dict[str, Any] | None:
    """lstat of ``path`` inside ``root`` (docker's ``ContainerPathStat``: name, size, mode as
    ``st_mode``, mtime in seconds, a symlink's target resolved inside the root); None if absent."""
    import json

    r, w = os.pipe()

    def body() -> None:
        os.close(r)
        p = os.path.normpath("/" + path)
        try:
            st = os.lstat(p)
        except (FileNotFoundError, NotADirectoryError):
            raise _Report("not found", NOT_FOUND) from None
        if path.endswith("/") and not stat.S_ISDIR(os.stat(p).st_mode):
            raise _Report("not a directory", NOT_DIR)
        link = os.path.realpath(p) if stat.S_ISLNK(st.st_mode) else ""
        os.write(w, json.dumps({"name": os.path.basename(p) or "/", "size": st.st_size, "mode": st.st_mode,
                                "mtime": st.st_mtime, "linkTarget": link}).encode())

    pid = _fork_chrooted(root, body)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    code = _status(pid)
    if code == NOT_DIR:
        raise InvalidArgument(f"{path}: not a directory")
    if code != 0 or not data:
        return None
    return json.loads(data)


def _local_tar(src: str, follow_link: bool) -> tuple[Any, str]:
    """A tar (in a temporary file) of a local path, and the name of its top entry; the files'
    own uid/gid go in, as docker's client sends them."""
    import tempfile

    norm = os.path.normpath(src)
    target = os.path.realpath(norm) if follow_link else norm
    if not os.path.lexists(target):
        raise _said_by_client(NotFound(f"lstat {target}: no such file or directory"))
    tmp = tempfile.TemporaryFile()
    name = os.path.basename(norm) or "."
    with tarfile.open(fileobj=tmp, mode="w", format=tarfile.GNU_FORMAT) as tf:
        if src.endswith("/.") and os.path.isdir(target):
            for entry in sorted(os.listdir(target)):
                tf.add(os.path.join(target, entry), arcname=entry)
        else:
            tf.add(target, arcname=name)
    tmp.seek(0)
    return tmp, name


def _said_by_client(exc: DockyardError) -> DockyardError:
    """A mistake docker's CLI finds on its side (the local path, the arguments): printed bare."""
    exc.cli_prefix = ""
    return exc


def copy_command(client: Any, src: str, dest: str, follow_link: bool = False, archive: bool = False,
                 quiet: bool = False) -> int:
    """``dockyard cp``: one side a container path, the other a local path or ``-`` (a tar stream)."""
    src_ref, src_path = split_arg(src)
    dst_ref, dst_path = split_arg(dest)
    if (src_ref is None) == (dst_ref is None):
        if src_ref is None:
            raise _said_by_client(InvalidArgument("must specify at least one container source"))
        raise _said_by_client(InvalidArgument("copying between containers is not supported"))
    if src_ref is not None:
        return _copy_out(client, src_ref, src_path, dst_path, follow_link)
    return _copy_in(client, dst_ref, src_path, dst_path, follow_link, archive)


def _copy_out(client: Any, ref: str, path: str, dest: str, follow_link: bool) -> int:
    import tempfile

    with container_root(client, ref) as (rec, root):
        if dest == "-":
            st = tar_out(root, path, sys.stdout.buffer, follow_link)
            sys.stdout.buffer.flush()
        else:
            with tempfile.TemporaryFile() as tmp:
                st = tar_out(root, path, tmp, follow_link)
                if st == 0:
                    tmp.seek(0)
                    _extract_local(tmp, path, dest)
    if st == NOT_FOUND:
        raise NotFound(f"Could not find the file {path} in container {ref}")
    if st == NOT_DIR:
        raise DockyardError(f"{path}: not a directory")
    if st != 0:
        raise DockyardError(f"copying from container {ref} failed")
    emit_container(client, rec, "archive-path")  # dockerd's event for a copy out
    return 0


def _extract_local(tar: BinaryIO, src_path: str, dest: str) -> None:
    """docker's rules for the host side: into an existing dir, or as the new name ``dest``."""
    with tarfile.open(fileobj=tar, mode="r:") as tf:
        members = tf.getmembers()
        if not members:
            return
        top = members[0]
        src_is_dir = top.isdir()
        dest_exists = os.path.lexists(dest)
        if dest_exists and os.path.isdir(dest) and not src_path.endswith("/."):
            base, rename = dest, None
        elif dest_exists and os.path.isdir(dest):
            base, rename = dest, None
        else:
            if dest_exists and src_is_dir:
                raise DockyardError("cannot copy a directory to a file")
            if dest.endswith("/") and not dest_exists:
                raise NotFound(f"destination directory {dest} does not exist" if False else
                               f"stat {dest}: no such file or directory")
            parent = os.path.dirname(os.path.abspath(dest))
            if not os.path.isdir(parent):
                raise _said_by_client(NotFound(f'invalid output path: directory "{parent}" does not exist'))
            base, rename = parent, os.path.basename(os.path.abspath(dest))
            if src_path.endswith("/.") and src_is_dir:
                os.makedirs(dest, exist_ok=True)
                base, rename = dest, None
        for m in members:
            if rename is not None:
                first, _, rest = m.name.partition("/")
                m.name = rename + ("/" + rest if rest else "")
            if m.name.startswith("/") or ".." in m.name.split("/"):
                continue
            m.uid, m.gid, m.uname, m.gname = os.getuid(), os.getgid(), "", ""  # docker's client: no lchown
            tf.extract(m, base, set_attrs=True, filter="fully_trusted")


def copy_owner(rec: Any, root: str, archive: bool) -> tuple[int, int] | None:
    """Who owns what ``cp`` puts in a container, as dockerd decides: the tar's own ids, except
    with ``-a`` (``copyUIDGID``) in a container with a ``User``, which then owns everything
    (resolved in the container's /etc/passwd and /etc/group)."""
    user = rec.cfg.get("User") or ""
    if not archive or not user:
        return None
    from dockyard.runtime.users import resolve_user

    uid, gid, _ = resolve_user(root, user)
    return uid, gid


def _copy_in(client: Any, ref: str, src: str, dest: str, follow_link: bool, archive: bool) -> int:
    if src != "-":  # docker's CLI looks at the local source before it asks about the container
        target = os.path.realpath(os.path.normpath(src)) if follow_link else os.path.normpath(src)
        if not os.path.lexists(target):
            raise _said_by_client(NotFound(f"lstat {target}: no such file or directory"))
    with container_root(client, ref) as (rec, root):
        if (rec.host_config.get("ReadonlyRootfs")) and rec.status in ("running", "paused"):
            raise DockyardError("container rootfs is marked read-only")
        owner = copy_owner(rec, root, archive)
        if src == "-":
            kind = _stat_in(root, dest)
            if kind != "dir":
                raise NotFound(f"Could not find the file {dest} in container {ref}") if kind in ("none", "nodir") \
                    else DockyardError(f"destination \"{ref}:{dest}\" must be a directory")
            st = tar_in(root, dest, sys.stdin.buffer, owner=owner)
        else:
            tmp, name = _local_tar(src, follow_link)
            with tmp:
                kind = _stat_in(root, dest)
                src_is_dir = os.path.isdir(src)
                if kind not in ("dir", "file") and (dest.endswith("/") or dest.endswith("/.")):
                    # docker's CLI: a destination that says "directory" must exist (ErrDirNotExists)
                    raise _said_by_client(NotFound("no such directory"))
                if kind == "dir":
                    st = tar_in(root, dest, tmp, owner=owner)
                elif kind == "file":
                    if src_is_dir:  # docker's CLI finds this out itself
                        raise _said_by_client(DockyardError("cannot copy directory"))
                    st = tar_in(root, os.path.dirname(os.path.normpath("/" + dest)), tmp,
                                rename_to=os.path.basename(os.path.normpath(dest)), owner=owner)
                elif kind == "none":
                    if dest.endswith("/"):
                        raise NotFound(f"Could not find the file {dest} in container {ref}")
                    st = tar_in(root, os.path.dirname(os.path.normpath("/" + dest)), tmp,
                                rename_to=os.path.basename(os.path.normpath(dest)), owner=owner)
                else:
                    parent = os.path.dirname(os.path.normpath("/" + dest.lstrip("/")))
                    raise NotFound(f"Could not find the file {parent} in container {ref}")
    if st == NOT_FOUND:
        raise NotFound(f"Could not find the file {dest} in container {ref}")
    if st != 0:
        raise DockyardError(f"copying into container {ref} failed")
    emit_container(client, rec, "extract-to-dir")  # dockerd's event for a copy in
    return 0


# ====================================================================== diff
def changes(client: Any, ref: str) -> list[tuple[str, str]]:
    """docker diff: (``A``|``C``|``D``, path) for what the container's writable layer holds."""
    rec = client.containers.load(ref)
    snap = client.snapshots.active(rec.id)
    upper = Path(snap.upper)
    lowers = [Path(p) for p in snap.lowerdirs]
    out: list[tuple[str, str]] = []

    def in_lower(rel: str) -> bool:
        return any(os.path.lexists(l / rel) for l in lowers)

    for dirpath, dirnames, filenames in os.walk(upper):
        for name in sorted(dirnames + filenames):
            full = Path(dirpath) / name
            rel = str(full.relative_to(upper))
            st = full.lstat()
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                out.append(("D", "/" + rel))
            elif in_lower(rel):
                out.append(("C", "/" + rel))
            else:
                out.append(("A", "/" + rel))
    out.sort(key=lambda e: e[1])
    return _without_init_layer(out)


# what docker keeps in a container's "init" layer (mount points the engine and runtime make),
# which ``docker diff`` therefore never shows
INIT_LAYER = ("/dev", "/dev/pts", "/dev/shm", "/dev/console", "/dev/mqueue", "/proc", "/sys", "/.dockerenv",
              "/etc/resolv.conf", "/etc/hosts", "/etc/hostname", "/etc/mtab", "/sbin/docker-init")


def _without_init_layer(entries: list[tuple[str, str]]) -> list[tuple[str, str]]:
    kept = [(k, p) for k, p in entries if not (k in ("A", "C") and p in INIT_LAYER)]
    changed_paths = {p for _, p in kept}

    def has_child(p: str) -> bool:
        return any(q.startswith(p + "/") for q in changed_paths)

    return [(k, p) for k, p in kept if k != "C" or has_child(p) or not _is_dir_entry(p, entries)]


def _is_dir_entry(path: str, entries: list[tuple[str, str]]) -> bool:
    """A changed directory only shows up because of what is inside it."""
    return any(q.startswith(path + "/") for _, q in entries)
