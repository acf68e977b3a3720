"""The stage graph of a Dockerfile: global ARGs, stages, names, ``--target``, dependencies.

Only the stages the target needs are built (``FROM <stage>``, ``COPY --from=<stage>``,
``RUN --mount=from=<stage>``), and stages that do not depend on each other can run at the
same time. Global ARGs (before the first FROM) are visible only to FROM lines, unless a stage
declares them again (``ARG NAME`` inside the stage takes the global value).
"""
from __future__ import annotations

import os

from dockyard.build import instructions as ins
from dockyard.build.dockerfile import ParsedDockerfile
from dockyard.build.errors import BuildError, DockerfileSyntaxError
from dockyard.build.shell_lex import ShellLex, ShellLexError

# build args usable without an ARG line; their values never reach the image or its history
PROXY_ARGS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
              "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy")


class Stage:
    """One ``FROM`` and its instructions. (Plain classes here and in the other modules a cached
    build imports: creating dataclasses costs start-up time that a cached build cannot spare.)"""

    def __init__(self, index: int, name: str | None, source: ins.From,
                 instructions: list[ins.Instruction] | None = None) -> None:
        self.index = index
        self.name = name
        self.source = source
        self.instructions: list[ins.Instruction] = instructions or []
        self.base = ""                       # FROM, expanded with the global ARGs
        self.base_stage: int | None = None   # when FROM names an earlier stage

    @property
    def label(self) -> str:
        """How progress output names the stage (``builder``, ``stage-1``)."""
        return self.name or f"stage-{self.index}"


class Platform:
    def __init__(self, os: str = "linux", architecture: str = "amd64", variant: str = "") -> None:
        self.os = os
        self.architecture = architecture
        self.variant = variant

    @property
    def text(self) -> str:
        return f"{self.os}/{self.architecture}" + (f"/{self.variant}" if self.variant else "")

    @classmethod
    def parse(cls, text: str | None) -> "Platform":
        host = host_platform()
        if not text:
            return host
        parts = text.strip().lower().split("/")
        if len(parts) == 1:
            return cls(parts[0], host.architecture, host.variant) if parts[0] in ("linux", "windows") \
                else cls("linux", _norm_arch(parts[0]), "")
        arch = _norm_arch(parts[1])
        variant = parts[2] if len(parts) > 2 else ""
        return cls(parts[0], arch, variant)

    def args(self, prefix: str) -> dict[str, str]:
        return {f"{prefix}PLATFORM": self.text, f"{prefix}OS": self.os, f"{prefix}ARCH": self.architecture,
                f"{prefix}VARIANT": self.variant}


def _norm_arch(arch: str) -> str:
    return {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm", "armel": "arm",
            "i386": "386", "i686": "386"}.get(arch, arch)


def host_platform() -> Platform:
    return Platform("linux", _norm_arch(os.uname().machine.lower()), "")


class Plan:
    """A parsed Dockerfile split into global ARGs and stages."""

    def __init__(self, parsed: ParsedDockerfile, meta_args: list[ins.Arg], stages: list[Stage], escape: str) -> None:
        self.parsed = parsed
        self.meta_args = meta_args
        self.stages = stages
        self.escape = escape
        self.meta_values: dict[str, str] = {}
        self.declared: set[str] = set()   # build args some ARG line declares

    @property
    def filename(self) -> str:
        return self.parsed.filename

    def stage_by_name(self, name: str) -> Stage | None:
        low = name.lower()
        for s in self.stages:
            if s.name == low:
                return s
        return None


