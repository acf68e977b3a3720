"""``--user name|uid[:group|gid]`` resolved against the image's own /etc/passwd and /etc/group.

Semantics are docker's (libcontainer ``user.GetExecUser``): a name must exist in the image; a
number need not (gid then defaults to 0); without an explicit group the user's supplementary
groups are the groups listing it as a member. Like docker (via containerd), the primary gid is
also the first supplementary group. The files are read through ``secure_join`` so that an image
symlink cannot make us read the host's files.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dockyard.errors import InvalidArgument
from dockyard.runtime.paths import secure_join

MAX_ID = 2**31 - 1


@dataclass
class ExecUser:
    uid: int = 0
    gid: int = 0
    additional_gids: list[int] = field(default_factory=list)
    home: str = "/"
    name: str | None = None


def _read_entries(rootfs: Path, path: str) -> list[list[str]] | None:
    """Colon-separated entries of a file in the rootfs; None if it does not exist."""
    try:
        text = secure_join(rootfs, path).read_text(errors="replace")
    except OSError:  # absent, a directory, a symlink loop: the image has no such file
        return None
    entries = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            entries.append(line.split(":"))
    return entries


def id_names(rootfs: str | Path) -> tuple[dict[int, str], dict[int, str]]:
    """uid -> user and gid -> group names from the image's own files (the first entry of an id
    wins, as getpwuid's). Read as plain text: never through NSS, which inside a container's root
    would load the container's libraries into our process."""
    maps: list[dict[int, str]] = []
    for path in ("/etc/passwd", "/etc/group"):
        names: dict[int, str] = {}
        for entry in _read_entries(Path(rootfs), path) or []:
            if len(entry) > 2 and entry[2].isdigit():
                names.setdefault(int(entry[2]), entry[0])
        maps.append(names)
    return maps[0], maps[1]


def _parse_id(text: str) -> int | None:
    if not text.isdigit():
        return None
    value = int(text)
    if value > MAX_ID:
        raise InvalidArgument("uids and gids must be in range 0-2147483647")
    return value


def resolve_exec_user(rootfs: str | Path, user: str | None) -> ExecUser:
    """The uid, gid, supplementary gids and home for docker's ``--user`` value in this rootfs."""
    rootfs = Path(rootfs)
    user = (user or "").strip()
    user_arg, _, group_arg = user.partition(":")
    result = ExecUser()
    uid_arg = _parse_id(user_arg)
    passwd = _read_entries(rootfs, "/etc/passwd") or []
    matched: list[str] | None = None
    for entry in passwd:
        if len(entry) < 4:
            continue
        if user_arg == "":
            hit = entry[2] == "0"
        elif uid_arg is not None:
            hit = entry[2] == str(uid_arg)
        else:
            hit = entry[0] == user_arg
        if hit:
            matched = entry
            break
    if matched is not None:
        result.name = matched[0]
        result.uid = int(matched[2]) if matched[2].isdigit() else 0
        result.gid = int(matched[3]) if matched[3].isdigit() else 0
        if len(matched) > 5 and matched[5]:
            result.home = matched[5]
    elif user_arg and uid_arg is None:
        raise InvalidArgument(f"unable to find user {user_arg}: no matching entries in passwd file")
    elif uid_arg is not None:
        result.uid = uid_arg

    groups = _read_entries(rootfs, "/etc/group") or []
    supplementary: list[int] = []
    if group_arg:
        gid_arg = _parse_id(group_arg)
        for entry in groups:
            if len(entry) < 3:
                continue
            if (entry[2] == str(gid_arg)) if gid_arg is not None else (entry[0] == group_arg):
                result.gid = int(entry[2]) if entry[2].isdigit() else 0
                break
        else:
            if gid_arg is None:
                raise InvalidArgument(f"unable to find group {group_arg}: no matching entries in group file")
            result.gid = gid_arg
    elif result.name is not None:
        for entry in groups:
            if len(entry) >= 4 and result.name in entry[3].split(",") and entry[2].isdigit():
                supplementary.append(int(entry[2]))
    gids = [result.gid]
    for g in supplementary:
        if g not in gids:
            gids.append(g)
    result.additional_gids = gids
    return result


def resolve_group(rootfs: str | Path, group: str) -> int:
    """A ``--group-add`` value (name or number) as a gid, looked up in the image's /etc/group."""
    gid = _parse_id(group)
    if gid is not None:
        return gid
    for entry in _read_entries(Path(rootfs), "/etc/group") or []:
        if len(entry) >= 3 and entry[0] == group and entry[2].isdigit():
            return int(entry[2])
    raise InvalidArgument(f"Unable to find group {group}: no matching entries in group file")


def resolve_user(rootfs: str | Path, user: str | None) -> tuple[int, int, list[int]]:
    """``(uid, gid, additional_gids)`` for docker's ``--user`` value; see :func:`resolve_exec_user`."""
    u = resolve_exec_user(rootfs, user)
    return u.uid, u.gid, u.additional_gids
