"""RUN: the command runs straight through the OCI runtime, as BuildKit runs it.

No container record, no monitor process: the step's snapshot is already mounted, so a bundle is
the mount point plus a ``config.json`` from ``dockyard.runtime.spec.generate_spec`` (docker's
defaults: capabilities, masked paths, /proc, /dev, /sys; a private pid namespace, so every
process the step leaves behind dies with it). Output goes through a pipe to the progress
writer. The mount points the runtime had to create (``/etc/hosts``, ``/proc`` in a scratch
image, ``--mount`` targets, ...) are removed again before the diff, so they never end up in the
layer — docker's own init layer keeps them out of its images too.

``--mount`` types: ``bind`` (from the context, a stage or an image; read-only unless ``rw``,
whose writes are thrown away), ``cache`` (a directory kept across builds, shown by ``builder
du``), ``tmpfs``. ``--network`` is ``default`` (the host's network), ``host`` or ``none``.
"""
from __future__ import annotations

import ctypes
import fcntl
import os
import signal
import stat
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from dockyard.build.context import resolve_in_root
from dockyard.build.errors import BuildError, StepFailed

if TYPE_CHECKING:  # pragma: no cover
    from dockyard.build.executor import Mounted, StageRunner
    from dockyard.build.progress import Step
    from dockyard.build.service import BuildRun

PR_SET_CHILD_SUBREAPER = 36
HOSTNAME = "buildkitsandbox"
HOSTS = "127.0.0.1\tlocalhost buildkitsandbox\n::1\tlocalhost ip6-localhost ip6-loopback\n"
_MOUNT_KEYS = {"type", "target", "dst", "destination", "source", "src", "from", "ro", "readonly", "rw",
               "readwrite", "id", "sharing", "mode", "uid", "gid", "size", "required", "env"}


@dataclass
class RunMount:
    type: str
    target: str
    source: str = ""
    from_: str = ""
    readonly: bool = True
    id: str = ""
    sharing: str = "shared"
    mode: int = 0o755
    uid: int = 0
    gid: int = 0
    size: str = ""
    from_chain: str | None = None
    from_layers: list[Any] = field(default_factory=list)

    def key(self) -> dict[str, Any]:
        """What of the mount goes into the step's cache key (a cache mount's content does not)."""
        return {"type": self.type, "target": self.target, "source": self.source, "from": self.from_,
                "from_chain": self.from_chain, "readonly": self.readonly, "id": self.id,
                "mode": self.mode, "uid": self.uid, "gid": self.gid, "size": self.size}


def parse_mounts(specs: list[str], expand: Callable[[str], str], workdir: str,
                 runner: "StageRunner") -> list[RunMount]:
    """``--mount=type=cache,target=/root/.cache,...`` values, checked as BuildKit checks them."""
    from dockyard.build.executor import LayerRef
    from dockyard.build.stages import resolve_from

    out: list[RunMount] = []
    for spec in specs:
        fields: dict[str, str] = {}
        for part in expand(spec).split(","):
            if not part:
                continue
            k, eq, v = part.partition("=")
            k = k.strip().lower()
            if k not in _MOUNT_KEYS:
                raise BuildError(f"unexpected key '{k}' in '{part}'")
            fields[k] = v if eq else "true"
        mtype = fields.get("type", "bind")
        if mtype not in ("bind", "cache", "tmpfs"):
            if mtype in ("secret", "ssh"):
                raise BuildError(f"RUN --mount=type={mtype} is not supported by dockyard build")
            raise BuildError(f"unsupported mount type \"{mtype}\"")
        target = fields.get("target") or fields.get("dst") or fields.get("destination") or ""
        if not target:
            raise BuildError("mount destination (target) is required")
        if not target.startswith("/"):
            target = os.path.normpath(os.path.join(workdir or "/", target))
        m = RunMount(type=mtype, target=target, source=fields.get("source") or fields.get("src") or "",
                     from_=fields.get("from", ""))
        rw = fields.get("rw") or fields.get("readwrite")
        ro = fields.get("ro") or fields.get("readonly")
        if mtype == "cache":
            m.readonly = (ro or "false").lower() == "true"
            m.id = fields.get("id") or target
            m.sharing = fields.get("sharing", "shared")
            if m.sharing not in ("shared", "private", "locked"):
                raise BuildError(f"unsupported sharing value \"{m.sharing}\"")
            try:
                m.mode = int(fields.get("mode", "755"), 8)
                m.uid = int(fields.get("uid", "0"))
                m.gid = int(fields.get("gid", "0"))
            except ValueError as exc:
                raise BuildError(f"invalid cache mount option: {exc}") from None
        elif mtype == "bind":
            m.readonly = not (rw or "false").lower() == "true"
        elif mtype == "tmpfs":
            m.readonly = False
            m.size = fields.get("size", "")
        if m.from_:
            target_stage = resolve_from(runner.run.plan, runner.stage, m.from_, runner.stage.source)
            if isinstance(target_stage, int):
                res = runner.run.stage_result(target_stage)
                m.from_chain, m.from_layers = res.chain, list(res.layers)
            else:
                image = runner.run.resolve_image(m.from_)
                m.from_layers = [LayerRef(l.digest, l.size, l.diff_id, l.media_type) for l in image.layers]
                m.from_chain = image.top_chain_id if m.from_layers else None
        out.append(m)
    return out


