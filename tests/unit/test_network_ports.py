"""Port flags (-p, --expose), holding host ports, and Docker's port formats."""

import socket

import pytest

from runtime.errors import PyrunError, UsageError
from runtime.network import ports
from runtime.network.ports import PortMapping


@pytest.mark.parametrize("value, expected", [
    ("80", [PortMapping(80, "tcp", "0.0.0.0", 0)]),
    ("8080:80", [PortMapping(80, "tcp", "0.0.0.0", 8080)]),
    ("127.0.0.1:8080:80/udp", [PortMapping(80, "udp", "127.0.0.1", 8080)]),
    ("127.0.0.1::80", [PortMapping(80, "tcp", "127.0.0.1", 0)]),
    ("8000-8001:80-81", [PortMapping(80, "tcp", "0.0.0.0", 8000), PortMapping(81, "tcp", "0.0.0.0", 8001)]),
    ("53/UDP", [PortMapping(53, "udp", "0.0.0.0", 0)]),
])
def test_parse_publish_forms(value, expected):
    assert ports.parse_publish(value) == expected


@pytest.mark.parametrize("value, message", [
    ("0", "invalid port '0'"),
    ("70000", "invalid port '70000'"),
    ("80/sctp", "invalid protocol 'sctp'"),
    ("localhost:80:80", "invalid host address 'localhost'"),
    ("8000-8002:80-81", "the host range has 3 ports"),
    ("::1:80:80", "IPv6 host addresses are not supported"),
    ("90-80", "the end is below the start"),
])
def test_parse_publish_rejects(value, message):
    with pytest.raises(UsageError) as info:
        ports.parse_publish(value)
    assert message in str(info.value)


def test_parse_expose_range():
    assert ports.parse_expose("7000-7002/udp") == ["7000/udp", "7001/udp", "7002/udp"]


def test_hold_ports_picks_free_port():
    mapping = PortMapping(80, "tcp", "127.0.0.1", 0)
    bound = ports.hold_ports("c1", [mapping])
    try:
        assert bound[0].host_port > 0
        assert len(ports.held_sockets("c1")) == 1
    finally:
        ports.release_sockets("c1")
    assert ports.held_sockets("c1") == []


def test_hold_ports_in_use_raises_and_holds_nothing():
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        mappings = [PortMapping(81, "tcp", "127.0.0.1", 0), PortMapping(80, "tcp", "127.0.0.1", port)]
        with pytest.raises(PyrunError) as info:
            ports.hold_ports("c2", mappings)
    finally:
        taken.close()
    assert f"127.0.0.1:{port}/tcp" in str(info.value)
    assert "already in use" in str(info.value)
    assert ports.held_sockets("c2") == []


def test_held_port_blocks_other_programs():
    bound = ports.hold_ports("c3", [PortMapping(53, "udp", "127.0.0.1", 0)])
    try:
        other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        with pytest.raises(OSError):
            other.bind(("127.0.0.1", bound[0].host_port))
        other.close()
    finally:
        ports.release_sockets("c3")


def test_send_held_sockets_over_unix_socket():
    bound = ports.hold_ports("c4", [PortMapping(80, "tcp", "127.0.0.1", 0)])
    sender, receiver = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        assert ports.send_held_sockets(sender, "c4") == 1
        message, fds, _, _ = socket.recv_fds(receiver, 65536, ports.MAX_HELD_SOCKETS)
        received = socket.socket(fileno=fds[0])
        assert received.getsockname()[1] == bound[0].host_port
        assert f":{bound[0].host_port}/tcp" in message.decode()
        received.close()
    finally:
        ports.release_sockets("c4")
        sender.close()
        receiver.close()


def test_docker_ports_and_ps_format():
    mappings = [PortMapping(80, "tcp", "0.0.0.0", 49153)]
    docker = ports.docker_ports(mappings, ["443/tcp", "80/tcp"])
    assert docker == {"443/tcp": None, "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "49153"}]}
    assert ports.format_ports(docker) == "0.0.0.0:49153->80/tcp, 443/tcp"
    assert ports.format_ports({}) == ""


def test_hold_ports_foreign_address_fails():
    with pytest.raises(PyrunError) as info:
        ports.hold_ports("c5", [PortMapping(80, "tcp", "192.0.2.123", 8080)])
    assert "192.0.2.123 is not an address of this host" in str(info.value)
    assert ports.held_sockets("c5") == []
