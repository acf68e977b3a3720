"""``client.distribution``: pull, push, login and logout, the library API behind the CLI verbs.

::

    client = dockyard.Client()
    image = client.distribution.pull("localhost:5000/team/app:1.0", progress=sys.stderr)
    client.distribution.push("localhost:5000/team/app:1.0")
    client.distribution.login("localhost:5000", "alice", "secret")

``progress`` is a :class:`~dockyard.distribution.progress.Progress`, a text stream (docker's
output is written there: bars on a terminal, plain lines otherwise) or None (silent).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, TextIO

from dockyard.distribution.credentials import Credentials, CredentialStore
from dockyard.distribution.errors import RegistryError, Unauthorized
from dockyard.distribution.hosts import RegistrySettings, normalize_server
from dockyard.distribution.progress import Progress
from dockyard.distribution.records import BlobRecords
from dockyard.errors import InvalidArgument

if TYPE_CHECKING:  # pragma: no cover
    from dockyard.client import Client
    from dockyard.distribution.push import PushOutcome
    from dockyard.distribution.registry import RegistryClient
    from dockyard.distribution.transport import Transport
    from dockyard.image.service import Image


@dataclass
class PullReport:
    """What ``image pull`` prints at the end: docker's status line and the name on the last line."""

    images: list["Image"]
    status: str           # "Status: Downloaded newer image for busybox:latest"
    name: str             # "docker.io/library/busybox:latest"


@dataclass
class LoginResult:
    server: str           # the registry domain logged in to
    stored_in: str        # the config file, or the credential helper
    helper: bool


def as_progress(progress: "Progress | TextIO | None") -> Progress:
    if isinstance(progress, Progress):
        return progress
    return Progress(progress)


