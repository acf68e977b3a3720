"""Compile an OCI ``linux.seccomp`` object to a classic BPF program and load it, as runc does
with libseccomp — for the built-in runtime, which has no libseccomp.

The program follows what runc hands the kernel (libseccomp's filter behind runc's ``-ENOSYS``
stub, ``libcontainer/seccomp/patchbpf``):

1. check the architecture (``seccomp_data.arch``); one foreign to the profile is killed, as
   libseccomp's default bad-arch action does; x32 syscalls (``nr & 0x40000000`` under
   AUDIT_ARCH_X86_64) are their own section;
2. unless the default action allows, a syscall number above the highest one the profile names
   (for that architecture) fails with ENOSYS: newer syscalls than the profile knows look absent,
   so libc falls back to the old ones (``clone3`` → ``clone``, ``fchmodat2`` → ``fchmodat``);
3. a binary search over syscall-number ranges picks the action; rules with argument conditions
   compare 64-bit arguments as two 32-bit halves (high word first), the low half only on
   32-bit architectures, like libseccomp.

Rule semantics are runc's: names libseccomp does not know for an architecture are ignored; a
rule whose action equals the default action is dropped; conditions on different arguments are
ANDed, several conditions on one argument become separate rules (ORed); an unconditional rule
for a syscall wins over conditional ones; conditional rules are tried in order.

Compiling takes milliseconds, so ``load_or_compile`` keeps each program in an on-disk cache
keyed by the seccomp object's hash: a container start only reads a small file.
"""
from __future__ import annotations

import ctypes
import errno as errno_module
import hashlib
import json
import os
import platform
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from dockyard.errors import InvalidArgument
from dockyard.runtime.linux import libc

COMPILER_VERSION = 1  # bump when the generated code changes: old cache entries are then ignored

# seccomp return values (<linux/seccomp.h>)
RET_KILL_PROCESS = 0x80000000
RET_KILL_THREAD = 0x00000000
RET_TRAP = 0x00030000
RET_ERRNO = 0x00050000
RET_TRACE = 0x7FF00000
RET_LOG = 0x7FFC0000
RET_ALLOW = 0x7FFF0000
RET_DATA = 0x0000FFFF

# classic BPF opcodes
LD_W_ABS = 0x20
ALU_AND_K = 0x54
JMP_JA = 0x05
JMP_JEQ_K = 0x15
JMP_JGT_K = 0x25
JMP_JGE_K = 0x35
JMP_JSET_K = 0x45
RET_K = 0x06
BPF_MAXINSNS = 4096

# struct seccomp_data offsets (little-endian hosts: the low word of args[i] comes first)
OFF_NR = 0
OFF_ARCH = 4
OFF_ARGS = 16

X32_SYSCALL_BIT = 0x40000000
AUDIT_ARCH = {
    "SCMP_ARCH_X86_64": 0xC000003E, "SCMP_ARCH_X32": 0xC000003E, "SCMP_ARCH_X86": 0x40000003,
    "SCMP_ARCH_AARCH64": 0xC00000B7, "SCMP_ARCH_ARM": 0x40000028,
}
# architectures a process on this host can run: (native, its compat architectures)
HOST_ARCHES = {
    "x86_64": ("SCMP_ARCH_X86_64", ("SCMP_ARCH_X86", "SCMP_ARCH_X32")),
    "aarch64": ("SCMP_ARCH_AARCH64", ("SCMP_ARCH_ARM",)),
}
BITS_32 = {"SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_ARM"}
# every architecture name runc accepts (those this host cannot run need no code)
KNOWN_ARCHES = {
    "SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC", "SCMP_ARCH_PPC64", "SCMP_ARCH_PPC64LE", "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X", "SCMP_ARCH_RISCV64",
}
OPERATORS = {"SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT",
             "SCMP_CMP_MASKED_EQ"}
