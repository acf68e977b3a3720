"""``dockyard <command> --help`` laid out as the docker CLI lays out its help.

docker's help comes from cobra's usage template and pflag's flag table: ``Usage:  <path> ...``,
the description, ``Aliases:``, then ``Options:`` -- one line per flag, sorted by name, short flag
first (``  -e, --env list``), a type word for flags that take a value, descriptions aligned and
wrapped as pflag wraps them, docker's ``(default ...)`` -- or, for a management command
(``dockyard container``), ``Commands:`` and a pointer to ``COMMAND --help``.

Flags are argparse actions defined by each object module; this module only reads them, so a
flag added anywhere gets the same layout. The type word a flag shows is found, in this order:

1. its ``metavar``, when that is one of docker's type words (``metavar="list"``): the definer's
   explicit choice;
2. :data:`VERB_FLAG_TYPES`, then :data:`FLAG_TYPES`: docker's own word for a flag of that name
   (``--memory bytes``, ``--filter filter``), read from docker 28's help;
3. the argparse action: ``append`` -> ``list``, ``type=int`` -> ``int``, ``type=float`` ->
   ``decimal``, anything else that takes a value -> ``string``. Switches (``store_true``, Go-style
   booleans) show none.

Imported only when help is printed (see :meth:`dockyard.cli.common.Parser.format_help`).
"""
from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from dockyard.cli.common import Parser

#: the type words docker's help uses (pflag's and docker's own ``opts`` value types)
TYPE_WORDS = frozenset({
    "string", "strings", "stringArray", "stringToString", "list", "int", "int64", "uint", "uint16",
    "uint64", "bytes", "duration", "decimal", "float", "filter", "ulimit", "mount", "port", "map",
    "network", "gpu-request", "pref", "command",
})

#: docker's type word for a flag (by long name, no dashes) where the argparse action alone would
#: say something else: docker parses these values (sizes, durations, CPUs, key=value maps...)
#: itself. From ``docker <cmd> --help`` of docker 28 for every command dockyard shares with it.
FLAG_TYPES: dict[str, str] = {
    # sizes
    "memory": "bytes", "memory-reservation": "bytes", "memory-swap": "bytes", "kernel-memory": "bytes",
    "shm-size": "bytes", "keep-storage": "bytes", "io-maxbandwidth": "bytes",
    # numbers
    "cpu-shares": "int", "cpu-period": "int", "cpu-quota": "int", "cpu-rt-period": "int",
    "cpu-rt-runtime": "int", "cpu-count": "int", "cpu-percent": "int", "pids-limit": "int",
    "oom-score-adj": "int", "memory-swappiness": "int", "stop-timeout": "int", "health-retries": "int",
    "timeout": "int", "time": "int", "last": "int", "limit": "int", "gw-priority": "int",
    "blkio-weight": "uint16", "io-maxiops": "uint64", "cpus": "decimal",
    # durations
    "health-interval": "duration", "health-timeout": "duration", "health-start-period": "duration",
    "health-start-interval": "duration",
    # structured values
    "filter": "filter", "mount": "mount", "ulimit": "ulimit", "network": "network", "gpus": "gpu-request",
    "sysctl": "map", "opt": "map", "aux-address": "map", "ipam-opt": "map",
    "subnet": "strings", "gateway": "strings", "ip-range": "strings", "alias": "strings",
    "driver-opt": "strings", "cache-from": "strings",
}

#: where docker types a flag of the same name differently in one verb: (verb, flag) -> word
VERB_FLAG_TYPES: dict[tuple[str, str], str] = {
    ("build", "network"): "string",  # build's network is a mode name, run's a network spec
    ("build", "security-opt"): "strings",
    ("connect", "link-local-ip"): "strings",
    ("service", "timeout"): "decimal",  # dockyard's API server: seconds, fractions allowed
}

#: docker's ``(default ...)`` for value types whose empty value pflag does not treat as zero
EMPTY_DEFAULTS: dict[str, str] = {"map": "map[]", "ulimit": "[]"}

_MIN_NAME_PADDING = 11  # cobra's minNamePadding


