"""The network commands, and what containers see of networks, side by side with the docker CLI
(docker 28 client, the dockerd here, run with --iptables=false) on the same busybox rootfs.

Each case runs one command line in both engines; stdout, stderr and the exit code must be the
same once what has to differ is normalised: IDs, the program's name, and dockyard's default
bridge subnet (docker's is 172.17.0.0/16, ours stays clear of it). User networks get the same
explicit subnets in both (docker checks them against its own networks only, and so do we), so
addresses, MACs, /etc/hosts and DNS answers can be compared as they are.

Everything a test makes carries this process's ID in its name and is removed from both engines
at the end, whatever happened.
"""
from __future__ import annotations

import json
import os
import subprocess
import time
from typing import Any, Iterator

import pytest

from tests.sidebyside import SideBySide, normalise_ids, tag_busybox_in_both
from tests.network.conftest import BUSYBOX as BB, free_ports

pytestmark = pytest.mark.interop

P = f"nvp{os.getpid()}"  # name prefix: unique on a shared dockerd
TAG = f"{P}-bb"
_OCTET = (os.getpid() % 60) * 4  # four /24s of 10.247.0.0/16 per test process
SUBNETS = {f"{{S{i}}}": f"10.247.{_OCTET + i}" for i in range(4)}
SUBNETS6 = {f"{{V{i}}}": f"fd00:{os.getpid() % 65536:x}:{i}:" for i in range(2)}  # + ":/64"


class Both(SideBySide):
    """The network harness: user networks get the same explicit subnets in both engines."""

    def __init__(self, cli: Any) -> None:
        super().__init__(cli, {"{P}": P, "{IMG}": TAG, **SUBNETS, **SUBNETS6})

    def json_same(self, line: str, drop: tuple[str, ...] = ()) -> None:
        """Both print JSON: the same tree once IDs and the keys in ``drop`` are left out."""
        theirs, mine = self.docker(line), self.ours(line)
        assert theirs.returncode == 0 and mine.returncode == 0, (theirs.stderr, mine.stderr)
        want = _strip(json.loads(normalise_ids(theirs.stdout, True)), drop)
        got = _strip(json.loads(normalise_ids(mine.stdout, False)), drop)
        if want != got:
            self.diffs.append(f"{line}\n  docker:   {want!r}\n  dockyard: {got!r}")


def _strip(tree: Any, drop: tuple[str, ...]) -> Any:
    if isinstance(tree, dict):
        return {k: _strip(v, drop) for k, v in tree.items() if k not in drop}
    if isinstance(tree, list):
        return [_strip(v, drop) for v in tree]
    return tree


@pytest.fixture
def both(cli, busybox, docker_busybox) -> Iterator[Both]:
    tag_busybox_in_both(cli, docker_busybox, TAG)
    b = Both(cli)
    try:
        yield b
    finally:
        containers = [f"{P}_{n}" for n in ("c1", "c2", "c3", "c3h", "p1", "p2", "p3", "p4")]
        networks = [f"{P}_{n}" for n in ("a", "b", "n", "m", "p", "cf", "x", "co")]
        subprocess.run(["docker", "rm", "-f", *containers], capture_output=True)
        subprocess.run(["docker", "network", "rm", *networks], capture_output=True)
        subprocess.run(["docker", "rmi", f"{TAG}:latest"], capture_output=True)
        cli("rm", "-f", *containers)
        cli("network", "rm", *networks)


