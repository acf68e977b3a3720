"""One harness for the side-by-side tests: run a command line in docker and in dockyard, compare
exit code, stdout and stderr once what must differ is normalised, and report every difference
of a test at once (a list of mismatches says more than the first one)."""
from __future__ import annotations

import re
import shlex
import subprocess
from typing import Any


def normalise_ids(text: str, docker: bool) -> str:
    """The program's name (not com.docker.* keys) and full or short IDs."""
    if docker:
        text = re.sub(r"(?<![.\w])docker(?![.\w])", "dockyard", text)
    text = re.sub(r"\b[0-9a-f]{64}\b", "<ID>", text)
    return re.sub(r"\b[0-9a-f]{12}\b", "<ID12>", text)


class SideBySide:
    """``cli`` runs dockyard on the test's root; ``subs`` replaces placeholders in command lines
    (``{P}``, ``{IMG}``, ...). Override :meth:`normalise` for what else differs by design."""

    def __init__(self, cli: Any, subs: dict[str, str]) -> None:
        self.cli = cli
        self.subs = subs
        self.diffs: list[str] = []

    def normalise(self, text: str, docker: bool) -> str:
        return normalise_ids(text, docker)

    def sub(self, line: str) -> list[str]:
        for key, value in self.subs.items():
            line = line.replace(key, value)
        return shlex.split(line)

    def docker(self, line: str) -> subprocess.CompletedProcess:
        return subprocess.run(["docker", *self.sub(line)], capture_output=True, text=True, timeout=60,
                              stdin=subprocess.DEVNULL)

    def ours(self, line: str) -> subprocess.CompletedProcess:
        return self.cli(*self.sub(line))

    def setup(self, line: str, code: int = 0) -> tuple[str, str]:
        """Both engines, no comparison (making what a case needs); (docker's, our) stdout."""
        theirs, mine = self.docker(line), self.ours(line)
        assert theirs.returncode == code, f"docker {line}: {theirs.stderr}"
        assert mine.returncode == code, f"dockyard {line}: {mine.stderr}"
        return theirs.stdout, mine.stdout

    def same(self, *lines: str, unordered: bool = False) -> None:
        """``unordered``: stdout's lines may come in any order (what docker orders by IDs)."""
        def out(text: str, docker: bool) -> str:
            text = self.normalise(text, docker)
            return "".join(sorted(text.splitlines(keepends=True))) if unordered else text

        for line in lines:
            theirs, mine = self.docker(line), self.ours(line)
            want = (theirs.returncode, out(theirs.stdout, True), self.normalise(theirs.stderr, True))
            got = (mine.returncode, out(mine.stdout, False), self.normalise(mine.stderr, False))
            if want != got:
                self.diffs.append(f"{line}\n  docker:   {want!r}\n  dockyard: {got!r}")

    def check(self) -> None:
        assert not self.diffs, f"{len(self.diffs)} differences:\n" + "\n".join(self.diffs)


def tag_busybox_in_both(cli: Any, docker_busybox: str, tag: str) -> None:
    """The same busybox rootfs under one name in both engines (skips without a docker daemon)."""
    import pytest

    from tests.conftest import docker_available

    if not docker_available():
        pytest.skip("docker CLI or daemon not available")
    subprocess.run(["docker", "tag", docker_busybox, f"{tag}:latest"], check=True, capture_output=True)
    cli("image", "tag", "busybox", f"{tag}:latest", check=True)
