"""The device allow-list on cgroup v2: an eBPF ``BPF_PROG_TYPE_CGROUP_DEVICE`` program.

cgroup v2 has no ``devices`` controller; the kernel instead runs an eBPF program attached to
the cgroup on every device open/mknod. This compiles OCI ``linux.resources.devices`` rules into
such a program, as runc's ``devicefilter`` does: the *last* matching rule decides, nothing
matching means deny (docker's lists start with "deny all"). Loaded and attached with the
``bpf(2)`` system call through ctypes; the program stays attached after its fd is closed and
goes away with the cgroup.
"""
from __future__ import annotations

import ctypes
import os
import platform
import struct
from pathlib import Path
from typing import Any

_SYS_BPF = {"x86_64": 321, "aarch64": 280}.get(platform.machine(), 321)
BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 2

# struct bpf_cgroup_dev_ctx { u32 access_type /* (access << 16) | type */; u32 major; u32 minor; }
DEV_TYPES = {"b": 1, "c": 2}
ACCESS_BITS = {"m": 1, "r": 2, "w": 4}

# instruction opcodes (<linux/bpf_common.h>, <linux/bpf.h>)
_LDX_W = 0x61        # BPF_LDX | BPF_W | BPF_MEM
_AND32_K = 0x54      # BPF_ALU | BPF_AND | BPF_K
_RSH32_K = 0x74      # BPF_ALU | BPF_RSH | BPF_K
_MOV32_X = 0xBC      # BPF_ALU | BPF_MOV | BPF_X
_MOV64_K = 0xB7      # BPF_ALU64 | BPF_MOV | BPF_K
_JNE_K = 0x55        # BPF_JMP | BPF_JNE | BPF_K
_JNE_X = 0x5D        # BPF_JMP | BPF_JNE | BPF_X
_EXIT = 0x95         # BPF_JMP | BPF_EXIT


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def _wildcard(value: Any) -> bool:
    return value is None or value == -1


def compile_rules(rules: list[dict[str, Any]]) -> bytes:
    """The program for OCI device rules (r2 = type, r3 = access, r4 = major, r5 = minor)."""
    prog = [
        _insn(_LDX_W, 2, 1, 0), _insn(_AND32_K, 2, imm=0xFFFF),
        _insn(_LDX_W, 3, 1, 0), _insn(_RSH32_K, 3, imm=16),
        _insn(_LDX_W, 4, 1, 4), _insn(_LDX_W, 5, 1, 8),
    ]
    for rule in reversed(rules):
        kind = rule.get("type") or "a"
        access = rule.get("access") or "rwm"
        checks: list[list[bytes]] = []
        if kind != "a":
            checks.append([_insn(_JNE_K, 2, imm=DEV_TYPES[kind])])
        bits = sum(ACCESS_BITS[c] for c in set(access) if c in ACCESS_BITS)
        if bits != 7:  # the requested access must be a subset of the rule's
            checks.append([_insn(_MOV32_X, 1, 3), _insn(_AND32_K, 1, imm=bits), _insn(_JNE_X, 1, 3)])
        if not _wildcard(rule.get("major")):
            checks.append([_insn(_JNE_K, 4, imm=int(rule["major"]))])
        if not _wildcard(rule.get("minor")):
            checks.append([_insn(_JNE_K, 5, imm=int(rule["minor"]))])
        verdict = [_insn(_MOV64_K, 0, imm=1 if rule.get("allow") else 0), _insn(_EXIT)]
        block: list[bytes] = [i for check in checks for i in check] + verdict
        # every jump in the block skips to the first instruction after it
        out = []
        for idx, ins in enumerate(block):
            if ins[0] in (_JNE_K, _JNE_X):
                ins = ins[:2] + struct.pack("<h", len(block) - idx - 1) + ins[4:]
            out.append(ins)
        prog += out
        if not checks:  # matches everything: what follows is unreachable (the verifier refuses it)
            return b"".join(prog)
    prog += [_insn(_MOV64_K, 0, imm=0), _insn(_EXIT)]
    return b"".join(prog)


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class _ProgLoadAttr(ctypes.Structure):
    _fields_ = [("prog_type", ctypes.c_uint32), ("insn_cnt", ctypes.c_uint32), ("insns", ctypes.c_uint64),
                ("license", ctypes.c_uint64), ("log_level", ctypes.c_uint32), ("log_size", ctypes.c_uint32),
                ("log_buf", ctypes.c_uint64), ("kern_version", ctypes.c_uint32), ("prog_flags", ctypes.c_uint32),
                ("_pad", ctypes.c_uint8 * 64)]


class _ProgAttachAttr(ctypes.Structure):
    _fields_ = [("target_fd", ctypes.c_uint32), ("attach_bpf_fd", ctypes.c_uint32),
                ("attach_type", ctypes.c_uint32), ("attach_flags", ctypes.c_uint32),
                ("replace_bpf_fd", ctypes.c_uint32), ("_pad", ctypes.c_uint8 * 44)]


def _bpf(cmd: int, attr: ctypes.Structure, what: str) -> int:
    res = _libc.syscall(_SYS_BPF, cmd, ctypes.byref(attr), ctypes.sizeof(attr))
    if res < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return int(res)


def attach(cgroup_dir: str | Path, rules: list[dict[str, Any]]) -> None:
    """Load the program for ``rules`` and attach it to a cgroup v2 directory."""
    code = compile_rules(rules)
    insns = ctypes.create_string_buffer(code, len(code))
    license_ = ctypes.create_string_buffer(b"Apache")
    log = ctypes.create_string_buffer(65536)
    load = _ProgLoadAttr(prog_type=BPF_PROG_TYPE_CGROUP_DEVICE, insn_cnt=len(code) // 8,
                         insns=ctypes.addressof(insns), license=ctypes.addressof(license_),
                         log_level=0, log_size=0, log_buf=0)
    try:
        prog_fd = _bpf(BPF_PROG_LOAD, load, "load device filter")
    except OSError as exc:  # load again with the verifier's log, for a useful message
        load.log_level, load.log_size, load.log_buf = 1, len(log), ctypes.addressof(log)
        try:
            prog_fd = _bpf(BPF_PROG_LOAD, load, "load device filter")
        except OSError:
            detail = log.value.decode(errors="replace").strip().splitlines()[-1:] or [""]
            raise OSError(exc.errno, f"{exc.strerror} {detail[0]}".strip()) from None
    try:
        cg_fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            _bpf(BPF_PROG_ATTACH, _ProgAttachAttr(target_fd=cg_fd, attach_bpf_fd=prog_fd,
                                                  attach_type=BPF_CGROUP_DEVICE, attach_flags=BPF_F_ALLOW_MULTI),
                 "attach device filter")
        finally:
            os.close(cg_fd)
    finally:
        os.close(prog_fd)
