"""Image references with docker's grammar (distribution/reference), and docker's defaults.

``busybox`` is ``docker.io/library/busybox:latest``; ``localhost:5000/a/b:tag`` keeps its
registry; ``name@sha256:...`` pins a digest. The grammar::

    reference  := name [ ":" tag ] [ "@" digest ]
    name       := [domain "/"] path-component ["/" path-component]*
    domain     := host [":" port]     (first component, if it has "." or ":", is "localhost",
                                       or has upper case letters)
    path-comp  := [a-z0-9]+ (([._]|__|[-]*) [a-z0-9]+)*
    tag        := [\\w][\\w.-]{0,127}
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from dockyard.errors import InvalidArgument

DEFAULT_DOMAIN = "docker.io"
LEGACY_DOMAIN = "index.docker.io"
OFFICIAL_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_MAX = 255

_ALNUM = r"[a-z0-9]+"
_SEP = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEP}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_HOST = rf"(?:{_DOMAIN_NAME}|{_IPV6})"
_DOMAIN = rf"{_HOST}(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_REFERENCE_RE = re.compile(rf"^({_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?$")
_ANCHORED_NAME = re.compile(rf"^(?:({_DOMAIN})/)?({_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)$")
_HEX64 = re.compile(r"^[a-f0-9]{64}$")
_TAG_RE = re.compile(rf"^{_TAG}$")


@dataclass(frozen=True)
class Reference:
    """A normalised reference: ``domain``/``path`` with an optional tag and digest."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """The full repository name, ``docker.io/library/busybox``."""
        return f"{self.domain}/{self.path}"

    @property
    def familiar_name(self) -> str:
        """The short repository name docker shows: ``busybox``, ``foo/bar``, ``localhost:5000/x``."""
        if self.domain == DEFAULT_DOMAIN:
            if self.path.startswith(OFFICIAL_PREFIX) and self.path.count("/") == 1:
                return self.path[len(OFFICIAL_PREFIX):]
            return self.path
        return self.name

    def __str__(self) -> str:
        s = self.name
        if self.tag:
            s += f":{self.tag}"
        if self.digest:
            s += f"@{self.digest}"
        return s

    @property
    def familiar(self) -> str:
        s = self.familiar_name
        if self.tag:
            s += f":{self.tag}"
        if self.digest:
            s += f"@{self.digest}"
        return s

    def with_tag(self, tag: str) -> "Reference":
        return Reference(self.domain, self.path, tag, None)

    def with_digest(self, digest: str) -> "Reference":
        return Reference(self.domain, self.path, None, digest)

    @property
    def tagged(self) -> str:
        """``name:tag`` (only valid when there is a tag)."""
        return f"{self.name}:{self.tag}"


def _split_domain(name: str) -> tuple[str, str]:
    i = name.find("/")
    if i == -1 or (not any(c in name[:i] for c in ".:") and name[:i] != "localhost"
                   and name[:i].lower() == name[:i]):
        domain, remainder = DEFAULT_DOMAIN, name
    else:
        domain, remainder = name[:i], name[i + 1:]
    if domain == LEGACY_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_PREFIX + remainder
    return domain, remainder


def parse(text: str, default_tag: bool = True) -> Reference:
    """Parse and normalise a reference as docker does (``ParseNormalizedNamed`` + ``TagNameOnly``).

    Raises InvalidArgument with docker's message for invalid input.
    """
    if not text:
        raise InvalidArgument("invalid reference format")
    if _HEX64.match(text):
        raise InvalidArgument(f"invalid repository name ({text}), cannot specify 64-byte hexadecimal strings")
    m = _REFERENCE_RE.match(text)
    if not m:
        lowered = text.lower()
        if lowered != text and _REFERENCE_RE.match(_lower_path(text)):
            raise InvalidArgument(f"invalid reference format: repository name ({_repo_part(text)}) must be lowercase")
        raise InvalidArgument("invalid reference format")
    name, tag, digest = m.group(1), m.group(2), m.group(3)
    if len(name) > NAME_TOTAL_MAX:
        raise InvalidArgument(f"invalid reference format: repository name must not be more than {NAME_TOTAL_MAX} characters")
    domain, path = _split_domain(name)
    if path.lower() != path:
        raise InvalidArgument(f"invalid reference format: repository name ({path}) must be lowercase")
    if not _ANCHORED_NAME.match(f"{domain}/{path}"):
        raise InvalidArgument("invalid reference format")
    if digest is not None:
        from dockyard.content import digest as dg

        dg.validate(digest)
    if tag is None and digest is None and default_tag:
        tag = DEFAULT_TAG
    return Reference(domain, path, tag, digest)


def _repo_part(text: str) -> str:
    """The repository path docker names in its 'must be lowercase' message (``library/Foo``)."""
    name = text.split("@", 1)[0]
    colon, slash = name.rfind(":"), name.rfind("/")
    if colon > slash:
        name = name[:colon]
    return _split_domain(name)[1]


def _lower_path(text: str) -> str:
    """Lower-case everything but a tag/digest, to tell 'must be lowercase' from other errors."""
    m = re.match(r"^([^@]*?)(:[\w][\w.-]{0,127})?(@.*)?$", text)
    if not m:
        return text.lower()
    return m.group(1).lower() + (m.group(2) or "") + (m.group(3) or "")


def parse_repository(text: str) -> Reference:
    """A repository name without tag or digest (``docker push NAME`` style); keeps tag=None."""
    ref = parse(text, default_tag=False)
    return ref


def validate_tag(tag: str) -> str:
    if not _TAG_RE.match(tag):
        raise InvalidArgument(f"invalid tag format: {tag!r}")
    return tag


def is_image_id_prefix(text: str) -> bool:
    """Whether text could be an image ID or a prefix of one (hex, optionally ``sha256:``)."""
    t = text[7:] if text.startswith("sha256:") else text
    return bool(re.fullmatch(r"[a-f0-9]{1,64}", t))
