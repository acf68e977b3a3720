"""``client.builder``: build images from Dockerfiles; inspect and prune the build cache.

    from dockyard import Client
    from dockyard.build.service import BuildOptions
    from dockyard.build.context import BuildContext

    client = Client()
    with BuildContext.from_dir("app") as ctx:
        result = client.builder.build(BuildOptions(context=ctx, dockerfile=b"FROM busybox\\n", tags=["app"]))
    print(result.image_id)

A build parses the Dockerfile, picks the stages the target needs, runs independent stages on
threads, and finally writes the image (config + manifest) and its tags. Every blob and snapshot
it makes is held by a content-store lease until the image exists, so a concurrent prune never
removes half a build; a failing build writes no image.
"""
from __future__ import annotations

import hashlib
import os
import posixpath
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dockyard.build.cache import BuildCache
from dockyard.build.context import BuildContext
from dockyard.build.errors import BuildError
from dockyard.build.progress import Progress
from dockyard.build.stages import PROXY_ARGS, Platform, Plan
from dockyard.errors import DockyardError, InvalidArgument, NotFound
from dockyard.timeutil import format_rfc3339

if TYPE_CHECKING:  # pragma: no cover
    from concurrent.futures import Future

    from dockyard.build.executor import LayerRef, StageResult
    from dockyard.build.layerdiff import LayerBlob
    from dockyard.build.progress import Step
    from dockyard.client import Client

NETWORK_MODES = ("default", "host", "none")
DEFAULT_NETWORK = "host"  # RUN steps share the host's network unless --network=none


class BuildOptions:
    """What ``docker build`` takes. ``dockerfile`` is the Dockerfile's bytes."""

    def __init__(self, context: BuildContext, dockerfile: bytes, dockerfile_name: str = "Dockerfile",
                 tags: list[str] | None = None, build_args: dict[str, str | None] | None = None,
                 target: str | None = None, no_cache: bool = False, pull: bool = False,
                 labels: dict[str, str] | None = None, network: str = "default", platform: str | None = None,
                 progress: Progress | None = None, source_date_epoch: int | None = None,
                 runtime: str | None = None) -> None:
        self.context = context
        self.dockerfile = dockerfile
        self.dockerfile_name = dockerfile_name
        self.tags = list(tags or [])
        self.build_args = dict(build_args or {})
        self.target = target
        self.no_cache = no_cache
        self.pull = pull
        self.labels = dict(labels or {})
        self.network = network
        self.platform = platform
        self.progress = progress
        self.source_date_epoch = source_date_epoch
        self.runtime = runtime  # the OCI runtime for RUN (default: DOCKYARD_RUNTIME or built-in)


class BuildResult:
    def __init__(self, image_id: str, tags: list[str], warnings: list[str] | None = None) -> None:
        self.image_id = image_id
        self.tags = tags
        self.warnings = warnings or []

    def __repr__(self) -> str:
        return f"BuildResult({self.image_id!r}, tags={self.tags!r})"


