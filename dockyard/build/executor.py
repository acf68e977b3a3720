"""Executing one build stage: instruction by instruction, each filesystem step through the cache.

A filesystem step (RUN, COPY, ADD, WORKDIR) is looked up by its cache key first. On a hit,
the recorded layer is reused without touching any file. On a miss, a writable snapshot is
prepared on the current chain of layers and mounted; the step runs in it; the overlay upper
dir (exactly what the step changed) becomes a gzip layer in the content store and a committed
snapshot; the key is recorded. The active snapshot and its mount are removed whatever happens,
so a failing step leaves nothing behind. Config instructions only change the image config.
"""
from __future__ import annotations

import copy
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from dockyard.build import imageconfig as ic
from dockyard.build import instructions as ins
from dockyard.build.cache import StepRecord, child_chain_id, step_key
from dockyard.build.errors import BuildError, DockerfileSyntaxError
from dockyard.build.shell_lex import ShellLex, ShellLexError
from dockyard.build.stages import PROXY_ARGS, Stage, resolve_from
from dockyard.timeutil import format_rfc3339, parse_rfc3339

if TYPE_CHECKING:  # pragma: no cover
    from dockyard.build.progress import Step
    from dockyard.build.service import BuildRun
    from dockyard.snapshot.store import ActiveSnapshot



class LayerRef:
    """A layer of an image being built (as its manifest will describe it)."""

    __slots__ = ("digest", "size", "diff_id", "media_type")

    def __init__(self, digest: str, size: int, diff_id: str, media_type: str) -> None:
        self.digest = digest
        self.size = size
        self.diff_id = diff_id
        self.media_type = media_type


class StageResult:
    """A finished stage: what a later stage (or the final image) builds on."""

    def __init__(self, config: dict[str, Any], layers: list[LayerRef], chain: str | None,
                 history: list[dict[str, Any]], created: float, platform: dict[str, str], author: str = "") -> None:
        self.config = config
        self.layers = layers
        self.chain = chain
        self.history = history
        self.created = created
        self.platform = platform
        self.author = author


class Mounted:
    """A prepared, mounted snapshot for one step."""

    def __init__(self, run: "BuildRun", snap: "ActiveSnapshot", root: Path) -> None:
        self.run = run
        self.snap = snap
        self.root = root
        self.is_mounted = True
        self.copy_ups: dict[str, tuple[int, int, int]] = {}  # see runstep.drop_untouched_copy_ups

    @property
    def upper(self) -> Path:
        return self.snap.upper

    def unmount(self) -> None:
        """Detach the mount (lazily: no process of the step is left, so nothing can write any
        more, and the upper dir is complete as it is); the snapshot store forgets the mount when
        the snapshot is removed."""
        if self.is_mounted:
            from dockyard.snapshot import mounts

            try:
                mounts.umount(self.root, mounts.MNT_DETACH)
            except OSError:
                self.run.snapshots.unmount(self.root)
            self.is_mounted = False


