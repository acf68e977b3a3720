"""Garbage collection that runs while the registry serves.

Mark: every manifest revision of every repository marks itself and the blobs and manifests it
references (per repository, since a repository's links are what make a blob readable there).
Sweep, under the store's exclusive lock: the journal of writes made since the mark began is added
to the marks, then unmarked repository links older than the grace period are removed, then blobs
that no remaining link or mark needs. Writers hold the shared lock from "check the blob exists" to
"record that I need it", so no manifest can start depending on a blob the sweep is deleting.

Uploads in progress are never touched unless they have not been written to for
``storage.upload_max_age`` (abandoned); a blob committed or mounted less than ``gc.upload_grace``
ago is kept even before a manifest names it, so a push in progress never loses its layers.
"""
from __future__ import annotations

import fcntl
import os
import time
from dataclasses import dataclass, field

from dockyard.errors import Conflict
from dockyard.registry import manifests as mf
from dockyard.registry.store import RegistryStore, blob_key, layer_key


@dataclass
class GCReport:
    dry_run: bool
    blobs: list[tuple[str, int]] = field(default_factory=list)      # (digest, size) deleted
    links: list[tuple[str, str]] = field(default_factory=list)      # (repository, digest)
    uploads: list[str] = field(default_factory=list)
    repositories: list[str] = field(default_factory=list)           # emptied and removed
    kept_blobs: int = 0
    seconds: float = 0.0

    @property
    def bytes_freed(self) -> int:
        return sum(size for _, size in self.blobs)


def collect(store: RegistryStore, *, dry_run: bool = False, upload_max_age: float = 7 * 86400,
            grace: float = 3600.0, now: float | None = None) -> GCReport:
    """Run one collection (refused if another is running on the same storage)."""
    started = time.monotonic()
    run_lock = os.open(store.driver.local_dir / "gc-run.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(run_lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Conflict("another garbage collection is running on this storage") from None
        report = _collect(store, dry_run, upload_max_age, grace, now or time.time())
    finally:
        os.close(run_lock)
    report.seconds = time.monotonic() - started
    return report


def _collect(store: RegistryStore, dry_run: bool, upload_max_age: float, grace: float,
             now: float) -> GCReport:
    report = GCReport(dry_run=dry_run)
    driver = store.driver
    old_journal = None
    if not dry_run:
        with store.collecting():
            old_journal = store.rotate_journal()

    # mark (no lock: writers keep going)
    marked: set[tuple[str, str]] = set()
    repos = store.repositories()
    for repo in repos:
        for info in store.manifests(repo):
            data = driver.get(blob_key(info.digest))
            if data is None:
                continue
            marked.add((repo, info.digest))
            marked.update((repo, d) for d in mf.references(data))
    links = [(repo, digest, mtime) for repo in repos for digest, mtime in store.layer_links(repo)]
    blobs = store.all_blobs()

    def sweep() -> None:
        # writes since the mark began (a dry run deletes nothing, so it needs no journal)
        marks = marked if dry_run else marked | store.read_journal()
        needed = {d for _, d in marks}
        for repo, digest, mtime in links:
            if (repo, digest) in marks or now - mtime < grace:
                needed.add(digest)
                continue
            report.links.append((repo, digest))
            if not dry_run:
                driver.delete(layer_key(repo, digest))
        for digest, st in blobs:
            if digest in needed or now - st.mtime < grace:
                report.kept_blobs += 1
                continue
            report.blobs.append((digest, st.size))
            if not dry_run:
                driver.delete(blob_key(digest))

    if dry_run:
        sweep()
    else:
        with store.collecting():
            sweep()
        if old_journal is not None:
            old_journal.unlink(missing_ok=True)

    for upload, mtime in store.uploads():
        if now - mtime > upload_max_age:
            report.uploads.append(upload.id)
            if not dry_run:
                store.cancel_upload(upload)
    if not dry_run:
        driver.clean_temporary(max(grace, 3600.0))  # writes in progress are seconds old
        for repo in repos:
            if store.remove_repository_if_empty(repo):
                report.repositories.append(repo)
    return report
