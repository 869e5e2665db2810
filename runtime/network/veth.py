"""The veth pair that plugs one container into the bridge.

A veth pair is two links joined back to back: what enters one leaves the
other. pyrun creates both ends on the host, plugs the host end into the
bridge, moves the other end into the container's network namespace and
renames it `eth0` there. Deleting either end deletes both, and the kernel
deletes the pair by itself when the container's namespace goes away.
"""

from __future__ import annotations

import errno
import ipaddress
import os

from runtime.network.netlink import link_index, open_in_netns, request
from runtime.log import get_logger

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

log = get_logger(__name__)

CONTAINER_IFNAME = "eth0"


def host_ifname(container_id: str) -> str:
    """Name the host end after the container: ``veth`` and 11 ID digits (15 bytes,
    the kernel's IFNAMSIZ limit minus the terminating NUL)."""
    return "veth" + container_id[:11]


def peer_ifname(container_id: str) -> str:
    """Name the container end while it is still on the host; `eth0` could clash there."""
    return "vpeer" + container_id[:10]


def mac_address(address: ipaddress.IPv4Address) -> str:
    """Derive a locally administered MAC from the address, as Docker does: 02:42:<IPv4>."""
    return "02:42:" + ":".join(f"{byte:02x}" for byte in address.packed)


def create_pair(iproute: Any, container_id: str, netns_path: str, bridge_index: int, mtu: int) -> None:
    """Create the pair, plug the host end into the bridge, and move the peer into the netns."""
    host = host_ifname(container_id)
    peer = peer_ifname(container_id)

    request("RTM_NEWLINK", lambda: iproute.link("add", ifname=host, kind="veth", mtu=mtu,
                                                 peer={"ifname": peer, "mtu": mtu}),
            ifname=host, kind="veth", peer=peer, mtu=mtu)
    host_index = link_index(iproute, host)
    peer_index = link_index(iproute, peer)

    request("RTM_NEWLINK", lambda: iproute.link("set", index=host_index, master=bridge_index, state="up"),
            ifname=host, master="pyrun0", state="up")

    # Hairpin mode lets the bridge send a frame back out of the port it came
    # in on. A container that reaches its own published port through a host
    # address needs it when br_netfilter is loaded: the DNAT then happens as
    # the frame is bridged, and the bridge must return the frame to its source.
    request("RTM_NEWLINK", lambda: iproute.brport("set", index=host_index, mode=1),
            ifname=host, kind="bridge_slave", hairpin_mode=1)

    netns_fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        request("RTM_NEWLINK", lambda: iproute.link("set", index=peer_index, net_ns_fd=netns_fd),
                ifname=peer, net_ns_fd=netns_path)
    finally:
        os.close(netns_fd)


def configure_container_end(
    container_id: str,
    netns_path: str,
    address: ipaddress.IPv4Address,
    subnet: ipaddress.IPv4Network,
    gateway: ipaddress.IPv4Address,
) -> None:
    """Inside the container's namespace: rename the peer to eth0, give it its
    address and MAC, bring it and lo up, and route everything via the bridge."""
    peer = peer_ifname(container_id)
    with open_in_netns(netns_path) as inner:
        index = link_index(inner, peer)
        mac = mac_address(address)

        request("RTM_NEWLINK", lambda: inner.link("set", index=index, ifname=CONTAINER_IFNAME, address=mac),
                ifname=peer, new_ifname=CONTAINER_IFNAME, address=mac)

        request("RTM_NEWADDR", lambda: inner.addr("add", index=index, address=str(address),
                                                  prefixlen=subnet.prefixlen,
                                                  broadcast=str(subnet.broadcast_address)),
                ifname=CONTAINER_IFNAME, address=f"{address}/{subnet.prefixlen}")

        request("RTM_NEWLINK", lambda: inner.link("set", index=index, state="up"),
                ifname=CONTAINER_IFNAME, state="up")

        bring_up_loopback(inner)

        request("RTM_NEWROUTE", lambda: inner.route("add", dst="0.0.0.0/0", gateway=str(gateway), oif=index),
                dst="default", gateway=str(gateway), ifname=CONTAINER_IFNAME)
    log.debug("container %s has %s/%d on %s", container_id[:12], address, subnet.prefixlen, CONTAINER_IFNAME)


def bring_up_loopback(iproute: Any) -> None:
    """Bring `lo` up: a new network namespace starts with it down."""
    index = link_index(iproute, "lo")
    request("RTM_NEWLINK", lambda: iproute.link("set", index=index, state="up"), ifname="lo", state="up")


def delete_pair(iproute: Any, container_id: str) -> bool:
    """Delete the host end (the kernel deletes the peer with it); False when gone."""
    host = host_ifname(container_id)
    index = link_index(iproute, host)
    if index is None:
        return False
    try:
        request("RTM_DELLINK", lambda: iproute.link("del", index=index), ifname=host)
    except OSError as err:
        # The kernel deletes the pair itself once the container's network
        # namespace is gone, which may happen between the lookup and here.
        if err.errno == errno.ENODEV:
            return False
        raise
    return True
