"""Reference parsing against the examples of docker's distribution/reference package."""
from __future__ import annotations

import pytest

from dockyard.errors import InvalidArgument
from dockyard.image.reference import parse

D = "sha256:" + "ff" * 32

VALID = [
    ("busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36"),
    ("library/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("docker.io/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("index.docker.io/library/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("foo/bar", "docker.io/foo/bar:latest", "foo/bar:latest"),
    ("docker.io/foo/bar:baz", "docker.io/foo/bar:baz", "foo/bar:baz"),
    ("localhost/foo", "localhost/foo:latest", "localhost/foo:latest"),
    ("localhost:5000/a/b:tag", "localhost:5000/a/b:tag", "localhost:5000/a/b:tag"),
    ("127.0.0.1:5000/x", "127.0.0.1:5000/x:latest", "127.0.0.1:5000/x:latest"),
    ("[::1]:5000/x:1", "[::1]:5000/x:1", "[::1]:5000/x:1"),
    ("example.com/a/b/c/d", "example.com/a/b/c/d:latest", "example.com/a/b/c/d:latest"),
    ("a.b-c.d/e__f/g.h-i", "a.b-c.d/e__f/g.h-i:latest", "a.b-c.d/e__f/g.h-i:latest"),
    ("Example.com/foo", "Example.com/foo:latest", "Example.com/foo:latest"),
    ("Foo/bar", "Foo/bar:latest", "Foo/bar:latest"),  # upper case first component = a domain
    ("test_com/foo", "docker.io/test_com/foo:latest", "test_com/foo:latest"),
    (f"busybox@{D}", f"docker.io/library/busybox@{D}", f"busybox@{D}"),
    (f"busybox:1@{D}", f"docker.io/library/busybox:1@{D}", f"busybox:1@{D}"),
    ("foo:" + "t" * 128, "docker.io/library/foo:" + "t" * 128, "foo:" + "t" * 128),
    ("foo:v1.2_3-rc", "docker.io/library/foo:v1.2_3-rc", "foo:v1.2_3-rc"),
]


@pytest.mark.parametrize("text,full,familiar", VALID)
def test_valid(text, full, familiar):
    ref = parse(text)
    assert str(ref) == full
    assert ref.familiar == familiar


INVALID = [
    ("", "invalid reference format"),
    ("Foo", "repository name (library/Foo) must be lowercase"),
    ("example.com/Foo", "repository name (Foo) must be lowercase"),
    ("a" * 64, "cannot specify 64-byte hexadecimal strings"),
    ("foo:", "invalid reference format"),
    ("foo:-bar", "invalid reference format"),
    ("foo:" + "t" * 129, "invalid reference format"),
    (":tag", "invalid reference format"),
    ("-foo", "invalid reference format"),
    ("foo/", "invalid reference format"),
    ("foo//bar", "invalid reference format"),
    ("foo/../bar", "invalid reference format"),
    ("foo..bar", "invalid reference format"),
    ("foo@sha256:abc", "invalid reference format"),
    ("foo@md5:" + "a" * 32, "unsupported digest algorithm"),
    ("a/" * 128 + "a", "must not be more than 255 characters"),
    ("foo bar", "invalid reference format"),
    ("localhost:/foo", "invalid reference format"),
]


@pytest.mark.parametrize("text,message", INVALID)
def test_invalid(text, message):
    with pytest.raises(InvalidArgument, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse(text)


def test_familiar_name_keeps_non_library_paths():
    assert parse("docker.io/library/a/b").familiar_name == "library/a/b"
    assert parse("quay.io/library/x").familiar_name == "quay.io/library/x"
