"""Repository names, tags and manifest references, validated with the distribution spec's grammar.

Names and tags become storage keys (directory names, S3 key parts), so the grammar is also the
path-traversal guard: ``..``, upper case, empty components and ``%`` escapes never match it.
"""
from __future__ import annotations

import re

from dockyard.content import digest as dg
from dockyard.registry.errors import RegistryError

# distribution-spec v1.1: <name> and <reference> grammar
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
NAME_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
TAG_RE = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$")
MAX_NAME_LENGTH = 255


def is_valid_name(name: str) -> bool:
    return len(name) <= MAX_NAME_LENGTH and bool(NAME_RE.match(name))


def check_name(name: str) -> str:
    """Return ``name`` if it is a valid repository name, else raise ``NAME_INVALID``."""
    if not is_valid_name(name):
        raise RegistryError("NAME_INVALID", f"invalid repository name {name!r}: use lower-case "
                            "letters, digits and separators (. _ __ -), components joined by /",
                            detail={"name": name})
    return name


def is_tag(reference: str) -> bool:
    return bool(TAG_RE.match(reference))


def check_tag(tag: str) -> str:
    if not is_tag(tag):
        raise RegistryError("MANIFEST_INVALID", f"invalid tag {tag!r}", detail={"tag": tag})
    return tag


def check_digest(value: str, code: str = "DIGEST_INVALID", detail: object = None) -> str:
    """Validate a digest string from a request (unsupported algorithms are DIGEST_INVALID too).

    The error's detail is the CNCF registry's: ``{}`` unless the caller names another.
    """
    try:
        dg.parse(value)
    except Exception as exc:  # InvalidArgument: message says what is wrong
        raise RegistryError(code, str(exc), detail={} if detail is None else detail) from None
    return value


def split_reference(reference: str) -> tuple[str | None, str | None]:
    """A manifest reference is a tag or a digest: returns ``(tag, None)`` or ``(None, digest)``."""
    if ":" in reference:
        return None, check_digest(reference)
    if is_tag(reference):
        return reference, None
    raise RegistryError("MANIFEST_INVALID", f"invalid reference {reference!r}: not a tag or a digest",
                        detail={"reference": reference})


def glob_to_regex(pattern: str) -> re.Pattern[str]:
    """Repository/tag patterns: ``*`` matches within one path component, ``**`` across ``/``."""
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("^" + "".join(out) + "$")