class BuildRun:
    """State shared by the stages of one build (thread-safe where stages meet)."""

    def __init__(self, service: "BuildService", opts: BuildOptions, plan: Plan, needed: list[int]) -> None:
        if opts.network not in NETWORK_MODES:
            raise InvalidArgument(f"network mode \"{opts.network}\" not supported by dockyard build "
                                  "(use default, host or none)")
        self.service = service
        self.client = service.client
        self.opts = opts
        self.plan = plan
        self.needed = needed
        self._reaped = False
        self._removals: list[threading.Thread] = []
        self._lease: Any = None
        self._lease_cm: Any = None
        self._lease_lock = threading.Lock()
        self.cache = service.cache
        self.progress = opts.progress or Progress("quiet")
        self.content = self.client.content
        self.context = opts.context if opts.context.root is not None else None
        if self.context is not None and self.context.persistent:
            self.cache.prefetch(str(self.context.root))
        self.no_cache = opts.no_cache
        self.build_args = dict(opts.build_args)
        self.declared: set[str] = set(plan.declared)
        self.epoch = opts.source_date_epoch
        self.platform = Platform.parse(opts.platform)
        self.tmp = service.build_dir / "tmp" / f"{os.getpid()}-{os.urandom(6).hex()}"
        self.tmp.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._futures: dict[int, "Future[StageResult]"] = {}
        self._results: dict[int, "StageResult"] = {}
        self._images: dict[str, Any] = {}
        self._image_lock = threading.Lock()
        self._chain_lock = threading.Lock()
        self.fork_lock = threading.Lock()
        self.cancelled = False
        self._running: dict[str, Any] = {}   # RUN containers in flight: id -> runtime

    @property
    def snapshots(self) -> Any:
        """The snapshot store, on first use (a cached build never needs it); what killed builds
        left behind is cleaned up then."""
        snaps = self.client.snapshots
        if not self._reaped:
            self._reaped = True
            from dockyard.build.reaper import reap

            reap(self.service.build_dir, snaps, self.opts.runtime)
        return snaps

    @property
    def lease(self) -> Any:
        """The content-store lease holding what this build writes; taken on first write, so
        that a fully cached build writes nothing to the metadata DB."""
        with self._lease_lock:
            if self._lease is None:
                self._lease_cm = self.content.lease()
                self._lease = self._lease_cm.__enter__()
            return self._lease

    def remove_later(self, key: str, mountpoint: Path) -> None:
        """Remove a step's (unmounted) snapshot on a background thread: deleting the files of a
        big step takes a while, and the next step need not wait for it. ``close`` waits."""
        t = threading.Thread(target=self._remove, args=(key, mountpoint), name="snapshot-remove")
        t.start()
        self._removals.append(t)

    def _remove(self, key: str, mountpoint: Path) -> None:
        import shutil

        import sqlite3

        try:
            self.snapshots.drop_files(key)
            self.snapshots.remove(key)
        except (DockyardError, sqlite3.Error):
            pass  # the reaper of a later build tries again
        finally:
            shutil.rmtree(mountpoint, ignore_errors=True)
            self.client.state.close()  # this thread's DB connection

    def close(self) -> None:
        import shutil

        for t in self._removals:
            t.join()
        self._removals.clear()
        if self._lease_cm is not None:
            self._lease_cm.__exit__(None, None, None)
            self._lease_cm = self._lease = None
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- stages ------------------------------------------------------------------------------------
    def stage_result(self, index: int) -> "StageResult":
        if index in self._results:
            return self._results[index]
        fut = self._futures.get(index)
        if fut is None:
            raise BuildError(f"stage {self.plan.stages[index].label} is not part of this build")
        return fut.result()

    def run_stages(self) -> "StageResult":
        from dockyard.build.executor import StageRunner

        if len(self.needed) == 1:
            result = StageRunner(self, self.plan.stages[self.needed[0]]).execute()
            self._results[self.needed[0]] = result
            return result
        from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

        with ThreadPoolExecutor(max_workers=len(self.needed), thread_name_prefix="stage") as pool:
            for i in self.needed:
                self._futures[i] = pool.submit(StageRunner(self, self.plan.stages[i]).execute)
            try:
                done, _ = wait(list(self._futures.values()), return_when=FIRST_EXCEPTION)
                # the first failure (in Dockerfile order among those that failed) ends the build
                failed = [self._futures[i] for i in self.needed if self._futures[i] in done
                          and self._futures[i].exception() is not None]
                if failed:
                    failed[0].result()
            except BaseException:
                self.cancel()
                for f in self._futures.values():
                    f.cancel()
                raise
        return self._futures[self.needed[-1]].result()

    def cancel(self) -> None:
        """Stop the other stages: no new step starts, and RUN steps in flight are killed."""
        import signal

        self.cancelled = True
        with self._image_lock:
            running = list(self._running.items())
        for cid, runtime in running:
            try:
                runtime.kill(cid, signal.SIGKILL, all_processes=True)
            except Exception:  # noqa: BLE001 - it may have just exited
                pass

    def running(self, cid: str, runtime: Any | None) -> None:
        """Register (or, with None, forget) a RUN container in flight."""
        with self._image_lock:
            if runtime is None:
                self._running.pop(cid, None)
            else:
                self._running[cid] = runtime

    # -- images ------------------------------------------------------------------------------------
    def resolve_image(self, ref: str, step: "Step | None" = None) -> Any:
        """A base image (FROM, COPY --from) from the local store, pulled when missing if a
        registry client is available."""
        with self._image_lock:
            if ref in self._images:
                return self._images[ref]
            images = self.client.images
            image = None
            if self.opts.pull:
                image = self._pull(ref, required=False)
            if image is None:
                try:
                    image = images.get(ref)
                except (NotFound, InvalidArgument) as exc:
                    image = self._pull(ref, required=True, cause=exc)
            self._images[ref] = image
            return image

    def _pull(self, ref: str, required: bool, cause: Exception | None = None) -> Any:
        pull = getattr(self.client.images, "pull", None)
        if pull is None:
            try:
                pull = getattr(self.client.distribution, "pull", None)
            except (AttributeError, ImportError):
                pull = None
        if pull is None:
            if required:
                raise BuildError(f"failed to resolve source image {ref}: {cause}; "
                                 f"pull or load it first (dockyard image pull {ref})") from None
            return None
        try:
            pull(ref)
            return self.client.images.get(ref)
        except Exception as exc:  # noqa: BLE001 - a network failure is a failure to resolve, whatever its type
            if required:
                reason = exc.message if isinstance(exc, DockyardError) else (str(exc) or type(exc).__name__)
                raise BuildError(f"failed to resolve source image {ref}: {reason}") from None
            return None

    def ensure_chain(self, layers: "list[LayerRef]") -> str | None:
        """Make sure every layer of a chain is unpacked (it may have been pruned)."""
        from dockyard.build.cache import child_chain_id

        parent: str | None = None
        snaps = self.snapshots
        with self._chain_lock:
            for layer in layers:
                cid = child_chain_id(parent, layer.diff_id)
                if not snaps.has(cid):
                    with self.content.open(layer.digest) as blob:
                        snaps.unpack(parent, layer.diff_id, blob, layer.media_type, lease=self.lease)
                else:
                    self.lease.add("snapshot", cid)
                parent = cid
        return parent

    def commit_tree(self, parent: str | None, blob: "LayerBlob", tree: Path) -> None:
        """Make ``tree`` (a step's upper dir, already matching ``blob``'s tar) the committed
        snapshot of the layer on ``parent``: handed to the snapshot store as a staged layer, it
        is published by a rename instead of unpacking the blob again. Falls back to unpacking
        the blob if the store will not take it."""
        import shutil

        from dockyard.build.cache import child_chain_id

        snaps = self.snapshots
        cid = child_chain_id(parent, blob.diff_id)
        if snaps.has(cid):  # the same layer was committed before (a reproducible step)
            self.lease.add("snapshot", cid)
            return
        staged = None
        staging = getattr(snaps, "staging", None)
        if staging is None:  # a store without staging: unpack the blob as any layer
            with self.content.open(blob.digest) as stream:
                snaps.unpack(parent, blob.diff_id, stream, blob.media_type, lease=self.lease)
            return
        try:
            from dockyard.snapshot.unpack import UnpackPolicy

            staged = _AdoptedTree(snaps.tmp_dir / f"staged.{os.getpid()}.{os.urandom(6).hex()}",
                                  blob.diff_id, blob.file_bytes, UnpackPolicy())
            staged.dir.mkdir(mode=0o700)
            os.rename(tree, staged.dir / "fs")
            tree.mkdir(mode=0o755)  # the active snapshot keeps an (empty) upper dir to remove
        except (OSError, ImportError, AttributeError, TypeError):
            if staged is not None:
                shutil.rmtree(staged.dir, ignore_errors=True)
            staged = None
        with staging() as area:
            if staged is not None:
                area.ready(staged)
            with self.content.open(blob.digest) as fallback:  # read only if the store did not take the tree
                snaps.unpack(parent, blob.diff_id, fallback, blob.media_type, lease=self.lease)

    # -- RUN helpers -------------------------------------------------------------------------------
    def network_for(self, flag: str | None) -> str:
        mode = flag or self.opts.network or "default"
        if mode not in NETWORK_MODES:
            raise BuildError(f"network mode \"{mode}\" not supported (use default, host or none)")
        return DEFAULT_NETWORK if mode == "default" else mode

    def download(self, url: str, checksum: str = "") -> tuple[Path, str]:
        """ADD <url>: fetch it (with a clear message when the network is unreachable)."""
        import urllib.error
        import urllib.parse
        import urllib.request

        d = self.tmp / "downloads" / hashlib.sha256(url.encode()).hexdigest()[:16]
        d.mkdir(parents=True, exist_ok=True)
        h = hashlib.sha256()
        try:
            with urllib.request.urlopen(url, timeout=15) as resp:
                name = download_name(url, resp.headers.get("Content-Disposition"))
                path = d / name
                with open(path, "wb") as f:
                    while chunk := resp.read(1 << 20):
                        h.update(chunk)
                        f.write(chunk)
                modified = resp.headers.get("Last-Modified")
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise BuildError(f"ADD failed: cannot download {url}: {reason} "
                             "(the network is not reachable from this host, or the URL is wrong)") from None
        if checksum and f"sha256:{h.hexdigest()}" != checksum:
            raise BuildError(f"ADD failed: digest mismatch for {url}: expected {checksum}, got sha256:{h.hexdigest()}")
        ts = 0.0  # without Last-Modified both of docker's builders date the file 1970-01-01
        if modified:
            from email.utils import parsedate_to_datetime

            try:
                ts = parsedate_to_datetime(modified).timestamp()
            except (TypeError, ValueError):
                pass
        os.utime(path, (ts, ts))
        return path, name


