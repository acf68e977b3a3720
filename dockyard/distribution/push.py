"""``push``: a local image goes to a registry, sending only the blobs the registry lacks.

For each blob (layers and config, several at a time):

1. HEAD it in the target repository: there already → ``Layer already exists``.
2. Else, if we saw it in another repository of the same registry (pulled from or pushed to
   there), ask for a cross-repository mount → ``Mounted from <repo>``.
3. Else upload it from the content store: one PUT when small, a streaming PATCH and a closing
   PUT when large (resumed from the registry's offset if the connection breaks) → ``Pushed``.

Then the manifest is PUT under the tag. Manifests and blobs are sent byte for byte as stored, so
an image pulled from one registry pushes to another with the same digests. Layers stored
uncompressed (``image import`` makes those) are gzip-compressed first, as docker does; the
compressed blob and the mapping from the layer's diff ID are kept, so the next push of the same
layer is a HEAD. An image pulled from a multi-platform index is pushed as that index when every
platform's manifest and blobs are present locally, else as its own platform's manifest.
"""
from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dockyard.content import digest as dg
from dockyard.distribution.errors import RegistryError, TransferError, Unauthorized
from dockyard.distribution.operation import Operation
from dockyard.errors import DockyardError, InvalidArgument, InvalidContent, NotFound
from dockyard.image import mediatypes as mt

if TYPE_CHECKING:  # pragma: no cover
    from dockyard.content.store import Lease
    from dockyard.distribution.registry import Repository
    from dockyard.image.reference import Reference
    from dockyard.image.service import Image

CONCURRENCY = 5
_UPLOAD_ATTEMPTS = 3
_GZIP_TYPES = {mt.OCI_LAYER: mt.OCI_LAYER_GZIP, mt.OCI_LAYER_ND: mt.OCI_LAYER_ND_GZIP,
               mt.DOCKER_LAYER: mt.DOCKER_LAYER_GZIP}


@dataclass
class BlobJob:
    """One blob to get into the target repository."""

    digest: str                   # what is pushed (filled in after compression)
    size: int
    media_type: str
    local: str                    # the local blob it comes from
    progress_id: str | None       # docker's short diff ID for layers; None for configs
    diff_id: str = ""
    compress: bool = False
    annotations: dict[str, str] = field(default_factory=dict)

    def descriptor(self, original: dict[str, Any]) -> dict[str, Any]:
        out = dict(original)
        out.update({"mediaType": self.media_type, "digest": self.digest, "size": self.size})
        return out


@dataclass
class ManifestPlan:
    """A manifest to PUT (by digest for an index's children, by tag at the top)."""

    doc: dict[str, Any]
    data: bytes                   # the stored bytes; rebuilt when layers get compressed
    media_type: str
    layers: list[BlobJob]
    config: BlobJob | None

    @property
    def converted(self) -> bool:
        return any(job.compress for job in self.layers)

    def final_bytes(self) -> bytes:
        if not self.converted:
            return self.data
        from dockyard.image.service import canonical_json

        doc = dict(self.doc)
        doc["layers"] = [job.descriptor(d) for job, d in zip(self.layers, self.doc.get("layers") or [])]
        return canonical_json(doc)


@dataclass
class PushOutcome:
    tag: str
    digest: str
    size: int


