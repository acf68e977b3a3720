"""``/images/...``: list, pull (and import), inspect, history, tag, remove, push, load, save, prune."""
from __future__ import annotations

import base64
import json
from typing import Any

from dockyard.api.http import ApiError, Exchange


def registry_credentials(x: Exchange) -> Any:
    """``X-Registry-Auth``: base64url JSON with username/password (or ``auth``), or nothing."""
    from dockyard.distribution.credentials import Credentials

    raw = x.headers.get("X-Registry-Auth") or ""
    if not raw.strip():
        return None
    try:
        padded = raw.strip() + "=" * (-len(raw.strip()) % 4)
        doc = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, TypeError):
        try:
            doc = json.loads(base64.b64decode(padded.encode()))
        except (ValueError, TypeError):
            raise ApiError(400, "invalid X-Registry-Auth header: expected base64-encoded JSON") from None
    if not isinstance(doc, dict):
        return None
    username, password = doc.get("username") or "", doc.get("password") or ""
    if not username and doc.get("auth"):
        try:
            username, _, password = base64.b64decode(doc["auth"]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, "invalid X-Registry-Auth header: bad auth field") from None
    token = doc.get("identitytoken") or ""
    if not username and not token:
        return None
    return Credentials(username, password, token)


def _distribution(x: Exchange) -> Any:
    return x.client.distribution.with_credentials(registry_credentials(x))


def summary(image: Any) -> dict[str, Any]:
    """docker's ``GET /images/json`` entry."""
    from dockyard.timeutil import parse_rfc3339

    return {"Containers": -1, "Created": int(parse_rfc3339(image.created) or 0), "Id": image.id,
            "Labels": image.labels or None, "ParentId": image.parent or "", "RepoDigests": list(image.repo_digests),
            "RepoTags": list(image.repo_tags), "SharedSize": -1, "Size": image.size, "VirtualSize": image.size}


def list_(x: Exchange) -> None:
    filters = x.filters()
    if x.arg("filter"):  # the pre-1.25 name filter
        filters.setdefault("reference", []).append(x.arg("filter") or "")
    rows = [summary(i) for i in x.client.images.list(all=x.flag("all"), filters=filters)]
    if filters.get("reference"):
        _only_matching_names(rows, filters["reference"])
    x.reply_json(rows)


def _only_matching_names(rows: list[dict[str, Any]], patterns: list[str]) -> None:
    """With ``reference=`` filters, dockerd lists only the names that match (``docker images
    busybox:1`` shows that tag, not every tag of the image); no matching digest is ``null``."""
    from dockyard.image.filters import reference_matches

    for row in rows:
        row["RepoTags"] = [t for t in row["RepoTags"] if reference_matches(patterns, t)]
        digests = [d for d in row["RepoDigests"] if reference_matches(patterns, d.split("@", 1)[0])]
        row["RepoDigests"] = digests or None


def inspect(x: Exchange, name: str) -> None:
    """dockerd 20.10 words a missing image here as ``no such image: REF: No such image: REF``
    (what ``docker image inspect`` and docker-py's ``images.get`` show); the same here."""
    from dockyard.errors import NotFound

    try:
        doc = x.client.images.inspect(name)
    except NotFound as exc:
        raise ApiError(404, f"no such image: {name}: {exc.message}") from None
    x.reply_json(doc)


def history(x: Exchange, name: str) -> None:
    rows = x.client.images.history(name)
    for row in rows:
        row["Created"] = int(row.get("Created") or 0)  # docker's int64 seconds
    x.reply_json(rows)


def tag(x: Exchange, name: str) -> None:
    repo = x.arg("repo") or ""
    if not repo:
        raise ApiError(400, "repository name must have at least one component")
    tag_ = x.arg("tag") or ""
    target = f"{repo}:{tag_}" if tag_ else repo
    image_id = x.client.images.resolve_id(name)
    x.client.images.tag(name, target)
    x.daemon.events.publish("image", "tag", image_id, {"name": familiar(target)})
    x.reply(201)


