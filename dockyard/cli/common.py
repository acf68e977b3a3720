"""What every object module shares: the parser class, the handler context, error reporting.

A handler is ``def handler(args: argparse.Namespace, ctx: Context) -> int | None``; it raises
:class:`dockyard.errors.DockyardError` for failures, which become one ``Error: ...`` line on
stderr and docker's exit code.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Any, Callable, NoReturn

Handler = Callable[[argparse.Namespace, "Context"], "int | None"]


class UsageError(Exception):
    """Raised by the parser instead of exiting: docker's whole usage message and exit code (1
    for a wrong number of arguments or an unknown command, 125 for a bad flag)."""

    def __init__(self, text: str, exit_code: int = 125) -> None:
        super().__init__(text)
        self.exit_code = exit_code


# docker's messages are English whatever the locale, and Python ships no argparse translations:
# skip argparse's gettext lookups (a locale normalisation and four stat() calls for each of the
# ~50 strings a parser build looks up: milliseconds of every command)
argparse._ = lambda message: message  # type: ignore[attr-defined]
argparse.ngettext = lambda singular, plural, n: singular if n == 1 else plural  # type: ignore[attr-defined]

_terminal_width: list[int] = []


class _Formatter(argparse.HelpFormatter):
    """argparse makes a formatter for every ``add_argument`` (to check its nargs), and each one
    asks the terminal for its width: once per process is enough."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        if width is None:
            if not _terminal_width:
                import shutil

                _terminal_width.append(shutil.get_terminal_size().columns - 2)  # as argparse does
            width = _terminal_width[0]
        super().__init__(prog, indent_increment, max_help_position, width)


