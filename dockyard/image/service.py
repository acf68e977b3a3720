"""The local image DB: which images exist, their names, and the operations on them.

An image is identified, as docker identifies it, by the digest of its config ("image ID").
Names (``docker.io/library/busybox:latest``) point at image IDs; an image with no name is
*dangling*. Manifests, configs and layers live in the content store; each layer is unpacked
once into a snapshot (shared by every image that has it) when the image is registered, so that
``run`` never waits for unpacking.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO, Iterable

from dockyard import timeutil
from dockyard.content import digest as dg
from dockyard.errors import Conflict, DockyardError, InvalidArgument, InvalidContent, NotFound
from dockyard.image import mediatypes as mt
from dockyard.image import reference as refs

if TYPE_CHECKING:  # pragma: no cover
    from dockyard.client import Client
    from dockyard.content.store import Lease

_SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    id TEXT PRIMARY KEY,               -- sha256:<config digest>
    manifest_digest TEXT NOT NULL,     -- the platform manifest (what we push/save)
    target_digest TEXT NOT NULL,       -- what was received: an index or the manifest itself
    created TEXT,                      -- config.created
    size INTEGER NOT NULL DEFAULT 0,   -- unpacked size of all layers
    top_chain_id TEXT,                 -- snapshot chain of the top layer (NULL: no layers)
    parent TEXT,                       -- docker's Parent (builds)
    added REAL NOT NULL,
    last_tag_time REAL
);
CREATE TABLE IF NOT EXISTS tags (
    name TEXT PRIMARY KEY,             -- docker.io/library/busybox:latest
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS tags_image ON tags(image_id);
CREATE TABLE IF NOT EXISTS repo_digests (
    name TEXT PRIMARY KEY,             -- docker.io/library/busybox@sha256:... (one image each)
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS repo_digests_image ON repo_digests(image_id);
CREATE TABLE IF NOT EXISTS layer_sizes (
    diff_id TEXT PRIMARY KEY,          -- uncompressed tar length, for docker-archive save
    size INTEGER NOT NULL
);
"""


@dataclass
class Layer:
    """One layer as the manifest describes it, with its uncompressed diff ID from the config."""

    digest: str
    media_type: str
    size: int
    diff_id: str
    annotations: dict[str, str] = field(default_factory=dict)


@dataclass
class Image:
    """An image in the local DB. ``config`` is the whole OCI config document."""

    id: str
    manifest_digest: str
    target_digest: str
    manifest: dict[str, Any]
    config_doc: dict[str, Any]
    repo_tags: list[str]
    repo_digests: list[str]
    size: int
    top_chain_id: str | None
    parent: str
    added: float
    last_tag_time: float | None

    @property
    def config(self) -> dict[str, Any]:
        """The runtime part (``config.Env``, ``Cmd``, ...), as docker's ``Config``."""
        return self.config_doc.get("config") or {}

    @property
    def short_id(self) -> str:
        return dg.short_id(self.id)

    @property
    def created(self) -> str:
        return self.config_doc.get("created") or ""

    @property
    def layers(self) -> list[Layer]:
        diff_ids = (self.config_doc.get("rootfs") or {}).get("diff_ids") or []
        return [Layer(d["digest"], d["mediaType"], d["size"], diff_ids[i], d.get("annotations") or {})
                for i, d in enumerate(self.manifest.get("layers") or [])]

    @property
    def labels(self) -> dict[str, str]:
        return self.config.get("Labels") or {}

    @property
    def tags(self) -> list[str]:
        return self.repo_tags


