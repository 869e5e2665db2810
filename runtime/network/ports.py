"""Published ports: parse -p/--expose values, and hold host ports with sockets.

A published port is reached through a DNAT rule (see nat.py), so no packet
ever arrives at pyrun's socket. The socket only reserves the port: while it is
bound, no other program can bind the same address and port, and a port that
is already taken fails here, before the container starts.

The sockets are bound by the process that calls `network.attach` and must
stay open for the container's life. That process is short-lived, so it hands
them to the long-lived one (the per-container monitor):

* across fork or exec, by inheriting them (`subprocess`'s `pass_fds`);
* to a process that is already running, with `send_held_sockets`, which sends
  them over a Unix socket as SCM_RIGHTS (unix(7)); the receiver takes them
  with `socket.recv_fds(channel, 65536, MAX_HELD_SOCKETS)`.

When the last copy of a socket closes (the monitor exits, or is killed),
the kernel frees the port.
"""

from __future__ import annotations

import errno

# socket and ipaddress are imported by the functions that use them: every
# `run` builds its network plan with this module, and importing the two
# costs about 20 ms (python -X importtime, Python 3.11), needed only when a
# port is published.
from runtime import jsonio
from runtime.errors import PyrunError, UsageError
from runtime.log import get_logger
from runtime.records import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket

log = get_logger(__name__)

PROTOCOLS = ("tcp", "udp")

# SCM_RIGHTS carries at most 253 descriptors per message (SCM_MAX_FD in
# include/net/scm.h).
MAX_HELD_SOCKETS = 253


@record(frozen=True)
class PortMapping:
    """One published port: host address and port to container port.

    `host_port` 0 means "any free port", chosen by the kernel when the port
    is held.
    """

    container_port: int
    protocol: str = "tcp"
    host_ip: str = "0.0.0.0"
    host_port: int = 0

    @property
    def key(self) -> str:
        """The Docker key of the container port, e.g. ``80/tcp``."""
        return f"{self.container_port}/{self.protocol}"

    def to_dict(self) -> dict:
        return {
            "container_port": self.container_port,
            "protocol": self.protocol,
            "host_ip": self.host_ip,
            "host_port": self.host_port,
        }

    @classmethod
    def from_dict(cls, data: dict) -> PortMapping:
        return cls(data["container_port"], data["protocol"], data["host_ip"], data["host_port"])


def parse_port_number(text: str, flag: str, value: str) -> int:
    """Parse one port number (1 to 65535) from a flag's value."""
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise UsageError(f"invalid port {text!r} in {flag} {value!r}: expected a number from 1 to 65535")
    return int(text)


def parse_port_range(text: str, flag: str, value: str) -> list[int]:
    """Parse ``80`` or ``8000-8010`` into the list of ports it names."""
    first, _, last = text.partition("-")
    start = parse_port_number(first, flag, value)
    end = parse_port_number(last, flag, value) if last else start
    if end < start:
        raise UsageError(f"invalid port range {text!r} in {flag} {value!r}: the end is below the start")
    return list(range(start, end + 1))


def split_protocol(text: str, flag: str, value: str) -> tuple[str, str]:
    """Split ``80/udp`` into ``("80", "udp")``; the protocol defaults to tcp."""
    ports, _, protocol = text.partition("/")
    protocol = protocol.lower() or "tcp"
    if protocol not in PROTOCOLS:
        raise UsageError(f"invalid protocol {protocol!r} in {flag} {value!r}: use tcp or udp")
    return ports, protocol


def parse_publish(value: str) -> list[PortMapping]:
    """Parse one -p value: ``[ip:][hostPort:]containerPort[/tcp|/udp]``.

    Ranges work as in Docker: ``8000-8001:80-81`` maps the ports in order,
    and a bare range of container ports gets one free host port each.
    """
    flag = "-p"
    ports, protocol = split_protocol(value, flag, value)
    fields = ports.split(":")
    if len(fields) > 3:
        raise UsageError(
            f"invalid {flag} {value!r}: expected [ip:][hostPort:]containerPort[/tcp|/udp] "
            "(IPv6 host addresses are not supported)"
        )
    host_ip, host_ports_text = "0.0.0.0", ""
    if len(fields) == 3:
        host_ip, host_ports_text, container_text = fields
        host_ip = host_ip or "0.0.0.0"
        import ipaddress

        try:
            ipaddress.IPv4Address(host_ip)
        except ValueError:
            raise UsageError(f"invalid host address {host_ip!r} in {flag} {value!r}: expected an IPv4 address") from None
    elif len(fields) == 2:
        host_ports_text, container_text = fields
    else:
        container_text = fields[0]

    container_ports = parse_port_range(container_text, flag, value)
    if not host_ports_text:
        return [PortMapping(port, protocol, host_ip, 0) for port in container_ports]
    host_ports = parse_port_range(host_ports_text, flag, value)
    if len(host_ports) != len(container_ports):
        raise UsageError(
            f"invalid {flag} {value!r}: the host range has {len(host_ports)} ports "
            f"but the container range has {len(container_ports)}"
        )
    return [
        PortMapping(container, protocol, host_ip, host)
        for host, container in zip(host_ports, container_ports)
    ]