class _HelpAction(argparse._HelpAction):
    """``--help``/``-h``: the help on stdout, exit 0. docker takes ``-h`` (where it is not
    another flag: ``run -h HOSTNAME``) but first says, on stdout, that it is deprecated."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> NoReturn:
        if option_string == "-h":
            sys.stdout.write("Flag shorthand -h has been deprecated, use --help\n")
        parser.print_help()
        parser.exit()


class Parser(argparse.ArgumentParser):
    """argparse with docker's (cobra's) usage errors -- the same wording, the usage line, the
    hint, and docker's exit codes -- and docker's help pages (:mod:`dockyard.cli.helptext`)."""

    #: what ``add_verb`` records for the help's "Aliases:" section: the command's own path
    #: (``dockyard container ls``, whatever name it was invoked by) and its other verb names
    command_path: str | None = None
    verb_aliases: tuple[str, ...] = ()
    _argv: list[str] = []  # the words the last parse read: a message names a flag as typed

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        add_help = kwargs.pop("add_help", True)
        super().__init__(*args, add_help=False, **kwargs)
        self.register("action", "help", _HelpAction)  # before any help flag is added
        self.add_help = add_help
        if add_help:
            self.add_argument("-h", "--help", action="help", help="Print usage")

    def format_help(self) -> str:
        """docker's (cobra's) help layout instead of argparse's; see :mod:`dockyard.cli.helptext`
        (imported only when help is asked for: it costs every other command nothing)."""
        from dockyard.cli.helptext import render

        return render(self)

    def shown_flags(self) -> list[argparse.Action]:
        """The flags help lists: not the hidden ones (``help=argparse.SUPPRESS``) nor the usual
        ``-h, --help``, which docker hides too; a bare ``--help`` (a verb whose ``-h`` means
        something else, like ``run -h HOSTNAME``) is listed, as docker lists it."""
        return [a for a in self._actions if a.option_strings and a.help != argparse.SUPPRESS
                and not (isinstance(a, argparse._HelpAction) and "-h" in a.option_strings)]

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:  # type: ignore[override]
        """argparse lets a REMAINDER positional be empty; docker requires ``exec``'s COMMAND.
        A Go boolean flag given bare (``--disable-content-trust``) never takes the next word."""
        bools = {o for a in self._actions if getattr(a, "go_bool", False) for o in a.option_strings}
        if bools and args is not None:
            args = [f"{a}=true" if a in bools else a for a in args]
        self._argv = list(sys.argv[1:] if args is None else args)
        ns, extras = super().parse_known_args(args, namespace)
        for a in self._positional_actions():
            if a.nargs == argparse.REMAINDER and not str(a.metavar or "").startswith("[") \
                    and not getattr(ns, a.dest, None):
                self._arguments_error()
        return ns, extras

    def _positional_actions(self) -> list[argparse.Action]:
        return [a for a in self._actions if not a.option_strings and not isinstance(a, argparse._SubParsersAction)]

    def usage_line(self) -> str:
        """``dockyard logs [OPTIONS] CONTAINER``: docker's usage line for this command."""
        if self._subparsers is not None:
            return self.prog
        # docker's Use strings say [OPTIONS] only for commands that have options to give
        words = [self.prog, "[OPTIONS]"] if self.shown_flags() else [self.prog]
        for a in self._positional_actions():
            name = a.metavar if isinstance(a.metavar, str) else a.dest.upper()
            if name.startswith("["):  # the metavar already says it is optional
                words.append(name)
                continue
            words.append({"?": f"[{name}]", "*": f"[{name}...]", "+": f"{name} [{name}...]"}.get(
                a.nargs if isinstance(a.nargs, str) else "", name))
        return " ".join(words)

    def arity(self) -> tuple[int, int | None]:
        """(fewest, most) operands this verb's positionals take (most None: no bound)."""
        low, high = 0, 0
        for a in self._positional_actions():
            required = a.nargs in (None, "+") or (
                a.nargs == argparse.REMAINDER and not str(a.metavar or "").startswith("["))
            low += a.nargs if isinstance(a.nargs, int) else int(required)
            if high is not None:
                high = high + a.nargs if isinstance(a.nargs, int) else (
                    high + 1 if a.nargs in (None, "?") else None)
        return low, high

    def _arguments_error(self, too_many: bool = False) -> NoReturn:
        """docker's (cobra's) "requires N arguments" for too few operands, or too many."""
        low, high = self.arity()
        given = (high or 0) + 1 if too_many else max(low - 1, 0)
        use = self.usage_line()[len(self.prog) + 1:]
        raise UsageError(arity_error(self.prog, use, given, low, high) or f"{self.prog}: bad arguments", 1)

    chosen_verb: str | None = None  # set on an object's parser by run_object

    def _verb_parser(self) -> "Parser":
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction) and self.chosen_verb in action.choices:
                return action.choices[self.chosen_verb]
        return self

    def _flag_error(self, message: str) -> NoReturn:
        raise UsageError(f"{message}\n\nUsage:  {self.usage_line()}\n\n"
                         f"Run '{self.prog} --help' for more information", 125)

    def _typed_flag(self, names: list[str]) -> str:
        """The flag as the command line gave it, as docker names it: ``--env``, ``'e' in -e``,
        ``'e' in -ite`` (argparse only says ``-e/--env``)."""
        shorts = {n[1] for n in names if len(n) == 2 and n[1] != "-"}
        for word in reversed(self._argv):
            if word in names and word.startswith("--"):
                return word
            if word.startswith("-") and not word.startswith("--") and word[-1:] in shorts:
                return f"'{word[-1]}' in {word}"
        flag = names[-1]
        return flag if flag.startswith("--") else f"'{flag[1:]}' in {flag}"

    def error(self, message: str) -> NoReturn:
        import re

        if message.startswith("the following arguments are required"):
            self._arguments_error()
        if message.startswith("unrecognized arguments: "):
            # reported by the object's parser, but about the verb's flags and arguments
            verb = self._verb_parser()
            first = message.split(": ", 1)[1].split()[0]
            if first.startswith("--"):
                verb._flag_error(f"unknown flag: {first.split('=', 1)[0]}")
            if first.startswith("-") and len(first) > 1:
                verb._flag_error(f"unknown shorthand flag: '{first[1]}' in {first}")
            verb._arguments_error(too_many=True)
        m = re.match(r"argument COMMAND: invalid choice: '([^']*)'", message)
        if m:
            raise UsageError(f"dockyard: unknown command: {self.prog} {m.group(1)}\n\nUsage:  {self.prog}\n\n"
                             f"Run '{self.prog} --help' for more information", 1)
        m = re.match(r"argument ([^:]+): expected one argument", message)
        if m:
            self._flag_error(f"flag needs an argument: {self._typed_flag(m.group(1).split('/'))}")
        m = re.match(r"argument ([^:]+): invalid \S+ value: '(.*)'$", message)
        if m:
            flags = ", ".join(m.group(1).split("/"))
            self._flag_error(f'invalid argument "{m.group(2)}" for "{flags}" flag')
        self._flag_error(message)


