"""The OCI distribution API (v1.1) and Docker token endpoint, on top of the store and policies.

Routes (``<name>`` may contain ``/``)::

    GET  /v2/                                   API version check (and auth challenge)
    GET  /v2/_catalog?n=&last=                  repositories the caller may pull
    GET  /v2/<name>/tags/list?n=&last=          tags, paginated with Link headers
    HEAD|GET|DELETE   /v2/<name>/blobs/<digest>            (GET honours Range)
    POST /v2/<name>/blobs/uploads/[?digest=|?mount=&from=]  start, monolithic, or mount
    GET|PATCH|PUT|DELETE /v2/<name>/blobs/uploads/<id>      status, chunk, finish, cancel
    HEAD|GET|PUT|DELETE  /v2/<name>/manifests/<tag-or-digest>
    GET  /v2/<name>/referrers/<digest>?artifactType=
    GET|POST /token                             Docker token auth
    GET  /healthz   GET /metrics                operations

Every handler authorises first (:meth:`RegistryApp.authorize`), then validates, then touches
storage, so a refused or malformed request stores nothing.
"""
from __future__ import annotations

import html
import re
import time
import traceback
from typing import Any, Callable
from urllib.parse import quote, unquote

from dockyard.content import digest as dg
from dockyard.registry import manifests as mf
from dockyard.registry import ranges
from dockyard.registry.auth import (ANONYMOUS, AccessPolicy, Identity, TokenAuthority, UserDB,
                                    basic_credentials, parse_scope)
from dockyard.registry.config import Config
from dockyard.registry.errors import NO_DETAIL, RegistryError
from dockyard.registry.http import ClientGone, Request, RequestHandler
from dockyard.registry.names import check_digest, check_name, split_reference, is_valid_name
from dockyard.registry.observability import AccessLog, Metrics, now_iso
from dockyard.registry.store import RegistryStore, Upload, upload_headers
from dockyard.registry.uploadstate import pack_upload_state, upload_state_matches

_NAME = r"(?P<name>.+?)"
# the CNCF registry's route grammar (go-digest's DigestRegexp, distribution's TagRegexp): a path
# whose digest or reference does not have this shape is no route at all (404 page not found)
_DIGEST = r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+"
_TAG = r"[\w][\w.-]{0,127}"
_UPLOAD_METHODS = ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT")
_CHALLENGE_ACTIONS = {"GET": "pull", "HEAD": "pull", "POST": "pull,push", "PUT": "pull,push",
                      "PATCH": "pull,push", "DELETE": "delete"}
ROUTES: list[tuple[str, re.Pattern[str], tuple[str, ...]]] = [
    ("blob_upload_start", re.compile(rf"^/v2/{_NAME}/blobs/uploads/$"), _UPLOAD_METHODS),
    ("blob_upload", re.compile(rf"^/v2/{_NAME}/blobs/uploads/(?P<uuid>[a-zA-Z0-9-_.=]+)$"),
     _UPLOAD_METHODS),
    ("blob", re.compile(rf"^/v2/{_NAME}/blobs/(?P<digest>{_DIGEST})$"), ("DELETE", "GET", "HEAD")),
    ("manifest", re.compile(rf"^/v2/{_NAME}/manifests/(?P<reference>{_TAG}|{_DIGEST})$"),
     ("DELETE", "GET", "HEAD", "PUT")),
    ("tags", re.compile(rf"^/v2/{_NAME}/tags/list$"), ("GET",)),
    ("referrers", re.compile(rf"^/v2/{_NAME}/referrers/(?P<digest>[^/]+)$"), ("GET",)),
]
_CONTENT_RANGE_RE = re.compile(r"^(?:bytes )?(\d+)-(\d+)(?:/\d+|/\*)?$")