def familiar(ref: str) -> str:
    """``docker.io/library/x:1`` → ``x:1``: how dockerd names images in messages and events."""
    from dockyard.image.reference import parse

    try:
        return parse(ref).familiar
    except Exception:  # noqa: BLE001 - shown as given
        return ref


def remove(x: Exchange, name: str) -> None:
    """dockerd's events: ``untag`` and ``delete`` name the image by its ID; removed layers
    (``Deleted:`` lines after the image's) are no images and get none."""
    from dockyard.errors import NotFound

    try:
        image_id = x.client.images.resolve_id(name)
    except NotFound:
        image_id = ""  # the removal reports it
    records = x.client.images.remove(name, force=x.flag("force"), prune=not x.flag("noprune"))
    from dockyard.engine.events import emit_image_removal

    emit_image_removal(x.client, image_id, records)
    x.reply_json(records)


def prune(x: Exchange) -> None:
    filters = x.filters()
    dangling = [v.lower() for v in filters.pop("dangling", [])]
    all_ = bool(dangling) and all(v in ("false", "0") for v in dangling)
    report = x.client.images.prune(all=all_, filters=filters)
    for rec in report.get("ImagesDeleted") or []:
        for action, ref in rec.items():
            x.daemon.events.publish("image", "untag" if action == "Untagged" else "delete", ref, {"name": ref})
    from dockyard.engine.events import emit_prune

    emit_prune(x.client, "image", report.get("SpaceReclaimed") or 0)
    x.reply_json(report)


def search(x: Exchange) -> None:
    from dockyard.errors import Unsupported

    raise Unsupported("image search is not supported: dockyard's registry client speaks the OCI "
                      "distribution API, which has no search")


# ------------------------------------------------------------------ pull, import, push
def _pull_name(image: str, tag: str) -> tuple[str, bool]:
    """(reference, all tags): ``fromImage=busybox&tag=latest``; a digest may come as the tag."""
    if not tag:
        last = image.rsplit("/", 1)[-1]
        if "@" in image or ":" in last:
            return image, False
        return image, True
    if tag.startswith("sha256:"):
        return f"{image}@{tag}", False
    return f"{image}:{tag}", False


def create(x: Exchange) -> None:
    """``docker pull`` (``fromImage``) or ``docker import`` (``fromSrc``), with docker's
    JSON progress stream."""
    from dockyard.api.progress import JSONProgress

    stream = x.stream()
    if x.arg("fromSrc") is not None:
        _import(x, stream)
        return
    image = x.arg("fromImage") or ""
    if not image:
        raise ApiError(400, "fromImage or fromSrc is required")
    name, all_tags = _pull_name(image, x.arg("tag") or "")
    report = _distribution(x).pull_report(name, platform=x.arg("platform") or None, all_tags=all_tags,
                                          progress=JSONProgress(stream))
    for img in report.images:
        x.daemon.events.publish("image", "pull", report.name, {"name": report.name})
    stream.close()


def _import(x: Exchange, stream: Any) -> None:
    from dockyard.errors import Unsupported

    src = x.arg("fromSrc") or ""
    if src != "-":
        raise Unsupported(f"importing from a URL ({src}) needs network access; send the tar as the request body")
    repo, tag_ = x.arg("repo") or "", x.arg("tag") or ""
    name = (f"{repo}:{tag_}" if tag_ else repo) or None
    image = x.client.images.import_rootfs(x.body, name, changes=x.args("changes"), message=x.arg("message") or "",
                                          platform=x.arg("platform") or None)
    x.daemon.events.publish("image", "import", image.id, {"name": name or image.id})
    stream.json({"status": image.id})