def download_name(url: str, disposition: str | None) -> str:
    """The file name ``ADD <url> /dir/`` gives a download, as the classic builder picks it: the
    URL path's last component, else the Content-Disposition filename, else BuildKit's
    ``__unnamed__`` (the classic builder refuses such a URL; a file is more useful)."""
    import urllib.parse
    from email.message import Message

    path = urllib.parse.unquote(urllib.parse.urlparse(url).path)  # decoded, as Go's URL.Path
    if path and not path.endswith("/"):
        return posixpath.basename(path)
    if disposition:
        msg = Message()
        msg["Content-Disposition"] = disposition
        fname = msg.get_filename()
        if fname:
            fname = posixpath.basename(fname.replace("\\", "/"))
            if fname not in ("", ".", ".."):
                return fname
    return "__unnamed__"


class BuildService:
    """``client.builder``."""

    def __init__(self, client: "Client") -> None:
        self.client = client
        self.build_dir = client.state.dir("build")
        self.cache = BuildCache(self.build_dir)

    # -- build -------------------------------------------------------------------------------------
    def build(self, opts: BuildOptions) -> BuildResult:
        from dockyard.build import dockerfile as df
        from dockyard.build import stages as st

        progress = opts.progress or Progress("quiet")
        opts.progress = progress
        try:
            parsed = df.parse(opts.dockerfile, opts.dockerfile_name)
            plan = st.make_plan(parsed, opts.build_args, Platform.parse(opts.platform))
            target = st.select_target(plan, opts.target)
        except BuildError as exc:
            exc.definition = True
            raise
        needed = st.needed_stages(plan, target)
        for tag in opts.tags:
            check_tag(tag)
        run = BuildRun(self, opts, plan, needed)
        try:
            result = run.run_stages()
            image_id = self._export(run, result, opts, progress)
        except BaseException:
            progress.finish(False)
            raise
        finally:
            run.close()
            self.cache.flush()
        progress.finish(True)
        warnings = unused_args(opts.build_args, run.declared)
        for w in warnings:
            progress.warn(w)
        return BuildResult(image_id=image_id, tags=list(opts.tags), warnings=warnings)

    def _export(self, run: BuildRun, result: "StageResult", opts: BuildOptions, progress: Progress) -> str:
        """Write the image and its tags; returns the image ID. An identical image that already
        carries every tag (a fully cached rebuild) is left as it is."""
        from dockyard.build.imageconfig import fill_history_times
        from dockyard.image.service import Layer, canonical_json

        step = progress.start("exporting to image")
        config = dict(result.config)
        history = list(result.history)
        if opts.labels:
            from dockyard.build.imageconfig import history_entry

            labels = dict(config.get("Labels") or {})
            labels.update(opts.labels)
            config["Labels"] = labels
            # the classic builder commits each --label as a LABEL step of its own, by name
            history += [history_entry(None, f"LABEL {k}={v}", True) for k, v in sorted(opts.labels.items())]
        config = {k: v for k, v in config.items() if v is not None}
        created = float(opts.source_date_epoch) if opts.source_date_epoch is not None else result.created
        doc: dict[str, Any] = {
            "architecture": result.platform.get("architecture", run.platform.architecture),
            "os": result.platform.get("os", "linux"),
            **({"variant": result.platform["variant"]} if result.platform.get("variant") else {}),
            "created": format_rfc3339(created),
            **({"author": result.author} if result.author else {}),
            "config": config,
            "history": fill_history_times(history),
        }
        layers = [Layer(digest=l.digest, media_type=l.media_type, size=l.size, diff_id=l.diff_id)
                  for l in result.layers]
        images = self.client.images
        full = dict(doc, rootfs={"type": "layers", "diff_ids": [l.diff_id for l in layers]})
        image_id = "sha256:" + hashlib.sha256(canonical_json(full)).hexdigest()
        try:
            if not (images.exists(image_id) and all(_tag_points_to(images, t, image_id) for t in opts.tags)):
                for layer in result.layers:  # cached layers too: a concurrent prune must not take them now
                    run.lease.add("content", layer.digest)
                    if not run.content.exists(layer.digest):
                        raise BuildError(f"layer {layer.digest} was removed while the build ran "
                                         "(a prune?): build again")
                run.ensure_chain(result.layers)
                image_id = images.create_image(doc, layers, tags=opts.tags, lease=run.lease).id
        except BaseException as exc:
            progress.error(step, str(exc))
            raise
        progress.note(step, f"writing image {image_id} done")
        for tag in opts.tags:
            progress.note(step, f"naming to {_full_name(tag)} done")
        progress.done(step)
        return image_id

    # -- cache inventory ---------------------------------------------------------------------------
    def du(self) -> list[dict[str, Any]]:
        """Build cache records: id, description, size, last used, whether an image uses it."""
        used = self._image_layers()
        out = []
        for rec in self.cache.records():
            out.append({"id": rec.key.split(":", 1)[1][:25], "key": rec.key, "description": rec.description,
                        "size": rec.size if rec.digest and self.client.content.exists(rec.digest) else 0,
                        "digest": rec.digest, "created": rec.created, "last_used": rec.last_used,
                        "usage_count": rec.usage_count, "in_use": bool(rec.digest and rec.digest in used),
                        "type": "regular", "shared": bool(rec.digest and rec.digest in used)})
        for mount_id, path, last_used in self.cache.cache_mounts():
            from dockyard.snapshot.store import dir_usage

            out.append({"id": hashlib.sha256(mount_id.encode()).hexdigest()[:25], "key": mount_id,
                        "description": f"cache mount {mount_id}", "size": dir_usage(path), "digest": None,
                        "created": last_used, "last_used": last_used, "usage_count": 1, "in_use": False,
                        "type": "exec.cachemount", "shared": False})
        return out

    def prune(self, all: bool = False, until: float | None = None) -> dict[str, Any]:
        """Remove cache records (``all``: also those whose layers images use) and cache mounts.

        Returns ``{"deleted": [ids], "reclaimed": bytes}``. Blobs no image references are
        deleted with their records; snapshots no image needs are collected.
        """
        import shutil

        used = self._image_layers()
        content = self.client.content
        deleted: list[str] = []
        reclaimed = 0
        now = time.time()
        protected = content.leased("content")
        for rec in self.cache.records():
            if until is not None and rec.last_used > now - until:
                continue
            shared = bool(rec.digest and rec.digest in used)
            if shared and not all:
                continue
            self.cache.delete(rec.key)
            deleted.append(rec.key.split(":", 1)[1][:25])
            if rec.digest and not shared and rec.digest not in protected and content.exists(rec.digest):
                reclaimed += rec.size
                try:
                    content.delete(rec.digest)
                except DockyardError:
                    pass
        for mount_id, path, last_used in self.cache.cache_mounts():
            if until is not None and last_used > now - until:
                continue
            from dockyard.snapshot.store import dir_usage

            reclaimed += dir_usage(path)
            shutil.rmtree(path, ignore_errors=True)
            self.cache.forget_cache_mount(mount_id)
            deleted.append(hashlib.sha256(mount_id.encode()).hexdigest()[:25])
        if all:
            self.cache.clear_file_sums()
        self._collect_snapshots()
        tmp = self.build_dir / "tmp"
        if tmp.is_dir():
            for d in tmp.iterdir():
                if now - d.stat().st_mtime > 3600:
                    shutil.rmtree(d, ignore_errors=True)
        return {"deleted": deleted, "reclaimed": reclaimed}

    def _image_layers(self) -> set[str]:
        used: set[str] = set()
        for image in self.client.images.list(all=True):
            used.update(layer.digest for layer in image.layers)
        return used

    def _collect_snapshots(self) -> None:
        """Drop committed snapshots that no image, container or lease needs any more."""
        keep: set[str] = set()
        for image in self.client.images.list(all=True):
            if image.top_chain_id:
                keep.add(image.top_chain_id)
        try:
            self.client.snapshots.gc(keep)
        except DockyardError:
            pass


