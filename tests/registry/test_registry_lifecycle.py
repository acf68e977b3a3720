"""Image protection and lifecycle: immutable tags, retention (with dry run), GC while serving."""
from __future__ import annotations

import json
import os
import time
from typing import Callable

import pytest

from dockyard.registry import gc, retention

from .helpers import OCI_INDEX, OCI_MANIFEST, Reg, error_code, sha


@pytest.fixture
def preg(start_registry: Callable[..., Reg]) -> Reg:
    return start_registry({"storage": {"delete": {"tags": True}}, "repositories": [
        {"pattern": "prod/**", "immutable_tags": ["v*", "stable"],
         "retention": {"keep_last": 2, "keep_tags": ["latest"], "untagged_older_than": "1h"}},
    ]})


def test_immutable_tags_cannot_be_overwritten_or_deleted(preg: Reg) -> None:
    d1, body1 = preg.push_image("prod/app", "v1")
    # the same manifest again is fine (idempotent re-push)
    assert preg("PUT", "/v2/prod/app/manifests/v1", data=body1,
                headers={"Content-Type": OCI_MANIFEST}).status_code == 201
    d2, body2 = preg.push_image("prod/app", "dev")
    r = preg("PUT", "/v2/prod/app/manifests/v1", data=body2, headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 403 and error_code(r) == "DENIED"
    assert preg("GET", "/v2/prod/app/manifests/v1").headers["Docker-Content-Digest"] == d1
    r = preg("DELETE", "/v2/prod/app/manifests/v1")
    assert r.status_code == 403 and error_code(r) == "DENIED"
    r = preg("DELETE", f"/v2/prod/app/manifests/{d1}")
    assert r.status_code == 403 and error_code(r) == "DENIED"
    assert preg("GET", "/v2/prod/app/manifests/v1").status_code == 200
    # mutable tags elsewhere behave normally
    assert preg("PUT", "/v2/prod/app/manifests/dev", data=body1,
                headers={"Content-Type": OCI_MANIFEST}).status_code == 201
    assert preg("DELETE", "/v2/prod/app/manifests/dev").status_code == 202


def _age(reg: Reg, repo: str, tag_or_digest: str, seconds: float) -> None:
    """Make a tag (or manifest revision) look ``seconds`` old."""
    store = reg.server.store
    from dockyard.registry.store import revision_key, tag_key

    key = revision_key(repo, tag_or_digest) if ":" in tag_or_digest else tag_key(repo, tag_or_digest)
    path = store.driver.root / key
    t = time.time() - seconds
    os.utime(path, (t, t))


def test_retention_dry_run_then_apply(preg: Reg) -> None:
    store, cfg = preg.server.store, preg.server.config
    digests = {}
    for i, tag in enumerate(["t1", "t2", "t3", "t4", "latest", "v1"]):
        digests[tag], _ = preg.push_image("prod/app", tag)
        _age(preg, "prod/app", tag, 1000 - i * 10)  # t1 oldest ... v1 newest
    old_untagged, _ = preg.push_image("prod/app", None)
    _age(preg, "prod/app", old_untagged, 7200)
    young_untagged, _ = preg.push_image("prod/app", None)
    plan = retention.plan(store, cfg)
    planned = {(a.kind, a.reference) for a in plan}
    # keep_last 2 among t1..t4 (latest and v1 are kept by keep_tags / immutability)
    assert planned == {("tag", "t1"), ("tag", "t2"), ("manifest", digests["t1"]),
                       ("manifest", digests["t2"]), ("manifest", old_untagged)}
    # the dry run changed nothing
    assert preg("GET", "/v2/prod/app/tags/list").json()["tags"] == ["latest", "t1", "t2", "t3", "t4", "v1"]
    assert preg("GET", f"/v2/prod/app/manifests/{old_untagged}").status_code == 200
    skipped = retention.apply(store, cfg, plan)
    assert skipped == []
    assert preg("GET", "/v2/prod/app/tags/list").json()["tags"] == ["latest", "t3", "t4", "v1"]
    assert preg("GET", f"/v2/prod/app/manifests/{old_untagged}").status_code == 404
    assert preg("GET", f"/v2/prod/app/manifests/{young_untagged}").status_code == 200
    assert preg("GET", f"/v2/prod/app/manifests/{digests['t1']}").status_code == 404


def test_retention_keeps_index_children_and_referrers(preg: Reg) -> None:
    child, cbody = preg.push_image("prod/multi", None)
    _age(preg, "prod/multi", child, 7200)
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": child, "size": len(cbody)}]}).encode()
    assert preg("PUT", "/v2/prod/multi/manifests/latest", data=index,
                headers={"Content-Type": OCI_INDEX}).status_code == 201
    sig, _ = preg.push_image("prod/multi", None, extra={
        "subject": {"mediaType": OCI_INDEX, "digest": sha(index), "size": len(index)}})
    _age(preg, "prod/multi", sig, 7200)
    assert retention.plan(preg.server.store, preg.server.config) == []


def test_gc_deletes_only_unreferenced_blobs(start_registry: Callable[..., Reg]) -> None:
    reg = start_registry()
    store = reg.server.store
    kept_layer = os.urandom(2000)
    gone_layer = os.urandom(3000)
    reg.push_image("gc/app", "keep", layers=[kept_layer])
    digest, _ = reg.push_image("gc/app", "drop", layers=[gone_layer])
    assert reg("DELETE", f"/v2/gc/app/manifests/{digest}").status_code == 202
    dry = gc.collect(store, dry_run=True, grace=0)
    assert sha(gone_layer) in {d for d, _ in dry.blobs}
    assert store.blob_stat(sha(gone_layer)) is not None  # dry run deleted nothing
    report = gc.collect(store, grace=0)
    deleted = {d for d, _ in report.blobs}
    assert sha(gone_layer) in deleted and digest in deleted
    assert sha(kept_layer) not in deleted
    assert reg("GET", f"/v2/gc/app/blobs/{sha(kept_layer)}").content == kept_layer
    assert reg("HEAD", f"/v2/gc/app/blobs/{sha(gone_layer)}").status_code == 404
    assert reg("GET", "/v2/gc/app/manifests/keep").status_code == 200


def test_gc_during_uploads_keeps_their_blobs(start_registry: Callable[..., Reg]) -> None:
    reg = start_registry()
    store = reg.server.store
    # an upload in progress (chunk sent, not finished) and a blob committed moments ago
    part = os.urandom(5000)
    loc = reg("POST", "/v2/push/app/blobs/uploads/").headers["Location"]
    reg("PATCH", loc, data=part)
    fresh = reg.push_blob("push/app", os.urandom(4000))
    report = gc.collect(store)  # default grace: an hour
    assert report.blobs == [] and report.uploads == []
    rest = os.urandom(1000)
    reg("PATCH", loc, data=rest)
    assert reg("PUT", loc, params={"digest": sha(part + rest)}).status_code == 201
    assert reg("HEAD", f"/v2/push/app/blobs/{fresh}").status_code == 200


def test_gc_sees_manifests_pushed_between_mark_and_sweep(start_registry: Callable[..., Reg],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The journal closes the race: a manifest naming an old, unreferenced blob mid-collection."""
    reg = start_registry()
    store = reg.server.store
    layer = os.urandom(2500)
    digest, body = reg.push_image("race/app", "v1", layers=[layer])
    assert reg("DELETE", f"/v2/race/app/manifests/{digest}").status_code == 202
    original = store.all_blobs

    def push_during_collection():
        blobs = original()  # after the mark: now a client pushes the same manifest again
        r = reg("PUT", "/v2/race/app/manifests/v2", data=body, headers={"Content-Type": OCI_MANIFEST})
        assert r.status_code == 201
        return blobs

    monkeypatch.setattr(store, "all_blobs", push_during_collection)
    report = gc.collect(store, grace=0)
    assert sha(layer) not in {d for d, _ in report.blobs}
    assert reg("GET", f"/v2/race/app/blobs/{sha(layer)}").content == layer
    assert reg("GET", "/v2/race/app/manifests/v2").status_code == 200


def test_gc_removes_abandoned_uploads(start_registry: Callable[..., Reg]) -> None:
    reg = start_registry()
    loc = reg("POST", "/v2/ab/app/blobs/uploads/").headers["Location"]
    reg("PATCH", loc, data=b"abandoned")
    report = gc.collect(reg.server.store, upload_max_age=-1)
    assert len(report.uploads) == 1
    assert error_code(reg("GET", loc)) == "BLOB_UPLOAD_UNKNOWN"


def test_scheduled_gc_and_retention_run_inside_the_server(start_registry: Callable[..., Reg]) -> None:
    reg = start_registry({"gc": {"interval": "0.2s", "upload_grace": 0},
                          "retention": {"interval": "0.2s"},
                          "repositories": [{"pattern": "sched/**", "retention": {"keep_last": 1}}]})
    old, _ = reg.push_image("sched/app", "old", layers=[b"old layer"])
    _age(reg, "sched/app", "old", 100)
    reg.push_image("sched/app", "new", layers=[b"new layer"])
    for _ in range(100):
        if reg("HEAD", f"/v2/sched/app/blobs/{sha(b'old layer')}").status_code == 404:
            break
        time.sleep(0.05)
    assert reg("GET", "/v2/sched/app/tags/list").json()["tags"] == ["new"]
    assert reg("HEAD", f"/v2/sched/app/blobs/{sha(b'old layer')}").status_code == 404
    assert reg("GET", f"/v2/sched/app/blobs/{sha(b'new layer')}").content == b"new layer"
    assert "dockyard_registry_gc_runs_total" in reg("GET", "/metrics").text


def test_gc_removes_temp_files_left_by_a_crash(start_registry: Callable[..., Reg]) -> None:
    reg = start_registry()
    tmp = reg.server.store.driver.local_dir / "tmp"
    stale, fresh = tmp / "stale", tmp / "fresh"
    stale.write_bytes(b"half a manifest")
    fresh.write_bytes(b"being written")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    gc.collect(reg.server.store)
    assert not stale.exists() and fresh.exists()


def test_concurrent_pushes_while_gc_runs(start_registry: Callable[..., Reg]) -> None:
    """Several clients push while collections run back to back: every push lands whole."""
    import threading

    reg = start_registry()
    store = reg.server.store
    orphans = [reg.push_blob("conc/orphans", os.urandom(1000)) for _ in range(5)]
    for d in orphans:  # old enough to collect
        path = store.driver.root / f"blobs/sha256/{d[7:9]}/{d[7:]}"
        link = store.driver.root / f"repositories/conc/orphans/_layers/sha256/{d[7:]}"
        for p in (path, link):
            os.utime(p, (time.time() - 7200, time.time() - 7200))
    pushed: list[tuple[str, str, bytes]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def pusher(n: int) -> None:
        try:
            for i in range(4):
                repo = f"conc/app{n % 3}"
                digest, _ = reg.push_image(repo, f"t{n}-{i}", layers=[os.urandom(20_000), os.urandom(5000)])
                pushed.append((repo, f"t{n}-{i}", digest))
        except BaseException as exc:  # reported below
            errors.append(exc)

    def collector() -> None:
        while not stop.is_set():
            gc.collect(store)

    threads = [threading.Thread(target=pusher, args=(n,)) for n in range(6)]
    gc_thread = threading.Thread(target=collector)
    gc_thread.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    stop.set()
    gc_thread.join(timeout=60)
    assert not errors, errors
    assert len(pushed) == 24
    for repo, tag, digest in pushed:
        r = reg("GET", f"/v2/{repo}/manifests/{tag}")
        assert r.status_code == 200 and r.headers["Docker-Content-Digest"] == digest
        for layer in json.loads(r.content)["layers"]:
            assert reg("HEAD", f"/v2/{repo}/blobs/{layer['digest']}").status_code == 200
    for d in orphans:
        assert store.blob_stat(d) is None
