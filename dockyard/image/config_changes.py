"""Apply Dockerfile instructions to an image config (``import --change``, ``commit --change``).

Only the instructions that change the config and need no build context are allowed, as docker
allows (dockerd 20.10's list): CMD, ENTRYPOINT, ENV, EXPOSE, HEALTHCHECK, LABEL, ONBUILD, USER,
VOLUME, WORKDIR.
"""
from __future__ import annotations

import shlex
from typing import Any

from dockyard.errors import InvalidArgument

ALLOWED = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "HEALTHCHECK", "LABEL", "ONBUILD", "USER", "VOLUME", "WORKDIR")


def _unquote(word: str) -> str:
    try:
        parts = shlex.split(word, posix=True)
    except ValueError:
        return word
    return " ".join(parts) if parts else ""


def _pairs(values: tuple[str, ...]) -> list[tuple[str, str]]:
    if len(values) % 2:
        raise InvalidArgument("invalid key=value pairs")
    return [(_unquote(values[i]), _unquote(values[i + 1])) for i in range(0, len(values), 2)]


def _expand(value: str, env: list[str]) -> str:
    """$VAR / ${VAR} from the config's Env (docker expands these in --change too)."""
    import re

    table = dict(e.split("=", 1) for e in env if "=" in e)

    def sub(m: "re.Match[str]") -> str:
        return table.get(m.group(1) or m.group(2), "")

    return re.sub(r"\$(?:\{(\w+)\}|(\w+))", sub, value) if "$" in value else value


def apply_changes(config: dict[str, Any], changes: list[str], shell: list[str] | None = None) -> dict[str, Any]:
    """Return ``config`` (the image config's ``config`` object) with each change applied."""
    import dockerfile

    cmd_set = False
    for change in changes:
        try:
            cmds = dockerfile.parse_string(change)
        except dockerfile.GoParseError as exc:
            raise InvalidArgument(f"invalid --change {change!r}: {exc}") from None
        for c in cmds:
            if c.cmd.upper() not in ALLOWED:
                raise InvalidArgument(f"{c.cmd.lower()} is not a valid change command")
            if c.cmd.upper() == "HEALTHCHECK":
                config["Healthcheck"] = _healthcheck(c.original)
                continue
            apply_instruction(config, c.cmd.upper(), c.value, c.json, c.sub_cmd, c.original, shell,
                              cmd_set=cmd_set)
            if c.cmd.upper() == "CMD":
                cmd_set = True
    return config


def _healthcheck(text: str) -> dict[str, Any]:
    """``HEALTHCHECK [--interval=...] CMD ...|NONE`` read by the Dockerfile parser, with its checks
    and words (``time: invalid duration "bad"``)."""
    from dockyard.build import dockerfile as parser
    from dockyard.build import imageconfig, instructions
    from dockyard.build.errors import DockerfileSyntaxError

    try:
        hc = instructions.from_node(parser.parse_line(text)[0])
    except DockerfileSyntaxError as exc:
        raise InvalidArgument(str(exc).split(": ", 1)[-1]) from None
    assert isinstance(hc, instructions.Healthcheck)
    return imageconfig.healthcheck(hc.test, hc.interval, hc.timeout, hc.start_period, hc.start_interval, hc.retries)


def apply_instruction(config: dict[str, Any], cmd: str, value: tuple[str, ...], is_json: bool,
                      sub_cmd: str | None = None, original: str = "", shell: list[str] | None = None,
                      cmd_set: bool = False) -> None:
    """Apply one instruction; ``cmd_set`` tells ENTRYPOINT whether CMD was set in this run
    (docker resets an inherited CMD when ENTRYPOINT changes)."""
    env = config.get("Env") or []
    sh = shell or config.get("Shell") or ["/bin/sh", "-c"]
    if cmd in ("CMD", "ENTRYPOINT"):
        args = list(value) if is_json else [*sh, value[0]] if value else []
        config["Cmd" if cmd == "CMD" else "Entrypoint"] = args
        if cmd == "ENTRYPOINT" and not cmd_set:
            config["Cmd"] = None
    elif cmd == "ENV":
        pairs = _pairs(value)
        new = list(env)
        for k, v in pairs:
            v = _expand(v, env)  # as in a Dockerfile: `ENV A=1 B=$A` sees A's value from before
            new = [e for e in new if e.split("=", 1)[0] != k] + [f"{k}={v}"]
        config["Env"] = new
    elif cmd == "LABEL":
        labels = dict(config.get("Labels") or {})
        for k, v in _pairs(value):
            labels[k] = _expand(v, env)
        config["Labels"] = labels
    elif cmd == "EXPOSE":
        ports = dict(config.get("ExposedPorts") or {})
        for p in value:
            p = _expand(_unquote(p), env)
            if "/" not in p:
                p += "/tcp"
            ports[p.lower()] = {}
        config["ExposedPorts"] = ports
    elif cmd == "VOLUME":
        vols = dict(config.get("Volumes") or {})
        for v in value:
            v = _expand(_unquote(v) if not is_json else v, env)
            if not v:
                raise InvalidArgument("VOLUME specified can not be an empty string")
            vols[v] = {}
        config["Volumes"] = vols
    elif cmd == "USER":
        config["User"] = _expand(_unquote(value[0]), env)
    elif cmd == "WORKDIR":
        import posixpath

        w = _expand(_unquote(value[0]), env)
        config["WorkingDir"] = posixpath.normpath(posixpath.join(config.get("WorkingDir") or "/", w))
    elif cmd == "STOPSIGNAL":
        config["StopSignal"] = _expand(_unquote(value[0]), env)
    elif cmd == "ONBUILD":
        trigger = original.split(None, 1)[1] if original else f"{sub_cmd} {' '.join(value)}"
        config["OnBuild"] = [*(config.get("OnBuild") or []), trigger]
