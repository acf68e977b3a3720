"""``dockyard <command> --help`` reads as ``docker <command> --help``: the same sections in the
same order (``Usage:``, the description, ``Aliases:``, ``Options:`` or ``Commands:``), the same
short flag and type word for every flag both CLIs have, pflag's alignment and wrapping, help on
stdout with exit 0, ``-h`` wherever docker takes it.

The side-by-side tests parse docker's own help at test time (docker 28 here); they skip when
there is no docker CLI. The rest check the formatter's rules on dockyard alone, including on a
parser built here, as another module's new flags would be.
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field

import pytest

from dockyard.cli.common import FORMAT_HELP, FORMAT_HELP_TABLE, Parser, add_bool_flag, add_verb

#: one flag line of docker's Options table: "  -e, --env list   Set..." or "      --rm   Auto..."
FLAG_LINE = re.compile(r"^  (?:-(?P<short>\S), |    )--(?P<long>[\w.-]+)(?: (?P<type>\S+))?(?P<gap> {2,})(?P<text>\S.*)?$")

needs_docker = pytest.mark.skipif(shutil.which("docker") is None, reason="docker CLI not installed")


@pytest.fixture(autouse=True)
def eighty_columns(monkeypatch):
    """Pages rendered in this process are as wide as docker's without a terminal on stdin, even
    when pytest runs in one (the CLI subprocesses get no terminal anyway)."""
    from dockyard.cli import helptext

    monkeypatch.setattr(helptext, "terminal_columns", lambda: 80)


@dataclass
class Help:
    """One help page, parsed: what the side-by-side tests compare."""

    text: str
    usage: str = ""
    description: str = ""
    headers: list[str] = field(default_factory=list)  # "Aliases:", "Options:", "Commands:", ...
    aliases: list[str] = field(default_factory=list)
    flags: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)  # long -> (short, type)
    columns: set[int] = field(default_factory=set)  # where each flag's description starts
    commands: list[tuple[str, int]] = field(default_factory=list)  # (name, description column)
    footer: str = ""


def parse_help(text: str) -> Help:
    lines = text.rstrip("\n").split("\n")
    page = Help(text=text, usage=lines[0])
    section = None
    for line in lines[1:]:
        if line and not line.startswith(" ") and line.endswith(":"):
            section = line
            page.headers.append(line)
            continue
        if line.startswith("Run '"):
            page.footer = line
            continue
        if section is None:
            if line and not page.description:
                page.description = line
        elif section == "Aliases:" and line.strip():
            page.aliases = line.strip().split(", ")
        elif section == "Options:":
            m = FLAG_LINE.match(line)
            if m:
                page.flags[m["long"]] = (m["short"], m["type"])
                if m["text"]:
                    page.columns.add(m.end("gap"))
        elif section.endswith("Commands:") and line.strip():
            name = line.split()[0]
            page.commands.append((name, line.index(line.split()[1], len(name) + 2) if len(line.split()) > 1 else 0))
    return page


def docker_help(*args: str) -> Help:
    proc = subprocess.run(["docker", *args, "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return parse_help(proc.stdout)


def dockyard_help(cli, *args: str, flag: str = "--help") -> Help:
    proc = cli(*args, flag)
    assert (proc.returncode, proc.stderr) == (0, ""), proc.stderr
    return parse_help(proc.stdout)


def as_dockyard(text: str) -> str:
    return text.replace("docker", "dockyard")


# ============================================================================ side by side
VERBS = [
    ("run",), ("container", "run"), ("create",), ("ps",), ("container", "ls"), ("images",), ("image", "ls"),
    ("rmi",), ("stop",), ("restart",), ("kill",), ("logs",), ("exec",), ("start",), ("attach",), ("commit",),
    ("cp",), ("stats",), ("pause",), ("pull",), ("push",), ("save",), ("load",), ("history",), ("login",),
    ("info",), ("system", "df"), ("system", "prune"), ("network", "create"), ("network", "ls"),
    ("network", "connect"), ("volume", "create"), ("volume", "ls"), ("volume", "prune"), ("container", "prune"),
    ("image", "prune"), ("builder", "prune"),
]


@needs_docker
@pytest.mark.interop
@pytest.mark.parametrize("cmd", VERBS, ids=" ".join)
def test_verb_help_has_dockers_structure(cli, cmd):
    theirs, mine = docker_help(*cmd), dockyard_help(cli, *cmd)
    # the command path as typed, then [OPTIONS] when there are options
    path = " ".join(("dockyard", *cmd))
    assert mine.usage.startswith(f"Usage:  {path}")
    assert ("[OPTIONS]" in mine.usage) == bool(mine.flags)
    assert mine.description
    assert mine.headers == theirs.headers
    if theirs.aliases:  # docker's own path first; every name docker lists, dockyard answers to
        assert mine.aliases[0] == as_dockyard(theirs.aliases[0])
        assert {as_dockyard(a) for a in theirs.aliases} <= set(mine.aliases)
    shared = sorted(set(theirs.flags) & set(mine.flags))
    assert bool(shared) == bool(theirs.flags), (theirs.flags, mine.flags)
    assert {f: mine.flags[f] for f in shared} == {f: theirs.flags[f] for f in shared}
    if not mine.flags:
        return
    # one description column, just past the longest "-x, --name type" (pflag: 3 spaces)
    assert len(mine.columns) == 1
    heads = [m.end("type") if m["type"] else m.end("long") for m in map(FLAG_LINE.match, mine.text.split("\n")) if m]
    assert mine.columns == {max(heads) + 3}


@needs_docker
@pytest.mark.interop
@pytest.mark.parametrize("obj", ["container", "image", "network", "volume", "system", "builder"])
def test_management_help_as_docker(cli, obj):
    theirs, mine = docker_help(obj), dockyard_help(cli, obj)
    assert mine.usage == as_dockyard(theirs.usage) == f"Usage:  dockyard {obj} COMMAND"
    assert mine.description
    assert mine.headers == theirs.headers == ["Commands:"]
    names = [name for name, _ in mine.commands]
    assert names == sorted(names)
    assert {col for _, col in mine.commands} == {col for _, col in theirs.commands}
    assert mine.footer == as_dockyard(theirs.footer) == f"Run 'dockyard {obj} COMMAND --help' for more information on a command."


def _every_verb():
    """(path after "dockyard", parser) of every verb, the parsers built as ``main`` builds them."""
    import importlib

    from dockyard.cli.common import build_object_parser
    from dockyard.cli.main import HIDDEN_OBJECTS, OBJECTS

    modules = {**{obj: module for obj, (module, _) in OBJECTS.items()}, **HIDDEN_OBJECTS}
    for obj, module in modules.items():
        stack = [((obj,), build_object_parser(importlib.import_module(module), f"dockyard {obj}"))]
        while stack:
            path, parser = stack.pop()
            if parser._subparsers is None:
                yield path, parser
                continue
            for action in parser._actions:
                if isinstance(action, argparse._SubParsersAction):
                    stack += [((*path, name), child) for name, child in action.choices.items()
                              if child.command_path == f"dockyard {' '.join((*path, name))}"]  # not aliases


def _docker_page(path: tuple[str, ...]) -> Help | None:
    """docker's help for the same command, or for its top-level short form (``system inspect``:
    ``docker inspect``); None when docker has no such command."""
    from dockyard.cli.main import ALIASES

    for words in (path, *((short,) for short, target in ALIASES.items() if target == path)):
        proc = subprocess.run(["docker", *words, "--help"], capture_output=True, text=True, timeout=60,
                              stdin=subprocess.DEVNULL)
        if proc.returncode == 0 and proc.stdout.startswith(f"Usage:  docker {' '.join(words)}"):
            return parse_help(proc.stdout)
    return None


@needs_docker
@pytest.mark.interop
def test_every_flag_dockyard_shares_with_docker_has_its_short_flag_and_type_word():
    """All verbs, including flags added after this test was written: a flag docker also has shows
    docker's short flag and type word (if not, add the flag to ``helptext.FLAG_TYPES`` or give it
    ``metavar="<docker's word>"``)."""
    compared, wrong = 0, []
    for path, parser in _every_verb():
        theirs = _docker_page(path)
        if theirs is None:
            continue
        mine = parse_help(parser.format_help())
        for flag in sorted(set(theirs.flags) & set(mine.flags)):
            compared += 1
            if mine.flags[flag] != theirs.flags[flag]:
                wrong.append(f"{' '.join(path)} --{flag}: dockyard {mine.flags[flag]}, docker {theirs.flags[flag]}")
    assert not wrong, "\n".join(wrong)
    assert compared > 200, compared


#: commands whose flags and descriptions are docker's word for word: the pages must be equal byte
#: for byte ("docker" read as "dockyard"), which pins pflag's alignment, wrapping and defaults
IDENTICAL = [("stop",), ("restart",), ("rm",), ("start",), ("attach",), ("commit",), ("port",), ("tag",),
             ("pause",), ("network", "disconnect"), ("network",)]


@needs_docker
@pytest.mark.interop
@pytest.mark.parametrize("cmd", IDENTICAL, ids=" ".join)
def test_help_identical_to_docker(cli, cmd):
    theirs = subprocess.run(["docker", *cmd, "--help"], capture_output=True, text=True, timeout=60)
    mine = cli(*cmd, "--help")
    assert (mine.returncode, mine.stdout, mine.stderr) == (0, as_dockyard(theirs.stdout), "")


@needs_docker
@pytest.mark.interop
@pytest.mark.parametrize("args", [("container",), ("volume", "-h"), ("ps", "-h"), ("run", "-h"), ("ps", "-f"),
                                  ("run", "-it", "-e"), ("logs", "-n"), ("port",), ("commit", "a", "b", "c"),
                                  ("-h",), ("help", "container", "run"), ("help", "ps")],
                         ids=" ".join)
def test_help_streams_and_exit_codes_as_docker(cli, args):
    """A bare management command prints its help on stderr; ``-h`` first says it is deprecated;
    ``-h`` is help unless the verb has a ``-h`` flag (``run -h HOSTNAME``); a flag without its
    value is named as it was typed; a range of operands is reported as docker's range."""
    theirs = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    mine = cli(*args, input="")
    assert mine.returncode == theirs.returncode
    for mine_text, their_text in ((mine.stdout, theirs.stdout), (mine.stderr, theirs.stderr)):
        assert bool(mine_text) == bool(their_text)
        assert mine_text.split("\n")[:2] == as_dockyard(their_text).split("\n")[:2]


