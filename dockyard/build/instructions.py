"""Typed Dockerfile instructions: flags checked as docker's BFlags checks them, arguments split.

Words are kept raw here (quotes and ``$VAR`` untouched): they are expanded when the stage is
evaluated, because the values depend on ARG and ENV in scope at that point.
"""
from __future__ import annotations

import re
from typing import Any

from dockyard.build.dockerfile import Heredoc, Node, parse_heredoc_word
from dockyard.build.errors import DockerfileSyntaxError

_STAGE_NAME = re.compile(r"^[a-z][a-z0-9-_.]*$")
MIN_HEALTH_DURATION_NS = 1_000_000  # docker's container.MinimumDuration (1ms)


class Instruction:
    """One instruction. Subclasses declare their fields as class attributes (the defaults);
    the constructor takes them as keywords. Plain classes, not dataclasses: a cached build
    imports this module, and class creation time counts there."""

    cmd: str = ""
    line: int = 0
    end_line: int = 0
    original: str = ""

    def __init__(self, **fields: Any) -> None:
        for k, v in fields.items():
            if not hasattr(type(self), k):
                raise TypeError(f"{type(self).__name__} has no field {k!r}")
            setattr(self, k, v)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.original!r}, line={self.line})"

    @property
    def text(self) -> str:
        """How docker shows the step: ``RUN echo hi`` (continuations joined)."""
        return self.original.split("\n", 1)[0].strip() if "\n" in self.original else self.original.strip()


class From(Instruction):
    base: str = ""
    name: str | None = None
    platform: str = ""


class Arg(Instruction):
    pairs: list[tuple[str, str | None]] = []


class KeyValues(Instruction):
    """ENV and LABEL: (raw key, raw value) pairs."""

    pairs: list[tuple[str, str]] = []


class ShellCommand(Instruction):
    """RUN, CMD and ENTRYPOINT: an argv (exec form) or one string for the shell (shell form)."""

    argv: list[str] = []
    shell_form: bool = True
    heredocs: tuple[Heredoc, ...] = ()


class Run(ShellCommand):
    mounts: list[str] = []   # raw --mount values, expanded later
    network: str = ""
    security: str = ""


class Copy(Instruction):
    """COPY and ADD."""

    sources: list[str] = []
    heredoc_sources: list[Heredoc] = []
    dest: str = ""
    from_: str = ""
    chown: str = ""
    chmod: str = ""
    link: bool = False
    checksum: str = ""
    keep_git_dir: bool = False
    excludes: list[str] = []
    parents: bool = False


class Words(Instruction):
    """EXPOSE, VOLUME, USER, WORKDIR, STOPSIGNAL, MAINTAINER: raw words."""

    words: list[str] = []
    json: bool = False


class Shell(Instruction):
    argv: list[str] = []


class Healthcheck(Instruction):
    test: list[str] = []
    interval: int = 0
    timeout: int = 0
    start_period: int = 0
    start_interval: int = 0
    retries: int = 0


class OnBuild(Instruction):
    expression: str = ""


# -- flags ------------------------------------------------------------------------------------
_FLAG_KINDS: dict[str, dict[str, str]] = {
    "FROM": {"platform": "str"},
    "RUN": {"mount": "list", "network": "str", "security": "str"},
    "COPY": {"from": "str", "chown": "str", "chmod": "str", "link": "bool", "parents": "bool",
             "exclude": "list"},
    "ADD": {"chown": "str", "chmod": "str", "link": "bool", "checksum": "str", "keep-git-dir": "bool",
            "exclude": "list"},
    "HEALTHCHECK": {"interval": "str", "timeout": "str", "start-period": "str", "start-interval": "str",
                    "retries": "str"},
}