class ImageService:
    """``client.images``: list, get, tag, remove, import, load, save, inspect, history, prune."""

    def __init__(self, client: "Client") -> None:
        self.client = client
        self.state = client.state

    # -- storage -------------------------------------------------------------------------------
    def _db(self):  # noqa: ANN202
        return self.state.db(_SCHEMA)

    @property
    def content(self):  # noqa: ANN201
        return self.client.content

    def _load_json(self, digest: str) -> dict[str, Any]:
        try:
            return json.loads(self.content.read_bytes(digest))
        except NotFound:
            raise InvalidContent(f"image data is missing from the content store: blob {digest}") from None
        except (ValueError, UnicodeDecodeError):
            raise InvalidContent(f"blob {digest} is not valid JSON") from None

    def _row_to_image(self, row: Any) -> Image:
        db = self._db()
        manifest = self._load_json(row["manifest_digest"])
        config_doc = self._load_json(manifest["config"]["digest"])
        tags = [r["name"] for r in db.execute("SELECT name FROM tags WHERE image_id = ? ORDER BY name", (row["id"],))]
        digests = [r["name"] for r in db.execute("SELECT name FROM repo_digests WHERE image_id = ? ORDER BY name", (row["id"],))]
        return Image(id=row["id"], manifest_digest=row["manifest_digest"], target_digest=row["target_digest"],
                     manifest=manifest, config_doc=config_doc,
                     repo_tags=[refs.parse(t).familiar for t in tags],
                     repo_digests=[refs.parse(d, default_tag=False).familiar for d in digests],
                     size=row["size"], top_chain_id=row["top_chain_id"], parent=row["parent"] or "",
                     added=row["added"], last_tag_time=row["last_tag_time"])

    # -- lookup --------------------------------------------------------------------------------
    def resolve_id(self, name: str) -> str:
        """The image ID that ``name`` (a reference, a full or short ID) denotes; NotFound otherwise."""
        db = self._db()
        if name.startswith("sha256:") and dg.is_digest(name):
            row = db.execute("SELECT id FROM images WHERE id = ?", (name,)).fetchone()
            if row:
                return row["id"]
        ref: refs.Reference | None = None
        try:
            ref = refs.parse(name)
        except InvalidArgument:
            if not refs.is_image_id_prefix(name):
                raise
        if ref is not None:
            if ref.digest:
                row = db.execute("SELECT image_id FROM repo_digests WHERE name = ?",
                                 (f"{ref.name}@{ref.digest}",)).fetchone()
                if row is None:
                    row = db.execute("SELECT id AS image_id FROM images WHERE manifest_digest = ? OR target_digest = ?",
                                     (ref.digest, ref.digest)).fetchone()
            else:
                row = db.execute("SELECT image_id FROM tags WHERE name = ?", (ref.tagged,)).fetchone()
            if row:
                return row["image_id"]
        if refs.is_image_id_prefix(name):
            hex_ = name[7:] if name.startswith("sha256:") else name
            rows = db.execute("SELECT id FROM images WHERE id LIKE ?", (f"sha256:{hex_}%",)).fetchall()
            if len(rows) == 1:
                return rows[0]["id"]
            if len(rows) > 1:
                raise Conflict(f"multiple IDs found with provided prefix: {name}")
        shown = ref.familiar if ref is not None and not ref.digest else name
        raise NotFound(f"No such image: {shown}")

    def get(self, name: str) -> Image:
        """The image named by a reference or (short) ID. Raises NotFound (docker's message)."""
        image_id = self.resolve_id(name)
        row = self._db().execute("SELECT * FROM images WHERE id = ?", (image_id,)).fetchone()
        return self._row_to_image(row)

    def exists(self, name: str) -> bool:
        try:
            self.resolve_id(name)
        except (NotFound, InvalidArgument):
            return False
        return True

    def list(self, all: bool = False, filters: dict[str, list[str]] | None = None) -> list[Image]:
        """Images, newest first. Without ``all``, intermediate images (untagged parents) are hidden."""
        from dockyard.image.filters import ImageFilter

        flt = ImageFilter(filters or {}, self)
        db = self._db()
        parents = {r["parent"] for r in db.execute("SELECT parent FROM images WHERE parent IS NOT NULL AND parent != ''")}
        out = []
        for row in db.execute("SELECT * FROM images").fetchall():
            image = self._row_to_image(row)
            if not all and not image.repo_tags and row["id"] in parents:
                continue
            if flt.match(image):
                out.append(image)
        out.sort(key=lambda i: (i.created, i.added), reverse=True)
        return out

    # -- registration --------------------------------------------------------------------------
    def register(self, target_digest: str, names: Iterable[str] = (), platform: str | None = None,
                 lease: "Lease | None" = None, parent: str = "",
                 repo_digest_names: Iterable[str] = ()) -> Image:
        """Make the manifest (or index) ``target_digest``, already in the content store, an image.

        Verifies that every blob it names is present, unpacks its layers into snapshots, then
        (and only then) records it and points ``names`` at it.
        """
        from dockyard.image import platform as plat

        target_doc = self._load_json(target_digest)
        target_type = mt.detect_manifest_type(target_doc)
        manifest_digest = target_digest
        manifest = target_doc
        if mt.is_index(target_type):
            want = plat.parse(platform)
            entry = plat.select(target_doc.get("manifests") or [], want)
            manifest_digest = entry["digest"]
            manifest = self._load_json(manifest_digest)
            mt.detect_manifest_type(manifest)
        config_desc = manifest.get("config") or {}
        if not config_desc.get("digest"):
            raise InvalidContent(f"manifest {manifest_digest} has no config")
        if not self.content.exists(config_desc["digest"]):
            raise InvalidContent(f"manifest {manifest_digest} names a missing blob: {config_desc['digest']}")
        config_doc = self._load_json(config_desc["digest"])
        diff_ids = (config_doc.get("rootfs") or {}).get("diff_ids") or []
        layers = manifest.get("layers") or []
        if len(diff_ids) != len(layers):
            raise InvalidContent(f"image config lists {len(diff_ids)} layers but the manifest has {len(layers)}")
        for desc in layers:
            mt.layer_compression(desc.get("mediaType", ""))
            if not self.content.exists(desc["digest"]):
                raise InvalidContent(f"manifest {manifest_digest} names a missing blob: {desc['digest']}")
        chain, size = self._unpack_layers(layers, diff_ids, lease)
        image_id = config_desc["digest"]
        now = time.time()
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute(
                "INSERT INTO images (id, manifest_digest, target_digest, created, size, top_chain_id, parent, added)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET"
                " manifest_digest = excluded.manifest_digest, target_digest = excluded.target_digest,"
                " parent = CASE WHEN excluded.parent != '' THEN excluded.parent ELSE images.parent END",
                (image_id, manifest_digest, target_digest, config_doc.get("created"), size, chain, parent, now))
            for name in names:
                self._set_tag(db, name, image_id, now)
            for name in repo_digest_names:
                self._set_repo_digest(db, name, image_id)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return self.get(image_id)

    def _unpack_layers(self, layers: list[dict], diff_ids: list[str], lease: "Lease | None") -> tuple[str | None, int]:
        from dockyard.snapshot.store import chain_id as make_chain_id

        snaps = self.client.snapshots
        parent: str | None = None
        total = 0
        for i, desc in enumerate(layers):
            cid = make_chain_id(diff_ids[: i + 1])
            if snaps.has(cid):
                if lease is not None:
                    lease.add("snapshot", cid)
                total += snaps.usage(cid)
            else:
                with self.content.open(desc["digest"]) as blob:
                    cid2, size = snaps.unpack(parent, diff_ids[i], blob, desc["mediaType"], lease=lease)
                if cid2 != cid:
                    raise InvalidContent(f"layer {desc['digest']} unpacked to an unexpected chain {cid2}")
                total += size
            parent = cid
        return parent, total

    def _set_tag(self, db: Any, name: str, image_id: str, now: float) -> None:
        ref = refs.parse(name)
        if ref.digest:
            raise InvalidArgument(f"refusing to create a tag with a digest reference: {name}")
        db.execute("INSERT INTO tags (name, image_id) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET image_id = excluded.image_id",
                   (ref.tagged, image_id))
        db.execute("UPDATE images SET last_tag_time = ? WHERE id = ?", (now, image_id))

    def record_layer_size(self, diff_id: str, size: int) -> None:
        self._db().execute("INSERT OR REPLACE INTO layer_sizes (diff_id, size) VALUES (?, ?)", (diff_id, size))

    def layer_size(self, diff_id: str) -> int | None:
        row = self._db().execute("SELECT size FROM layer_sizes WHERE diff_id = ?", (diff_id,)).fetchone()
        return row["size"] if row else None

    def create_image(self, config_doc: dict[str, Any], layers: list[Layer], tags: Iterable[str] = (),
                     parent: str = "", lease: "Lease | None" = None) -> Image:
        """Write config + manifest for layers already in the content store and register the image.

        ``config_doc`` is a whole OCI config; its ``rootfs.diff_ids`` are set from ``layers``.
        """
        config_doc = dict(config_doc)
        config_doc["rootfs"] = {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]}
        config_bytes = canonical_json(config_doc)
        own_lease = None
        if lease is None:
            own_lease = self.content.lease()
            lease = own_lease.__enter__()
        try:
            config_digest = self.content.write_bytes(config_bytes, lease=lease)
            manifest = {
                "schemaVersion": 2,
                "mediaType": mt.OCI_MANIFEST,
                "config": {"mediaType": mt.OCI_CONFIG, "digest": config_digest, "size": len(config_bytes)},
                "layers": [{"mediaType": layer.media_type, "digest": layer.digest, "size": layer.size,
                            **({"annotations": layer.annotations} if layer.annotations else {})}
                           for layer in layers],
            }
            manifest_digest = self.content.write_bytes(canonical_json(manifest), lease=lease)
            return self.register(manifest_digest, tags, lease=lease, parent=parent)
        finally:
            if own_lease is not None:
                own_lease.__exit__(None, None, None)

    # -- names ---------------------------------------------------------------------------------
    def tag(self, source: str, target: str) -> None:
        """``docker tag SOURCE TARGET``."""
        image_id = self.resolve_id(source)
        ref = refs.parse(target)
        if ref.digest:
            raise InvalidArgument(f"refusing to create a tag with a digest reference: {target}")
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            self._set_tag(db, target, image_id, time.time())
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def add_repo_digest(self, image_id: str, name_at_digest: str) -> None:
        self._set_repo_digest(self._db(), name_at_digest, image_id)

    @staticmethod
    def _set_repo_digest(db: Any, name: str, image_id: str) -> None:
        """A ``name@digest`` belongs to one image: the newest one that came from it (as docker)."""
        db.execute("INSERT INTO repo_digests (name, image_id) VALUES (?, ?) "
                   "ON CONFLICT(name) DO UPDATE SET image_id = excluded.image_id", (name, image_id))

    # -- removal -------------------------------------------------------------------------------
    def _container_users(self, image_id: str) -> list[tuple[str, bool]]:
        """(container id, running) for containers created from the image."""
        try:
            containers = self.client.containers
        except (ImportError, AttributeError):
            return []
        users = getattr(containers, "image_users", None)
        if users is None:
            return []
        out = []
        for cid in users(image_id):
            running = False
            try:
                running = bool(containers.is_running(cid)) if hasattr(containers, "is_running") else False
            except DockyardError:
                pass
            out.append((cid, running))
        return out

    def remove(self, name: str, force: bool = False, prune: bool = True) -> list[dict[str, str]]:
        """``docker rmi``: untag, and delete the image when no name is left (docker's rules).

        Returns docker's report: ``[{"Untagged": ...}, {"Deleted": ...}]``.
        """
        image_id = self.resolve_id(name)
        db = self._db()
        records: list[dict[str, str]] = []
        names = self._names_of(image_id)
        if not self._is_id_prefix(image_id, name):
            ref = refs.parse(name)
            if not force and _single_reference(names) and self._container_users(image_id):
                user = self._container_users(image_id)[0][0]
                raise Conflict(f'conflict: unable to remove repository reference "{name}" (must force) - '
                               f"container {dg.short_id(user)} is using its referenced image {dg.short_id(image_id)}")
            key = f"{ref.name}@{ref.digest}" if ref.digest else ref.tagged
            db.execute("DELETE FROM repo_digests WHERE name = ?" if ref.digest else "DELETE FROM tags WHERE name = ?", (key,))
            records.append({"Untagged": ref.familiar})
            names = self._names_of(image_id)
            if not ref.digest and not any("@" not in n and refs.parse(n).name == ref.name for n in names):
                for n in [n for n in names if "@" in n and n.split("@")[0] == ref.name]:
                    db.execute("DELETE FROM repo_digests WHERE name = ?", (n,))
                    records.append({"Untagged": refs.parse(n, default_tag=False).familiar})
                names = self._names_of(image_id)
            if names:
                return records
        elif _single_reference(names):
            self._check_conflicts(image_id, hard_only=force, ignore_references=True)
            for n in names:
                self._drop_name(db, n)
                records.append({"Untagged": refs.parse(n, default_tag=False).familiar})
        self._delete_helper(image_id, records, force, prune)
        return records

    def _names_of(self, image_id: str) -> list[str]:
        db = self._db()
        return ([r["name"] for r in db.execute("SELECT name FROM tags WHERE image_id = ? ORDER BY name", (image_id,))]
                + [r["name"] for r in db.execute("SELECT name FROM repo_digests WHERE image_id = ? ORDER BY name", (image_id,))])

    @staticmethod
    def _drop_name(db: Any, name: str) -> None:
        db.execute("DELETE FROM repo_digests WHERE name = ?" if "@" in name else "DELETE FROM tags WHERE name = ?", (name,))

    @staticmethod
    def _is_id_prefix(image_id: str, name: str) -> bool:
        hex_ = name[7:] if name.startswith("sha256:") else name
        return refs.is_image_id_prefix(name) and image_id[7:].startswith(hex_)

    def _check_conflicts(self, image_id: str, hard_only: bool, ignore_references: bool = False) -> None:
        """docker's checkImageDeleteConflict: hard = children, running containers; soft = names, stopped."""
        short = dg.short_id(image_id)
        db = self._db()
        if db.execute("SELECT 1 FROM images WHERE parent = ?", (image_id,)).fetchone():
            raise Conflict(f"conflict: unable to delete {short} (cannot be forced) - image has dependent child images")
        users = self._container_users(image_id)
        for cid, running in users:
            if running:
                raise Conflict(f"conflict: unable to delete {short} (cannot be forced) - "
                               f"image is being used by running container {dg.short_id(cid)}")
        if hard_only:
            return
        if not ignore_references and self._names_of(image_id):
            raise Conflict(f"conflict: unable to delete {short} (must be forced) - image is referenced in multiple repositories")
        for cid, _ in users:
            raise Conflict(f"conflict: unable to delete {short} (must be forced) - "
                           f"image is being used by stopped container {dg.short_id(cid)}")

    def _delete_helper(self, image_id: str, records: list[dict[str, str]], force: bool, prune: bool) -> None:
        self._check_conflicts(image_id, hard_only=force)
        db = self._db()
        row = db.execute("SELECT parent FROM images WHERE id = ?", (image_id,)).fetchone()
        parent = row["parent"] if row else ""
        db.execute("BEGIN IMMEDIATE")
        try:
            for n in self._names_of(image_id):
                self._drop_name(db, n)
                records.append({"Untagged": refs.parse(n, default_tag=False).familiar})
            db.execute("DELETE FROM images WHERE id = ?", (image_id,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        records.append({"Deleted": image_id})
        from dockyard.gc import collect

        for chain in collect(self.client).get("snapshots", []):
            records.append({"Deleted": chain})
        if prune and parent and db.execute("SELECT 1 FROM images WHERE id = ?", (parent,)).fetchone():
            if not self._names_of(parent) and not self._container_users(parent):
                try:
                    self._delete_helper(parent, records, False, True)
                except Conflict:
                    pass

    def prune(self, all: bool = False, filters: dict[str, list[str]] | None = None) -> dict[str, Any]:
        """``docker image prune``: dangling images (or, with ``all``, every unused one)."""
        from dockyard.image.filters import ImageFilter

        from dockyard.engine.timeutil import parse_timestamp

        filters = dict(filters or {})
        not_labels = filters.pop("label!", [])  # prune's own keys (docker's images list refuses them)
        try:
            until = [parse_timestamp(v) / 1e9 for v in filters.pop("until", [])]
        except ValueError as exc:
            raise InvalidArgument(str(exc)) from None
        flt = ImageFilter(filters, self, keys=("dangling", "label"))
        deleted: list[dict[str, str]] = []
        # docker counts the layers it removed, not the images' sizes: an image whose layers
        # another image still uses reclaims nothing
        layer_sizes = {s.chain_id: s.size for s in self.client.snapshots.list() if s.chain_id}
        for image in self.list(all=True):
            if not all and image.repo_tags:
                continue
            if not flt.match(image) or self._container_users(image.id):
                continue
            if any(_has_label(image.labels, want) for want in not_labels):
                continue
            created = timeutil.parse_rfc3339(image.created) or 0
            if any(created >= limit for limit in until):  # until: only what was made before
                continue
            try:
                deleted.extend(self.remove(image.id, force=True, prune=True))
            except DockyardError:
                continue
        from dockyard.gc import collect

        collect(self.client)
        left = {s.chain_id for s in self.client.snapshots.list() if s.chain_id}
        reclaimed = sum(size for chain, size in layer_sizes.items() if chain not in left)
        return {"ImagesDeleted": deleted or None, "SpaceReclaimed": reclaimed}

    # -- formats in and out (each in its own module) ----------------------------------------------
    def import_rootfs(self, source: str | BinaryIO, name: str | None = None, changes: list[str] | None = None,
                      message: str = "", platform: str | None = None) -> Image:
        from dockyard.image.importer import import_rootfs

        return import_rootfs(self, source, name, changes or [], message, platform)

    def load(self, stream: BinaryIO, platform: str | None = None) -> list[str]:
        """Load a docker-archive or OCI layout tar; returns docker's ``Loaded image: ...`` lines."""
        from dockyard.image.archive_load import load_archive

        return load_archive(self, stream, platform)

    def save(self, names: list[str], out: BinaryIO, format: str = "docker") -> None:
        from dockyard.image.archive_save import save_archive

        save_archive(self, names, out, format)

    def inspect(self, name: str) -> dict[str, Any]:
        from dockyard.image.inspect import inspect_image

        return inspect_image(self, self.get(name))

    def history(self, name: str) -> list[dict[str, Any]]:
        from dockyard.image.inspect import image_history

        return image_history(self, self.get(name))


def _has_label(labels: dict[str, str], want: str) -> bool:
    """``key`` or ``key=value``, as docker's label filters match."""
    key, eq, value = want.partition("=")
    return key in labels and (not eq or labels[key] == value)


def _single_reference(names: list[str]) -> bool:
    """docker's isSingleReference: at most one tag, and every name in the same repository."""
    tags = [n for n in names if "@" not in n]
    if len(tags) > 1:
        return False
    repos = {n.split("@")[0] if "@" in n else refs.parse(n).name for n in names}
    return len(repos) <= 1


def canonical_json(doc: Any) -> bytes:
    """Compact JSON with sorted keys: the same document always gets the same digest."""
    return json.dumps(doc, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()
