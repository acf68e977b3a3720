"""``-p``/``-P`` parsing with docker's grammar and error messages (no host state involved)."""
from __future__ import annotations

import pytest

from dockyard.errors import InvalidArgument
from dockyard.network.ports import PortSpec, parse_port_spec, parse_port_specs


@pytest.mark.parametrize("raw, expected", [
    ("80", [PortSpec(80)]),
    ("8080:80", [PortSpec(80, "tcp", "", 8080)]),
    ("127.0.0.1:8080:80/udp", [PortSpec(80, "udp", "127.0.0.1", 8080)]),
    ("127.0.0.1::80", [PortSpec(80, "tcp", "127.0.0.1", 0)]),
    ("8000-8001:80-81", [PortSpec(80, "tcp", "", 8000), PortSpec(81, "tcp", "", 8001)]),
    ("8000-8010:80", [PortSpec(80, "tcp", "", 8000, 8010)]),
    ("53/UDP", [PortSpec(53, "udp")]),
])
def test_valid_specs(raw, expected):
    assert parse_port_spec(raw) == expected


@pytest.mark.parametrize("raw, message", [
    ("abc", "invalid containerPort: abc"),
    ("99999:80", "invalid hostPort: 99999"),
    ("1-3:4-5", "invalid ranges specified for container and host Ports: 4-5 and 1-3"),
    ("80/xyz", "invalid proto: xyz"),
    ("1.2.3:80:80", "invalid IP address: 1.2.3"),
    ("80:", "no port specified: 80:<empty>"),
    ("0", "invalid containerPort: 0"),
])
def test_docker_error_messages(raw, message):
    with pytest.raises(InvalidArgument) as err:
        parse_port_spec(raw)
    assert str(err.value) == message


def test_publish_all_skips_ports_already_published():
    specs = parse_port_specs(["9000:80"], publish_all=True, exposed=["80", "443/tcp"])
    assert [(s.container_port, s.host_port) for s in specs] == [(80, 9000), (443, 0)]
