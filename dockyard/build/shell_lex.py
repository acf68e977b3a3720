"""Docker's shell-word processing: quotes, escapes and ``$VAR`` expansion in Dockerfile words.

Dockerfile instructions such as ENV, LABEL, COPY, WORKDIR, USER and EXPOSE do not run a shell,
yet their arguments follow a subset of shell rules. This module follows BuildKit's
``frontend/dockerfile/shell`` lexer, so that ``${VAR:-default}``, ``${VAR:+alt}``,
``${VAR-x}``, ``${VAR+x}``, ``${VAR:?msg}``, ``${VAR#pat}``, ``${VAR%pat}`` and
``${VAR/pat/repl}`` give exactly docker's results, including the odd corners (a backslash
inside double quotes only escapes ``"``, ``$`` and itself; ``$1`` and ``$@`` are names).
"""
from __future__ import annotations

import re

from dockyard.build.errors import BuildError

_SPECIAL_PARAMS = "@*#?-$!0"
EOF = ""


class ShellLexError(BuildError):
    """A word could not be processed (an unmatched quote, a bad ``${...}``)."""


class _Words:
    """Splits processed text into words, as ProcessWords does (after substitution)."""

    def __init__(self) -> None:
        self.word = ""
        self.words: list[str] = []
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if ch.isspace():
            if self.in_word and self.word:
                self.words.append(self.word)
                self.word = ""
                self.in_word = False
        else:
            self.add_raw_char(ch)

    def add_raw_char(self, ch: str) -> None:
        self.word += ch
        self.in_word = True

    def add_string(self, s: str) -> None:
        for ch in s:
            self.add_char(ch)

    def add_raw_string(self, s: str) -> None:
        self.word += s
        self.in_word = True

    def get(self) -> list[str]:
        if self.word:
            self.words.append(self.word)
            self.word = ""
            self.in_word = False
        return self.words


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else EOF

    def next(self) -> str:
        if self.pos >= len(self.text):
            return EOF
        ch = self.text[self.pos]
        self.pos += 1
        return ch


