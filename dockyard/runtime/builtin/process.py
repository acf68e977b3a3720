"""Container side: turn the forked runtime process into the OCI ``process`` and exec it.

Shared by the container's init and by ``exec``'d processes, in runc's order: stdio or the
console, rlimits, no_new_privs, then ``finalize`` (drop the bounding set, keep capabilities
across the uid change, set groups/gid/uid, chdir, set effective/permitted/inheritable and
ambient sets), then look the executable up *before* telling the caller we are ready (so that
"not found" is a create-time error with docker's message and exit code), and ``execve``.
"""
from __future__ import annotations

import errno
import fcntl
import os
import resource
import signal
import stat
from typing import Any

from dockyard.runtime import capabilities, linux

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
EXIT_NOT_FOUND = 127
EXIT_CANNOT_INVOKE = 126


class ExecError(Exception):
    """The program cannot be started; ``message`` is runc's/docker's wording."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def install_stdio(fds: list[int | None]) -> None:
    """Make ``fds`` the process's 0, 1, 2 (None ⇒ /dev/null), safe when they overlap 0-2."""
    devnull = None
    high: list[int] = []
    for fd in fds:
        if fd is None:
            if devnull is None:
                devnull = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
            fd = devnull
        high.append(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10))
    for target, fd in enumerate(high):
        os.dup2(fd, target, inheritable=True)
        os.close(fd)
    if devnull is not None:
        os.close(devnull)


def env_dict(env: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in env:
        key, sep, value = item.partition("=")
        if sep:
            out[key] = value
    return out


def lookup_executable(arg0: str, env: dict[str, str]) -> str:
    """Go's ``exec.LookPath`` as runc uses it, with runc's error messages."""
    def executable(path: str) -> None:
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode) or not st.st_mode & 0o111:
            raise PermissionError(errno.EACCES, "permission denied")

    if "/" in arg0:
        try:
            executable(arg0)
        except PermissionError:
            raise ExecError(f'exec: "{arg0}": permission denied', EXIT_CANNOT_INVOKE) from None
        except OSError as exc:
            reason = os.strerror(exc.errno or errno.ENOENT).lower()
            code = EXIT_CANNOT_INVOKE if exc.errno == errno.EACCES else EXIT_NOT_FOUND
            raise ExecError(f'exec: "{arg0}": stat {arg0}: {reason}', code) from None
        return arg0
    for directory in env.get("PATH", DEFAULT_PATH).split(":"):
        candidate = os.path.join(directory or ".", arg0)
        try:
            executable(candidate)
            return candidate
        except OSError:
            continue
    raise ExecError(f'exec: "{arg0}": executable file not found in $PATH', EXIT_NOT_FOUND)


def apply_rlimits(rlimits: list[dict[str, Any]]) -> None:
    for rl in rlimits:
        name = rl["type"]
        res = getattr(resource, name, None)
        if res is None:
            raise OSError(errno.EINVAL, f"unknown rlimit {name}")
        try:
            resource.setrlimit(res, (rl["soft"], rl["hard"]))
        except (OSError, ValueError) as exc:
            raise OSError(errno.EPERM, f"setrlimit {name}: operation not permitted") from exc


def home_for(uid: int) -> str:
    """HOME for ``uid`` from the container's /etc/passwd (runc sets it when the env lacks it)."""
    try:
        with open("/etc/passwd") as f:
            for line in f:
                parts = line.rstrip("\n").split(":")
                if len(parts) >= 6 and parts[2] == str(uid):
                    return parts[5] or "/"
    except OSError:
        pass
    return "/"


def _caps(process: dict[str, Any], key: str) -> int:
    return capabilities.mask((process.get("capabilities") or {}).get(key) or [])


def finalize(process: dict[str, Any]) -> None:
    """Capabilities and identity, in runc's order (``finalizeNamespace``)."""
    caps = process.get("capabilities")
    if caps is not None:
        keep = _caps(process, "bounding")
        for cap in range(capabilities.last_cap() + 1):
            if not keep >> cap & 1:
                try:
                    linux.prctl(linux.PR_CAPBSET_DROP, cap, what="drop bounding capability")
                except OSError as exc:
                    if exc.errno != errno.EINVAL:
                        raise
    user = process.get("user") or {}
    uid, gid = int(user.get("uid", 0)), int(user.get("gid", 0))
    cwd = process.get("cwd") or "/"
    chdir_later = False
    try:
        os.chdir(cwd)
    except PermissionError:
        chdir_later = True  # maybe the user may enter it and root may not (root_squash NFS): retry
    except OSError as exc:
        raise OSError(exc.errno, f'chdir to cwd ("{cwd}") set in config.json failed: {os.strerror(exc.errno or 0).lower()}') from None
    linux.prctl(linux.PR_SET_KEEPCAPS, 1, what="prctl(PR_SET_KEEPCAPS)")
    gids = [int(g) for g in user.get("additionalGids") or []]
    os.setgroups(gids)
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if chdir_later:
        os.chdir(cwd)
    linux.prctl(linux.PR_SET_KEEPCAPS, 0, what="prctl(PR_SET_KEEPCAPS)")
    if caps is not None:
        linux.capset(_caps(process, "effective"), _caps(process, "permitted"), _caps(process, "inheritable"))
        linux.prctl(linux.PR_CAP_AMBIENT, linux.PR_CAP_AMBIENT_CLEAR_ALL, what="clear ambient capabilities")
        for cap in caps.get("ambient") or []:
            num = capabilities.CAPABILITY_NUMBERS.get(cap)
            if num is not None:
                try:
                    linux.prctl(linux.PR_CAP_AMBIENT, linux.PR_CAP_AMBIENT_RAISE, num, what="raise ambient capability")
                except OSError:
                    pass  # not in permitted+inheritable: runc ignores it too


def prepare_env(process: dict[str, Any]) -> dict[str, str]:
    env = env_dict(process.get("env") or [])
    if "HOME" not in env:
        env["HOME"] = home_for(int((process.get("user") or {}).get("uid", 0)))
    return env


def close_inherited_fds() -> None:
    """Everything above 2 is closed by execve (runc closes the runtime's fds the same way)."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2:
            try:
                os.set_inheritable(fd, False)
            except OSError:
                pass


def reset_signals() -> None:
    """Ignored signals survive execve (Python ignores SIGPIPE, a monitor may ignore SIGINT/SIGHUP/
    SIGTTOU...), and the mask is inherited: the program must start with every default."""
    for sig in signal.valid_signals():
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):
            pass
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def execute(path: str, args: list[str], env: dict[str, str]) -> None:
    """execve, or docker's message on stderr and exit 127/126. Never returns."""
    try:
        os.execve(path, args, env)
    except OSError as exc:
        code = EXIT_NOT_FOUND if exc.errno in (errno.ENOENT, errno.ENOTDIR) else EXIT_CANNOT_INVOKE
        reason = os.strerror(exc.errno or 0).lower()
        msg = f'exec failed: unable to start container process: exec: "{args[0]}": {reason}\n'
        try:
            os.write(2, msg.encode())
        finally:
            os._exit(code)
    os._exit(EXIT_CANNOT_INVOKE)
