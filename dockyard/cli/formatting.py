"""Docker-style output: ``--format`` Go templates, aligned tables, and docker's human units.

Docker's ``--format`` is a Go ``text/template`` with a few extra functions; scripts written for
docker must print the same here. This module implements the part of text/template people use —
fields (``{{.A.B}}``), variables, pipelines, ``if``/``else if``/``range``/``with``/``break``/
``continue``, trim markers, comments, literals — with Go's builtins (``and or not len index slice
print printf println eq ne lt le gt ge html js urlquery``) and docker's (``json split join title
lower upper pad truncate``), printing values the way Go's ``fmt`` does (``map[a:1]``, ``[x y]``,
``<no value>``, ``1e+06``).

Then docker's formatter rules on top (``format_output``): no format or ``table`` gives the
command's default table, ``table ...`` renders a header row from the same template run against
a header map, ``json`` prints one JSON object per line, anything else is a template per row;
``\\t``/``\\n`` typed literally become tab/newline; tables go through a port of Go's tabwriter
with docker's settings (min width 10, padding 3). Errors read like docker's:
``template parsing error: template: :1: unclosed action``.

Only the standard library is imported (json, re, time), so CLI start-up stays fast.
"""
from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

from dockyard.errors import InvalidArgument

__all__ = [
    "render", "parse", "Template", "format_output", "format_table", "tabwrite", "human_size",
    "human_duration", "ago", "truncate_id", "go_repr", "NO_VALUE",
]


class _NoValue:
    """Go's invalid reflect.Value: what a missing map key yields; prints as ``<no value>``."""

    _instance: "_NoValue | None" = None

    def __new__(cls) -> "_NoValue":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<no value>"

    def __bool__(self) -> bool:
        return False


NO_VALUE = _NoValue()


class TemplateError(InvalidArgument):
    """A template that does not parse or fails while executing (docker's wording, printed
    without docker's usual "Error: ")."""

    cli_prefix = ""


def _parse_error(line: int, msg: str) -> TemplateError:
    return TemplateError(f"template parsing error: template: :{line}: {msg}")


class _ExecError(Exception):
    """Raised inside execution; turned into docker's ``executing "" at <node>: msg`` line."""

    def __init__(self, msg: str) -> None:
        super().__init__(msg)
        self.msg = msg


# ---------------------------------------------------------------------------------------------
# Lexer
# ---------------------------------------------------------------------------------------------
@dataclass
class _Tok:
    kind: str  # text, left, right, field, var, ident, string, number, char, bool, nil, dot, pipe,
    #            lparen, rparen, declare, assign, comma, space, eof
    val: str
    pos: int
    line: int


_KEYWORDS = {"if", "else", "end", "range", "with", "define", "template", "block", "break", "continue"}
_SPACE = " \t\r\n"
_ALNUM = re.compile(r"[A-Za-z0-9_\u0080-\U0010ffff]*")
_NUMBER = re.compile(r"[+-]?(0[xX][0-9a-fA-F_]+(\.[0-9a-fA-F_]*)?([pP][+-]?\d+)?|0[bB][01_]+|0[oO][0-7_]+|"
                     r"(\d[\d_]*)?\.?[\d_]*([eE][+-]?\d+)?i?)")


def _lex(src: str) -> list[_Tok]:
    """Split a template into text and action tokens, applying ``{{-``/``-}}`` trimming."""
    toks: list[_Tok] = []
    i, n = 0, len(src)

    def line_at(pos: int) -> int:
        return src.count("\n", 0, pos) + 1

    trim_next = False
    while i < n:
        start = src.find("{{", i)
        text_end = n if start < 0 else start
        text = src[i:text_end]
        trim_before = (start >= 0 and src[start + 2:start + 3] == "-"
                       and src[start + 3:start + 4] in (" ", "\t", "\r", "\n"))
        if trim_next:
            text = text.lstrip(_SPACE)
        if trim_before:
            text = text.rstrip(_SPACE)
        if text:
            toks.append(_Tok("text", text, i, line_at(i)))
        if start < 0:
            break
        i = start + 2 + (1 if trim_before else 0)
        # comment
        j = i
        while j < n and src[j] in _SPACE and trim_before:
            j += 1
        if src.startswith("/*", j):
            close = src.find("*/", j + 2)
            if close < 0:
                raise _parse_error(line_at(start), "unclosed comment")
            k = close + 2
            trim_next = False
            if src.startswith(" -}}", k) or (src[k:k + 1] in ("\t", "\r", "\n") and src.startswith("-}}", k + 1)):
                trim_next = True
                k += 4
            elif src.startswith("}}", k):
                k += 2
            else:
                raise _parse_error(line_at(start), "comment ends before closing delimiter")
            i = k
            continue
        toks.append(_Tok("left", "{{", start, line_at(start)))
        i, trim_next = _lex_action(src, i, toks, line_at)
    toks.append(_Tok("eof", "", n, line_at(n)))
    return toks


def _lex_action(src: str, i: int, toks: list[_Tok], line_at: Callable[[int], int]) -> tuple[int, bool]:
    n = len(src)
    paren = 0
    while True:
        if i >= n:
            raise _parse_error(line_at(n), "unclosed action")
        c = src[i]
        # right delimiter, with or without trim marker
        if c in _SPACE:
            j = i
            while j < n and src[j] in _SPACE:
                j += 1
            if src.startswith("-}}", j):
                toks.append(_Tok("right", "}}", j, line_at(j)))
                return j + 3, True
            toks.append(_Tok("space", src[i:j], i, line_at(i)))
            i = j
            continue
        if src.startswith("}}", i):
            if paren:
                raise _parse_error(line_at(i), "unclosed left paren")
            toks.append(_Tok("right", "}}", i, line_at(i)))
            return i + 2, False
        if c == "|":
            toks.append(_Tok("pipe", c, i, line_at(i)))
            i += 1
        elif c == "(":
            paren += 1
            toks.append(_Tok("lparen", c, i, line_at(i)))
            i += 1
        elif c == ")":
            paren -= 1
            if paren < 0:
                raise _parse_error(line_at(i), "unexpected right paren")
            toks.append(_Tok("rparen", c, i, line_at(i)))
            i += 1
        elif c == ",":
            toks.append(_Tok("comma", c, i, line_at(i)))
            i += 1
        elif src.startswith(":=", i):
            toks.append(_Tok("declare", ":=", i, line_at(i)))
            i += 2
        elif c == "=":
            toks.append(_Tok("assign", "=", i, line_at(i)))
            i += 1
        elif c == '"':
            j = i + 1
            while j < n and src[j] != '"':
                if src[j] == "\\":
                    j += 1
                if j < n and src[j] == "\n":
                    raise _parse_error(line_at(i), "unterminated quoted string")
                j += 1
            if j >= n:
                raise _parse_error(line_at(i), "unterminated quoted string")
            toks.append(_Tok("string", src[i:j + 1], i, line_at(i)))
            i = j + 1
        elif c == "`":
            j = src.find("`", i + 1)
            if j < 0:
                raise _parse_error(line_at(i), "unterminated raw quoted string")
            toks.append(_Tok("string", src[i:j + 1], i, line_at(i)))
            i = j + 1
        elif c == "'":
            j = i + 1
            while j < n and src[j] != "'":
                j += 2 if src[j] == "\\" else 1
            if j >= n:
                raise _parse_error(line_at(i), "unterminated character constant")
            toks.append(_Tok("char", src[i:j + 1], i, line_at(i)))
            i = j + 1
        elif c == "$":
            m = _ALNUM.match(src, i + 1)
            toks.append(_Tok("var", src[i:m.end()], i, line_at(i)))
            i = m.end()
        elif c == "." and not (i + 1 < n and src[i + 1].isdigit()):
            m = _ALNUM.match(src, i + 1)
            if m.end() == i + 1:
                toks.append(_Tok("dot", ".", i, line_at(i)))
                i += 1
            else:
                toks.append(_Tok("field", src[i:m.end()], i, line_at(i)))
                i = m.end()
        elif c.isdigit() or (c in "+-." and i + 1 < n and src[i + 1].isdigit()):
            m = _NUMBER.match(src, i)
            end = m.end() if m and m.end() > i else i + 1
            if end < n and (src[end].isalpha() or src[end] == "_"):
                raise _parse_error(line_at(i), f"bad number syntax: {src[i:end + 1]!r}".replace("'", '"'))
            toks.append(_Tok("number", src[i:end], i, line_at(i)))
            i = end
        elif c.isalpha() or c == "_":
            m = _ALNUM.match(src, i)
            word = src[i:m.end()]
            kind = "bool" if word in ("true", "false") else "nil" if word == "nil" else "ident"
            toks.append(_Tok(kind, word, i, line_at(i)))
            i = m.end()
        else:
            raise _parse_error(line_at(i), f"unrecognized character in action: U+{ord(c):04X} {c!r}")