def _docker_ls(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--all", action="store_true", help="Show all containers (default shows just running)")
    p.add_argument("-f", "--filter", action="append", default=[], help="Filter output based on conditions provided")
    p.add_argument("--format", help=FORMAT_HELP_TABLE)
    p.add_argument("-n", "--last", type=int, default=-1, help="Show n last created containers (includes all states)")
    p.add_argument("-l", "--latest", action="store_true", help="Show the latest created container (includes all states)")
    p.add_argument("--no-trunc", action="store_true", help="Don't truncate output")
    p.add_argument("-q", "--quiet", action="store_true", help="Only display container IDs")
    p.add_argument("-s", "--size", action="store_true", help="Display total file sizes")


def _docker_inspect(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--format", help=FORMAT_HELP)
    p.add_argument("-s", "--size", action="store_true", help="Display total file sizes if the type is container")
    p.add_argument("--type", help="Only inspect objects of the given type")
    p.add_argument("names", nargs="+", metavar="NAME|ID")


@needs_docker
@pytest.mark.interop
@pytest.mark.parametrize("path, aliases, description, flags", [
    ("docker container ls", ["ps", "list"], "List containers", _docker_ls),
    ("docker inspect", [], "Return low-level information on Docker objects", _docker_inspect),
], ids=["container ls", "inspect"])
def test_docker_flags_render_dockers_page(path, aliases, description, flags):
    """A parser declared with docker's own flags and descriptions (multi-line ones, an int
    default) gives docker's page byte for byte: pflag's table and wrapping, reproduced."""
    *parent, verb = path.split(" ")
    root = Parser(prog=" ".join(parent))
    sub = root.add_subparsers(dest="verb", metavar="COMMAND", parser_class=Parser)
    flags(add_verb(sub, verb, lambda a, c: 0, description, aliases=aliases))
    theirs = subprocess.run([*path.split(" "), "--help"], capture_output=True, text=True, timeout=60,
                            stdin=subprocess.DEVNULL)
    assert sub.choices[verb].format_help() == theirs.stdout


# ============================================================================ dockyard alone
def test_help_on_stdout_exit_0_and_h_is_help(cli):
    long, short = cli("ps", "--help"), cli("ps", "-h")
    assert (long.returncode, long.stderr) == (0, "")
    assert short.stdout == "Flag shorthand -h has been deprecated, use --help\n" + long.stdout  # as docker
    assert long.stdout.startswith("Usage:  dockyard ps [OPTIONS]\n\nList containers\n\nAliases:\n"
                                  "  dockyard container ls, dockyard container list, dockyard container ps, dockyard ps\n"
                                  "\nOptions:\n")
    obj = cli("container", "-h")
    assert obj.returncode == 0
    assert obj.stdout.startswith("Flag shorthand -h has been deprecated, use --help\nUsage:  dockyard container COMMAND\n")


def test_run_help_lists_its_own_help_flag_and_h_is_hostname(cli):
    page = dockyard_help(cli, "run")
    assert page.flags["help"] == (None, None) and page.flags["hostname"] == ("h", "string")
    assert page.usage == "Usage:  dockyard run [OPTIONS] IMAGE [COMMAND] [ARG...]"
    assert page.aliases == ["dockyard container run", "dockyard run"]
    assert dockyard_help(cli, "container", "run").usage == "Usage:  dockyard container run [OPTIONS] IMAGE [COMMAND] [ARG...]"
    r = cli("run", "-h")
    assert r.returncode == 125 and r.stderr.startswith("flag needs an argument: 'h' in -h\n")


def test_hidden_flags_and_flag_aliases_stay_hidden(cli):
    build = dockyard_help(cli, "build")
    assert not {"rm", "force-rm", "load", "runtime"} & set(build.flags)  # argparse.SUPPRESS
    run = dockyard_help(cli, "run")
    assert {"network", "dns-option", "network-alias"} <= set(run.flags)
    assert not {"net", "dns-opt", "net-alias"} & set(run.flags)  # second names: docker's hidden aliases
    stop = dockyard_help(cli, "stop")
    assert stop.flags == {"signal": ("s", "string"), "timeout": ("t", "int")}
    assert "--time " not in stop.text and "--help" not in stop.text


def test_docker_types_defaults_and_wrapping(cli):
    page = dockyard_help(cli, "run")
    for flag, expected in {"memory": ("m", "bytes"), "cpus": (None, "decimal"), "ulimit": (None, "ulimit"),
                           "mount": (None, "mount"), "health-interval": (None, "duration"), "env": ("e", "list"),
                           "sysctl": (None, "map"), "network": (None, "network"), "publish": ("p", "list"),
                           "tty": ("t", None), "sig-proxy": (None, None)}.items():
        assert page.flags[flag] == expected
    assert "Pull image before running" in page.text and '(default "missing")' in page.text
    assert re.search(r"--sig-proxy\s+Proxy\s+received\s+signals\s+to\s+the\s+process\s+\(default true\)", page.text)
    assert re.search(r"--sysctl map\s+Sysctl options \(default map\[\]\)", page.text)
    assert all(len(line) <= 79 for line in page.text.split("\n"))  # no terminal: docker's 80 columns
    assert dockyard_help(cli, "network", "create").flags["opt"] == ("o", "map")
    assert dockyard_help(cli, "builder", "build").flags["network"] == (None, "string")  # build's own word


def test_registry_nested_management_command(cli):
    page = dockyard_help(cli, "registry")
    assert page.headers == ["Management Commands:", "Commands:"]
    assert [n for n, _ in page.commands][:1] == ["user"]
    user = dockyard_help(cli, "registry", "user", "ls")
    assert user.aliases == ["dockyard registry user ls", "dockyard registry user list"]


def test_hidden_object_is_not_listed_as_an_alias(cli):
    page = dockyard_help(cli, "login")
    assert page.usage == "Usage:  dockyard login [OPTIONS] [SERVER]"
    assert "Aliases:" not in page.headers


def _page(build) -> str:
    """The help of a verb ``build(p)`` defines, on a parser tree made as the object modules make it."""
    root = Parser(prog="dockyard thing", description="Manage things")
    sub = root.add_subparsers(dest="verb", metavar="COMMAND", parser_class=Parser)
    p = add_verb(sub, "make", lambda a, c: 0, "Make a thing", aliases=["mk"])
    build(p)
    return p.format_help()


def test_any_new_flag_gets_the_layout():
    """What another module adds is laid out with no change here: types from the argparse action,
    docker's word for a known flag name, an explicit type word as metavar, defaults as pflag."""
    def flags(p: argparse.ArgumentParser) -> None:
        p.add_argument("--log-driver", default="json-file", help="Logging driver")
        p.add_argument("-n", "--count", type=int, default=10, help="How many")
        p.add_argument("--label", action="append", default=[], help="Set metadata")
        p.add_argument("--build-arg", action="append", default=[], metavar="stringArray", help="Build args")
        p.add_argument("--memory", help="Memory limit")
        p.add_argument("--ratio", type=float, help="A ratio")
        p.add_argument("-q", "--quiet", action="store_true", help="Say less")
        add_bool_flag(p, "--verify", default="true", help="Check it")
        p.add_argument("--secret", help=argparse.SUPPRESS)
        p.add_argument("name", metavar="NAME")

    assert _page(flags) == """\
Usage:  dockyard thing make [OPTIONS] NAME

Make a thing

Aliases:
  dockyard thing make, dockyard thing mk

Options:
      --build-arg stringArray   Build args
  -n, --count int               How many (default 10)
      --label list              Set metadata
      --log-driver string       Logging driver (default "json-file")
      --memory bytes            Memory limit
  -q, --quiet                   Say less
      --ratio decimal           A ratio
      --verify                  Check it (default true)
"""


def test_long_descriptions_wrap_as_pflag_wraps():
    text = "word " * 30 + "end"

    def flags(p: argparse.ArgumentParser) -> None:
        p.add_argument("--a-rather-long-flag-name", help=text)
        p.add_argument("--b", action="store_true", help="short")

    lines = _page(flags).split("Options:\n", 1)[1].rstrip("\n").split("\n")
    assert lines[0].startswith("      --a-rather-long-flag-name string   word word")
    assert all(line.startswith(" " * 41) and len(line) <= 79 for line in lines[1:-1])
    assert " ".join(" ".join(line.split()[2 if i == 0 else 0:]) for i, line in enumerate(lines[:-1])) == text
    assert lines[-1] == "      --b                                short"


def test_no_options_no_options_section():
    page = _page(lambda p: p.add_argument("name", metavar="NAME"))
    assert page == "Usage:  dockyard thing make NAME\n\nMake a thing\n\nAliases:\n  dockyard thing make, dockyard thing mk\n"


def test_help_costs_other_commands_nothing():
    """The help renderer is imported only when help is printed."""
    code = ("import sys; from dockyard.cli.common import build_object_parser; import dockyard.cli.container as c;"
            "p = build_object_parser(c, 'dockyard container', verb='ls'); p.parse_args(['ls', '-a']);"
            "print('dockyard.cli.helptext' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr
