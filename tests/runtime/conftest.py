"""Fixtures for the runtime suite: a busybox rootfs under an overlay, bundles made by our spec
generator, and a monitor stand-in (``harness.py``) per runtime: builtin, runc and crun."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any, Iterator

import pytest

from dockyard.runtime import cgroups, linux
from dockyard.runtime.spec import ContainerSpecOptions, generate_spec, write_bundle

HERE = Path(__file__).resolve().parent
RUNTIMES = [
    pytest.param("builtin", id="builtin"),
    pytest.param("runc", id="runc", marks=[pytest.mark.interop, pytest.mark.skipif(
        shutil.which("runc") is None, reason="runc is not installed (apt-get install runc)")]),
    pytest.param("crun", id="crun", marks=[pytest.mark.interop, pytest.mark.skipif(
        shutil.which("crun") is None, reason="crun is not installed (apt-get install crun)")]),
]

if os.geteuid() != 0:  # pragma: no cover - the whole suite needs root
    pytest.skip("the runtime tests need root", allow_module_level=True)


@pytest.fixture(scope="session")
def busybox_lower(busybox_tar: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The busybox rootfs extracted once: the read-only lower layer of every test's overlay."""
    lower = tmp_path_factory.mktemp("busybox-lower")
    with tarfile.open(busybox_tar) as tf:
        tf.extractall(lower, filter="fully_trusted")
    return lower


class Bundle:
    """An OCI bundle whose rootfs is an overlay (busybox lower + a private upper) on the host."""

    def __init__(self, path: Path, lower: Path) -> None:
        self.path = path
        self.rootfs = path / "rootfs"
        for d in ("upper", "work", "rootfs"):
            (path / d).mkdir(parents=True)
        linux.mount("overlay", str(self.rootfs), "overlay", 0,
                    f"lowerdir={lower},upperdir={path / 'upper'},workdir={path / 'work'}")
        self.files = path / "files"
        self.files.mkdir()
        (self.files / "hosts").write_text("127.0.0.1\tlocalhost\n10.1.2.3\tctr\n")
        (self.files / "hostname").write_text("ctr\n")
        (self.files / "resolv.conf").write_text("nameserver 10.0.0.53\n")

    def write(self, container_id: str, args: list[str], **options: Any) -> dict[str, Any]:
        opts = ContainerSpecOptions(container_id=container_id, args=args, rootfs=str(self.rootfs),
                                    env=options.pop("env", ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]),
                                    hostname=options.pop("hostname", "ctr"),
                                    hosts_path=str(self.files / "hosts"),
                                    hostname_path=str(self.files / "hostname"),
                                    resolv_conf_path=str(self.files / "resolv.conf"), **options)
        spec = generate_spec(opts)
        write_bundle(self.path, spec)
        return spec

    def close(self) -> None:
        try:
            linux.umount2(str(self.rootfs), 0)
        except OSError:
            linux.umount2(str(self.rootfs), linux.MNT_DETACH)


@pytest.fixture
def bundle(busybox_lower: Path, tmp_path: Path) -> Iterator[Bundle]:
    b = Bundle(tmp_path / "bundle", busybox_lower)
    yield b
    b.close()


class Monitor:
    """Client of harness.py: every call is one runtime operation done by the monitor stand-in."""

    def __init__(self, runtime: str, workdir: Path) -> None:
        self.runtime = runtime
        self.workdir = workdir
        self.state_dir = workdir / "state"
        self.proc = subprocess.Popen([sys.executable, str(HERE / "harness.py"), runtime, str(self.state_dir)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=str(workdir))
        self.ids: set[str] = set()
        self.cgroup_paths: set[str] = set()

    def call(self, op: str, **kw: Any) -> Any:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps({"op": op, **kw}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"harness died (exit {self.proc.wait()})")
        reply = json.loads(line)
        if not reply["ok"]:
            raise HarnessError(reply["type"], reply["message"], reply["exit_code"])
        return reply["result"]

    def out(self, name: str) -> Path:
        return self.workdir / name

    def create(self, container_id: str, bundle: Bundle, console: bool = False, stdin: str | None = None) -> int:
        self.ids.add(container_id)
        cfg = json.loads((bundle.path / "config.json").read_text())
        self.cgroup_paths.add(cfg["linux"]["cgroupsPath"])
        return self.call("create", id=container_id, bundle=str(bundle.path), stdin=stdin, key=container_id,
                         stdout=str(self.out(f"{container_id}.out")), stderr=str(self.out(f"{container_id}.err")),
                         console=console)

    def run(self, container_id: str, bundle: Bundle, timeout: float = 20) -> tuple[int | None, str, str]:
        """create + start + wait + delete; (exit code, stdout, stderr)."""
        pid = self.create(container_id, bundle)
        self.call("start", id=container_id)
        code = self.call("wait", pid=pid, timeout=timeout)
        self.call("delete", id=container_id, force=code is None)
        return code, self.read(f"{container_id}.out"), self.read(f"{container_id}.err")

    def exec(self, container_id: str, process: dict[str, Any], key: str, console: bool = False) -> int:
        return self.call("exec", id=container_id, process=process, key=key, console=console,
                         stdout=str(self.out(f"{key}.out")), stderr=str(self.out(f"{key}.err")))

    def read(self, name: str) -> str:
        p = self.out(name)
        return p.read_text() if p.exists() else ""

    def close(self) -> None:
        for cid in self.ids:
            try:
                self.call("delete", id=cid, force=True)
            except HarnessError:
                pass
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for path in self.cgroup_paths:
            cgroups.remove(path, timeout=1)


class HarnessError(Exception):
    def __init__(self, kind: str, message: str, exit_code: int | None) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message
        self.exit_code = exit_code


@pytest.fixture(params=RUNTIMES)
def monitor(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Monitor]:
    work = tmp_path / "monitor"
    work.mkdir()
    m = Monitor(request.param, work)
    yield m
    m.close()
