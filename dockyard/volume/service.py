"""``VolumeService`` (``client.volumes``): volumes, and the mounts of each container.

A volume is ``<root>/volumes/<name>/_data``. With local-driver options (``--opt type=tmpfs``,
``--opt o=bind --opt device=/path``...) that directory is a mount point, mounted when a
container starts using the volume and unmounted after the last one stops, as docker does.
"""
from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from dockyard.errors import Conflict, DockyardError, InvalidArgument, NotFound
from dockyard.runtime.paths import secure_join
from dockyard.volume import mounts as mountspec
from dockyard.volume.mounts import MountSpec
from dockyard.volume.store import Volume, VolumeStore

LOCAL_OPTIONS = ("type", "device", "o", "size")
#: docker 23+ labels anonymous volumes so; this docker (20.10) does not, so the label is not
#: stored, but a filter on it (the API's prune of anonymous volumes) still finds them
ANON_LABEL = "com.docker.volume.anonymous"


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _is_mountpoint(path: Path) -> bool:
    target = os.path.realpath(path)
    try:
        with open("/proc/self/mountinfo") as f:
            return any(line.split()[4] == target for line in f)
    except OSError:
        return False


def _dir_size(path: Path) -> int:
    total = 0
    for dirpath, dirnames, filenames in os.walk(path):
        for name in filenames + dirnames:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total


