"""The S3 backend: any S3-compatible object store, spoken to directly with AWS Signature V4.

No SDK: the registry needs eight S3 calls (GET with Range, PUT, HEAD, DELETE, ListObjectsV2 and
the three multipart calls), and a small signed HTTP client keeps the dependency list short and
the streaming under our control. Objects use path-style URLs (``<endpoint>/<bucket>/<key>``),
which MinIO, Ceph RGW, moto, Garage and AWS all accept.

Uploads in progress live on local disk (``local_dir``) and are streamed into the bucket once
verified: one PUT up to 64 MiB (signed with the blob's own sha256, which S3 checks), multipart
beyond. With several registry instances behind a load balancer, keep one upload's requests on
one instance (sticky sessions), and run ``registry gc`` on one instance at a time.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import hmac
import http.client
import os
import threading
import time
import xml.etree.ElementTree as ET
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, BinaryIO, Iterator
from urllib.parse import quote, urlsplit

from dockyard.errors import DockyardError, InvalidArgument
from dockyard.registry.storage.base import Driver, RangeReader, Stat

SINGLE_PUT_LIMIT = 64 * 1024 * 1024
PART_SIZE = 64 * 1024 * 1024
UNSIGNED = "UNSIGNED-PAYLOAD"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


class S3Error(DockyardError):
    """The object store refused a request (the message carries S3's code and message)."""


def _uri_encode(value: str, safe: str = "") -> str:
    return quote(value, safe="-_.~" + safe)


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


class Signer:
    """AWS Signature Version 4 for the ``s3`` service."""

    def __init__(self, access_key: str, secret_key: str, region: str) -> None:
        self.access_key = access_key
        self.secret_key = secret_key
        self.region = region

    def sign(self, method: str, host: str, path: str, query: dict[str, str],
             headers: dict[str, str], payload_hash: str, now: _dt.datetime | None = None) -> dict[str, str]:
        now = now or _dt.datetime.now(_dt.timezone.utc)
        amz_date = now.strftime("%Y%m%dT%H%M%SZ")
        date = amz_date[:8]
        headers = dict(headers)
        headers["host"] = host
        headers["x-amz-date"] = amz_date
        headers["x-amz-content-sha256"] = payload_hash
        lower = {k.lower(): " ".join(str(v).split()) for k, v in headers.items()}
        signed = ";".join(sorted(lower))
        canonical_headers = "".join(f"{k}:{lower[k]}\n" for k in sorted(lower))
        canonical_query = "&".join(f"{_uri_encode(k)}={_uri_encode(v)}" for k, v in sorted(query.items()))
        canonical = "\n".join([method, _uri_encode(path, "/"), canonical_query, canonical_headers,
                               signed, payload_hash])
        scope = f"{date}/{self.region}/s3/aws4_request"
        to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                             hashlib.sha256(canonical.encode()).hexdigest()])
        key = _hmac(_hmac(_hmac(_hmac(("AWS4" + self.secret_key).encode(), date), self.region), "s3"),
                    "aws4_request")
        signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        headers["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={self.access_key}/{scope}, "
                                    f"SignedHeaders={signed}, Signature={signature}")
        del headers["host"]
        return headers


class _S3Range(RangeReader):
    def __init__(self, conn: http.client.HTTPConnection, resp: http.client.HTTPResponse, length: int) -> None:
        super().__init__(length)
        self._conn = conn
        self._resp = resp

    def read(self, n: int) -> bytes:
        return self._resp.read(n)

    def close(self) -> None:
        self._conn.close()