def arity_error(path: str, use: str, n: int, low: int, high: int | None) -> str | None:
    """docker's (cobra's) message for ``n`` operands where ``low``..``high`` are allowed (``use``:
    the usage line after the command path), or None when ``n`` is fine."""
    binary = path.split(" ", 1)[0]
    usage = f"\n\nUsage:  {path} {use}\n\n"

    def plural(k: int) -> str:
        return "argument" if k == 1 else "arguments"

    if high == 0 and n:
        return f"{binary}: '{path}' accepts no arguments{usage}Run '{path} --help' for more information"
    if high is not None and 0 < low < high and not low <= n <= high:  # docker's RequiresRangeArgs
        return (f"{binary}: '{path}' requires at least {low} and at most {high} {plural(high)}{usage}"
                f"Run '{path} --help' for more information")
    if low == high and n != low:
        return f"{binary}: '{path}' requires {low} {plural(low)}{usage}Run '{path} --help' for more information"
    if n < low:
        return f"{binary}: '{path}' requires at least {low} {plural(low)}{usage}See '{path} --help' for more information"
    if high is not None and n > high:  # "SRun" is docker's own typo, kept for byte-equal output
        return f"{binary}: '{path}' requires at most {high} {plural(high)}{usage}SRun '{path} --help' for more information"
    return None


#: docker's description of ``--format`` (its flagsHelper.FormatHelp), for a verb that prints a
#: table (``ps``, ``images``, ``volume ls``...); the help wraps its lines as docker's does
FORMAT_HELP_TABLE = (
    "Format output using a custom template:\n"
    "'table':            Print output in table format with column headers (default)\n"
    "'table TEMPLATE':   Print output in table format using the given Go template\n"
    "'json':             Print in JSON format\n"
    "'TEMPLATE':         Print output using the given Go template.\n"
    "Refer to https://docs.docker.com/go/formatting/ for more information about formatting output with templates")
#: the same for a verb without a table (``inspect``, ``version``, ``info``)
FORMAT_HELP = "\n".join(line for line in FORMAT_HELP_TABLE.split("\n") if not line.startswith("'table"))

#: docker prints what its daemon refused behind this; dockyard's engine plays the daemon
DAEMON_PREFIX = "Error response from daemon: "


def shown_as(exc: Any, prefix: str) -> Any:
    """Mark a DockyardError to print behind ``prefix`` (docker's "Error response from daemon: ",
    or "" for what the docker CLI reports bare), unless it already says how it is shown."""
    if "cli_prefix" not in vars(exc) and exc.cli_prefix == "Error: ":
        exc.cli_prefix = prefix
    return exc