def test_create_ls_inspect_rm_and_prune(both):
    both.setup("network create --subnet {S0}.0/24 --gateway {S0}.254 --label {P}=1 "
               "-o com.docker.network.driver.mtu=1500 {P}_a")
    both.setup("network create --internal --subnet {S1}.0/24 --ip-range {S1}.128/25 -d bridge {P}_b")
    both.same(
        # create: docker's checks, CLI-side (bare) and daemon-side
        "network create {P}_a", "network create --subnet {S0}.128/25 {P}_x",
        "network create --subnet {S2}.0/33 {P}_x", "network create --subnet foo {P}_x",
        "network create --gateway {S2}.1 {P}_x", "network create --ip-range {S2}.0/25 {P}_x",
        "network create --subnet {S2}.0/24 --gateway {S3}.1 {P}_x",
        "network create --subnet {S2}.0/24 --gateway foo {P}_x",
        "network create --subnet {S2}.0/24 --ip-range {S3}.0/25 {P}_x",
        "network create --subnet {S2}.0/24 --ip-range {S2}.0/33 {P}_x",
        "network create --subnet {S2}.0/24 --subnet {S3}.0/24 {P}_x",
        "network create --subnet {S2}.0/31 {P}_x",
        "network create bridge", "network create host", "network create -d host {P}_x",
        "network create -d null {P}_x", "network create -d nosuch {P}_x",
        # ls: filters, quiet, formats
        "network ls --filter name={P}", "network ls --filter name={P} --no-trunc",
        "network ls -q --filter label={P}=1", "network ls -q --filter label={P}",
        "network ls --filter name=^{P}_a$ --format '{{.Name}} {{.Driver}} {{.Scope}} {{.Internal}} "
        "{{.IPv4}} {{.IPv6}} {{.Labels}} {{.Label \"{P}\"}}'",
        "network ls --filter name={P} --filter type=custom --format 'table {{.Name}}\\t{{.Internal}}'",
        "network ls --filter type=builtin --format '{{.Name}} {{.Driver}}'",
        "network ls --filter driver=null --format '{{.Name}}'",
        "network ls --filter name={P} --filter dangling=true --format '{{.Name}}'",
        "network ls --filter dangling=false --format '{{.Name}}'",
        "network ls --filter type=bogus", "network ls --filter bogus=1", "network ls --filter bogus",
        "network ls --filter dangling=maybe", "network ls --format '{{.Nope}}'",
        "network ls --filter name=nothing-is-called-this",
        # inspect: templates and missing networks
        "network inspect -f '{{json .IPAM}} {{json .Options}} {{json .Labels}}' {P}_a {P}_b",
        "network inspect -f '{{.Internal}} {{.Attachable}} {{.Scope}} {{.Driver}}' {P}_b",
        "network inspect -f '{{json .Options}} {{.IPAM.Options}}' none host",
        "network inspect nosuch", "network inspect {P}_a nosuch -f '{{.Name}}'",
        # an internal network with an address range: the container's view
        "run --rm --network {P}_b {IMG} sh -c 'ip -4 addr show eth0 | grep inet; ip route; "
        "cat /etc/resolv.conf'",
        "inspect -f '{{json .NetworkSettings.Networks}}' nosuch",
        # rm and prune
        "network rm nosuch", "network rm -f nosuch", "network rm bridge", "network rm {P}_b nosuch",
        "network prune -f --filter label={P}=1", "network prune -f --filter label={P}=1",
    )
    both.check()


def test_inspect_tree_is_dockers(both):
    both.setup("network create --subnet {S2}.0/24 --label {P}=1 -o com.docker.network.driver.mtu=1500 {P}_n")
    both.json_same("network inspect {P}_n", drop=("Id", "Created"))
    both.json_same("network inspect host none", drop=("Id", "Created", "Containers"))
    both.check()