def parse_expose(value: str) -> list[str]:
    """Parse one --expose value (``80``, ``80/udp``, ``7000-7002``) into port keys."""
    ports, protocol = split_protocol(value, "--expose", value)
    return [f"{port}/{protocol}" for port in parse_port_range(ports, "--expose", value)]


def mapping_from_key(key: str) -> PortMapping:
    """Build a mapping to a free host port from a key such as ``80/tcp``."""
    port, _, protocol = key.partition("/")
    return PortMapping(int(port), protocol or "tcp")


# -- Holding host ports ---------------------------------------------------------

# Sockets held by this process, per container ID, until handed over or closed.
_held: dict[str, list[socket.socket]] = {}


def hold_ports(container_id: str, mappings: list[PortMapping]) -> list[PortMapping]:
    """Bind one socket per mapping and return the mappings with real host ports.

    Raises PyrunError naming the port when it is already in use; the sockets
    bound so far are closed, so nothing is held after a failure.
    """
    sockets: list[socket.socket] = []
    bound: list[PortMapping] = []
    try:
        for mapping in mappings:
            held = bind_port(mapping)
            sockets.append(held)
            port = held.getsockname()[1]
            bound.append(PortMapping(mapping.container_port, mapping.protocol, mapping.host_ip, port))
    except BaseException:
        for held in sockets:
            held.close()
        raise
    _held.setdefault(container_id, []).extend(sockets)
    return bound


def bind_port(mapping: PortMapping) -> socket.socket:
    """Bind a socket to the mapping's host address and port (0 picks a free one).

    SO_REUSEADDR stays off, so no other socket can share the port while this
    one is bound. A TCP socket is not put in the listening state because the
    DNAT rule sends every connection to the container, and a connection that
    reaches the host unexpectedly is refused at once rather than left waiting.
    """
    import socket

    kind = socket.SOCK_STREAM if mapping.protocol == "tcp" else socket.SOCK_DGRAM
    held = socket.socket(socket.AF_INET, kind)
    try:
        held.bind((mapping.host_ip, mapping.host_port))
    except OSError as err:
        held.close()
        where = f"{mapping.host_ip}:{mapping.host_port}/{mapping.protocol}"
        if err.errno == errno.EADDRINUSE:
            raise PyrunError(
                f"cannot publish {mapping.key} on {where}: the host port is already in use",
                hint="choose another host port with -p, or stop the program that uses it",
            ) from err
        if err.errno == errno.EADDRNOTAVAIL:
            raise PyrunError(
                f"cannot publish {mapping.key} on {where}: {mapping.host_ip} is not an address of this host",
                hint="use one of the host's addresses in -p, or leave the address out",
            ) from err
        raise PyrunError(f"cannot publish {mapping.key} on {where}: bind failed") from err
    log.debug("holding host port %s:%d/%s", mapping.host_ip, held.getsockname()[1], mapping.protocol)
    return held


def held_sockets(container_id: str) -> list[socket.socket]:
    """Return the sockets this process holds for a container's published ports."""
    return list(_held.get(container_id, []))


def release_sockets(container_id: str) -> None:
    """Close this process's copies of a container's port sockets.

    Call it once another process has them (or on failure); the ports stay
    held as long as any copy is open.
    """
    for held in _held.pop(container_id, []):
        held.close()


def send_held_sockets(channel: socket.socket, container_id: str) -> int:
    """Send a container's port sockets over a Unix socket (SCM_RIGHTS).

    The message is a JSON list of ``"ip:port/protocol"`` strings, one per
    descriptor, in the same order. Returns the number of sockets sent.
    """
    import socket

    sockets = _held.get(container_id, [])
    if len(sockets) > MAX_HELD_SOCKETS:
        raise PyrunError(
            f"cannot hand over {len(sockets)} port sockets: the maximum is {MAX_HELD_SOCKETS}",
            hint="publish fewer ports",
        )
    names = [describe_socket(held) for held in sockets]
    socket.send_fds(channel, [jsonio.dumps(names).encode()], [held.fileno() for held in sockets])
    return len(sockets)


def describe_socket(held: socket.socket) -> str:
    import socket

    ip, port = held.getsockname()
    protocol = "tcp" if held.type == socket.SOCK_STREAM else "udp"
    return f"{ip}:{port}/{protocol}"


def docker_ports(mappings: list[PortMapping], exposed: list[str]) -> dict:
    """Build Docker's NetworkSettings.Ports: published keys list their bindings,
    exposed but unpublished keys map to None."""
    ports: dict = {key: None for key in exposed}
    for mapping in mappings:
        binding = {"HostIp": mapping.host_ip, "HostPort": str(mapping.host_port)}
        if ports.get(mapping.key) is None:
            ports[mapping.key] = []
        ports[mapping.key].append(binding)
    return ports


def format_ports(ports: dict | None) -> str:
    """Format NetworkSettings.Ports for `ps`: ``0.0.0.0:49153->80/tcp, 443/tcp``."""
    if not ports:
        return ""
    parts = []
    for key in sorted(ports, key=port_sort_key):
        bindings = ports[key]
        if not bindings:
            parts.append(key)
            continue
        for binding in bindings:
            parts.append(f"{binding['HostIp']}:{binding['HostPort']}->{key}")
    return ", ".join(parts)


def port_sort_key(key: str) -> tuple[int, str]:
    port, _, protocol = key.partition("/")
    return (int(port) if port.isdigit() else 0, protocol)