class Context:
    """Per-invocation state handed to handlers: the client (made on first use) and streams."""

    def __init__(self, debug: bool = False) -> None:
        self.debug = debug
        self._client: Any = None
        self.out = sys.stdout
        self.err = sys.stderr

    @property
    def client(self) -> Any:
        if self._client is None:
            from dockyard.client import Client

            self._client = Client()
        return self._client

    def print(self, text: str = "") -> None:
        self.out.write(text + "\n")

    def warn(self, text: str) -> None:
        self.err.write(text.rstrip("\n") + "\n")


def add_bool_flag(p: argparse.ArgumentParser, *names: str, help: str, default: str = "false") -> None:
    """A Go-style boolean flag: ``--flag`` alone or ``--flag=false``, never a separate value."""
    action = p.add_argument(*names, nargs="?", const="true", default=default, metavar="BOOL", help=help)
    action.go_bool = True  # type: ignore[attr-defined]


def add_verb(sub: "argparse._SubParsersAction[Parser]", name: str, func: Handler, help: str,
             aliases: list[str] | None = None, add_help: bool = True,
             usage: str | None = None) -> Parser:
    """Add one verb to an object's parser. ``add_help=False`` frees ``-h`` (``run -h HOSTNAME``)."""
    p: Parser = sub.add_parser(name, help=help, description=help, aliases=aliases or [],
                               add_help=False, usage=usage)
    p.command_path = p.prog
    p.verb_aliases = tuple(aliases or ())
    if add_help:
        p.add_argument("-h", "--help", action="help", help="Print usage")
    else:
        p.add_argument("--help", action="help", help="Print usage")
    p.set_defaults(func=func)
    return p


def build_object_parser(module: Any, prog: str, verb: str | None = None) -> Parser:
    parser = Parser(prog=prog, add_help=True, description=(module.__doc__ or "").split("\n")[0])
    sub = parser.add_subparsers(dest="verb", metavar="COMMAND", parser_class=Parser)
    if getattr(module.build_parser, "takes_verb", False):  # only the verb in use gets its flags
        module.build_parser(sub, verb)
    else:
        module.build_parser(sub)
    return parser


def _rename_verb_prog(parser: argparse.ArgumentParser, verb: str, prog: str) -> None:
    """Help and usage errors of an alias (``dockyard ps``) name the alias, not ``container ls``."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and verb in action.choices:
            action.choices[verb].prog = prog


def run_object(module_name: str, prog: str, argv: list[str], debug: bool = False,
               alias: str | None = None) -> int:
    """Parse argv for one object module and run the chosen handler."""
    from dockyard.errors import DockyardError

    module = importlib.import_module(module_name)
    verb = argv[0] if argv and not argv[0].startswith("-") else None
    parser = build_object_parser(module, prog if alias is None else f"dockyard {module_name.rsplit('.', 1)[1]}",
                                 verb=verb)
    if alias is not None and verb is not None:
        _rename_verb_prog(parser, verb, f"dockyard {alias}")
    parser.chosen_verb = verb
    # docker's start-type commands report their own failures with 125
    # docker: `run` reports dockyard's own failures with 125; create/start/exec exit 1 like other verbs
    container_start = argv[:1] == ["run"]
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        sys.stderr.write(f"{exc}\n")
        return exc.exit_code
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    func: Handler | None = getattr(args, "func", None)
    if func is None:  # a bare management command: docker prints its help on stderr, exit 0
        parser.print_help(sys.stderr)
        return 0
    ctx = Context(debug=debug)
    try:
        rc = func(args, ctx)
    except DockyardError as exc:
        if debug:
            import traceback

            traceback.print_exc()
        sys.stderr.write(f"{exc.cli_prefix}{exc.message}\n")
        if container_start and exc.exit_code == 1:
            return 125
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:
        from dockyard.cli.failures import environment_failure

        line = None if debug else environment_failure(exc, ctx._client.state.path if ctx._client else None)
        if line is None:
            raise
        sys.stderr.write(f"Error: {line}\n")
        return 125 if container_start else 1
    finally:
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            pass
        if ctx._client is not None:
            ctx._client.close()
    return int(rc or 0)