def test_containers_on_a_user_network(both):
    both.setup("network create --subnet {S3}.0/24 {P}_n")
    both.setup("network create --subnet {S2}.0/24 {P}_m")
    both.setup("run -d --name {P}_c1 --network {P}_n --network-alias web --hostname h1 {IMG} sleep 300")
    both.setup("run -d --name {P}_c2 --network {P}_n {IMG} sleep 300")
    both.setup("create --name {P}_c3 --network none {IMG}")
    both.setup("run -d --name {P}_c3h --network host {IMG} sleep 300")
    both.same(
        # what the container sees: files, addresses, names through the embedded DNS
        "exec {P}_c2 cat /etc/resolv.conf", "exec {P}_c2 cat /etc/hosts", "exec {P}_c1 hostname",
        "exec {P}_c1 cat /etc/hosts", "exec {P}_c2 sh -c 'ip -4 addr show eth0 | grep inet'",
        "exec {P}_c2 sh -c 'ip link show eth0 | grep -o ether.*'", "exec {P}_c2 ip route",
        # (busybox prints the A and AAAA answers as they arrive: only the answer is compared)
        *[f"exec {{P}}_{c} sh -c 'nslookup {name} | grep -A1 ^Name'" for c, name in (
            ("c2", "web"), ("c2", "{P}_c1"), ("c2", "h1"), ("c2", "{P}_c1.{P}_n"), ("c1", "{P}_c2"))],
        "exec {P}_c2 sh -c 'nslookup {S3}.2 | grep name'", "exec {P}_c2 nslookup nosuchname",
        "inspect -f '{{json .NetworkSettings.Networks}}' {P}_c1",
        "network rm {P}_n", "network ls --filter name={P} --filter dangling=true --format '{{.Name}}'",
        # connect / disconnect
        "network connect {P}_n {P}_c1", "network connect --alias x bridge {P}_c1",
        "network connect {P}_n nosuch", "network connect nosuch {P}_c1",
        "network disconnect {P}_m {P}_c1", "network disconnect nosuch {P}_c1",
        "run --rm --network {P}_n --ip 10.9.9.9 {IMG} true",
        "run --rm --network {P}_n --ip {S3}.2 {IMG} true", "run --rm --network {P}_n --ip foo {IMG} true",
        "network connect --ip {S2}.77 --alias other {P}_m {P}_c1",
        "inspect -f '{{json .NetworkSettings.Networks}}' {P}_c1",
        "exec {P}_c1 sh -c 'ip -4 addr | grep -c {S2}.77'",
        "exec {P}_c2 sh -c 'nslookup other | grep -A1 ^Name'",
        "network inspect -f '{{json .Containers}}' {P}_m",
        "network disconnect {P}_m {P}_c1", "network disconnect {P}_m {P}_c1",
        "network inspect -f '{{json .Containers}}' {P}_m",
        # what cannot be connected at all
        "network connect host {P}_c2", "network connect none {P}_c2",
        "network connect {P}_m {P}_c3", "network connect {P}_m {P}_c3h",
        # (the dockerd is shared: only this test's container is looked at)
        "network inspect -f '{{range .Containers}}{{if eq .Name \"{P}_c3h\"}}{{.Name}} "
        "{{.IPv4Address}} {{.MacAddress}}|{{end}}{{end}}' host",
    )
    both.same("network inspect -f '{{range .Containers}}{{.Name}} {{.IPv4Address}} {{.MacAddress}}"
              "{{println}}{{end}}' {P}_n", unordered=True)
    both.check()


def test_default_bridge_and_run_flags(both):
    both.same(
        "run --rm --network none {IMG} sh -c 'hostname | wc -c; cat /etc/hosts /etc/resolv.conf'",
        "run --rm --network host {IMG} sh -c 'hostname; cat /etc/resolv.conf'",
        "run --rm --hostname hh --add-host foo:1.2.3.4 --add-host bar:5.6.7.8 --dns 9.9.9.9 "
        "--dns-search example.com {IMG} sh -c 'hostname; cat /etc/resolv.conf; head -8 /etc/hosts'",
        "run --rm {IMG} sh -c 'head -6 /etc/hosts; cat /etc/resolv.conf'",
        "run --rm --network nosuch {IMG} true", "run --rm --ip 10.1.2.3 {IMG} true",
    )
    both.check()


def test_mac_address_is_applied(boxes):
    """``--mac-address`` (docker 28's CLI refuses it against a 1.41 daemon, so no side by side):
    the container's interface gets it, as dockerd 20.10 gives it; a malformed one is refused."""
    box = boxes("mac", mac="02:42:AC:11:00:99")
    assert box.att.mac == "02:42:ac:11:00:99"
    assert "link/ether 02:42:ac:11:00:99 " in box.sh("ip link show eth0").stdout
    from dockyard.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match="is not a valid mac address"):
        boxes("badmac", mac="02:42:zz")


