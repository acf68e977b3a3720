"""Every case of buildcases.py builds with dockyard, and the result has what docker gives
(the expectations here were taken from docker's own builds of the same Dockerfiles)."""
from __future__ import annotations

import pytest

import imagefs
from buildcases import BY_NAME, CASES


def _build_case(build, client, tmp_path, name):
    case = BY_NAME[name]
    ctx = case.materialize(tmp_path)
    built = build(ctx, build_args=dict(case.build_args), target=case.target)
    table, doc = imagefs.dockyard_image_fs(client, built.image_id)
    return built, table, doc, doc.get("config") or {}


def _content(client, image_id: str, path: str) -> bytes:
    return imagefs.file_content(client, image_id, path)


@pytest.mark.parametrize("name", [c.name for c in CASES])
def test_case_builds(name, build, client, tmp_path):
    built, table, doc, cfg = _build_case(build, client, tmp_path, name)
    assert built.image_id.startswith("sha256:")
    assert client.images.get(built.image_id).id == built.image_id
    # every image is a real image: diff_ids match the layers
    assert len(doc["rootfs"]["diff_ids"]) == len(client.images.get(built.image_id).layers)


def test_env_label(build, client, tmp_path):
    _, _, _, cfg = _build_case(build, client, tmp_path, "env-label")
    assert cfg["Env"] == ["PATH=/x:/usr/sbin:/usr/bin:/sbin:/bin", "A=2", "B=", "C=spaced value",
                          "D=2-empty", "E=single $A", "F=double 2"]
    assert cfg["Labels"] == {"k": "overridden", "2": "b", "multi": "line one line two"}


def test_expansion_modifiers(build, client, tmp_path):
    _, _, _, cfg = _build_case(build, client, tmp_path, "expansion")
    env = dict(e.split("=", 1) for e in cfg["Env"])
    assert (env["V1"], env["V2"], env["V3"], env["V4"], env["V5"]) == ("yes", "def", "alt", "", "def")
    assert (env["V7"], env["V8"], env["V9"], env["V10"]) == ("$SET", "a b", "yessuffix", "yes.ext")
    assert cfg["WorkingDir"] == "/base/yes"
    assert cfg["Labels"] == {"dir": "", "set": "yes"}


def test_cmd_entrypoint_shell(build, client, tmp_path):
    _, _, _, cfg = _build_case(build, client, tmp_path, "cmd-entrypoint")
    assert cfg["Entrypoint"] == ["/bin/sh", "-c"]
    assert cfg["Cmd"] == ["/bin/sh", "-ec", "echo after shell change"]
    assert cfg["Shell"] == ["/bin/sh", "-ec"]


def test_entrypoint_resets_inherited_cmd(build, client, tmp_path):
    _, _, _, cfg = _build_case(build, client, tmp_path, "entrypoint-resets-inherited-cmd")
    assert cfg["Entrypoint"] == ["echo"]
    assert not cfg.get("Cmd")


def test_expose_volume(build, client, tmp_path):
    _, _, _, cfg = _build_case(build, client, tmp_path, "expose-volume")
    assert set(cfg["ExposedPorts"]) == {"80/tcp", "53/udp", "8000/tcp", "8001/tcp", "8002/tcp", "8080/tcp"}
    # docker's quirk: a JSON array after a plain path is a literal path
    assert set(cfg["Volumes"]) == {"/data", "[/json-form]", "/v1", "/v2", "/a", "/b"}


def test_user_workdir(build, client, tmp_path):
    _, table, _, cfg = _build_case(build, client, tmp_path, "user-workdir")
    assert cfg["User"] == "1:2"
    assert cfg["WorkingDir"] == "/srv/other"
    # the classic builder creates WORKDIR directories as root, whatever USER says
    for d in ("/srv", "/srv/app", "/srv/other"):
        assert table.entries[d].kind == "dir" and (table.entries[d].uid, table.entries[d].gid) == (0, 0)


def test_healthcheck(build, client, tmp_path):
    _, _, _, cfg = _build_case(build, client, tmp_path, "healthcheck")
    # options a new HEALTHCHECK leaves out keep the base image's values, as docker merges them
    assert cfg["Healthcheck"] == {"Test": ["CMD", "true"], "Interval": 5_000_000_000, "Timeout": 3_000_000_000,
                                  "StartPeriod": 90_000_000_000, "Retries": 4}
    _, _, _, cfg = _build_case(build, client, tmp_path / "2", "healthcheck-none")
    assert cfg["Healthcheck"] == {"Test": ["NONE"], "Interval": 5_000_000_000}
    assert cfg["StopSignal"] == "SIGQUIT"