# ================================================================================ one flag
def is_switch(action: argparse.Action) -> bool:
    """A flag that takes no value on the command line: argparse's store_true/false/const, a
    count, help, or a Go-style boolean (``--sig-proxy``, ``--sig-proxy=false``)."""
    if action.nargs == 0 or getattr(action, "go_bool", False):
        return True
    return action.nargs == "?" and str(action.const).lower() in ("true", "false")


def long_name(action: argparse.Action) -> str:
    """The name docker shows (and sorts by): the first long option; others (``--net`` beside
    ``--network``, ``--time`` beside ``--timeout``) are docker's hidden aliases."""
    longs = [o for o in action.option_strings if o.startswith("--")]
    return (longs or action.option_strings)[0].lstrip("-")


def short_name(action: argparse.Action) -> str | None:
    shorts = [o for o in action.option_strings if len(o) == 2 and o[0] == "-" and o[1] != "-"]
    return shorts[0][1] if shorts else None


def type_word(action: argparse.Action, verb: str = "") -> str | None:
    """docker's type word for the flag's value (None for a switch): see the module docstring."""
    if is_switch(action):
        return None
    if isinstance(action.metavar, str) and action.metavar in TYPE_WORDS:
        return action.metavar
    name = long_name(action)
    word = VERB_FLAG_TYPES.get((verb, name)) or FLAG_TYPES.get(name)
    if word:
        return word
    if isinstance(action, argparse._AppendAction):
        return "list"
    if action.type is int:
        return "int"
    if action.type is float:
        return "decimal"
    return "string"


def _go_quote(text: str) -> str:
    """Go's ``%q`` for the plain strings a default is."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def default_note(action: argparse.Action, word: str | None) -> str:
    """pflag's `` (default ...)`` after the description: only for a default that is not the
    type's zero value, and never twice (dockyard descriptions often say it already)."""
    if "(default " in (action.help or ""):
        return ""
    value = action.default
    if word is None:  # a switch: only a default of true is worth saying
        return " (default true)" if value is True or str(value).lower() == "true" else ""
    if value is None or value == "" or value == [] or value == () or value is False or value == 0:
        return f" (default {EMPTY_DEFAULTS[word]})" if word in EMPTY_DEFAULTS else ""
    if value == argparse.SUPPRESS or isinstance(value, (list, tuple, dict)):
        return ""
    if isinstance(value, str) and word not in ("int", "int64", "uint", "uint16", "uint64", "decimal", "float",
                                                "duration", "bytes"):
        return f" (default {_go_quote(value)})"
    return f" (default {value})"


def _description(action: argparse.Action, parser: argparse.ArgumentParser) -> str:
    text = action.help or ""
    if "%" in text:  # argparse's own expansion: %(default)s, %%
        params = dict(vars(action), prog=parser.prog)
        try:
            text = text % params
        except (KeyError, TypeError, ValueError):
            pass
    return text


# ================================================================================ pflag's table
def _wrap_n(i: int, slop: int, s: str) -> tuple[str, str]:
    """pflag's wrapN: ``s`` split at the last blank before ``i`` (``slop`` more allowed when
    that takes the whole rest, so no short word is left alone on a last line)."""
    if i + slop > len(s):
        return s, ""
    w = max(s.rfind(c, 0, i) for c in " \t\n")
    if w <= 0:
        return s, ""
    nl = s.rfind("\n", 0, i)
    if 0 < nl < w:
        return s[:nl], s[nl + 1:]
    return s[:w], s[w + 1:]


def _wrap(i: int, w: int, s: str) -> str:
    """pflag's wrap: ``s`` wrapped to width ``w``, continuation lines indented by ``i`` (the first
    line's indent is the caller's); a column too narrow moves the text under the flag."""
    if w == 0:
        return s.replace("\n", "\n" + " " * i)
    width = w - i
    out = ""
    if width < 24:
        i = 16
        width = w - i
        out += "\n" + " " * i
    if width < 24:
        return s.replace("\n", out)
    slop = 5
    width -= slop
    line, s = _wrap_n(width, slop, s)
    out += line.replace("\n", "\n" + " " * i)
    while s:
        line, s = _wrap_n(width, slop, s)
        out += "\n" + " " * i + line.replace("\n", "\n" + " " * i)
    return out


