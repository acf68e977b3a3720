"""Docker's default seccomp profile, as data in docker's profile format (``--security-opt seccomp=``).

Transcribed from moby ``profiles/seccomp/default.json`` as shipped in Docker Engine 20.10.24
(``docker.io 20.10.24+dfsg1``, the dockerd our compatibility tests compare against), and checked
rule by rule against the ``config.json`` that dockerd 20.10.24 generates for every capability it
knows (``docker run --cap-add X``): same rules, same order, same names. Later moby releases
differ: they move ``name_to_handle_at`` into the main allow-list, add ``pkey_*``, a ``socket``
rule refusing AF_VSOCK, ``clock_settime64``/``set_mempolicy_home_node``, CAP_BPF/CAP_PERFMON
rules, riscv64 and ``defaultErrnoRet``. The rules for architectures this host cannot run
(ppc64le, s390, mips) cannot be checked here and follow the 20.10 branch's file.

``dockyard.runtime.seccomp.profile_to_oci`` turns this into the OCI ``linux.seccomp`` object the
way moby's ``setupSeccomp`` does (capability/arch/kernel conditions resolved).
"""
from __future__ import annotations

from typing import Any

# CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWCGROUP
NAMESPACE_CLONE_FLAGS = 0x7E020000
ENOSYS = 38


def _allow(names: list[str], **extra: Any) -> dict[str, Any]:
    return {"names": names, "action": "SCMP_ACT_ALLOW", **extra}


def _with_caps(names: list[str], cap: str) -> dict[str, Any]:
    return _allow(names, includes={"caps": [cap]})


def _personality(value: int) -> dict[str, Any]:
    return _allow(["personality"], args=[{"index": 0, "value": value, "op": "SCMP_CMP_EQ"}])


