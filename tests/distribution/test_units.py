"""The small pieces: naming rules, challenges, error bodies, docker's progress output."""
from __future__ import annotations

import io
import json

import pytest

from dockyard.distribution.auth import parse_challenges
from dockyard.distribution.errors import describe_body
from dockyard.distribution.hosts import RegistrySettings, api_host, credentials_key, normalize_server
from dockyard.distribution.progress import Progress, bar, human_size
from dockyard.errors import InvalidArgument


def test_docker_naming_rules():
    assert api_host("docker.io") == "registry-1.docker.io"
    assert api_host("localhost:5000") == "localhost:5000"
    assert credentials_key("docker.io") == "https://index.docker.io/v1/"
    assert normalize_server(None) == "docker.io"
    assert normalize_server("https://index.docker.io/v1/") == "docker.io"
    assert normalize_server("http://localhost:5000/") == "localhost:5000"
    assert normalize_server("registry.example.com:443") == "registry.example.com:443"
    with pytest.raises(InvalidArgument):
        normalize_server("user@host")


def test_insecure_registries(tmp_path, monkeypatch):
    monkeypatch.delenv("DOCKYARD_INSECURE_REGISTRIES", raising=False)
    plain = RegistrySettings.load(tmp_path)
    assert plain.is_insecure("localhost:5000") and plain.is_insecure("127.0.0.1:5000")
    assert plain.is_insecure("127.3.4.5") and plain.is_insecure("[::1]:5000")
    assert not plain.is_insecure("192.0.2.7:5000")
    (tmp_path / "config.json").write_text(json.dumps({"insecure-registries": ["myreg:5000", "10.1.0.0/16"]}))
    monkeypatch.setenv("DOCKYARD_INSECURE_REGISTRIES", "other.example:8443")
    s = RegistrySettings.load(tmp_path, ["192.0.2.7:5000"])
    assert s.is_insecure("myreg:5000") and not s.is_insecure("myreg:5001")
    assert s.is_insecure("10.1.200.3:5000") and not s.is_insecure("10.2.0.1:5000")
    assert s.is_insecure("other.example:8443") and s.is_insecure("192.0.2.7:5000")
    (tmp_path / "config.json").write_text(json.dumps({"insecure-registries": "not-a-list"}))
    with pytest.raises(InvalidArgument, match="insecure-registries"):
        RegistrySettings.load(tmp_path)


def test_challenges():
    [bearer] = parse_challenges(['Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
                                 'scope="repository:library/busybox:pull"'])
    assert bearer.scheme == "bearer"
    assert bearer.get("realm") == "https://auth.docker.io/token"
    assert bearer.get("scope") == "repository:library/busybox:pull"
    basic, bearer2 = parse_challenges(['Basic realm="basic-realm", Bearer realm="http://x/t",service=s'])
    assert (basic.scheme, basic.get("realm")) == ("basic", "basic-realm")
    assert (bearer2.get("realm"), bearer2.get("service")) == ("http://x/t", "s")


def test_error_bodies():
    body = b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"x"}}]}'
    assert describe_body(404, "Not Found", body) == ("MANIFEST_UNKNOWN", "manifest unknown: manifest unknown")
    assert describe_body(403, "Forbidden", b"") == ("DENIED", "denied: requested access to the resource is denied")
    assert describe_body(502, "Bad Gateway", b"<html>oops</html>") == ("", "502 Bad Gateway")


def test_progress_output():
    assert human_size(1234567) == "1.23MB" and human_size(999) == "999B" and human_size(3_000_000) == "3MB"
    assert bar(25, 100) == "[============>" + " " * 38 + "]      25B/100B"
    plain = io.StringIO()
    p = Progress(plain, tty=False)
    p.layer("aaa", "Pulling fs layer")
    p.advance("aaa", "Downloading", 5, 10)  # bars are for terminals only
    p.layer("aaa", "Pull complete")
    p.message("Digest: sha256:x")
    assert plain.getvalue() == "aaa: Pulling fs layer\naaa: Pull complete\nDigest: sha256:x\n"

    term = io.StringIO()
    t = Progress(term, tty=True)
    t.layer("aaa", "Pulling fs layer")
    t.layer("bbb", "Pulling fs layer")
    t.advance("aaa", "Downloading", 10, 10)
    assert term.getvalue() == ("aaa: Pulling fs layer\nbbb: Pulling fs layer\n"
                               f"\x1b[2A\r\x1b[2Kaaa: Downloading {bar(10, 10)}\r\x1b[2B")
    Progress(None).layer("x", "ignored")  # silent
