"""The Dockerfiles the build tests run, each with its context.

Every case is built by dockyard (``test_cases.py``) and, where docker is installed, by docker
too, and the two images compared file by file and field by field (``test_docker_compat.py``).
``builder`` says which docker builder can build it: the classic one (what ``docker build``
runs here) or BuildKit (needed for ``--chmod`` and ``RUN --mount``); ``None`` means docker
cannot build it at all here (heredocs need a newer Dockerfile frontend than docker 20.10 has).

Context files: a string or bytes is a file (mode 0644); a tuple is ``(content, mode)``;
``Symlink(target)``, ``Hardlink(path)`` and ``Dir(mode)`` make the other kinds.
"""
from __future__ import annotations

import io
import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

BASE = "dytest-busybox"


@dataclass(frozen=True)
class Symlink:
    target: str


@dataclass(frozen=True)
class Hardlink:
    to: str


@dataclass(frozen=True)
class Dir:
    mode: int = 0o755


@dataclass
class Case:
    name: str
    dockerfile: str
    files: dict = field(default_factory=dict)
    build_args: dict = field(default_factory=dict)
    target: str | None = None
    builder: str | None = "classic"   # "classic", "buildkit" or None (docker cannot build it)

    def materialize(self, root: Path) -> Path:
        ctx = root / self.name
        ctx.mkdir(parents=True)
        (ctx / "Dockerfile").write_text(self.dockerfile.replace("{BASE}", BASE))
        for rel, spec in self.files.items():
            path = ctx / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(spec, Symlink):
                os.symlink(spec.target, path)
            elif isinstance(spec, Hardlink):
                os.link(ctx / spec.to, path)
            elif isinstance(spec, Dir):
                path.mkdir(exist_ok=True)
                os.chmod(path, spec.mode)
            else:
                content, mode = spec if isinstance(spec, tuple) else (spec, 0o644)
                path.write_bytes(content if isinstance(content, bytes) else content.encode())
                os.chmod(path, mode)
        for rel, spec in self.files.items():  # directory modes last (a 0500 dir must stay writable until now)
            if isinstance(spec, Dir):
                os.chmod(ctx / rel, spec.mode)
        return ctx


def _tar(entries: dict[str, bytes | str], gzip: bool = False) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if gzip else "w") as tf:
        for name, value in entries.items():
            ti = tarfile.TarInfo(name)
            ti.mtime = 1_600_000_000
            if name.endswith("/"):
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(ti)
            elif isinstance(value, str) and value.startswith("->"):
                ti.type, ti.linkname = tarfile.SYMTYPE, value[2:]
                tf.addfile(ti)
            else:
                data = value.encode() if isinstance(value, str) else value
                ti.size, ti.mode, ti.uid, ti.gid = len(data), 0o640, 11, 12
                tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