# ---------------------------------------------------------------------------------------------
# Parse tree
# ---------------------------------------------------------------------------------------------
@dataclass
class _Node:
    pos: int
    line: int


@dataclass
class _Text(_Node):
    text: str


@dataclass
class _Field(_Node):
    names: list[str]

    def __str__(self) -> str:
        return "".join("." + n for n in self.names)


@dataclass
class _Var(_Node):
    name: str
    names: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return self.name + "".join("." + n for n in self.names)


@dataclass
class _Dot(_Node):
    def __str__(self) -> str:
        return "."


@dataclass
class _Nil(_Node):
    def __str__(self) -> str:
        return "nil"


@dataclass
class _Literal(_Node):
    value: Any
    text: str

    def __str__(self) -> str:
        return self.text


@dataclass
class _Ident(_Node):
    name: str

    def __str__(self) -> str:
        return self.name


@dataclass
class _Chain(_Node):
    node: "_Node"
    names: list[str]

    def __str__(self) -> str:
        inner = f"({self.node})" if isinstance(self.node, _Pipe) else str(self.node)
        return inner + "".join("." + n for n in self.names)


@dataclass
class _Command(_Node):
    args: list[_Node]

    def __str__(self) -> str:
        return " ".join(f"({a})" if isinstance(a, _Pipe) else str(a) for a in self.args)


@dataclass
class _Pipe(_Node):
    decl: list[str]
    is_assign: bool
    cmds: list[_Command]

    def __str__(self) -> str:
        s = " | ".join(str(c) for c in self.cmds)
        if self.decl:
            s = ", ".join(self.decl) + (" = " if self.is_assign else " := ") + s
        return s


@dataclass
class _Action(_Node):
    pipe: _Pipe


@dataclass
class _Branch(_Node):
    kind: str  # if | range | with
    pipe: _Pipe
    body: list[_Node]
    else_body: list[_Node] | None


@dataclass
class _Loop(_Node):
    kind: str  # break | continue