class ShellLex:
    """Process one Dockerfile word with an environment (a ``{name: value}`` mapping).

    ``matched`` collects the names that were looked up and found, so the builder knows which
    build args a step really used.
    """

    def __init__(self, escape: str = "\\") -> None:
        self.escape = escape
        self.matched: set[str] = set()
        self._raw_escapes = False
        self._env: dict[str, str] = {}
        self._s = _Scanner("")

    # -- public API ------------------------------------------------------------------------
    def process_word(self, word: str, env: dict[str, str]) -> str:
        """The word with quotes removed and variables expanded; spaces are kept."""
        return self._process(word, env)[0]

    def process_words(self, word: str, env: dict[str, str]) -> list[str]:
        """The word split into fields after expansion (quoted spaces do not split)."""
        return self._process(word, env)[1]

    # -- internals ---------------------------------------------------------------------------
    def _process(self, word: str, env: dict[str, str]) -> tuple[str, list[str]]:
        self._env = env
        self._s = _Scanner(word)
        self._raw_escapes = False
        try:
            return self._stop_on(EOF, False)
        except ShellLexError as exc:
            raise ShellLexError(f"failed to process {_go_quote(word)}: {exc.message}") from None

    def _stop_on(self, stop: str, raw_escapes: bool) -> tuple[str, list[str]]:
        saved = self._raw_escapes
        self._raw_escapes = raw_escapes
        try:
            return self._stop_on_inner(stop)
        finally:
            self._raw_escapes = saved

    def _stop_on_inner(self, stop: str) -> tuple[str, list[str]]:
        result: list[str] = []
        words = _Words()
        s = self._s
        while s.peek() != EOF:
            ch = s.peek()
            if stop != EOF and ch == stop:
                s.next()
                return "".join(result), words.get()
            if ch == "$":
                tmp = self._dollar()
                result.append(tmp)
                words.add_string(tmp)
            elif ch == "'":
                tmp = self._single_quote()
                result.append(tmp)
                words.add_raw_string(tmp)
            elif ch == '"':
                tmp = self._double_quote()
                result.append(tmp)
                words.add_raw_string(tmp)
            else:
                ch = s.next()
                if ch == self.escape:
                    if self._raw_escapes:
                        words.add_raw_char(ch)
                        result.append(ch)
                    ch = s.next()
                    if ch == EOF:
                        break
                    words.add_raw_char(ch)
                else:
                    words.add_char(ch)
                result.append(ch)
        if stop != EOF:
            raise ShellLexError(f"unexpected end of statement while looking for matching {stop}")
        return "".join(result), words.get()

    def _single_quote(self) -> str:
        s = self._s
        s.next()
        out: list[str] = []
        while True:
            ch = s.next()
            if ch == EOF:
                raise ShellLexError("unexpected end of statement while looking for matching single-quote")
            if ch == "'":
                return "".join(out)
            out.append(ch)

    def _double_quote(self) -> str:
        s = self._s
        s.next()
        out: list[str] = []
        while True:
            ch = s.peek()
            if ch == EOF:
                raise ShellLexError("unexpected end of statement while looking for matching double-quote")
            if ch == '"':
                s.next()
                return "".join(out)
            if ch == "$":
                out.append(self._dollar())
                continue
            ch = s.next()
            if ch == self.escape:
                if self._raw_escapes:
                    out.append(ch)
                nxt = s.peek()
                if nxt == EOF:
                    continue
                if nxt in ('"', "$", self.escape):
                    ch = s.next()
            out.append(ch)

    def _lookup(self, name: str) -> tuple[str, bool]:
        if name in self._env:
            self.matched.add(name)
            return self._env[name], True
        return "", False

    def _dollar(self) -> str:
        s = self._s
        s.next()
        if s.peek() != "{":
            name = self._name()
            if not name:
                return "$"
            return self._lookup(name)[0]
        s.next()
        if s.peek() == EOF:
            raise ShellLexError("syntax error: missing '}'")
        if s.peek() in "{}:":
            raise ShellLexError("syntax error: bad substitution")
        name = self._name()
        ch = s.next()
        chs = ch
        if ch == "}":
            return self._lookup(name)[0]
        null_is_unset = False
        if ch == ":":
            null_is_unset = True
            ch = s.next()
            chs += ch
        if ch in ("+", "-", "?", "#", "%") and ch != EOF:
            try:
                word, _ = self._stop_on("}", ch in "#%")
            except ShellLexError:
                if s.peek() == EOF:
                    raise ShellLexError("syntax error: missing '}'") from None
                raise
            value, is_set = self._lookup(name)
            unset = not is_set or (null_is_unset and value == "")
            if ch == "-":
                return word if unset else value
            if ch == "+":
                return "" if unset else word
            if ch == "?":
                if not is_set:
                    raise ShellLexError(f"{name}: {word or 'is not allowed to be unset'}")
                if null_is_unset and value == "":
                    raise ShellLexError(f"{name}: {word or 'is not allowed to be empty'}")
                return value
            greedy = False
            if word and word[0] == ch:
                greedy = True
                word = word[1:]
            if ch == "%":
                return _trim_suffix(word, value, greedy)
            return _trim_prefix(word, value, greedy)
        if ch == EOF:
            raise ShellLexError("syntax error: missing '}'")
        if null_is_unset:  # ${x:<anything else>}: docker reads the word, then refuses the modifier
            self._stop_on("}", False)
            raise ShellLexError(f"unsupported modifier ({chs}) in substitution")
        if ch == "/":
            replace_all = s.peek() == "/"
            if replace_all:
                s.next()
            try:
                pattern, _ = self._stop_on("/", True)
            except ShellLexError:
                if s.peek() == EOF:
                    raise ShellLexError("syntax error: missing '/' in ${}") from None
                raise
            try:
                replacement, _ = self._stop_on("}", True)
            except ShellLexError:
                if s.peek() == EOF:
                    raise ShellLexError("syntax error: missing '}'") from None
                raise
            value, _ = self._lookup(name)
            rx = _pattern_to_regex(pattern, greedy=True, anchored=False)
            if replace_all:
                return rx.sub(lambda _m: replacement, value)
            m = rx.search(value)
            if m:
                value = value[: m.start()] + replacement + value[m.end():]
            return value
        raise ShellLexError(f"unsupported modifier ({chs}) in substitution")

    def _name(self) -> str:
        s = self._s
        out: list[str] = []
        while s.peek() != EOF:
            ch = s.peek()
            if not out and ch.isdigit():
                while s.peek() != EOF and s.peek().isdigit():
                    out.append(s.next())
                return "".join(out)
            if not out and ch in _SPECIAL_PARAMS:
                return s.next()
            if not (ch.isalpha() or ch.isdigit() or ch == "_"):
                break
            out.append(s.next())
        return "".join(out)


def _go_quote(s: str) -> str:
    """Go's %q for the common case (used in error messages)."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t") + '"'


def _pattern_to_regex(pattern: str, greedy: bool, anchored: bool) -> "re.Pattern[str]":
    """A shell wildcard pattern (``*``, ``?``, backslash escapes) as a regular expression."""
    out = ["^"] if anchored else []
    star = ".*" if greedy else ".*?"
    i = 0
    while i < len(pattern):
        tok = pattern[i]
        i += 1
        if tok == "*":
            out.append(star)
        elif tok == "?":
            out.append(".")
        elif tok == "\\":
            if i < len(pattern) and pattern[i] in "}/":
                continue
            if i >= len(pattern) or pattern[i] not in "*?\\":
                nxt = pattern[i] if i < len(pattern) else ""
                raise ShellLexError(f"invalid pattern ({pattern}) in substitution: invalid escape '\\{nxt}'")
            out.append(re.escape(pattern[i]))
            i += 1
        else:
            out.append(re.escape(tok))
    return re.compile("".join(out), re.S)


def _trim_prefix(word: str, value: str, greedy: bool) -> str:
    m = _pattern_to_regex(word, greedy, True).search(value)
    return value[m.end():] if m else value


def _reverse_pattern(pattern: str) -> str:
    """Reverse a pattern, keeping each escape before the character it escapes."""
    tokens: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\" and i + 1 < len(pattern):
            tokens.append(pattern[i:i + 2])
            i += 2
        else:
            tokens.append(pattern[i])
            i += 1
    return "".join(reversed(tokens))


def _trim_suffix(word: str, value: str, greedy: bool) -> str:
    return _trim_prefix(_reverse_pattern(word), value[::-1], greedy)[::-1]
