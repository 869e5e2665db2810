"""Connect a container's network namespace to the host, and disconnect it.

`attach` and `detach` are the two halves; runtime.network (the package)
describes the whole and re-exports them. The bridge, veth, address and
NAT steps live in their own modules (bridge, veth, ipam, nat), imported
by the functions that use them: pyroute2 and ipaddress cost tens of
milliseconds to import.
"""

from __future__ import annotations

import os

from runtime import jsonio
from runtime.errors import PyrunError
from runtime.log import get_logger
from runtime.network import ports

TYPE_CHECKING = False
if TYPE_CHECKING:
    from runtime.network.ipam import NetworkState

log = get_logger(__name__)

SETTINGS_FILE = "network.json"


def attach(container_id: str, pid: int, plan: dict, container_dir: str) -> dict:
    """Set up the network namespace of process `pid` as the plan requests.

    Returns the container's NetworkSettings. Raises PyrunError, with nothing
    left behind, when a host port is in use or a step fails.
    """
    mode = plan.get("mode", "bridge")
    netns_path = f"/proc/{pid}/ns/net"
    exposed = plan.get("exposed", [])
    if mode == "bridge":
        settings = attach_bridge(container_id, pid, plan, netns_path)
    else:
        if mode == "none":
            from runtime.network import netlink, veth

            with netlink.open_in_netns(netns_path) as inner:
                veth.bring_up_loopback(inner)
        settings = empty_settings(mode, ports.docker_ports([], exposed))
        if mode != "host":
            settings["SandboxKey"] = netns_path
    write_settings_file(container_dir, container_id, settings)
    return settings


def attach_bridge(container_id: str, pid: int, plan: dict, netns_path: str) -> dict:
    from runtime.network import bridge, ipam, netlink, veth

    requested = [ports.PortMapping.from_dict(item) for item in plan.get("ports", [])]
    mappings = ports.hold_ports(container_id, requested)
    try:
        with ipam.locked_state() as state, netlink.open_host() as iproute:
            try:
                address, subnet = plug_in(iproute, state, container_id, pid, plan.get("ip"), netns_path, mappings)
            except BaseException:
                undo_attach(iproute, state, container_id)
                raise
    except OSError as err:
        ports.release_sockets(container_id)
        raise PyrunError(f"connect container {container_id[:12]} to bridge {bridge.BRIDGE}") from err
    except BaseException:
        ports.release_sockets(container_id)
        raise

    log.info("container %s has address %s on %s", container_id[:12], address, bridge.BRIDGE)
    gateway = ipam.gateway_of(subnet)
    settings = empty_settings("bridge", ports.docker_ports(mappings, plan.get("exposed", [])))
    settings.update({
        "Bridge": bridge.BRIDGE,
        "SandboxKey": netns_path,
        "IPAddress": str(address),
        "IPPrefixLen": subnet.prefixlen,
        "Gateway": str(gateway),
        "MacAddress": veth.mac_address(address),
    })
    settings["Networks"]["bridge"].update({
        key: settings[key] for key in ("IPAddress", "IPPrefixLen", "Gateway", "MacAddress")
    })
    return settings


def plug_in(iproute, state: NetworkState, container_id: str, pid: int, requested_ip: str | None,
            netns_path: str, mappings: list[ports.PortMapping]) -> tuple:
    """Connect the container to the bridge; return its address and the subnet.

    The caller holds the network lock and undoes these steps on failure.
    """
    from runtime.network import bridge, ipam, nat, netlink, veth

    if container_id in state.containers:
        # A restart of a container whose last detach never ran.
        remove_from_bridge(iproute, state, container_id)

    subnet = bridge.ensure_bridge(iproute, state)
    address = state.allocate(container_id, requested_ip)
    state.containers[container_id] = {
        "ip": str(address),
        "veth": veth.host_ifname(container_id),
        "pid": pid,
        "start_time": ipam.process_start_time(pid),
        "ports": [mapping.to_dict() for mapping in mappings],
    }
    # Saved before the links exist, so a crash from here on leaves a record
    # that cleanup_dead() acts on.
    state.save()

    nat.ensure_table(subnet, bool(state.data.get("forwarding_enabled")))
    nat.allow_bridge_in_host_firewall()

    bridge_index = netlink.link_index(iproute, bridge.BRIDGE)
    mtu = bridge.host_mtu(iproute)
    veth.create_pair(iproute, container_id, netns_path, bridge_index, mtu)
    veth.configure_container_end(container_id, netns_path, address, subnet, ipam.gateway_of(subnet))

    nat.add_container_rules(container_id, address, mappings)
    return address, subnet


