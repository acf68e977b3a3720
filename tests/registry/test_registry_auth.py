"""Authentication and authorisation: token auth, basic auth, public/private, per-repo grants."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest
import requests

from dockyard.errors import InvalidArgument
from dockyard.registry import config as cfgmod
from dockyard.registry.auth import hash_password, write_htpasswd
from dockyard.registry.server import check_exposure

from .helpers import Reg, error_code, sha


def _auth_config(tmp_path: Path, scheme: str = "token") -> dict:
    htpasswd = tmp_path / "htpasswd"
    write_htpasswd(str(htpasswd), {"alice": hash_password("alice-pw", 4),
                                   "bob": hash_password("bob-pw", 4),
                                   "carol": hash_password("carol-pw", 4)})
    return {"auth": {"scheme": scheme, "htpasswd": str(htpasswd), "roles": {"ops": ["carol"]}},
            "repositories": [
                {"pattern": "public/**", "visibility": "public",
                 "grants": [{"users": ["alice"], "actions": ["pull", "push", "delete"]}]},
                {"pattern": "alice/*", "grants": [{"users": ["alice"], "actions": ["*"]},
                                                  {"roles": ["ops"], "actions": ["pull"]}]},
                {"pattern": "bob/*", "grants": [{"users": ["bob"], "actions": ["pull", "push"]}]},
            ]}


def token(reg: Reg, user: str | None, password: str | None, *scopes: str) -> str:
    r = requests.get(reg.url + "/token", params={"service": "dockyard-registry", "scope": list(scopes)},
                     auth=(user, password) if user else None)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token"] == body["access_token"] and body["expires_in"] > 0 and body["issued_at"]
    return body["token"]


def bearer(t: str) -> dict:
    return {"Authorization": f"Bearer {t}"}


@pytest.fixture
def treg(start_registry: Callable[..., Reg], tmp_path: Path) -> Reg:
    return start_registry(_auth_config(tmp_path))


def test_challenge_and_docker_token_flow(treg: Reg) -> None:
    r = treg("GET", "/v2/")
    assert r.status_code == 401 and error_code(r) == "UNAUTHORIZED"
    challenge = r.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="http://') and 'service="dockyard-registry"' in challenge
    r = treg("GET", "/v2/alice/app/tags/list")
    assert 'scope="repository:alice/app:pull"' in r.headers["WWW-Authenticate"]
    t = token(treg, "alice", "alice-pw", "repository:alice/app:pull,push")
    assert treg("GET", "/v2/", headers=bearer(t)).status_code == 200
    digest = sha(b"layer")
    r = treg("POST", "/v2/alice/app/blobs/uploads/", params={"digest": digest}, data=b"layer", headers=bearer(t))
    assert r.status_code == 201
    assert treg("GET", f"/v2/alice/app/blobs/{digest}", headers=bearer(t)).content == b"layer"


def test_wrong_password_is_401_and_stores_nothing(treg: Reg) -> None:
    r = requests.get(treg.url + "/token", params={"scope": "repository:alice/app:push"}, auth=("alice", "nope"))
    assert r.status_code == 401 and error_code(r) == "UNAUTHORIZED"
    r = treg("POST", "/v2/alice/app/blobs/uploads/", params={"digest": sha(b"x")}, data=b"x", auth=("alice", "nope"))
    assert r.status_code == 401
    assert treg.server.store.repositories() == []


def test_token_for_one_repository_is_rejected_on_another(treg: Reg) -> None:
    t = token(treg, "alice", "alice-pw", "repository:alice/a:pull,push")
    r = treg("POST", "/v2/alice/b/blobs/uploads/", params={"digest": sha(b"x")}, data=b"x", headers=bearer(t))
    assert r.status_code == 401
    assert 'error="insufficient_scope"' in r.headers["WWW-Authenticate"]
    assert 'scope="repository:alice/b:pull,push"' in r.headers["WWW-Authenticate"]  # as CNCF asks
    assert not treg.server.store.repository_exists("alice/b")
    # a forged or foreign token is refused outright
    r = treg("GET", "/v2/", headers=bearer(t[:-4] + "AAAA"))
    assert r.status_code == 401 and 'error="invalid_token"' in r.headers["WWW-Authenticate"]


def test_grants_by_user_and_role(treg: Reg) -> None:
    alice = token(treg, "alice", "alice-pw", "repository:alice/app:pull,push")
    treg.push_image("alice/app", "v1", headers=bearer(alice))
    # bob has no grant on alice/*: a token is issued, without the actions; the registry says DENIED
    bob = token(treg, "bob", "bob-pw", "repository:alice/app:pull")
    r = treg("GET", "/v2/alice/app/manifests/v1", headers=bearer(bob))
    assert r.status_code == 403 and error_code(r) == "DENIED"
    # carol pulls through her role but may not push
    carol = token(treg, "carol", "carol-pw", "repository:alice/app:pull,push")
    assert treg("GET", "/v2/alice/app/manifests/v1", headers=bearer(carol)).status_code == 200
    r = treg("POST", "/v2/alice/app/blobs/uploads/", headers=bearer(carol))
    assert r.status_code == 403 and error_code(r) == "DENIED"
    # delete needs its own grant
    r = treg("DELETE", "/v2/alice/app/manifests/v1", headers=bearer(carol))
    assert r.status_code in (401, 403)


def test_public_repositories_are_pullable_anonymously_and_private_ones_are_hidden(treg: Reg) -> None:
    alice = token(treg, "alice", "alice-pw", "repository:public/tool:pull,push",
                  "repository:alice/secret:pull,push")
    treg.push_image("public/tool", "latest", headers=bearer(alice))
    treg.push_image("alice/secret", "latest", headers=bearer(alice))
    anon = token(treg, None, None, "repository:public/tool:pull", "repository:alice/secret:pull")
    assert treg("GET", "/v2/public/tool/manifests/latest", headers=bearer(anon)).status_code == 200
    r = treg("GET", "/v2/alice/secret/manifests/latest", headers=bearer(anon))
    assert r.status_code == 401
    # catalog lists what the caller may pull
    cat = lambda t: treg("GET", "/v2/_catalog", headers=bearer(t)).json()["repositories"]  # noqa: E731
    assert cat(token(treg, "alice", "alice-pw", "registry:catalog:*")) == ["alice/secret", "public/tool"]
    assert cat(token(treg, "bob", "bob-pw", "registry:catalog:*")) == ["public/tool"]
    assert cat(token(treg, None, None, "registry:catalog:*")) == ["public/tool"]
    # tags of a private repository are as hidden as its manifests
    bob = token(treg, "bob", "bob-pw", "repository:alice/secret:pull")
    assert treg("GET", "/v2/alice/secret/tags/list", headers=bearer(bob)).status_code == 403


def test_cross_repository_mount_needs_pull_on_the_source(treg: Reg) -> None:
    alice = token(treg, "alice", "alice-pw", "repository:alice/src:pull,push")
    digest = treg.push_blob("alice/src", b"secret layer", headers=bearer(alice))
    bob = token(treg, "bob", "bob-pw", "repository:bob/dst:pull,push", "repository:alice/src:pull")
    r = treg("POST", "/v2/bob/dst/blobs/uploads/", params={"mount": digest, "from": "alice/src"},
             headers=bearer(bob))
    assert r.status_code == 202  # no mount: a plain upload starts instead
    assert treg("HEAD", f"/v2/bob/dst/blobs/{digest}", headers=bearer(bob)).status_code == 404


def test_basic_scheme(start_registry: Callable[..., Reg], tmp_path: Path) -> None:
    reg = start_registry(_auth_config(tmp_path, scheme="basic"))
    r = reg("GET", "/v2/")
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Basic")
    assert reg("GET", "/v2/", auth=("bob", "bob-pw")).status_code == 200
    reg.push_image("bob/x", "1", auth=("bob", "bob-pw"))
    assert reg("GET", "/v2/bob/x/manifests/1", auth=("alice", "alice-pw")).status_code == 403
    assert reg("GET", "/v2/bob/x/manifests/1", auth=("bob", "wrong")).status_code == 401
    assert reg("GET", "/token").status_code == 404


def test_token_endpoint_post_password_grant(treg: Reg) -> None:
    r = requests.post(treg.url + "/token", data={"grant_type": "password", "username": "bob",
                                                 "password": "bob-pw", "service": "dockyard-registry",
                                                 "scope": "repository:bob/x:pull"})
    assert r.status_code == 200 and r.json()["access_token"]
    r = requests.post(treg.url + "/token", data={"grant_type": "password", "username": "bob", "password": "x"})
    assert r.status_code == 401


def test_open_registry_only_on_loopback_unless_asked() -> None:
    check_exposure(cfgmod.from_dict({"http": {"addr": "127.0.0.1:5000"}}))
    with pytest.raises(InvalidArgument, match="refusing to serve an open registry"):
        check_exposure(cfgmod.from_dict({"http": {"addr": "0.0.0.0:5000"}}))
    check_exposure(cfgmod.from_dict({"http": {"addr": "0.0.0.0:5000"}, "auth": {"open": True}}))


def test_tls(start_registry: Callable[..., Reg], tmp_path: Path) -> None:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                         serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    reg = start_registry({"http": {"tls": {"certificate": "cert.pem", "key": "key.pem"}}})
    assert reg.url.startswith("https://")
    ca = str(tmp_path / "cert.pem")
    data = bytes(300_000)
    digest = reg.push_blob("tls/x", data, verify=ca)
    assert reg("GET", f"/v2/tls/x/blobs/{digest}", verify=ca).content == data
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(reg.url.replace("https", "http") + "/v2/", timeout=5)
