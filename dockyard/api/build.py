"""``POST /build`` (docker's classic builder protocol) and ``POST /build/prune``.

The request body is the context as a tar (plain or compressed); the query names the tags,
the Dockerfile inside the context, build args and labels (JSON), the target, ``nocache``,
``pull``, ``q``. dockyard's builder runs it and its progress goes out as ``{"stream": ...}``
messages in the classic builder's words (:mod:`dockyard.api.classic_build`); the result as
``{"aux": {"ID": ...}}`` and docker's ``Successfully built``/``Successfully tagged`` lines,
which docker-py looks for; a failure as ``{"errorDetail": {"code": N, ...}}`` (the CLI's exit code).
"""
from __future__ import annotations

from typing import Any

from dockyard.api.http import ApiError, Exchange


def _json_map(x: Exchange, name: str) -> dict[str, Any]:
    value = x.json_arg(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ApiError(400, f"invalid {name}: expected a JSON object")
    return value


def _read_dockerfile(context: Any, rel: str, explicit: bool) -> bytes:
    names = [rel] if explicit else ["Dockerfile", "dockerfile"]
    for name in names:
        try:
            return context.read_file(name)
        except Exception:  # noqa: BLE001 - try the next spelling
            continue
    raise ApiError(400, f"Cannot locate specified Dockerfile: {rel}")


def build(x: Exchange) -> None:
    from dockyard.api.classic_build import ClassicProgress, TextBuffer, classic_error, instruction_texts
    from dockyard.api.images import familiar
    from dockyard.api.progress import TextToStream
    from dockyard.build.context import BuildContext
    from dockyard.build.errors import BuildError
    from dockyard.build.service import BuildOptions
    from dockyard.content.digest import short_id

    if x.arg("remote"):
        from dockyard.build.context import remote_context_error

        raise remote_context_error(x.arg("remote") or "")
    rel = x.arg("dockerfile") or "Dockerfile"
    explicit = bool(x.arg("dockerfile")) and rel != "Dockerfile"
    tags = [t for t in x.args("t") if t]
    quiet = x.flag("q")
    build_args = {k: (None if v is None else str(v)) for k, v in _json_map(x, "buildargs").items()}
    labels = {k: str(v) for k, v in _json_map(x, "labels").items()}
    network = x.arg("networkmode") or "default"
    stream = x.stream()
    tmp_parent = x.client.state.dir("build", "tmp")
    context = BuildContext.from_tar(x.body, tmp_parent, rel)
    with context:
        dockerfile = _read_dockerfile(context, rel, explicit)
        # quiet (-q): dockerd keeps the output back and sends it only if the build fails
        out = TextBuffer() if quiet else TextToStream(stream)
        progress = ClassicProgress(out, instruction_texts(dockerfile, x.arg("target") or None))
        opts = BuildOptions(context=context, dockerfile=dockerfile, dockerfile_name=rel, tags=tags,
                            build_args=build_args, target=x.arg("target") or None, no_cache=x.flag("nocache"),
                            pull=x.flag("pull"), labels=labels, network=network if network != "bridge" else "default",
                            platform=x.arg("platform") or None, progress=progress)
        try:
            result = x.client.builder.build(opts)
        except BuildError as exc:
            held = out.text() if isinstance(out, TextBuffer) else ""
            if not stream.started and not held:
                raise  # refused before it began (a Dockerfile syntax error): dockerd's plain 400
            if held:
                stream.json({"stream": held})
            message, code = classic_error(exc)
            stream.json({"errorDetail": {"code": code, "message": message}, "error": message})
            return
    if quiet:  # dockerd 20.10: the ID alone (docker-py finds it by its sha256: prefix)
        stream.json({"stream": result.image_id + "\n"})
    else:
        stream.json({"aux": {"ID": result.image_id}})
        stream.json({"stream": f"Successfully built {short_id(result.image_id)}\n"})
        for t in tags:
            stream.json({"stream": f"Successfully tagged {familiar(t)}\n"})
    for t in tags:  # as dockerd: a ``tag`` event per name, no event of its own for the build
        x.daemon.events.publish("image", "tag", result.image_id, {"name": familiar(t)})


def prune(x: Exchange) -> None:
    filters = x.filters()
    until = None
    for value in filters.get("until", []):
        from dockyard.engine.timeutil import parse_duration

        ns = parse_duration(value)
        if ns is None:
            raise ApiError(400, f"invalid filter 'until={value}'")
        until = ns / 1e9
    report = x.client.builder.prune(all=x.flag("all"), until=until)
    x.reply_json({"CachesDeleted": report.get("deleted") or None, "SpaceReclaimed": report.get("reclaimed", 0)})