class RegistryApp:
    """Callable per request (``app(handler)``); holds the store, policies and observability."""

    def __init__(self, config: Config, store: RegistryStore, *, access_log: AccessLog | None = None,
                 metrics: Metrics | None = None) -> None:
        self.config = config
        self.store = store
        self.users = UserDB(config)
        self.policy = AccessPolicy(config)
        self.tokens = TokenAuthority(config.auth.token, store.driver.local_dir) \
            if not config.open_access and config.auth.scheme == "token" else None
        self.log = access_log or AccessLog("off")
        self.metrics = metrics or Metrics()

    # ---- dispatch ----------------------------------------------------------------------------
    def __call__(self, handler: RequestHandler) -> None:
        started = time.monotonic()
        self.metrics.gauge_add("registry_http_in_flight_requests", 1)
        req: Request | None = None
        try:
            try:
                req = Request(handler)
            except ValueError as exc:
                handler.close_connection = True
                handler.send_error(400, str(exc))
                return
            try:
                self.route(req)
            except RegistryError as err:
                self._send_error(req, err)
            except OverflowError:
                handler.close_connection = True
                self._send_error(req, RegistryError("SIZE_INVALID", "manifest is larger than the "
                                                    f"registry's limit of {self.config.max_manifest_size} bytes",
                                                    status=413))
            except ClientGone:
                handler.close_connection = True
                req.status = req.status or 499
            except (BrokenPipeError, ConnectionResetError):
                handler.close_connection = True
                req.status = req.status or 499
            except Exception as exc:  # a bug: answer 500, keep serving, log the traceback
                handler.close_connection = True
                self.log.write({"time": now_iso(), "level": "error", "msg": "internal error",
                                "error": repr(exc), "traceback": traceback.format_exc()})
                if not req.status:
                    try:
                        req.send_json(500, {"errors": [{"code": "UNKNOWN", "message": "internal server error"}]})
                    except OSError:
                        pass
        finally:
            self.metrics.gauge_add("registry_http_in_flight_requests", -1)
            if req is not None:
                self._record(req, handler, time.monotonic() - started)

    def _record(self, req: Request, handler: RequestHandler, seconds: float) -> None:
        self.metrics.inc("registry_http_requests_total", method=req.method, route=req.route,
                         code=str(req.status))
        self.metrics.observe(req.route, seconds)
        received = req.body.received if req.body is not None else 0
        if req.route == "blob_upload" or req.route == "blob_upload_start":
            self.metrics.inc("registry_bytes_received_total", received)
        if req.route == "blob":
            self.metrics.inc("registry_bytes_sent_total", req.sent)
        self.log.write({
            "time": now_iso(), "level": "info", "msg": "request", "remote": handler.client_address[0],
            "method": req.method, "path": req.path + (f"?{req.raw_query}" if req.raw_query else ""),
            "status": req.status, "bytes_in": received, "bytes_out": req.sent,
            "duration_ms": round(seconds * 1000, 2), "user": req.user, "repository": req.repo,
            "route": req.route, "user_agent": req.header("User-Agent"),
            **({"error": req.error} if req.error else {}),
        })

    def _send_error(self, req: Request, err: RegistryError) -> None:
        if err.status == 401:
            self.metrics.inc("registry_auth_failures_total")
        req.error = f"{err.code}: {err.message}"  # the explanation, for the access log
        if req.status:  # already answered (error while streaming): just drop the connection
            req.handler.close_connection = True
            return
        req.send_json(err.status, err.body(), err.headers)

    def route(self, req: Request) -> None:
        path = req.path
        if path == "/v2/":
            req.route = "base"
            return self.base(req)
        if path == "/v2/_catalog":
            req.route = "catalog"
            if req.method != "GET":
                return _method_not_allowed(req, ("GET",))
            return self.catalog(req)
        if path == "/token":
            req.route = "token"
            return self.token(req)
        if path in ("/healthz", "/health", "/debug/health"):
            req.route = "health"
            return self.health(req)
        if path == "/metrics" and self.config.metrics_enabled:
            req.route = "metrics"
            return req.send(200, {"Content-Type": "text/plain; version=0.0.4"}, self.metrics.render().encode())
        for name, pattern, methods in ROUTES:
            m = pattern.match(path)
            if m is None:
                continue
            req.route = name
            repo = m.group("name")
            req.repo = repo
            check_name(repo)
            if req.method not in methods:
                return _method_not_allowed(req, methods)
            params = {k: unquote(v) for k, v in m.groupdict().items() if k != "name"}
            return getattr(self, name)(req, repo, **params)
        # like gorilla/mux's StrictSlash: the other spelling of a route redirects to it
        other = path[:-1] if path.endswith("/") else path + "/"
        if other == "/v2/" or other == "/v2/_catalog" or any(
                p.match(other) for _n, p, _m in ROUTES):
            target = other + (f"?{req.raw_query}" if req.raw_query else "")
            return _redirect(req, target)
        req.send(404, {"Content-Type": "text/plain; charset=utf-8", "X-Content-Type-Options": "nosniff"},
                 b"404 page not found\n")

    # ---- authentication and authorisation ---------------------------------------------------
    def _challenge(self, req: Request, scope: str | None, error: str | None = None) -> RegistryError:
        if self.config.auth.scheme == "basic":
            headers = {"WWW-Authenticate": 'Basic realm="dockyard-registry"'}
        else:
            realm = self.config.auth.token.realm or \
                f"{'https' if self.config.tls_cert else 'http'}://{req.header('Host') or self.config.addr}/token"
            value = f'Bearer realm="{realm}",service="{self.config.auth.token.service}"'
            if scope:
                value += f',scope="{scope}"'
            if error:
                value += f',error="{error}"'
            headers = {"WWW-Authenticate": value}
        detail = None
        if scope:  # the CNCF registry's access records: one per action
            type_, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            detail = [{"Type": type_, "Class": "", "Name": name, "Action": a} for a in actions.split(",")]
        return RegistryError("UNAUTHORIZED", "authentication required", headers=headers, detail=detail)

    def _identify(self, req: Request, scope: str | None = None) -> tuple[Identity | None, Any]:
        """The caller's identity and, for bearer tokens, the token's claims.

        Bad credentials are challenged with ``scope``: what the request needs, as CNCF's names it.
        """
        header = req.header("Authorization") or ""
        if header[:7].lower() == "bearer " and self.tokens is not None:
            claims = self.tokens.verify(header[7:].strip())
            if claims is None:
                raise self._challenge(req, scope, "invalid_token")
            who = self.users.identity(claims.subject) if claims.subject else ANONYMOUS
            return who, claims
        creds = basic_credentials(header)
        if creds is not None:
            who = self.users.authenticate(*creds)
            if who is None:
                raise self._challenge(req, scope)
            return who, None
        return None, None

    def authorize(self, req: Request, repo: str, action: str, *, soft: bool = False) -> bool:
        """Require ``action`` on ``repo``; with ``soft`` return False instead of raising."""
        if self.config.open_access:
            return True
        # the challenge names what the CNCF registry asks for this method (writes: pull and push)
        scope = f"repository:{repo}:{_CHALLENGE_ACTIONS.get(req.method, action)}"
        who, claims = self._identify(req, scope)
        if who is not None:
            req.user = who.name
        if claims is not None:
            allowed = claims.allows("repository", repo, action)
            if allowed:
                return True
            if soft:
                return False
            if allowed is None:  # the token is for something else: ask for the right one
                raise self._challenge(req, scope, "insufficient_scope")
            if who is None or who.name is None:
                raise self._challenge(req, scope, "insufficient_scope")
            raise RegistryError("DENIED", detail=[{"Type": "repository", "Name": repo, "Action": action}])
        if who is None and self.config.auth.scheme == "token":
            if soft:
                return False
            raise self._challenge(req, scope)
        if action in self.policy.actions(who or ANONYMOUS, repo):
            return True
        if soft:
            return False
        if who is None:
            raise self._challenge(req, scope)
        raise RegistryError("DENIED", detail=[{"Type": "repository", "Name": repo, "Action": action}])

    # ---- endpoints: base, catalog, token, health --------------------------------------------
    def base(self, req: Request) -> None:
        if not self.config.open_access:
            who, claims = self._identify(req)
            if who is None and claims is None:
                raise self._challenge(req, None)
            req.user = who.name if who else None
        req.send_json(200, {}, newline=False)

    def catalog(self, req: Request) -> None:
        who: Identity | None = None
        if not self.config.open_access:
            who, claims = self._identify(req, "registry:catalog:*")
            if claims is not None and not claims.allows("registry", "catalog", "*"):
                raise self._challenge(req, "registry:catalog:*", "insufficient_scope")
            if who is None and claims is None:  # as /v2/ (and the CNCF registry): sign in first
                raise self._challenge(req, "registry:catalog:*")
            req.user = who.name if who else None
        n_raw = req.arg("n") or ""
        if n_raw.isdigit() and int(n_raw) > CATALOG_MAX:
            raise RegistryError("PAGINATION_NUMBER_INVALID", detail={"n": int(n_raw)})
        repos = sorted(self.store.repositories(), key=_path_order)
        if not self.config.open_access:
            caller = who or ANONYMOUS
            repos = [r for r in repos if "pull" in self.policy.actions(caller, r)]
        page, link = _paginate(repos, req, "/v2/_catalog", default_n=CATALOG_PAGE, key=_path_order)
        req.send_json(200, {"repositories": page}, link)

    def token(self, req: Request) -> None:
        if self.tokens is None:
            raise RegistryError("UNSUPPORTED", "this registry does not use token authentication",
                                status=404)
        who: Identity = ANONYMOUS
        scopes: list[str] = list(req.query.get("scope", []))
        if req.method == "POST":
            from urllib.parse import parse_qs

            form = parse_qs(req.read_body(64 * 1024).decode("utf-8", "replace"))
            grant = (form.get("grant_type") or [""])[0]
            if grant != "password":
                return req.send_json(400, {"error": "unsupported_grant_type"})
            user = (form.get("username") or [""])[0]
            who_or_none = self.users.authenticate(user, (form.get("password") or [""])[0])
            if who_or_none is None:
                self.metrics.inc("registry_auth_failures_total")
                return req.send_json(401, {"error": "invalid_grant"})
            who = who_or_none
            scopes += form.get("scope", [])
        elif req.method == "GET":
            creds = basic_credentials(req.header("Authorization"))
            if creds is not None:
                found = self.users.authenticate(*creds)
                if found is None:
                    self.metrics.inc("registry_auth_failures_total")
                    raise RegistryError("UNAUTHORIZED", "incorrect username or password", public=True,
                                        headers={"WWW-Authenticate": 'Basic realm="dockyard-registry"'})
                who = found
        else:
            raise RegistryError("UNSUPPORTED", status=405)
        req.user = who.name
        access = []
        for scope in scopes:
            for type_, name, actions in parse_scope(scope):
                if type_ == "repository" and is_valid_name(name):
                    granted = sorted(actions & self.policy.actions(who, name))
                    access.append({"type": "repository", "name": name, "actions": granted})
                elif type_ == "registry" and name == "catalog":
                    access.append({"type": "registry", "name": "catalog", "actions": ["*"]})
        body = self.tokens.issue(who, access)
        req.send_json(200, body, {"Cache-Control": "no-store"})

    def health(self, req: Request) -> None:
        try:
            self.store.driver.check()
        except Exception as exc:  # any failure means unhealthy, whatever its type
            return req.send_json(503, {"status": "unhealthy", "storage": str(exc)})
        req.send_json(200, {"status": "ok", "storage": self.store.driver.describe()})

    # ---- blobs ---------------------------------------------------------------------------------
    def blob(self, req: Request, repo: str, digest: str) -> None:
        if req.method == "DELETE":
            self.authorize(req, repo, "delete")
            check_digest(digest)
            if not self.config.storage.delete_enabled:
                raise RegistryError("UNSUPPORTED", "deletes are disabled on this registry")
            if not self.store.unlink_blob(repo, digest):
                raise RegistryError("BLOB_UNKNOWN", f"blob {digest} not found in {repo}")
            return req.send(202, {})
        self.authorize(req, repo, "pull")
        check_digest(digest)
        st = self.store.repo_blob_stat(repo, digest)
        if st is None:
            raise RegistryError("BLOB_UNKNOWN", f"blob {digest} not found in {repo}", detail=digest)
        size = st.size
        headers = {"Content-Type": "application/octet-stream", "Docker-Content-Digest": digest,
                   "Accept-Ranges": "bytes", "ETag": f'"{digest}"',
                   "Cache-Control": "max-age=31536000"}
        start, length, status = 0, size, 200
        # Go's http.ServeContent preconditions, against the ETag (the digest)
        etag = headers["ETag"]
        if_match = req.header("If-Match")
        if if_match and not _etag_listed(if_match, etag, weak=False):
            return req.send(412, {k: v for k, v in headers.items() if k != "Accept-Ranges"})
        if_none = req.header("If-None-Match")
        if if_none and _etag_listed(if_none, etag, weak=True):
            if req.method in ("GET", "HEAD"):
                return req.send(304, {k: v for k, v in headers.items()
                                      if k not in ("Accept-Ranges", "Content-Type")})
            return req.send(412, {k: v for k, v in headers.items() if k != "Accept-Ranges"})
        rng = req.header("Range")
        if_range = req.header("If-Range")
        if rng and if_range and if_range.strip() != etag:
            rng = None  # the client's copy is another one: the whole blob
        parsed = ranges.parse_ranges(rng, size) if rng else []  # HEAD too, as Go's ServeContent
        if isinstance(parsed, str):
            # Go's answer, in plain text (its Content-Length there is the blob's: a bug not copied)
            headers.pop("Accept-Ranges")
            headers["Content-Type"] = "text/plain; charset=utf-8"
            headers["X-Content-Type-Options"] = "nosniff"
            if parsed == ranges.NO_OVERLAP:
                headers["Content-Range"] = f"bytes */{size}"
            return req.send(416, headers, parsed.encode() + b"\n")
        if len(parsed) > 1 and sum(e - s + 1 for s, e in parsed) <= ranges.MULTIPART_LIMIT:
            ctype, body = ranges.multipart(parsed, size, headers["Content-Type"],
                                           lambda s, n: self.store.open_blob(digest, s, n))
            headers["Content-Type"] = ctype
            return req.send(206, headers, body)
        if len(parsed) == 1:
            start, end = parsed[0]
            length = end - start + 1
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        try:
            reader = self.store.open_blob(digest, start, length)
        except FileNotFoundError:
            raise RegistryError("BLOB_UNKNOWN", f"blob {digest} not found in {repo}", detail=digest) from None
        with reader:
            req.send_range(status, headers, reader)

    def _upload_headers(self, req: Request, upload: Upload) -> dict[str, str]:
        """Location (absolute, with the CNCF registry's ``_state`` token), Range, upload UUID."""
        headers = upload_headers(upload)
        headers["Location"] = req.absolute_url(headers["Location"]) + "?_state=" + \
            pack_upload_state(upload)
        return headers

    def _blob_created(self, req: Request, repo: str, digest: str) -> None:
        req.send(201, {"Location": req.absolute_url(f"/v2/{repo}/blobs/{digest}"),
                       "Docker-Content-Digest": digest})

    def blob_upload_start(self, req: Request, repo: str) -> None:
        if req.method != "POST":  # the CNCF registry's upload handler, with no upload to act on
            self.authorize(req, repo, "push")
            raise RegistryError("BLOB_UPLOAD_UNKNOWN")
        self.authorize(req, repo, "push")
        # a mount or digest the CNCF registry cannot use is ignored: a plain upload starts
        mount, from_repo = req.arg("mount"), req.arg("from")
        if mount is not None and from_repo is not None and dg.is_digest(mount):
            if is_valid_name(from_repo) and self.authorize(req, from_repo, "pull", soft=True) and \
                    self.store.mount_blob(repo, mount, from_repo):
                return self._blob_created(req, repo, mount)
        digest = req.arg("digest")
        if digest is not None and dg.is_digest(digest):
            self.store.put_blob(repo, req.body, digest)  # no body: the empty blob
            return self._blob_created(req, repo, digest)
        upload = self.store.start_upload(repo)
        req.send(202, self._upload_headers(req, upload))  # no OCI-Chunk-Min-Length: CNCF sends none

    def blob_upload(self, req: Request, repo: str, uuid: str) -> None:
        self.authorize(req, repo, "push")
        if not upload_state_matches(req.arg("_state"), repo, uuid):
            # the CNCF registry resumes an upload only from the Location it handed out
            raise RegistryError("BLOB_UPLOAD_INVALID", "blob upload invalid", status=404,
                                detail={} if not req.arg("_state") else NO_DETAIL)
        upload = self.store.get_upload(repo, uuid)
        if req.method in ("GET", "HEAD"):
            return req.send(204, self._upload_headers(req, upload))
        if req.method == "POST":  # the CNCF registry starts a new upload here
            return self.blob_upload_start(req, repo)
        if req.method == "DELETE":
            self.store.cancel_upload(upload)
            return req.send(204, {"Docker-Upload-UUID": upload.id})
        if req.method == "PATCH":
            start = None
            cr = req.header("Content-Range")
            if cr:
                m = _CONTENT_RANGE_RE.match(cr.strip())
                if not m:
                    raise RegistryError("BLOB_UPLOAD_INVALID", f"invalid Content-Range {cr!r}",
                                        status=416, headers=self._upload_headers(req, upload))
                start, end = int(m.group(1)), int(m.group(2))
                length = req.content_length
                if end < start or (length is not None and length != end - start + 1):
                    raise RegistryError("BLOB_UPLOAD_INVALID", f"Content-Range {cr!r} does not match "
                                        f"the body length {length}", status=416,
                                        headers=self._upload_headers(req, upload))
            if req.body is not None:
                try:
                    self.store.append(upload, req.body, start)
                except RegistryError as err:  # a 416 names the upload as every upload answer does
                    if "Location" in err.headers:
                        err.headers.update(self._upload_headers(req, self.store.get_upload(repo, uuid)))
                    raise
            elif start not in (None, upload.size):
                raise RegistryError("BLOB_UPLOAD_INVALID", "chunk out of order", status=416,
                                    headers=self._upload_headers(req, upload))
            return req.send(202, self._upload_headers(req, upload))
        # PUT: finish
        digest = req.arg("digest")
        if digest is None:
            raise RegistryError("DIGEST_INVALID", "the digest query parameter is required to finish an upload",
                                detail="digest missing")
        check_digest(digest, detail="digest parsing failed")
        self.store.finish_upload(upload, digest, req.body)
        self._blob_created(req, repo, digest)

    # ---- manifests, tags, referrers ------------------------------------------------------------
    def manifest(self, req: Request, repo: str, reference: str) -> None:
        if req.method == "PUT":
            return self._put_manifest(req, repo, reference)
        if req.method == "DELETE":
            return self._delete_manifest(req, repo, reference)
        self.authorize(req, repo, "pull")
        tag, _digest = split_reference(reference)
        info, data = self.store.get_manifest(repo, reference)
        if _etag_matches(req.header("If-None-Match"), info.digest):
            return req.send(304, {})
        info, data = self._negotiate(repo, tag, info, data, _accepted(req))
        req.send(200, {"Content-Type": info.media_type, "Docker-Content-Digest": info.digest,
                       "ETag": f'"{info.digest}"'}, data)

    def _negotiate(self, repo: str, tag: str | None, info: Any, data: bytes,
                   accepted: set[str]) -> tuple[Any, bytes]:
        """The CNCF registry's Accept rules (v2.8), so clients get the same answer from both.

        OCI manifests and indexes only go to clients that accept their type; a Docker manifest
        list fetched by tag by a client that does not accept lists is answered with its
        linux/amd64 entry; a Docker schema 2 manifest fetched by tag by a client that does not
        accept it would need schema 1, which is not served (MANIFEST_INVALID).
        """
        if info.media_type == mf.OCI_MANIFEST and mf.OCI_MANIFEST not in accepted:
            raise RegistryError("MANIFEST_UNKNOWN", "OCI manifest found, but accept header does "
                                "not support OCI manifests", public=True)
        if info.media_type == mf.OCI_INDEX and mf.OCI_INDEX not in accepted:
            raise RegistryError("MANIFEST_UNKNOWN", "OCI index found, but accept header does "
                                "not support OCI indexes", public=True)
        if tag is None:
            return info, data
        if info.media_type == mf.DOCKER_LIST and mf.DOCKER_LIST not in accepted:
            child = _default_platform_entry(data)
            if child is None:
                raise RegistryError("MANIFEST_UNKNOWN")
            info, data = self.store.get_manifest(repo, child)
        if info.media_type == mf.DOCKER_MANIFEST and mf.DOCKER_MANIFEST not in accepted:
            raise RegistryError("MANIFEST_INVALID", "schema 1 manifests are not served: "
                                f"send 'Accept: {mf.DOCKER_MANIFEST}'")
        return info, data

    def _put_manifest(self, req: Request, repo: str, reference: str) -> None:
        self.authorize(req, repo, "push")
        split_reference(reference)
        data = req.read_body(self.config.max_manifest_size)
        if not data:
            raise RegistryError("MANIFEST_INVALID", "empty manifest body", detail={"Offset": 0})
        parsed = self.store.put_manifest(repo, reference, data, req.header("Content-Type"),
                                         lambda tag: self.policy.is_immutable(repo, tag))
        _tag, ref_digest = split_reference(reference)
        digest = ref_digest or parsed.digest
        headers = {"Location": req.absolute_url(f"/v2/{repo}/manifests/{digest}"),
                   "Docker-Content-Digest": digest}
        if parsed.subject is not None:
            headers["OCI-Subject"] = parsed.subject.digest
        req.send(201, headers)

    def _delete_manifest(self, req: Request, repo: str, reference: str) -> None:
        self.authorize(req, repo, "delete")
        try:
            tag, digest = split_reference(reference)
        except RegistryError as err:
            err.detail = None  # CNCF's delete says no more than the code
            raise
        if not self.config.storage.delete_enabled:
            raise RegistryError("UNSUPPORTED", "deletes are disabled on this registry")
        protect: Callable[[str], bool] = lambda t: self.policy.is_immutable(repo, t)
        if tag is not None:
            if not self.config.storage.delete_tags:  # the CNCF registry deletes by digest only
                raise RegistryError("DIGEST_INVALID", f"{reference!r} is a tag: delete the manifest "
                                    "by digest, or enable storage.delete.tags")
            self.store.delete_tag(repo, tag, protect)
        else:
            self.store.delete_manifest(repo, digest, protect)
        req.send(202, {})

    def tags(self, req: Request, repo: str) -> None:
        self.authorize(req, repo, "pull")
        names = self.store.tag_names(repo)
        if not names and not self.store.has_tag_list(repo):  # never tagged: CNCF's NAME_UNKNOWN
            raise RegistryError("NAME_UNKNOWN", f"repository {repo!r} has no tags", detail={"name": repo})
        page, link = _paginate(names, req, f"/v2/{repo}/tags/list")
        # a repository without tags lists null, as Go encodes the CNCF registry's empty list
        req.send_json(200, {"name": repo, "tags": page if names else None}, link)

    def referrers(self, req: Request, repo: str, digest: str) -> None:
        self.authorize(req, repo, "pull")
        check_digest(digest)
        descriptors = self.store.referrers(repo, digest)
        headers = {"Content-Type": mf.OCI_INDEX}
        artifact_type = req.arg("artifactType")
        if artifact_type:
            descriptors = [d for d in descriptors if d.get("artifactType") == artifact_type]
            headers["OCI-Filters-Applied"] = "artifactType"
        import json

        body = json.dumps({"schemaVersion": 2, "mediaType": mf.OCI_INDEX, "manifests": descriptors},
                          separators=(",", ":")).encode()
        req.send(200, headers, body)