FAKE_DNS = """
import socket, sys
from dnslib import A, DNSRecord, QTYPE, RR
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 53))
while True:
    data, peer = s.recvfrom(4096)
    q = DNSRecord.parse(data)
    r = q.reply()
    if q.q.qtype == QTYPE.A:
        r.add_answer(RR(q.q.qname, QTYPE.A, rdata=A("192.0.2.7"), ttl=5))
    s.sendto(r.pack(), peer)
"""


def test_dns_flags_on_a_user_network(nets, boxes, second_host):
    """``--dns`` on a user network, as docker does it: 127.0.0.11 stays the nameserver and
    forwards what it does not know to the given servers (here, one on another machine)."""
    import sys

    second_host.procs.append(subprocess.Popen(
        ["nsenter", f"--net={second_host.path}", sys.executable, "-c", FAKE_DNS, second_host.ip],
        start_new_session=True))
    nets.create("dnsnet")
    box = boxes("asker", mode="dnsnet", dns=[second_host.ip], dns_search=["example.test"],
                dns_options=["attempts:2"])
    assert box.att.resolv_conf == ("search example.test\nnameserver 127.0.0.11\n"
                                   "options attempts:2 ndots:0\n")
    deadline = time.monotonic() + 10
    while True:
        out = box.sh(f"{BB} nslookup outside.test 127.0.0.11").stdout
        if "192.0.2.7" in out or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert "Address: 192.0.2.7" in out, out
    plain = boxes("plain", mode="bridge", dns=["9.9.9.9"], dns_options=["timeout:2", "ndots:3"])
    assert plain.att.resolv_conf == "nameserver 9.9.9.9\noptions timeout:2 ndots:3\n"


class PortsBoth(Both):
    """Published ports: each engine gets its own host ports for ``{H0}``..``{Hn}`` (both cannot
    hold one port), and its output shows them as the placeholders again."""

    def __init__(self, cli: Any, count: int) -> None:
        super().__init__(cli)
        ports = free_ports(2 * count)
        self.hp = {True: {f"{{H{i}}}": ports[i] for i in range(count)},
                   False: {f"{{H{i}}}": ports[count + i] for i in range(count)}}

    def _with_ports(self, line: str, docker: bool) -> str:
        for key, port in self.hp[docker].items():
            line = line.replace(key, str(port))
        return line

    def docker(self, line: str) -> subprocess.CompletedProcess:
        return super().docker(self._with_ports(line, True))

    def ours(self, line: str) -> subprocess.CompletedProcess:
        return super().ours(self._with_ports(line, False))

    def normalise(self, text: str, docker: bool) -> str:
        import re

        for key, port in self.hp[docker].items():
            text = re.sub(rf"\b{port}\b", key, text)
        return super().normalise(text, docker)