def parse_flags(node: Node) -> dict[str, object]:
    """Docker's BFlags rules: ``--name=value`` / ``--bool``; unknown or repeated flags are errors."""
    kinds = _FLAG_KINDS.get(node.cmd, {})
    out: dict[str, object] = {}
    for raw in node.flags:
        if not raw.startswith("--"):
            raise _err(node, f"Arg should start with -- : {raw}")
        if raw == "--":
            break
        name, has_value, value = raw[2:].partition("=")
        kind = kinds.get(name)
        if kind is None:
            raise _err(node, f"Unknown flag: {name}")
        if kind == "list":
            if not has_value:
                raise _err(node, f"Missing a value on flag: {name}")
            out.setdefault(name, [])
            out[name].append(value)  # type: ignore[union-attr]
            continue
        if name in out:
            raise _err(node, f"Duplicate flag specified: {name}")
        if kind == "bool":
            low = value.lower()
            if has_value and low not in ("true", "false", ""):
                raise _err(node, f"Expecting boolean value for flag {name}, not: {value}")
            out[name] = (not has_value) or low in ("true", "")
        else:
            if not has_value:
                raise _err(node, f"Missing a value on flag: {name}")
            out[name] = value
    return out


class _InstrError(Exception):
    """An argument problem; ``from_node`` turns it into a DockerfileSyntaxError with the location."""


def _err(node: Node, message: str) -> _InstrError:
    return _InstrError(message)


# -- instruction parsing ----------------------------------------------------------------------
def from_node(node: Node, filename: str = "Dockerfile") -> Instruction:
    """Turn a parsed node into its typed instruction, checking arguments as docker does."""
    try:
        return _build(node)
    except _InstrError as exc:
        raise DockerfileSyntaxError(str(exc), filename, node.line,
                                    node.original.split("\n", 1)[0].strip()) from None