def test_onbuild(build, client, tmp_path):
    _, _, _, cfg = _build_case(build, client, tmp_path, "onbuild-record")
    assert cfg["OnBuild"] == ["RUN echo triggered > /triggered", "COPY a.txt /from-onbuild.txt"]
    built, table, _, cfg = _build_case(build, client, tmp_path / "2", "onbuild-trigger")
    assert "/triggered" in table.entries and "/seen" in table.entries
    assert "FROM_TRIGGER=1" in cfg["Env"]
    assert not cfg.get("OnBuild")  # triggers run once, they are not inherited


def test_copy_basic(build, client, tmp_path):
    _, t, _, _ = _build_case(build, client, tmp_path, "copy-basic")
    e = t.entries
    assert e["/a-file"].kind == "file" and e["/dir/a.txt"].kind == "file"
    assert {"/dir-contents/x", "/dir-contents/sub/y", "/dir-contents/empty"} <= set(e)
    assert "/dir-contents/dir" not in e  # a directory's contents are copied, not the directory
    assert {"/multi/a.txt", "/multi/b.txt", "/bin/a.txt", "/relative/path.txt", "/w/a.txt", "/w/sub/a.txt"} <= set(e)


def test_copy_wildcards(build, client, tmp_path):
    _, t, _, _ = _build_case(build, client, tmp_path, "copy-wildcards")
    assert {p for p in t.entries if p.startswith(("/txt/", "/dirs/", "/md/", "/deep/"))} == {
        "/txt/a.txt", "/txt/b.txt", "/dirs/f1", "/dirs/f2", "/md/a.md", "/deep/f1", "/deep/f2"}


def test_copy_symlinks(build, client, tmp_path):
    _, t, _, _ = _build_case(build, client, tmp_path, "copy-symlinks")
    e = t.entries
    assert e["/c1"].kind == "file"                      # a named symlink is followed
    assert e["/c2/flink"].kind == "symlink"             # symlinks inside a copied dir are kept
    assert e["/c2/abslink"].link == "/etc/passwd"
    assert e["/c3/dangling"].kind == "symlink"


def test_copy_through_destination_symlink(build, client, tmp_path):
    _, t, _, _ = _build_case(build, client, tmp_path, "copy-dest-symlink")
    e = t.entries
    assert e["/lnk"].kind == "symlink"
    assert {"/tgt/a.txt", "/tgt/renamed", "/tgt/dd/x"} <= set(e)
    assert e["/bin/sh"].kind == "symlink" and e["/bin/busybox"].size == 2  # written through the link


def test_copy_chown(build, client, tmp_path):
    _, t, _, _ = _build_case(build, client, tmp_path, "copy-chown")
    own = {p: (t.entries[p].uid, t.entries[p].gid) for p in t.entries}
    assert own["/n1"] == (1, 2) and own["/n2"] == (65534, 65534)
    assert own["/n3"] == (1, 1) and own["/n4"] == (1, 1)
    assert own["/n5"] == (65534, 65534) and own["/n5/sub/g"] == (65534, 65534)
    assert own["/p"] == (0, 0) and own["/p/q/r"] == (7, 8) and own["/p/q/r/sub/g"] == (7, 8)
    assert own["/t"] == (7, 8) and own["/t/u/v"] == (7, 8)


def test_copy_modes(build, client, tmp_path):
    _, t, _, _ = _build_case(build, client, tmp_path, "copy-modes")
    e = t.entries
    assert e["/d"].mode == 0o755 and e["/d/secret"].mode == 0o600
    assert e["/ctx/d700"].mode == 0o700 and e["/ctx/sticky"].mode == 0o1777 and e["/ctx/ro"].mode == 0o444
    assert e["/ctx/script.sh"].mode == 0o755
    # docker's classic builder chowns after copying: the kernel drops setuid, keeps setgid without g+x
    assert e["/m/exe"].mode == 0o755 and e["/m/grp"].mode == 0o2640