FILTER_FLAGS = {"SECCOMP_FILTER_FLAG_TSYNC": 0, "SECCOMP_FILTER_FLAG_LOG": 2, "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4}
ALLOWING = (RET_ALLOW, RET_LOG)
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_SYSCALL = {"x86_64": 317, "aarch64": 277}
MAX_ARGS = 6


class SeccompError(InvalidArgument):
    """The seccomp object cannot be compiled or loaded (runc's wording where it has one)."""


@dataclass(frozen=True)
class CompiledFilter:
    """A ready-to-load program: ``struct sock_filter[]`` bytes and the seccomp(2) flags."""

    program: bytes
    flags: int = 0

    @property
    def length(self) -> int:
        return len(self.program) // 8

    _MAGIC = b"DYSECCOMP1\n"

    def to_bytes(self) -> bytes:
        return self._MAGIC + struct.pack("=I", self.flags) + self.program

    @classmethod
    def from_bytes(cls, data: bytes) -> "CompiledFilter":
        if not data.startswith(cls._MAGIC) or (len(data) - len(cls._MAGIC) - 4) % 8:
            raise SeccompError("corrupt compiled seccomp filter")
        (flags,) = struct.unpack_from("=I", data, len(cls._MAGIC))
        return cls(data[len(cls._MAGIC) + 4:], flags)


# ---------------------------------------------------------------------------- actions and rules
def action_value(action: str, errno_ret: int | None) -> int:
    """The seccomp return value of an OCI action (runc's defaults: EPERM for ERRNO and TRACE)."""
    data = (errno_module.EPERM if errno_ret is None else int(errno_ret)) & RET_DATA
    if action in ("SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD"):
        return RET_KILL_THREAD
    if action == "SCMP_ACT_KILL_PROCESS":
        return RET_KILL_PROCESS
    if action == "SCMP_ACT_TRAP":
        return RET_TRAP | (0 if errno_ret is None else data)
    if action == "SCMP_ACT_ERRNO":
        return RET_ERRNO | data
    if action == "SCMP_ACT_TRACE":
        return RET_TRACE | data
    if action == "SCMP_ACT_ALLOW":
        return RET_ALLOW
    if action == "SCMP_ACT_LOG":
        return RET_LOG
    if action == "SCMP_ACT_NOTIFY":
        raise SeccompError("SCMP_ACT_NOTIFY needs a seccomp agent, which the built-in runtime does not support; "
                           "use --runtime runc")
    raise SeccompError(f"string {action} is not a valid action for seccomp")


@dataclass(frozen=True)
class Cond:
    index: int
    op: str
    value: int
    value_two: int


@dataclass(frozen=True)
class Rule:
    action: int
    conds: tuple[Cond, ...]  # empty: unconditional


def _conditions(args: list[dict[str, Any]]) -> list[tuple[Cond, ...]]:
    """runc's ``matchCall``: one rule with every condition, or one rule per condition when two
    conditions test the same argument."""
    conds = []
    for arg in args:
        op = arg.get("op", "")
        if op not in OPERATORS:
            raise SeccompError(f"string {op} is not a valid operator for seccomp")
        index = int(arg.get("index", 0))
        if not 0 <= index < MAX_ARGS:
            raise SeccompError(f"seccomp: syscall argument index {index} is out of range (0-{MAX_ARGS - 1})")
        conds.append(Cond(index, op, int(arg.get("value", 0)) & 0xFFFFFFFFFFFFFFFF,
                          int(arg.get("valueTwo", 0)) & 0xFFFFFFFFFFFFFFFF))
    if len({c.index for c in conds}) < len(conds):
        return [(c,) for c in conds]
    return [tuple(conds)]


def _rules_by_syscall(config: dict[str, Any], table: dict[str, int], default: int) -> dict[int, list[Rule]]:
    rules: dict[int, list[Rule]] = {}
    for call in config.get("syscalls") or []:
        act = action_value(call.get("action", ""), call.get("errnoRet"))
        condition_sets = _conditions(call.get("args") or [])
        if act == default:
            continue  # libseccomp refuses such rules; runc skips them
        for name in call.get("names") or []:
            nr = table.get(name)
            if nr is None:
                continue  # not a syscall on this architecture (or unknown): ignored, as runc does
            for conds in condition_sets:
                rules.setdefault(nr, []).append(Rule(act, conds))
    return rules


def _last_syscall(config: dict[str, Any], table: dict[str, int]) -> int:
    """The highest syscall number the profile names for an architecture (runc's findLastSyscalls)."""
    numbers = [table[n] for call in config.get("syscalls") or [] for n in call.get("names") or [] if n in table]
    return max(numbers, default=0)


# ---------------------------------------------------------------------------- assembler
class _Asm:
    """Forward-only cBPF with symbolic labels. Conditional jumps whose targets end up more than
    255 instructions away get a JA trampoline (iterated until the layout is stable)."""

    def __init__(self) -> None:
        self.items: list[tuple[Any, ...]] = []
        self._labels = 0

    def label(self) -> str:
        self._labels += 1
        return f"L{self._labels}"

    def place(self, label: str) -> None:
        self.items.append(("label", label))

    def ld(self, offset: int) -> None:
        self.items.append(("stmt", LD_W_ABS, offset))

    def and_k(self, k: int) -> None:
        self.items.append(("stmt", ALU_AND_K, k))

    def ret(self, k: int) -> None:
        self.items.append(("stmt", RET_K, k))

    def ja(self, target: str) -> None:
        self.items.append(("ja", target))

    def jump(self, code: int, k: int, jt: str | None, jf: str | None) -> None:
        """``if (A <op> k) goto jt else goto jf``; None = the next instruction."""
        self.items.append(("jump", code, k & 0xFFFFFFFF, jt, jf))

    def assemble(self) -> bytes:
        far: dict[int, tuple[bool, bool]] = {}
        while True:
            sizes = []
            for i, item in enumerate(self.items):
                if item[0] == "label":
                    sizes.append(0)
                elif item[0] == "jump":
                    t, f = far.get(i, (False, False))
                    sizes.append(1 + t + f)
                else:
                    sizes.append(1)
            pos, labels, at = 0, {}, []
            for i, item in enumerate(self.items):
                at.append(pos)
                if item[0] == "label":
                    labels[item[1]] = pos
                pos += sizes[i]
            changed = False
            for i, item in enumerate(self.items):
                if item[0] != "jump":
                    continue
                t, f = far.get(i, (False, False))
                end = at[i] + sizes[i]
                for which, target in ((0, item[3]), (1, item[4])):
                    dest = end if target is None else labels[target]
                    if not (t, f)[which] and dest - (at[i] + 1) > 255:
                        t, f = (True, f) if which == 0 else (t, True)
                        changed = True
                far[i] = (t, f)
            if not changed:
                break
        if pos > BPF_MAXINSNS:
            raise SeccompError(f"seccomp filter too large: {pos} instructions (the kernel takes {BPF_MAXINSNS})")
        out = bytearray()

        def emit(code: int, jt: int, jf: int, k: int) -> None:
            assert 0 <= jt <= 255 and 0 <= jf <= 255, (jt, jf)
            out.extend(struct.pack("=HBBI", code, jt, jf, k & 0xFFFFFFFF))

        for i, item in enumerate(self.items):
            kind = item[0]
            here = at[i]
            if kind == "stmt":
                emit(item[1], 0, 0, item[2])
            elif kind == "ja":
                emit(JMP_JA, 0, 0, labels[item[1]] - (here + 1))
            elif kind == "jump":
                _, code, k, jt_label, jf_label = item
                t, f = far.get(i, (False, False))
                end = here + sizes[i]
                dest_t = end if jt_label is None else labels[jt_label]
                dest_f = end if jf_label is None else labels[jf_label]
                if t and f:
                    emit(code, 0, 1, k)
                    emit(JMP_JA, 0, 0, dest_t - (here + 2))
                    emit(JMP_JA, 0, 0, dest_f - (here + 3))
                elif t:
                    emit(code, 0, dest_f - (here + 1), k)
                    emit(JMP_JA, 0, 0, dest_t - (here + 2))
                elif f:
                    emit(code, dest_t - (here + 1), 0, k)
                    emit(JMP_JA, 0, 0, dest_f - (here + 2))
                else:
                    emit(code, dest_t - (here + 1), dest_f - (here + 1), k)
        return bytes(out)


# ---------------------------------------------------------------------------- code generation
def _emit_condition(asm: _Asm, cond: Cond, fail: str, bits32: bool) -> None:
    """Fall through when ``args[index] <op> value`` holds, jump to ``fail`` when it does not."""
    lo_off = OFF_ARGS + 8 * cond.index
    hi_off = lo_off + 4
    value, two = cond.value, cond.value_two
    v_hi, v_lo = value >> 32, value & 0xFFFFFFFF
    op = cond.op
    if op == "SCMP_CMP_MASKED_EQ":
        halves = [(lo_off, v_lo, two & 0xFFFFFFFF)] if bits32 else [
            (hi_off, v_hi, two >> 32), (lo_off, v_lo, two & 0xFFFFFFFF)]
        for offset, mask, datum in halves:
            asm.ld(offset)
            asm.and_k(mask)
            asm.jump(JMP_JEQ_K, datum, None, fail)
        return
    matched = asm.label()
    if op == "SCMP_CMP_EQ":
        if not bits32:
            asm.ld(hi_off)
            asm.jump(JMP_JEQ_K, v_hi, None, fail)
        asm.ld(lo_off)
        asm.jump(JMP_JEQ_K, v_lo, None, fail)
    elif op == "SCMP_CMP_NE":
        if not bits32:
            asm.ld(hi_off)
            asm.jump(JMP_JEQ_K, v_hi, None, matched)
        asm.ld(lo_off)
        asm.jump(JMP_JEQ_K, v_lo, fail, None)
    else:
        # GT/GE: a greater high word matches, a smaller one fails; LT/LE the other way round
        greater_matches = op in ("SCMP_CMP_GT", "SCMP_CMP_GE")
        if not bits32:
            check_lo = asm.label()
            asm.ld(hi_off)
            asm.jump(JMP_JGT_K, v_hi, matched if greater_matches else fail, None)
            asm.jump(JMP_JEQ_K, v_hi, check_lo, fail if greater_matches else matched)
            asm.place(check_lo)
        asm.ld(lo_off)
        if op == "SCMP_CMP_GT":
            asm.jump(JMP_JGT_K, v_lo, None, fail)
        elif op == "SCMP_CMP_GE":
            asm.jump(JMP_JGE_K, v_lo, None, fail)
        elif op == "SCMP_CMP_LT":
            asm.jump(JMP_JGE_K, v_lo, fail, None)
        else:  # SCMP_CMP_LE
            asm.jump(JMP_JGT_K, v_lo, fail, None)
    asm.place(matched)


def _emit_decision(asm: _Asm, rules: list[Rule] | None, default: int, bits32: bool) -> None:
    if not rules:
        asm.ret(default)
        return
    unconditional = next((r for r in rules if not r.conds), None)
    if unconditional is not None:
        asm.ret(unconditional.action)
        return
    for rule in rules:
        fail = asm.label()
        for cond in rule.conds:
            _emit_condition(asm, cond, fail, bits32)
        asm.ret(rule.action)
        asm.place(fail)
    asm.ret(default)


def _ranges(rules: dict[int, list[Rule]], low: int) -> list[tuple[int, Any]]:
    """Syscall numbers from ``low`` up cut into ranges of equal decision: (first number, key),
    key None = the default action, ("ret", value) = one action, ("rules", nr) = conditions."""
    points: list[tuple[int, Any]] = [(low, None)]

    def start(nr: int, key: Any) -> None:
        if points[-1][0] == nr:
            points[-1] = (nr, key)
        else:
            points.append((nr, key))

    for nr in sorted(rules):
        unconditional = next((r for r in rules[nr] if not r.conds), None)
        start(nr, ("ret", unconditional.action) if unconditional else ("rules", nr))
        start(nr + 1, None)
    merged: list[tuple[int, Any]] = []
    for nr, key in points:
        if not merged or merged[-1][1] != key:
            merged.append((nr, key))
    return merged


def _emit_dispatch(asm: _Asm, ranges: list[tuple[int, Any]], rules: dict[int, list[Rule]], default: int,
                   bits32: bool) -> None:
    """A binary search on the syscall number (in A) down to one range, then its decision."""
    if len(ranges) == 1:
        key = ranges[0][1]
        if key is None:
            asm.ret(default)
        elif key[0] == "ret":
            asm.ret(key[1])
        else:
            _emit_decision(asm, rules[key[1]], default, bits32)
        return
    mid = len(ranges) // 2
    right = asm.label()
    asm.jump(JMP_JGE_K, ranges[mid][0], right, None)
    _emit_dispatch(asm, ranges[:mid], rules, default, bits32)
    asm.place(right)
    _emit_dispatch(asm, ranges[mid:], rules, default, bits32)


def _emit_section(asm: _Asm, arch: str, config: dict[str, Any], default: int, enosys_stub: bool) -> None:
    """The code for one architecture, entered with the syscall number in A."""
    from dockyard.runtime.seccomp_syscalls import syscall_table

    table = syscall_table(arch)
    if enosys_stub:
        last = _last_syscall(config, table)
        if last:
            enosys = asm.label()
            go = asm.label()
            asm.jump(JMP_JGT_K, last, enosys, go)
            asm.place(enosys)
            asm.ret(RET_ERRNO | errno_module.ENOSYS)
            asm.place(go)
    rules = _rules_by_syscall(config, table, default)
    low = X32_SYSCALL_BIT if arch == "SCMP_ARCH_X32" else 0
    _emit_dispatch(asm, _ranges(rules, low), rules, default, arch in BITS_32)


def compile_filter(config: dict[str, Any], machine: str | None = None) -> CompiledFilter:
    """The BPF program (and seccomp(2) flags) for an OCI ``linux.seccomp`` object on this host."""
    machine = machine or platform.machine()
    if machine not in HOST_ARCHES:
        raise SeccompError(f"the built-in runtime cannot compile seccomp filters on {machine}; use --runtime runc")
    native, compat = HOST_ARCHES[machine]
    listed = list(config.get("architectures") or [])
    for arch in listed:
        if arch not in KNOWN_ARCHES:
            raise SeccompError(f"string {arch} is not a valid arch for seccomp")
    flags = 0
    for flag in config.get("flags") or []:
        if flag not in FILTER_FLAGS:
            raise SeccompError(f"seccomp flag {flag!r} not yet supported by runc")
        flags |= FILTER_FLAGS[flag]
    default = action_value(config.get("defaultAction", ""), config.get("defaultErrnoRet"))
    for call in config.get("syscalls") or []:  # validate every rule, also those for other arches
        action_value(call.get("action", ""), call.get("errnoRet"))
        _conditions(call.get("args") or [])
    # runc's -ENOSYS stub: only for listed architectures, not when the default allows or is ENOSYS
    stub = default not in ALLOWING and default != RET_ERRNO | errno_module.ENOSYS
    sections = [native] + [a for a in compat if a in listed]
    asm = _Asm()
    bad_arch = asm.label()
    asm.ld(OFF_ARCH)
    entries: dict[int, str] = {}
    for arch in sections:
        audit = AUDIT_ARCH[arch]
        if audit not in entries:
            entries[audit] = asm.label()
            asm.jump(JMP_JEQ_K, audit, entries[audit], None)
    asm.ja(bad_arch)
    x32 = "SCMP_ARCH_X32" in sections
    for audit, entry in entries.items():
        asm.place(entry)
        asm.ld(OFF_NR)
        arches = [a for a in sections if AUDIT_ARCH[a] == audit]
        if audit == AUDIT_ARCH["SCMP_ARCH_X86_64"]:
            x32_entry = asm.label() if x32 else bad_arch
            asm.jump(JMP_JSET_K, X32_SYSCALL_BIT, x32_entry, None)
            _emit_section(asm, "SCMP_ARCH_X86_64", config, default, stub and "SCMP_ARCH_X86_64" in listed)
            if x32:
                asm.place(x32_entry)
                _emit_section(asm, "SCMP_ARCH_X32", config, default, stub)
        else:
            for arch in arches:
                _emit_section(asm, arch, config, default, stub and arch in listed)
    asm.place(bad_arch)
    asm.ret(RET_KILL_THREAD)  # libseccomp's default bad-architecture action
    return CompiledFilter(asm.assemble(), flags)


# ---------------------------------------------------------------------------- cache
def cache_key(config: dict[str, Any], machine: str | None = None) -> str:
    from dockyard.runtime.seccomp_syscalls import LIBSECCOMP_VERSION

    text = json.dumps([COMPILER_VERSION, LIBSECCOMP_VERSION, machine or platform.machine(), config],
                      sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def load_or_compile(config: dict[str, Any], cache_dir: Path | None) -> CompiledFilter:
    """The compiled filter from ``cache_dir`` (keyed by the object's hash), compiling and storing
    it on a miss. A corrupt or unreadable entry is recompiled, never trusted."""
    if cache_dir is None:
        return compile_filter(config)
    path = Path(cache_dir) / f"{cache_key(config)}.bpf"
    try:
        return CompiledFilter.from_bytes(path.read_bytes())
    except (OSError, SeccompError):
        pass
    compiled = compile_filter(config)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(compiled.to_bytes())
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only or full disk only costs the next start a compile
    return compiled


# ---------------------------------------------------------------------------- loading
class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def install(compiled: CompiledFilter) -> None:
    """Load the filter into the calling thread (seccomp(2), SECCOMP_SET_MODE_FILTER). Needs
    no_new_privs or CAP_SYS_ADMIN; inherited by children and kept across execve."""
    buf = ctypes.create_string_buffer(compiled.program, len(compiled.program))
    prog = _SockFprog(compiled.length, ctypes.cast(buf, ctypes.c_void_p))
    nr = SECCOMP_SYSCALL.get(platform.machine(), SECCOMP_SYSCALL["x86_64"])
    if libc.syscall(ctypes.c_long(nr), ctypes.c_long(SECCOMP_SET_MODE_FILTER), ctypes.c_long(compiled.flags),
                     ctypes.byref(prog)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"error loading seccomp filter into kernel: {os.strerror(err).lower()}")


def decode(program: bytes) -> Iterable[tuple[int, int, int, int]]:
    """(code, jt, jf, k) per instruction: for tests and debugging."""
    return struct.iter_unpack("=HBBI", program)


__all__ = ["CompiledFilter", "SeccompError", "compile_filter", "load_or_compile", "install", "cache_key",
           "action_value"]
