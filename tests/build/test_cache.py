"""The layer cache: keyed like docker's, kept across builds, shown by ``builder du``, cleaned by
``builder prune``; and reproducible layers."""
from __future__ import annotations

import os
import re
import time

DOCKERFILE = """FROM dytest-busybox
RUN echo one > /one
COPY a.txt /a.txt
RUN cat /a.txt > /copy-of-a
COPY b.txt /b.txt
ENV MODE=x
CMD ["cat", "/one"]
"""


def _ctx(tmp_path):
    (tmp_path / "a.txt").write_text("a\n")
    (tmp_path / "b.txt").write_text("b\n")
    (tmp_path / "Dockerfile").write_text(DOCKERFILE)
    return tmp_path


def _cached_steps(output: str) -> list[str]:
    """Names of the steps a plain progress output marks CACHED."""
    names = dict(re.findall(r"^#(\d+) (\[.*)$", output, re.M))
    return [names[n].split("] ", 1)[1] for n in re.findall(r"^#(\d+) CACHED$", output, re.M)]


def test_unchanged_rebuild_is_fully_cached_and_identical(build, tmp_path):
    ctx = _ctx(tmp_path)
    first = build(ctx)
    assert _cached_steps(first.output) == []
    second = build(ctx)
    assert _cached_steps(second.output) == ["RUN echo one > /one", "COPY a.txt /a.txt", "RUN cat /a.txt > /copy-of-a",
                                           "COPY b.txt /b.txt"]
    assert second.image_id == first.image_id


def test_changing_one_file_rebuilds_from_its_step(build, client, tmp_path):
    ctx = _ctx(tmp_path)
    first = build(ctx)
    (ctx / "a.txt").write_text("changed\n")
    second = build(ctx)
    assert _cached_steps(second.output) == ["RUN echo one > /one"]
    assert second.image_id != first.image_id
    # only the content counts, not the time: touching b.txt changes nothing
    third = build(ctx)
    os.utime(ctx / "b.txt", (time.time() + 100, time.time() + 100))
    fourth = build(ctx)
    assert _cached_steps(fourth.output) == _cached_steps(third.output) != []
    assert fourth.image_id == third.image_id


def test_mode_change_invalidates_copy(build, tmp_path):
    ctx = _ctx(tmp_path)
    build(ctx)
    os.chmod(ctx / "b.txt", 0o600)
    again = build(ctx)
    assert "COPY b.txt /b.txt" not in _cached_steps(again.output)


def test_instruction_and_env_changes_invalidate(build, tmp_path):
    ctx = _ctx(tmp_path)
    build(ctx)
    (ctx / "Dockerfile").write_text(DOCKERFILE.replace("RUN cat /a.txt", "ENV NEW=1\nRUN cat /a.txt"))
    cached = _cached_steps(build(ctx).output)
    assert cached[:2] == ["RUN echo one > /one", "COPY a.txt /a.txt"]
    assert "RUN cat /a.txt > /copy-of-a" not in cached  # ENV changed the RUN's environment


def test_build_args_are_part_of_the_run_key(build, tmp_path):
    df = "FROM dytest-busybox\nARG V=1\nRUN echo $V > /v\n"
    a = build(None, df)
    b = build(None, df, build_args={"V": "1"})
    c = build(None, df, build_args={"V": "2"})
    assert a.image_id == b.image_id != c.image_id
    assert _cached_steps(b.output) == ["RUN echo $V > /v"] and _cached_steps(c.output) == []


def test_no_cache(build, tmp_path):
    ctx = _ctx(tmp_path)
    build(ctx)
    assert _cached_steps(build(ctx, no_cache=True).output) == []


def test_cache_survives_a_new_client(build, client, tmp_path, root):
    from dockyard import Client

    ctx = _ctx(tmp_path)
    first = build(ctx)
    with Client(root) as other:
        from dockyard.build.context import BuildContext
        from dockyard.build.service import BuildOptions

        with BuildContext.from_dir(ctx) as c:
            res = other.builder.build(BuildOptions(context=c, dockerfile=(ctx / "Dockerfile").read_bytes()))
    assert res.image_id == first.image_id


def test_source_date_epoch_gives_identical_layers(build, client, tmp_path):
    ctx = _ctx(tmp_path)
    a = build(ctx, no_cache=True, source_date_epoch=1_700_000_000)
    time.sleep(1.1)
    b = build(ctx, no_cache=True, source_date_epoch=1_700_000_000)
    la = [l.digest for l in client.images.get(a.image_id).layers]
    lb = [l.digest for l in client.images.get(b.image_id).layers]
    assert la == lb and a.image_id == b.image_id
    doc = client.images.get(a.image_id).config_doc
    assert doc["created"] == "2023-11-14T22:13:20Z"
    # without it, COPY layers are still reproducible (their inputs are files, not the clock)
    c = build(ctx, no_cache=True)
    time.sleep(1.1)
    d = build(ctx, no_cache=True)
    copies = lambda img: [l.digest for l in client.images.get(img).layers][2:5:2]  # noqa: E731
    assert copies(c.image_id) == copies(d.image_id)


def test_du_and_prune(build, client, tmp_path, cli):
    ctx = _ctx(tmp_path)
    built = build(ctx)
    du = client.builder.du()
    assert len(du) == 4 and all(r["in_use"] for r in du)
    proc = cli("builder", "du")
    assert proc.returncode == 0 and "RECLAIMABLE" in proc.stdout and "Total:" in proc.stdout
    # dangling-only prune keeps what images use; -a removes every record
    assert client.builder.prune()["deleted"] == []
    proc = cli("builder", "prune", "-a", "-f")
    assert proc.returncode == 0, proc.stderr
    assert "Deleted build cache objects:" in proc.stdout and "Total reclaimed space:" in proc.stdout
    assert client.builder.du() == []
    assert client.images.get(built.image_id)  # the image itself is untouched
    again = build(ctx)
    assert _cached_steps(again.output) == []


def test_prune_removes_unused_layers_and_cache_mounts(build, client, tmp_path):
    build(None, "FROM dytest-busybox\nRUN --mount=type=cache,target=/c echo hi > /c/x && echo 1 > /f\n",
          tags=["gone"])
    client.images.remove("gone")
    du = client.builder.du()
    assert {r["type"] for r in du} == {"regular", "exec.cachemount"}
    report = client.builder.prune()
    assert len(report["deleted"]) == 2 and report["reclaimed"] > 0
    assert client.builder.du() == []