class StageRunner:
    """Runs the instructions of one stage."""

    def __init__(self, run: "BuildRun", stage: Stage) -> None:
        self.run = run
        self.stage = stage
        self.config: dict[str, Any] = {}
        self.layers: list[LayerRef] = []
        self.chain: str | None = None
        self.history: list[dict[str, Any]] = []
        self.args: dict[str, str | None] = {}     # the ARGs in scope and their values
        self.arg_decls: list[str] = []            # ARG names in declaration order (repeats kept)
        self.created = 0.0
        self.platform: dict[str, str] = {}
        self.author = ""
        self.cmd_set = False                      # CMD was set in this stage (ENTRYPOINT keeps it)
        self.lex = ShellLex(run.plan.escape)
        self._base_onbuild: list[str] = []

    # -- entry ---------------------------------------------------------------------------------
    def execute(self) -> StageResult:
        self.lex = ShellLex(self.run.plan.escape)
        if self.stage.base_stage is not None:
            self.run.stage_result(self.stage.base_stage)  # wait for it before showing this stage
        fs_cmds = ("RUN", "COPY", "ADD", "WORKDIR")
        total = 1 + sum(1 for i in self.stage.instructions if i.cmd in fs_cmds)
        step = self._start_step(1, total, self._from_text())
        try:
            self._from(step)
        except BaseException as exc:
            self.run.progress.error(step, str(exc))
            raise
        self.run.progress.done(step, cached=False)
        triggers = self._onbuild_triggers()
        total += sum(1 for i in triggers if i.cmd in fs_cmds)
        index = 1  # as BuildKit numbers them: FROM and the steps that change the filesystem
        for instr in [*triggers, *self.stage.instructions]:
            if instr.cmd in fs_cmds:
                index += 1
            self._instruction(instr, index, total)
        return StageResult(config=self.config, layers=list(self.layers), chain=self.chain,
                           history=list(self.history), created=self.created, platform=dict(self.platform),
                           author=self.author)

    def _start_step(self, index: int, total: int, text: str) -> "Step":
        label = f"{self.stage.name} " if self.stage.name and len(self.run.needed) > 1 else \
            (f"{self.stage.label} " if len(self.run.needed) > 1 else "")
        return self.run.progress.start(f"[{label}{index}/{total}] {text}")

    def _instruction(self, instr: ins.Instruction, index: int, total: int) -> None:
        if self.run.cancelled:
            raise BuildError("build cancelled: another stage failed")
        handler: Callable[[Any, "Step"], bool | None] = getattr(self, "_do_" + instr.cmd.lower())
        step = self._start_step(index, total, instr.text) if instr.cmd in ("RUN", "COPY", "ADD", "WORKDIR") else None
        try:
            cached = handler(instr, step)  # type: ignore[arg-type]
        except ShellLexError as exc:
            err = DockerfileSyntaxError(exc.message, self.run.plan.filename, instr.line, instr.text)
            if step is not None:
                self.run.progress.error(step, err.message)
            raise err from None
        except BaseException as exc:
            if step is not None:  # BuildKit's step line leaves out the solver's introduction
                self.run.progress.error(step, str(exc).removeprefix("failed to compute cache key: "))
            raise
        if step is not None:
            self.run.progress.done(step, cached=bool(cached))

    # -- expansion -----------------------------------------------------------------------------
    def expansion_env(self) -> dict[str, str]:
        """Build args in scope (with a value), overridden by the image's ENV."""
        env = {k: v for k, v in self.args.items() if v is not None}
        env.update(ic.env_map(self.config))
        return env

    def expand(self, word: str, env: dict[str, str] | None = None) -> str:
        return self.lex.process_word(word, env if env is not None else self.expansion_env())

    def _now(self) -> float:
        return float(self.run.epoch) if self.run.epoch is not None else time.time()

    def _history(self, created_by: str, empty: bool, when: float | None = None) -> None:
        """A history entry; a metadata step's time is left open (None) and given at export as
        BuildKit gives it (:func:`imageconfig.fill_history_times`)."""
        ts = when
        if self.run.epoch is not None:
            ts = float(self.run.epoch)
        self.history.append(ic.history_entry(format_rfc3339(ts) if ts is not None else None, created_by, empty))

    # -- FROM ------------------------------------------------------------------------------------
    def _from(self, step: "Step") -> None:
        st = self.stage
        plat = self.run.platform
        self.platform = {"os": plat.os, "architecture": plat.architecture,
                         **({"variant": plat.variant} if plat.variant else {})}
        if st.base_stage is not None:
            base = self.run.stage_result(st.base_stage)
            self.config = copy.deepcopy(base.config)
            self.layers = list(base.layers)
            self.chain = base.chain
            self.history = copy.deepcopy(base.history)
            self.created = base.created
            self.platform = dict(base.platform)
            self._base_onbuild = list(self.config.pop("OnBuild", None) or [])
            return
        if st.base.lower() == "scratch":
            self.config = ic.scratch_config()
            self.created = 0.0
            self._base_onbuild = []
            return
        image = self.run.resolve_image(st.base, step)
        doc = image.config_doc
        self._base_onbuild = list((doc.get("config") or {}).get("OnBuild") or [])
        self.config = ic.base_config(doc.get("config"))
        self.layers = [LayerRef(l.digest, l.size, l.diff_id, l.media_type) for l in image.layers]
        self.chain = image.top_chain_id if self.layers else None
        self.history = copy.deepcopy(doc.get("history") or [])
        self.created = _created(doc.get("created"))
        self.platform = {"os": doc.get("os") or plat.os, "architecture": doc.get("architecture") or plat.architecture,
                         **({"variant": doc["variant"]} if doc.get("variant") else {})}

    def _from_text(self) -> str:
        """BuildKit names a base image's step by its full name (``FROM docker.io/library/x``)."""
        st = self.stage
        if st.base_stage is not None or st.base.lower() == "scratch":
            return st.source.text
        from dockyard.errors import InvalidArgument
        from dockyard.image.reference import parse

        try:
            return f"FROM {parse(st.base, default_tag=False)}"
        except InvalidArgument:
            return st.source.text

    def _onbuild_triggers(self) -> list[ins.Instruction]:
        from dockyard.build.dockerfile import parse_line

        out: list[ins.Instruction] = []
        for trigger in getattr(self, "_base_onbuild", []):
            for node in parse_line(trigger, self.run.plan.escape):
                if node.cmd in ("ONBUILD", "FROM", "MAINTAINER"):
                    raise BuildError(f"{node.cmd} isn't allowed as an ONBUILD trigger")
                node.line = self.stage.source.line
                out.append(ins.from_node(node, self.run.plan.filename))
        return out

    # -- config instructions ---------------------------------------------------------------------
    def _do_arg(self, instr: ins.Arg, step: None) -> None:
        """Defaults are expanded with the variables from *before* the instruction (``ARG A=1
        B=$A`` gives B an empty value, as in both of docker's builders); the history line shows
        the defaults, not the values given with --build-arg."""
        env = self.expansion_env()
        shown: list[str] = []
        for key, default in instr.pairs:
            self.run.declared.add(key)
            expanded = self.expand(default, env) if default is not None else None
            shown.append(key if expanded is None else f"{key}={expanded}")
            given = self.run.build_args.get(key)
            if key in self.run.build_args and given is not None:
                value: str | None = given
            elif expanded is not None:
                value = expanded
            elif key in self.run.plan.meta_values:
                value = self.run.plan.meta_values[key]
            else:
                value = None
            self.args[key] = value
            self.arg_decls.append(key)
        self._history("ARG " + " ".join(shown), True)

    def _do_env(self, instr: ins.KeyValues, step: None) -> None:
        env = self.expansion_env()
        pairs = [(self.expand(k, env), self.expand(v, env)) for k, v in instr.pairs]
        for k, v in pairs:
            if not k:
                raise BuildError("ENV names can not be blank")
            ic.set_env(self.config, k, v)
        self._history("ENV " + " ".join(f"{k}={v}" for k, v in pairs), True)

    def _do_label(self, instr: ins.KeyValues, step: None) -> None:
        env = self.expansion_env()
        pairs = [(self.expand(k, env), self.expand(v, env)) for k, v in instr.pairs]
        ic.set_labels(self.config, pairs)
        self._history("LABEL " + " ".join(f"{k}={v}" for k, v in pairs), True)

    def _do_maintainer(self, instr: ins.Words, step: None) -> None:
        self.author = instr.words[0]
        self._history(f"MAINTAINER {self.author}", True)

    def _do_expose(self, instr: ins.Words, step: None) -> None:
        env = self.expansion_env()
        words: list[str] = []
        for w in instr.words:
            words.extend(self.lex.process_words(w, env))
        ports = ic.parse_ports(words)
        ic.add_ports(self.config, ports)
        # BuildKit prints the port set as the Go map it is: EXPOSE map[80/tcp:{} 53/udp:{}]
        self._history("EXPOSE map[" + " ".join(f"{p}:{{}}" for p in sorted(set(ports))) + "]", True)

    def _do_volume(self, instr: ins.Words, step: None) -> None:
        env = self.expansion_env()
        vols = [self.expand(w, env) for w in instr.words]
        ic.add_volumes(self.config, vols)
        self._history("VOLUME " + ic.go_list(vols), True)

    def _do_user(self, instr: ins.Words, step: None) -> None:
        self.config["User"] = self.expand(instr.words[0])
        self._history(f"USER {self.config['User']}", True)

    def _do_stopsignal(self, instr: ins.Words, step: None) -> None:
        self.config["StopSignal"] = ic.check_signal(self.expand(instr.words[0]))
        self._history(f"STOPSIGNAL {self.config['StopSignal']}", True)

    def _do_shell(self, instr: ins.Shell, step: None) -> None:
        self.config["Shell"] = list(instr.argv)
        self._history(f"SHELL {ic.go_list(list(instr.argv))}", True)

    def _do_cmd(self, instr: ins.ShellCommand, step: None) -> None:
        argv = ic.command(self._heredoc_cmd(instr), instr.shell_form, self.config)
        self.config["Cmd"] = argv
        self.config["ArgsEscaped"] = True  # docker 20.10's BuildKit marks every CMD/ENTRYPOINT so
        self.cmd_set = True
        self._history(f"CMD {ic.go_quoted_list(argv)}", True)

    def _do_entrypoint(self, instr: ins.ShellCommand, step: None) -> None:
        argv = ic.command(self._heredoc_cmd(instr), instr.shell_form, self.config)
        self.config["Entrypoint"] = argv or None
        if not self.cmd_set:
            self.config["Cmd"] = None
        self.config["ArgsEscaped"] = True
        self._history(f"ENTRYPOINT {ic.go_quoted_list(argv)}", True)

    def _do_healthcheck(self, instr: ins.Healthcheck, step: None) -> None:
        self.config["Healthcheck"] = ic.healthcheck(instr.test, instr.interval, instr.timeout, instr.start_period,
                                                    instr.start_interval, instr.retries,
                                                    inherit=self.config.get("Healthcheck"))
        self._history("HEALTHCHECK " + ic.go_healthcheck_text(instr.test, instr.interval, instr.timeout,
                                                              instr.start_period, instr.retries), True)

    def _do_onbuild(self, instr: ins.OnBuild, step: None) -> None:
        self.config["OnBuild"] = [*(self.config.get("OnBuild") or []), instr.expression]
        self._history(f"ONBUILD {instr.expression}", True)

    def _heredoc_cmd(self, instr: ins.ShellCommand) -> list[str]:
        """RUN/CMD with heredocs: a lone ``<<EOF`` runs its content; otherwise the shell gets
        the command line and the documents, and does the redirection itself."""
        from dockyard.build.dockerfile import chomp_heredoc, parse_heredoc_word

        if not instr.heredocs or not instr.shell_form:
            return list(instr.argv)
        line = instr.argv[0]
        single = parse_heredoc_word(line.strip())
        if single is not None and len(instr.heredocs) == 1:
            h = instr.heredocs[0]
            return [chomp_heredoc(h.content) if h.chomp else h.content]
        full = line
        for h in instr.heredocs:
            full += "\n" + h.content + h.name
        return [full]

    # -- filesystem steps ------------------------------------------------------------------------
    def _do_workdir(self, instr: ins.Words, step: "Step") -> bool:
        path = ic.workdir(self.config.get("WorkingDir"), self.expand(instr.words[0]))
        self.config["WorkingDir"] = path

        def make(m: Mounted) -> None:
            from dockyard.build.fsops import CopyOptions, Copier

            Copier(str(m.root), CopyOptions(mtime=self._now() if self.run.epoch is None else self.run.epoch)
                   ).mkdir_all(path, (0, 0))

        return self.fs_step(step, {"op": "mkdir", "path": path}, f"WORKDIR {path}", make)

    def _do_copy(self, instr: ins.Copy, step: "Step") -> bool:
        from dockyard.build.copystep import plan_copy

        env = self.expansion_env()
        expand = lambda w: self.expand(w, env)  # noqa: E731
        from_chain: str | None = None
        from_ref: str | None = None
        from_layers: list[LayerRef] = []
        if instr.from_:
            # with the global ARGs only, as the stage dependencies were found (stages.dependencies)
            ref = self.lex.process_word(instr.from_, self.run.plan.meta_values)
            target = resolve_from(self.run.plan, self.stage, ref, instr)
            if isinstance(target, int):
                src = self.run.stage_result(target)
                from_chain, from_layers, from_ref = src.chain, src.layers, f"stage:{target}"
            else:
                image = self.run.resolve_image(ref, step)
                from_layers = [LayerRef(l.digest, l.size, l.diff_id, l.media_type) for l in image.layers]
                from_chain, from_ref = (image.top_chain_id if from_layers else None), ref
        plan = plan_copy(instr, expand, self.config.get("WorkingDir") or "/", self.run.context,
                         self.run.cache, from_chain, from_ref)
        mtime = float(self.run.epoch) if self.run.epoch is not None else _sources_mtime(plan)

        def do_copy(m: Mounted) -> None:
            if from_ref is not None:
                self.run.ensure_chain(from_layers)
                with self.mounted(from_chain, readonly=True) as src:
                    plan.apply(str(m.root), self.run.context, str(src.root), self.run.download, mtime)
            else:
                plan.apply(str(m.root), self.run.context, None, self.run.download, mtime)

        text = instr.text
        return self.fs_step(step, plan.definition, text, do_copy, link=instr.link,
                            created_by=f"{instr.cmd} {' '.join(instr.sources)} {instr.dest} # buildkit")

    _do_add = _do_copy

    def _do_run(self, instr: ins.Run, step: "Step") -> bool:
        argv = ic.command(self._heredoc_cmd(instr), instr.shell_form, self.config)
        env = ic.env_map(self.config)
        run_env = list(self.config.get("Env") or [])
        if "PATH" not in env:
            run_env.insert(0, ic.DEFAULT_PATH_ENV)
        for k, v in self.args.items():
            if v is not None and k not in env:
                run_env.append(f"{k}={v}")
        # BuildKit's history line lists every ARG declared so far (repeats too), each with the
        # value the step sees: ENV's if one has the name, else the ARG's (empty without one)
        used_args = [f"{k}={env[k] if k in env else (self.args.get(k) or '')}" for k in self.arg_decls]
        proxies = [f"{k}={v}" for k, v in self.run.build_args.items()
                   if k in PROXY_ARGS and v is not None and k not in self.args and k not in env]
        expand = lambda w: self.expand(w)  # noqa: E731
        network = self.run.network_for(instr.network and expand(instr.network))
        if instr.security not in ("", "sandbox"):
            raise BuildError(f"RUN --security={instr.security} is not allowed: it needs the security.insecure "
                             "entitlement, which dockyard build does not grant")
        mounts: list[Any] = []
        if instr.mounts:
            from dockyard.build.runstep import parse_mounts

            mounts = parse_mounts(instr.mounts, expand, self.config.get("WorkingDir") or "/", self)
        definition = {"op": "run", "argv": argv, "env": run_env, "cwd": self.config.get("WorkingDir") or "/",
                      "user": self.config.get("User") or "", "network": network,
                      "security": instr.security, "mounts": [m.key() for m in mounts],
                      "platform": self.run.platform.text}
        shown = " ".join(argv)
        prefix = f"|{len(used_args)} {' '.join(used_args)} " if used_args else ""

        def do_run(m: Mounted) -> None:
            from dockyard.build import runstep

            runstep.run_step(self.run, self, m, argv, [*run_env, *proxies], mounts, network, step)

        return self.fs_step(step, definition, f"RUN {shown}"[:300], do_run,
                            created_by=f"RUN {prefix}{shown} # buildkit")

    # -- the step machinery ------------------------------------------------------------------------
    def fs_step(self, step: "Step", definition: dict[str, Any], description: str,
                action: Callable[[Mounted], None], link: bool = False, created_by: str | None = None) -> bool:
        """Run (or reuse from the cache) a step that changes the filesystem. Returns 'cached'."""
        run = self.run
        key = step_key(None if link else self.chain, definition)
        created_by = created_by or description
        if not run.no_cache:
            rec = run.cache.get(key)
            if rec is not None and (rec.diff_id is None or run.content.exists(rec.digest or "")):
                run.cache.touch(key)
                self._apply(rec, created_by)
                return True
        if link:
            with self.mounted(None) as m:
                action(m)
                rec = self._commit(m, key, description, on_chain=self.chain, link_chain=None)
        else:
            self.run.ensure_chain(self.layers)
            with self.mounted(self.chain) as m:
                action(m)
                rec = self._commit(m, key, description, on_chain=self.chain, link_chain=self.chain)
        self._apply(rec, created_by)
        return False

    def _commit(self, m: Mounted, key: str, description: str, on_chain: str | None,
                link_chain: str | None) -> StepRecord:
        from dockyard.build.layerdiff import has_changes, write_layer

        run = self.run
        m.unmount()
        if m.copy_ups:
            from dockyard.build.runstep import drop_untouched_copy_ups

            drop_untouched_copy_ups(m.upper, m.copy_ups)
        if not has_changes(m.upper):
            return run.cache.put(key, link_chain, None, None, 0, None, description)
        blob = write_layer(m.upper, run.content, run.lease, run.epoch, fix_tree=True)
        self.run.ensure_chain(self.layers)
        run.commit_tree(on_chain, blob, m.upper)
        return run.cache.put(key, link_chain, blob.diff_id, blob.digest, blob.size, blob.media_type, description)

    def _apply(self, rec: StepRecord, created_by: str) -> None:
        self.created = rec.created
        if rec.diff_id is not None:
            self.layers.append(LayerRef(rec.digest or "", rec.size, rec.diff_id, rec.media_type or ""))
            self.chain = child_chain_id(self.chain, rec.diff_id)
        self._history(created_by, rec.diff_id is None, rec.created)

    @contextmanager
    def mounted(self, chain: str | None, readonly: bool = False) -> Iterator[Mounted]:
        """A fresh writable snapshot on ``chain``, mounted; removed (with its mount) on exit."""
        snaps = self.run.snapshots
        key = f"build-{os.getpid()}-{os.urandom(12).hex()}"
        snap = snaps.prepare(key, chain)
        root = self.run.tmp / key[-16:]
        m: Mounted | None = None
        try:
            snaps.mount(key, root, readonly=readonly)
            m = Mounted(self.run, snap, root)
            yield m
        finally:
            try:
                if m is not None:
                    m.unmount()
            finally:
                self.run.remove_later(key, root)


def _created(text: str | None) -> float:
    try:
        return parse_rfc3339(text) or 0.0
    except ValueError:
        return 0.0


def _sources_mtime(plan: Any) -> float | None:
    """A stable time for directories a COPY creates: the newest top-level source's."""
    times = []
    for m in plan.context_matches:
        try:
            times.append(os.stat(m.path).st_mtime)
        except OSError:
            pass
    return max(times) if times else None
