#!/usr/bin/env python3
"""Container start latency: `run --rm busybox true`, beside docker, podman and the raw runtimes.

Command level (``--section commands``): the whole ``dockyard run --rm busybox true`` as a user
types it (the installed ``dockyard`` script, default networking and ``--network none``) and
``dockyard exec CONTAINER true``, beside ``docker``, ``podman --runtime crun`` (in a private
storage root) and the raw ``crun run``; medians, and ratios to docker and podman. Default
networking is each tool's bridge, already up as docker0 is (dockyard's comes up in the warm-up run
and stays up until ``network prune``); it adds one veth, one address and no firewall change per
container.

Runtime level (``--section runtime``): create + start + wait + delete of ``/bin/true``
on one OCI bundle (the busybox rootfs, with the spec our generator writes for ``docker run``),
median of N runs each:

  builtin          dockyard's built-in runtime, driven in-process as the engine's monitor does
  dockyard→crun    the same bundle through our crun wrapper (crun create + crun start + delete)
  dockyard→runc    the same through our runc wrapper
  crun run         the raw CLI in the foreground (its own create/start/wait/delete)
  runc run         the same for runc

The issue's reference points (whole `run --rm`): docker 0.29 s, podman+crun 0.34 s, raw
`crun run` 0.010 s; the built-in runtime's share must stay in the tens of milliseconds.

    .venv/bin/python bench/run_bench.py [--runs 30] [--section all|commands|runtime]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dockyard.runtime import Stdio, get_runtime, linux  # noqa: E402
from dockyard.runtime.cgroups import remove as remove_cgroup  # noqa: E402
from dockyard.runtime.spec import ContainerSpecOptions, generate_spec, write_bundle  # noqa: E402


def make_bundle(work: Path) -> Path:
    """A bundle over a busybox rootfs, with the spec ``docker run busybox true`` would get."""
    from dockyard.image.busybox import build_rootfs_tar

    tar = build_rootfs_tar(work / "busybox.tar")
    bundle = work / "bundle"
    rootfs = bundle / "rootfs"
    rootfs.mkdir(parents=True)
    with tarfile.open(tar) as tf:
        tf.extractall(rootfs, filter="fully_trusted")
    files = work / "files"
    files.mkdir()
    for name, text in (("hosts", "127.0.0.1\tlocalhost\n"), ("hostname", "bench\n"), ("resolv.conf", "")):
        (files / name).write_text(text)
    spec = generate_spec(ContainerSpecOptions(
        container_id="bench", args=["/bin/true"], env=["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], hostname="bench",
        rootfs=str(rootfs), hosts_path=str(files / "hosts"), hostname_path=str(files / "hostname"),
        resolv_conf_path=str(files / "resolv.conf")))
    write_bundle(bundle, spec)
    return bundle


def timed(runs: int, once: Callable[[int], None]) -> list[float]:
    once(-1)  # warm-up: page cache, first cgroup mkdirs
    samples = []
    for i in range(runs):
        t0 = time.perf_counter()
        once(i)
        samples.append(time.perf_counter() - t0)
    return samples


def via_runtime(name: str, bundle: Path, state: Path) -> Callable[[int], None]:
    """create + start + wait + delete through dockyard's Runtime interface (as the monitor does)."""
    runtime = get_runtime(name, state / name)

    def once(i: int) -> None:
        cid = f"bench-{name}-{i + 1}"
        pid = runtime.run(cid, bundle, Stdio())
        _, status = os.waitpid(pid, 0)
        runtime.delete(cid)
        assert os.waitstatus_to_exitcode(status) == 0, status

    return once


def raw_cli(binary: str, bundle: Path, state: Path) -> Callable[[int], None]:
    """The runtime's own foreground ``run`` (creates, starts, waits and deletes)."""
    root = state / f"raw-{os.path.basename(binary)}"

    def once(i: int) -> None:
        cid = f"raw-{os.path.basename(binary)}-{i + 1}"
        subprocess.run([binary, "--root", str(root), "run", "--bundle", str(bundle), cid],
                       stdin=subprocess.DEVNULL, check=True)

    return once


def report(rows: list[tuple[str, list[float]]]) -> None:
    base = dict(rows).get("crun run")
    print(f"{'runtime':<16}{'median':>10}{'p90':>10}{'min':>10}{'vs crun run':>14}")
    for label, samples in rows:
        med = statistics.median(samples)
        p90 = sorted(samples)[int(0.9 * (len(samples) - 1))]
        ratio = f"{med / statistics.median(base):.2f}x" if base else "-"
        print(f"{label:<16}{med * 1000:>8.1f}ms{p90 * 1000:>8.1f}ms{min(samples) * 1000:>8.1f}ms{ratio:>14}")


# ---------------------------------------------------------------------- whole commands
VENV_DOCKYARD = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "dockyard"
BENCH_IMAGE = "dockyard-bench/busybox:latest"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # as a user runs it: with cached bytecode
    return env


def command(argv: list[str]) -> Callable[[int], None]:
    env = _env()

    def once(i: int) -> None:
        subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, check=True, env=env)

    return once


