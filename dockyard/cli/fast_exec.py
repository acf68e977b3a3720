"""``dockyard exec`` without argparse: the command line as users type it, parsed and run in the
fewest imports (``exec`` is timed against ``docker exec``; argparse, ``re``, ``json``, ``socket``,
``typing`` and ``pathlib`` would be most of its cost).

:func:`run` handles the usual case — no terminal (``-t``), no ``--env-file`` — and returns None
for anything else (help, a bad flag, an unknown container, a monitor that does not answer, ...):
``main`` then takes the ordinary argparse path, whose messages and exit codes are the reference.
What this path does once it runs is the same as ``dockyard.engine.execution.exec_attached``:
the same request to the container's monitor, with the caller's stdin (``-i``; /dev/null
otherwise), stdout and stderr passed as file descriptors, so output never goes through us.
"""
from __future__ import annotations

import os
import sys

from dockyard.engine import protocol
from dockyard.engine import refs

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

DEFAULT_ROOT = "/var/lib/dockyard"  # dockyard.state.DEFAULT_ROOT (not imported: sqlite3 behind it)

# exec's flags, shared with the argparse parser (dockyard.cli.container): (short, long, kind, help)
# where kind is "bool", "value" (last one wins) or "append"
EXEC_FLAGS: tuple[tuple[str | None, str, str, str], ...] = (
    ("-d", "--detach", "bool", "Detached mode: run command in the background"),
    (None, "--detach-keys", "value", "Override the key sequence for detaching a container"),
    ("-e", "--env", "append", "Set environment variables"),
    (None, "--env-file", "append", "Read in a file of environment variables"),
    ("-i", "--interactive", "bool", "Keep STDIN open even if not attached"),
    (None, "--privileged", "bool", "Give extended privileges to the command"),
    ("-t", "--tty", "bool", "Allocate a pseudo-TTY"),
    ("-u", "--user", "value", "Username or UID (format: <name|uid>[:<group|gid>])"),
    ("-w", "--workdir", "value", "Working directory inside the container"),
)
_BY_NAME = {name: (long[2:].replace("-", "_"), kind)
            for short, long, kind, _ in EXEC_FLAGS for name in (short, long) if name}


def parse(argv: list[str]) -> dict[str, Any] | None:
    """exec's argv (after ``exec``) as argparse would read it — flags, CONTAINER, COMMAND... —
    or None when it holds anything argparse might read differently or reject."""
    opts: dict[str, Any] = {dest: ([] if kind == "append" else False if kind == "bool" else None)
                            for dest, kind in _BY_NAME.values()}
    i = 0
    while i < len(argv) and argv[i].startswith("-") and argv[i] != "-":
        arg = argv[i]
        i += 1
        if arg.startswith("--"):
            name, eq, value = arg.partition("=")
            spec = _BY_NAME.get(name)
            if spec is None or (eq and spec[1] == "bool"):
                return None  # "--", unknown, abbreviated, or "--flag=x" on a switch
            if spec[1] == "bool":
                _store(opts, spec, True)
                continue
            if not eq:
                if i >= len(argv) or argv[i].startswith("-"):
                    return None
                value = argv[i]
                i += 1
            _store(opts, spec, value)
            continue
        if _BY_NAME.get(arg[:2], ("", ""))[1] in ("value", "append"):  # -uroot, -e X
            value = arg[2:]
            if value.startswith("="):
                return None  # argparse reads "-u=x" as "x"
            if not value:
                if i >= len(argv) or argv[i].startswith("-"):
                    return None
                value = argv[i]
                i += 1
            _store(opts, _BY_NAME[arg[:2]], value)
            continue
        for ch in arg[1:]:  # a cluster of switches: -it, -d
            spec = _BY_NAME.get("-" + ch)
            if spec is None or spec[1] != "bool":
                return None
            _store(opts, spec, True)
    if i >= len(argv) or argv[i].startswith("-") or i + 1 >= len(argv) or argv[i + 1].startswith("-"):
        return None  # no container, or a command that starts like a flag
    opts["container"], opts["command"] = argv[i], argv[i + 1:]
    return opts