class _Parser:
    """Recursive descent over the token list, after Go's text/template/parse."""

    def __init__(self, toks: list[_Tok]) -> None:
        self.toks = toks
        self.i = 0
        self.vars: list[str] = ["$"]
        self.range_depth = 0

    def peek(self, skip_space: bool = True) -> _Tok:
        j = self.i
        while skip_space and self.toks[j].kind == "space":
            j += 1
        return self.toks[j]

    def next(self, skip_space: bool = True) -> _Tok:
        while skip_space and self.toks[self.i].kind == "space":
            self.i += 1
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def error(self, tok: _Tok, msg: str) -> TemplateError:
        return _parse_error(tok.line, msg)

    # list := (text | action)* ; stops at {{end}} / {{else}} and returns the stopper
    def parse_list(self, inside: str | None) -> tuple[list[_Node], str]:
        nodes: list[_Node] = []
        while True:
            tok = self.next(skip_space=False)
            if tok.kind == "eof":
                if inside is not None:
                    raise self.error(tok, "unexpected EOF")
                return nodes, "eof"
            if tok.kind == "text":
                nodes.append(_Text(tok.pos, tok.line, tok.val))
                continue
            # tok is "left"
            kw = self.peek()
            if kw.kind == "ident" and kw.val in _KEYWORDS:
                self.next()
                if kw.val == "end":
                    self.expect_right("end")
                    if inside is None:
                        raise self.error(kw, "unexpected {{end}}")
                    return nodes, "end"
                if kw.val == "else":
                    if inside is None:
                        raise self.error(kw, "unexpected {{else}}")
                    return nodes, "else"
                if kw.val in ("if", "range", "with"):
                    nodes.append(self.parse_branch(kw))
                    continue
                if kw.val in ("break", "continue"):
                    if not self.range_depth:
                        raise self.error(kw, f"{{{{{kw.val}}}}} outside {{{{range}}}}")
                    self.expect_right(kw.val)
                    nodes.append(_Loop(kw.pos, kw.line, kw.val))
                    continue
                raise self.error(kw, f"{{{{{kw.val}}}}} is not supported by dockyard's templates")
            pipe = self.parse_pipe("command", allow_decl=True)
            nodes.append(_Action(kw.pos, kw.line, pipe))

    def expect_right(self, context: str) -> None:
        tok = self.next()
        if tok.kind != "right":
            raise self.error(tok, f"unexpected {self.describe(tok)} in {context}")

    @staticmethod
    def describe(tok: _Tok) -> str:
        if tok.kind == "eof":
            return "EOF"
        return f'"{tok.val}"' if tok.kind in ("ident", "field", "var", "number") else f"<{tok.val}>"

    def parse_branch(self, kw: _Tok) -> _Branch:
        vars_mark = len(self.vars)
        pipe = self.parse_pipe(kw.val, allow_decl=True, allow_two=kw.val == "range")
        if kw.val == "range":
            self.range_depth += 1
        body, stop = self.parse_list(kw.val)
        if kw.val == "range":
            self.range_depth -= 1
        else_body: list[_Node] | None = None
        if stop == "else":
            nxt = self.peek()
            if nxt.kind == "ident" and nxt.val in ("if", "with") and kw.val in ("if", "with") and nxt.val == kw.val:
                # {{else if ...}} / {{else with ...}}: a nested branch that shares our {{end}}
                self.next()
                else_body = [self.parse_branch(nxt)]
            else:
                self.expect_right("else")
                else_body, stop = self.parse_list(kw.val)
                if stop != "end":
                    raise self.error(self.toks[self.i - 1], "expected end; found {{else}}")
        del self.vars[vars_mark:]
        return _Branch(kw.pos, kw.line, kw.val, pipe, body, else_body)

    def parse_pipe(self, context: str, allow_decl: bool = False, allow_two: bool = False,
                   end: str = "right") -> _Pipe:
        start = self.peek()
        decl: list[str] = []
        is_assign = False
        if allow_decl and start.kind == "var":
            save = self.i
            names = [self.next().val]
            tok = self.next()
            if tok.kind == "comma" and allow_two:
                v2 = self.next()
                if v2.kind != "var":
                    raise self.error(v2, "range can only initialize variables")
                names.append(v2.val)
                tok = self.next()
            if tok.kind in ("declare", "assign"):
                is_assign = tok.kind == "assign"
                decl = names
                if is_assign:
                    for name in names:
                        if name not in self.vars:
                            raise self.error(tok, f"undefined variable \"{name}\"")
                else:
                    self.vars.extend(names)
            else:
                self.i = save
        cmds: list[_Command] = []
        while True:
            tok = self.peek()
            if tok.kind == end:
                self.next()
                break
            if tok.kind in ("right", "rparen", "eof"):
                raise self.error(tok, f"unexpected {self.describe(tok)} in operand")
            cmds.append(self.parse_command(end))
            sep = self.peek()
            if sep.kind == "pipe":
                self.next()
                if self.peek().kind in (end, "right", "rparen"):
                    raise self.error(sep, "missing command")
        if not cmds:
            raise self.error(start, f"missing value for {context}")
        for stage, c in enumerate(cmds[1:], start=2):
            if isinstance(c.args[0], (_Literal, _Nil, _Dot)):
                raise self.error(start, f"non executable command in pipeline stage {stage}")
        return _Pipe(start.pos, start.line, decl, is_assign, cmds)

    def parse_command(self, end: str) -> _Command:
        args: list[_Node] = []
        first = self.peek()
        while True:
            tok = self.peek(skip_space=False)
            if tok.kind == "space":
                self.next(skip_space=False)
                continue
            if tok.kind in (end, "right", "rparen", "pipe", "eof"):
                break
            if args and self.toks[self.i - 1].kind != "space":
                raise self.error(tok, f"missing space? unexpected {self.describe(tok)} in operand")
            args.append(self.parse_operand())
        if not args:
            raise self.error(first, "empty command")
        return _Command(first.pos, first.line, args)

    def parse_operand(self) -> _Node:
        node = self.parse_term()
        tok = self.peek(skip_space=False)
        if tok.kind == "field":
            names = []
            chain_pos = tok.pos
            while self.peek(skip_space=False).kind == "field":
                names.append(self.next(skip_space=False).val[1:])
            if isinstance(node, _Field):
                return _Field(chain_pos, node.line, node.names + names)
            if isinstance(node, _Var):
                return _Var(node.pos, node.line, node.name, node.names + names)
            if isinstance(node, (_Literal, _Nil)):
                raise self.error(tok, f"unexpected . after term \"{node}\"")
            return _Chain(chain_pos, node.line, node, names)
        return node

    def parse_term(self) -> _Node:
        tok = self.next()
        k = tok.kind
        if k == "ident":
            if tok.val not in _FUNCS:
                raise self.error(tok, f"function \"{tok.val}\" not defined")
            return _Ident(tok.pos, tok.line, tok.val)
        if k == "dot":
            return _Dot(tok.pos, tok.line)
        if k == "nil":
            return _Nil(tok.pos, tok.line)
        if k == "var":
            if tok.val not in self.vars:
                raise self.error(tok, f"undefined variable \"{tok.val}\"")
            return _Var(tok.pos, tok.line, tok.val)
        if k == "field":
            return _Field(tok.pos, tok.line, [tok.val[1:]])
        if k == "bool":
            return _Literal(tok.pos, tok.line, tok.val == "true", tok.val)
        if k == "number":
            return _Literal(tok.pos, tok.line, _number(tok, self), tok.val)
        if k == "char":
            return _Literal(tok.pos, tok.line, _char(tok, self), tok.val)
        if k == "string":
            return _Literal(tok.pos, tok.line, _unquote(tok, self), tok.val)
        if k == "lparen":
            pipe = self.parse_pipe("parenthesized pipeline", end="rparen")
            return pipe
        raise self.error(tok, f"unexpected {self.describe(tok)} in operand")


def _number(tok: _Tok, p: _Parser) -> int | float:
    text = tok.val.replace("_", "")
    try:
        if text.endswith("i"):
            raise ValueError
        low = text.lower().lstrip("+-")
        if low.startswith(("0x", "0b", "0o")) and "." not in low and "p" not in low:
            return int(text, 0)
        if any(ch in low for ch in ".e") or "p" in low:
            return float.fromhex(text) if low.startswith("0x") else float(text)
        if len(low) > 1 and low.startswith("0"):
            return int(text, 8)
        return int(text)
    except ValueError:
        raise p.error(tok, f'bad number syntax: "{tok.val}"') from None


def _unquote(tok: _Tok, p: _Parser) -> str:
    text = tok.val
    if text.startswith("`"):
        return text[1:-1]
    try:
        return json.loads(re.sub(r"\\x([0-9a-fA-F]{2})", r"\\u00\1", re.sub(r"\\([abfv'])",
                          lambda m: {"a": "\\u0007", "b": "\\b", "f": "\\f", "v": "\\u000b", "'": "'"}[m.group(1)],
                          text)))
    except ValueError:
        raise p.error(tok, f"invalid syntax: {text}") from None


def _char(tok: _Tok, p: _Parser) -> int:
    inner = tok.val[1:-1]
    value = _unquote(_Tok("string", '"' + inner.replace('"', '\\"') + '"', tok.pos, tok.line), p)
    if len(value) != 1:
        raise p.error(tok, f"malformed character constant: {tok.val}")
    return ord(value)


# ---------------------------------------------------------------------------------------------
# Go value semantics: printing, truth, types
# ---------------------------------------------------------------------------------------------
def _go_type(v: Any) -> str:
    if v is NO_VALUE or v is None:
        return "<nil>"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float64"
    if isinstance(v, str):
        return "string"
    if isinstance(v, (list, tuple)):
        return "[]interface {}"
    if isinstance(v, dict):
        return "map[string]interface {}"
    return type(v).__name__