def _set_subreaper() -> None:
    """runc and crun double-fork: make their container processes our children to reap them."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except OSError:
        pass


def _resolv_conf(network: str) -> str:
    if network == "none":
        return ""
    try:
        return Path("/etc/resolv.conf").read_text()
    except OSError:
        return "nameserver 8.8.8.8\n"


def _stubs_before(root: str, targets: list[str]) -> dict[str, bool]:
    """Which mount targets (and their parents) already exist in the rootfs."""
    seen: dict[str, bool] = {}
    for t in targets:
        parts = [p for p in t.split("/") if p]
        for i in range(1, len(parts) + 1):
            path = "/" + "/".join(parts[:i])
            if path not in seen:
                seen[path] = os.path.lexists(root + path)
    return seen


def _remove_stubs(root: str, existed: dict[str, bool], keep_dirs: set[str]) -> None:
    """Remove the empty files/dirs the runtime created as mount points, deepest first.

    Directories made for ``--mount`` targets stay, as docker's BuildKit leaves them."""
    for path in sorted((p for p, e in existed.items() if not e), key=lambda p: p.count("/"), reverse=True):
        host = root + path
        if path in keep_dirs and os.path.isdir(host):
            continue
        try:
            st = os.lstat(host)
        except FileNotFoundError:
            continue
        try:
            if stat.S_ISDIR(st.st_mode):
                os.rmdir(host)  # only if empty: the step may have put files there itself
            elif stat.S_ISREG(st.st_mode) and st.st_size == 0:
                os.unlink(host)
        except OSError:
            pass


def _dir_owners(root: str, existed: dict[str, bool]) -> dict[str, tuple[int, int, int]]:
    """Mode and owner of the existing directories in which the runtime will have to create a
    mount point (candidates for :func:`drop_untouched_copy_ups`)."""
    out: dict[str, tuple[int, int, int]] = {}
    parents = {os.path.dirname(p) for p, there in existed.items() if not there}
    for path, there in existed.items():
        if not there or path not in parents:
            continue
        try:
            st = os.lstat(root + path)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode):
            out[path] = (st.st_mode, st.st_uid, st.st_gid)
    return out


def drop_untouched_copy_ups(upper: Path, dirs: dict[str, tuple[int, int, int]]) -> None:
    """Remove directories from a step's overlay upper dir that are there only because the
    runtime created (and we removed) a mount point in them — ``/etc`` for ``/etc/hosts`` in an
    image without one. Docker's classic builder makes those in its init layer, so its ``RUN``
    layers never hold them; an emptied directory whose mode and owner the step kept is such a
    copy-up. Call it on the unmounted upper dir, deepest paths first."""
    for path in sorted(dirs, key=lambda p: p.count("/"), reverse=True):
        host = str(upper) + path
        try:
            st = os.lstat(host)
            if not stat.S_ISDIR(st.st_mode) or (st.st_mode, st.st_uid, st.st_gid) != dirs[path] or os.listdir(host):
                continue
            if any(os.getxattr(host, name, follow_symlinks=False) == b"y"
                   for name in os.listxattr(host, follow_symlinks=False) if name.endswith("overlay.opaque")):
                continue
            os.rmdir(host)
        except OSError:
            continue


