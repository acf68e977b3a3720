"""OCI distribution-spec v1.1 conformance, by hand: pull, push, content discovery, management.

Every test runs on each storage backend (the filesystem, and S3 through a real moto server), the
way containerd runs one storage suite on every implementation.
"""
from __future__ import annotations

import json
import os
import socket
import uuid
from typing import Callable

import pytest

from .helpers import DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, Reg, error_code, sha


@pytest.fixture(params=["filesystem", "s3"])
def breg(request: pytest.FixtureRequest, start_registry: Callable[..., Reg], tmp_path) -> Reg:
    if request.param == "filesystem":
        return start_registry()
    endpoint = request.getfixturevalue("moto_endpoint")
    from dockyard.registry.storage.s3 import S3Driver

    bucket = f"reg-{uuid.uuid4().hex[:12]}"
    s3 = {"endpoint": endpoint, "bucket": bucket, "accesskey": "test", "secretkey": "test",
          "local_dir": str(tmp_path / "s3-local"), "prefix": "registry"}
    S3Driver.from_config(s3).create_bucket()
    return start_registry({"storage": {"s3": s3}})


# ---- base, errors, names -------------------------------------------------------------------------
def test_base_endpoint_answers_with_api_version(breg: Reg) -> None:
    r = breg("GET", "/v2/")
    assert r.status_code == 200
    assert r.headers["Docker-Distribution-API-Version"] == "registry/2.0"


@pytest.mark.parametrize("name", ["Upper/case", "a/../b", "a//b", "-lead", "a/.hidden", "x" * 256])
def test_invalid_names_are_refused_with_name_invalid(breg: Reg, name: str) -> None:
    status, body = breg.raw("POST", f"/v2/{name}/blobs/uploads/?digest={sha(b'x')}", b"x")
    assert status == 400
    assert body["errors"][0]["code"] == "NAME_INVALID"
    assert breg("GET", "/v2/_catalog").json()["repositories"] == []


def test_unknown_repository_and_manifest(breg: Reg) -> None:
    assert error_code(breg("GET", "/v2/nope/tags/list")) == "NAME_UNKNOWN"
    r = breg("GET", "/v2/nope/manifests/latest")
    assert r.status_code == 404 and error_code(r) == "MANIFEST_UNKNOWN"
    r = breg("HEAD", "/v2/nope/blobs/" + sha(b"nothing"))
    assert r.status_code == 404 and r.content == b""
    assert error_code(breg("GET", "/v2/nope/blobs/" + sha(b"nothing"))) == "BLOB_UNKNOWN"
    assert error_code(breg("GET", "/v2/nope/blobs/sha256:xyz")) == "DIGEST_INVALID"


# ---- push: blobs -----------------------------------------------------------------------------------
def test_monolithic_post_and_blob_head_get(breg: Reg) -> None:
    data = os.urandom(300_000)
    digest = breg.push_blob("lib/a", data)
    r = breg("HEAD", f"/v2/lib/a/blobs/{digest}")
    assert r.status_code == 200
    assert int(r.headers["Content-Length"]) == len(data)
    assert r.headers["Docker-Content-Digest"] == digest
    r = breg("GET", f"/v2/lib/a/blobs/{digest}")
    assert r.status_code == 200 and r.content == data


def test_empty_blob_and_unknown_endpoints(breg: Reg) -> None:
    empty = sha(b"")
    r = breg("POST", "/v2/lib/e/blobs/uploads/", params={"digest": empty}, headers={"Content-Length": "0"})
    assert r.status_code == 201
    r = breg("GET", f"/v2/lib/e/blobs/{empty}")
    assert r.status_code == 200 and r.content == b"" and r.headers["Content-Length"] == "0"
    assert breg("GET", "/v2/lib/e/nothing-here").status_code == 404
    assert breg("GET", "/elsewhere").status_code == 404
    r = breg("GET", "/v2/lib/e/tags/list?n=abc")  # as the CNCF registry: an unusable n is no n,
    assert error_code(r) == "NAME_UNKNOWN"  # and a repository never tagged has no tag list
    r = breg("PUT", f"/v2/lib/e/blobs/{empty}")
    assert r.status_code == 405 and r.headers["Allow"] == "DELETE, GET, HEAD"