def _float_digits(f: float) -> tuple[str, str, int]:
    """(sign, shortest significant digits, decimal point position) of a finite non-zero float:
    0.0125 -> ("", "125", -1), 1234.5 -> ("", "12345", 4)."""
    r = repr(f)
    sign = "-" if r.startswith("-") else ""
    mant, _, exp_s = r.lstrip("-").partition("e")
    int_part, _, frac = mant.partition(".")
    digits = int_part + frac
    point = len(int_part) + (int(exp_s) if exp_s else 0)
    stripped = digits.lstrip("0")
    point -= len(digits) - len(stripped)
    return sign, stripped.rstrip("0") or "0", point


def _fixed(sign: str, digits: str, point: int) -> str:
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return f"{sign}{digits}{'0' * (point - len(digits))}"
    return f"{sign}{digits[:point]}.{digits[point:]}"


def _go_float(f: float) -> str:
    """Go's ``%v`` of a float64 (strconv 'g', shortest): 3, 0.5, 123456, 1e+06, 1.2345e-05."""
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    if f == 0:
        return "-0" if math.copysign(1, f) < 0 else "0"
    sign, digits, point = _float_digits(f)
    x = point - 1
    if x < -4 or x >= 6:
        mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mant}e{'-' if x < 0 else '+'}{abs(x):02d}"
    return _fixed(sign, digits, point)


def _json_float(f: float) -> str:
    """Go's encoding/json text for a float64: fixed notation for 1e-6 <= |f| < 1e21."""
    if f == 0:
        return "0" if math.copysign(1, f) > 0 else "-0"
    sign, digits, point = _float_digits(f)
    if 1e-6 <= abs(f) < 1e21:
        return _fixed(sign, digits, point)
    x = point - 1
    mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{sign}{mant}e{'-' if x < 0 else '+'}{abs(x)}"


def _is_struct(d: dict) -> bool:
    """A dict standing for a Go struct (docker's inspect objects): every key an exported Go
    identifier. Go prints a struct as ``{v1 v2}`` and marshals it in field order, where a map
    (labels, ports, env-style keys) prints as ``map[k:v]`` with its keys sorted."""
    return isinstance(d, GoStruct) or bool(d) and not isinstance(d, _Row) and all(
        isinstance(k, str) and k[:1].isascii() and k[:1].isupper() and k.isidentifier() for k in d)


class GoStruct(dict):
    """A dict that marshals in its key order, as a Go struct whose JSON names are not Go
    identifiers (``events.Message``: ``status``, ``Type``, ..., ``timeNano``)."""


def go_repr(v: Any) -> str:
    """A value as Go's ``fmt.Sprint`` prints a decoded-JSON value (``%v``)."""
    if v is NO_VALUE:
        return "<no value>"
    if v is None:
        return "<nil>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _go_float(v)
    if isinstance(v, str):
        return v
    if isinstance(v, (list, tuple)):
        return "[" + " ".join(go_repr(x) for x in v) + "]"
    if isinstance(v, dict):
        if _is_struct(v):
            return "{" + " ".join(go_repr(x) for x in v.values()) + "}"
        return "map[" + " ".join(f"{go_repr(k)}:{go_repr(v[k])}" for k in sorted(v, key=str)) + "]"
    return str(v)


def _truth(v: Any) -> bool:
    if v is NO_VALUE or v is None:
        return False
    if isinstance(v, (bool, int, float, str, list, tuple, dict)):
        return bool(v)
    return True


class _Row(dict):
    """A formatter row: ``{{json .}}`` on it escapes HTML as docker's row contexts do. When
    ``go_type`` is set, the row stands for that Go struct (``*formatter.imageContext``): a field
    it lacks is docker's "can't evaluate field" error rather than ``<no value>``."""

    go_type = ""


def as_struct(obj: dict[str, Any], go_type: str) -> "_Row":
    """``obj`` as the Go struct ``go_type``: a field it lacks is an execution error."""
    row = _Row(obj)
    row.go_type = go_type
    return row


class GoMap(dict):
    """A dict that is a Go *map* in docker's typed inspect objects (Labels, Options, ...): a
    missing key prints ``<no value>`` even where a missing struct field is an error. ``nil``:
    the map is Go's nil map — empty everywhere, ``null`` in JSON."""

    nil = False


def _go_json(v: Any, escape_html: bool = False) -> str:
    """Go's encoding/json output: compact, map keys sorted (struct-like dicts keep their
    order), Go's float text, optional HTML escaping (docker's row contexts marshal with it,
    its ``json`` function without)."""
    floats: list[str] = []
    token = f"\x00f{id(floats):x}:"

    def fix(x: Any) -> Any:
        if isinstance(x, float):
            if not math.isfinite(x):
                return None
            floats.append(_json_float(x))
            return f"{token}{len(floats) - 1}"
        if isinstance(x, GoMap) and x.nil:
            return None
        if getattr(x, "json_view", None) is not None:  # a struct whose JSON names differ from its fields
            return fix(x.json_view)
        if isinstance(x, dict):
            keys = list(x) if _is_struct(x) else sorted(x, key=str)
            omit = getattr(x, "omitempty", ())  # a typed struct's `json:",omitempty"` fields
            return {str(k): fix(x[k]) for k in keys if not callable(x[k])  # methods are not data
                    and not (k in omit and (x[k] in (None, "", 0, False) or x[k] == [] or x[k] == {}))}
        if isinstance(x, (list, tuple)):
            return [fix(i) for i in x]
        if x is NO_VALUE:
            return None
        if x is None or isinstance(x, (str, int, bool)):
            return x
        if hasattr(x, "__dict__"):
            return fix({k: val for k, val in vars(x).items() if not k.startswith("_")})
        return str(x)

    text = json.dumps(fix(v), separators=(",", ":"), ensure_ascii=False)
    if floats:
        quoted_token = json.dumps(token, ensure_ascii=False)[1:-1]
        text = re.sub('"' + re.escape(quoted_token) + r'(\d+)"', lambda m: floats[int(m.group(1))], text)
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    if escape_html:
        text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return text


# ---------------------------------------------------------------------------------------------
# printf: Go's fmt verbs
# ---------------------------------------------------------------------------------------------
_VERB = re.compile(r"%([-+# 0]*)(\*|\d+)?(?:\.(\*|\d*))?([a-zA-Z%])")


def _go_quote(s: str) -> str:
    out = json.dumps(s, ensure_ascii=False)
    return out.replace("\\u007f", "\\x7f")


def _pad(text: str, width: int | None, flags: str, numeric: bool = False) -> str:
    if width is None or len(text) >= width:
        return text
    if "-" in flags:
        return text + " " * (width - len(text))
    if "0" in flags and numeric:
        sign = text[0] if text[:1] in "+-" else ""
        return sign + "0" * (width - len(text)) + text[len(sign):]
    return " " * (width - len(text)) + text