CASES: list[Case] = [
    Case("env-label", """FROM {BASE}
ENV A=1 B=$A
ENV A=2 PATH=/x:$PATH
ENV C "spaced value"
ENV D=${A}-${B:-empty} E='single $A' F="double $A"
LABEL "k"="v" $A=b multi="line one \\
line two"
LABEL k=overridden
"""),
    Case("expansion", """FROM {BASE}
ARG SET=yes
ARG EMPTY=
ENV V1=${SET:-def} V2=${UNSET:-def} V3=${SET:+alt} V4=${UNSET:+alt} V5=${EMPTY:-def}
ENV V7=\\$SET V8=a\\ b V9=${SET}suffix V10=$SET.ext
WORKDIR /base/${SET}
LABEL dir=$PWD set=${SET}
"""),
    Case("cmd-entrypoint", """FROM {BASE}
CMD echo shell form
ENTRYPOINT ["/bin/sh", "-c"]
SHELL ["/bin/sh", "-ec"]
CMD echo after shell change
"""),
    Case("entrypoint-resets-inherited-cmd", """FROM {BASE}
ENTRYPOINT ["echo"]
"""),
    Case("expose-volume", """FROM {BASE}
ENV P=8080
EXPOSE 80 53/udp 8000-8002/tcp $P
VOLUME /data ["/json-form"]
VOLUME ["/v1", "/v2"]
VOLUME /a /b
"""),
    Case("user-workdir", """FROM {BASE}
USER nobody
WORKDIR /srv
WORKDIR app
USER 1:2
WORKDIR ../other
"""),
    Case("healthcheck", """FROM {BASE} AS first
HEALTHCHECK --interval=5s --timeout=3s --start-period=1m30s --retries=4 CMD wget -q -O- http://localhost/ || exit 1
FROM first
HEALTHCHECK CMD ["true"]
"""),
    Case("healthcheck-none", """FROM {BASE} AS first
HEALTHCHECK --interval=5s CMD true
FROM first
HEALTHCHECK NONE
STOPSIGNAL SIGQUIT
"""),
    Case("onbuild-record", """FROM {BASE}
ONBUILD RUN echo triggered > /triggered
ONBUILD COPY a.txt /from-onbuild.txt
""", files={"a.txt": "a\n"}),
    Case("onbuild-trigger", """FROM {BASE} AS parent
ONBUILD RUN echo triggered > /triggered
ONBUILD ENV FROM_TRIGGER=1
FROM parent
RUN cat /triggered > /seen
"""),
    Case("copy-basic", """FROM {BASE}
COPY a.txt /a-file
COPY a.txt /dir/
COPY dir /dir-contents
COPY dir/ /dir-contents-slash/
COPY a.txt b.txt /multi/
COPY a.txt /bin
COPY a.txt relative/path.txt
WORKDIR /w
COPY a.txt .
COPY a.txt sub/
""", files={"a.txt": "a\n", "b.txt": "b\n", "dir/x": "x\n", "dir/sub/y": "y\n", "dir/empty": Dir()}),
    Case("copy-wildcards", """FROM {BASE}
COPY *.txt /txt/
COPY dir? /dirs/
COPY [ab].md /md/
COPY d*/f* /deep/
""", files={"a.txt": "a", "b.txt": "b", "c.log": "c", "dir1/f1": "1", "dir2/f2": "2", "a.md": "A",
            "c.md": "C"}),
    Case("copy-symlinks", """FROM {BASE}
COPY filelink /c1
COPY dirlink /c2
COPY dir /c3/
COPY dir* /c4/
""", files={"dir/file": "f\n", "dir/flink": Symlink("file"), "dir/abslink": Symlink("/etc/passwd"),
            "dir/dangling": Symlink("nowhere"), "dirlink": Symlink("dir"), "filelink": Symlink("dir/file")}),
    Case("copy-dest-symlink", """FROM {BASE}
ADD links.tar /
COPY a.txt /lnk/
COPY a.txt /lnk/renamed
COPY dir /lnk/dd
COPY a.txt /bin/sh
""", files={"a.txt": "a\n", "dir/x": "x", "links.tar": _tar({"tgt/": b"", "lnk": "->/tgt"})}),
    Case("copy-chown", """FROM {BASE}
COPY --chown=1:2 a.txt /n1
COPY --chown=65534 a.txt /n2
COPY --chown=daemon:daemon a.txt /n3
COPY --chown=daemon a.txt /n4
COPY --chown=nobody:nogroup dir /n5/
COPY --chown=7:8 dir /p/q/r/
COPY --chown=7:8 a.txt /t/u/v
""", files={"a.txt": "a\n", "dir/f": "f", "dir/sub/g": "g"}),
    Case("copy-modes", """FROM {BASE}
COPY . /ctx/
COPY d700 /d/
COPY --chown=3:3 exe grp /m/
""", files={"d700": Dir(0o700), "d700/secret": ("s", 0o600), "exe": ("x", 0o4755), "grp": ("g", 0o2640),
            "sticky": Dir(0o1777), "ro": ("r", 0o444), "script.sh": ("#!/bin/sh\n", 0o755)}),
    Case("copy-hardlinks", """FROM {BASE}
COPY dir /linked/
""", files={"dir/a": "same\n", "dir/b": Hardlink("dir/a"), "dir/sub/c": Hardlink("dir/a"), "dir/d": "other"}),
    Case("dockerignore", """FROM {BASE}
COPY . /app
""", files={".dockerignore": "# comment\nnode_modules\n*.md\n!keep.md\n**/*.log\nsub/**/one\nDockerfile\n/abs\n",
            "keep.md": "k", "drop.md": "d", "node_modules/m/i.js": "m", "x/y/z.log": "l", "sub/deep/one": "1",
            "sub/deep/two": "2", "abs": "a", "src/main.py": "print()\n"}),
    Case("add-archives", """FROM {BASE}
ADD plain.tar /p/
ADD comp.tgz /c
ADD notreally.tar /n/
ADD single.gz /s/
ADD plain.tar /file.tar
COPY plain.tar /copied/
""", files={"plain.tar": _tar({"sub/": b"", "sub/a": "a\n", "sub/l": "->a"}),
            "comp.tgz": _tar({"z/": b"", "z/file": "zz\n"}, gzip=True),
            "notreally.tar": "not a tar\n", "single.gz": b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03K\x04\x00C\xbe\xb7\xe8\x01\x00\x00\x00"}),
    Case("run-whiteouts", """FROM {BASE}
RUN rm /bin/ls && mkdir -p /d/e && echo 1 > /d/e/f
RUN rm -rf /d && mkdir -p /d && echo 2 > /d/g
RUN rm -rf /root && mkdir /root && echo y > /root/new && mkdir -p /tmp/q && touch /tmp/q/z
RUN rm -rf /tmp/q && mkfifo /fifo && chmod 4755 /bin/busybox && chown 1:1 /etc/group
"""),
    Case("run-hardlinks", """FROM {BASE}
RUN ln /etc/passwd /p2 && echo x > /h1 && ln /h1 /h2 && ln -s /h1 /s1
RUN mkdir -p /hl && echo y > /hl/a && ln /hl/a /hl/b
"""),
    Case("run-env-args", """FROM {BASE}
ARG A=default
ARG B
ARG C=fromdockerfile
ENV C=envwins
RUN echo "$A|$B|$C|$D" > /args && env | grep -v -e HOSTNAME -e '^_=' | sort > /env
""", build_args={"B": "given", "D": "undeclared"}),
    Case("arg-scoping", """ARG GLOBAL=g1
ARG BASEIMG={BASE}
FROM ${BASEIMG} AS one
RUN echo "global=${GLOBAL}" > /one
ARG GLOBAL
RUN echo "global=${GLOBAL}" >> /one
FROM ${BASEIMG}
ARG GLOBAL=stage-default
ARG LATE
RUN echo "global=${GLOBAL} late=${LATE}" > /two
COPY --from=one /one /one
""", build_args={"LATE": "late-value"}),
    Case("multistage-from", """FROM {BASE} AS builder
RUN mkdir /out && echo built > /out/artifact && chown -R 4:4 /out && chmod 700 /out
FROM scratch AS data
COPY x /x
FROM builder AS derived
RUN echo derived > /derived
FROM {BASE}
COPY --from=builder /out /from-name
COPY --from=0 /out/artifact /from-index
COPY --from=data /x /from-scratch-stage
COPY --from={BASE} /etc/passwd /from-image
COPY --from=derived /derived /derived
""", files={"x": "x\n"}),
    Case("target", """FROM {BASE} AS first
RUN echo first > /first
FROM {BASE} AS broken
RUN exit 1
FROM first AS wanted
RUN echo wanted > /wanted
FROM broken
""", target="wanted", builder="buildkit"),
    Case("workdir-run", """FROM {BASE}
WORKDIR /app/sub
RUN pwd > here && touch created
WORKDIR ..
RUN ["/bin/sh", "-c", "pwd > here-exec"]
SHELL ["/bin/sh", "-ec"]
RUN echo shell-changed > /shell
"""),
    Case("escape-continuation", """# escape=`
FROM {BASE}
# comments are skipped
RUN echo one `
    two `
    # a comment inside a continuation
    three > /joined
ENV WIN=C:\\path
""", files={"a.txt": "a"}),
    Case("maintainer-misc", """FROM {BASE}
MAINTAINER someone@example.com
LABEL empty=""
ENV EMPTY=""
USER 0
WORKDIR /
"""),
    Case("copy-chmod", """FROM {BASE}
COPY --chmod=700 d /cm/
COPY --chmod=751 a.txt /cm2/x/
COPY --from={BASE} --chown=9:9 /etc /etc2
""", files={"a.txt": "a", "d/s/x": "x"}, builder="buildkit"),
    Case("run-mounts", """FROM {BASE}
RUN --mount=type=cache,target=/cache sh -c "echo x >> /cache/log && cp /cache/log /seen-cache"
RUN --mount=type=bind,source=a.txt,target=/mnt/a.txt cat /mnt/a.txt > /copied-a
RUN --mount=type=bind,target=/ctx,rw sh -c "echo changed > /ctx/a.txt; cat /ctx/a.txt > /rw-seen"
RUN --mount=type=tmpfs,target=/scratch sh -c "echo t > /scratch/t && ls /scratch > /tmpfs-ls"
RUN --mount=type=bind,from={BASE},source=/etc,target=/base-etc cat /base-etc/group > /group-copy
""", files={"a.txt": "a\n"}, builder="buildkit"),
    Case("heredocs", """# syntax=docker/dockerfile:1
FROM {BASE}
ARG NAME=world
RUN <<EOF
echo "hello $NAME" > /greet
EOF
RUN <<-EOT sh
	echo tabbed > /tabbed
	EOT
RUN cat <<EOF > /via-shell
shell $NAME
EOF
COPY <<EOF /etc/conf.txt
name=${NAME}
EOF
COPY <<"EOF" <<EOF2 /docs/
raw $NAME
EOF
expanded $NAME
EOF2
RUN <<EOF
#!/bin/sh
echo "shebang script" > /shebang
EOF
""", builder=None),
    Case("copy-link", """FROM {BASE}
COPY --link a.txt /linked/
COPY --link dir /linked-dir
RUN cat /linked/a.txt /linked-dir/x > /both
""", files={"a.txt": "a\n", "dir/x": "x\n"}, builder=None),
]

BY_NAME = {c.name: c for c in CASES}

CASES += [
    Case("volume-run", """FROM {BASE}
RUN mkdir -p /pre && echo pre > /pre/old
VOLUME /data /pre
RUN echo x > /data/f && echo new > /pre/new && echo changed > /pre/old && cat /pre/old > /seen-in-run
COPY a.txt /pre/copied
""", files={"a.txt": "a\n"}),
    Case("run-as-user", """FROM {BASE}
USER nobody
RUN id > /tmp/id-as-nobody && touch /tmp/mine
USER 1234:5678
RUN touch /tmp/numeric
USER daemon
WORKDIR /tmp
RUN touch by-daemon
"""),
]
BY_NAME = {c.name: c for c in CASES}

LONG = "d" * 60 + "/" + "f" * 120

CASES += [
    Case("replace-kinds", """FROM {BASE}
RUN mkdir -p /x/dir && touch /x/dir/f /x/file && ln -s /x/file /x/link && ln -s dir /x/dirlink
RUN rm -rf /x/dir && touch /x/dir && rm /x/file && mkdir /x/file && rm /x/link && mkdir /x/link && rm /x/dirlink && echo f > /x/dirlink
RUN rm -rf /usr/bin && ln -s /bin /usr/bin
"""),
    Case("names", """FROM {BASE}
COPY . /names/
RUN touch "/names/created with spaces" && mkdir -p /names/ünïcödé
""", files={"with space.txt": "s", "ünïcödé.txt": "u", LONG: "long", ".hidden": "h", "empty": ""}),
    Case("many-files", """FROM {BASE}
COPY tree /tree
RUN find /tree -type f | wc -l > /count && rm -rf /tree/d3 && chmod -R go-rwx /tree/d1
""", files={f"tree/d{i}/f{j}": f"{i}-{j}\n" for i in range(6) for j in range(40)}),
    Case("add-chown-plain", """FROM {BASE}
ADD --chown=5:6 a.txt /added/
ADD --chown=5:6 dir /added-dir/
COPY a.txt dir/ /mixed/
""", files={"a.txt": "a", "dir/b": "b", "dir/sub/c": "c"}),
    Case("platform-args", """ARG TARGETOS
FROM --platform=$BUILDPLATFORM {BASE}
ARG TARGETPLATFORM
ARG TARGETARCH
RUN echo "$TARGETPLATFORM $TARGETARCH" > /platform
""", builder="buildkit"),
]
BY_NAME = {c.name: c for c in CASES}

CASES += [
    Case("quoting", r"""FROM {BASE}
ARG A=1
ARG B=$A-two
ENV Q="quoted \"inner\" $B" S='single "x" $B' E=a\ b\ c U=${B}_${A}
LABEL "key with space"="v" eq="b=c" "multi.word"='x y'
RUN echo "$B" > /b
"""),
    Case("metadata-only-changes", """FROM {BASE}
RUN chmod 700 /tmp && touch /etc/passwd && chown 1:1 /var/spool
RUN rm /etc/group && ln -s /etc/passwd /etc/group
"""),
    Case("from-wildcards", """FROM {BASE} AS b
RUN mkdir -p /out/sub && echo 1 > /out/a.txt && echo 2 > /out/b.txt && echo 3 > /out/c.log && echo 4 > /out/sub/d.txt
FROM {BASE}
COPY --from=b /out/*.txt /txt/
COPY --from=b /out/s* /s/
COPY a.txt /later
RUN rm /later
""", files={"a.txt": "a"}),
]
BY_NAME = {c.name: c for c in CASES}
