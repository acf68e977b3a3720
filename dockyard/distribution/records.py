"""What the client remembers between runs about blobs and registries (docker's "v2 metadata").

- *Sources*: the repositories on a registry where a blob was seen (pulled from or pushed to),
  so that pushing it to another repository on the same registry can be a cross-repository
  mount instead of an upload.
- *Compressed*: which gzip blob an uncompressed local layer became when it was first pushed,
  so that the next push of that layer is a HEAD (or a mount) without compressing it again. The
  compressed blob itself may later be garbage-collected from the content store; the record still
  lets us ask the registry whether it has it, and compression is deterministic if we must redo it.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from dockyard.state import StateRoot

_SCHEMA = """
CREATE TABLE IF NOT EXISTS distribution_blob_sources (
    digest TEXT NOT NULL,
    registry TEXT NOT NULL,
    repository TEXT NOT NULL,
    seen REAL NOT NULL,
    PRIMARY KEY (digest, registry, repository)
);
CREATE TABLE IF NOT EXISTS distribution_compressed (
    diff_id TEXT NOT NULL,             -- the uncompressed layer
    compression TEXT NOT NULL,         -- gzip
    digest TEXT NOT NULL,              -- the compressed blob
    size INTEGER NOT NULL,
    PRIMARY KEY (diff_id, compression)
);
"""
_MAX_SOURCES = 3


class BlobRecords:
    """Rows in the metadata DB; every method is one short statement (safe from any thread)."""

    def __init__(self, state: "StateRoot") -> None:
        self.state = state

    def _db(self):  # noqa: ANN202
        return self.state.db(_SCHEMA)

    def seen(self, digest: str, registry: str, repository: str) -> None:
        self._db().execute(
            "INSERT INTO distribution_blob_sources (digest, registry, repository, seen) VALUES (?, ?, ?, ?)"
            " ON CONFLICT(digest, registry, repository) DO UPDATE SET seen = excluded.seen",
            (digest, registry, repository, time.time()))

    def sources(self, digest: str, registry: str, exclude: str) -> list[str]:
        """Other repositories of ``registry`` known to hold ``digest``, most recently seen first."""
        rows = self._db().execute(
            "SELECT repository FROM distribution_blob_sources WHERE digest = ? AND registry = ? AND repository != ?"
            " ORDER BY seen DESC LIMIT ?", (digest, registry, exclude, _MAX_SOURCES)).fetchall()
        return [r["repository"] for r in rows]

    def forget_source(self, digest: str, registry: str, repository: str) -> None:
        self._db().execute("DELETE FROM distribution_blob_sources WHERE digest = ? AND registry = ? AND repository = ?",
                           (digest, registry, repository))

    def compressed(self, diff_id: str, compression: str = "gzip") -> tuple[str, int] | None:
        row = self._db().execute("SELECT digest, size FROM distribution_compressed WHERE diff_id = ? AND compression = ?",
                                 (diff_id, compression)).fetchone()
        return (row["digest"], int(row["size"])) if row else None

    def record_compressed(self, diff_id: str, digest: str, size: int, compression: str = "gzip") -> None:
        self._db().execute("INSERT OR REPLACE INTO distribution_compressed (diff_id, compression, digest, size)"
                           " VALUES (?, ?, ?, ?)", (diff_id, compression, digest, size))