def test_published_ports_on_both_families(cli, busybox, docker_busybox, root, tmp_path):
    """``-p`` as dockerd 20.10 publishes it: on 0.0.0.0 and [::] unless a host IP is given; the
    same ``ps``, ``port`` (every form), ``inspect``, API answers and refusals; and an HTTP
    request to ``[::1]:PORT`` reaches busybox httpd in the container, in both engines."""
    import socket

    from dockyard.network.ports import ipv6_available

    if not ipv6_available():
        pytest.skip("the host has no IPv6")
    tag_busybox_in_both(cli, docker_busybox, TAG)
    both = PortsBoth(cli, 6)
    held = []
    try:
        both.setup("run -d --name {P}_p1 -p {H0}:80 -p {H1}:81/udp -p 127.0.0.1:{H2}:82 "
                   "-p [::1]:{H3}:83 -p {H5}:{H5} {IMG} sh -c 'mkdir /www && echo hello > "
                   "/www/index.html && exec httpd -f -p 80 -h /www'")
        for docker in (True, False):  # another program holds [::]:{H4} (IPv6 only)
            s = socket.socket(socket.AF_INET6)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind(("::", both.hp[docker]["{H4}"]))
            s.listen()
            held.append(s)
        both.same(
            "ps --filter name={P}_p1 --format '{{.Ports}}'",
            "port {P}_p1", "port {P}_p1 80", "port {P}_p1 80/tcp", "port {P}_p1 81/udp",
            "port {P}_p1 82", "port {P}_p1 83/tcp", "port {P}_p1 81", "port {P}_p1 99",
            "inspect -f '{{json .NetworkSettings.Ports}} {{json .HostConfig.PortBindings}}' {P}_p1",
            # refused: a port a container has (each family), a port another program has
            "run --name {P}_p2 -p {H0}:80 {IMG} true",
            "run --name {P}_p3 -p [::1]:{H3}:80 {IMG} true",
            "run --name {P}_p4 -p {H4}:80 {IMG} true",
        )
        for docker in (True, False):
            port = both.hp[docker]["{H0}"]
            for url in (f"http://[::1]:{port}/", f"http://127.0.0.1:{port}/"):
                got = ""
                for _ in range(50):
                    got = subprocess.run(["curl", "-s", "-m", "3", url], capture_output=True,
                                         text=True).stdout
                    if got:
                        break
                    time.sleep(0.1)
                assert got == "hello\n", (docker, url)
        _api_ports_match(both, root, tmp_path)
        both.check()
    finally:
        for s in held:
            s.close()
        containers = [f"{P}_p{i}" for i in range(1, 5)]
        subprocess.run(["docker", "rm", "-f", *containers], capture_output=True)
        subprocess.run(["docker", "rmi", f"{TAG}:latest"], capture_output=True)
        cli("rm", "-f", *containers)


def _api_ports_match(both: PortsBoth, root: Any, tmp_path: Any) -> None:
    """``GET /containers/json`` Ports and ``/containers/{id}/json`` NetworkSettings.Ports."""
    import urllib.parse

    from tests.api.helpers import ApiService, UnixHTTPConnection

    def docker_get(path: str) -> Any:
        conn = UnixHTTPConnection("/var/run/docker.sock")
        try:
            conn.request("GET", path)
            return json.loads(conn.getresponse().read())
        finally:
            conn.close()

    svc = ApiService(root, tmp_path / "api.sock", tmp_path / "api.log")
    svc.start()
    try:
        name = f"{P}_p1"
        query = "/containers/json?filters=" + urllib.parse.quote(json.dumps({"name": [name]}))
        # (dockerd lists a container's ports in its map's order, which is arbitrary: sorted)
        for path, pick in ((query, lambda d: sorted(d[0]["Ports"], key=lambda p: json.dumps(p))),
                           (f"/containers/{name}/json", lambda d: d["NetworkSettings"]["Ports"])):
            theirs = both.normalise(json.dumps(pick(docker_get(path)), sort_keys=True), True)
            _, _, body = svc.request("GET", path)
            mine = both.normalise(json.dumps(pick(json.loads(body)), sort_keys=True), False)
            if theirs != mine:
                both.diffs.append(f"GET {path}\n  docker:   {theirs}\n  dockyard: {mine}")
    finally:
        svc.stop()


def test_conflicting_network_options_are_refused_as_docker(both):
    """dockerd's create-time refusals (``runconfig.validateNetMode``), the docker CLI's alias
    check, the host-mode ports warning, and ``--ip`` on a network without a user subnet."""
    both.setup("run -d --name {P}_c1 {IMG} sleep 300")
    both.setup("network create {P}_a")
    shared = "create --name {P}_c2 --network container:{P}_c1"
    both.same(
        *[f"{shared} {flags} {{IMG}} true" for flags in (
            "-p 80:80", "-P", "--dns 9.9.9.9", "--add-host a:1.2.3.4", "-h foo", "--expose 80",
            "--network-alias x")],
        "create --name {P}_c2 --network container: {IMG} true",
        "create --name {P}_c2 --uts host -h foo {IMG} true",
        "create --name {P}_c2 --network-alias x {IMG} true",
        "create --name {P}_c2 --network bridge --network-alias x {IMG} true",
        "create --name {P}_c2 --network host --network-alias x {IMG} true",
        "create --name {P}_c2 --network none --network-alias x {IMG} true",
        # accepted: ports with host (a warning) or none networking; --dns-search when shared
        "run --rm --network host -p 80:80 {IMG} echo host",
        "run --rm --network none -p 80:80 {IMG} echo none",
        "run --rm --network container:{P}_c1 --dns-search example.com {IMG} echo shared",
        "run --name {P}_c2 --network {P}_a --ip 10.99.0.9 {IMG} true",
        "rm {P}_c2",
    )
    both.check()


