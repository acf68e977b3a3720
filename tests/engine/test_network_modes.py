"""``--network container:NAME`` as docker does it: the joined container's network and hostname."""
from __future__ import annotations


def test_container_network_mode_shares_network_and_hostname(cli, busybox):
    cli("run", "-d", "--name", "owner", "busybox", "sleep", "30", check=True)
    try:
        owner_host = cli("exec", "owner", "hostname", check=True).stdout.strip()
        out = cli("run", "--rm", "--network", "container:owner", "busybox", "sh", "-c",
                  "hostname; readlink /proc/self/ns/net", check=True).stdout.split()
        assert out[0] == owner_host
        owner_ns = cli("exec", "owner", "readlink", "/proc/self/ns/net", check=True).stdout.strip()
        assert out[1] == owner_ns
        r = cli("run", "--rm", "--network", "container:owner", "-h", "other", "busybox", "true")
        assert r.returncode == 125 and "conflicting options: hostname and the network mode" in r.stderr
        r = cli("run", "--rm", "--network", "container:nobody-here", "busybox", "true")
        assert r.returncode == 125 and "No such container: nobody-here" in r.stderr
    finally:
        cli("rm", "-f", "owner")
