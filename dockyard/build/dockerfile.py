"""Read a Dockerfile: parser directives, the official parser (the ``dockerfile`` package wraps
BuildKit's Go parser), and errors that name the file, the line and the instruction.

The Go parser handles line continuations, comments, the escape directive, JSON forms and
heredocs. What it leaves to us: directives (``# syntax``, ``# escape``, ``# check``), the
location of its errors (it reports a message only), and checking instruction names.
"""
from __future__ import annotations

import re
from typing import Any

from dockyard.build.errors import BuildError, DockerfileSyntaxError

KNOWN_INSTRUCTIONS = frozenset({
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL",
    "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
})
_DIRECTIVE_RE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_KNOWN_DIRECTIVES = ("syntax", "escape", "check")


class Directives:
    """Parser directives from the top of the file."""

    __slots__ = ("syntax", "escape", "check")

    def __init__(self, syntax: str = "", escape: str = "\\", check: str = "") -> None:
        self.syntax = syntax
        self.escape = escape
        self.check = check


class Heredoc:
    """A here-document: ``chomp`` for ``<<-EOF`` (leading tabs removed), ``expand`` false for a
    quoted name (``<<"EOF"``: no variable expansion)."""

    __slots__ = ("name", "content", "chomp", "expand")

    def __init__(self, name: str, content: str, chomp: bool = False, expand: bool = True) -> None:
        self.name = name
        self.content = content
        self.chomp = chomp
        self.expand = expand


class Node:
    """One instruction as written: upper-case command, raw flags and arguments, location."""

    __slots__ = ("cmd", "args", "flags", "json", "original", "line", "end_line", "heredocs", "sub_cmd")

    def __init__(self, cmd: str, args: tuple[str, ...], flags: tuple[str, ...], json: bool, original: str,
                 line: int, end_line: int, heredocs: tuple[Heredoc, ...] = (), sub_cmd: str | None = None) -> None:
        self.cmd = cmd
        self.args = args
        self.flags = flags
        self.json = json
        self.original = original
        self.line = line
        self.end_line = end_line
        self.heredocs = heredocs
        self.sub_cmd = sub_cmd


class ParsedDockerfile:
    __slots__ = ("directives", "nodes", "filename", "lines")

    def __init__(self, directives: Directives, nodes: list[Node], filename: str = "Dockerfile",
                 lines: list[str] | None = None) -> None:
        self.directives = directives
        self.nodes = nodes
        self.filename = filename
        self.lines = lines or []


def parse_directives(text: str) -> Directives:
    """Directives are ``# key=value`` comment lines before anything else (docker's rules)."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        m = _DIRECTIVE_RE.match(line.strip())
        if not m:
            break
        key = m.group(1).lower()
        if key not in _KNOWN_DIRECTIVES:
            break
        if key in found:
            raise DockerfileSyntaxError(f"only one {key} parser directive can be used")
        found[key] = m.group(2)
    escape = found.get("escape", "\\")
    if escape not in ("\\", "`"):
        raise DockerfileSyntaxError(f"invalid escape token '{escape}' does not match ` or \\")
    return Directives(syntax=found.get("syntax", ""), escape=escape, check=found.get("check", ""))


_HEREDOC_WORD = re.compile(r"^<<(-?)\s*(['\"]?)([a-zA-Z_][a-zA-Z0-9_.-]*)(['\"]?)$")


def parse_heredoc_word(word: str) -> tuple[str, bool, bool] | None:
    """``<<EOF`` / ``<<-"EOF"`` -> (name, chomp, expand); None if the word is not a heredoc."""
    m = _HEREDOC_WORD.match(word)
    if not m or m.group(2) != m.group(4):
        return None
    return m.group(3), m.group(1) == "-", m.group(2) == ""


def chomp_heredoc(content: str) -> str:
    return re.sub(r"(?m)^\t+", "", content)


def _heredoc_words(args: tuple[str, ...], cmd: str) -> list[str]:
    """The heredoc markers used in an instruction, in order (RUN keeps its command as one string)."""
    words: list[str] = []
    for a in args:
        words.extend(a.split() if cmd == "RUN" or " " in a else [a])
    return words


def _convert_heredocs(cmd: str, args: tuple[str, ...], raw: tuple[Any, ...]) -> tuple[Heredoc, ...]:
    info = {}
    for w in _heredoc_words(args, cmd):
        p = parse_heredoc_word(w)
        if p:
            info[p[0]] = p
    out = []
    for h in raw:
        name, chomp, expand = info.get(h.name, (h.name, False, True))
        out.append(Heredoc(name=name, content=h.content, chomp=chomp, expand=expand))
    return tuple(out)


def parse(data: bytes | str, filename: str = "Dockerfile") -> ParsedDockerfile:
    """Parse a whole Dockerfile. Raises DockerfileSyntaxError naming file, line and instruction."""
    import dockerfile as gp

    if isinstance(data, bytes):
        if data.startswith(b"\xef\xbb\xbf"):
            data = data[3:]
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("latin-1")
    else:
        text = data
    directives = parse_directives(text)
    lines = text.splitlines()
    try:
        commands = gp.parse_string(text)
    except gp.GoParseError as exc:
        if str(exc) == "file with no instructions":
            raise BuildError(_no_instructions(text)) from None
        line = _locate_error(lines, str(exc))
        raise DockerfileSyntaxError(str(exc), filename, line, _line_text(lines, line)) from None
    nodes: list[Node] = []
    for c in commands:
        cmd = c.cmd.upper()
        node = Node(cmd=cmd, args=tuple(c.value), flags=tuple(c.flags), json=bool(c.json),
                    original=c.original, line=c.start_line, end_line=c.end_line,
                    heredocs=_convert_heredocs(cmd, tuple(c.value), tuple(c.heredocs)),
                    sub_cmd=c.sub_cmd.upper() if c.sub_cmd else None)
        if cmd not in KNOWN_INSTRUCTIONS:
            raise DockerfileSyntaxError(f"unknown instruction: {c.cmd}", filename, c.start_line,
                                        _line_text(lines, c.start_line))
        nodes.append(node)
    if not nodes:
        raise BuildError(_no_instructions(text))
    return ParsedDockerfile(directives=directives, nodes=nodes, filename=filename, lines=lines)


def _no_instructions(text: str) -> str:
    """BuildKit tells an empty file from one with only comments and blank lines."""
    return "the Dockerfile cannot be empty" if not text else "file with no instructions"


def parse_line(text: str, escape: str = "\\") -> list[Node]:
    """Parse a fragment (an ONBUILD trigger) with the same rules as a file."""
    prefix = f"# escape={escape}\n" if escape != "\\" else ""
    return parse(prefix + text, filename="ONBUILD").nodes


def _line_text(lines: list[str], line: int) -> str:
    return lines[line - 1].strip() if 0 < line <= len(lines) else ""


def _locate_error(lines: list[str], message: str) -> int:
    """The Go parser reports no line: find the first prefix of the file that fails the same way."""
    import dockerfile as gp

    for n in range(1, len(lines) + 1):
        try:
            gp.parse_string("\n".join(lines[:n]) + "\n")
        except gp.GoParseError as exc:
            if str(exc) == message:
                return n
    return 0