def test_the_none_network_lists_and_lets_go_of_its_containers(both):
    """``none`` as dockerd keeps it: running containers are its members; ``disconnect none``
    takes one off, after which it may join a network (its namespace gets the interface)."""
    both.setup("network create --subnet {S0}.0/24 {P}_a")
    both.setup("run -d --name {P}_c3 --network none {IMG} sleep 300")
    both.setup("create --name {P}_c2 --network none {IMG} true")
    members = ("network inspect none -f '{{range .Containers}}{{if eq .Name \"{P}_c3\" \"{P}_c2\"}}"
               "{{.Name}} [{{.IPv4Address}}] {{end}}{{end}}'")
    both.same(
        members, "network connect {P}_a {P}_c3", "network connect {P}_a {P}_c2",
        "network disconnect none {P}_c3", members,
        "inspect -f '{{json .NetworkSettings.Networks}} {{.HostConfig.NetworkMode}}' {P}_c3",
        "network disconnect none {P}_c3",
        "network connect {P}_a {P}_c3",
        "exec {P}_c3 sh -c 'ip -4 -o addr show eth0 | cut -d\" \" -f2,7'",
        "inspect -f '{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{$v.IPAddress}} "
        "{{json $v.IPAMConfig}}{{end}}' {P}_c3",
        "network inspect -f '{{range .Containers}}{{.Name}} {{.IPv4Address}}{{end}}' {P}_a",
        "stop -t 0 {P}_c3", members,
    )
    both.check()


def test_legacy_links_on_the_default_bridge(both):
    """``--link child[:alias]``: docker's /etc/hosts line and variables, the stored form, and
    its refusals (missing or stopped child, bad format, shared or host networking)."""
    both.setup("run -d --name {P}_c1 --expose 80 --expose 53/udp -e FOO=bar {IMG} sleep 300")
    both.setup("create --name {P}_c3 {IMG} true")
    both.same(
        "run --rm --name {P}_c2 --add-host foo:1.2.3.4 --link {P}_c1:web --link {P}_c1 {IMG} sh -c "
        "'tail -3 /etc/hosts | cut -f2; env | grep -iE \"^(WEB|{P}_C1)\" | sort | "
        "sed -E \"s/[0-9]+[.][0-9]+[.][0-9]+[.][0-9]+/IP/\"'",
        "create --name {P}_c2 --link {P}_c1:db {IMG} true",
        "inspect -f '{{json .HostConfig.Links}}' {P}_c2", "rm {P}_c2",
        "run --rm --link nosuch {IMG} true", "run --rm --link {P}_c1:db:x {IMG} true",
        "run --name {P}_c2 --link {P}_c3:x {IMG} true", "rm {P}_c2",
        "create --name {P}_c2 --network container:{P}_c1 --link {P}_c1 {IMG} true",
        "create --name {P}_c2 --network host --link {P}_c1 {IMG} true",
    )
    both.check()


