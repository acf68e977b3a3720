"""Entry point of the ``dockyard`` command: global options, then dispatch to one object module.

Only the module for the object named on the command line is imported, and it imports its heavy
dependencies inside the handlers: ``dockyard --help`` and ``dockyard image ls`` load almost nothing.
"""
from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover - typing costs a dockyard exec milliseconds
    from typing import Sequence

# object name -> (module, one-line help)
OBJECTS: dict[str, tuple[str, str]] = {
    "image": ("dockyard.cli.image", "Manage images"),
    "container": ("dockyard.cli.container", "Manage containers"),
    "volume": ("dockyard.cli.volume", "Manage volumes"),
    "network": ("dockyard.cli.network", "Manage networks"),
    "builder": ("dockyard.cli.builder", "Manage builds"),
    "registry": ("dockyard.cli.registry", "Run and manage an OCI registry"),
    "system": ("dockyard.cli.system", "Manage dockyard"),
    "swarm": ("dockyard.cli.swarm", "Manage Swarm"),
    "node": ("dockyard.cli.node", "Manage Swarm nodes"),
    "service": ("dockyard.cli.service", "Manage Swarm services"),
    "stack": ("dockyard.cli.stack", "Manage Swarm stacks"),
}

# objects reachable only through aliases (not listed in --help)
HIDDEN_OBJECTS: dict[str, str] = {
    "auth": "dockyard.cli.auth",
}

# docker's short commands -> (object, verb)
ALIASES: dict[str, tuple[str, str]] = {
    "images": ("image", "ls"),
    "rmi": ("image", "rm"),
    "tag": ("image", "tag"),
    "pull": ("image", "pull"),
    "push": ("image", "push"),
    "build": ("image", "build"),
    "load": ("image", "load"),
    "save": ("image", "save"),
    "import": ("image", "import"),
    "history": ("image", "history"),
    "run": ("container", "run"),
    "create": ("container", "create"),
    "start": ("container", "start"),
    "ps": ("container", "ls"),
    "logs": ("container", "logs"),
    "exec": ("container", "exec"),
    "stop": ("container", "stop"),
    "kill": ("container", "kill"),
    "restart": ("container", "restart"),
    "rm": ("container", "rm"),
    "wait": ("container", "wait"),
    "top": ("container", "top"),
    "stats": ("container", "stats"),
    "cp": ("container", "cp"),
    "pause": ("container", "pause"),
    "unpause": ("container", "unpause"),
    "rename": ("container", "rename"),
    "attach": ("container", "attach"),
    "port": ("container", "port"),
    "diff": ("container", "diff"),
    "commit": ("container", "commit"),
    "export": ("container", "export"),
    "update": ("container", "update"),
    "inspect": ("system", "inspect"),
    "login": ("auth", "login"),
    "logout": ("auth", "logout"),
    "info": ("system", "info"),
    "events": ("system", "events"),
    "version": ("system", "version"),
}

USAGE = """\
Usage:  dockyard [OPTIONS] COMMAND

Build, ship, run and orchestrate containers.

Options:
      --root string      State root (default "/var/lib/dockyard", env DOCKYARD_ROOT)
      --config string    Location of client config files (default "~/.docker", env DOCKER_CONFIG)
  -D, --debug            Show tracebacks on errors
  -v, --version          Print version information and quit
  -h, --help             Print this help

Management Commands:
{objects}

Commands:
{aliases}

Run 'dockyard COMMAND --help' for more information on a command.
"""


def _usage() -> str:
    objects = "\n".join(f"  {name:<12}{help_}" for name, (_, help_) in OBJECTS.items())
    aliases = "\n".join(f"  {name:<12}= {obj} {verb}" for name, (obj, verb) in ALIASES.items())
    return USAGE.format(objects=objects, aliases=aliases)


def _parse_globals(argv: list[str]) -> tuple[dict[str, object], list[str]]:
    """Take the global options off the front of argv (docker allows them only there)."""
    opts: dict[str, object] = {"root": None, "debug": False}
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--root" and i + 1 < len(argv):
            opts["root"] = argv[i + 1]
            i += 2
        elif a == "--config" and i + 1 < len(argv):  # docker's client config dir (credentials)
            os.environ["DOCKYARD_CONFIG"] = argv[i + 1]
            i += 2
        elif a.startswith("--root="):
            opts["root"] = a.split("=", 1)[1]
            i += 1
        elif a in ("-D", "--debug"):
            opts["debug"] = True
            i += 1
        elif a in ("-v", "--version"):
            return opts, ["system", "version", "--short"]
        elif a in ("-h", "--help"):
            return opts, [a]
        elif a.startswith("-") and a != "-":
            raise SystemExit(_fail(f'unknown flag: {a}\nSee \'dockyard --help\'.'))
        else:
            break
    return opts, argv[i:]


def _fail(message: str, code: int = 125) -> int:
    sys.stderr.write(message.rstrip("\n") + "\n")
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Run one dockyard command; returns the process exit code."""
    argv_given = argv
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        opts, rest = _parse_globals(argv)
    except SystemExit as exc:  # _fail already printed
        return int(exc.code or 125)
    if opts["root"] is not None:
        os.environ["DOCKYARD_ROOT"] = str(opts["root"])
    if rest[:1] == ["help"] and len(rest) > 1:  # docker help container run
        rest = [*rest[1:], "--help"]
    if not rest or rest[0] in ("--help", "-h", "help"):
        if rest[:1] == ["-h"]:  # as docker (on stderr here, on stdout for a command's -h)
            sys.stderr.write("Flag shorthand -h has been deprecated, use --help\n")
        sys.stdout.write(_usage())
        return 0
    name, rest = rest[0], rest[1:]
    if name in ALIASES:
        obj, verb = ALIASES[name]
        rest = [verb, *rest]
        prog = f"dockyard {name}"
    elif name in OBJECTS:
        obj = name
        prog = f"dockyard {name}"
    else:
        return _fail(f"dockyard: unknown command: dockyard {name}\n\nRun 'dockyard --help' for more information", 1)

    rc: int | None = None
    if obj == "container" and rest[:1] == ["exec"]:  # timed against docker: no argparse if possible
        from dockyard.cli.fast_exec import run as fast_exec

        rc = fast_exec(rest[1:])
    elif (obj == "container" and rest[:1] in (["run"], ["start"]) and "--help" not in rest
          and argv_given is None):  # (a caller's function call must not fork its process)
        from dockyard.engine import prefork

        prefork.start()  # the container's monitor imports what it needs while we do our part
    if rc is None:
        rc = _run_object(obj, name, prog, rest, bool(opts["debug"]))
    if argv_given is None:  # we are the program, not a caller's function call
        _exit_now(rc)
    return rc


def _run_object(obj: str, name: str, prog: str, rest: list[str], debug: bool) -> int:
    from dockyard.cli.common import run_object

    module = OBJECTS[obj][0] if obj in OBJECTS else HIDDEN_OBJECTS[obj]
    return run_object(module, prog, rest, debug=debug, alias=name if name in ALIASES else None)


def _exit_now(rc: int) -> None:
    """Exit without the interpreter's teardown (10+ ms once the engine is loaded: ``run --rm``
    and ``exec`` are timed against docker) when nothing needs it: no other thread, no atexit
    handler. Output is flushed first; files and the metadata DB are closed by the handlers."""
    import atexit

    threading = sys.modules.get("threading")
    if (threading is not None and threading.active_count() > 1) or atexit._ncallbacks():
        return
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(rc)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