def empty_settings(mode: str, docker_ports: dict) -> dict:
    """Docker's NetworkSettings with no address, for any mode."""
    endpoint = {"IPAddress": "", "IPPrefixLen": 0, "Gateway": "", "MacAddress": ""}
    return {"Bridge": "", "SandboxKey": "", "Ports": docker_ports, **endpoint,
            "Networks": {mode: dict(endpoint)}}


def detach(container_id: str, settings: dict | None = None) -> None:
    """Remove a container's veth, DNAT rules and address (and with the last
    container the bridge, pyrun's table and the host firewall rules).

    Works from any process in the host's network namespace; `settings` is
    not needed and is accepted for the interface's symmetry. Doing it twice
    is harmless.
    """
    from runtime.network import ipam

    ports.release_sockets(container_id)
    if container_id not in ipam.read_state_file().get("containers", {}):
        return
    from runtime.network import netlink

    try:
        with ipam.locked_state() as state, netlink.open_host() as iproute:
            remove_from_bridge(iproute, state, container_id)
    except OSError as err:
        raise PyrunError(f"disconnect container {container_id[:12]} from the bridge") from err


def remove_from_bridge(iproute, state: NetworkState, container_id: str) -> None:
    """Undo the steps of plug_in that happened. The caller holds the lock.

    Every step runs even when an earlier one fails, so one failure leaves as
    little as possible behind. The first error is raised at the end.
    """
    from runtime.network import bridge, nat, veth

    errors: list[BaseException] = []

    def step(function, *args) -> None:
        try:
            function(*args)
        except (OSError, PyrunError) as err:
            log.warning("clean-up of container %s: %s", container_id[:12], err)
            errors.append(err)

    step(nat.delete_container_rules, container_id)
    step(veth.delete_pair, iproute, container_id)
    state.containers.pop(container_id, None)
    if not state.containers:
        step(nat.remove_host_firewall_rules)
        step(nat.delete_table)
        step(bridge.delete_bridge, iproute)
        step(bridge.restore_forwarding, state)
        state.data["subnet"] = None
    state.save()
    if errors:
        raise errors[0]


def undo_attach(iproute, state: NetworkState, container_id: str) -> None:
    """Roll back a failed attach. A clean-up error is logged, not raised, so
    the caller re-raises the error that made the attach fail."""
    try:
        remove_from_bridge(iproute, state, container_id)
    except (OSError, PyrunError) as err:
        log.warning("rolling back the network of container %s failed: %s", container_id[:12], err)


def cleanup_dead() -> list[str]:
    """Detach every container whose first process is gone; return their IDs.

    Reads the state file without the lock first, so the usual case (nothing
    dead) costs one small read and imports nothing. A container whose
    clean-up fails is logged and left for the next call.
    """
    from runtime.network import ipam

    records = ipam.read_state_file().get("containers", {})
    cleaned = []
    for container_id, record in records.items():
        if ipam.is_alive(record):
            continue
        log.info("removing the network of dead container %s", container_id[:12])
        try:
            detach(container_id)
        except PyrunError as err:
            log.warning("clean-up of dead container %s failed: %s: %s", container_id[:12], err, err.__cause__)
            continue
        cleaned.append(container_id)
    return cleaned


def write_settings_file(container_dir: str, container_id: str, settings: dict) -> None:
    from runtime.network import ipam

    path = os.path.join(container_dir, SETTINGS_FILE)
    with open(path + ".tmp", "w") as stream:
        jsonio.dump({"container_id": container_id, "state_dir": ipam.state_dir(), "settings": settings},
                    stream, indent=2)
    os.replace(path + ".tmp", path)


def read_settings_file(container_dir: str) -> dict:
    """Read `<container_dir>/network.json`: container_id, state_dir and settings."""
    with open(os.path.join(container_dir, SETTINGS_FILE)) as stream:
        return jsonio.load(stream)