def test_network_create_with_unusual_options(both):
    """``network create`` beyond the basics, as dockerd 20.10 answers: aux addresses (reserved,
    never handed out), IPAM driver and options, scopes, ingress, overlay, configuration networks
    (``--config-only`` / ``--config-from``), a gateway that is the network or broadcast address."""
    both.same(
        "network create --subnet {S0}.0/24 --aux-address host1={S0}.2 --aux-address h2={S0}.9 "
        "--ipam-opt foo=bar --ipam-driver default {P}_a",
        "network inspect -f '{{json .IPAM}}' {P}_a",
        # templates run on docker's typed network.Inspect, then on the raw JSON
        "network inspect -f '{{.IPAM}} {{.IPAM.Config}} {{.ID}} {{.Id}} {{.Peers}} {{.Services}} "
        "{{.ConfigFrom}} {{.EnableIPv4}} {{.Containers}}' {P}_a",
        "run --rm --network {P}_a {IMG} sh -c 'ip -4 -o addr show eth0 | cut -d\" \" -f7'",
        "run --rm --network {P}_a --ip {S0}.9 {IMG} true",
        "network create --aux-address host1={S1}.5 {P}_x",
        "network create --subnet {S1}.0/24 --aux-address host1={S2}.5 {P}_x",
        "network create --subnet {S1}.0/24 --aux-address bad {P}_x",
        "network create --subnet {S1}.0/24 --gateway {S1}.0 {P}_x",
        "network create --subnet {S1}.0/24 --gateway {S1}.255 {P}_x",
        "network create --subnet {S1}.0/24 --gateway {S1}.5 --aux-address a={S1}.5 {P}_x",
        "network create --subnet {S1}.0/24 --aux-address a={S1}.255 {P}_x",
        "network create --scope global {P}_x", "network create --scope swarm {P}_x",
        "network create --scope bogus {P}_x", "network create --ingress {P}_x",
        "network create -d overlay {P}_x", "network create --ipam-driver foo {P}_x",
        "network create --config-only --internal {P}_x",
        "network create --config-only --subnet {S3}.0/24 --gateway {S3}.254 "
        "-o com.docker.network.driver.mtu=1400 --label x=y {P}_co",
        "network create --config-from {P}_co {P}_cf",
        "network create --config-from {P}_co {P}_x",
        "network create --config-from nosuch {P}_x",
        "network create --config-from {P}_co -o a=b {P}_x",
        "network create --config-from {P}_co --label a=b {P}_x",
        "network create --config-only --config-from {P}_co {P}_x",
        "network create --config-from {P}_cf {P}_x",
        "network inspect -f '{{json .IPAM}} {{json .Options}} {{json .Labels}} {{json .ConfigFrom}} "
        "{{.ConfigOnly}} {{.Driver}} {{.Scope}}' {P}_cf {P}_co",
        "network ls --filter name={P}_co --format '{{.Name}} {{.Driver}} {{.Scope}}'",
        "run --rm --network {P}_co {IMG} true",
        "run --rm --network {P}_cf {IMG} sh -c 'ip -4 -o addr show eth0 | cut -d\" \" -f7'",
        "network rm {P}_co", "network rm {P}_cf {P}_co",
    )
    both.check()


def test_inspect_created_is_a_go_time(both):
    import re

    both.setup("network create --subnet {S1}.0/24 {P}_x")
    for out in both.setup("network inspect -f '{{.Created}}|{{json .Created}}' {P}_x"):
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)? \+0000 UTC\|"
                            r'"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z"\n', out), out


def test_dual_stack_networks(both):
    """``--ipv6`` with an IPv6 subnet, as dockerd 20.10: IPAM, the container's addresses,
    routes and /etc/hosts, its inspect entries, ``network connect`` of a running container."""
    both.same(
        "network create --ipv6 --subnet {S0}.0/24 --subnet {V0}:/64 {P}_a",
        "network create --ipv6 --subnet {S1}.0/24 --subnet {V1}:/64 --gateway {V1}:99 {P}_b",
        "network create --ipv6 --subnet {S2}.0/24 {P}_x",
        "network create --subnet {S2}.0/24 --subnet {S3}.0/24 {P}_x",
        "network create --ipv6 --subnet {S2}.0/24 --subnet {V0}:/64 {P}_x",
        "network create --subnet {S2}.0/24 --subnet {V0}:/80 --subnet {V1}:/80 {P}_x",
        # (with several IPv6 pools docker's CLI sends them in its map's order: not compared)
        "network inspect -f '{{json .IPAM}} {{.EnableIPv6}}' {P}_a {P}_b",
        "run --rm --network {P}_a {IMG} sh -c 'ip -6 addr show eth0 | grep global; "
        "ip -6 route | grep -v fe80; tail -2 /etc/hosts | cut -f1'",
    )
    both.setup("run -d --name {P}_c1 --network {P}_a {IMG} sleep 300")
    both.setup("run -d --name {P}_c2 {IMG} sleep 300")
    both.same(
        "inspect -f '{{range .NetworkSettings.Networks}}{{.IPv6Gateway}} {{.GlobalIPv6Address}}/"
        "{{.GlobalIPv6PrefixLen}}{{end}}' {P}_c1",
        "network inspect -f '{{range .Containers}}{{.IPv6Address}}{{end}}' {P}_a",
        "run --rm --network {P}_a {IMG} sh -c 'nslookup -type=a {P}_c1 | grep -A1 ^Name; "
        "nslookup -type=aaaa {P}_c1 | grep -A1 ^Name'",
        "run --rm --network {P}_a {IMG} sh -c 'ping -6 -c1 -W3 {V0}:2 | grep received'",
        "network connect {P}_b {P}_c2",
        "exec {P}_c2 sh -c 'ip -6 addr show eth1 | grep global; ip -6 route | grep default'",
    )
    both.check()