class Peers:
    """The tools to compare with, each set up with the same busybox rootfs."""

    def __init__(self, work: Path) -> None:
        from dockyard.image.busybox import build_rootfs_tar

        self.work = work
        self.tar = build_rootfs_tar(work / "busybox-cmd.tar")
        self.dockyard = [str(VENV_DOCKYARD if VENV_DOCKYARD.exists() else shutil.which("dockyard")),
                         "--root", str(work / "dockyard-root")]
        subprocess.run([*self.dockyard, "image", "busybox", "busybox:latest"], check=True, env=_env(),
                       stdout=subprocess.DEVNULL)
        self.docker = self._docker()
        self.podman = self._podman()

    def _docker(self) -> list[str] | None:
        if shutil.which("docker") is None or subprocess.run(["docker", "info"], capture_output=True).returncode:
            return None
        subprocess.run(["docker", "import", "-c", 'CMD ["sh"]', str(self.tar), BENCH_IMAGE], check=True,
                       stdout=subprocess.DEVNULL)
        return ["docker"]

    def _podman(self) -> list[str] | None:
        if shutil.which("podman") is None or shutil.which("crun") is None:
            return None
        base = ["podman", "--root", str(self.work / "podman" / "root"), "--runroot", str(self.work / "podman" / "run"),
                "--runtime", "crun"]
        if subprocess.run([*base, "import", str(self.tar), BENCH_IMAGE], capture_output=True).returncode:
            return None
        return base

    def close(self) -> None:
        if self.docker:
            subprocess.run(["docker", "rm", "-f", "dockyard-bench-exec"], capture_output=True)
            subprocess.run(["docker", "rmi", BENCH_IMAGE], capture_output=True)
        if self.podman:
            subprocess.run([*self.podman, "rm", "-f", "-a"], capture_output=True)
        ids = subprocess.run([*self.dockyard, "ps", "-aq"], capture_output=True, text=True).stdout.split()
        if ids:
            subprocess.run([*self.dockyard, "rm", "-f", *ids], capture_output=True)
        # the default bridge stays up between containers (as docker0 does): take it down with
        # the bench's state root, as a user would with `network prune`
        subprocess.run([*self.dockyard, "network", "prune", "-f"], capture_output=True)


def commands_section(runs: int, work: Path, bundle: Path | None) -> None:
    peers = Peers(work)
    try:
        image = {"dockyard": "busybox", "docker": BENCH_IMAGE, "podman": BENCH_IMAGE}
        tools = [("dockyard", peers.dockyard), ("docker", peers.docker), ("podman+crun", peers.podman)]
        tools = [(n, t) for n, t in tools if t]
        run_rows: list[tuple[str, list[float]]] = []
        for net in ([], ["--network", "none"]):
            for name, base in tools:
                img = image[name.split("+")[0]]
                label = f"{name}{' --network none' if net else ''}"
                run_rows.append((label, timed(runs, command([*base, "run", "--rm", *net, img, "/bin/true"]))))
        crun = shutil.which("crun")
        if crun and bundle is not None:
            run_rows.append(("crun run (raw)", timed(runs, raw_cli(crun, bundle, work / "state"))))
        exec_rows: list[tuple[str, list[float]]] = []
        for name, base in tools:
            img = image[name.split("+")[0]]
            subprocess.run([*base, "run", "-d", "--network", "none", "--name", "dockyard-bench-exec", img,
                            "sleep", "3600"], check=True, stdout=subprocess.DEVNULL, env=_env())
            exec_rows.append((name, timed(runs, command([*base, "exec", "dockyard-bench-exec", "/bin/true"]))))
            subprocess.run([*base, "rm", "-f", "dockyard-bench-exec"], capture_output=True, env=_env())
        print(f"\n`run --rm busybox /bin/true`, {runs} runs each (median; ratio = dockyard / peer)")
        compare(run_rows)
        print(f"\n`exec CONTAINER /bin/true`, {runs} runs each")
        compare(exec_rows)
    finally:
        peers.close()


def compare(rows: list[tuple[str, list[float]]]) -> None:
    med = {label: statistics.median(samples) for label, samples in rows}
    print(f"{'command':<32}{'median':>10}{'p90':>10}{'min':>10}")
    for label, samples in rows:
        p90 = sorted(samples)[int(0.9 * (len(samples) - 1))]
        print(f"{label:<32}{med[label] * 1000:>8.1f}ms{p90 * 1000:>8.1f}ms{min(samples) * 1000:>8.1f}ms")
    for suffix in ("", " --network none"):
        ours = med.get(f"dockyard{suffix}")
        if ours is None:
            continue
        for peer in ("docker", "podman+crun"):
            theirs = med.get(f"{peer}{suffix}")
            if theirs:
                print(f"  dockyard/{peer}{suffix}: {ours / theirs:.2f}x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--section", choices=("all", "commands", "runtime"), default="all")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run_bench.py needs root (namespaces, cgroups)", file=sys.stderr)
        return 1
    linux.set_child_subreaper()  # runc/crun double-fork: their inits must come back to us
    work = Path(tempfile.mkdtemp(prefix="dockyard-run-bench-"))
    rows: list[tuple[str, list[float]]] = []
    try:
        bundle = make_bundle(work)
        state = work / "state"
        if args.section in ("all", "runtime"):
            rows.append(("builtin", timed(args.runs, via_runtime("builtin", bundle, state))))
            for name in ("crun", "runc"):
                binary = shutil.which(name)
                if binary is None:
                    print(f"({name} not installed: skipped)")
                    continue
                rows.append((f"dockyard→{name}", timed(args.runs, via_runtime(name, bundle, state))))
                rows.append((f"{name} run", timed(args.runs, raw_cli(binary, bundle, state))))
            print(f"create+start+wait+delete of /bin/true, {args.runs} runs each")
            report(rows)
        if args.section in ("all", "commands"):
            commands_section(args.runs, work, bundle)
    finally:
        remove_cgroup("/dockyard/bench")
        subprocess.run(["umount", "-R", str(work)], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