def test_copy_hardlinks(build, client, tmp_path):
    _, t, _, _ = _build_case(build, client, tmp_path, "copy-hardlinks")
    assert frozenset({"/linked/a", "/linked/b", "/linked/sub/c"}) in t.groups()


def test_dockerignore(build, client, tmp_path):
    _, t, _, _ = _build_case(build, client, tmp_path, "dockerignore")
    app = {p for p in t.entries if p.startswith("/app/")}
    assert app == {"/app/.dockerignore", "/app/keep.md", "/app/sub", "/app/sub/deep", "/app/sub/deep/two",
                   "/app/src", "/app/src/main.py", "/app/x", "/app/x/y"}


def test_add_archives(build, client, tmp_path):
    _, t, _, _ = _build_case(build, client, tmp_path, "add-archives")
    e = t.entries
    assert e["/p/sub/a"].kind == "file" and (e["/p/sub/a"].uid, e["/p/sub/a"].gid) == (11, 12)
    assert e["/p/sub/l"].link == "a"
    assert e["/c/z/file"].kind == "file"
    assert e["/n/notreally.tar"].kind == "file"        # not an archive: copied as it is
    assert e["/s/single.gz"].kind == "file"            # compressed, but not a tar
    assert e["/file.tar"].kind == "dir"                # an archive is always extracted by ADD
    assert e["/copied/plain.tar"].kind == "file"       # COPY never extracts


def test_run_whiteouts(build, client, tmp_path):
    built, t, _, _ = _build_case(build, client, tmp_path, "run-whiteouts")
    e = t.entries
    assert "/bin/ls" not in e and "/d/e" not in e and e["/d/g"].kind == "file"
    assert set(p for p in e if p.startswith("/root/")) == {"/root/new"}
    assert "/tmp/q" not in e and e["/fifo"].kind == "fifo"
    assert e["/bin/busybox"].mode == 0o4755 and (e["/etc/group"].uid, e["/etc/group"].gid) == (1, 1)
    # the layers are real diffs: a whiteout for /bin/ls and an opaque /root
    layer_names = []
    import io
    import tarfile

    for layer in client.images.get(built.image_id).layers[1:]:
        with client.content.open(layer.digest) as blob:
            layer_names.append(tarfile.open(fileobj=io.BytesIO(blob.read())).getnames())
    assert "bin/.wh.ls" in layer_names[0]
    assert "root/.wh..wh..opq" in layer_names[2]
    assert not any(n.startswith(("etc/hosts", "etc/resolv.conf", "etc/hostname", "proc/", "dev/")) for names in layer_names for n in names)


def test_run_hardlinks(build, client, tmp_path):
    _, t, _, _ = _build_case(build, client, tmp_path, "run-hardlinks")
    groups = t.groups()
    assert frozenset({"/etc/passwd", "/p2"}) in groups and frozenset({"/h1", "/h2"}) in groups
    assert frozenset({"/hl/a", "/hl/b"}) in groups


def test_run_env_and_args(build, client, tmp_path):
    built, t, _, cfg = _build_case(build, client, tmp_path, "run-env-args")
    assert _content(client, built.image_id, "/args") == b"default|given|envwins|\n"
    env = _content(client, built.image_id, "/env").decode().split("\n")
    assert "A=default" in env and "B=given" in env and "C=envwins" in env
    assert not any(e.startswith("D=") for e in env)
    assert built.warnings == ["[Warning] One or more build-args [D] were not consumed"]
    assert not any(e.startswith(("A=", "B=")) for e in cfg["Env"])  # ARG values never reach the image


def test_arg_scoping(build, client, tmp_path):
    built, _, _, _ = _build_case(build, client, tmp_path, "arg-scoping")
    assert _content(client, built.image_id, "/two") == b"global=stage-default late=late-value\n"
    assert _content(client, built.image_id, "/one") == b"global=\nglobal=g1\n"


def test_multistage_from(build, client, tmp_path):
    _, t, _, _ = _build_case(build, client, tmp_path, "multistage-from")
    e = t.entries
    assert e["/from-name/artifact"].uid == 4 and e["/from-name"].mode == 0o755
    assert e["/from-index"].kind == "file" and e["/from-scratch-stage"].kind == "file"
    assert e["/from-image"].kind == "file" and e["/derived"].kind == "file"
    assert "/out" not in e


