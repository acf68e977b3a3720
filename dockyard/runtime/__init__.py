"""OCI runtimes: runtime-spec generation, the built-in runtime, and runc/crun through their CLIs."""
