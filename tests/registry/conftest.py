"""Registry test fixtures: real servers on free loopback ports (filesystem or S3 storage)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import requests

from dockyard.registry import config as cfgmod
from dockyard.registry.server import RegistryServer

from .helpers import Reg, free_port


@pytest.fixture
def start_registry(tmp_path: Path) -> Iterator[Callable[..., Reg]]:
    """Start registries from config dicts (storage defaults to a temp dir); stopped at teardown."""
    servers: list[RegistryServer] = []

    def start(doc: dict | None = None, **overrides: Any) -> Reg:
        doc = json.loads(json.dumps(doc or {}))
        doc.setdefault("http", {}).setdefault("addr", "127.0.0.1:0")
        doc.setdefault("log", {}).setdefault("access", str(tmp_path / f"access{len(servers)}.log"))
        storage = doc.setdefault("storage", {})
        if "s3" not in storage:
            storage.setdefault("filesystem", {}).setdefault("rootdirectory", str(tmp_path / f"data{len(servers)}"))
        cfg = cfgmod.from_dict(doc, tmp_path)
        for k, v in overrides.items():
            setattr(cfg, k, v)
        server = RegistryServer(cfg).start()
        servers.append(server)
        return Reg(server)

    yield start
    for s in servers:
        s.stop()


@pytest.fixture
def reg(start_registry: Callable[..., Reg]) -> Reg:
    """An open registry (no auth) on loopback."""
    return start_registry()


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real S3 HTTP server (moto) on a free port, for the S3 backend's tests."""
    exe = shutil.which("moto_server") or str(Path(os.sys.executable).parent / "moto_server")
    if not os.path.exists(exe):
        pytest.skip("moto_server is not installed (pip install 'moto[server]'): no S3 peer to test against")
    port = free_port()
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "w")
    proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            requests.get(url, timeout=1)
            break
        except requests.ConnectionError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("moto_server did not start")
    yield url
    proc.terminate()
    proc.wait(timeout=10)
    log.close()