def test_target_builds_only_needed_stages(build, client, tmp_path):
    built, t, _, _ = _build_case(build, client, tmp_path, "target")
    assert {"/first", "/wanted"} <= set(t.entries)
    assert "RUN exit 1" not in built.output  # the broken stage is not needed, so never run


def test_workdir_and_exec_form(build, client, tmp_path):
    built, t, _, _ = _build_case(build, client, tmp_path, "workdir-run")
    assert _content(client, built.image_id, "/app/sub/here") == b"/app/sub\n"
    assert _content(client, built.image_id, "/app/here-exec") == b"/app\n"
    assert "/app/sub/created" in t.entries


def test_escape_directive_and_continuations(build, client, tmp_path):
    built, _, _, cfg = _build_case(build, client, tmp_path, "escape-continuation")
    assert _content(client, built.image_id, "/joined") == b"one two three\n"
    assert "WIN=C:\\path" in cfg["Env"]


def test_copy_chmod(build, client, tmp_path):
    _, t, _, _ = _build_case(build, client, tmp_path, "copy-chmod")
    e = t.entries
    assert e["/cm"].mode == 0o755 and e["/cm/s"].mode == 0o700 and e["/cm/s/x"].mode == 0o700
    assert e["/cm2/x/a.txt"].mode == 0o751
    assert (e["/etc2"].uid, e["/etc2/passwd"].uid) == (9, 9)


def test_run_mounts_leave_no_trace(build, client, tmp_path):
    built, t, _, _ = _build_case(build, client, tmp_path, "run-mounts")
    e = t.entries
    assert _content(client, built.image_id, "/copied-a") == b"a\n"
    assert _content(client, built.image_id, "/rw-seen") == b"changed\n"
    assert (tmp_path / "run-mounts" / "a.txt").read_text() == "a\n"  # a rw bind never writes to the context
    assert _content(client, built.image_id, "/tmpfs-ls") == b"t\n"
    assert {p for p in e if p.startswith(("/cache", "/scratch", "/mnt"))} == {"/cache", "/scratch", "/mnt"}
    assert "/ctx/a.txt" not in e
    # the cache mount persists across builds
    ctx = tmp_path / "run-mounts"
    built2 = build(ctx, no_cache=True)
    assert _content(client, built2.image_id, "/seen-cache") == b"x\nx\n"


def test_heredocs(build, client, tmp_path):
    built, t, _, _ = _build_case(build, client, tmp_path, "heredocs")
    c = lambda p: _content(client, built.image_id, p)  # noqa: E731
    assert c("/greet") == b"hello world\n" and c("/tabbed") == b"tabbed\n" and c("/via-shell") == b"shell world\n"
    assert c("/etc/conf.txt") == b"name=world\n"
    assert c("/docs/EOF") == b"raw $NAME\n" and c("/docs/EOF2") == b"expanded world\n"
    assert c("/shebang") == b"shebang script\n"


def test_copy_link_is_independent_of_the_base(build, client, tmp_path):
    built, t, _, _ = _build_case(build, client, tmp_path, "copy-link")
    assert _content(client, built.image_id, "/both") == b"a\nx\n"
    # the --link layer holds only what was copied (no parent directories of the base)
    image = client.images.get(built.image_id)
    import io
    import tarfile

    with client.content.open(image.layers[1].digest) as blob:
        names = tarfile.open(fileobj=io.BytesIO(blob.read())).getnames()
    assert names == ["linked", "linked/a.txt"]


def test_run_writes_to_volumes_are_discarded(build, client, tmp_path):
    built, t, _, _ = _build_case(build, client, tmp_path, "volume-run")
    e = t.entries
    assert e["/data"].kind == "dir" and "/data/f" not in e           # the mount point stays, the write goes
    assert _content(client, built.image_id, "/pre/old") == b"pre\n" and "/pre/new" not in e
    assert _content(client, built.image_id, "/seen-in-run") == b"changed\n"  # the RUN itself saw its write
    assert e["/pre/copied"].kind == "file"                            # COPY is not affected


def test_run_as_user(build, client, tmp_path):
    _, t, _, _ = _build_case(build, client, tmp_path, "run-as-user")
    own = lambda p: (t.entries[p].uid, t.entries[p].gid)  # noqa: E731
    assert own("/tmp/mine") == (65534, 65534) and own("/tmp/numeric") == (1234, 5678)
    assert own("/tmp/by-daemon") == (1, 1)