CATALOG_PAGE = 100  # the CNCF registry's catalog page size when ``n`` is absent or unusable
CATALOG_MAX = 1000  # and the largest it serves


def _path_order(name: str) -> str:
    """The CNCF registry's repository order: component by component ("a/b" before "a-b")."""
    return name.replace("/", "\x00")


def _paginate(items: list[str], req: Request, path: str, default_n: int | None = None,
              key: Callable[[str], str] = str) -> tuple[list[str], dict[str, str]]:
    """Apply ``last`` and ``n``; add a ``Link: <...>; rel="next"`` header when more remain.

    As the CNCF registry, an ``n`` that is not a number >= 0 counts as absent, and the Link
    names ``last`` before ``n``; a full last page gets no Link.
    """
    last, n_raw = req.arg("last"), req.arg("n")
    if last:
        items = [i for i in items if key(i) > key(last)]
    try:
        n: int | None = int(n_raw) if n_raw else None
    except ValueError:
        n = None
    if n is None or n < 0:
        n = default_n
    if n is None:
        return items, {}
    page = items[:n]
    headers = {}
    if n and len(items) > n:
        headers["Link"] = f'<{path}?last={quote(page[-1], safe="")}&n={n}>; rel="next"'
    return page, headers


def _accepted(req: Request) -> set[str]:
    """Media types named in the Accept headers (parameters and q-values ignored, as Go's)."""
    out = set()
    for value in req.headers.get_all("Accept") or []:
        for item in value.split(","):
            media = item.split(";")[0].strip().lower()
            if media:
                out.add(media)
    return out