class S3Driver(Driver):
    name = "s3"

    def __init__(self, *, endpoint: str, bucket: str, access_key: str, secret_key: str,
                 region: str = "us-east-1", prefix: str = "", local_dir: str | None = None) -> None:
        u = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        if u.scheme not in ("http", "https") or not u.hostname:
            raise InvalidArgument(f"storage.s3.endpoint: invalid URL {endpoint!r}")
        self.scheme = u.scheme
        self.host = u.netloc
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.signer = Signer(access_key, secret_key, region)
        self._local = threading.local()
        if local_dir is None:
            from dockyard.state import StateRoot

            local_dir = str(StateRoot().dir("registry", f"s3-{bucket}"))
        self.local_dir = Path(local_dir)
        self.local_dir.mkdir(parents=True, exist_ok=True)

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> "S3Driver":
        access = cfg.get("accesskey") or os.environ.get("AWS_ACCESS_KEY_ID")
        secret = cfg.get("secretkey") or os.environ.get("AWS_SECRET_ACCESS_KEY")
        if not access or not secret:
            raise InvalidArgument("storage.s3: set accesskey and secretkey (or AWS_ACCESS_KEY_ID and "
                                  "AWS_SECRET_ACCESS_KEY)")
        endpoint = cfg.get("endpoint") or f"https://s3.{cfg.get('region', 'us-east-1')}.amazonaws.com"
        return cls(endpoint=str(endpoint), bucket=str(cfg["bucket"]), access_key=str(access),
                   secret_key=str(secret), region=str(cfg.get("region", "us-east-1")),
                   prefix=str(cfg.get("prefix", "")), local_dir=cfg.get("local_dir"))

    # ---- HTTP ---------------------------------------------------------------------------------
    def _new_conn(self) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        return cls(self.host, timeout=120, blocksize=1 << 20)

    def _conn(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._new_conn()
        return conn

    def _path(self, key: str | None) -> str:
        if key is None:
            return f"/{self.bucket}"
        full = f"{self.prefix}/{key}" if self.prefix else key
        return f"/{self.bucket}/{full}"

    def _request(self, method: str, key: str | None, *, query: dict[str, str] | None = None,
                 body: bytes | BinaryIO | None = None, length: int | None = None,
                 payload_hash: str | None = None, headers: dict[str, str] | None = None,
                 conn: http.client.HTTPConnection | None = None,
                 stream: bool = False) -> tuple[int, dict[str, str], bytes | http.client.HTTPResponse]:
        query = query or {}
        path = self._path(key)
        if payload_hash is None:
            payload_hash = hashlib.sha256(body).hexdigest() if isinstance(body, bytes) else \
                (EMPTY_SHA256 if body is None else UNSIGNED)
        hdrs = dict(headers or {})
        if body is not None:
            hdrs["Content-Length"] = str(len(body) if isinstance(body, bytes) else length)
        for attempt in range(3):
            signed = self.signer.sign(method, self.host, path, query, hdrs, payload_hash)
            url = _uri_encode(path, "/") + ("?" + "&".join(
                f"{_uri_encode(k)}={_uri_encode(v)}" for k, v in sorted(query.items())) if query else "")
            c = conn or self._conn()
            try:
                if body is not None and not isinstance(body, bytes):
                    body.seek(0)
                c.request(method, url, body=body, headers=signed)
                resp = c.getresponse()
            except (OSError, http.client.HTTPException):
                c.close()
                if attempt == 2:
                    raise
                time.sleep(0.1 * (attempt + 1))
                continue
            rh = {k.lower(): v for k, v in resp.getheaders()}
            if stream and resp.status in (200, 206):
                return resp.status, rh, resp
            data = resp.read()
            if resp.status >= 500 and attempt < 2:
                time.sleep(0.1 * (attempt + 1))
                continue
            return resp.status, rh, data
        raise S3Error("unreachable")  # pragma: no cover

    def _fail(self, what: str, status: int, data: Any) -> S3Error:
        code, message = str(status), ""
        if isinstance(data, bytes) and data.startswith(b"<"):
            try:
                root = ET.fromstring(data)
                code = root.findtext("Code") or code
                message = root.findtext("Message") or ""
            except ET.ParseError:
                pass
        return S3Error(f"S3 {what} failed: {code} {message}".rstrip())

    # ---- Driver ---------------------------------------------------------------------------------
    def get(self, key: str) -> bytes | None:
        status, _, data = self._request("GET", key)
        if status == 404:
            return None
        if status != 200:
            raise self._fail(f"GET {key}", status, data)
        return data  # type: ignore[return-value]

    def put(self, key: str, data: bytes) -> None:
        status, _, resp = self._request("PUT", key, body=data)
        if status != 200:
            raise self._fail(f"PUT {key}", status, resp)

    def stat(self, key: str) -> Stat | None:
        status, headers, data = self._request("HEAD", key)
        if status == 404:
            return None
        if status != 200:
            raise self._fail(f"HEAD {key}", status, data)
        return Stat(int(headers.get("content-length", 0)), _mtime(headers.get("last-modified")))

    def delete(self, key: str) -> bool:
        if self.stat(key) is None:
            return False
        status, _, data = self._request("DELETE", key)
        if status not in (200, 204, 404):
            raise self._fail(f"DELETE {key}", status, data)
        return True

    def delete_tree(self, prefix: str) -> None:
        for key, _ in list(self.walk(prefix)):
            self._request("DELETE", key)

    def _list(self, prefix: str, delimiter: str | None) -> Iterator[ET.Element]:
        full = f"{self.prefix}/{prefix}/" if self.prefix else f"{prefix}/"
        token = None
        while True:
            query = {"list-type": "2", "prefix": full}
            if delimiter:
                query["delimiter"] = delimiter
            if token:
                query["continuation-token"] = token
            status, _, data = self._request("GET", None, query=query)
            if status != 200:
                raise self._fail(f"LIST {prefix}", status, data)
            root = ET.fromstring(data)  # type: ignore[arg-type]
            yield root
            if (root.findtext(f"{_NS}IsTruncated") or "false") != "true":
                return
            token = root.findtext(f"{_NS}NextContinuationToken")

    def list_dir(self, prefix: str) -> list[str]:
        full = f"{self.prefix}/{prefix}/" if self.prefix else f"{prefix}/"
        names = []
        for root in self._list(prefix, "/"):
            for cp in root.iter(f"{_NS}CommonPrefixes"):
                p = cp.findtext(f"{_NS}Prefix") or ""
                names.append(p[len(full):].rstrip("/"))
            for c in root.iter(f"{_NS}Contents"):
                names.append((c.findtext(f"{_NS}Key") or "")[len(full):])
        return [n for n in names if n]

    def walk(self, prefix: str) -> Iterator[tuple[str, Stat]]:
        strip = len(self.prefix) + 1 if self.prefix else 0
        for root in self._list(prefix, None):
            for c in root.iter(f"{_NS}Contents"):
                key = (c.findtext(f"{_NS}Key") or "")[strip:]
                size = int(c.findtext(f"{_NS}Size") or 0)
                yield key, Stat(size, _iso_mtime(c.findtext(f"{_NS}LastModified")))

    def ingest(self, local_path: str, key: str, size: int, sha256_hex: str | None) -> None:
        with open(local_path, "rb") as f:
            if size <= SINGLE_PUT_LIMIT:
                status, _, data = self._request("PUT", key, body=f, length=size,
                                                payload_hash=sha256_hex or UNSIGNED)
                if status != 200:
                    raise self._fail(f"PUT {key}", status, data)
            else:
                self._multipart(f, key, size)
        os.unlink(local_path)

    def _multipart(self, f: BinaryIO, key: str, size: int) -> None:
        status, _, data = self._request("POST", key, query={"uploads": ""})
        if status != 200:
            raise self._fail(f"CreateMultipartUpload {key}", status, data)
        upload_id = ET.fromstring(data).findtext(f"{_NS}UploadId") or ""  # type: ignore[arg-type]
        parts = []
        try:
            offset, number = 0, 1
            while offset < size:
                n = min(PART_SIZE, size - offset)
                f.seek(offset)
                status, headers, data = self._request(
                    "PUT", key, query={"partNumber": str(number), "uploadId": upload_id},
                    body=_Window(f, offset, n), length=n, payload_hash=UNSIGNED)
                if status != 200:
                    raise self._fail(f"UploadPart {key}", status, data)
                parts.append((number, headers.get("etag", "")))
                offset += n
                number += 1
            xml = "<CompleteMultipartUpload>" + "".join(
                f"<Part><PartNumber>{n}</PartNumber><ETag>{e}</ETag></Part>" for n, e in parts) + \
                "</CompleteMultipartUpload>"
            status, _, data = self._request("POST", key, query={"uploadId": upload_id}, body=xml.encode())
            if status != 200 or b"<Error>" in data:  # type: ignore[operator]
                raise self._fail(f"CompleteMultipartUpload {key}", status, data)
        except BaseException:
            self._request("DELETE", key, query={"uploadId": upload_id})
            raise

    def open_range(self, key: str, start: int, length: int) -> RangeReader:
        conn = self._new_conn()
        headers = {"Range": f"bytes={start}-{start + length - 1}"} if length else {}
        status, _, resp = self._request("GET", key, headers=headers, conn=conn, stream=True)
        if status == 404:
            conn.close()
            raise FileNotFoundError(key)
        if status not in (200, 206):
            conn.close()
            raise self._fail(f"GET {key}", status, resp)
        return _S3Range(conn, resp, length)  # type: ignore[arg-type]

    def touch(self, key: str) -> None:
        """Copy the object onto itself: refreshes LastModified (GC grace for deduplicated blobs)."""
        full = self._path(key)
        self._request("PUT", key, headers={"x-amz-copy-source": _uri_encode(full, "/"),
                                           "x-amz-metadata-directive": "REPLACE"})

    def check(self) -> None:
        status, _, data = self._request("HEAD", None)
        if status != 200:
            raise S3Error(f"bucket {self.bucket!r} is not reachable at {self.scheme}://{self.host} "
                          f"(HTTP {status})")

    def create_bucket(self) -> None:
        status, _, data = self._request("PUT", None)
        if status not in (200, 409):
            raise self._fail(f"CreateBucket {self.bucket}", status, data)

    def describe(self) -> str:
        return f"s3:{self.scheme}://{self.host}/{self.bucket}/{self.prefix}".rstrip("/")


class _Window:
    """A read-only window of a file (one multipart part) that http.client can stream."""

    def __init__(self, f: BinaryIO, offset: int, length: int) -> None:
        self._f, self._offset, self._length, self._pos = f, offset, length, 0

    def seek(self, pos: int) -> None:
        self._pos = pos
        self._f.seek(self._offset + pos)

    def read(self, n: int = -1) -> bytes:
        left = self._length - self._pos
        if n < 0 or n > left:
            n = left
        data = self._f.read(n)
        self._pos += len(data)
        return data


def _mtime(value: str | None) -> float:
    if not value:
        return 0.0
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return 0.0


def _iso_mtime(value: str | None) -> float:
    if not value:
        return 0.0
    try:
        return _dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0
