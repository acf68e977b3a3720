"""``dockyard system service`` on a test's root, for the engine tests that check what API clients
(docker-py, raw HTTP) see of the engine's work."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parents[2]


@contextmanager
def api_service(root: Path) -> Iterator[Path]:
    """The service's socket path while it runs (stopped with SIGTERM afterwards)."""
    sock_path = root / "api.sock"
    env = dict(os.environ, DOCKYARD_ROOT=str(root))
    server = subprocess.Popen([sys.executable, "-m", "dockyard", "system", "service", "-H", f"unix://{sock_path}",
                               "--timeout", "120"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env=env, cwd=REPO)
    try:
        deadline = time.monotonic() + 15
        while not sock_path.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sock_path.exists(), "the API service did not start"
        yield sock_path
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