def _build(node: Node) -> Instruction:
    cmd = node.cmd
    common = dict(cmd=cmd, line=node.line, end_line=node.end_line, original=node.original)
    flags = parse_flags(node)
    args = list(node.args)
    if cmd == "FROM":
        if len(args) == 3 and args[1].lower() == "as":
            name = args[2].lower()
            if not _STAGE_NAME.match(name):
                raise _err(node, f"invalid name for build stage: \"{args[2]}\", name can't start with a number "
                                 "or contain symbols")
        elif len(args) != 1:
            raise _err(node, "FROM requires either one or three arguments")
        else:
            name = None
        return From(**common, base=args[0], name=name, platform=str(flags.get("platform", "")))
    if cmd == "ARG":
        if not args:
            raise _err(node, "ARG requires at least one argument")
        pairs: list[tuple[str, str | None]] = []
        for a in args:
            if "=" in a:
                k, v = a.split("=", 1)
                if not k:
                    raise _err(node, "ARG names can not be blank")
                pairs.append((k, v))
            else:
                pairs.append((a, None))
        return Arg(**common, pairs=pairs)
    if cmd in ("ENV", "LABEL"):
        if not args:
            raise _err(node, f"{cmd} requires at least one argument")
        if len(args) % 2:
            raise _err(node, f"Bad input to {cmd}, too many arguments")
        kv = [(args[i], args[i + 1]) for i in range(0, len(args), 2)]
        if any(not k for k, _ in kv):
            raise _err(node, f"{cmd} names can not be blank")
        return KeyValues(**common, pairs=kv)
    if cmd in ("RUN", "CMD", "ENTRYPOINT"):
        argv = args if node.json else ([" ".join(args)] if args else [])
        if cmd == "RUN":
            if not argv or (not node.json and not argv[0].strip()):
                raise _err(node, "RUN requires at least one argument")
            return Run(**common, argv=argv, shell_form=not node.json, heredocs=node.heredocs,
                       mounts=list(flags.get("mount", [])),  # type: ignore[arg-type]
                       network=str(flags.get("network", "")), security=str(flags.get("security", "")))
        return ShellCommand(**common, argv=argv, shell_form=not node.json, heredocs=node.heredocs)
    if cmd in ("COPY", "ADD"):
        if len(args) < 2:
            raise _err(node, f"{cmd} requires at least two arguments, but only one was provided. "
                             "Destination could not be determined")
        dest = args[-1]
        if parse_heredoc_word(dest):
            raise _err(node, f"{cmd} cannot accept a heredoc as a destination")
        docs = {h.name: h for h in node.heredocs}
        sources: list[str] = []
        heredoc_sources: list[Heredoc] = []
        for src in args[:-1]:
            h = parse_heredoc_word(src) if not node.json else None
            if h and h[0] in docs:
                heredoc_sources.append(docs[h[0]])
            else:
                sources.append(src)
        return Copy(**common, sources=sources, heredoc_sources=heredoc_sources, dest=dest,
                    from_=str(flags.get("from", "")), chown=str(flags.get("chown", "")),
                    chmod=str(flags.get("chmod", "")), link=bool(flags.get("link", False)),
                    checksum=str(flags.get("checksum", "")), keep_git_dir=bool(flags.get("keep-git-dir", False)),
                    excludes=list(flags.get("exclude", [])),  # type: ignore[arg-type]
                    parents=bool(flags.get("parents", False)))
    if cmd == "SHELL":
        if not args:
            raise _err(node, "SHELL requires at least one argument")
        if not node.json:
            raise _err(node, "SHELL requires the arguments to be in JSON form")
        return Shell(**common, argv=args)
    if cmd == "HEALTHCHECK":
        return _healthcheck(node, common, flags, args)
    if cmd == "ONBUILD":
        if not args and not node.sub_cmd:
            raise _err(node, "ONBUILD requires at least one argument")
        trigger = (node.sub_cmd or "").upper()
        if trigger == "ONBUILD":
            raise _err(node, "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
        if trigger in ("MAINTAINER", "FROM"):
            raise _err(node, f"{trigger} isn't allowed as an ONBUILD trigger")
        expression = re.sub(r"(?i)^\s*ONBUILD\s*", "", node.original.split("\n", 1)[0])
        for h in node.heredocs:
            expression += "\n" + h.content + h.name
        return OnBuild(**common, expression=expression)
    if cmd in ("EXPOSE", "VOLUME"):
        if not args:
            raise _err(node, f"{cmd} requires at least one argument")
        words = [a.strip() for a in args]
        if cmd == "VOLUME" and any(not w for w in words):
            raise _err(node, "VOLUME specified can not be an empty string")
        return Words(**common, words=words, json=node.json)
    if cmd in ("USER", "WORKDIR", "STOPSIGNAL", "MAINTAINER"):
        if len(args) != 1:
            raise _err(node, f"{cmd} requires exactly one argument")
        return Words(**common, words=args, json=node.json)
    raise _err(node, f"unknown instruction: {cmd}")


def _healthcheck(node: Node, common: dict, flags: dict[str, object], args: list[str]) -> Healthcheck:
    if not args:
        raise _err(node, "HEALTHCHECK requires at least one argument")
    typ = args[0].upper()
    rest = args[1:]
    if typ == "NONE":
        if rest:
            raise _err(node, "HEALTHCHECK NONE takes no arguments")
        return Healthcheck(**common, test=["NONE"])
    if typ != "CMD":
        raise _err(node, f"Unknown type \"{typ}\" in HEALTHCHECK (try CMD)")
    if not rest:
        raise _err(node, "Missing command after HEALTHCHECK CMD")
    test = ["CMD", *rest] if node.json else ["CMD-SHELL", " ".join(rest)]
    values: dict[str, int] = {}
    for flag in ("interval", "timeout", "start-period", "start-interval"):
        raw = str(flags.get(flag, ""))
        if not raw:
            values[flag] = 0
            continue
        from dockyard.engine.timeutil import parse_duration

        d = parse_duration(raw)
        if d is None:
            raise _err(node, f'time: invalid duration "{raw}"')
        if 0 < d < MIN_HEALTH_DURATION_NS or d < 0:
            raise _err(node, f"Interval \"{flag}\" cannot be less than 1ms")
        values[flag] = d
    retries = 0
    if flags.get("retries"):
        try:
            retries = int(str(flags["retries"]))
        except ValueError:
            raise _err(node, f"strconv.ParseInt: parsing \"{flags['retries']}\": invalid syntax") from None
        if retries < 0:
            raise _err(node, f"--retries cannot be negative ({retries})")
    return Healthcheck(**common, test=test, interval=values["interval"], timeout=values["timeout"],
                       start_period=values["start-period"], start_interval=values["start-interval"],
                       retries=retries)