def run_step(run: "BuildRun", runner: "StageRunner", m: "Mounted", argv: list[str], env: list[str],
             mounts: list[RunMount], network: str, step: "Step") -> None:
    """Run one RUN command in the mounted snapshot ``m``; raise StepFailed on a non-zero exit."""
    from dockyard.runtime import get_runtime
    from dockyard.runtime import spec as rspec
    from dockyard.runtime.users import resolve_exec_user

    root = str(m.root)
    config = runner.config
    cid = f"dyb-{os.getpid()}-{uuid.uuid4().hex[:16]}"
    bundle = run.tmp / cid
    bundle.mkdir(parents=True)
    try:
        user = resolve_exec_user(root, config.get("User") or "")
    except Exception as exc:  # noqa: BLE001
        raise BuildError(f"RUN failed: {exc}") from None
    cwd = config.get("WorkingDir") or "/"
    cwd_host = resolve_in_root(root, cwd)
    if not os.path.isdir(cwd_host):
        os.makedirs(cwd_host, 0o755, exist_ok=True)
    if not any(e.startswith("HOME=") for e in env):
        env = [*env, f"HOME={user.home or '/'}"]
    etc = bundle / "etc"
    etc.mkdir()
    (etc / "hosts").write_text(HOSTS)
    (etc / "hostname").write_text(HOSTNAME + "\n")
    (etc / "resolv.conf").write_text(_resolv_conf(network))
    with ExitStack() as stack:
        oci_mounts = _volume_mounts(run, root, config) + [_oci_mount(run, runner, mt, stack) for mt in mounts]
        opts = rspec.ContainerSpecOptions(
            container_id=cid, args=argv, env=env, cwd=cwd, hostname=HOSTNAME, rootfs=root,
            mounts=oci_mounts, hosts_path=str(etc / "hosts"), hostname_path=str(etc / "hostname"),
            resolv_conf_path=str(etc / "resolv.conf"),
            network="host" if network == "host" else "private",
            cgroups_path=f"{rspec.CGROUP_PARENT}/build/{cid}")
        opts.set_user(user)
        spec = rspec.generate_spec(opts)
        rspec.write_bundle(bundle, spec)
        targets = [mm["destination"] for mm in spec["mounts"]]
        existed = _stubs_before(root, targets)
        keep_dirs: set[str] = set()
        for target in [*(config.get("Volumes") or {}), *(mt.target for mt in mounts)]:
            parts = [p for p in target.split("/") if p]
            keep_dirs.update("/" + "/".join(parts[:i]) for i in range(1, len(parts) + 1))
        runtime = get_runtime(run.opts.runtime, run.service.build_dir / "runtime")
        if getattr(runtime, "name", "") != "builtin":
            _set_subreaper()
        before = _dir_owners(root, existed)
        code = _run_and_wait(run, runtime, cid, bundle, step)
        _remove_stubs(root, existed, keep_dirs)
        m.copy_ups.update(before)
    if code != 0:
        shown = " ".join(argv)
        raise StepFailed(f"executor failed running [{shown}]: exit code: {code}", code,
                         bytes(step.output))


def _run_and_wait(run: "BuildRun", runtime: Any, cid: str, bundle: Path, step: "Step") -> int:
    from dockyard.runtime.base import ProcessStartError, Stdio

    r, w = os.pipe()
    null = os.open(os.devnull, os.O_RDONLY)
    pid = 0
    try:
        try:
            with run.fork_lock:
                if run.cancelled:
                    raise BuildError("build cancelled: another stage failed")
                pid = runtime.run(cid, bundle, Stdio(stdin=null, stdout=w, stderr=w))
                run.running(cid, runtime)
        except ProcessStartError as exc:
            # as BuildKit: the runtime's own message is the error ("OCI runtime create failed: ...")
            raise StepFailed(str(exc), getattr(exc, "exit_code", 125) or 125, bytes(step.output)) from None
        os.close(w)
        w = -1
        while True:
            try:
                chunk = os.read(r, 65536)
            except InterruptedError:
                continue
            if not chunk:
                break
            run.progress.log(step, chunk)
        return _wait(pid)
    except BaseException:
        if pid:
            try:
                runtime.kill(cid, signal.SIGKILL, all_processes=True)
            except Exception:  # noqa: BLE001
                pass
            _wait(pid)
        raise
    finally:
        run.running(cid, None)
        if w >= 0:
            os.close(w)
        os.close(r)
        os.close(null)
        try:
            runtime.delete(cid, force=True)
        except Exception:  # noqa: BLE001 - nothing left to delete
            pass