def _fmt_one(verb: str, flags: str, width: int | None, prec: int | None, arg: Any) -> str:
    bad = f"%!{verb}({_go_type(arg)}={go_repr(arg)})"
    if verb == "v":
        return _pad(go_repr(arg), width, flags)
    if verb == "T":
        return _pad(_go_type(arg), width, flags)
    if verb in "sq":
        if verb == "q" and isinstance(arg, int) and not isinstance(arg, bool):
            return _pad("'" + chr(arg) + "'", width, flags)
        if not isinstance(arg, str) and verb == "q":
            return bad
        text = arg if isinstance(arg, str) else go_repr(arg) if isinstance(arg, (list, dict, tuple)) else None
        if text is None:
            return bad
        if prec is not None:
            text = text[:prec]
        return _pad(_go_quote(text) if verb == "q" else text, width, flags)
    if verb == "t":
        return _pad("true" if arg else "false", width, flags) if isinstance(arg, bool) else bad
    if verb in "dboxXc":
        if isinstance(arg, str) and verb in "xX":
            text = arg.encode().hex()
            return _pad(text.upper() if verb == "X" else text, width, flags)
        if not isinstance(arg, int) or isinstance(arg, bool):
            return bad
        if verb == "c":
            return _pad(chr(arg), width, flags)
        base = {"d": "d", "b": "b", "o": "o", "x": "x", "X": "X"}[verb]
        text = format(abs(arg), base)
        if "#" in flags and verb in "xX":
            text = ("0x" if verb == "x" else "0X") + text
        sign = "-" if arg < 0 else "+" if "+" in flags else " " if " " in flags else ""
        return _pad(sign + text, width, flags, numeric=True)
    if verb in "feEgG":
        if isinstance(arg, bool) or not isinstance(arg, (int, float)):
            return bad
        f = float(arg)
        if verb in "gG" and prec is None:
            text = _go_float(f)
            text = text.upper() if verb == "G" else text
        else:
            p = 6 if prec is None else prec
            text = format(f, f"{'+' if '+' in flags else ''}.{p}{verb}")
        if "+" in flags and not text.startswith(("+", "-")):
            text = "+" + text
        return _pad(text, width, flags, numeric=True)
    return f"%!{verb}({_go_type(arg)}={go_repr(arg)})"


