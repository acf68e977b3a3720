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
CONTEXT_MTIME = 1_500_000_000  # every context entry's time (tests/build/imagefs.py: KEPT_MTIMES)


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
        for dirpath, dirnames, filenames in os.walk(ctx, topdown=False):  # a time docker keeps is seen
            for name in [*filenames, *dirnames]:
                os.utime(os.path.join(dirpath, name), (CONTEXT_MTIME, CONTEXT_MTIME), follow_symlinks=False)
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


def _compressed(data: bytes, kind: str) -> bytes:
    import bz2
    import gzip
    import lzma

    if kind == "xz":
        return lzma.compress(data)
    if kind == "bz2":
        return bz2.compress(data)
    return gzip.compress(data, mtime=0)


# The side-by-side sweep: each case packs many behaviours into one build, so comparing them
# with both of docker's builders stays fast (``test_docker_compat.py`` compares config, history,
# every layer and the final filesystem).
CASES += [
    Case("sweep-copy-dest", """FROM {BASE}
COPY a.txt /newname
COPY a.txt /newdir/
COPY a.txt b.txt /multi-noslash/
COPY dir /dircopy
COPY dir/ /dircopy2/
COPY dir /etc/
COPY a.txt /tmp
COPY a.txt /deep/er/file
COPY ./dir/./sub/../sub/y /normalised
COPY nothing* a.txt /mixed-wild/
COPY [ab].txt /cls/
COPY dir/s?b /qmark/
COPY */sub/y /star-dir/
WORKDIR /wd
COPY a.txt ./rel/
COPY a.txt ../up
COPY . /whole/
""", files={"a.txt": "a\n", "b.txt": "b\n", "dir/x": "x\n", "dir/sub/y": "y\n", "dir/sub/z": ("z", 0o600),
            "dir/empty": Dir(0o700)}),
    Case("sweep-chown", """FROM {BASE}
RUN echo 'svc:x:2001:2002::/home/svc:/bin/sh' >> /etc/passwd && echo 'svcgrp:x:2002:' >> /etc/group \\
 && echo 'other:x:2003:' >> /etc/group && echo 'svc:x:2004:' >> /etc/group
COPY --chown=svc a.txt /c/user-only
COPY --chown=svc:other a.txt /c/user-group
COPY --chown=svc:2003 a.txt /c/user-gid
COPY --chown=2001:other a.txt /c/uid-group
COPY --chown=4242 a.txt /c/unknown-uid
COPY --chown=4242:4343 dir /c/unknown-both/
COPY --chown=0:0 dir /c/root/
COPY --chown=daemon:daemon dir /c/daemon-dir
ADD --chown=svc arch.tar /c/arch/
ADD --chown=1:1 arch.tgz /c/arch-gz/
COPY --chown=svc:svcgrp links /c/links/
""", files={"a.txt": "a\n", "dir/x": "x\n", "dir/sub/y": "y\n",
            "arch.tar": _tar({"t/": b"", "t/in-tar": "tar\n"}),
            "arch.tgz": _tar({"g/": b"", "g/in-gz": "gz\n"}, gzip=True),
            "links/f": "f", "links/s": Symlink("f"), "links/h": Hardlink("links/f")}),
    Case("sweep-links", """FROM {BASE}
COPY . /all/
COPY hl1 hl2 /pair/
COPY ln-file /via-link
COPY ln-dir /via-dirlink/
COPY tree/ /tree/
RUN ln -s /tree/a /tree-link && ln /tree/a /tree-hard
COPY a.txt /tree-link-dst/
""", files={"a.txt": "a\n", "hl1": "same\n", "hl2": Hardlink("hl1"), "ln-file": Symlink("a.txt"),
            "ln-dir": Symlink("tree"), "tree/a": "ta\n", "tree/b": Hardlink("tree/a"),
            "tree/rel": Symlink("../a.txt"), "tree/abs": Symlink("/etc/passwd"), "tree/loop": Symlink("loop"),
            "tree/sub/c": Hardlink("hl1")}),
    Case("sweep-add", """FROM {BASE}
ADD t.tar.xz /xz/
ADD t.tar.bz2 /bz2/
ADD t.tar.gz /gz
ADD t.tar /plain-nodir
ADD file.gz /single/
ADD file.xz /single-xz/
ADD t.tar.gz t.tar.xz /both/
ADD arch* /wild/
ADD dir /dir-added/
ADD hidden.txt /named.tar
ADD over.tar /
""", files={"t.tar.xz": _compressed(_tar({"x/": b"", "x/one": "1\n", "x/link": "->one"}), "xz"),
            "t.tar.bz2": _compressed(_tar({"b/": b"", "b/two": "2\n"}), "bz2"),
            "t.tar.gz": _tar({"g/": b"", "g/three": "3\n"}, gzip=True),
            "t.tar": _tar({"p/": b"", "p/four": "4\n", "p/deep/": b"", "p/deep/five": "5\n"}),
            "file.gz": _compressed(b"just gzip\n", "gz"), "file.xz": _compressed(b"just xz\n", "xz"),
            "archA.tar": _tar({"wa": "wa\n"}), "archB.tar": _tar({"wb": "wb\n"}),
            "dir/inner.tar": _tar({"not-extracted": "n\n"}), "hidden.txt": "text\n",
            "over.tar": _tar({"etc/": b"", "etc/from-tar": "t\n", "tmp/": b"", "tmp/t": "t\n"})}),
    Case("sweep-workdir-user", """FROM {BASE}
ENV BASEDIR=/opt/app
WORKDIR $BASEDIR/one
USER nobody
WORKDIR /as-nobody/deep
WORKDIR rel
USER 1234:4321
WORKDIR ${BASEDIR}/two
WORKDIR /tmp
WORKDIR /as-nobody/deep
USER root
WORKDIR /etc
RUN pwd > /pwd-root
"""),
    Case("sweep-expansion", r"""FROM {BASE}
ARG A=aval
ARG EMPTY=
ARG UNSET
ENV E1=${A:-d1} E2=${UNSET:-d2} E3=${A:+alt} E4=${UNSET:+alt} E5=${EMPTY:-d5}
ENV E8=\$A E9="\$A" E10='$A' E11=$A$A E12=${A}_x E13=pre${A}post E14="a \"q\" b" E15=a\\b
ENV ${A}_KEY=keyed
LABEL "l.${A}"="${A:-none}" l.plain=$E2 l.esc=\$A
EXPOSE ${PORT:-7000} ${UDP:-53}/udp
VOLUME ${VOL:-/vol-default} /v/$A
USER ${USR:-daemon}
WORKDIR /w/${A:+plus}/${UNSET:-minus}
STOPSIGNAL ${SIG:-SIGUSR1}
COPY ${SRC:-a.txt} /copied-${A}
ADD ${SRC:-a.txt} $E12/
COPY --chown=${UID:-7}:${A:+8} a.txt /chowned-${A}
ONBUILD RUN echo $A ${A}
SHELL ["/bin/sh", "-c"]
HEALTHCHECK CMD echo $A
CMD echo $A ${A:-x}
ENTRYPOINT ["echo", "$A"]
RUN echo "$A|$EMPTY|$UNSET|$E1|$E11" > /tmp/run-seen
""", files={"a.txt": "a\n"}),
    Case("sweep-args", """ARG G=global
ARG BASEIMG={BASE}
ARG UNUSEDGLOBAL=x
FROM $BASEIMG
ARG A=1 B=$A C
ARG G
ARG SET=default
ARG SET=again
ARG OVER=dockerfile
ENV OVER=env
ARG FROMENV
RUN echo "A=$A B=$B C=$C G=$G SET=$SET OVER=$OVER FROMENV=$FROMENV" > /args
""", build_args={"SET": "given", "C": "cgiven", "OVER": "cli", "FROMENV": "env-value", "NOTDECLARED": "z"}),
    Case("sweep-metadata", """FROM {BASE}
HEALTHCHECK --interval=10s --timeout=2s --retries=2 CMD ["wget", "-q", "localhost"]
HEALTHCHECK --start-period=5s CMD curl -f localhost || exit 1
EXPOSE 80 80/tcp 7000-7002/udp 9/sctp 443/TCP
EXPOSE 8080/udp
VOLUME ["/vj1", "/vj2"]
VOLUME /vs1 /vs2
STOPSIGNAL 9
STOPSIGNAL SIGRTMIN+3
SHELL ["/bin/sh", "-xc"]
CMD echo via shell
ENTRYPOINT echo ep
CMD ["exec", "form"]
LABEL a=1 b=2
LABEL a=3
ENV PATH=/custom:$PATH
ENV X=1
ENV X=2 Y=$X
USER 99
ONBUILD ADD . /app
ONBUILD RUN make
MAINTAINER nobody
"""),
    Case("sweep-volume-changes", """FROM {BASE}
RUN mkdir -p /vol/sub && echo before > /vol/sub/f && echo keep > /vol/keep
VOLUME /vol /fresh
RUN echo after > /vol/sub/f && rm /vol/keep && echo new > /vol/new && chmod 700 /vol && echo x > /fresh/x
RUN chown -R 1:1 /vol
COPY a.txt /vol/copied
ADD a.txt /fresh/added
RUN ls /vol > /ls-vol
""", files={"a.txt": "a\n"}),
    Case("sweep-whiteouts", """FROM {BASE}
RUN mkdir -p /o/keep /o/gone/deep && echo 1 > /o/keep/f && echo 2 > /o/gone/deep/f && echo 3 > /o/top
RUN rm -rf /o/gone && rm /o/top && echo 4 > /o/keep/g
RUN rm -rf /o && mkdir -p /o/keep && echo 5 > /o/keep/h
RUN rm -rf /o/keep && echo 6 > /o/keep
RUN rm -rf /bin/sh /usr/sbin && touch /.hidden && rm /.hidden
COPY a.txt /o/
""", files={"a.txt": "a\n"}),
    Case("sweep-onbuild", """FROM {BASE} AS parent
ONBUILD ARG ON_ARG=trig
ONBUILD ENV ON_ENV=$ON_ARG
ONBUILD COPY a.txt /onbuild-copied
ONBUILD RUN echo "$ON_ENV" > /onbuild-ran
ONBUILD WORKDIR /onbuild-wd
ONBUILD LABEL from=onbuild
FROM parent AS child
RUN pwd > /child-pwd
FROM child
RUN echo grandchild > /gc
""", files={"a.txt": "a\n"}),
    Case("sweep-multistage", """ARG IMG={BASE}
FROM $IMG AS build
WORKDIR /src
RUN mkdir -p out/sub && echo bin > out/app && chmod 750 out/app && echo s > out/sub/s && ln -s app out/applink \\
 && chown -R 7:8 out && ln out/app out/apphard
FROM scratch AS assets
COPY a.txt /assets/
FROM build AS test
RUN echo tested > /tested
FROM $IMG
COPY --from=build /src/out /app/
COPY --from=build /src/out/app /src/out/applink /bins/
COPY --from=1 /assets /assets
COPY --from=build --chown=3:4 /src/out/sub /chowned
COPY --from={BASE} /bin/busybox /bb-from-image
COPY --from=build /src/out/app* /globbed/
COPY --from=test /tested /tested
""", files={"a.txt": "a\n"}),
    Case("sweep-target", """FROM {BASE} AS one
RUN echo one > /one
FROM one AS two
RUN echo two > /two
FROM two AS three
RUN echo three > /three
""", target="two"),
    Case("sweep-dockerignore", """FROM {BASE}
COPY . /ctx/
COPY keep/ /keep-only/
""", files={".dockerignore": "**/*.tmp\n!important.tmp\nlogs/\n!logs/keep.log\n*/cache\n./rootonly.txt\n"
                              "**/node_modules\nkeep/drop*\n!keep/drop-not\ndocs/**/*.md\n#note\n\n  spaced.txt  \n",
            "a.tmp": "x", "sub/b.tmp": "x", "important.tmp": "i", "sub/important.tmp": "si",
            "logs/a.log": "a", "logs/keep.log": "k", "x/cache/c": "c", "x/y/cache/c": "c2",
            "rootonly.txt": "r", "sub/rootonly.txt": "sr", "p/node_modules/m": "m", "node_modules/n": "n",
            "keep/drop1": "d", "keep/drop-not": "dn", "keep/stay": "s", "docs/a/b/c.md": "c", "docs/top.md": "t",
            "docs/a/b/c.txt": "t", "spaced.txt": "s", "Dockerfile.extra": "e"}),
    Case("sweep-run-fs", """FROM {BASE}
RUN mkdir -p /r/a/b && echo x > /r/a/b/f && chmod 0751 /r/a && chown 5:6 /r/a/b && mkfifo /r/fifo \\
 && ln -s /r/a/b/f /r/sl && ln /r/a/b/f /r/hl && chmod 4711 /r/a/b/f && touch /r/empty
RUN chmod 600 /r/a/b/f && chown 9:9 /r/sl && mv /r/empty /r/moved && echo y >> /r/hl
RUN cp -a /r /r2 && rm -rf /r/a && mkdir /r/a && echo new > /r/a/new
"""),
    Case("sweep-cmd-entrypoint", """FROM {BASE} AS a
CMD ["base-cmd"]
ENTRYPOINT ["base-ep"]
FROM a AS b
ENTRYPOINT ["new-ep"]
FROM a AS c
CMD ["new-cmd"]
FROM c
ENTRYPOINT []
CMD []
"""),
]
BY_NAME = {c.name: c for c in CASES}


