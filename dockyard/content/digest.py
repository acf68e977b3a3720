"""OCI digests (``algorithm:hex``): parsing, validation and incremental hashing.

sha256 is the default; sha512 is accepted everywhere a digest is read (OCI image-spec
"Digests"). Validation is strict so that a digest can be used as a file name safely.
"""
from __future__ import annotations

import hashlib
import re
from typing import BinaryIO, Iterable

from dockyard.errors import InvalidArgument

ALGORITHMS = {"sha256": 64, "sha512": 128}
_DIGEST_RE = re.compile(r"^([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$")
CHUNK = 1 << 20


def parse(digest: str) -> tuple[str, str]:
    """Split and validate a digest; raise InvalidArgument if it is not a usable one."""
    m = _DIGEST_RE.match(digest or "")
    if not m:
        raise InvalidArgument(f"invalid digest format: {digest!r}")
    alg, hex_ = m.group(1), m.group(2)
    if alg not in ALGORITHMS:
        raise InvalidArgument(f"unsupported digest algorithm: {alg}")
    if len(hex_) != ALGORITHMS[alg] or not re.fullmatch(r"[0-9a-f]+", hex_):
        raise InvalidArgument(f"invalid digest: {digest!r} (expected {ALGORITHMS[alg]} lowercase hex characters)")
    return alg, hex_


def validate(digest: str) -> str:
    parse(digest)
    return digest


def is_digest(value: str) -> bool:
    try:
        parse(value)
    except InvalidArgument:
        return False
    return True


def hasher(algorithm: str = "sha256") -> "hashlib._Hash":
    return hashlib.new(algorithm)


def from_bytes(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def from_stream(stream: BinaryIO, algorithm: str = "sha256") -> tuple[str, int]:
    """Digest and size of everything left in a stream, read in 1 MiB chunks."""
    h = hashlib.new(algorithm)
    size = 0
    while chunk := stream.read(CHUNK):
        h.update(chunk)
        size += len(chunk)
    return f"{algorithm}:{h.hexdigest()}", size


def from_chunks(chunks: Iterable[bytes], algorithm: str = "sha256") -> str:
    h = hashlib.new(algorithm)
    for c in chunks:
        h.update(c)
    return f"{algorithm}:{h.hexdigest()}"


def short_id(digest: str, length: int = 12) -> str:
    """Docker's short form: the first 12 hex characters, without the algorithm."""
    return digest.split(":", 1)[-1][:length]