def test_post_then_put_upload(breg: Reg) -> None:
    data = b"hello world"
    r = breg("POST", "/v2/lib/a/blobs/uploads/")
    assert r.status_code == 202
    loc = r.headers["Location"]
    assert loc.startswith(breg.url + "/v2/lib/a/blobs/uploads/")
    r = breg("PUT", loc, params={"digest": sha(data)}, data=data)
    assert r.status_code == 201
    assert r.headers["Location"] == f"{breg.url}/v2/lib/a/blobs/{sha(data)}"
    assert breg("GET", f"/v2/lib/a/blobs/{sha(data)}").content == data


def test_chunked_upload_with_content_range_status_and_out_of_order(breg: Reg) -> None:
    data = os.urandom(250_000)
    loc = breg("POST", "/v2/lib/c/blobs/uploads/").headers["Location"]
    a, b = data[:100_000], data[100_000:]
    r = breg("PATCH", loc, data=a, headers={"Content-Range": f"0-{len(a) - 1}",
                                             "Content-Type": "application/octet-stream"})
    assert r.status_code == 202
    assert r.headers["Range"] == f"0-{len(a) - 1}"
    loc = r.headers["Location"]
    r = breg("GET", loc)
    assert r.status_code == 204 and r.headers["Range"] == f"0-{len(a) - 1}"
    # a chunk that does not continue the upload: 416 and the current range
    r = breg("PATCH", loc, data=b[:10], headers={"Content-Range": f"{len(a) + 5}-{len(a) + 14}"})
    assert r.status_code == 416
    assert r.headers["Range"] == f"0-{len(a) - 1}"
    r = breg("PATCH", loc, data=b, headers={"Content-Range": f"{len(a)}-{len(data) - 1}"})
    assert r.status_code == 202
    r = breg("PUT", loc, params={"digest": sha(data)})
    assert r.status_code == 201
    assert breg("GET", f"/v2/lib/c/blobs/{sha(data)}").content == data
    # the session is gone once finished
    assert error_code(breg("GET", loc)) == "BLOB_UPLOAD_UNKNOWN"


def test_streamed_patch_with_chunked_transfer_encoding(breg: Reg) -> None:
    parts = [os.urandom(70_000) for _ in range(5)]
    loc = breg("POST", "/v2/lib/s/blobs/uploads/").headers["Location"]
    r = breg("PATCH", loc, data=iter(parts))  # a generator body: Transfer-Encoding: chunked
    assert r.status_code == 202
    data = b"".join(parts)
    assert r.headers["Range"] == f"0-{len(data) - 1}"
    assert breg("PUT", r.headers["Location"], params={"digest": sha(data)}).status_code == 201
    assert breg("GET", f"/v2/lib/s/blobs/{sha(data)}").content == data


def test_upload_resumes_after_a_broken_connection(breg: Reg) -> None:
    data = os.urandom(400_000)
    loc = breg("POST", "/v2/lib/r/blobs/uploads/").headers["Location"]
    host, port = breg.host.rsplit(":", 1)
    sent = 150_000
    with socket.create_connection((host, int(port))) as s:
        s.sendall(f"PATCH {loc} HTTP/1.1\r\nHost: {breg.host}\r\nContent-Length: {len(data)}\r\n"
                  f"Content-Range: 0-{len(data) - 1}\r\n\r\n".encode() + data[:sent])
    # the server keeps what arrived; the client asks where to resume
    import time

    for _ in range(100):
        r = breg("GET", loc)
        if r.headers["Range"] == f"0-{sent - 1}":
            break
        time.sleep(0.05)
    assert r.status_code == 204 and r.headers["Range"] == f"0-{sent - 1}"
    r = breg("PATCH", loc, data=data[sent:], headers={"Content-Range": f"{sent}-{len(data) - 1}"})
    assert r.status_code == 202
    assert breg("PUT", loc, params={"digest": sha(data)}).status_code == 201
    assert breg("GET", f"/v2/lib/r/blobs/{sha(data)}").content == data


