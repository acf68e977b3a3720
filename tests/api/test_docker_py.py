"""docker-py (``pip install docker``) against ``dockyard system service``."""
from __future__ import annotations

import io
import tarfile
import time

import pytest

from .helpers import need_dockerpy

pytestmark = [pytest.mark.interop, need_dockerpy]


@pytest.fixture
def dc(api):
    client = api.dockerpy()
    yield client
    client.close()


def test_negotiates_the_api_version(dc) -> None:
    assert dc.api.api_version == "1.43"
    assert dc.version()["ApiVersion"] == "1.43"
    assert dc.ping() is True


def test_run_attached_returns_output_or_raises(dc) -> None:
    import docker

    out = dc.containers.run("busybox", ["sh", "-c", "echo hello; echo err >&2"], network_mode="none", remove=True)
    assert out == b"hello\n"
    with pytest.raises(docker.errors.ContainerError) as exc:
        dc.containers.run("busybox", ["sh", "-c", "exit 3"], network_mode="none", remove=True)
    assert exc.value.exit_status == 3
    assert dc.containers.list(all=True) == []


def test_run_detached_logs_exec_wait(dc) -> None:
    c = dc.containers.run("busybox", ["sh", "-c", "echo one; echo two >&2; sleep 30"], detach=True,
                          network_mode="none", name="pyrun", labels={"suite": "api"})
    c.reload()  # docker-py's object is the one create returned
    assert c.name == "pyrun" and c.status == "running"
    deadline = time.monotonic() + 10
    while c.logs() != b"one\ntwo\n" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert c.logs(stderr=False) == b"one\n"
    assert c.logs(stdout=False) == b"two\n"
    assert c.attach(logs=True, stream=False) == b"one\ntwo\n"
    res = c.exec_run(["sh", "-c", "echo ex; echo ee >&2; exit 2"])
    assert res.exit_code == 2 and res.output == b"ex\nee\n"
    res = c.exec_run(["sh", "-c", "echo o; echo e >&2"], demux=True)
    assert res.exit_code == 0 and res.output == (b"o\n", b"e\n")
    res = c.exec_run("env", environment={"FROM_PY": "1"}, workdir="/tmp")
    assert b"FROM_PY=1" in res.output
    assert [x.id for x in dc.containers.list(filters={"label": "suite=api"})] == [c.id]
    c.kill()
    assert c.wait(timeout=30) == {"Error": None, "StatusCode": 137}
    c.reload()
    assert c.status == "exited"
    c.remove()


def test_wait_returns_the_exit_code(dc) -> None:
    c = dc.containers.create("busybox", ["sh", "-c", "exit 4"], network_mode="none")
    c.start()
    assert c.wait()["StatusCode"] == 4
    c.remove()


def test_images_list_and_build(dc) -> None:
    assert [i.tags for i in dc.images.list()] == [["busybox:latest"]]
    ctx = io.BytesIO()
    with tarfile.open(fileobj=ctx, mode="w") as tf:
        for name, data in (("Dockerfile", b"FROM busybox\nCOPY f /f\nRUN echo built >> /f\nLABEL from=py\n"),
                           ("f", b"context\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    ctx.seek(0)
    image, logs = dc.images.build(fileobj=ctx, custom_context=True, tag="pybuilt:1")
    assert image.tags == ["pybuilt:1"] and image.labels == {"from": "py"}
    assert any("Successfully built" in chunk.get("stream", "") for chunk in logs)
    out = dc.containers.run("pybuilt:1", ["cat", "/f"], network_mode="none", remove=True)
    assert out == b"context\nbuilt\n"
    dc.images.remove("pybuilt:1")
    assert [i.tags for i in dc.images.list()] == [["busybox:latest"]]


def test_volumes(dc) -> None:
    v = dc.volumes.create("pyvol", labels={"a": "b"})
    assert v.name == "pyvol" and v.attrs["Labels"] == {"a": "b"}
    assert [x.name for x in dc.volumes.list()] == ["pyvol"]
    assert dc.volumes.get("pyvol").attrs["Driver"] == "local"
    v.remove()
    assert dc.volumes.list() == []


def test_networks(dc) -> None:
    n = dc.networks.create("pynet", labels={"a": "b"})
    try:
        assert n.name == "pynet" and dc.networks.get(n.id).attrs["Labels"] == {"a": "b"}
        assert {"bridge", "host", "none", "pynet"} == {x.name for x in dc.networks.list()}
    finally:
        n.remove()
    assert "pynet" not in {x.name for x in dc.networks.list()}


def test_errors_map_to_docker_py_exceptions(dc) -> None:
    import docker

    with pytest.raises(docker.errors.NotFound):
        dc.containers.get("nosuch")
    with pytest.raises(docker.errors.ImageNotFound):
        dc.images.get("nosuch:1")
    dc.containers.create("busybox", "true", name="dup", network_mode="none")
    with pytest.raises(docker.errors.APIError) as exc:
        dc.containers.create("busybox", "true", name="dup", network_mode="none")
    assert exc.value.status_code == 409


def test_image_save_and_load(dc) -> None:
    dc.images.get("busybox").tag("pysaved", "1")
    data = b"".join(dc.images.get("pysaved:1").save(named="pysaved:1"))
    assert len(data) > 100_000
    dc.images.remove("pysaved:1")
    loaded = dc.images.load(data)
    assert len(loaded) == 1 and "pysaved:1" in loaded[0].tags  # the same image as busybox
    dc.images.remove("pysaved:1")
