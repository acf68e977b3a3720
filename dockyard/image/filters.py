"""``--filter`` for images, with docker's keys: dangling, reference, label, before, since."""
from __future__ import annotations

from typing import TYPE_CHECKING

from dockyard.errors import InvalidArgument

if TYPE_CHECKING:  # pragma: no cover
    from dockyard.image.service import Image, ImageService

KEYS = ("dangling", "reference", "label", "before", "since")  # docker's image list; prune adds its own


def parse_filters(values: list[str] | None) -> dict[str, list[str]]:
    """``["dangling=true", "label=a=b"]`` → ``{"dangling": ["true"], "label": ["a=b"]}``."""
    out: dict[str, list[str]] = {}
    for v in values or []:
        if "=" not in v:
            raise InvalidArgument("bad format of filter (expected name=value)")
        k, val = v.split("=", 1)
        out.setdefault(k.strip().lower(), []).append(val)
    return out


class ImageFilter:
    def __init__(self, filters: dict[str, list[str]], service: "ImageService",
                 keys: tuple[str, ...] = KEYS) -> None:
        for k in filters:
            if k not in keys:
                raise InvalidArgument(f"Invalid filter '{k}'")
        self.filters = filters
        self.service = service
        for v in filters.get("dangling", []):
            if v.lower() not in ("true", "false", "1", "0"):
                raise InvalidArgument(f"Invalid filter 'dangling=[{v}]'")
        self._before = [service.get(v).created for v in filters.get("before", [])]
        self._since = [service.get(v).created for v in filters.get("since", [])]

    def match(self, image: "Image") -> bool:
        f = self.filters
        for v in f.get("dangling", []):
            want = v.lower() in ("true", "1")
            if want != (not image.repo_tags):
                return False
        if "reference" in f:
            if not any(_ref_match(pattern, tag) for pattern in f["reference"] for tag in image.repo_tags):
                return False
        for lab in f.get("label", []):
            k, _, val = lab.partition("=")
            labels = image.labels
            if k not in labels or ("=" in lab and labels[k] != val):
                return False
        for created in self._before:
            if not image.created < created:
                return False
        for created in self._since:
            if not image.created > created:
                return False
        return True


def reference_matches(patterns: list[str], tag: str) -> bool:
    """Whether a name (``repo:tag``) matches any ``reference=`` pattern, as docker decides."""
    from dockyard.image.reference import parse

    try:
        familiar = parse(tag, default_tag=False).familiar
    except InvalidArgument:
        familiar = tag
    return any(_ref_match(p, familiar) for p in patterns)


def _ref_match(pattern: str, tag: str) -> bool:
    """docker matches ``reference=`` against the familiar name, with and without the tag."""
    name = tag.rsplit(":", 1)[0] if ":" in tag.rsplit("/", 1)[-1] else tag
    return _path_match(pattern, tag) or _path_match(pattern, name)


def _path_match(pattern: str, text: str) -> bool:
    """Go's ``path.Match``: ``*`` and ``?`` never match a ``/``; ``[...]`` (``[^...]``) classes;
    a backslash quotes the next character."""
    import re

    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        elif c == "[" and "]" in pattern[i + 1:]:
            end = pattern.index("]", i + 2 if pattern[i + 1:i + 2] in ("^", "]") else i + 1)
            body = pattern[i + 1:end]
            out.append("[" + ("^" + re.escape(body[1:]).replace("\\-", "-") if body.startswith("^")
                              else re.escape(body).replace("\\-", "-")) + "]")
            i = end
        else:
            out.append(re.escape(c))
        i += 1
    return re.fullmatch("".join(out), text) is not None