def test_digest_mismatch_and_truncated_upload_store_nothing(breg: Reg) -> None:
    data = b"real content"
    wrong = sha(b"other content")
    r = breg("POST", "/v2/lib/d/blobs/uploads/", params={"digest": wrong}, data=data)
    assert r.status_code == 400 and error_code(r) == "DIGEST_INVALID"
    assert breg("HEAD", f"/v2/lib/d/blobs/{wrong}").status_code == 404
    assert breg("HEAD", f"/v2/lib/d/blobs/{sha(data)}").status_code == 404
    # truncated monolithic upload: the connection dies before Content-Length bytes
    host, port = breg.host.rsplit(":", 1)
    big = os.urandom(100_000)
    with socket.create_connection((host, int(port))) as s:
        s.sendall(f"POST /v2/lib/d/blobs/uploads/?digest={sha(big)} HTTP/1.1\r\nHost: x\r\n"
                  f"Content-Length: {len(big)}\r\n\r\n".encode() + big[:50_000])
    assert breg("HEAD", f"/v2/lib/d/blobs/{sha(big)}").status_code == 404
    # finishing a short upload with the full blob's digest fails too
    loc = breg("POST", "/v2/lib/d/blobs/uploads/").headers["Location"]
    breg("PATCH", loc, data=big[:10])
    r = breg("PUT", loc, params={"digest": sha(big)})
    assert error_code(r) == "DIGEST_INVALID"
    assert breg("HEAD", f"/v2/lib/d/blobs/{sha(big)}").status_code == 404


def test_range_requests(breg: Reg) -> None:
    data = bytes(range(256)) * 40
    digest = breg.push_blob("lib/g", data)
    r = breg("GET", f"/v2/lib/g/blobs/{digest}", headers={"Range": "bytes=10-19"})
    assert r.status_code == 206 and r.content == data[10:20]
    assert r.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
    r = breg("GET", f"/v2/lib/g/blobs/{digest}", headers={"Range": "bytes=10000-"})
    assert r.status_code == 206 and r.content == data[10000:]
    r = breg("GET", f"/v2/lib/g/blobs/{digest}", headers={"Range": "bytes=-5"})
    assert r.content == data[-5:]
    r = breg("GET", f"/v2/lib/g/blobs/{digest}", headers={"Range": f"bytes={len(data)}-"})
    assert r.status_code == 416 and r.headers["Content-Range"] == f"bytes */{len(data)}"


def test_cross_repository_mount(breg: Reg) -> None:
    data = os.urandom(5000)
    digest = breg.push_blob("src/repo", data)
    r = breg("POST", "/v2/dst/repo/blobs/uploads/", params={"mount": digest, "from": "src/repo"})
    assert r.status_code == 201
    assert r.headers["Location"] == f"{breg.url}/v2/dst/repo/blobs/{digest}"
    assert breg("GET", f"/v2/dst/repo/blobs/{digest}").content == data
    # the blob is not in "other": the registry starts a normal upload instead
    r = breg("POST", "/v2/dst/two/blobs/uploads/", params={"mount": digest, "from": "other"})
    assert r.status_code == 202 and "/blobs/uploads/" in r.headers["Location"]


def test_blobs_are_per_repository(breg: Reg) -> None:
    digest = breg.push_blob("one", b"private bytes")
    assert breg("HEAD", f"/v2/two/blobs/{digest}").status_code == 404


# ---- manifests ------------------------------------------------------------------------------------
@pytest.mark.parametrize("media_type", [OCI_MANIFEST, DOCKER_MANIFEST])
def test_manifest_put_get_head_by_tag_and_digest(breg: Reg, media_type: str) -> None:
    digest, body = breg.push_image("app", "v1", media_type=media_type)
    for ref in ("v1", digest):
        r = breg("GET", f"/v2/app/manifests/{ref}", headers={"Accept": media_type})
        assert r.status_code == 200 and r.content == body
        assert r.headers["Content-Type"] == media_type
        assert r.headers["Docker-Content-Digest"] == digest
        h = breg("HEAD", f"/v2/app/manifests/{ref}", headers={"Accept": media_type})
        assert h.status_code == 200 and int(h.headers["Content-Length"]) == len(body)


def test_index_needs_its_manifests(breg: Reg) -> None:
    d1, b1 = breg.push_image("multi", None)
    d2, b2 = breg.push_image("multi", None)
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": d1, "size": len(b1), "platform": {"os": "linux", "architecture": "amd64"}},
        {"mediaType": OCI_MANIFEST, "digest": d2, "size": len(b2), "platform": {"os": "linux", "architecture": "arm64"}}]}
    body = json.dumps(index).encode()
    r = breg("PUT", "/v2/multi/manifests/latest", data=body, headers={"Content-Type": OCI_INDEX})
    assert r.status_code == 201
    assert breg("GET", "/v2/multi/manifests/latest", headers={"Accept": OCI_INDEX}).headers["Content-Type"] == OCI_INDEX
    index["manifests"].append({"mediaType": OCI_MANIFEST, "digest": sha(b"missing"), "size": 7})
    r = breg("PUT", "/v2/multi/manifests/broken", data=json.dumps(index).encode(),
             headers={"Content-Type": OCI_INDEX})
    assert r.status_code == 400 and error_code(r) == "MANIFEST_BLOB_UNKNOWN"
    assert "broken" not in breg("GET", "/v2/multi/tags/list").json()["tags"]


