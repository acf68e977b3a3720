"""Planning a COPY/ADD step: expand its words, find its sources, compute its cache inputs.

The cache key of a COPY is what docker keys it on: the destination, the flags, and a checksum
of every copied file's content and permission bits (times are not part of it), or, for
``--from``, the chain of layers the files come from. Nothing is copied here: ``CopyPlan.apply``
does that later, inside the step's mounted root, and only when the cache misses.
"""
from __future__ import annotations

import os
import posixpath
import stat
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from dockyard.build.cache import BuildCache, tree_checksum
from dockyard.build.context import BuildContext, SourceMatch, SourceNotFound, has_wildcards
from dockyard.build.dockerfile import chomp_heredoc
from dockyard.build.errors import BuildError

if TYPE_CHECKING:  # pragma: no cover
    from dockyard.build import instructions as ins

URL_PREFIXES = ("http://", "https://")
GIT_PREFIXES = ("git://", "git@", "github.com/")


def is_url(src: str) -> bool:
    return src.startswith(URL_PREFIXES)


def is_git(src: str) -> bool:
    return src.startswith(GIT_PREFIXES) or (is_url(src) and src.split("?")[0].endswith(".git"))


def parse_chmod(text: str, cmd: str) -> int | None:
    if not text:
        return None
    try:
        mode = int(text, 8)
    except ValueError:
        mode = -1
    if not 0 <= mode <= 0o7777:
        raise BuildError(f"{cmd} failed: invalid chmod parameter '{text}'. it should be octal string "
                         "and between 0 and 07777")
    return mode


def resolve_chown(root: str, spec: str, cmd: str = "COPY") -> tuple[int, int]:
    """``--chown=user[:group]`` in the destination's /etc/passwd and /etc/group.

    Numbers need no lookup; a user without a group takes the group of the same name (as the
    classic builder does) or, when there is none, the user's primary group (as BuildKit does).
    """
    from dockyard.runtime.users import resolve_exec_user, resolve_group

    user, sep, group = spec.partition(":")
    if sep and ":" in group:
        raise BuildError(f"{cmd} failed: invalid chown string format: {spec}")
    try:
        if user.isdigit():
            uid, primary = int(user), int(user)
        else:
            u = resolve_exec_user(root, user)
            uid, primary = u.uid, u.gid
    except Exception as exc:  # noqa: BLE001 - users raises InvalidArgument with its own words
        raise BuildError("unable to convert uid/gid chown string to host mapping: "  # both builders' words
                         f"can't find uid for user {user}: no such user: {user}") from exc
    if not sep:
        if user.isdigit():
            return uid, uid
        try:
            return uid, resolve_group(root, user)
        except Exception:  # noqa: BLE001
            return uid, primary
    try:
        return uid, int(group) if group.isdigit() else resolve_group(root, group)
    except Exception as exc:  # noqa: BLE001
        raise BuildError("unable to convert uid/gid chown string to host mapping: "
                         f"can't find gid for group {group}: no such group: {group}") from exc


class CopyPlan:
    """Everything one COPY/ADD needs: its cache definition and how to carry it out."""

    def __init__(self, cmd: str, dest: str, dest_is_dir: bool, chown: str, chmod: int | None, link: bool) -> None:
        self.cmd = cmd
        self.dest = dest                  # absolute container path (a trailing "/" kept)
        self.dest_is_dir = dest_is_dir
        self.chown = chown
        self.chmod = chmod
        self.link = link
        self.context_matches: list[SourceMatch] = []
        self.from_sources: list[str] = []   # paths inside another stage/image
        self.heredocs: list[tuple[str, bytes]] = []
        self.urls: list[str] = []
        self.checksum = ""
        self.definition: dict[str, Any] = {}

    def apply(self, root: str, context: BuildContext | None, from_root: str | None, download: Callable[[str, str], tuple[Path, str]],
              mtime: float | None) -> None:
        """Copy into ``root`` (the step's mounted filesystem)."""
        from dockyard.build import fsops

        owner = resolve_chown(root, self.chown, self.cmd) if self.chown else None
        opts = fsops.CopyOptions(owner=owner, chmod=self.chmod, dest_is_dir=self.dest_is_dir, mtime=mtime)
        items: list[fsops.CopyItem] = []
        for m in self.context_matches:
            name = m.name
            if m.is_dir:
                assert context is not None
                items.append(fsops.CopyItem(m.path, name, True, walk=context.walk(m.rel)))
            else:
                extract = self.cmd == "ADD" and fsops.archive_kind(m.path) is not None
                items.append(fsops.CopyItem(m.path, name, False, extract=extract))
        if self.from_sources:
            assert from_root is not None
            src_ctx = BuildContext(Path(from_root))
            for src in self.from_sources:
                for m in src_ctx.match_sources(src, self.cmd):
                    items.append(fsops.CopyItem(m.path, m.name, m.is_dir, keep_owner=True))
        for name, data in self.heredocs:
            items.append(fsops.CopyItem(Path(name), name, False, data=data))
        downloaded: list[str] = []
        for url in self.urls:
            path, name = download(url, self.checksum)
            items.append(fsops.CopyItem(path, name, False))
            downloaded.append(name)
        if self.urls:
            opts.data_mode = 0o600
        copier = fsops.Copier(root, opts)
        copier.copy(items, self.dest)
        if downloaded and self.chmod is None:
            # files downloaded by ADD get mode 600, as docker gives them
            for name in downloaded:
                target = self.dest.rstrip("/") + "/" + name if self.dest_is_dir else self.dest
                host = copier.host(target)
                if os.path.isfile(host):
                    os.chmod(host, 0o600)


