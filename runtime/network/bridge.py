"""The bridge `pyrun0`: one Linux bridge that every bridge-mode container plugs into.

The bridge's own address is the containers' default gateway. pyrun creates
the bridge with the first container and deletes it with the last one, so no
link or address is left behind when no container runs.
"""

from __future__ import annotations

import ipaddress

from runtime import syscalls
from runtime.network import ipam
from runtime.network.netlink import ipv4_addresses, ipv4_routes, link_index, link_mtu, request
from runtime.log import get_logger

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

log = get_logger(__name__)

BRIDGE = "pyrun0"
DEFAULT_MTU = 1500
IP_FORWARD = "/proc/sys/net/ipv4/ip_forward"


def ensure_bridge(iproute: Any, state: ipam.NetworkState) -> ipaddress.IPv4Network:
    """Return the bridge's subnet, creating the bridge when it is missing."""
    index = link_index(iproute, BRIDGE)
    if index is not None:
        subnet = bridge_subnet(iproute, index)
        if subnet is not None:
            state.data["subnet"] = str(subnet)
            return subnet
        # A bridge without an address is a leftover of an interrupted set-up.
        delete_bridge(iproute)

    host_networks = [route["dst"] for route in ipv4_routes(iproute)]
    host_networks += [f"{entry['address']}/{entry['prefixlen']}" for entry in ipv4_addresses(iproute)]
    subnet = ipam.choose_subnet(host_networks)
    gateway = ipam.gateway_of(subnet)
    mtu = host_mtu(iproute)

    request("RTM_NEWLINK", lambda: iproute.link("add", ifname=BRIDGE, kind="bridge", mtu=mtu),
            ifname=BRIDGE, kind="bridge", mtu=mtu)
    index = link_index(iproute, BRIDGE)

    request("RTM_NEWADDR", lambda: iproute.addr("add", index=index, address=str(gateway), prefixlen=subnet.prefixlen),
            ifname=BRIDGE, address=f"{gateway}/{subnet.prefixlen}")

    request("RTM_NEWLINK", lambda: iproute.link("set", index=index, state="up"), ifname=BRIDGE, state="up")

    # The host reaches a published port through 127.0.0.1 by a DNAT in the
    # output hook, which sends a packet with source 127.0.0.1 out of the
    # bridge. The kernel treats 127.0.0.0/8 as martian when routing, so such
    # a packet is dropped (the connection times out) unless route_localnet
    # is set on the outgoing link. nat.py masquerades these packets and
    # drops packets from the bridge to 127.0.0.0/8.
    write_sysctl(f"/proc/sys/net/ipv4/conf/{BRIDGE}/route_localnet", "1")

    enable_forwarding(state)
    state.data["subnet"] = str(subnet)
    log.info("created bridge %s with address %s/%d", BRIDGE, gateway, subnet.prefixlen)
    return subnet


def bridge_subnet(iproute: Any, index: int) -> ipaddress.IPv4Network | None:
    """Return the subnet of the bridge's IPv4 address, or None when it has none."""
    for entry in ipv4_addresses(iproute):
        if entry["index"] == index:
            return ipaddress.IPv4Network(f"{entry['address']}/{entry['prefixlen']}", strict=False)
    return None


def delete_bridge(iproute: Any) -> None:
    """Delete the bridge (and with it its address); nothing when it is gone."""
    index = link_index(iproute, BRIDGE)
    if index is None:
        return
    request("RTM_DELLINK", lambda: iproute.link("del", index=index), ifname=BRIDGE)
    log.info("deleted bridge %s: no container uses it", BRIDGE)


def host_mtu(iproute: Any) -> int:
    """Return the MTU of the link that carries the default route (1500 without one)."""
    for route in ipv4_routes(iproute):
        if route["dst"] == "0.0.0.0/0" and route["oif"]:
            mtu = link_mtu(iproute, route["oif"])
            if mtu:
                return mtu
    return DEFAULT_MTU


def enable_forwarding(state: ipam.NetworkState) -> None:
    """Turn on IPv4 forwarding when it is off, and note that pyrun did it.

    While pyrun's table exists, it then drops forwarded packets that neither
    enter nor leave the bridge (see nat.table_script), so the host does not
    start routing between its other interfaces. `restore_forwarding` turns
    forwarding off again with the last container.
    """
    if read_sysctl(IP_FORWARD) == "1":
        return
    write_sysctl(IP_FORWARD, "1")
    state.data["forwarding_enabled"] = True
    log.info("enabled IPv4 forwarding (net.ipv4.ip_forward=1) so containers on %s reach the network", BRIDGE)


def restore_forwarding(state: ipam.NetworkState) -> None:
    """Turn IPv4 forwarding off again if pyrun turned it on.

    NOTE: writing ip_forward sets the forwarding flag of every interface, so
    an interface that forwarded on its own before pyrun started no longer
    does after this.
    """
    if not state.data.get("forwarding_enabled"):
        return
    write_sysctl(IP_FORWARD, "0")
    state.data["forwarding_enabled"] = False
    log.info("disabled IPv4 forwarding again: pyrun had enabled it and no container runs")


def read_sysctl(path: str) -> str | None:
    def action() -> str:
        with open(path) as stream:
            return stream.read().strip()

    return syscalls.record("read", "proc(5)", action, path=path)


def write_sysctl(path: str, value: str) -> None:
    def action() -> None:
        with open(path, "w") as stream:
            stream.write(value)

    syscalls.record("write", "proc(5)", action, path=path, value=value)