def test_bad_manifests_store_nothing(breg: Reg) -> None:
    layer = breg.push_blob("bad", b"layer")
    config_missing = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                      "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                 "digest": sha(b"no such config"), "size": 14},
                      "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": 5}]}
    r = breg("PUT", "/v2/bad/manifests/t1", data=json.dumps(config_missing), headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 400 and error_code(r) == "MANIFEST_BLOB_UNKNOWN"
    r = breg("PUT", "/v2/bad/manifests/t2", data=b"{not json", headers={"Content-Type": OCI_MANIFEST})
    assert error_code(r) == "MANIFEST_INVALID"
    good_digest, good = breg.push_image("bad", None)
    r = breg("PUT", f"/v2/bad/manifests/{sha(b'something else')}", data=good,
             headers={"Content-Type": OCI_MANIFEST})
    assert error_code(r) == "DIGEST_INVALID"
    huge = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "annotations": {"x": "y" * (5 << 20)}})
    r = breg("PUT", "/v2/bad/manifests/t3", data=huge, headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 413
    assert error_code(breg("GET", "/v2/bad/tags/list")) == "NAME_UNKNOWN"  # never tagged, as CNCF's


def test_manifest_and_tag_delete(breg: Reg) -> None:
    digest, _ = breg.push_image("del", "a")
    breg("PUT", "/v2/del/manifests/b", data=breg("GET", "/v2/del/manifests/a").content,
         headers={"Content-Type": OCI_MANIFEST})
    assert error_code(breg("DELETE", "/v2/del/manifests/a")) == "DIGEST_INVALID"  # as CNCF's
    breg.server.config.storage.delete_tags = True
    assert breg("DELETE", "/v2/del/manifests/a").status_code == 202
    assert breg("GET", "/v2/del/tags/list").json()["tags"] == ["b"]
    assert breg("GET", f"/v2/del/manifests/{digest}", headers={"Accept": OCI_MANIFEST}).status_code == 200
    assert breg("DELETE", f"/v2/del/manifests/{digest}").status_code == 202
    assert breg("GET", f"/v2/del/manifests/{digest}").status_code == 404
    assert breg("GET", "/v2/del/tags/list").json()["tags"] is None
    assert error_code(breg("DELETE", f"/v2/del/manifests/{digest}")) == "MANIFEST_UNKNOWN"


def test_blob_delete(breg: Reg) -> None:
    digest = breg.push_blob("bd", b"to delete")
    assert breg("DELETE", f"/v2/bd/blobs/{digest}").status_code == 202
    assert breg("HEAD", f"/v2/bd/blobs/{digest}").status_code == 404
    assert error_code(breg("DELETE", f"/v2/bd/blobs/{digest}")) == "BLOB_UNKNOWN"


# ---- content discovery -----------------------------------------------------------------------------
def test_tag_list_pagination_with_link_headers(breg: Reg) -> None:
    _digest, body = breg.push_image("pg", "t0")
    for t in ("t3", "t1", "t4", "t2"):
        breg("PUT", f"/v2/pg/manifests/{t}", data=body, headers={"Content-Type": OCI_MANIFEST})
    assert breg("GET", "/v2/pg/tags/list").json() == {"name": "pg", "tags": ["t0", "t1", "t2", "t3", "t4"]}
    r = breg("GET", "/v2/pg/tags/list", params={"n": 2})
    assert r.json()["tags"] == ["t0", "t1"]
    assert r.headers["Link"] == '</v2/pg/tags/list?last=t1&n=2>; rel="next"'
    r = breg("GET", "/v2/pg/tags/list?n=2&last=t1")
    assert r.json()["tags"] == ["t2", "t3"]
    r = breg("GET", "/v2/pg/tags/list?n=2&last=t3")
    assert r.json()["tags"] == ["t4"] and "Link" not in r.headers
    assert breg("GET", "/v2/pg/tags/list?n=0").json()["tags"] == []


def test_catalog_pagination(breg: Reg) -> None:
    for name in ("b/one", "a", "c/x/y"):
        breg.push_image(name, "latest")
    assert breg("GET", "/v2/_catalog").json() == {"repositories": ["a", "b/one", "c/x/y"]}
    r = breg("GET", "/v2/_catalog?n=1")
    assert r.json()["repositories"] == ["a"]
    assert r.headers["Link"] == '</v2/_catalog?last=a&n=1>; rel="next"'
    assert breg("GET", "/v2/_catalog?n=5&last=a").json()["repositories"] == ["b/one", "c/x/y"]


def test_referrers_api(breg: Reg) -> None:
    subject, sbody = breg.push_image("ref", "v1")
    empty = b"{}"
    cfg = breg.push_blob("ref", empty)
    sig = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/vnd.example.sig",
           "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": cfg, "size": 2},
           "layers": [{"mediaType": "application/vnd.oci.empty.v1+json", "digest": cfg, "size": 2}],
           "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": len(sbody)},
           "annotations": {"org.example": "yes"}}
    body = json.dumps(sig).encode()
    r = breg("PUT", f"/v2/ref/manifests/{sha(body)}", data=body, headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 201 and r.headers["OCI-Subject"] == subject
    sbom = dict(sig, artifactType="application/vnd.example.sbom", annotations={})
    sbody2 = json.dumps(sbom).encode()
    breg("PUT", f"/v2/ref/manifests/{sha(sbody2)}", data=sbody2, headers={"Content-Type": OCI_MANIFEST})
    r = breg("GET", f"/v2/ref/referrers/{subject}")
    assert r.status_code == 200 and r.headers["Content-Type"] == OCI_INDEX
    found = {m["digest"]: m for m in r.json()["manifests"]}
    assert set(found) == {sha(body), sha(sbody2)}
    assert found[sha(body)]["artifactType"] == "application/vnd.example.sig"
    assert found[sha(body)]["annotations"] == {"org.example": "yes"}
    r = breg("GET", f"/v2/ref/referrers/{subject}", params={"artifactType": "application/vnd.example.sbom"})
    assert [m["digest"] for m in r.json()["manifests"]] == [sha(sbody2)]
    assert r.headers["OCI-Filters-Applied"] == "artifactType"
    # an unknown subject is an empty list, not a 404; deleting a referrer removes it
    assert breg("GET", f"/v2/ref/referrers/{sha(b'x')}").json()["manifests"] == []
    breg("DELETE", f"/v2/ref/manifests/{sha(body)}")
    assert [m["digest"] for m in breg("GET", f"/v2/ref/referrers/{subject}").json()["manifests"]] == [sha(sbody2)]
    assert error_code(breg("GET", "/v2/ref/referrers/notadigest")) == "DIGEST_INVALID"


def test_deduplicated_storage(breg: Reg, tmp_path) -> None:
    data = os.urandom(10_000)
    breg.push_blob("x/one", data)
    breg.push_blob("x/two", data)
    store = breg.server.store
    assert [d for d, _ in store.all_blobs()].count(sha(data)) == 1


def test_large_blob_uses_multipart_on_object_stores(breg: Reg, monkeypatch: pytest.MonkeyPatch) -> None:
    from dockyard.registry.storage import s3

    monkeypatch.setattr(s3, "SINGLE_PUT_LIMIT", 5 * 1024 * 1024)
    monkeypatch.setattr(s3, "PART_SIZE", 5 * 1024 * 1024)
    data = os.urandom(12 * 1024 * 1024)
    digest = breg.push_blob("big/blob", data)
    r = breg("GET", f"/v2/big/blob/blobs/{digest}", headers={"Range": "bytes=5242870-5242889"})
    assert r.status_code == 206 and r.content == data[5242870:5242890]
    assert breg("GET", f"/v2/big/blob/blobs/{digest}").content == data


def test_garbage_collection(breg: Reg) -> None:
    from dockyard.registry import gc

    keep, drop = os.urandom(1500), os.urandom(1600)
    breg.push_image("gc/x", "keep", layers=[keep])
    digest, _ = breg.push_image("gc/x", "drop", layers=[drop])
    breg("DELETE", f"/v2/gc/x/manifests/{digest}")
    report = gc.collect(breg.server.store, grace=0)
    assert {sha(drop), digest} <= {d for d, _ in report.blobs}
    assert breg("GET", f"/v2/gc/x/blobs/{sha(keep)}").content == keep
    assert breg("HEAD", f"/v2/gc/x/blobs/{sha(drop)}").status_code == 404
