"""Engine fixtures: the CLI on a busybox root, the runtime matrix, and a leak check after every test.

``dy(...)`` runs ``python -m dockyard`` (``--network none`` unless a test asks otherwise, so
the suite does not depend on bridge networking) and returns the CompletedProcess. The leak check
removes every container the test left, then fails the test if anything of the root survives:
a mount under the root, a process holding a file of the root open (a monitor), a cgroup of one
of its containers, or runtime state.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

RUNTIMES = ("builtin", "runc", "crun")


@pytest.fixture(params=RUNTIMES)
def runtime(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test once per OCI runtime (the built-in one, runc, crun)."""
    name = request.param
    if name != "builtin" and shutil.which(name) is None:
        pytest.skip(f"{name} is not installed (apt-get install {name})")
    monkeypatch.setenv("DOCKYARD_RUNTIME", name)
    return name


class Dy:
    """The CLI on the test's root, with helpers for what tests keep asking."""

    def __init__(self, cli: Callable[..., subprocess.CompletedProcess], root: Path) -> None:
        self._cli = cli
        self.root = root

    def __call__(self, *args: str, input: str | bytes | None = None, timeout: float = 60,
                 check: bool = False, text: bool = True) -> subprocess.CompletedProcess:
        return self._cli(*args, input=input, timeout=timeout, check=check, text=text)

    def ok(self, *args: str, **kw: Any) -> str:
        proc = self(*args, **kw)
        assert proc.returncode == 0, f"dockyard {' '.join(args)} exited {proc.returncode}: {proc.stderr}"
        return proc.stdout

    def run_d(self, *args: str) -> str:
        """``run -d --network none ARGS``; the container ID."""
        return self.ok("run", "-d", "--network", "none", *args).strip()

    def inspect(self, ref: str) -> dict[str, Any]:
        return json.loads(self.ok("container", "inspect", ref))[0]

    def state(self, ref: str) -> dict[str, Any]:
        return self.inspect(ref)["State"]

    def wait_for(self, ref: str, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10) -> dict[str, Any]:
        """Poll inspect until ``predicate(doc)``; the doc (AssertionError on timeout)."""
        deadline = time.monotonic() + timeout
        doc: dict[str, Any] = {}
        while time.monotonic() < deadline:
            doc = self.inspect(ref)
            if predicate(doc):
                return doc
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting on {ref}: {json.dumps(doc.get('State'), indent=1)}")


@pytest.fixture
def dy(cli, root: Path, busybox: str) -> Dy:
    return Dy(cli, root)


# ------------------------------------------------------------------------------------ leak check
def mounts_under(root: Path) -> list[str]:
    prefix = str(root)
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].replace("\\040", " ")
            if mp.startswith(prefix):
                out.append(mp)
    return out


def processes_using(root: Path) -> list[int]:
    """Processes with a file under ``root`` open (monitors, containers, stuck CLIs)."""
    prefix = str(root)
    found = []
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            for fd in os.listdir(f"/proc/{entry}/fd"):
                try:
                    if os.readlink(f"/proc/{entry}/fd/{fd}").startswith(prefix):
                        found.append(int(entry))
                        break
                except OSError:
                    continue
        except OSError:
            continue
    return found


def container_cgroups(ids: list[str]) -> list[str]:
    out = []
    base = Path("/sys/fs/cgroup")
    for hierarchy in base.iterdir():
        for cid in ids:
            p = hierarchy / "dockyard" / cid
            if p.exists():
                out.append(str(p))
    return out


def leaks(root: Path, ids: list[str]) -> list[str]:
    found = [f"mount {m}" for m in mounts_under(root)]
    found += [f"process {pid} ({Path(f'/proc/{pid}/comm').read_text().strip() if os.path.exists(f'/proc/{pid}/comm') else '?'})"
              for pid in processes_using(root)]
    found += [f"cgroup {c}" for c in container_cgroups(ids)]
    for rt in (root / "runtime").glob("*"):
        left = [p.name for p in rt.iterdir() if p.is_dir() and p.name in ids]
        found += [f"runtime state {rt.name}/{n}" for n in left]
    return found


@pytest.fixture(autouse=True)
def leak_check(request: pytest.FixtureRequest, root: Path) -> Iterator[None]:
    """After the test: remove its containers, then fail on anything they left behind."""
    yield
    containers = root / "containers"
    ids = [p.name for p in containers.iterdir() if len(p.name) == 64] if containers.is_dir() else []
    ids += [p.name.split("-", 1)[1] for p in containers.glob(".removing-*")] if containers.is_dir() else []
    if ids:
        from dockyard import Client

        with Client(root) as c:
            for cid in list(ids):
                try:
                    c.containers.remove(cid, force=True, volumes=True)
                except Exception:  # noqa: BLE001 - gone already
                    pass
    assert_nothing_left(root, ids)


def assert_nothing_left(root: Path, ids: list[str]) -> None:
    """Give exiting processes a moment, then fail on anything of ``root`` still on the host;
    whatever is found is killed and unmounted first, so one test's leak does not break the next."""
    deadline = time.monotonic() + 5
    found = leaks(root, ids)
    while found and time.monotonic() < deadline:
        time.sleep(0.1)
        found = leaks(root, ids)
    for pid in processes_using(root):  # do not let one test's leak break the next ones
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
    for m in reversed(mounts_under(root)):
        subprocess.run(["umount", "-l", m], capture_output=True)
    assert not found, "leaked: " + ", ".join(found)