def _default_interface() -> str | None:
    out = subprocess.run(["ip", "-o", "route", "show", "default"], capture_output=True,
                         text=True).stdout.split()
    return out[out.index("dev") + 1] if "dev" in out else None


def test_macvlan_networks(both):
    """``-d macvlan``: the network, the container's interface, address, route and resolver, and
    dockerd's refusals (a parent that does not exist, one already used, no parent where the
    kernel cannot make dockerd's dummy one). The containers run one at a time: two engines'
    containers with the same address would have the same MAC on one parent."""
    parent = _default_interface()
    if parent is None:
        pytest.skip("no default route: no parent interface for macvlan")
    both.subs["{PARENT}"] = parent
    both.same(
        "network create -d macvlan -o parent={PARENT} --subnet {S0}.0/24 {P}_a",
        "network inspect -f '{{json .IPAM}} {{json .Options}} {{.Driver}} {{.Scope}}' {P}_a",
        "network ls --filter name={P}_a --format '{{.Name}} {{.Driver}}'",
        "run --rm --network {P}_a {IMG} sh -c 'ip -4 addr show eth0 | grep inet; ip route; "
        "cat /etc/resolv.conf; ip link show eth0 | grep -o \"mtu [0-9]*\"'",
        "run --rm --network {P}_a -p 8080:80 {IMG} true",
        "network create -d macvlan -o parent=nosuch {P}_x",
        "network create -d macvlan -o parent={PARENT} {P}_x",
        "network create -d macvlan {P}_x",
        "network rm {P}_a",
    )
    both.check()


def test_connect_disconnect_prune_edge_cases(both):
    """``network connect``'s other flags and address refusals, ``disconnect -f`` (still an error
    when not connected), and ``network prune``'s filters (``until``, ``label!``; others refused)."""
    both.setup("network create --subnet {S0}.0/24 --label {P}=1 {P}_a")
    both.setup("network create --label {P}=2 {P}_b")
    both.setup("run -d --name {P}_c1 {IMG} sleep 300")
    both.same(
        "network connect --ip {S0}.300 {P}_a {P}_c1", "network connect --ip {S0}.0 {P}_a {P}_c1",
        "network connect --ip {S0}.255 {P}_a {P}_c1", "network connect --ip6 fd00::5 {P}_a {P}_c1",
        "network connect --ip 10.9.9.9 {P}_b {P}_c1",
        "network connect --driver-opt a=b --ip {S0}.7 {P}_a {P}_c1",
        "network disconnect {P}_a {P}_c1",
        "network connect --link {P}_c1:x {P}_a {P}_c1", "network disconnect {P}_a {P}_c1",
        "network disconnect -f {P}_b {P}_c1", "network disconnect -f nosuch {P}_c1",
        "network prune -f --filter until=bogus", "network prune -f --filter name=x",
        "network prune -f --filter until=1h --filter label={P}=1",
        "network prune -f --filter label!={P}=1 --filter label={P}",
    )
    both.check()