def make_plan(parsed: ParsedDockerfile, build_args: dict[str, str | None],
              target_platform: Platform, build_platform: Platform | None = None) -> Plan:
    """Split, type-check and resolve FROM lines. Raises DockerfileSyntaxError / BuildError."""
    typed = [ins.from_node(n, parsed.filename) for n in parsed.nodes]
    meta: list[ins.Arg] = []
    stages: list[Stage] = []
    for instr in typed:
        if isinstance(instr, ins.From):
            name = instr.name
            if name and any(s.name == name for s in stages):
                raise DockerfileSyntaxError(f"duplicate stage name {name!r}", parsed.filename, instr.line, instr.text)
            stages.append(Stage(index=len(stages), name=name, source=instr))
        elif not stages:
            if not isinstance(instr, ins.Arg):
                raise BuildError("no build stage in current context")  # docker's words, no line
            meta.append(instr)
        else:
            stages[-1].instructions.append(instr)
    if not stages:
        raise DockerfileSyntaxError("no build stage in current context: the Dockerfile has no FROM",
                                    parsed.filename)
    plan = Plan(parsed=parsed, meta_args=meta, stages=stages, escape=parsed.directives.escape)
    # global ARG values: defaults (expanded with earlier ones), overridden by --build-arg
    values: dict[str, str] = {}
    values.update(target_platform.args("TARGET"))
    values.update((build_platform or host_platform()).args("BUILD"))
    lex = ShellLex(plan.escape)
    for a in meta:
        for key, default in a.pairs:
            plan.declared.add(key)
            if key in build_args and build_args[key] is not None:
                values[key] = build_args[key]  # type: ignore[assignment]
            elif default is not None:
                values[key] = _expand(lex, default, values, plan, a)
            else:
                values.pop(key, None)
    plan.meta_values = values
    for s in stages:
        s.base = _expand(lex, s.source.base, values, plan, s.source)
        if not s.base:
            raise BuildError(f"base name ({s.source.base}) should not be blank")
        earlier = plan.stage_by_name(s.base)
        if earlier is not None and earlier.index < s.index:
            s.base_stage = earlier.index
    return plan


def _expand(lex: ShellLex, word: str, env: dict[str, str], plan: Plan, instr: ins.Instruction) -> str:
    try:
        return lex.process_word(word, env)
    except ShellLexError as exc:
        raise DockerfileSyntaxError(exc.message, plan.filename, instr.line, instr.text) from None


def select_target(plan: Plan, target: str | None) -> Stage:
    if not target:
        return plan.stages[-1]
    stage = plan.stage_by_name(target)
    if stage is None:
        raise BuildError(f"target stage {target} could not be found")
    return stage


def resolve_from(plan: Plan, stage: Stage, ref: str, instr: ins.Instruction) -> int | str:
    """What ``--from=ref`` names: a stage index, or an image reference."""
    if ref.isdigit():
        idx = int(ref)
        if idx >= stage.index:
            raise BuildError(f"invalid from flag value {ref}: refers to current or future build stage "
                             f"(line {instr.line} of {plan.filename})")
        return idx
    other = plan.stage_by_name(ref)
    if other is not None:
        if other.index == stage.index:
            raise BuildError(f"circular dependency detected on stage: {other.label}")
        return other.index
    return ref


def dependencies(plan: Plan, stage: Stage) -> set[int]:
    """The stages this stage reads from (directly)."""
    deps: set[int] = set()
    if stage.base_stage is not None:
        deps.add(stage.base_stage)
    lex = ShellLex(plan.escape)
    for instr in stage.instructions:
        refs: list[str] = []
        if isinstance(instr, ins.Copy) and instr.from_:
            refs.append(instr.from_)
        if isinstance(instr, ins.Run):
            for m in instr.mounts:
                for part in m.split(","):
                    k, _, v = part.partition("=")
                    if k.strip().lower() == "from" and v:
                        refs.append(v.strip())
        for ref in refs:
            try:
                ref = lex.process_word(ref, plan.meta_values)
            except ShellLexError:
                pass
            target = resolve_from(plan, stage, ref, instr)
            if isinstance(target, int):
                deps.add(target)
    return deps


def needed_stages(plan: Plan, target: Stage) -> list[int]:
    """Indices of the stages the target needs, in an order where dependencies come first."""
    order: list[int] = []
    state: dict[int, str] = {}

    def visit(i: int) -> None:
        if state.get(i) == "done":
            return
        if state.get(i) == "visiting":
            raise BuildError(f"circular dependency detected on stage: {plan.stages[i].label}")
        state[i] = "visiting"
        for d in sorted(dependencies(plan, plan.stages[i])):
            visit(d)
        state[i] = "done"
        order.append(i)

    visit(target.index)
    return order