def go_sprintf(fmt: str, args: Sequence[Any]) -> str:
    """Go's fmt.Sprintf for the common verbs (``%v %s %q %d %t %f %e %g %x %X %o %b %c %T %%``)."""
    out: list[str] = []
    pos = 0
    argi = 0
    for m in _VERB.finditer(fmt):
        out.append(fmt[pos:m.start()])
        pos = m.end()
        flags, width_s, prec_s, verb = m.groups()
        if verb == "%":
            out.append("%")
            continue
        width: int | None = None
        prec: int | None = None
        if width_s == "*":
            width = int(args[argi]) if argi < len(args) else None
            argi += 1
        elif width_s:
            width = int(width_s)
        if prec_s == "*":
            prec = int(args[argi]) if argi < len(args) else None
            argi += 1
        elif prec_s is not None:
            prec = int(prec_s or "0")
        if argi >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        out.append(_fmt_one(verb, flags, width, prec, args[argi]))
        argi += 1
    out.append(fmt[pos:])
    if argi < len(args):
        extra = ", ".join(f"{_go_type(a)}={go_repr(a)}" for a in args[argi:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


def _go_sprint(args: Sequence[Any]) -> str:
    out = []
    for i, a in enumerate(args):
        if i and not isinstance(a, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(go_repr(a))
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# Functions
# ---------------------------------------------------------------------------------------------
def _want(name: str, args: Sequence[Any], n: int) -> None:
    if len(args) != n:
        raise _ExecError(f"wrong number of args for {name}: want {n} got {len(args)}")


def _as_str(name: str, v: Any) -> str:
    if isinstance(v, str):
        return v
    if v is NO_VALUE or v is None:
        raise _ExecError("invalid value; expected string")
    raise _ExecError(f"wrong type for value; expected string; got {_go_type(v)}")


def _as_int(v: Any) -> int:
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    raise _ExecError(f"wrong type for value; expected int; got {_go_type(v)}")


def _f_json(args: Sequence[Any]) -> str:
    _want("json", args, 1)
    return _go_json(args[0], escape_html=isinstance(args[0], _Row))


def _f_len(args: Sequence[Any]) -> int:
    _want("len", args, 1)
    v = args[0]
    if v is NO_VALUE or v is None:
        raise _ExecError("error calling len: len of untyped nil")
    if isinstance(v, (str, list, tuple, dict)):
        return len(v.encode()) if isinstance(v, str) else len(v)
    raise _ExecError(f"error calling len: len of type {_go_type(v)}")


def _f_index(args: Sequence[Any]) -> Any:
    if not args:
        raise _ExecError("wrong number of args for index: want at least 1 got 0")
    item = args[0]
    if item is NO_VALUE or item is None:
        raise _ExecError("error calling index: index of untyped nil")
    for key in args[1:]:
        if isinstance(item, dict):
            if key is NO_VALUE or key is None:
                raise _ExecError("error calling index: value is nil; should be of type string")
            item = item.get(key, "")  # a missing key gives the element's zero value
        elif isinstance(item, (list, tuple, str)):
            if not isinstance(key, int) or isinstance(key, bool):
                raise _ExecError(f"error calling index: cannot index slice/array with type {_go_type(key)}")
            if not 0 <= key < len(item):
                raise _ExecError(f"error calling index: index out of range: {key}")
            item = item[key] if not isinstance(item, str) else item.encode()[key]
        elif item is None or item is NO_VALUE:
            raise _ExecError("error calling index: index of untyped nil")
        else:
            raise _ExecError(f"error calling index: can't index item of type {_go_type(item)}")
    return item


def _f_slice(args: Sequence[Any]) -> Any:
    if not args:
        raise _ExecError("wrong number of args for slice: want at least 1 got 0")
    item, idx = args[0], [_as_int(a) for a in args[1:]]
    if not isinstance(item, (str, list, tuple)):
        raise _ExecError(f"error calling slice: can't slice item of type {_go_type(item)}")
    if len(idx) > 3 or (isinstance(item, str) and len(idx) > 2):
        raise _ExecError("error calling slice: too many slice indexes")
    start = idx[0] if idx else 0
    end = idx[1] if len(idx) > 1 else len(item)
    if not 0 <= start <= end <= len(item):
        raise _ExecError(f"error calling slice: index out of range: {end if end > len(item) else start}")
    return item[start:end]


def _cmp_pair(name: str, a: Any, b: Any) -> int:
    """-1, 0 or 1 as Go's comparison builtins decide; nil compares equal only to nil in eq/ne."""
    nil_a, nil_b = a is None or a is NO_VALUE, b is None or b is NO_VALUE
    if name in ("eq", "ne"):
        # docker's inspect falls back to untyped JSON when a typed comparison fails, so values
        # of different kinds end up simply unequal there: the same here, without an error
        if nil_a or nil_b:
            return 0 if nil_a and nil_b else 1
        if _kind(a) != _kind(b):
            return 1
    if nil_a or nil_b:
        raise _ExecError(f"error calling {name}: invalid type for comparison")
    num_a = isinstance(a, (int, float)) and not isinstance(a, bool)
    num_b = isinstance(b, (int, float)) and not isinstance(b, bool)
    if num_a and num_b:
        if isinstance(a, float) != isinstance(b, float):
            raise _ExecError(f"error calling {name}: incompatible types for comparison")
        return (a > b) - (a < b)
    if isinstance(a, str) and isinstance(b, str):
        return (a > b) - (a < b)
    if isinstance(a, bool) and isinstance(b, bool):
        if name not in ("eq", "ne"):
            raise _ExecError(f"error calling {name}: invalid type for comparison")
        return 0 if a == b else 1
    if type(a) is not type(b):
        raise _ExecError(f"error calling {name}: incompatible types for comparison")
    if name in ("eq", "ne"):
        raise _ExecError(f"error calling {name}: non-comparable type {go_repr(a)}: {_go_type(a)}")
    raise _ExecError(f"error calling {name}: invalid type for comparison")


def _kind(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "string"
    return type(v).__name__


def _f_eq(args: Sequence[Any]) -> bool:
    if len(args) < 2:
        raise _ExecError("wrong number of args for eq: want at least 2 got %d" % len(args))
    return any(_cmp_pair("eq", args[0], b) == 0 for b in args[1:])


def _cmp(name: str, test: Callable[[int], bool]) -> Callable[[Sequence[Any]], bool]:
    def f(args: Sequence[Any]) -> bool:
        _want(name, args, 2)
        return test(_cmp_pair(name, args[0], args[1]))

    return f


def _title(s: str) -> str:
    """Go's strings.Title: upper-case the first letter of each word."""
    out, prev_sep = [], True
    for ch in s:
        out.append(ch.upper() if prev_sep else ch)
        prev_sep = not (ch.isalnum() or ch == "_")
    return "".join(out)


def _f_truncate(args: Sequence[Any]) -> str:
    _want("truncate", args, 2)
    s, n = _as_str("truncate", args[0]), _as_int(args[1])
    return s if len(s) < n else s[:n]


def _f_pad(args: Sequence[Any]) -> str:
    _want("pad", args, 3)
    s = _as_str("pad", args[0])
    return s if not s else " " * _as_int(args[1]) + s + " " * _as_int(args[2])


def _f_join(args: Sequence[Any]) -> str:
    _want("join", args, 2)
    items, sep = args[0], _as_str("join", args[1])
    if items is None or items is NO_VALUE:
        return ""
    if not isinstance(items, (list, tuple)):
        raise _ExecError(f"wrong type for value; expected []string; got {_go_type(items)}")
    return sep.join(go_repr(i) for i in items)


def _f_split(args: Sequence[Any]) -> list[str]:
    _want("split", args, 2)
    s, sep = _as_str("split", args[0]), _as_str("split", args[1])
    if sep == "":
        return list(s)
    return s.split(sep)


def _one_str(name: str, f: Callable[[str], str]) -> Callable[[Sequence[Any]], str]:
    def g(args: Sequence[Any]) -> str:
        _want(name, args, 1)
        return f(_as_str(name, args[0]))

    return g


def _html(args: Sequence[Any]) -> str:
    s = _go_sprint(args)
    return (s.replace("&", "&amp;").replace("'", "&#39;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&#34;").replace("\0", "\ufffd"))


def _js(args: Sequence[Any]) -> str:
    s = _go_sprint(args)
    table = {"\\": "\\\\", "'": "\\'", '"': "\\\"", "<": "\\u003C", ">": "\\u003E", "&": "\\u0026", "=": "\\u003D"}
    return "".join(table.get(c, c if c.isprintable() else f"\\u{ord(c):04X}") for c in s)


def _urlquery(args: Sequence[Any]) -> str:
    from urllib.parse import quote_plus

    return quote_plus(_go_sprint(args))


def _f_ne(args: Sequence[Any]) -> bool:
    _want("ne", args, 2)
    return not _f_eq(args)


def _f_printf(args: Sequence[Any]) -> str:
    if not args:
        raise _ExecError("wrong number of args for printf: want at least 1 got 0")
    return go_sprintf(_as_str("printf", args[0]), args[1:])


def _f_println(args: Sequence[Any]) -> str:
    return " ".join(go_repr(x) for x in args) + "\n"


def _f_not(args: Sequence[Any]) -> bool:
    _want("not", args, 1)
    return not _truth(args[0])


# name -> (function(args), identity in a table header?)
_FUNCS: dict[str, tuple[Callable[[Sequence[Any]], Any], bool]] = {
    "and": (lambda a: a, False),  # evaluated lazily in _call
    "or": (lambda a: a, False),
    "not": (_f_not, False),
    "len": (_f_len, False),
    "index": (_f_index, False),
    "slice": (_f_slice, False),
    "print": (_go_sprint, False),
    "printf": (_f_printf, False),
    "println": (_f_println, False),
    "eq": (_f_eq, False),
    "ne": (_f_ne, False),
    "lt": (_cmp("lt", lambda c: c < 0), False),
    "le": (_cmp("le", lambda c: c <= 0), False),
    "gt": (_cmp("gt", lambda c: c > 0), False),
    "ge": (_cmp("ge", lambda c: c >= 0), False),
    "html": (_html, False),
    "js": (_js, False),
    "urlquery": (_urlquery, False),
    # docker's additions (cli/templates): in a table header they return their first argument
    "json": (_f_json, True),
    "split": (_f_split, True),
    "join": (_f_join, True),
    "title": (_one_str("title", _title), True),
    "lower": (_one_str("lower", str.lower), True),
    "upper": (_one_str("upper", str.upper), True),
    "pad": (_f_pad, True),
    "truncate": (_f_truncate, True),
}


# ---------------------------------------------------------------------------------------------
# Execution
# ---------------------------------------------------------------------------------------------
class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class _State:
    def __init__(self, root: Any, header: bool, missing_error: bool) -> None:
        self.vars: list[tuple[str, Any]] = [("$", root)]
        self.header = header
        self.missing_error = missing_error
        self.out: list[str] = []
        self.node: _Node | None = None

    def at(self, node: _Node) -> None:
        self.node = node

    def lookup(self, name: str) -> Any:
        for n, v in reversed(self.vars):
            if n == name:
                return v
        raise _ExecError(f"undefined variable: {name}")

    def set(self, name: str, value: Any) -> None:
        for i in range(len(self.vars) - 1, -1, -1):
            if self.vars[i][0] == name:
                self.vars[i] = (name, value)
                return
        raise _ExecError(f"undefined variable: {name}")

    # -- walking ------------------------------------------------------------------------------
    def walk(self, dot: Any, nodes: list[_Node]) -> None:
        for node in nodes:
            if isinstance(node, _Text):
                self.out.append(node.text)
            elif isinstance(node, _Action):
                val = self.pipeline(dot, node.pipe)
                if not node.pipe.decl:
                    self.out.append(go_repr(val))
            elif isinstance(node, _Branch):
                self.branch(dot, node)
            elif isinstance(node, _Loop):
                raise _Break() if node.kind == "break" else _Continue()

    def branch(self, dot: Any, node: _Branch) -> None:
        mark = len(self.vars)
        try:
            if node.kind == "range":
                self.range(dot, node)
                return
            val = self.pipeline(dot, node.pipe)
            if _truth(val):
                self.walk(val if node.kind == "with" else dot, node.body)
            elif node.else_body is not None:
                self.walk(dot, node.else_body)
        finally:
            del self.vars[mark:]

    def range(self, dot: Any, node: _Branch) -> None:
        pipe = node.pipe
        val = self.pipeline(dot, _Pipe(pipe.pos, pipe.line, [], False, pipe.cmds))
        self.at(node)
        if isinstance(val, dict):
            items = [(k, val[k]) for k in sorted(val, key=str)]
        elif isinstance(val, (list, tuple)):
            items = list(enumerate(val))
        elif isinstance(val, int) and not isinstance(val, bool):
            items = [(i, i) for i in range(val)]
        elif val is NO_VALUE or val is None:
            items = []
        else:
            raise _ExecError(f"range can't iterate over {go_repr(val)}")
        for key, elem in items:
            mark = len(self.vars)
            if pipe.decl:
                if len(pipe.decl) == 1:
                    self._bind(pipe, 0, elem)
                else:
                    self._bind(pipe, 0, key)
                    self._bind(pipe, 1, elem)
            try:
                self.walk(elem, node.body)
            except _Continue:
                pass
            except _Break:
                break
            finally:
                del self.vars[mark:]
        if not items and node.else_body is not None:
            self.walk(dot, node.else_body)

    def _bind(self, pipe: _Pipe, i: int, value: Any) -> None:
        if pipe.is_assign:
            self.set(pipe.decl[i], value)
        else:
            self.vars.append((pipe.decl[i], value))

    def pipeline(self, dot: Any, pipe: _Pipe) -> Any:
        value: Any = NO_VALUE
        first = True
        for cmd in pipe.cmds:
            value = self.command(dot, cmd, None if first else value, has_final=not first)
            first = False
        for name in pipe.decl:
            if pipe.is_assign:
                self.set(name, value)
            else:
                self.vars.append((name, value))
        return value

    def command(self, dot: Any, cmd: _Command, final: Any, has_final: bool) -> Any:
        head = cmd.args[0]
        self.at(head)
        if isinstance(head, _Ident):
            return self.call(dot, head.name, cmd, final, has_final)
        if isinstance(head, _Field):
            return self.field_chain(dot, dot, head, head.names, cmd.args[1:], final, has_final)
        if isinstance(head, _Var):
            val = self.lookup(head.name)
            if head.names:
                return self.field_chain(dot, val, head, head.names, cmd.args[1:], final, has_final)
            self._no_args(head, cmd.args, has_final)
            return val
        if isinstance(head, _Chain):
            base = self.pipeline(dot, head.node) if isinstance(head.node, _Pipe) else self.arg(dot, head.node)
            return self.field_chain(dot, base, head, head.names, cmd.args[1:], final, has_final)
        self._no_args(head, cmd.args, has_final)
        if isinstance(head, _Pipe):
            return self.pipeline(dot, head)
        return self.arg(dot, head)

    def _no_args(self, head: _Node, args: list[_Node], has_final: bool) -> None:
        if len(args) > 1 or has_final:
            raise _ExecError(f"can't give argument to non-function {head}")

    def arg(self, dot: Any, node: _Node) -> Any:
        self.at(node)
        if isinstance(node, _Dot):
            return dot
        if isinstance(node, _Nil):
            raise _ExecError("nil is not a command")
        if isinstance(node, _Literal):
            return node.value
        if isinstance(node, _Field):
            return self.field_chain(dot, dot, node, node.names, [], None, False)
        if isinstance(node, _Var):
            val = self.lookup(node.name)
            return self.field_chain(dot, val, node, node.names, [], None, False) if node.names else val
        if isinstance(node, _Chain):
            base = self.pipeline(dot, node.node) if isinstance(node.node, _Pipe) else self.arg(dot, node.node)
            return self.field_chain(dot, base, node, node.names, [], None, False)
        if isinstance(node, _Pipe):
            return self.pipeline(dot, node)
        if isinstance(node, _Ident):
            return self.call(dot, node.name, _Command(node.pos, node.line, [node]), None, False)
        raise _ExecError(f"can't handle {node}")

    def field_chain(self, dot: Any, receiver: Any, node: _Node, names: list[str], args: list[_Node],
                    final: Any, has_final: bool) -> Any:
        self.at(node)
        for i, name in enumerate(names):
            last = i == len(names) - 1
            receiver = self.field(dot, receiver, name, args if last else [], final, has_final and last)
        return receiver

    def field(self, dot: Any, receiver: Any, name: str, args: list[_Node], final: Any, has_final: bool) -> Any:
        if receiver is NO_VALUE:
            if self.missing_error:
                raise _ExecError(f'nil data; no entry for key "{name}"')
            return NO_VALUE
        if receiver is None:
            raise _ExecError(f"nil pointer evaluating interface {{}}.{name}")
        if isinstance(receiver, dict):
            if name in receiver:
                value = receiver[name]
            elif self.header:
                value = _header_name(name)
            elif isinstance(receiver, _Row) and receiver.go_type:
                raise _ExecError(f"can't evaluate field {name} in type {receiver.go_type}")
            elif self.missing_error and not isinstance(receiver, GoMap):
                raise _ExecError(f'map has no entry for key "{name}"')
            else:
                value = NO_VALUE
        elif not isinstance(receiver, (str, int, float, bool, list, tuple)) and hasattr(receiver, name) \
                and not name.startswith("_"):
            value = getattr(receiver, name)
        else:
            raise _ExecError(f"can't evaluate field {name} in type {_go_type(receiver)}")
        if callable(value):
            call_args = [self.arg(dot, a) for a in args] + ([final] if has_final else [])
            try:
                return value(*call_args)
            except TypeError as exc:
                raise _ExecError(f"error calling {name}: {exc}") from None
        if args or has_final:
            raise _ExecError(f"{name} is not a method but has arguments")
        return value

    def call(self, dot: Any, name: str, cmd: _Command, final: Any, has_final: bool) -> Any:
        func, header_identity = _FUNCS[name]
        arg_nodes = cmd.args[1:]
        if name in ("and", "or"):
            if not arg_nodes and not has_final:
                raise _ExecError(f"wrong number of args for {name}: want at least 1 got 0")
            value: Any = NO_VALUE
            for node in arg_nodes:
                value = self.arg(dot, node)
                if _truth(value) != (name == "and"):
                    return value
            if has_final:
                value = final
            return value
        args = [self.arg(dot, a) for a in arg_nodes] + ([final] if has_final else [])
        if name not in _SEES_INVALID:  # Go passes a missing value to a function as nil
            args = [None if a is NO_VALUE else a for a in args]
        self.at(cmd)
        if self.header and header_identity:
            return args[0] if args else ""
        return func(args)


_SEES_INVALID = frozenset({"eq", "ne", "lt", "le", "gt", "ge", "not", "len", "index"})


def _header_name(key: str) -> str:
    """A header for a field the caller's map does not name: "CreatedAt" -> "CREATED AT"."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", key).upper()


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------
class Template:
    """A parsed template; ``execute`` may be called for many objects."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._nodes, _ = _Parser(_lex(source)).parse_list(None)

    def execute(self, obj: Any, header: bool = False, missing_error: bool = False,
                prefix: str = "template parsing error", name: str = "") -> str:
        """Render for ``obj``. ``header``: run against a header map (docker's functions return
        their argument). ``missing_error``: a missing key is an error (Go's missingkey=error).
        ``prefix`` starts an execution error's message (docker's wording differs per command; ""
        for none), ``name`` is the template's name in it."""
        state = _State(obj, header, missing_error)
        try:
            state.walk(obj, self._nodes)
        except (_Break, _Continue):  # pragma: no cover - the parser only allows them in range
            pass
        except _ExecError as exc:
            if header:  # docker ignores errors while rendering a table's header row
                return "".join(state.out)
            node = state.node
            where = ""
            if node is not None:
                col = node.pos - (self.source.rfind("\n", 0, node.pos) + 1)
                where = f'{name}:{node.line}:{col}: executing "{name}" at <{_node_text(node)}>'
            lead = f"{prefix}: " if prefix else ""
            raise TemplateError(f"{lead}template: {where}: {exc.msg}"
                                if where else f"{lead}template: {name}:1: {exc.msg}") from None
        except RecursionError:
            raise TemplateError("template parsing error: template: : exceeded maximum template depth") from None
        return "".join(state.out)


def _node_text(node: _Node) -> str:
    text = str(node)
    return text if len(text) < 40 else text[:39] + "..."


def parse(source: str) -> Template:
    """Parse a Go template (raises InvalidArgument with docker's message if it is malformed)."""
    try:
        return Template(source)
    except RecursionError:
        raise TemplateError("template parsing error: template: :1: template is nested too deeply") from None


def render(template: str, obj: Any, missing_error: bool = False) -> str:
    """Render a Go template for one object, as ``docker inspect --format`` does. Objects are
    dicts (keys are fields), lists, strings, numbers, or objects with attributes; a missing key
    prints ``<no value>`` as Go does for maps (``missing_error=True``: an error, as docker's
    inspect fallback)."""
    return parse(template).execute(obj, missing_error=missing_error)


# -- tables -----------------------------------------------------------------------------------
def tabwrite(text: str, minwidth: int = 10, tabwidth: int = 1, padding: int = 3, padchar: str = " ") -> str:
    """Go's text/tabwriter (flags 0) over ``text``: tab-terminated cells aligned in columns.
    Docker's tables use ``tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)``, the defaults here."""
    lines = [line.split("\t") for line in text.split("\n")]
    out: list[str] = []
    widths: list[int] = []

    def write_lines(line0: int, line1: int) -> None:
        for i in range(line0, line1):
            cells = lines[i]
            parts = []
            for j, cell in enumerate(cells):
                # cells inside a column block are padded; a line's last cell never is
                if j < len(widths) and j < len(cells) - 1:
                    parts.append(cell + padchar * max(widths[j] - len(cell), 0))
                else:
                    parts.append(cell)
            out.append("".join(parts))

    def fmt(line0: int, line1: int) -> None:
        column = len(widths)
        this = line0
        while this < line1:
            if column >= len(lines[this]) - 1:
                this += 1
                continue
            write_lines(line0, this)
            line0 = this
            width = minwidth
            while this < line1 and column < len(lines[this]) - 1:
                width = max(width, len(lines[this][column]) + padding)
                this += 1
            widths.append(width)
            fmt(line0, this)
            widths.pop()
            line0 = this
        write_lines(line0, line1)

    fmt(0, len(lines))
    return "\n".join(out)


def format_table(rows: Iterable[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
    """docker's default table: a header of ``columns``' titles, one row per dict, aligned."""
    lines = ["\t".join(h for h, _ in columns)]
    for row in rows:
        lines.append("\t".join(go_repr(row.get(key, "")) for _, key in columns))
    return tabwrite("\n".join(lines) + "\n")


def format_output(rows: Iterable[dict[str, Any]], fmt: str | None,
                  default_columns: Sequence[tuple[str, str]], header_map: dict[str, str] | None = None,
                  go_type: str = "", prefix: str = "template parsing error") -> str:
    """What an ``ls`` command prints for ``--format fmt``.

    ``None``/``""``/``"table"``: the default table of ``default_columns`` ((header, key) pairs);
    ``"json"``: one JSON object per row and line; ``"table TEMPLATE"``: a header row (the template
    run against ``header_map``, key -> header) and the rows, aligned; anything else: the template
    per row. Every row ends with a newline. ``go_type`` names the Go struct docker formats the
    rows as: a field the row lacks is then docker's error (``prefix``: its first words).
    """
    rows = [_Row(r) for r in rows]
    for r in rows:
        r.go_type = go_type
    if fmt is None or fmt.strip() in ("", "table"):
        return format_table(rows, default_columns)
    if fmt.strip() == "json":  # methods ({{.Label "k"}}) are not data
        return "".join(_go_json(_Row({k: v for k, v in r.items() if not callable(v)}), escape_html=True) + "\n"
                       for r in rows)
    is_table = fmt.startswith("table")
    body = fmt[len("table"):] if is_table else fmt
    body = body.strip(" ").replace("\\t", "\t").replace("\\n", "\n")
    tmpl = parse(body)
    text = "".join(tmpl.execute(r, prefix=prefix) + "\n" for r in rows)
    if not is_table:
        return text
    headers = dict(header_map or {})
    for title, key in default_columns:
        headers.setdefault(key, title)
    header = tmpl.execute(_Row(headers), header=True)
    return tabwrite(header + "\n" + text)


# -- docker's human units ---------------------------------------------------------------------
_DECIMAL = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"]
_BINARY = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"]


def human_size(size: float, precision: int = 3, binary: bool = False) -> str:
    """docker's units.HumanSizeWithPrecision(size, 3): "1.87MB", "4.26kB", "0B"; with
    ``binary`` units.BytesSize: "15.62GiB"."""
    base, units = (1024.0, _BINARY) if binary else (1000.0, _DECIMAL)
    if binary and precision == 3:
        precision = 4
    value = float(size)
    i = 0
    while value >= base and i < len(units) - 1:
        value /= base
        i += 1
    return f"{value:.{precision}g}{units[i]}"  # Go's %.3g and Python's agree, exponent included


def human_duration(seconds: float) -> str:
    """docker's units.HumanDuration: "Less than a second", "About a minute", "2 hours"."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


def ago(ts: float, now: float | None = None) -> str:
    """"2 hours ago" for a UNIX timestamp, as docker's CREATED columns say."""
    return human_duration((time.time() if now is None else now) - ts) + " ago"


def truncate_id(ident: str, length: int = 12) -> str:
    """docker's stringid.TruncateID: drop an ``algo:`` prefix, keep the first 12 characters."""
    _, sep, rest = ident.partition(":")
    return (rest if sep else ident)[:length]
