"""Address management: the bridge's subnet and one address per container.

pyrun has no daemon, so the allocations live in a file, `network.json`, in
the network state directory (`$PYRUN_NETWORK_DIR`, default
/run/pyrun/network/netns-<inode>: a tmpfs, cleared at boot like the bridge
itself). The default has one directory per network namespace, because the
bridge, its rules and its addresses exist in one namespace only. Every
change happens under an exclusive flock(2) on a separate `lock` file, so two
`pyrun run` commands at once cannot take the same address. The file is
replaced atomically (write, fsync, rename), so a crash leaves the old or the
new version, never half of one.

The state file records, per container, what a clean-up needs without the
container's own record: its address and its host-side veth. It also stores
the pid and start time of the container's first process, which tell a dead
container from a live one whose pid was reused.
"""

from __future__ import annotations

import errno
import fcntl
import ipaddress
import json
import os
from contextlib import contextmanager

from runtime.errors import PyrunError
from runtime.log import get_logger

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterator

log = get_logger(__name__)

DEFAULT_STATE_DIR = "/run/pyrun/network"

# Candidate subnets for the bridge, tried in order, as Docker's default
# address pools: 172.17.0.0/16 to 172.31.0.0/16, then /20 blocks of
# 192.168.0.0/16.
CANDIDATE_SUBNETS = [f"172.{second}.0.0/16" for second in range(17, 32)] + [
    f"192.168.{third}.0/20" for third in range(0, 256, 16)
]


def state_dir() -> str:
    """Return the network state directory: $PYRUN_NETWORK_DIR, or one for this namespace.

    A shared file would let containers in one network namespace keep the
    bridge and rules of another alive after its last container is gone.
    """
    configured = os.environ.get("PYRUN_NETWORK_DIR")
    if configured:
        return configured
    namespace = os.stat("/proc/self/ns/net").st_ino
    return os.path.join(DEFAULT_STATE_DIR, f"netns-{namespace}")


def choose_subnet(routes: list[str]) -> ipaddress.IPv4Network:
    """Pick the first candidate subnet that overlaps none of the host's routes.

    `routes` are CIDR strings of the host's IPv4 routes and addresses;
    default routes (prefix length 0) are ignored because they overlap
    everything. Raises PyrunError when every candidate is taken.
    """
    used_networks = [ipaddress.IPv4Network(route, strict=False) for route in routes]
    used_networks = [network for network in used_networks if network.prefixlen > 0]
    clashes = []
    for candidate in CANDIDATE_SUBNETS:
        subnet = ipaddress.IPv4Network(candidate)
        clash = next((network for network in used_networks if subnet.overlaps(network)), None)
        if clash is None:
            if clashes:
                log.warning("the bridge uses %s because %s", subnet, ", ".join(clashes))
            return subnet
        clashes.append(f"{subnet} overlaps the host's {clash}")
    raise PyrunError(
        "no free private subnet for the bridge: every candidate overlaps a host route",
        hint="remove an overlapping route, or use --network host",
    )


def gateway_of(subnet: ipaddress.IPv4Network) -> ipaddress.IPv4Address:
    """Return the bridge's own address: the first host address of the subnet."""
    return subnet.network_address + 1


class NetworkState:
    """The contents of `network.json`, read and written under the lock.

    Fields: "subnet" (CIDR string or None), "forwarding_enabled" (whether
    pyrun set net.ipv4.ip_forward to 1), "containers" (container ID to its
    record: "ip", "veth", "pid", "start_time").
    """

    def __init__(self, path: str, data: dict) -> None:
        self.path = path
        self.data = data
        self.data.setdefault("subnet", None)
        self.data.setdefault("containers", {})

    @property
    def containers(self) -> dict[str, dict]:
        return self.data["containers"]

    @property
    def subnet(self) -> ipaddress.IPv4Network | None:
        value = self.data.get("subnet")
        return ipaddress.IPv4Network(value) if value else None

    def allocate(self, container_id: str, requested: str | None = None) -> ipaddress.IPv4Address:
        """Reserve an address for a container: `requested`, or the lowest free one."""
        subnet = self.subnet
        if subnet is None:
            raise PyrunError("cannot allocate an address: the bridge has no subnet yet")
        used = {record["ip"] for cid, record in self.containers.items() if cid != container_id}
        used.add(str(gateway_of(subnet)))
        if requested is not None:
            address = ipaddress.IPv4Address(requested)
            if address not in subnet or address in (subnet.network_address, subnet.broadcast_address):
                raise PyrunError(f"--ip {requested} is outside the bridge's subnet {subnet}",
                                 hint=f"choose a host address in {subnet}")
            if str(address) in used:
                raise PyrunError(f"--ip {requested} is already in use on the bridge",
                                 hint="choose another address or leave out --ip")
            return address
        for address in subnet.hosts():
            if str(address) not in used:
                return address
        raise PyrunError(f"no free address left in the bridge's subnet {subnet}",
                         hint="remove stopped containers with `pyrun rm`")

    def save(self) -> None:
        """Write the file atomically: a temporary file, fsync, then rename(2)."""
        temporary = self.path + ".tmp"
        with open(temporary, "w") as stream:
            json.dump(self.data, stream, indent=2, sort_keys=True)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, self.path)


@contextmanager
def locked_state(directory: str | None = None) -> Iterator[NetworkState]:
    """Hold the network lock and yield the state; callers `save()` what they change."""
    directory = directory or state_dir()
    os.makedirs(directory, mode=0o700, exist_ok=True)
    lock_path = os.path.join(directory, "lock")
    lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        yield NetworkState(os.path.join(directory, "network.json"), read_state_file(directory))
    finally:
        os.close(lock_fd)


def read_state_file(directory: str | None = None) -> dict:
    """Read `network.json` without the lock (for a quick look); {} when missing."""
    path = os.path.join(directory or state_dir(), "network.json")
    try:
        with open(path) as stream:
            return json.load(stream)
    except FileNotFoundError:
        return {}
    except json.JSONDecodeError as err:
        raise PyrunError(f"invalid network state file {path}: {err}",
                         hint="remove it when no container runs; pyrun rebuilds it") from err


def process_start_time(pid: int) -> str | None:
    """Return a process's start time (field 22 of /proc/PID/stat), or None when gone.

    A pid and its start time together name one process: a reused pid has a
    later start time.
    """
    try:
        with open(f"/proc/{pid}/stat") as stream:
            stat = stream.read()
    except OSError as err:
        if err.errno in (errno.ENOENT, errno.ESRCH):
            return None
        raise
    # The command name (field 2) is in parentheses and may contain spaces.
    fields = stat.rpartition(")")[2].split()
    return fields[19]


def is_alive(record: dict) -> bool:
    """Tell whether the process a container record names still runs."""
    pid = record.get("pid")
    if not pid:
        return False
    return process_start_time(pid) == record.get("start_time")