def _store(opts: dict[str, Any], spec: tuple[str, str], value: Any) -> None:
    dest, kind = spec
    if kind == "append":
        opts[dest].append(value)
    else:
        opts[dest] = value


def run(argv: list[str]) -> int | None:
    """Run ``dockyard exec ARGV`` when it is the usual case; None: take the argparse path."""
    opts = parse(argv)
    if opts is None or opts["tty"] or opts["env_file"]:
        return None
    env: list[str] = []
    if opts["env"]:
        from dockyard.engine.options import parse_env
        from dockyard.errors import DockyardError

        try:
            env = parse_env(opts["env"])
        except DockyardError:
            return None
    root = os.environ.get("DOCKYARD_ROOT") or DEFAULT_ROOT
    base = os.path.join(root if os.path.isabs(root) else os.path.join(os.getcwd(), root), "containers")
    try:
        cid = refs.resolve(base, opts["container"])
    except Exception:  # noqa: BLE001 - not found, ambiguous: the ordinary path says so
        return None
    sock = _connect(os.path.join(base, cid, "monitor.sock"))
    if sock is None:
        return None  # no monitor: the ordinary path says why (not running, ...)
    try:
        return _exec(sock, opts, env)
    finally:
        sock.close()


def _connect(path: str) -> Any:
    import _socket  # the C module: ``socket`` would import enum and selectors

    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    dirfd = None
    try:
        if len(path) > protocol.MAX_PATH:
            dirfd = os.open(os.path.dirname(path), os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            path = f"/proc/self/fd/{dirfd}/{os.path.basename(path)}"
        sock.connect(path)
    except OSError:
        sock.close()
        return None
    finally:
        if dirfd is not None:
            os.close(dirfd)
    return sock


def _exec(sock: Any, opts: dict[str, Any], env: list[str]) -> int:
    import _socket

    req = {"op": "exec", "ref": opts["container"], "cmd": list(opts["command"]), "env": env,
           "workdir": opts["workdir"], "user": opts["user"], "privileged": opts["privileged"],
           "detach": opts["detach"]}
    fds: list[int] = []
    null = None
    if not opts["detach"]:
        if not opts["interactive"]:
            null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        fds = [0 if null is None else null, 1, 2]
    try:
        rights = [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, b"".join(fd.to_bytes(4, sys.byteorder) for fd in fds))]
        sock.sendmsg([protocol.control(req)], rights if fds else [])
    finally:
        if null is not None:
            os.close(null)
    conn = _Replies(sock)
    try:
        started = conn.next_control()
        if started is None:
            return _fail("the container's monitor went away", 126)
        if "error" in started:
            code = int(started.get("code") or 1)
            return _fail(started["error"], 1 if code == 409 else code)
        if opts["detach"]:
            return 0
        done = conn.next_control()
    except KeyboardInterrupt:
        return 130
    if done is None:
        return _fail("the container's monitor went away while the process ran", 1)
    return int(done.get("code", 0))


class _Replies:
    """The monitor's control messages, in order (two may arrive in one read)."""

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.reader = protocol.FrameReader()
        self.frames: list[tuple[int, bytes]] = []

    def next_control(self) -> dict[str, Any] | None:
        while True:
            while self.frames:
                kind, payload = self.frames.pop(0)
                if kind == protocol.CONTROL:
                    return protocol.loads(payload)
            data = self.sock.recv(65536)
            if not data:
                return None
            self.frames.extend(self.reader.feed(data))


def _fail(message: str, code: int) -> int:
    """docker exec's report: a process that did not start (126/127) is told on stdout, as the
    daemon writes it into the exec's output; a refusal is the daemon's error on stderr."""
    if code in (126, 127):
        sys.stdout.write(f"{message}\n")
    else:
        sys.stderr.write(f"Error response from daemon: {message}\n")
    return code