def plan_copy(instr: "ins.Copy", expand: Callable[[str], str], workdir: str, context: BuildContext | None,
              cache: BuildCache, from_chain: str | None, from_ref: str | None) -> CopyPlan:
    """Expand and check a COPY/ADD, find its context sources and compute its cache definition."""
    cmd = instr.cmd
    sources = [expand(s) for s in instr.sources]
    dest_raw = expand(instr.dest)
    if not dest_raw:
        raise BuildError(f"{cmd} failed: destination is empty")
    dest = dest_raw if dest_raw.startswith("/") else posixpath.join(workdir or "/", dest_raw)
    dest_is_dir = dest_raw.endswith("/") or dest_raw in (".", "..") or dest_raw.endswith("/.")
    chmod = parse_chmod(expand(instr.chmod) if instr.chmod else "", cmd)
    chown = expand(instr.chown) if instr.chown else ""
    plan = CopyPlan(cmd=cmd, dest=dest, dest_is_dir=dest_is_dir, chown=chown, chmod=chmod, link=instr.link)
    if instr.checksum:
        plan.checksum = expand(instr.checksum)
        if not all(is_url(s) for s in sources):
            raise BuildError(f"{cmd} failed: checksum can't be specified for non-HTTP(S) sources")
    entries: list[Any] = []
    count = 0
    unmatched: SourceNotFound | None = None
    for src in sources:
        if cmd == "ADD" and is_git(src):
            raise BuildError(f"ADD failed: git sources are not supported: {src}")
        if is_url(src):
            if cmd != "ADD":
                raise BuildError(f"COPY failed: source can't be a URL for COPY: {src}")
            plan.urls.append(src)
            entries.append(["url", src, plan.checksum])
            count += 1
            continue
        if from_ref is not None:
            plan.from_sources.append(src)
            entries.append(["from", src])
            count += 2 if has_wildcards(src) else 1
            continue
        if context is None:
            raise BuildError(f"{cmd} failed: no build context: cannot copy {src} "
                             "(the Dockerfile came from stdin without a context)")
        try:
            matches = context.match_sources(src, cmd)
        except SourceNotFound as exc:
            if not has_wildcards(src):
                raise
            unmatched = unmatched or exc  # only an error when no other source names anything
            continue
        for m in matches:
            plan.context_matches.append(m)
            entries.append(["ctx", m.rel, _source_sum(context, m, cache, cmd)])
        count += len(matches) if has_wildcards(src) else 1
    for h in instr.heredoc_sources:
        content = chomp_heredoc(h.content) if h.chomp else h.content
        if h.expand:
            content = expand(content)
        data = content.encode()
        plan.heredocs.append((h.name, data))
        entries.append(["heredoc", h.name, data.decode("utf-8", "surrogateescape")])
        count += 1
    if unmatched is not None and not entries:
        raise unmatched
    if count > 1 and not dest_is_dir:
        raise BuildError(f"When using {cmd} with more than one source file, the destination must be a "
                         "directory and end with a /")
    plan.definition = {
        "op": cmd.lower(), "dest": dest, "dest_is_dir": dest_is_dir, "chown": chown,
        "chmod": chmod, "link": instr.link, "sources": entries,
        **({"from": from_chain or "scratch", "from_ref": from_ref} if from_ref is not None else {}),
    }
    return plan


def _source_sum(context: BuildContext, m: SourceMatch, cache: BuildCache, cmd: str) -> str:
    """Checksum of one context source: content and permission bits of every entry."""
    if not m.is_dir:
        st = os.stat(m.path)
        if not stat.S_ISREG(st.st_mode):
            return tree_checksum([(m.name, _kind(st.st_mode), stat.S_IMODE(st.st_mode), "")])
        return tree_checksum([(m.name, "file", stat.S_IMODE(st.st_mode),
                               cache.file_digest(str(m.path), st, context.persistent))])
    rows = []
    base = str(m.path)
    for rel, st in context.walk(m.rel):
        mode = st.st_mode
        kind = _kind(mode)
        if kind == "file":
            value = cache.file_digest(os.path.join(base, rel), st, context.persistent)
        elif kind == "symlink":
            value = os.readlink(os.path.join(base, rel))
        else:
            value = ""
        rows.append((rel, kind, stat.S_IMODE(mode), value))
    return tree_checksum(rows)


def _kind(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISLNK(mode):
        return "symlink"
    return "other"