class VolumeService:
    def __init__(self, client: Any) -> None:
        self.client = client
        self.state = client.state
        self.store = VolumeStore(self.state)

    parse_mount = staticmethod(mountspec.parse_mount)
    parse_volume_flag = staticmethod(mountspec.parse_volume_flag)

    # -- paths ---------------------------------------------------------------------------------
    def _dir(self, name: str) -> Path:
        return self.state.path / "volumes" / name

    def mountpoint(self, name: str) -> Path:
        return self._dir(name) / "_data"

    def _with_mountpoint(self, v: Volume) -> Volume:
        v.mountpoint = str(self.mountpoint(v.name))
        return v

    # -- volumes -------------------------------------------------------------------------------
    def create(self, name: str | None = None, driver: str = "local",
               labels: dict[str, str] | None = None, options: dict[str, str] | None = None,
               anonymous: bool = False) -> Volume:
        """Create a volume; an existing one of the same name is returned as it is (docker)."""
        if driver != "local":
            raise NotFound(f"create {name}: error looking up volume plugin {driver}: "
                           f"plugin \"{driver}\" not found")
        if name is None:
            name, anonymous = secrets.token_hex(32), True
        if len(name) < 2 or not name[:2].isalnum():
            if len(name) < 2:
                raise InvalidArgument(f"create {name}: volume name is too short, names should be "
                                      "at least two alphanumeric characters")
        if not mountspec.VOLUME_NAME_RE.match(name):
            raise InvalidArgument(f'create {name}: "{name}" includes invalid characters for a local '
                                  'volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you '
                                  "intended to pass a host directory, use absolute path")
        existing = self.store.get(name)
        if existing is not None:  # docker looks the name up before it checks the options
            return self._with_mountpoint(existing)
        opts = _check_local_options(name, dict(options or {}))
        # docker 20.10 marks anonymous volumes in its own records, not with a label
        labels = dict(labels or {})
        vol = Volume(name, "local", labels or None, opts or None, anonymous, _now())
        data = self.mountpoint(name)
        self.state.dir("volumes")
        data.mkdir(parents=True, exist_ok=True, mode=0o755)
        os.chmod(self._dir(name), 0o701)
        try:
            with self.store.tx() as conn:
                if self.store.get(name) is None:
                    self.store.insert(conn, vol)
        except BaseException:
            shutil.rmtree(self._dir(name), ignore_errors=True)
            raise
        return self._with_mountpoint(self.store.get(name) or vol)

    def get(self, name: str) -> Volume:
        v = self.store.get(name)
        if v is None:
            raise NotFound(f"get {name}: no such volume")
        return self._with_mountpoint(v)

    def inspect(self, name: str) -> dict[str, Any]:
        return self.get(name).inspect()

    def list(self, filters: dict[str, list[str]] | None = None) -> list[Volume]:
        vols = [self._with_mountpoint(v) for v in self.store.all()]
        used = self.store.referenced()
        for key in filters or {}:  # checked before anything is listed, as docker does
            if key not in ("name", "driver", "label", "dangling"):
                raise InvalidArgument(f"Invalid filter '{key}'")
        for key, values in (filters or {}).items():
            vols = [v for v in vols if any(_matches(v, key, val, used) for val in values)]
        return vols

    def df(self) -> list[dict[str, Any]]:
        """docker's /system/df ``Volumes``: each volume with its size and how many containers use it."""
        out = []
        for v in self.list():
            doc = v.inspect()
            size = _dir_size(self.mountpoint(v.name)) if not (v.options or {}) else -1
            doc["UsageData"] = {"Size": size, "RefCount": len(self.store.refs(v.name))}
            out.append(doc)
        return out

    def remove(self, name: str, force: bool = False) -> None:
        v = self.store.get(name)
        if v is None:
            if force:
                return
            raise NotFound(f"get {name}: no such volume")
        users = self.store.refs(name)
        if users:
            raise Conflict(f"remove {name}: volume is in use - [{', '.join(users)}]")
        self._unmount(name)
        with self.store.tx() as conn:
            self.store.delete(conn, name)
        shutil.rmtree(self._dir(name), ignore_errors=True)

    def prune(self, filters: dict[str, list[str]] | None = None) -> tuple[list[str], int]:
        """Remove every volume no container uses (named ones too, as docker 20.10 does; the
        API narrows it to anonymous ones for clients of 1.42+); returns (names, bytes)."""
        removed, space = [], 0
        used = self.store.referenced()
        for v in self.list(filters):
            # docker 20.10 never prunes a volume made with driver options (tmpfs, a bind
            # device, NFS...): what it mounts is not the volume's to throw away
            if v.name in used or v.options:
                continue
            size = _dir_size(self.mountpoint(v.name))
            try:
                self.remove(v.name)
            except Conflict:
                continue
            removed.append(v.name)
            space += size
        return removed, space

    # -- driver mounts ---------------------------------------------------------------------------
    def _mount(self, v: Volume) -> None:
        """Mount a volume with local-driver options on its ``_data`` (first user only)."""
        opts = v.options or {}
        if not opts or _is_mountpoint(self.mountpoint(v.name)):
            return
        data = self.mountpoint(v.name)
        data.mkdir(parents=True, exist_ok=True)
        from dockyard.runtime import linux
        from dockyard.runtime.builtin.rootfs import parse_options

        kind, device = opts.get("type", ""), opts.get("device", "")
        flags, _, fsdata = parse_options([o for o in opts.get("o", "").split(",") if o])
        try:
            linux.mount(device, str(data), kind, flags, fsdata or None)
        except OSError as exc:
            # moby/sys/mount's words: mount SRC:DST[, flags: 0xF][, data: D]: <errno text>
            where = f"mount {device}:{data}" + (f", flags: 0x{flags:x}" if flags else "") + \
                (f", data: {fsdata}" if fsdata else "")
            why = os.strerror(exc.errno).lower() if exc.errno else str(exc)
            # docker's CLI turns a start failure that says "no such file or directory" into 127
            raise DockyardError(f"error while mounting volume '{data}': failed to mount local "
                                f"volume: {where}: {why}",
                                127 if exc.errno == errno.ENOENT else None) from None

    def _unmount(self, name: str) -> None:
        data = self.mountpoint(name)
        while _is_mountpoint(data):
            proc = subprocess.run(["umount", "-l", str(data)], capture_output=True, text=True)
            if proc.returncode != 0:
                raise DockyardError(f"cannot unmount volume {name}: {proc.stderr.strip()}")

    # -- container hooks -------------------------------------------------------------------------
    def specs_from_api(self, host_config: dict[str, Any] | None,
                       config: dict[str, Any] | None = None) -> tuple[list[MountSpec], list[str]]:
        """Mount specs and ``VolumesFrom`` from a docker API create body's parts.

        ``HostConfig.Binds`` (``-v`` with a source), ``HostConfig.Mounts`` (``--mount``),
        ``HostConfig.Tmpfs`` and ``Config.Volumes`` (anonymous ``-v /path``).
        """
        hc = host_config or {}
        specs: list[MountSpec] = []
        for raw in hc.get("Binds") or []:
            specs.append(mountspec.volume_flag_spec(raw))
        for m in hc.get("Mounts") or []:
            specs.append(mountspec.from_api(m))
        for target, opts in (hc.get("Tmpfs") or {}).items():
            specs.append(mountspec.from_tmpfs_flag(target, opts))
        # anonymous volumes last: a bind or named volume on the same target replaces them
        taken = {s.target for s in specs}
        for target in (config or {}).get("Volumes") or {}:
            spec = mountspec.volume_flag_spec(target)
            if spec.target not in taken:
                specs.append(spec)
        return specs, list(hc.get("VolumesFrom") or [])

    def resolve_mounts(self, container_id: str, specs: Iterable[MountSpec],
                       image: Any = None, rootfs_path: str | os.PathLike[str] | None = None,
                       volumes_from: Iterable[str] = ()) -> list[dict[str, Any]]:
        """OCI mounts for a container; call at create (no rootfs needed) and again at start.

        Creates named volumes on first use and anonymous ones for ``-v /path`` and the image's
        VOLUMEs, fills an empty volume from the image's content at its target (``rootfs_path``:
        the container's mounted rootfs), mounts volumes with driver options, and records the
        container as a user of each volume. On error nothing it created is left behind.
        """
        wanted = self._expand(container_id, list(specs), image, list(volumes_from))
        previous = self.store.container(container_id)
        previous_specs = [MountSpec.from_dict(d) for d in previous[0]] if previous else []
        rootfs = Path(rootfs_path) if rootfs_path else None
        created: list[str] = []
        mounted: list[str] = []
        oci: list[dict[str, Any]] = []
        shown: list[dict[str, Any]] = []
        final: list[MountSpec] = []
        try:
            for spec in wanted:
                if spec.type == "volume" and not spec.source:
                    # an anonymous volume keeps its name across create -> start
                    same = next((p for p in previous_specs if p.type == "volume" and
                                 p.target == spec.target and p.mode == "anonymous"), None)
                    name = same.source if same else secrets.token_hex(32)
                    spec = MountSpec(**{**spec.to_dict(), "source": name, "mode": "anonymous",
                                        "volume_labels": spec.volume_labels,
                                        "volume_options": spec.volume_options})
                final.append(spec)
                m, s = self._one(spec, rootfs, created, mounted)
                oci.append(m)
                shown.append(s)
            with self.store.tx() as conn:
                conn.execute("DELETE FROM vol_refs WHERE container_id=?", (container_id,))
                for spec in final:
                    if spec.type == "volume":
                        conn.execute("INSERT OR IGNORE INTO vol_refs (volume, container_id) "
                                     "VALUES (?, ?)", (spec.source, container_id))
                        if (self.store.get(spec.source) or Volume("")).options:
                            conn.execute("INSERT OR IGNORE INTO vol_active (volume, container_id)"
                                         " VALUES (?, ?)", (spec.source, container_id))
                import json

                conn.execute("INSERT OR REPLACE INTO vol_containers (container_id, specs, mounts) "
                             "VALUES (?,?,?)", (container_id,
                                                json.dumps([s.to_dict() for s in final]),
                                                json.dumps(shown)))
        except BaseException:
            for name in mounted:
                if not self.store.active_users(name):
                    self._unmount(name)
            for name in created:
                if not self.store.refs(name):
                    self.remove(name, force=True)
            raise
        return oci

    def _expand(self, cid: str, specs: list[MountSpec], image: Any,
                volumes_from: list[str]) -> list[MountSpec]:
        """User mounts, then ``--volumes-from``, then the image's VOLUMEs; one per target."""
        by_target: dict[str, MountSpec] = {}
        for spec in specs:
            if spec.target in by_target:
                raise InvalidArgument(f"Duplicate mount point: {spec.target}")
            by_target[spec.target] = spec
        for ref in volumes_from:
            source, _, mode = ref.partition(":")
            if mode not in ("", "ro", "rw"):
                raise InvalidArgument(f"invalid mode: {mode}")
            other = self._container_mounts(source)
            for d in other:
                s = MountSpec.from_dict(d)
                if s.type == "tmpfs" or s.target in by_target:
                    continue
                if mode:
                    s = MountSpec(**{**s.to_dict(), "read_only": mode == "ro",
                                     "volume_labels": s.volume_labels,
                                     "volume_options": s.volume_options})
                by_target[s.target] = s
        for target in _image_volumes(image):
            target = os.path.normpath(target)
            if target not in by_target:
                by_target[target] = MountSpec("volume", target)
        return list(by_target.values())

    def _container_mounts(self, ref: str) -> list[dict[str, Any]]:
        cid = _resolve_container(self.client, ref)
        found = self.store.container(cid) if cid else None
        if found is None:
            matches = [c for c in self.store.container_ids() if c.startswith(ref)]
            found = self.store.container(matches[0]) if len(matches) == 1 else None
        if found is None:
            raise NotFound(f"No such container: {ref}")
        return found[0]

    def _one(self, spec: MountSpec, rootfs: Path | None, created: list[str],
             mounted: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
        target_in_rootfs = secure_join(rootfs, spec.target) if rootfs else None
        if spec.type == "tmpfs":
            opts = ["nosuid", "nodev", "noexec", "ro" if spec.read_only else "rw"]
            if spec.tmpfs_size:
                opts.append(f"size={spec.tmpfs_size}")
            if spec.tmpfs_mode:
                opts.append(f"mode={spec.tmpfs_mode:o}")
            return ({"destination": spec.target, "type": "tmpfs", "source": "tmpfs",
                     "options": opts},
                    {"Type": "tmpfs", "Source": "", "Destination": spec.target, "Mode": "",
                     "RW": not spec.read_only, "Propagation": ""})
        if spec.type == "bind":
            src = Path(spec.source)
            if not src.exists():
                if not spec.create_source:
                    raise InvalidArgument(f'invalid mount config for type "bind": bind source '
                                          f"path does not exist: {spec.source}")
                src.mkdir(parents=True, exist_ok=True, mode=0o755)
            if target_in_rootfs is not None and src.is_dir() and target_in_rootfs.exists() \
                    and not target_in_rootfs.is_dir():
                raise InvalidArgument(f"cannot mount directory {spec.source} over existing file "
                                      f"{spec.target}: not a directory")
            prop = spec.propagation or "rprivate"
            return ({"destination": spec.target, "type": "bind", "source": spec.source,
                     "options": ["rbind", prop, "ro" if spec.read_only else "rw"]},
                    {"Type": "bind", "Source": spec.source, "Destination": spec.target,
                     "Mode": spec.mode, "RW": not spec.read_only, "Propagation": prop})
        # a volume
        if target_in_rootfs is not None and target_in_rootfs.exists() and \
                not target_in_rootfs.is_dir():
            raise InvalidArgument(f"cannot mount volume over existing file, file exists "
                                  f"{spec.target}")
        vol = self.store.get(spec.source)
        if vol is None:
            vol = self.create(spec.source, labels=dict(spec.volume_labels),
                              options=dict(spec.volume_options) or None,
                              anonymous=spec.mode == "anonymous")
            created.append(vol.name)
            from dockyard.engine.events import emit_volume

            emit_volume(self.client, "create", vol.name)  # made for a container, as dockerd reports it
        if vol.options and not _is_mountpoint(self.mountpoint(vol.name)):
            self._mount(vol)
            mounted.append(vol.name)
        data = self.mountpoint(vol.name)
        if not spec.nocopy and target_in_rootfs is not None and target_in_rootfs.is_dir():
            _prefill(target_in_rootfs, data)
        return ({"destination": spec.target, "type": "bind", "source": str(data),
                 "options": ["rbind", "rprivate", "ro" if spec.read_only else "rw"]},
                {"Type": "volume", "Name": vol.name, "Source": str(data),
                 "Destination": spec.target, "Driver": "local",
                 "Mode": "z" if spec.mode not in ("anonymous",) and not spec.mode else
                 ("" if spec.mode == "anonymous" else spec.mode),
                 "RW": not spec.read_only, "Propagation": ""})

    def release(self, container_id: str) -> None:
        """The container stopped: unmount driver-option volumes it was the last user of."""
        rows = self.store.db.execute("SELECT volume FROM vol_active WHERE container_id=?",
                                     (container_id,)).fetchall()
        self.store.db.execute("DELETE FROM vol_active WHERE container_id=?", (container_id,))
        for (name,) in rows:
            if not self.store.active_users(name):
                self._unmount(name)

    def forget(self, container_id: str, remove_anonymous: bool = False) -> list[str]:
        """The container is removed: drop its claims; with ``rm -v`` remove its anonymous
        volumes no other container uses. Returns the names removed."""
        self.release(container_id)
        names = [r[0] for r in self.store.db.execute(
            "SELECT volume FROM vol_refs WHERE container_id=?", (container_id,))]
        with self.store.tx() as conn:
            conn.execute("DELETE FROM vol_refs WHERE container_id=?", (container_id,))
            conn.execute("DELETE FROM vol_containers WHERE container_id=?", (container_id,))
        removed = []
        if remove_anonymous:
            for name in names:
                v = self.store.get(name)
                if v is not None and v.anonymous and not self.store.refs(name):
                    self.remove(name, force=True)
                    removed.append(name)
                    from dockyard.engine.events import emit_volume

                    emit_volume(self.client, "destroy", name)  # ``rm -v``, as dockerd reports it
        return removed

    def mounts_inspect(self, container_id: str) -> list[dict[str, Any]]:
        """docker's ``Mounts`` list for ``inspect``."""
        found = self.store.container(container_id)
        return found[1] if found else []


def _check_local_options(name: str, opts: dict[str, str]) -> dict[str, str]:
    """The local driver's checks, in dockerd 20.10's order and words. A bind device that does
    not exist is only found when the volume is mounted, as in docker."""
    for key in opts:
        if key not in LOCAL_OPTIONS:
            raise InvalidArgument(f'create {name}: invalid option: "{key}"')
    if opts:
        if "size" in opts:
            raise InvalidArgument(f"create {name}: quota size requested but no quota support")
        for key in ("device", "type"):
            if key not in opts:
                raise InvalidArgument(f'create {name}: missing required option: "{key}"')
    return opts


def _prefill(src: Path, data: Path) -> None:
    """Copy the image's content at the mount target into an empty volume (``cp -a``: owners,
    modes, links and xattrs as in the image)."""
    try:
        if any(data.iterdir()):
            return
    except OSError:
        return
    if not any(src.iterdir()):
        st = src.stat()
        os.chmod(data, st.st_mode & 0o7777)
        os.chown(data, st.st_uid, st.st_gid)
        return
    proc = subprocess.run(["cp", "-a", "--", f"{src}/.", f"{data}/"], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        raise DockyardError(f"cannot copy image content into volume: {proc.stderr.strip()}")


def _image_volumes(image: Any) -> list[str]:
    """VOLUME paths of an image given as a config dict, an image object or a list of paths."""
    if image is None:
        return []
    if isinstance(image, (list, tuple, set)):
        return [str(p) for p in image]
    cfg = image
    if not isinstance(cfg, dict):
        cfg = getattr(image, "config", None) or {}
    if "config" in cfg and isinstance(cfg["config"], dict):
        cfg = cfg["config"]
    if "Config" in cfg and isinstance(cfg["Config"], dict):
        cfg = cfg["Config"]
    return list((cfg.get("Volumes") or {}).keys())


def _resolve_container(client: Any, ref: str) -> str | None:
    try:
        containers = client.containers
    except (ImportError, AttributeError):
        return None
    for attr in ("get", "find", "lookup"):
        fn = getattr(containers, attr, None)
        if fn is not None:
            try:
                obj = fn(ref)
            except DockyardError:
                return None
            return str(getattr(obj, "id", None) or obj["Id"])
    return None


def _matches(v: Volume, key: str, value: str, used: set[str]) -> bool:
    if key == "name":
        return re.search(value, v.name) is not None
    if key == "driver":
        return v.driver == value
    if key == "dangling":
        want = value.lower() in ("1", "true")
        if value.lower() not in ("1", "true", "0", "false"):
            raise InvalidArgument(f"Invalid filter 'dangling=[{value}]'")
        return (v.name not in used) == want
    if key == "label":
        k, sep, val = value.partition("=")
        labels = v.labels or {}
        if k == ANON_LABEL and not sep and v.anonymous:  # what docker 23+ labels them with
            return True
        return k in labels and (not sep or labels[k] == val)
    raise InvalidArgument(f"Invalid filter '{key}'")