class Pusher(Operation):
    """Pushes local images to registries."""

    def push(self, ref: "Reference", all_tags: bool = False) -> list[PushOutcome]:
        if ref.digest:
            raise InvalidArgument(f"cannot push a digest reference ({ref.familiar}): tag the image and push the tag")
        self.progress.message(f"The push refers to repository [{ref.name}]")
        tags = self._local_tags(ref) if all_tags else [ref.tag or "latest"]
        if not tags or not all_tags and not self.client.images.exists(ref.tagged):
            raise NotFound(f"An image does not exist locally with the tag: {ref.familiar_name}")
        registry = self.svc.registry(ref.domain)
        registry.ping()  # as docker: an unreachable registry fails before any layer is listed
        repo = registry.repository(ref.path, push=True)
        out = []
        for tag in tags:
            image = self.client.images.get(f"{ref.name}:{tag}")
            try:
                out.append(self._push_image(ref, repo, tag, image))
            except RegistryError as exc:
                if isinstance(exc, Unauthorized) or exc.status == 403 or exc.code == "DENIED":
                    raise DockyardError(exc.text) from None
                raise
        return out

    def _local_tags(self, ref: "Reference") -> list[str]:
        from dockyard.image.reference import parse

        tags = set()
        for image in self.client.images.list(all=True):
            for name in image.repo_tags:
                r = parse(name)
                if r.name == ref.name and r.tag:
                    tags.add(r.tag)
        return sorted(tags)

    # -- one image ----------------------------------------------------------------------------
    def _push_image(self, ref: "Reference", repo: "Repository", tag: str, image: "Image") -> PushOutcome:
        with self.content.lease() as lease:
            top, children = self._plan(image)
            manifests = [*children, top]
            jobs: dict[str, BlobJob] = {}
            for m in manifests:
                for job in [*m.layers, *([m.config] if m.config else [])]:
                    jobs.setdefault(job.local, job)
            for job in jobs.values():
                if not self.content.exists(job.local):
                    raise InvalidContent(f"image {image.short_id} is missing blob {job.local} locally; "
                                         "pull or rebuild it before pushing")
                lease.add("content", job.local)
            ordered = list(jobs.values())
            layer_jobs = [j for j in ordered if j.progress_id]
            for job in layer_jobs:
                self.progress.layer(job.progress_id or "", "Preparing")
            for job in layer_jobs[CONCURRENCY:]:
                self.progress.layer(job.progress_id or "", "Waiting")
            with ThreadPoolExecutor(max_workers=max(1, min(CONCURRENCY, len(ordered))),
                                    thread_name_prefix="push") as pool:
                for fut in [pool.submit(self._push_blob, repo, job, lease) for job in ordered]:
                    fut.result()
            for m in manifests:  # share the compressed results with duplicates in other manifests
                for i, job in enumerate(m.layers):
                    m.layers[i] = jobs[job.local]
            for child in children:
                repo.put_manifest(dg.from_bytes(child.final_bytes()), child.final_bytes(), child.media_type)
            data = top.final_bytes()
            digest = repo.put_manifest(tag, data, top.media_type)
        self.client.images.add_repo_digest(image.id, f"{ref.name}@{digest}")
        for job in jobs.values():
            self.svc.records.seen(job.digest, ref.domain, ref.path)
        self.progress.message(f"{tag}: digest: {digest} size: {len(data)}")
        return PushOutcome(tag, digest, len(data))

    def _plan(self, image: "Image") -> tuple[ManifestPlan, list[ManifestPlan]]:
        """The manifest to push under the tag, and (for an index) its children."""
        from dockyard.image import platform as plat

        content = self.content
        if image.target_digest != image.manifest_digest:
            index_data = content.read_bytes(image.target_digest)
            index = json.loads(index_data)
            entries = [e for e in index.get("manifests") or [] if isinstance(e, dict)]
            manifest_digest = image.manifest_digest
            if self.platform:
                manifest_digest = plat.select(entries, plat.parse(self.platform))["digest"]
            else:
                children = [self._manifest_plan(e["digest"]) for e in entries
                            if isinstance(e.get("digest"), str) and content.exists(e["digest"])]
                complete = len(children) == len(entries) and all(
                    content.exists(j.local) and not j.compress
                    for c in children for j in [*c.layers, *([c.config] if c.config else [])])
                if complete:
                    media_type = index.get("mediaType") or mt.OCI_INDEX
                    top = ManifestPlan(index, index_data, media_type, [], None)
                    return top, children
            return self._manifest_plan(manifest_digest), []
        if self.platform:
            want = plat.parse(self.platform)
            have = {k: image.config_doc.get(k) or "" for k in ("os", "architecture", "variant")}
            if not want.matches(have):
                raise NotFound(f"image {image.short_id} is not for platform {want}")
        return self._manifest_plan(image.manifest_digest), []

    def _manifest_plan(self, digest: str) -> ManifestPlan:
        data = self.content.read_bytes(digest)
        doc = json.loads(data)
        media_type = mt.detect_manifest_type(doc)
        if not mt.is_manifest(media_type):
            raise InvalidContent(f"manifest {digest} is an index inside an index; nested indexes are not supported")
        config_doc = json.loads(self.content.read_bytes(doc["config"]["digest"]))
        diff_ids = (config_doc.get("rootfs") or {}).get("diff_ids") or []
        layers = []
        for i, d in enumerate(doc.get("layers") or []):
            diff_id = diff_ids[i] if i < len(diff_ids) else d["digest"]
            compress = mt.layer_compression(d.get("mediaType", "")) is None
            media_type_ = _GZIP_TYPES.get(d.get("mediaType", ""), d.get("mediaType", "")) if compress else d.get("mediaType", "")
            layers.append(BlobJob(d["digest"], int(d["size"]), media_type_, d["digest"], dg.short_id(diff_id),
                                  diff_id, compress))
        c = doc["config"]
        config = BlobJob(c["digest"], int(c["size"]), c.get("mediaType", mt.OCI_CONFIG), c["digest"], None)
        return ManifestPlan(doc, data, media_type, layers, config)

    # -- one blob -----------------------------------------------------------------------------
    def _push_blob(self, repo: "Repository", job: BlobJob, lease: "Lease") -> None:
        if job.compress:
            known = self.svc.records.compressed(job.diff_id)
            if known is not None:
                job.digest, job.size = known
                done, location = self._exists_or_mount(repo, job)
                if done:
                    return
                if self.content.exists(job.digest):
                    lease.add("content", job.digest)
                    self._upload(repo, job, location)
                    return
            job.digest, job.size = self._compress(job, lease)
        done, location = self._exists_or_mount(repo, job)
        if not done:
            self._upload(repo, job, location)

    def _exists_or_mount(self, repo: "Repository", job: BlobJob) -> tuple[bool, str | None]:
        """(True, None) when the repository has the blob now; else (False, an upload URL or None)."""
        if repo.blob_size(job.digest) is not None:
            self._status(job, "Layer already exists")
            return True, None
        records, domain = self.svc.records, repo.client.domain
        for source in records.sources(job.digest, domain, exclude=repo.path):
            location = repo.mount_or_start(job.digest, source)
            if location is None:
                self._status(job, f"Mounted from {source}")
                return True, None
            records.forget_source(job.digest, domain, source)
            return False, location
        return False, None

    def _upload(self, repo: "Repository", job: BlobJob, location: str | None) -> None:
        """Upload one blob; a broken connection starts a new upload session (docker retries too)."""
        path = str(self.content.blob_path(job.digest))
        for attempt in range(_UPLOAD_ATTEMPTS):
            if location is None:
                location = repo.mount_or_start()
            sent = [0]

            def on_progress(n: int) -> None:
                sent[0] += n
                if job.progress_id:
                    self.progress.advance(job.progress_id, "Pushing", sent[0], job.size)

            try:
                repo.upload(location, job.digest, path, job.size, on_progress)
                break
            except TransferError:
                if attempt == _UPLOAD_ATTEMPTS - 1:
                    raise
                location = None
                time.sleep(0.25 * 2 ** attempt)
        self._status(job, "Pushed")

    def _status(self, job: BlobJob, status: str) -> None:
        if job.progress_id:
            self.progress.layer(job.progress_id, status)

    def _compress(self, job: BlobJob, lease: "Lease") -> tuple[str, int]:
        """gzip an uncompressed layer into the content store (once: the mapping is recorded)."""
        from dockyard.build.gzipfast import GzipWriter

        # an uncompressed layer's digest is its diff ID, which the gzip writer computes anyway:
        # its check below verifies the blob, so read the file directly instead of hashing twice
        direct = job.local == job.diff_id
        source = open(self.content.blob_path(job.local), "rb") if direct else self.content.open(job.local)
        with source as src, self.content.writer(lease=lease) as w:
            gz = GzipWriter(w.write)
            try:
                while chunk := src.read(1 << 20):
                    gz.write(chunk)
                diff_id, _ = gz.close()
            except BaseException:
                gz.abort()
                raise
            if diff_id != job.diff_id:
                raise InvalidContent(f"layer {job.local} does not match its diff ID {job.diff_id} (it hashes to "
                                     f"{diff_id}); the local content store is damaged: pull or rebuild the image")
            digest = w.commit()
            size = w.offset
        self.svc.records.record_compressed(job.diff_id, digest, size)
        return digest, size
