"""Compare images file by file: apply layer tars (with whiteouts) into a path -> entry table.

Used by the side-by-side tests: the same function flattens a ``docker save`` archive and a
dockyard image, so a difference in paths, types, modes, owners, link targets, contents or
hardlink groups shows up as a readable diff. Modification times are not compared (docker's
own builds do not reproduce them either).
"""
from __future__ import annotations

import hashlib
import io
import json
import posixpath
import subprocess
import tarfile
from dataclasses import dataclass
from typing import IO, Iterable


@dataclass(frozen=True)
class Entry:
    kind: str            # file, dir, symlink, char, block, fifo
    mode: int            # permission + setuid/setgid/sticky bits
    uid: int
    gid: int
    link: str = ""       # symlink target
    digest: str = ""     # content sha256 (files)
    size: int = 0
    xattrs: tuple = ()

    def show(self) -> str:
        extra = f" -> {self.link}" if self.link else (f" {self.digest[:12]} {self.size}B" if self.kind == "file" else "")
        return f"{self.kind} {self.mode:04o} {self.uid}:{self.gid}{extra}"


_KINDS = {tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.DIRTYPE: "dir", tarfile.SYMTYPE: "symlink",
          tarfile.CHRTYPE: "char", tarfile.BLKTYPE: "block", tarfile.FIFOTYPE: "fifo", tarfile.CONTTYPE: "file"}


def _norm(name: str) -> str:
    name = posixpath.normpath("/" + name.lstrip("./") if not name.startswith("/") else name)
    return "/" if name in ("/", "/.") else name


class FsTable:
    """The merged filesystem of an image: apply layers bottom to top."""

    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}
        self.hardlinks: dict[str, str] = {}  # path -> first path of its hardlink group

    def _remove_tree(self, path: str, keep_self: bool = False) -> None:
        prefix = path.rstrip("/") + "/"
        for p in [p for p in self.entries if p.startswith(prefix) or (p == path and not keep_self)]:
            del self.entries[p]
            self.hardlinks.pop(p, None)

    def apply(self, stream: IO[bytes]) -> None:
        seen_in_layer: set[str] = set()
        with tarfile.open(fileobj=stream, mode="r|*") as tf:
            for ti in tf:
                path = _norm(ti.name)
                base = posixpath.basename(path)
                parent = posixpath.dirname(path)
                if base == ".wh..wh..opq":
                    prefix = parent.rstrip("/") + "/"
                    for p in [p for p in self.entries if p.startswith(prefix) and p not in seen_in_layer]:
                        del self.entries[p]
                        self.hardlinks.pop(p, None)
                    continue
                if base.startswith(".wh."):
                    self._remove_tree(posixpath.join(parent, base[4:]))
                    continue
                seen_in_layer.add(path)
                if ti.type == tarfile.LNKTYPE:
                    target = _norm(ti.linkname)
                    src = self.entries.get(target)
                    if src is None:
                        raise AssertionError(f"hardlink {path} -> missing {target}")
                    if path in self.entries and self.entries[path].kind == "dir":
                        self._remove_tree(path)
                    self.entries[path] = src
                    self.hardlinks[path] = self.hardlinks.get(target, target)
                    self.hardlinks.setdefault(target, target)
                    continue
                kind = _KINDS.get(ti.type, f"type{ti.type!r}")
                if kind != "dir" and path in self.entries and self.entries[path].kind == "dir":
                    self._remove_tree(path)
                if kind == "dir" and path in self.entries and self.entries[path].kind != "dir":
                    del self.entries[path]
                digest = ""
                if kind == "file":
                    f = tf.extractfile(ti)
                    digest = hashlib.sha256(f.read() if f else b"").hexdigest()
                xattrs = tuple(sorted((k, v) for k, v in (ti.pax_headers or {}).items()
                                      if k.startswith("SCHILY.xattr.security.capability")))
                self.entries[path] = Entry(kind, ti.mode & 0o7777, ti.uid, ti.gid,
                                           ti.linkname if kind == "symlink" else "", digest,
                                           ti.size if kind == "file" else 0, xattrs)
                self.hardlinks.pop(path, None)

    def groups(self) -> set[frozenset[str]]:
        """Hardlink groups (paths sharing an inode), as sets of paths."""
        by_root: dict[str, set[str]] = {}
        for p, root in self.hardlinks.items():
            if p in self.entries:
                by_root.setdefault(root, set()).add(p)
        return {frozenset(g) for g in by_root.values() if len(g) > 1}


