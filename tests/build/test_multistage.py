"""Multi-stage builds: independent stages run at the same time; a failure stops the build."""
from __future__ import annotations

import time

import pytest

from dockyard.build.errors import StepFailed

PARALLEL = """FROM dytest-busybox AS left
RUN sleep 1 && echo left > /left
FROM dytest-busybox AS right
RUN sleep 1 && echo right > /right
FROM dytest-busybox
COPY --from=left /left /left
COPY --from=right /right /right
"""


def test_independent_stages_run_in_parallel(build, client):
    start = time.monotonic()
    built = build(None, PARALLEL)
    elapsed = time.monotonic() - start
    assert elapsed < 1.8, f"two 1 s stages took {elapsed:.2f}s: they did not run in parallel"
    import imagefs

    table, _ = imagefs.dockyard_image_fs(client, built.image_id)
    assert {"/left", "/right"} <= set(table.entries)
    # progress names the stage of each step
    assert "[left 2/2] RUN sleep 1 && echo left > /left" in built.output
    assert "[stage-2 2/3] COPY --from=left /left /left" in built.output


def test_failure_in_one_stage_fails_the_build(build, client, root):
    with pytest.raises(StepFailed, match="exit code: 5"):
        build(None, "FROM dytest-busybox AS bad\nRUN exit 5\nFROM dytest-busybox AS slow\nRUN sleep 0.2\n"
                    "FROM dytest-busybox\nCOPY --from=bad /etc/passwd /a\nCOPY --from=slow /etc/passwd /b\n")
    assert not [s for s in client.snapshots.list() if s.kind == "active"]


def test_stage_reused_by_two_stages_is_built_once(build):
    built = build(None, "FROM dytest-busybox AS common\nRUN echo once > /common\n"
                        "FROM common AS a\nRUN true\nFROM common AS b\nRUN true\n"
                        "FROM dytest-busybox\nCOPY --from=a /common /a\nCOPY --from=b /common /b\n")
    assert built.output.count("RUN echo once > /common") == 1


@pytest.mark.interop
@pytest.mark.parametrize("runtime", ["runc", "crun"])
def test_run_steps_on_external_runtimes(runtime, build, client):
    import shutil

    import imagefs

    if shutil.which(runtime) is None:
        pytest.skip(f"{runtime} is not installed")
    built = build(None, "FROM dytest-busybox\nARG RT\nRUN echo via-$RT > /rt && id -u >> /rt\n",
                  build_args={"RT": runtime}, runtime=runtime, no_cache=True)
    assert imagefs.file_content(client, built.image_id, "/rt") == f"via-{runtime}\n0\n".encode()


def test_a_failing_stage_stops_the_others(build, client):
    start = time.monotonic()
    with pytest.raises(StepFailed, match="exit code: 3"):
        build(None, "FROM dytest-busybox AS slow\nRUN sleep 20\nFROM dytest-busybox AS bad\nRUN sleep 0.3; exit 3\n"
                    "FROM dytest-busybox\nCOPY --from=slow /etc/passwd /a\nCOPY --from=bad /etc/passwd /b\n")
    assert time.monotonic() - start < 8, "the slow stage was not stopped"
    assert not [s for s in client.snapshots.list() if s.kind == "active"]


def test_copy_from_expands_global_args(build, client):
    """``COPY --from=${X}`` takes X from the global ARGs (and --build-arg), for the stage
    dependencies and for the copy alike; a stage's own ARG is not used there."""
    import imagefs

    dockerfile = ("ARG SRC=one\nFROM dytest-busybox AS one\nRUN echo one > /f\n"
                  "FROM dytest-busybox AS two\nRUN echo two > /f\n"
                  "FROM dytest-busybox\nARG SRC=two\nCOPY --from=${SRC} /f /copied\n")
    built = build(None, dockerfile)
    assert imagefs.file_content(client, built.image_id, "/copied") == b"one\n"
    built = build(None, dockerfile, build_args={"SRC": "two"})
    assert imagefs.file_content(client, built.image_id, "/copied") == b"two\n"
