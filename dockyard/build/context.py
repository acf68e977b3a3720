"""The build context: what COPY and ADD may read, and the Dockerfile to build.

A context is a directory (``dockyard build DIR``), a tar stream on stdin (``dockyard build -``,
plain or gzip/bzip2/xz), or nothing at all (a Dockerfile on stdin without a context). A tar is
extracted once into a private directory, so that every source is read the same way.
``.dockerignore`` hides files from COPY/ADD exactly as docker hides them; a source outside the
context (``../x``, or a symlink pointing out) is refused by name.
"""
from __future__ import annotations

import errno
import os
import posixpath
import stat
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from dockyard.build.errors import BuildError
from dockyard.errors import InvalidArgument, Unsupported

if TYPE_CHECKING:  # pragma: no cover
    from dockyard.build.dockerignore import PatternMatcher

_WILDCARDS = set("*?[")


class SourceNotFound(BuildError):
    """A COPY/ADD source is not in the context (or .dockerignore hides it)."""


class SourceMatch:
    """One source a COPY names, resolved: the host path to read and the name it is copied as."""

    __slots__ = ("rel", "path", "is_dir", "name")

    def __init__(self, rel: str, path: Path, is_dir: bool, name: str = "") -> None:
        self.rel = rel          # path relative to the context root (after following symlinks)
        self.path = path        # host path
        self.is_dir = is_dir
        self.name = name        # the base name as the Dockerfile named it (before following a symlink)


def has_wildcards(path: str) -> bool:
    return any(c in _WILDCARDS for c in path)