def _etag_listed(header: str, etag: str, *, weak: bool) -> bool:
    """An If-Match/If-None-Match list names ``etag`` (``*`` names any; ``W/`` only if ``weak``)."""
    for item in header.split(","):
        item = item.strip()
        if item == "*":
            return True
        if weak and item.startswith("W/"):
            item = item[2:]
        if item == etag:
            return True
    return False


def _etag_matches(header: str | None, digest: str) -> bool:
    if not header:
        return False
    return any(v.strip() in (digest, f'"{digest}"') for v in header.split(","))


def _default_platform_entry(data: bytes) -> str | None:
    """The linux/amd64 entry of a Docker manifest list (what a list-unaware client gets)."""
    import json

    try:
        entries = json.loads(data).get("manifests") or []
    except (ValueError, AttributeError):
        return None
    for e in entries:
        platform = e.get("platform") or {} if isinstance(e, dict) else {}
        if platform.get("architecture") == "amd64" and platform.get("os") == "linux" \
                and isinstance(e.get("digest"), str):
            return e["digest"]
    return None


def _method_not_allowed(req: Request, methods: tuple[str, ...]) -> None:
    """gorilla/handlers' answer to a method a route lacks (OPTIONS lists the methods)."""
    allow = {"Allow": ", ".join(sorted(methods))}
    if req.method == "OPTIONS":
        return req.send(200, allow)
    req.send(405, {**allow, "Content-Type": "text/plain; charset=utf-8",
                   "X-Content-Type-Options": "nosniff"}, b"Method not allowed\n")


def _redirect(req: Request, target: str) -> None:
    """Go's ``http.Redirect`` with 301 (a small HTML body for GET and HEAD only)."""
    if req.method in ("GET", "HEAD"):
        body = f'<a href="{html.escape(target)}">Moved Permanently</a>.\n\n'.encode()
        return req.send(301, {"Location": target, "Content-Type": "text/html; charset=utf-8"}, body)
    req.send(301, {"Location": target})
