"""The wire protocol, with raw HTTP on the socket: negotiation headers, versioned paths, docker's
JSON errors and status codes, request bodies (chunked), keep-alive, hijacked exec streams, events."""
from __future__ import annotations

import json
import os
import socket
import stat
import threading
import time

from .helpers import UnixHTTPConnection, read_frames, split_frames


def test_socket_is_0660(api) -> None:
    mode = os.stat(api.sock).st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o660


def test_ping_negotiates_the_api_version(api) -> None:
    for method in ("GET", "HEAD"):
        status, headers, body = api.request(method, "/_ping")
        assert status == 200
        assert headers["api-version"] == "1.43"
        assert headers["ostype"] == "linux"
        assert headers["server"].startswith("Dockyard/")
        assert body == (b"OK" if method == "GET" else b"")


def test_version_document(api) -> None:
    status, _, body = api.request("GET", "/version")
    doc = json.loads(body)
    assert status == 200
    assert doc["ApiVersion"] == "1.43" and doc["MinAPIVersion"] == "1.24"
    assert doc["Os"] == "linux" and doc["Components"][0]["Name"] == "Engine"


def test_versioned_and_unversioned_paths_answer_alike(api) -> None:
    docs = [json.loads(api.request("GET", p + "/images/json")[2]) for p in ("", "/v1.41", "/v1.43")]
    assert docs[0] == docs[1] == docs[2]
    assert [t for i in docs[0] for t in i["RepoTags"]] == ["busybox:latest"]


def test_versions_outside_the_range_are_refused(api) -> None:
    status, _, body = api.request("GET", "/v1.50/info")
    assert status == 400
    assert json.loads(body) == {"message": "client version 1.50 is too new. Maximum supported API version is 1.43"}
    status, _, body = api.request("GET", "/v1.12/info")
    assert status == 400 and "too old" in json.loads(body)["message"]


def test_errors_are_docker_json_with_docker_status_codes(api) -> None:
    status, headers, body = api.request("GET", "/containers/nosuch/json")
    assert (status, json.loads(body)) == (404, {"message": "No such container: nosuch"})
    assert headers["content-type"] == "application/json"
    status, _, body = api.request("GET", "/images/nosuch:1/json")
    assert (status, json.loads(body)) == (404, {"message": "no such image: nosuch:1: No such image: nosuch:1"})  # dockerd 20.10
    status, _, body = api.request("POST", "/containers/create", {"Image": "nosuch"})
    assert status == 404 and json.loads(body)["message"] == "No such image: nosuch:latest"
    status, _, body = api.request("POST", "/containers/create", b"{bad json", {"Content-Type": "application/json"})
    assert status == 400
    status, _, body = api.request("GET", "/containers/json?filters=" + "%7B%22nosuch%22%3A%5B%22x%22%5D%7D")
    assert status == 400 and "nosuch" in json.loads(body)["message"]
    status, _, body = api.request("GET", "/no/such/endpoint")
    assert status == 404 and json.loads(body) == {"message": "page not found"}


def test_name_conflict_is_409(api) -> None:
    body = {"Image": "busybox", "Cmd": ["true"], "HostConfig": {"NetworkMode": "none"}}
    assert api.request("POST", "/containers/create?name=twice", body)[0] == 201
    status, _, data = api.request("POST", "/containers/create?name=twice", body)
    assert status == 409 and 'The container name "/twice" is already in use' in json.loads(data)["message"]


def _create_running(api, *cmd: str) -> str:
    status, _, body = api.request("POST", "/containers/create", {
        "Image": "busybox", "Cmd": list(cmd or ("sleep", "60")), "HostConfig": {"NetworkMode": "none"}})
    assert status == 201, body
    cid = json.loads(body)["Id"]
    assert api.request("POST", f"/containers/{cid}/start")[0] == 204
    return cid


def test_keep_alive_serves_several_requests_on_one_connection(api) -> None:

    conn = UnixHTTPConnection(str(api.sock))
    try:
        for _ in range(3):
            conn.request("GET", "/v1.43/containers/json")
            resp = conn.getresponse()
            assert resp.status == 200 and json.loads(resp.read()) == []
    finally:
        conn.close()


def test_docker_ps_round_trip_is_fast(api) -> None:
    _create_running(api)
    api.request("GET", "/containers/json")  # warm
    took = []
    for _ in range(5):
        t = time.perf_counter()
        assert api.request("GET", "/containers/json")[0] == 200
        took.append(time.perf_counter() - t)
    assert min(took) < 0.05, took