class BuildContext:
    """A directory the build may read, with the .dockerignore that applies to it."""

    def __init__(self, root: Path | None, ignore: "PatternMatcher | None" = None,
                 owned_tmp: Path | None = None) -> None:
        self.root = root.resolve() if root is not None else None
        self.ignore = ignore if ignore else None  # None: nothing is ignored
        self._owned_tmp = owned_tmp

    # -- construction --------------------------------------------------------------------------
    @classmethod
    def from_dir(cls, path: str | os.PathLike[str], dockerfile_rel: str | None = None) -> "BuildContext":
        p = Path(path)
        if not p.exists():
            raise InvalidArgument(f"unable to prepare context: path \"{path}\" not found")
        if not p.is_dir():
            raise InvalidArgument(f"unable to prepare context: context must be a directory: {os.path.abspath(path)}")
        return cls(p, _load_ignore(p.resolve(), dockerfile_rel))

    @classmethod
    def from_tar(cls, stream: BinaryIO, tmp_parent: Path, dockerfile_rel: str | None = None) -> "BuildContext":
        """Extract a context tar (any compression) into a private directory."""
        import shutil
        import tempfile

        tmp_parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix="context-", dir=tmp_parent))
        try:
            extract_context_tar(stream, tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        matcher = _load_ignore(tmp, dockerfile_rel)
        ctx = cls(tmp, _OnlyNamed(matcher, dockerfile_rel) if matcher else None, owned_tmp=tmp)
        return ctx

    @classmethod
    def empty(cls) -> "BuildContext":
        return cls(None)

    def close(self) -> None:
        if self._owned_tmp is not None:
            import shutil

            shutil.rmtree(self._owned_tmp, ignore_errors=True)
            self._owned_tmp = None

    def __enter__(self) -> "BuildContext":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- lookups -------------------------------------------------------------------------------
    @property
    def persistent(self) -> bool:
        """Whether the files stay where they are after the build (a directory, not an extracted tar)."""
        return self._owned_tmp is None

    def excluded(self, rel: str) -> bool:
        return self.ignore is not None and self.ignore.excluded(rel)

    def read_file(self, rel: str) -> bytes:
        """A file of the context by name (the Dockerfile: read even when .dockerignore lists it)."""
        if self.root is None:
            raise InvalidArgument(f"no build context: cannot read {rel}")
        path = self._resolve(rel, follow_last=True)
        try:
            return path.read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            raise InvalidArgument(f"unable to prepare context: the Dockerfile ({rel}) cannot be found "
                                  "in the build context") from None
        except IsADirectoryError:
            raise InvalidArgument(f"unable to prepare context: {rel} is a directory, not a Dockerfile") from None

    def _resolve(self, rel: str, follow_last: bool = True) -> Path:
        """A context path with symlinks followed *inside* the context (as docker's
        FollowSymlinkInScope); ``..`` never climbs above the root."""
        assert self.root is not None
        return Path(resolve_in_root(str(self.root), rel, follow_last))

    def match_sources(self, src: str, cmd: str = "COPY") -> list[SourceMatch]:
        """The context entries one COPY/ADD source names (wildcards expanded), or SourceNotFound."""
        if self.root is None:
            raise SourceNotFound(f"{cmd} failed: no source files were specified: this build has no context")
        cleaned = clean_source(src)
        if cleaned is None:
            raise BuildError(f"{cmd} failed: forbidden path outside the build context: {src} ()")
        if has_wildcards(cleaned):
            return self._glob(cleaned, src, cmd)
        if cleaned == ".":
            return [SourceMatch(".", self.root, True, "")]
        path = self._resolve(cleaned, follow_last=True)
        rel = os.path.relpath(path, self.root)
        try:
            st = path.lstat()
        except (FileNotFoundError, NotADirectoryError):
            st = None
        if st is None or (self.excluded(cleaned) and not (stat.S_ISDIR(st.st_mode) and self._has_included(cleaned))):
            raise SourceNotFound(missing_source(cleaned))
        return [SourceMatch(rel if rel != "." else ".", path, stat.S_ISDIR(st.st_mode), posixpath.basename(cleaned))]

    def _has_included(self, rel_dir: str) -> bool:
        """An excluded directory can still hold files re-included by a ``!`` pattern."""
        return self.ignore is not None and self.ignore.may_include_below(rel_dir) \
            and any(True for _ in self.walk(rel_dir))

    def _glob(self, pattern: str, original: str, cmd: str) -> list[SourceMatch]:
        """Match a wildcard source component by component (like filepath.Match per name)."""
        assert self.root is not None
        parts = pattern.split("/")
        candidates = [""]
        for i, part in enumerate(parts):
            nxt: list[str] = []
            for base in candidates:
                base_path = self._resolve(base) if base else self.root
                if not has_wildcards(part):
                    nxt.append(posixpath.join(base, part) if base else part)
                    continue
                try:
                    names = sorted(os.listdir(base_path))
                except (FileNotFoundError, NotADirectoryError):
                    continue
                for name in names:
                    if _fnmatch(name, part):
                        nxt.append(posixpath.join(base, name) if base else name)
            candidates = nxt
        out: list[SourceMatch] = []
        for rel in candidates:
            if self.excluded(rel):
                continue
            path = self._resolve(rel, follow_last=True)
            try:
                st = path.lstat()
            except (FileNotFoundError, NotADirectoryError):
                continue
            out.append(SourceMatch(os.path.relpath(path, self.root), path, stat.S_ISDIR(st.st_mode),
                                   posixpath.basename(rel)))
        if not out:
            raise SourceNotFound(f"{cmd} failed: no source files were specified" if not candidates else
                                 missing_source(original))
        return out

    def walk(self, rel_dir: str) -> "list[tuple[str, os.stat_result]]":
        """Entries under a context directory, sorted, as (path relative to ``rel_dir``, lstat),
        with .dockerignore applied (an excluded directory is entered only if a ``!`` exception
        may re-include something in it; it is then kept as the parent of what is included)."""
        assert self.root is not None
        top = self._resolve(rel_dir) if rel_dir not in ("", ".") else self.root
        top_rel = os.path.relpath(top, self.root)
        prefix = "" if top_rel == "." else top_rel + "/"
        out: list[tuple[str, os.stat_result]] = []
        ignore = self.ignore

        def visit(host_dir: str, rel: str) -> bool:
            """Walk one dir; returns whether anything under it was kept."""
            try:
                entries = sorted(os.scandir(host_dir), key=lambda e: e.name)
            except (FileNotFoundError, NotADirectoryError, PermissionError):
                return False
            kept_any = False
            for e in entries:
                child_rel = f"{rel}/{e.name}" if rel else e.name
                ctx_rel = prefix + child_rel
                st = e.stat(follow_symlinks=False)
                excluded = ignore is not None and ignore.excluded(ctx_rel)
                if stat.S_ISDIR(st.st_mode):
                    if excluded and not ignore.may_include_below(ctx_rel):  # type: ignore[union-attr]
                        continue
                    pos = len(out)
                    out.append((child_rel, st))
                    inner = visit(e.path, child_rel)
                    if excluded and not inner:
                        del out[pos:]
                        continue
                    kept_any = True
                elif not excluded:
                    out.append((child_rel, st))
                    kept_any = True
            return kept_any

        visit(str(top), "")
        return out


class _OnlyNamed:
    """What of .dockerignore dockerd applies to a context that arrives as a tar: the client has
    filtered the rest already (and for ``build - < ctx.tar`` nothing is filtered at all, in
    both of docker's builders); only the Dockerfile and .dockerignore are left out when listed."""

    def __init__(self, matcher: "PatternMatcher", dockerfile_rel: str | None) -> None:
        self.matcher = matcher
        self.names = {".dockerignore", posixpath.normpath(dockerfile_rel or "Dockerfile").lstrip("/")}

    def excluded(self, rel: str) -> bool:
        return posixpath.normpath(rel) in self.names and self.matcher.excluded(rel)

    def may_include_below(self, rel_dir: str) -> bool:
        return False


def _load_ignore(root: Path, dockerfile_rel: str | None) -> "PatternMatcher | None":
    """The context's .dockerignore rules, or None (without importing the matcher) when it has none."""
    names = [".dockerignore"] + ([dockerfile_rel + ".dockerignore"] if dockerfile_rel else [])
    if not any(os.path.isfile(root / n) for n in names):
        return None
    from dockyard.build import dockerignore

    return dockerignore.load(root, dockerfile_rel)


def _fnmatch(name: str, pattern: str) -> bool:
    """Go's filepath.Match for one path component (no '/' in either)."""
    import fnmatch

    return fnmatch.fnmatchcase(name, pattern.replace("[^", "[!"))


def clean_source(src: str) -> str | None:
    """A source path made relative to the context root; None when it climbs out of it."""
    rooted = src.startswith("/")
    parts: list[str] = []
    for part in src.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                if rooted:
                    continue  # "/.." is "/"
                return None
            parts.pop()
        else:
            parts.append(part)
    return "/".join(parts) if parts else "."


def resolve_in_root(root: str, path: str, follow_last: bool = True) -> str:
    """Resolve ``path`` as if ``root`` were ``/``: symlinks (absolute or relative) are followed
    but can never lead outside ``root`` (docker's symlink.FollowSymlinkInScope)."""
    from dockyard.runtime.paths import secure_join

    try:
        return str(secure_join(root, path, follow_last))
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise BuildError(f"too many levels of symbolic links resolving {path}") from None
        raise


def extract_context_tar(stream: BinaryIO, dest: Path) -> None:
    """Extract a context archive safely: no absolute or climbing names, no devices, links kept in."""
    import shutil
    import tarfile

    try:
        tf = tarfile.open(fileobj=stream, mode="r|*")
    except tarfile.TarError as exc:
        raise InvalidArgument(f"unable to prepare context: the input is not a tar archive ({exc})") from None
    with tf:
        for ti in tf:
            name = clean_source(ti.name)
            if name is None or name == ".":
                continue
            target = dest / name
            parent = Path(resolve_in_root(str(dest), posixpath.dirname(name) or ".", True))
            parent.mkdir(parents=True, exist_ok=True)
            target = parent / posixpath.basename(name)
            if target.is_dir() and not target.is_symlink() and not ti.isdir():
                shutil.rmtree(target)
            elif (target.exists() or target.is_symlink()) and not ti.isdir():
                target.unlink()
            mode = ti.mode & 0o7777
            if ti.isdir():
                target.mkdir(exist_ok=True)
                os.chmod(target, mode | 0o700)
            elif ti.isfile():
                src = tf.extractfile(ti)
                with open(target, "wb") as f:
                    if src is not None:
                        shutil.copyfileobj(src, f, 1 << 20)
                os.chmod(target, mode)
            elif ti.issym():
                os.symlink(ti.linkname, target)
            elif ti.islnk():
                link = clean_source(ti.linkname)
                if link is None:
                    raise InvalidArgument(f"unable to prepare context: hard link {ti.name} points outside the context")
                os.link(dest / link, target)
            else:
                continue  # devices and fifos are not context material
            try:
                os.utime(target, (ti.mtime, ti.mtime), follow_symlinks=False)
            except OSError:
                pass


def sniff_stdin(data: bytes) -> str:
    """``tar`` if the bytes start a (possibly compressed) tar archive, else ``dockerfile``."""
    if data[:2] == b"\x1f\x8b" or data[:3] == b"BZh" or data[:6] == b"\xfd7zXZ\x00" or data[:4] == b"\x28\xb5\x2f\xfd":
        return "tar"
    if len(data) >= 262 and data[257:262] == b"ustar":
        return "tar"
    return "dockerfile"


def remote_context_error(url: str) -> Unsupported:
    return Unsupported(f"unable to prepare context: remote build contexts are not supported: {url} "
                       "(clone or download it, then build from the directory)")


def missing_source(cleaned: str) -> str:
    """BuildKit's words for a COPY/ADD source the context lacks (or .dockerignore hides)."""
    return f'failed to compute cache key: "/{cleaned.lstrip("/")}" not found: not found'
