"""``.dockerignore`` with docker's semantics (moby/patternmatcher).

* one pattern per line; ``#`` lines and blank lines are skipped; surrounding spaces trimmed;
* patterns are cleaned (``filepath.Clean``) and a leading ``/`` is dropped: they are relative
  to the context root;
* ``*`` and ``?`` never match ``/``; ``**`` matches any number of directories (also none);
  ``[a-z]`` classes and ``\\`` escapes work as in ``filepath.Match``;
* a path is excluded when the *last* pattern matching it (or one of its parent directories)
  is not a ``!`` exception.
"""
from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from pathlib import Path

_REGEX_SPECIAL = set(".+()|{}$^")


@dataclass(frozen=True)
class Pattern:
    text: str          # cleaned pattern, without the leading "!"
    exclusion: bool    # a "!" exception
    regex: "re.Pattern[str]"
    dirs: tuple[str, ...]  # the pattern split on "/", to know whether a directory can hold matches

    def match(self, path: str) -> bool:
        return self.regex.match(path) is not None


def clean(path: str) -> str:
    """Go's filepath.Clean for slash paths."""
    if not path:
        return "."
    rooted = path.startswith("/")
    out = posixpath.normpath(path)
    if out.startswith("//"):
        out = "/" + out.lstrip("/")
    return out if out or not rooted else "/"


def compile_pattern(text: str) -> "re.Pattern[str]":
    """Translate one pattern to an anchored regular expression, as patternmatcher does."""
    out = ["^"]
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        i += 1
        if ch == "*":
            if i < n and text[i] == "*":
                i += 1
                if i < n and text[i] == "/":
                    i += 1
                if i >= n:
                    out.append(".*")
                else:
                    out.append("(.*/)?")
            else:
                out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch in _REGEX_SPECIAL:
            out.append("\\" + ch)
        elif ch == "\\":
            if i < n:
                out.append(re.escape(text[i]))
                i += 1
            else:
                out.append("\\\\")
        elif ch == "[":
            end = text.find("]", i + 1 if i < n and text[i] in "^]" else i)
            if end < 0:
                out.append("\\[")
            else:
                out.append("[" + text[i:end].replace("\\", "\\\\") + "]")
                i = end + 1
        else:
            out.append(re.escape(ch) if not ch.isalnum() and ch not in "/_-" else ch)
    out.append("$")
    try:
        return re.compile("".join(out), re.S)
    except re.error as exc:
        from dockyard.build.errors import BuildError

        raise BuildError(f"invalid .dockerignore pattern {text!r}: {exc}") from None


def read_patterns(text: str) -> list[str]:
    """The patterns of a .dockerignore file, normalised like dockerignore.ReadAll."""
    out: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        invert = line.startswith("!")
        if invert:
            line = line[1:].strip()
        if line:
            line = clean(line)
            if len(line) > 1 and line.startswith("/"):
                line = line[1:]
        out.append("!" + line if invert else line)
    return out


class PatternMatcher:
    """Decides which context paths (slash-separated, relative to the root) are excluded."""

    def __init__(self, patterns: list[str]) -> None:
        self.patterns: list[Pattern] = []
        for p in patterns:
            exclusion = p.startswith("!")
            body = p[1:] if exclusion else p
            if not body:
                from dockyard.build.errors import BuildError

                raise BuildError("illegal exclusion pattern: \"!\"")
            body = clean(body)
            self.patterns.append(Pattern(body, exclusion, compile_pattern(body), tuple(body.split("/"))))
        self.has_exclusions = any(p.exclusion for p in self.patterns)

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def excluded(self, path: str) -> bool:
        """MatchesOrParentMatches: the last matching pattern (on the path or a parent) decides."""
        if not self.patterns:
            return False
        parent = posixpath.dirname(path)
        parents = parent.split("/") if parent else []
        matched = False
        for pat in self.patterns:
            if pat.exclusion != matched:
                continue
            hit = pat.match(path)
            if not hit and parents:
                for i in range(len(parents)):
                    if pat.match("/".join(parents[: i + 1])):
                        hit = True
                        break
            if hit:
                matched = not pat.exclusion
        return matched

    def may_include_below(self, directory: str) -> bool:
        """Could an exception re-include something inside this excluded directory?

        Used to skip walking excluded trees (node_modules) when no ``!`` pattern can reach in.
        """
        if not self.has_exclusions:
            return False
        prefix = directory + "/"
        depth = directory.count("/") + 1
        for pat in self.patterns:
            if not pat.exclusion:
                continue
            if pat.text.startswith(prefix) or "**" in pat.text:
                return True
            # a pattern whose leading components can match the directory's components
            head = "/".join(pat.dirs[:depth])
            if len(pat.dirs) > depth and compile_pattern(head).match(directory):
                return True
        return False


def load(context_dir: Path | None, dockerfile_rel: str | None = None) -> PatternMatcher:
    """The matcher for a context: ``<Dockerfile>.dockerignore`` next to the Dockerfile wins over
    the context's ``.dockerignore`` (as BuildKit does)."""
    if context_dir is None:
        return PatternMatcher([])
    candidates = []
    if dockerfile_rel:
        candidates.append(context_dir / (dockerfile_rel + ".dockerignore"))
    candidates.append(context_dir / ".dockerignore")
    for c in candidates:
        try:
            text = c.read_text(encoding="utf-8", errors="replace")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            continue
        return PatternMatcher(read_patterns(text))
    return PatternMatcher([])