def flag_usages(parser: "Parser", columns: int) -> str:
    """The ``Options:`` table: pflag's FlagUsagesWrapped (sorted by name; the description column
    just after the longest ``-x, --name type``; wrapped at ``columns``)."""
    verb = (parser.command_path or parser.prog).rsplit(" ", 1)[-1]
    rows: list[tuple[str, str, str]] = []
    for action in parser.shown_flags():
        name, short = long_name(action), short_name(action)
        if not any(o.startswith("--") for o in action.option_strings):
            head = f"  -{short}"
        else:
            head = f"  -{short}, --{name}" if short else f"      --{name}"
        word = type_word(action, verb)
        if word:
            head += " " + word
        rows.append((name, head, _description(action, parser) + default_note(action, word)))
    rows.sort(key=lambda r: r[0])
    width = max((len(head) + 1 for _, head, _ in rows), default=0)  # +1: pflag's "\x00" marker
    lines = [f"{head} {' ' * (width - len(head))} {_wrap(width + 2, columns, text)}"
             for _, head, text in rows]
    return "\n".join(lines).rstrip()


def terminal_columns() -> int:
    """docker wraps help to its stdin's terminal width, 80 when stdin is no terminal."""
    try:
        return os.get_terminal_size(0).columns or 80
    except OSError:
        return 80


# ================================================================================ the page
def aliases(parser: "Parser") -> list[str]:
    """Every name the command answers to, its own path first, as docker's ``Aliases:`` lists
    them: ``dockyard container ls, dockyard container list, dockyard container ps, dockyard ps``."""
    path = parser.command_path
    if path is None:
        return []
    from dockyard.cli.main import ALIASES, HIDDEN_OBJECTS

    words = path.split(" ")
    parent = " ".join(words[:-1])
    names = [path, *(f"{parent} {a}" for a in sorted(parser.verb_aliases))]
    if len(words) == 3:
        names += [f"{words[0]} {short}" for short, target in ALIASES.items() if target == (words[1], words[2])]
        if words[1] in HIDDEN_OBJECTS:  # ``dockyard auth login`` is not a command one can type
            names = [n for n in names if not n.startswith(f"{parent} ")]
    return names if len(names) > 1 else []


def _subcommands(parser: "Parser") -> tuple[list[tuple[str, str]], list[tuple[str, str]], int]:
    """(management commands, commands, name padding) under ``parser``, sorted by name."""
    groups: list[tuple[str, str]] = []
    verbs: list[tuple[str, str]] = []
    padding = _MIN_NAME_PADDING
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        for choice in action._choices_actions:
            name = choice.dest
            padding = max(padding, len(name))
            if choice.help == argparse.SUPPRESS:
                continue
            child = action.choices.get(name)
            (groups if getattr(child, "_subparsers", None) is not None else verbs).append((name, choice.help or ""))
    return sorted(groups), sorted(verbs), padding


def render(parser: "Parser") -> str:
    """The whole ``--help`` page of one command, as docker's usage template prints it."""
    flags = parser.shown_flags()
    management = parser._subparsers is not None
    if management:
        usage = parser.prog + (" [OPTIONS]" if flags else "") + " COMMAND"
    else:
        usage = parser.usage_line()
    parts = [f"Usage:  {usage}", "", (parser.description or "").strip()]
    names = aliases(parser)
    if names:
        parts += ["", "Aliases:", "  " + ", ".join(names)]
    if flags:
        parts += ["", "Options:", flag_usages(parser, terminal_columns() - 1)]
    if management:
        groups, verbs, padding = _subcommands(parser)
        for title, entries in (("Management Commands:", groups), ("Commands:", verbs)):
            if entries:
                parts += ["", title, *(f"  {name:<{padding}} {short}" for name, short in entries)]
        parts += ["", f"Run '{parser.prog} COMMAND --help' for more information on a command."]
    return "\n".join(parts) + "\n"
