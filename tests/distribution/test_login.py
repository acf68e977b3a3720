"""login / logout: docker's config.json (0600, atomic, other keys kept), credential helpers, errors."""
from __future__ import annotations

import base64
import json
import os
import stat
import sys
import textwrap
from pathlib import Path

import pytest

from .helpers import PASSWORD, USER

pytestmark = pytest.mark.interop


def _b64(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def test_wrong_password_stores_nothing(cli, cncf_auth, docker_config):
    r = cli("login", "-u", USER, "--password-stdin", cncf_auth.host, input="wrong\n")
    assert r.returncode == 1
    assert r.stderr == f"Error response from daemon: login attempt to http://{cncf_auth.host}/v2/ failed with status: 401 Unauthorized\n"
    assert r.stdout == ""
    assert not (docker_config / "config.json").exists()


def test_login_push_pull_logout(cli, busybox, cncf_auth, docker_config):
    docker_config.mkdir()
    (docker_config / "config.json").write_text(json.dumps({"psFormat": "table {{.ID}}"}))
    r = cli("login", "-u", USER, "--password-stdin", cncf_auth.host, input=PASSWORD + "\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "Login Succeeded\n"
    assert f"WARNING! Your credentials are stored unencrypted in '{docker_config / 'config.json'}'." in r.stderr
    path = docker_config / "config.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {"psFormat": "table {{.ID}}",
                                            "auths": {cncf_auth.host: {"auth": _b64(USER, PASSWORD)}}}
    assert "\t" in path.read_text()  # docker's tab indentation
    assert [p.name for p in docker_config.iterdir()] == ["config.json"]  # no temp file left behind

    name = f"{cncf_auth.host}/private/bb:1"
    cli("tag", "busybox", name, check=True)
    assert cli("push", name).returncode == 0
    cli("rmi", name, check=True)
    assert cli("pull", "-q", name, check=True).stdout == name + "\n"

    r = cli("logout", cncf_auth.host)
    assert (r.returncode, r.stdout) == (0, f"Removing login credentials for {cncf_auth.host}\n")
    assert json.loads(path.read_text()) == {"psFormat": "table {{.ID}}", "auths": {}}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    cli("rmi", name, check=True)
    r = cli("pull", name)
    assert r.returncode == 1 and r.stderr.count("\n") == 1
    assert "unauthorized: authentication required" in r.stderr


def test_stored_credentials_are_reused(cli, cncf_auth, docker_config):
    docker_config.mkdir()
    (docker_config / "config.json").write_text(json.dumps({"auths": {f"http://{cncf_auth.host}/": {
        "auth": _b64(USER, PASSWORD)}}}))
    r = cli("login", cncf_auth.host)
    assert r.returncode == 0, r.stderr
    assert f"Authenticating with existing credentials... [Username: {USER}]" in r.stderr
    assert r.stdout == "Login Succeeded\n"


def test_flag_errors(cli, cncf_auth, docker_config):
    r = cli("login", "-u", USER, "-p", "x", "--password-stdin", cncf_auth.host)
    assert (r.returncode, r.stderr) == (1, "conflicting options: cannot specify both --password and --password-stdin\n")
    r = cli("login", "--password-stdin", cncf_auth.host, input="x\n")
    assert (r.returncode, r.stderr) == (1, "the --password-stdin option requires --username to be set\n")
    r = cli("login", cncf_auth.host, input="")
    assert (r.returncode, r.stderr) == (1, "Error: Cannot perform an interactive login from a non TTY device\n")
    r = cli("login", "-u", USER, "-p", PASSWORD, cncf_auth.host)
    assert r.returncode == 0
    assert r.stderr.startswith("WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n")


HELPER = textwrap.dedent('''\
    #!{python}
    """docker-credential-test: docker's credential-helper protocol over a JSON file."""
    import json, os, sys
    path = os.environ["TEST_HELPER_STORE"]
    db = json.load(open(path)) if os.path.exists(path) else {{}}
    action, data = sys.argv[1], sys.stdin.read()
    with open(path + ".log", "a") as log:
        log.write(action + " " + data.strip().split(chr(10))[0][:200] + chr(10))
    if action == "store":
        doc = json.loads(data)
        db[doc["ServerURL"]] = {{"Username": doc["Username"], "Secret": doc["Secret"]}}
    elif action == "get":
        if data.strip() not in db:
            print("credentials not found in native keychain")
            sys.exit(1)
        print(json.dumps({{"ServerURL": data.strip(), **db[data.strip()]}}))
    elif action == "erase":
        if db.pop(data.strip(), None) is None:
            print("credentials not found in native keychain")
            sys.exit(1)
    json.dump(db, open(path, "w"))
''')


@pytest.fixture
def helper_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / "docker-credential-test"
    script.write_text(HELPER.format(python=sys.executable))
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    store = tmp_path / "helper-store.json"
    monkeypatch.setenv("TEST_HELPER_STORE", str(store))
    return store


@pytest.mark.parametrize("how", ["credsStore", "credHelpers"])
def test_credential_helper(cli, busybox, cncf_auth, docker_config, helper_store, how):
    docker_config.mkdir()
    conf = {"credsStore": "test"} if how == "credsStore" else {"credHelpers": {cncf_auth.host: "test"}}
    (docker_config / "config.json").write_text(json.dumps(conf))
    r = cli("login", "-u", USER, "--password-stdin", cncf_auth.host, input=PASSWORD)
    assert (r.returncode, r.stdout) == (0, "Login Succeeded\n"), r.stderr
    assert "unencrypted" not in r.stderr
    assert json.loads(helper_store.read_text()) == {cncf_auth.host: {"Username": USER, "Secret": PASSWORD}}
    doc = json.loads((docker_config / "config.json").read_text())
    assert doc["auths"] == {cncf_auth.host: {}} and PASSWORD not in (docker_config / "config.json").read_text()

    name = f"{cncf_auth.host}/helper/bb:1"
    cli("tag", "busybox", name, check=True)
    assert cli("push", "-q", name).returncode == 0
    log = (helper_store.parent / (helper_store.name + ".log")).read_text()
    assert f"get {cncf_auth.host}" in log

    assert cli("logout", cncf_auth.host).returncode == 0
    assert json.loads(helper_store.read_text()) == {}
    assert json.loads((docker_config / "config.json").read_text())["auths"] == {}


def test_missing_helper_is_one_clear_line(cli, cncf_auth, docker_config, monkeypatch):
    docker_config.mkdir()
    (docker_config / "config.json").write_text(json.dumps({"credsStore": "nonexistent-helper"}))
    r = cli("pull", f"{cncf_auth.host}/x/y:1")
    assert r.returncode == 1
    assert "docker-credential-nonexistent-helper not found in $PATH" in r.stderr and r.stderr.count("\n") == 1


def test_config_location_and_hub_key(tmp_path, monkeypatch):
    """DOCKYARD_CONFIG wins over DOCKER_CONFIG; Docker Hub's credentials use docker's legacy key."""
    from dockyard.distribution.credentials import Credentials, CredentialStore

    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    monkeypatch.setenv("DOCKYARD_CONFIG", str(tmp_path / "dockyard"))
    store = CredentialStore()
    assert store.path == tmp_path / "dockyard" / "config.json"
    store.store("docker.io", Credentials("bob", "pw"))
    assert json.loads(store.path.read_text()) == {"auths": {"https://index.docker.io/v1/": {"auth": _b64("bob", "pw")}}}
    assert store.get("docker.io") == Credentials("bob", "pw")
    assert store.get("localhost:5000") is None
    assert store.erase("docker.io") and not store.erase("docker.io")


def test_global_config_flag(cli, cncf_auth, docker_config, tmp_path):
    where = tmp_path / "elsewhere"
    r = cli("--config", str(where), "login", "-u", USER, "--password-stdin", cncf_auth.host, input=PASSWORD)
    assert r.returncode == 0, r.stderr
    assert json.loads((where / "config.json").read_text())["auths"] == {cncf_auth.host: {"auth": _b64(USER, PASSWORD)}}
    assert not (docker_config / "config.json").exists()