def _special_tar() -> bytes:
    """A tar with what archives carry and contexts rarely do: setuid bits, owners, a hard link,
    a fifo, a device, a private directory, an entry whose parents have no entries of their own,
    a ``./`` prefix."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        def add(name, kind=tarfile.REGTYPE, data=b"", mode=0o644, uid=0, gid=0, link=""):
            ti = tarfile.TarInfo(name)
            ti.type, ti.mode, ti.uid, ti.gid, ti.mtime, ti.linkname = kind, mode, uid, gid, 1_600_000_000, link
            if kind == tarfile.CHRTYPE:
                ti.devmajor, ti.devminor = 1, 3
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data) if data else None)
        add("priv/", tarfile.DIRTYPE, mode=0o700, uid=5, gid=6)
        add("priv/suid", data=b"s\n", mode=0o4755, uid=7, gid=8)
        add("priv/hard", tarfile.LNKTYPE, link="priv/suid")
        add("priv/fifo", tarfile.FIFOTYPE, mode=0o600)
        add("priv/null", tarfile.CHRTYPE, mode=0o666)
        add("no/parents/here/f", data=b"deep\n", mode=0o640, uid=3, gid=4)
        add("./dotted/file", data=b"dot\n")
        add("sym", tarfile.SYMTYPE, link="priv/suid")
    return buf.getvalue()


CASES += [
    Case("sweep-add-special", """FROM {BASE}
ADD special.tar /sp/
ADD special.tar /
ADD --chown=9:9 special.tar /sp-chowned/
""", files={"special.tar": _special_tar()}),
    Case("sweep-scratch", """FROM scratch
COPY a.txt /
COPY dir /dir/
ENV PATH=/bin HOME=/w
WORKDIR /w/deeper
USER 1:1
COPY a.txt rel.txt
WORKDIR $HOME
LABEL scratch=yes
""", files={"a.txt": "a\n", "dir/b": ("b", 0o600)}),
    Case("sweep-user-copy", """FROM {BASE}
USER nobody
COPY a.txt /as-nobody/
ADD t.tar /as-nobody-tar/
WORKDIR /as-nobody-wd
RUN touch /tmp/by-nobody
USER root
ENV MULTI="one \\
two" \\
    NEXT=n
""", files={"a.txt": "a\n", "t.tar": _tar({"f": "f\n"})}),
]
BY_NAME = {c.name: c for c in CASES}