def flatten(layers: Iterable[IO[bytes]]) -> FsTable:
    t = FsTable()
    for layer in layers:
        t.apply(layer)
    return t


def saved_image(data: bytes) -> tuple[list[bytes], dict]:
    """The layer tars (uncompressed, bottom first) and the config of the first image in a
    ``docker save`` / ``dockyard image save`` archive."""
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        manifest = json.load(tf.extractfile("manifest.json"))[0]
        config = json.load(tf.extractfile(manifest["Config"]))
        return [tf.extractfile(layer).read() for layer in manifest["Layers"]], config


def docker_image_layers(ref: str) -> tuple[list[bytes], dict]:
    return saved_image(subprocess.run(["docker", "save", ref], capture_output=True, check=True).stdout)


def docker_image_fs(ref: str) -> tuple[FsTable, dict]:
    """Flatten a docker image through ``docker save``; also return its config document."""
    layers, config = docker_image_layers(ref)
    return flatten(io.BytesIO(layer) for layer in layers), config


def dockyard_image_layers(client, ref: str) -> tuple[list[bytes], dict]:
    image = client.images.get(ref)
    out = []
    for layer in image.layers:
        with client.content.open(layer.digest) as blob:
            out.append(blob.read())
    return out, image.config_doc


def dockyard_image_fs(client, ref: str) -> tuple[FsTable, dict]:
    """Flatten a dockyard image from its layers in the content store."""
    image = client.images.get(ref)
    streams = []
    for layer in image.layers:
        with client.content.open(layer.digest) as blob:
            streams.append(io.BytesIO(blob.read()))
    return flatten(streams), image.config_doc


def file_content(client, ref: str, path: str) -> bytes:
    """The bytes of ``path`` in a dockyard image (from the top-most layer holding it)."""
    image = client.images.get(ref)
    found = None
    for layer in image.layers:
        with client.content.open(layer.digest) as blob:
            with tarfile.open(fileobj=io.BytesIO(blob.read())) as tf:
                for ti in tf:
                    if _norm(ti.name) == path and ti.isfile():
                        found = tf.extractfile(ti).read()
    assert found is not None, f"{path} is not in {ref}"
    return found


def diff_tables(a: FsTable, b: FsTable, ignore: Iterable[str] = ()) -> list[str]:
    """Readable differences between two flattened filesystems (empty when identical)."""
    ign = tuple(ignore)
    out = []
    for p in sorted(set(a.entries) | set(b.entries)):
        if any(p == i or p.startswith(i.rstrip("/") + "/") for i in ign):
            continue
        ea, eb = a.entries.get(p), b.entries.get(p)
        if ea != eb:
            out.append(f"{p}: {ea.show() if ea else 'missing'} != {eb.show() if eb else 'missing'}")
    ga = {g for g in a.groups() if not any(x.startswith(i) for i in ign for x in g)}
    gb = {g for g in b.groups() if not any(x.startswith(i) for i in ign for x in g)}
    if ga != gb:
        out.append(f"hardlink groups differ: {sorted(map(sorted, ga - gb))} != {sorted(map(sorted, gb - ga))}")
    return out


CONFIG_FIELDS = ("Env", "Cmd", "Entrypoint", "WorkingDir", "User", "ExposedPorts", "Volumes", "Labels",
                 "Healthcheck", "StopSignal", "Shell", "OnBuild")


def config_fields(config_doc: dict) -> dict:
    """The compared part of an image config, with docker's empty values made uniform."""
    cfg = config_doc.get("config") or {}
    out = {}
    for k in CONFIG_FIELDS:
        v = cfg.get(k)
        out[k] = v if v not in (None, "", [], {}) else None
    return out


