"""``dockyard exec``'s argparse-free parser reads every command line it accepts exactly as the
argparse parser does, and hands everything else (help, bad or abbreviated flags, a terminal)
back to argparse."""
from __future__ import annotations

import pytest

from dockyard.cli import container as container_cli
from dockyard.cli.common import UsageError, build_object_parser
from dockyard.cli.fast_exec import parse, run

FIELDS = ("detach", "detach_keys", "env", "env_file", "interactive", "privileged", "tty", "user", "workdir",
          "container", "command")


def argparse_reading(argv: list[str]) -> dict[str, object]:
    parser = build_object_parser(container_cli, "dockyard container", verb="exec")
    ns = parser.parse_args(["exec", *argv])
    return {f: getattr(ns, f) for f in FIELDS}


@pytest.mark.parametrize("argv", [
    ["ctr", "true"],
    ["-i", "ctr", "cat"],
    ["-it", "ctr", "sh"],
    ["-ti", "ctr", "sh"],
    ["-d", "ctr", "sleep", "1"],
    ["-di", "ctr", "x"],
    ["-e", "A=1", "-eB=2", "--env", "C=3", "--env=D=4", "-eE=x=y", "ctr", "env"],
    ["-u", "1000:1000", "-w", "/tmp", "ctr", "id"],
    ["-uroot", "-w/srv", "ctr", "id"],
    ["--user=nobody", "--workdir=/", "ctr", "sh", "-c", "echo -- -x"],
    ["--privileged", "ctr", "ls", "-la"],
    ["ctr", "ls", "-e", "x", "--privileged"],
    ["--detach-keys", "ctrl-a", "--env-file", "/dev/null", "ctr", "x"],
    ["-u", "a", "-u", "b", "ctr", "x"],
    ["--env=", "ctr", "x"],
    ["/named", "x"],
    ["ctr", "sh", "-c", "--", "x"],
])
def test_reads_like_argparse(argv: list[str]) -> None:
    fast = parse(argv)
    assert fast is not None, argv
    assert {f: fast[f] for f in FIELDS} == argparse_reading(argv)


@pytest.mark.parametrize("argv", [
    [], ["ctr"], ["--help"], ["-h"], ["-i"], ["-e"], ["-u", "-x", "ctr", "y"], ["-e", "-x", "ctr", "y"],
    ["--bogus", "ctr", "x"], ["--priv", "ctr", "x"], ["--privileged=true", "ctr", "x"], ["-u=root", "ctr", "x"],
    ["-x", "ctr", "y"], ["-ie", "A=1", "ctr", "x"], ["ctr", "-x"], ["ctr", "--", "x"], ["-", "x"], ["--", "ctr", "x"],
])
def test_hands_the_unusual_to_argparse(argv: list[str]) -> None:
    assert parse(argv) is None


@pytest.mark.parametrize("argv", [["-t", "ctr", "sh"], ["-it", "ctr", "sh"], ["--env-file", "f", "ctr", "env"],
                                  ["-e", "=bad", "ctr", "env"]])
def test_terminal_env_files_and_bad_env_take_the_argparse_path(argv: list[str], tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("DOCKYARD_ROOT", str(tmp_path))  # nothing there: would fall back anyway
    assert run(argv) is None


def test_argparse_still_rejects_what_the_fast_parser_leaves() -> None:
    with pytest.raises(UsageError):
        argparse_reading(["--bogus", "ctr", "x"])