DEFAULT_PROFILE: dict[str, Any] = {
    "defaultAction": "SCMP_ACT_ERRNO",
    "archMap": [
        {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
        {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]},
        {"architecture": "SCMP_ARCH_MIPS64", "subArchitectures": ["SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64N32"]},
        {"architecture": "SCMP_ARCH_MIPS64N32", "subArchitectures": ["SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64"]},
        {"architecture": "SCMP_ARCH_MIPSEL64", "subArchitectures": ["SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64N32"]},
        {"architecture": "SCMP_ARCH_MIPSEL64N32", "subArchitectures": ["SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64"]},
        {"architecture": "SCMP_ARCH_S390X", "subArchitectures": ["SCMP_ARCH_S390"]},
    ],
    "syscalls": [
        _allow([
            "accept", "accept4", "access", "adjtimex", "alarm", "bind", "brk", "capget",
            "capset", "chdir", "chmod", "chown", "chown32", "clock_adjtime", "clock_adjtime64",
            "clock_getres", "clock_getres_time64", "clock_gettime", "clock_gettime64",
            "clock_nanosleep", "clock_nanosleep_time64", "close", "close_range", "connect",
            "copy_file_range", "creat", "dup", "dup2", "dup3", "epoll_create", "epoll_create1",
            "epoll_ctl", "epoll_ctl_old", "epoll_pwait", "epoll_pwait2", "epoll_wait",
            "epoll_wait_old", "eventfd", "eventfd2", "execve", "execveat", "exit", "exit_group",
            "faccessat", "faccessat2", "fadvise64", "fadvise64_64", "fallocate",
            "fanotify_mark", "fchdir", "fchmod", "fchmodat", "fchown", "fchown32", "fchownat",
            "fcntl", "fcntl64", "fdatasync", "fgetxattr", "flistxattr", "flock", "fork",
            "fremovexattr", "fsetxattr", "fstat", "fstat64", "fstatat64", "fstatfs",
            "fstatfs64", "fsync", "ftruncate", "ftruncate64", "futex", "futex_time64",
            "futex_waitv", "futimesat", "getcpu", "getcwd", "getdents", "getdents64", "getegid",
            "getegid32", "geteuid", "geteuid32", "getgid", "getgid32", "getgroups",
            "getgroups32", "getitimer", "getpeername", "getpgid", "getpgrp", "getpid",
            "getppid", "getpriority", "getrandom", "getresgid", "getresgid32", "getresuid",
            "getresuid32", "getrlimit", "get_robust_list", "getrusage", "getsid", "getsockname",
            "getsockopt", "get_thread_area", "gettid", "gettimeofday", "getuid", "getuid32",
            "getxattr", "inotify_add_watch", "inotify_init", "inotify_init1",
            "inotify_rm_watch", "io_cancel", "ioctl", "io_destroy", "io_getevents",
            "io_pgetevents", "io_pgetevents_time64", "ioprio_get", "ioprio_set", "io_setup",
            "io_submit", "io_uring_enter", "io_uring_register", "io_uring_setup", "ipc", "kill",
            "landlock_add_rule", "landlock_create_ruleset", "landlock_restrict_self", "lchown",
            "lchown32", "lgetxattr", "link", "linkat", "listen", "listxattr", "llistxattr",
            "_llseek", "lremovexattr", "lseek", "lsetxattr", "lstat", "lstat64", "madvise",
            "membarrier", "memfd_create", "memfd_secret", "mincore", "mkdir", "mkdirat",
            "mknod", "mknodat", "mlock", "mlock2", "mlockall", "mmap", "mmap2", "mprotect",
            "mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive",
            "mq_timedreceive_time64", "mq_timedsend", "mq_timedsend_time64", "mq_unlink",
            "mremap", "msgctl", "msgget", "msgrcv", "msgsnd", "msync", "munlock", "munlockall",
            "munmap", "nanosleep", "newfstatat", "_newselect", "open", "openat", "openat2",
            "pause", "pidfd_open", "pidfd_send_signal", "pipe", "pipe2", "poll", "ppoll",
            "ppoll_time64", "prctl", "pread64", "preadv", "preadv2", "prlimit64",
            "process_mrelease", "pselect6", "pselect6_time64", "pwrite64", "pwritev",
            "pwritev2", "read", "readahead", "readlink", "readlinkat", "readv", "recv",
            "recvfrom", "recvmmsg", "recvmmsg_time64", "recvmsg", "remap_file_pages",
            "removexattr", "rename", "renameat", "renameat2", "restart_syscall", "rmdir",
            "rseq", "rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo",
            "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait", "rt_sigtimedwait_time64",
            "rt_tgsigqueueinfo", "sched_getaffinity", "sched_getattr", "sched_getparam",
            "sched_get_priority_max", "sched_get_priority_min", "sched_getscheduler",
            "sched_rr_get_interval", "sched_rr_get_interval_time64", "sched_setaffinity",
            "sched_setattr", "sched_setparam", "sched_setscheduler", "sched_yield", "seccomp",
            "select", "semctl", "semget", "semop", "semtimedop", "semtimedop_time64", "send",
            "sendfile", "sendfile64", "sendmmsg", "sendmsg", "sendto", "setfsgid", "setfsgid32",
            "setfsuid", "setfsuid32", "setgid", "setgid32", "setgroups", "setgroups32",
            "setitimer", "setpgid", "setpriority", "setregid", "setregid32", "setresgid",
            "setresgid32", "setresuid", "setresuid32", "setreuid", "setreuid32", "setrlimit",
            "set_robust_list", "setsid", "setsockopt", "set_thread_area", "set_tid_address",
            "setuid", "setuid32", "setxattr", "shmat", "shmctl", "shmdt", "shmget", "shutdown",
            "sigaltstack", "signalfd", "signalfd4", "sigprocmask", "sigreturn", "socket",
            "socketcall", "socketpair", "splice", "stat", "stat64", "statfs", "statfs64",
            "statx", "symlink", "symlinkat", "sync", "sync_file_range", "syncfs", "sysinfo",
            "tee", "tgkill", "time", "timer_create", "timer_delete", "timer_getoverrun",
            "timer_gettime", "timer_gettime64", "timer_settime", "timer_settime64",
            "timerfd_create", "timerfd_gettime", "timerfd_gettime64", "timerfd_settime",
            "timerfd_settime64", "times", "tkill", "truncate", "truncate64", "ugetrlimit",
            "umask", "uname", "unlink", "unlinkat", "utime", "utimensat", "utimensat_time64",
            "utimes", "vfork", "vmsplice", "wait4", "waitid", "waitpid", "write", "writev",
        ]),
        _allow(["ptrace"], includes={"minKernel": "4.8"}),
        _personality(0x0),
        _personality(0x0008),
        _personality(0x20000),
        _personality(0x20008),
        _personality(0xFFFFFFFF),
        _allow(["sync_file_range2"], includes={"arches": ["ppc64le"]}),
        _allow(["arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint", "cacheflush",
                "set_tls"], includes={"arches": ["arm", "arm64"]}),
        _allow(["arch_prctl"], includes={"arches": ["amd64", "x32"]}),
        _allow(["modify_ldt"], includes={"arches": ["amd64", "x32", "x86"]}),
        _allow(["s390_pci_mmio_read", "s390_pci_mmio_write", "s390_runtime_instr"],
               includes={"arches": ["s390", "s390x"]}),
        _with_caps(["open_by_handle_at"], "CAP_DAC_READ_SEARCH"),
        _with_caps(["bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick",
                    "lookup_dcookie", "mount", "mount_setattr", "move_mount", "name_to_handle_at", "open_tree",
                    "perf_event_open", "quotactl", "quotactl_fd", "setdomainname", "sethostname", "setns",
                    "syslog", "umount", "umount2", "unshare"], "CAP_SYS_ADMIN"),
        _allow(["clone"], args=[{"index": 0, "value": NAMESPACE_CLONE_FLAGS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}],
               excludes={"caps": ["CAP_SYS_ADMIN"], "arches": ["s390", "s390x"]}),
        _allow(["clone"], args=[{"index": 1, "value": NAMESPACE_CLONE_FLAGS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}],
               comment="s390 parameter ordering for clone is different",
               includes={"arches": ["s390", "s390x"]}, excludes={"caps": ["CAP_SYS_ADMIN"]}),
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS, "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
        _with_caps(["reboot"], "CAP_SYS_BOOT"),
        _with_caps(["chroot"], "CAP_SYS_CHROOT"),
        _with_caps(["delete_module", "init_module", "finit_module"], "CAP_SYS_MODULE"),
        _with_caps(["acct"], "CAP_SYS_PACCT"),
        _with_caps(["kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev", "ptrace"],
                   "CAP_SYS_PTRACE"),
        _with_caps(["iopl", "ioperm"], "CAP_SYS_RAWIO"),
        _with_caps(["settimeofday", "stime", "clock_settime"], "CAP_SYS_TIME"),
        _with_caps(["vhangup"], "CAP_SYS_TTY_CONFIG"),
        _with_caps(["get_mempolicy", "mbind", "set_mempolicy"], "CAP_SYS_NICE"),
        _with_caps(["syslog"], "CAP_SYSLOG"),
    ],
}