#: the times the test contexts and archives carry: an entry with one of them kept it from its
#: source, and then the other engine must have kept it too
KEPT_MTIMES = (1_500_000_000, 1_600_000_000)


def layer_entries(data: bytes) -> dict[str, str]:
    """One layer as it is, whiteouts and opaque markers included: path -> a readable entry
    (kind, mode, owner, link target or content digest; the time only when it is a kept one)."""
    out: dict[str, str] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r|*") as tf:
        for ti in tf:
            path = _norm(ti.name)
            if ti.type == tarfile.LNKTYPE:
                out[path] = "hardlink to " + _norm(ti.linkname)
                continue
            kind = _KINDS.get(ti.type, f"type{ti.type!r}")
            extra = ""
            if kind == "file":
                f = tf.extractfile(ti)
                extra = hashlib.sha256(f.read() if f else b"").hexdigest()[:12]
            elif kind == "symlink":
                extra = "-> " + ti.linkname
            when = f" mtime={int(ti.mtime)}" if int(ti.mtime) in KEPT_MTIMES else ""
            out[path] = f"{kind} {ti.mode & 0o7777:04o} {ti.uid}:{ti.gid} {extra}{when}".rstrip()
    return out


def history_shape(config_doc: dict) -> str:
    """``L`` for a history entry with a layer, ``E`` for an empty one: ``LEEL``."""
    return "".join("E" if h.get("empty_layer") else "L" for h in config_doc.get("history") or [])


#: BuildKit's RUN layers also hold /etc (copied up for /etc/hosts); the classic builder's, and
#: so dockyard's, do not
BUILDKIT_ETC_COPY_UP = " /etc: docker=dir 0755 0:0 dockyard=None"


def compare_images(theirs: tuple[list[bytes], dict], ours: tuple[list[bytes], dict], base_layers: int = 1,
                   created_by: bool = False) -> list[str]:
    """Every difference between docker's image and ours that a user could see: the compared
    config fields, the history's layer/empty pattern (and, for BuildKit, its lines), the layer
    count, each layer's entries (past the base's) and the final filesystem. Times are compared
    where docker kept the source's; a directory COPY creates gets the sources' time in
    dockyard (reproducible layers) and the build's time in docker."""
    (dl, dcfg), (ol, ocfg) = theirs, ours
    diffs = []
    a, b = config_fields(dcfg), config_fields(ocfg)
    diffs += [f"config {k}: docker={a[k]!r} dockyard={b[k]!r}" for k in a if a[k] != b[k]]
    if history_shape(dcfg) != history_shape(ocfg):
        diffs.append(f"history: docker={history_shape(dcfg)} dockyard={history_shape(ocfg)}")
    if created_by:
        cd = [h.get("created_by", "") for h in dcfg.get("history") or []]
        co = [h.get("created_by", "") for h in ocfg.get("history") or []]
        diffs += [f"history line {i}: docker={x!r} dockyard={y!r}" for i, (x, y) in enumerate(zip(cd, co)) if x != y]
    if len(dl) != len(ol) or len(dcfg["rootfs"]["diff_ids"]) != len(ocfg["rootfs"]["diff_ids"]):
        diffs.append(f"layers: docker={len(dl)} dockyard={len(ol)}")
    else:
        for i in range(base_layers, len(dl)):
            x, y = layer_entries(dl[i]), layer_entries(ol[i])
            for p, entry in y.items():  # a time only dockyard kept (a directory COPY created): by design
                if " mtime=" in entry and " mtime=" not in x.get(p, ""):
                    y[p] = entry.rsplit(" mtime=", 1)[0].rstrip()
            diffs += [f"layer {i} {p}: docker={x.get(p)} dockyard={y.get(p)}"
                      for p in sorted(set(x) | set(y)) if x.get(p) != y.get(p)]
    diffs += ["final " + d for d in diff_tables(flatten(io.BytesIO(l) for l in dl),
                                                flatten(io.BytesIO(l) for l in ol))]
    return diffs