def test_chunked_body_and_archive_round_trip(api) -> None:
    """PUT /archive with a chunked tar (as docker cp sends it), then GET it back with its stat."""
    import base64
    import io
    import tarfile


    cid = _create_running(api)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        data = b"hello from the api\n"
        info = tarfile.TarInfo("greeting.txt")
        info.size, info.mode = len(data), 0o640
        tf.addfile(info, io.BytesIO(data))
    payload = buf.getvalue()
    conn = UnixHTTPConnection(str(api.sock))
    try:
        conn.putrequest("PUT", f"/v1.43/containers/{cid}/archive?path=/tmp")
        conn.putheader("Transfer-Encoding", "chunked")
        conn.putheader("Content-Type", "application/x-tar")
        conn.endheaders()
        for i in range(0, len(payload), 1000):
            piece = payload[i:i + 1000]
            conn.send(b"%x\r\n%b\r\n" % (len(piece), piece))
        conn.send(b"0\r\n\r\n")
        resp = conn.getresponse()
        assert resp.status == 200, resp.read()
        resp.read()
    finally:
        conn.close()
    status, headers, _ = api.request("HEAD", f"/containers/{cid}/archive?path=/tmp/greeting.txt")
    assert status == 200
    st = json.loads(base64.b64decode(headers["x-docker-container-path-stat"]))
    assert st["name"] == "greeting.txt" and st["size"] == len(data) and st["mode"] == 0o640
    status, headers, body = api.request("GET", f"/containers/{cid}/archive?path=/tmp/greeting.txt")
    assert status == 200 and headers["content-type"] == "application/x-tar"
    with tarfile.open(fileobj=io.BytesIO(body)) as tf:
        assert tf.extractfile("greeting.txt").read() == data
    status, _, body = api.request("HEAD", f"/containers/{cid}/archive?path=/nonexistent")
    assert status == 404
    status, headers, _ = api.request("HEAD", f"/containers/{cid}/archive?path=/tmp")
    assert json.loads(base64.b64decode(headers["x-docker-container-path-stat"]))["mode"] & (1 << 31)  # a dir


def _hijack(api, path: str, body: dict) -> tuple[socket.socket, bytes]:
    """POST with Upgrade: tcp; the socket after the 101 headers, and the bytes read past them."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(str(api.sock))
    data = json.dumps(body).encode()
    s.sendall(f"POST {path} HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
              f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data)
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        assert chunk, buf
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return s, rest


def test_exec_is_hijacked_and_multiplexed_without_tty(api) -> None:
    cid = _create_running(api)
    status, _, body = api.request("POST", f"/containers/{cid}/exec", {
        "Cmd": ["sh", "-c", "echo out; echo err >&2; read line; echo got:$line; exit 7"],
        "AttachStdin": True, "AttachStdout": True, "AttachStderr": True})
    assert status == 201
    exec_id = json.loads(body)["Id"]
    s, rest = _hijack(api, f"/v1.43/exec/{exec_id}/start", {"Detach": False, "Tty": False})
    s.sendall(b"typed\n")
    s.shutdown(socket.SHUT_WR)
    frames = read_frames(s, rest)
    s.close()
    out = b"".join(d for k, d in frames if k == 1)
    err = b"".join(d for k, d in frames if k == 2)
    assert out == b"out\ngot:typed\n" and err == b"err\n"
    doc = json.loads(api.request("GET", f"/exec/{exec_id}/json")[2])
    assert doc["ExitCode"] == 7 and doc["Running"] is False and doc["ContainerID"] == cid


def test_exec_with_tty_is_one_raw_stream(api) -> None:
    cid = _create_running(api)
    exec_id = json.loads(api.request("POST", f"/containers/{cid}/exec", {
        "Cmd": ["sh", "-c", "tty; echo err >&2"], "AttachStdout": True, "AttachStderr": True, "Tty": True})[2])["Id"]
    s, rest = _hijack(api, f"/v1.43/exec/{exec_id}/start", {"Detach": False, "Tty": True})
    data = rest
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    assert data.replace(b"\r\n", b"\n") == b"/dev/pts/0\nerr\n"
    assert json.loads(api.request("GET", f"/exec/{exec_id}/json")[2])["ExitCode"] == 0


def test_exec_of_a_missing_command_reports_126_like_dockerd(api) -> None:
    cid = _create_running(api)
    exec_id = json.loads(api.request("POST", f"/containers/{cid}/exec", {
        "Cmd": ["no-such-command"], "AttachStdout": True, "AttachStderr": True})[2])["Id"]
    s, rest = _hijack(api, f"/v1.43/exec/{exec_id}/start", {"Detach": False, "Tty": False})
    frames = read_frames(s, rest)
    s.close()
    assert b'exec: "no-such-command": executable file not found in $PATH' in b"".join(d for _, d in frames)
    assert json.loads(api.request("GET", f"/exec/{exec_id}/json")[2])["ExitCode"] == 126


def test_exec_on_a_stopped_container_is_409(api) -> None:
    status, _, body = api.request("POST", "/containers/create", {"Image": "busybox", "Cmd": ["true"],
                                                                 "HostConfig": {"NetworkMode": "none"}})
    cid = json.loads(body)["Id"]
    status, _, body = api.request("POST", f"/containers/{cid}/exec", {"Cmd": ["true"]})
    assert status == 409 and "is not running" in json.loads(body)["message"]


def test_attach_before_start_sees_all_output_and_wait_gets_the_code(api) -> None:
    """docker run's order: create, attach (hijacked), wait (headers at once), start."""
    status, _, body = api.request("POST", "/containers/create", {
        "Image": "busybox", "Cmd": ["sh", "-c", "echo first; echo second >&2; exit 3"],
        "AttachStdout": True, "AttachStderr": True, "HostConfig": {"NetworkMode": "none"}})
    cid = json.loads(body)["Id"]
    s, rest = _hijack(api, f"/v1.43/containers/{cid}/attach?stream=1&stdout=1&stderr=1", {})
    result: dict = {}
    waiter = threading.Thread(target=lambda: result.update(
        w=api.request("POST", f"/containers/{cid}/wait?condition=next-exit")))
    waiter.start()
    time.sleep(0.2)
    assert api.request("POST", f"/containers/{cid}/start")[0] == 204
    frames = read_frames(s, rest)
    s.close()
    assert frames == [(1, b"first\n"), (2, b"second\n")]
    waiter.join(30)
    status, _, body = result["w"]
    assert status == 200 and json.loads(body) == {"Error": None, "StatusCode": 3}