class _AdoptedTree:
    """A layer tree built in place, offered to the snapshot store's staging area the way a
    layer unpacked while streaming is (see dockyard.snapshot.staging.StagedLayer)."""

    failed = False
    synced = False
    _finished = True

    def __init__(self, directory: Path, diff_id: str, size: int, policy: Any) -> None:
        self.dir = directory
        self.diff_id = diff_id
        self.size = size
        self.policy = policy

    def discard(self) -> None:
        import shutil

        shutil.rmtree(self.dir, ignore_errors=True)


def unused_args(build_args: dict[str, str | None], declared: set[str]) -> list[str]:
    """docker's warning for --build-arg values no ARG line consumed."""
    unused = sorted(k for k in build_args if k not in declared and k not in PROXY_ARGS
                    and not k.startswith("BUILDKIT_") and k != "SOURCE_DATE_EPOCH")
    if not unused:
        return []
    return [f"[Warning] One or more build-args [{' '.join(unused)}] were not consumed"]


def _tag_points_to(images: Any, tag: str, image_id: str) -> bool:
    try:
        return images.resolve_id(tag) == image_id
    except DockyardError:
        return False


def check_tag(tag: str) -> None:
    """A ``-t`` value as docker's client checks it (a name, optionally tagged, never a digest)."""
    from dockyard.image import reference as refs

    try:
        ref = refs.parse(tag)
    except InvalidArgument as exc:
        raise InvalidArgument(f"invalid argument \"{tag}\" for \"-t, --tag\" flag: {exc.message}") from None
    if ref.digest:
        raise InvalidArgument(f"invalid argument \"{tag}\" for \"-t, --tag\" flag: a tag cannot contain a digest")


def _full_name(tag: str) -> str:
    from dockyard.image import reference as refs

    try:
        return refs.parse(tag).tagged
    except InvalidArgument:
        return tag