class DistributionService:
    """Pull from and push to registries; keep credentials in docker's config.json."""

    def __init__(self, client: "Client") -> None:
        self.client = client
        self.records = BlobRecords(client.state)
        self._insecure: list[str] = []
        self._config_dir: str | None = None
        self._transport: "Transport | None" = None
        self._registries: dict[str, "RegistryClient"] = {}
        self._lock = threading.Lock()
        self._request_credentials: Credentials | None = None

    # -- configuration ------------------------------------------------------------------------
    def configure(self, insecure_registries: Iterable[str] = (), config_dir: str | None = None) -> None:
        """Per-invocation settings (the CLI's ``--insecure-registry`` and ``--config``)."""
        self._insecure = list(insecure_registries)
        self._config_dir = config_dir
        self.close()

    @property
    def credentials(self) -> CredentialStore:
        return CredentialStore(self._config_dir)

    @property
    def transport(self) -> "Transport":
        with self._lock:
            if self._transport is None:
                from dockyard.distribution.transport import Transport

                self._transport = Transport(RegistrySettings.load(self.client.state.path, self._insecure))
            return self._transport

    def registry(self, domain: str) -> "RegistryClient":
        """The (cached) client for one registry domain, e.g. ``localhost:5000`` or ``docker.io``."""
        transport = self.transport
        with self._lock:
            reg = self._registries.get(domain)
            if reg is None:
                from dockyard.distribution.registry import RegistryClient

                fixed = self._request_credentials
                store = self.credentials
                getter = (lambda: fixed) if fixed is not None else (lambda: store.get(domain))
                reg = self._registries[domain] = RegistryClient(domain, transport, getter)
            return reg

    def with_credentials(self, credentials: Credentials | None) -> "DistributionService":
        """A service for one request whose registries use ``credentials`` (the Engine API's
        ``X-Registry-Auth``) instead of the stored ones; it shares this one's connections.
        With ``None`` it is this service."""
        if credentials is None:
            return self
        svc = DistributionService(self.client)
        svc._insecure, svc._config_dir = self._insecure, self._config_dir
        svc._transport = self.transport
        svc._request_credentials = credentials
        return svc

    def close(self) -> None:
        with self._lock:
            if self._transport is not None:
                self._transport.close()
            self._transport = None
            self._registries.clear()

    # -- pull ---------------------------------------------------------------------------------
    def pull(self, name: str, platform: str | None = None,
             progress: "Progress | TextIO | None" = None) -> "Image":
        """Pull one image (``name[:tag]`` or ``name@digest``) and return it.

        Writes docker's output to ``progress``, ending with the ``Digest:`` and ``Status:`` lines.
        """
        return self.pull_report(name, platform=platform, progress=progress).images[0]

    def pull_report(self, name: str, platform: str | None = None, all_tags: bool = False,
                    progress: "Progress | TextIO | None" = None) -> PullReport:
        """Pull one reference, or with ``all_tags`` every tag of a repository."""
        from dockyard.distribution.pull import Puller
        from dockyard.image import platform as plat
        from dockyard.image.reference import parse

        if platform:
            plat.parse(platform)
        out = as_progress(progress)
        ref = parse(name, default_tag=not all_tags)
        puller = Puller(self, out, platform)
        if not all_tags:
            outcome = puller.pull(ref)
            status = "Downloaded newer image for" if outcome.updated else "Image is up to date for"
            out.message(f"Status: {status} {ref.familiar}")
            return PullReport([outcome.image], f"Status: {status} {ref.familiar}", str(ref))
        if ref.tag or ref.digest:
            raise InvalidArgument("tag can't be used with --all-tags/-a")
        repo = self.registry(ref.domain).repository(ref.path)
        try:
            tags = repo.tags()
        except RegistryError as exc:
            from dockyard.distribution.pull import _pull_error

            raise _pull_error(ref, exc) from None
        if not tags:
            raise InvalidArgument(f"repository {ref.familiar_name} has no tags")
        images, updated = [], False
        for tag in tags:
            outcome = puller.pull(ref.with_tag(tag))
            images.append(outcome.image)
            updated |= outcome.updated
        status = "Downloaded newer image for" if updated else "Image is up to date for"
        out.message(f"Status: {status} {ref.familiar_name}")
        return PullReport(images, f"Status: {status} {ref.familiar_name}", ref.name)

    # -- push ---------------------------------------------------------------------------------
    def push(self, name: str, all_tags: bool = False, platform: str | None = None,
             progress: "Progress | TextIO | None" = None) -> list["PushOutcome"]:
        """Push ``name[:tag]`` (or every local tag of the repository); returns tag, digest, size each."""
        from dockyard.distribution.push import Pusher
        from dockyard.image.reference import parse

        ref = parse(name, default_tag=not all_tags)
        if all_tags and ref.tag:
            raise InvalidArgument("tag can't be used with --all-tags/-a")
        return Pusher(self, as_progress(progress), platform).push(ref, all_tags=all_tags)

    # -- credentials --------------------------------------------------------------------------
    def login(self, server: str | None, username: str, password: str) -> LoginResult:
        """Check the credentials against the registry, then store them (nothing is stored if wrong)."""
        domain = self.verify_login(server, username, password)
        store = self.credentials
        stored_in = store.store(domain, Credentials(username, password))
        return LoginResult(domain, stored_in, store.uses_helper(domain))

    def verify_login(self, server: str | None, username: str, password: str) -> str:
        """Check credentials against the registry without storing them (the Engine API's
        ``/auth``); returns the registry domain."""
        from dockyard.distribution.registry import RegistryClient

        domain = normalize_server(server)
        if not username:
            raise InvalidArgument("username is required")
        if not password:
            raise InvalidArgument("password is required")
        creds = Credentials(username, password)
        reg = RegistryClient(domain, self.transport, lambda: creds)  # these, not the stored ones
        status = reg.ping()
        url = f"{reg.base}/v2/"
        if status not in (200, 401):
            raise RegistryError(f"login attempt to {url} failed with status: {status}", status)
        try:
            resp = reg.request("GET", "/v2/", [])
        except Unauthorized as exc:
            raise Unauthorized(f'Get "{url}": {exc.text}', exc.status, exc.code, exc.text) from None
        resp.close()
        if resp.status != 200:
            raise Unauthorized(f"login attempt to {url} failed with status: {resp.status} {resp.reason}",
                               resp.status)
        return domain

    def stored_login(self, server: str | None) -> Credentials | None:
        return self.credentials.get(normalize_server(server))

    def logout(self, server: str | None) -> tuple[str, bool]:
        """Forget a registry's credentials; returns (registry, whether there were any)."""
        domain = normalize_server(server)
        return domain, self.credentials.erase(domain)
