"""``dockyard system service`` as a daemon: restoring containers at start (as after a reboot),
graceful shutdown that leaves containers running, the idle timeout, refusing a busy socket."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from .conftest import _remove_containers, assert_no_leaks
from .helpers import REPO, ApiService, make_service


@pytest.fixture
def svc(tmp_path: Path, busybox_tar: Path) -> Iterator[ApiService]:
    """A service of this test's own (the test starts and stops it)."""
    s = make_service(tmp_path, busybox_tar)
    try:
        yield s
    finally:
        if s.proc is not None and s.proc.poll() is None:
            s.stop()
        assert_no_leaks(s.root, _remove_containers(s.root))


def _run(s: ApiService, name: str, policy: str = "no", *cmd: str) -> str:
    status, _, body = s.request("POST", f"/containers/create?name={name}", {
        "Image": "busybox", "Cmd": list(cmd or ("sleep", "600")),
        "HostConfig": {"NetworkMode": "none", "RestartPolicy": {"Name": policy}}})
    assert status == 201, body
    cid = json.loads(body)["Id"]
    assert s.request("POST", f"/containers/{cid}/start")[0] == 204
    return cid


def _state(s: ApiService, ref: str) -> dict:
    status, _, body = s.request("GET", f"/containers/{ref}/json")
    assert status == 200, body
    return json.loads(body)["State"]


def _kill_like_a_reboot(root: Path) -> None:
    """kill -9 every monitor and container process (what a reboot leaves: nothing)."""
    for state_file in (root / "containers").glob("*/state.json"):
        st = json.loads(state_file.read_text())
        for key in ("MonitorPid", "Pid"):
            pid = int(st.get(key) or 0)
            if pid:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def test_restart_policies_bring_containers_back_when_the_service_starts(svc: ApiService) -> None:
    svc.start()
    always = _run(svc, "always", "always")
    unless = _run(svc, "unless", "unless-stopped")
    _run(svc, "stopped", "unless-stopped")
    plain = _run(svc, "plain", "no")
    assert svc.request("POST", "/containers/stopped/stop?t=0")[0] == 204
    old_pids = {c: _state(svc, c)["Pid"] for c in (always, unless)}
    assert svc.stop() == 0
    _kill_like_a_reboot(svc.root)
    restarted_at = time.time()  # the journal keeps the first run's events too
    svc.start()
    for cid in (always, unless):
        st = _state(svc, cid)
        assert st["Status"] == "running" and st["Pid"] != old_pids[cid]
    assert _state(svc, "stopped")["Status"] == "exited"
    st = _state(svc, plain)
    assert st["Status"] == "exited" and st["ExitCode"] == 255 and "monitor" in st["Error"]
    assert "restored 2 container(s)" in svc.log.read_text()
    body = svc.request("GET", f"/events?since={restarted_at:.3f}&until={time.time():.3f}")[2]
    started = {json.loads(line)["Actor"]["ID"] for line in body.splitlines() if b'"start"' in line}
    assert started == {always, unless}
    out = svc.request("POST", f"/containers/{always}/exec", {"Cmd": ["true"]})
    assert out[0] == 201  # really running: exec is accepted


def test_sigterm_stops_the_server_and_leaves_containers_running(svc: ApiService) -> None:
    svc.start()
    cid = _run(svc, "survivor")
    pid = _state(svc, cid)["Pid"]
    assert svc.stop() == 0
    assert not svc.sock.exists()
    os.kill(pid, 0)  # still there
    from dockyard import Client

    with Client(svc.root) as c:
        assert c.containers.get(cid).status == "running"


def test_idle_timeout_stops_the_server(svc: ApiService) -> None:
    svc.start("--timeout", "1")
    assert svc.request("GET", "/_ping")[0] == 200
    assert svc.proc is not None
    assert svc.proc.wait(10) == 0
    assert not svc.sock.exists()
    assert "no request for 1s" in svc.log.read_text()


def test_a_socket_in_use_is_refused(svc: ApiService) -> None:
    svc.start()
    env = dict(os.environ, DOCKYARD_ROOT=str(svc.root))
    proc = subprocess.run([sys.executable, "-m", "dockyard", "system", "service", "-H", svc.host],
                          capture_output=True, text=True, timeout=30, env=env, cwd=str(REPO))
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"Error: another server is listening on {svc.sock}"
    assert svc.request("GET", "/_ping")[0] == 200  # the first one is untouched


def test_only_unix_sockets_are_served(svc: ApiService) -> None:
    env = dict(os.environ, DOCKYARD_ROOT=str(svc.root))
    proc = subprocess.run([sys.executable, "-m", "dockyard", "system", "service", "-H", "tcp://127.0.0.1:2375"],
                          capture_output=True, text=True, timeout=30, env=env, cwd=str(REPO))
    assert proc.returncode == 1
    assert "only unix sockets are served" in proc.stderr


def test_a_stale_socket_file_is_replaced(svc: ApiService) -> None:
    import socket

    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(svc.sock))
    stale.close()  # the file stays, nobody listens: a server that died
    svc.start()
    assert svc.request("GET", "/_ping")[0] == 200