def _wait(pid: int) -> int:
    while True:
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:
            return 0
        except InterruptedError:
            continue
        if os.WIFEXITED(status):
            return os.WEXITSTATUS(status)
        if os.WIFSIGNALED(status):
            return 128 + os.WTERMSIG(status)


def _volume_mounts(run: "BuildRun", root: str, config: dict[str, Any]) -> list[dict[str, Any]]:
    """VOLUME paths, as docker's classic builder treats them: a RUN sees the image's content
    there, but what it writes there is thrown away (the volume is a copy, bound over the path).
    The mount point itself stays in the layer, as it does in docker's images."""
    import shutil

    from dockyard.runtime import spec as rspec

    out = []
    for i, vol in enumerate(sorted(config.get("Volumes") or {}, key=len)):
        if not vol.startswith("/"):
            continue
        host = resolve_in_root(root, vol)
        os.makedirs(host, 0o755, exist_ok=True)
        copy = run.tmp / f"volume-{uuid.uuid4().hex[:16]}-{i}"  # one per step: a later RUN gets a fresh copy
        shutil.copytree(host, copy, symlinks=True, copy_function=shutil.copy2)
        st = os.stat(host)
        os.chown(copy, st.st_uid, st.st_gid)
        out.append(rspec.bind_mount(str(copy), vol))
    return out


def _oci_mount(run: "BuildRun", runner: "StageRunner", mt: RunMount, stack: ExitStack) -> dict[str, Any]:
    from dockyard.runtime import spec as rspec

    if mt.type == "tmpfs":
        return rspec.tmpfs_mount(mt.target, [f"size={mt.size}"] if mt.size else None)
    if mt.type == "cache":
        d = run.cache.cache_mount_dir(mt.id)
        data = d / "data"
        if not data.exists():
            data.mkdir(mode=mt.mode)
            os.chmod(data, mt.mode)
            os.lchown(data, mt.uid, mt.gid)
        if mt.sharing == "locked":
            fd = os.open(d / "lock", os.O_CREAT | os.O_RDWR, 0o600)
            stack.callback(os.close, fd)
            fcntl.flock(fd, fcntl.LOCK_EX)
        return rspec.bind_mount(str(data), mt.target, readonly=mt.readonly)
    # bind: from the context, a stage or an image
    if mt.from_:
        run.ensure_chain(mt.from_layers)
        src_mount = stack.enter_context(runner.mounted(mt.from_chain, readonly=mt.readonly))
        base = str(src_mount.root)
    else:
        if run.context is None or run.context.root is None:
            raise BuildError("RUN --mount=type=bind needs a build context")
        base = str(run.context.root)
    source = resolve_in_root(base, mt.source or "/")
    if not os.path.exists(source):
        raise BuildError(f"failed to compute cache key: \"{mt.source or '/'}\" not found")
    if not mt.readonly and not mt.from_:
        # writes to a rw bind of the context must not reach the context: overlay them away
        from dockyard.snapshot import mounts as smounts

        scratch = run.tmp / f"rw-{uuid.uuid4().hex[:8]}"
        (scratch / "upper").mkdir(parents=True)
        (scratch / "work").mkdir()
        (scratch / "merged").mkdir()
        smounts.mount_overlay([Path(source)], scratch / "merged", scratch / "upper", scratch / "work")
        stack.callback(smounts.unmount, str(scratch / "merged"))
        source = str(scratch / "merged")
    return rspec.bind_mount(source, mt.target, readonly=mt.readonly)