def test_start_of_a_running_container_is_304(api) -> None:
    cid = _create_running(api)
    assert api.request("POST", f"/containers/{cid}/start")[0] == 304
    assert api.request("POST", f"/containers/{cid}/stop?t=0")[0] == 204
    assert api.request("POST", f"/containers/{cid}/stop?t=0")[0] == 304


def test_logs_are_multiplexed_and_filtered(api) -> None:
    cid = _create_running(api, "sh", "-c", "echo a; echo b >&2")
    api.request("POST", f"/containers/{cid}/wait")
    status, headers, body = api.request("GET", f"/containers/{cid}/logs?stdout=1&stderr=1")
    assert status == 200 and headers["content-type"] == "application/vnd.docker.multiplexed-stream"
    assert split_frames(body) == [(1, b"a\n"), (2, b"b\n")]
    assert split_frames(api.request("GET", f"/containers/{cid}/logs?stderr=1")[2]) == [(2, b"b\n")]
    status, _, body = api.request("GET", f"/containers/{cid}/logs")
    assert status == 400 and "choose at least one stream" in json.loads(body)["message"]


def test_events_stream_what_the_server_does(api) -> None:
    since = time.time()
    cid = _create_running(api, "true")
    api.request("POST", f"/containers/{cid}/wait")
    deadline = time.monotonic() + 10
    actions: list[str] = []
    while time.monotonic() < deadline and "die" not in actions:
        until = time.time() + 0.5
        status, _, body = api.request("GET", f"/events?since={since:.9f}&until={until:.9f}")
        assert status == 200
        events = [json.loads(line) for line in body.splitlines() if line.strip()]
        actions = [e["Action"] for e in events if e["Actor"]["ID"] == cid]
    assert actions[:3] == ["create", "start", "die"]
    die = next(e for e in events if e["Action"] == "die")
    assert die["Actor"]["Attributes"]["exitCode"] == "0" and die["Type"] == "container"
    assert api.request("DELETE", f"/containers/{cid}")[0] == 204
    body = api.request("GET", f"/events?since={since:.9f}&until={time.time():.9f}&filters="
                              '%7B%22event%22%3A%5B%22destroy%22%5D%7D')[2]
    assert [json.loads(line)["Actor"]["ID"] for line in body.splitlines() if line.strip()] == [cid]


def test_resize_of_a_container_and_of_an_exec_tty(api) -> None:
    status, _, body = api.request("POST", "/containers/create", {
        "Image": "busybox", "Cmd": ["sh", "-c", "sleep 1; stty size; sleep 60"], "Tty": True,
        "HostConfig": {"NetworkMode": "none"}})
    cid = json.loads(body)["Id"]
    assert api.request("POST", f"/containers/{cid}/start")[0] == 204
    assert api.request("POST", f"/containers/{cid}/resize?h=40&w=120")[0] == 200
    exec_id = json.loads(api.request("POST", f"/containers/{cid}/exec", {
        "Cmd": ["sh", "-c", "sleep 0.5; stty size"], "AttachStdout": True, "Tty": True})[2])["Id"]
    s, rest = _hijack(api, f"/v1.43/exec/{exec_id}/start", {"Detach": False, "Tty": True})
    time.sleep(0.1)
    assert api.request("POST", f"/exec/{exec_id}/resize?h=33&w=77")[0] == 200
    data = rest
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    assert data.strip() == b"33 77"
    deadline = time.monotonic() + 10
    logs = b""
    while b"40 120" not in logs and time.monotonic() < deadline:
        time.sleep(0.1)
        logs = api.request("GET", f"/containers/{cid}/logs?stdout=1")[2]
    assert logs.strip() == b"40 120"  # a TTY container's logs are one raw stream
    status, _, body = api.request("POST", "/exec/nosuch/resize?h=1&w=1")
    assert status == 404 and json.loads(body) == {"message": "No such exec instance: nosuch"}
