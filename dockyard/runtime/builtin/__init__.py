"""The built-in OCI runtime: runs a bundle with no runtime binary to start.

``create`` forks the container's init straight from the calling process (the engine's
monitor): no runtime executable, no Python re-exec. The caller's thread briefly takes a new pid
namespace for its *children* (``unshare(CLONE_NEWPID)``, fork, ``setns`` back), so the fork is
already PID 1 of the container and a direct child of the monitor. The child then follows runc:
join the cgroup (created and limited beforehand), unshare/join the other namespaces, build the
rootfs and pivot_root, hostname, sysctls, console, read-only and masked paths, rlimits,
no_new_privs, capabilities and user, look the program up, report "ready" on a pipe, and block
opening ``exec.fifo`` until ``start`` opens its other end; then execve.

``exec`` forks the same way into the init's pid namespace, joins its cgroup and every other
namespace with setns, and applies the OCI ``process`` it was given.
"""
from dockyard.runtime.builtin.runtime import BuiltinRuntime

__all__ = ["BuiltinRuntime"]