def push(x: Exchange, name: str) -> None:
    from dockyard.api.progress import JSONProgress

    tag_ = x.arg("tag") or ""
    ref = f"{name}:{tag_}" if tag_ and not tag_.startswith("sha256:") else name
    stream = x.stream()
    outcomes = _distribution(x).push(ref, all_tags=not tag_ and ":" not in name.rsplit("/", 1)[-1],
                                     progress=JSONProgress(stream))
    for o in outcomes or []:
        tag_name, digest, size = _outcome(o)
        stream.json({"progressDetail": {}, "aux": {"Tag": tag_name, "Digest": digest, "Size": size}})
    x.daemon.events.publish("image", "push", ref, {"name": ref})


def _outcome(o: Any) -> tuple[str, str, int]:
    if isinstance(o, (tuple, list)):
        return str(o[0]), str(o[1]), int(o[2])
    return str(getattr(o, "tag", "")), str(getattr(o, "digest", "")), int(getattr(o, "size", 0))


# ------------------------------------------------------------------ archives
def load(x: Exchange) -> None:
    lines = x.client.images.load(x.body, platform=x.arg("platform") or None)
    stream = x.stream()
    for line in lines:
        x.daemon.events.publish("image", "load", line.split(": ", 1)[-1], {"name": line.split(": ", 1)[-1]})
        stream.json({"stream": line.rstrip("\n") + "\n"})
    if not lines:
        stream.start()


class _ChunkWriter:
    """A file whose writes go out as chunks of the response (tar streams)."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def write(self, data: bytes) -> int:
        self.stream.write(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass


def _save(x: Exchange, names: list[str]) -> None:
    if not names:
        raise ApiError(400, "no images given: use names=NAME")
    from dockyard.errors import NotFound

    for n in names:
        try:
            x.client.images.resolve_id(n)  # 404 before the archive starts
        except NotFound:
            raise ApiError(404, _save_missing(n)) from None
    stream = x.stream("application/x-tar")
    x.client.images.save(names, _ChunkWriter(stream))
    for n in names:
        x.daemon.events.publish("image", "save", n, {"name": n})


def _save_missing(name: str) -> str:
    """dockerd 20.10's words for a missing image in ``docker save``: a bare name is looked up
    as a repository (``No such image: NAME``), a tag or digest in its reference store."""
    from dockyard.image.reference import parse

    try:
        ref = parse(name, default_tag=False)
    except Exception:  # noqa: BLE001 - an ID or something else: as given
        return f"No such image: {name}"
    return "reference does not exist" if ref.tag or ref.digest else f"No such image: {name}"


def save(x: Exchange) -> None:
    _save(x, x.args("names"))


def save_one(x: Exchange, name: str) -> None:
    _save(x, [name])


def distribution_inspect(x: Exchange, name: str) -> None:
    """``GET /distribution/{name}/json`` (docker-py's ``get_registry_data``): the manifest's
    descriptor as the registry serves it and the platforms it has, asked of the registry now."""
    from dockyard.distribution.errors import RegistryError
    from dockyard.image.reference import parse

    ref = parse(name)
    repo = _distribution(x).registry(ref.domain).repository(ref.path)
    try:
        manifest = repo.get_manifest(ref.digest or ref.tag or "latest")
    except RegistryError as exc:  # dockerd: the registry's words, with its status
        if exc.status in (401, 403, 404):
            raise ApiError(exc.status, exc.text) from None
        raise
    doc = json.loads(manifest.data)
    if isinstance(doc.get("manifests"), list):  # an index: its entries say their platforms
        platforms = [_platform(m.get("platform") or {}) for m in doc["manifests"]]
    else:
        resp = repo.open_blob(doc["config"]["digest"])
        try:
            platforms = [_platform(json.loads(resp.read(1 << 22)))]
        finally:
            resp.close()
    x.reply_json({"Descriptor": {"mediaType": manifest.media_type, "digest": manifest.digest,
                                 "size": len(manifest.data)}, "Platforms": platforms})


def _platform(doc: dict[str, Any]) -> dict[str, Any]:
    """An OCI platform with only the fields that are set (dockerd's omitempty)."""
    keys = ("architecture", "os", "os.version", "os.features", "variant", "features")
    return {k: doc[k] for k in keys if doc.get(k)}
