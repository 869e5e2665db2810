"""rtnetlink through pyroute2, with every request passed through the syscall seam.

pyroute2 is imported inside the functions: importing it costs about 150 ms,
which commands without a network should not pay.

A netlink socket belongs to the network namespace in which it was created,
whatever namespace its user is in later. `open_in_netns` uses that: it moves
the calling thread into the container's namespace with setns(2), opens the
socket, and moves the thread back, so one process can configure both sides
of a veth pair.
"""

from __future__ import annotations

import errno
import logging
import os
from contextlib import contextmanager

from runtime import syscalls

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Iterator

MANPAGE = "rtnetlink(7)"



def request(message: str, action: Callable[[], Any], **args: Any) -> Any:
    """Send one rtnetlink request through the seam, e.g. ``RTM_NEWLINK``.

    pyroute2's NetlinkError is not an OSError, so it is turned into one
    carrying the same errno, which the seam then names with the request.
    """

    def perform() -> Any:
        from pyroute2.netlink.exceptions import NetlinkError

        try:
            return action()
        except NetlinkError as err:
            raise OSError(err.code, os.strerror(err.code)) from None

    return syscalls.record(f"netlink {message}", MANPAGE, perform, **args)


def iproute_class() -> Any:
    """Import pyroute2 and return its IPRoute class."""
    from pyroute2 import IPRoute

    # pyroute2 logs every netlink message it parses at DEBUG, which would
    # drown pyrun's own debug lines. Its import sets its logger's level to 0,
    # so the level is raised after the import.
    logging.getLogger("pyroute2").setLevel(logging.INFO)
    return IPRoute


@contextmanager
def open_host() -> Iterator[Any]:
    """Open an rtnetlink socket in the caller's network namespace."""
    iproute = iproute_class()()
    try:
        yield iproute
    finally:
        iproute.close()


@contextmanager
def open_in_netns(netns_path: str) -> Iterator[Any]:
    """Open an rtnetlink socket inside the network namespace at `netns_path`."""
    IPRoute = iproute_class()
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    target = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        syscalls.setns(target, syscalls.CLONE_NEWNET, path=netns_path)
        try:
            iproute = IPRoute()
        finally:
            # Return at once: the rest of this thread's work is on the host side.
            syscalls.setns(own, syscalls.CLONE_NEWNET, path="/proc/thread-self/ns/net")
    finally:
        os.close(target)
        os.close(own)
    try:
        yield iproute
    finally:
        iproute.close()


def link_index(iproute: Any, name: str) -> int | None:
    """Return the index of the link called `name`, or None when there is none."""
    found = request("RTM_GETLINK", lambda: iproute.link_lookup(ifname=name), ifname=name)
    return found[0] if found else None


def ipv4_routes(iproute: Any) -> list[dict]:
    """Return the main table's IPv4 routes as dicts: dst (CIDR), oif, gateway."""
    messages = request("RTM_GETROUTE", lambda: iproute.get_routes(family=2, table=254), family="AF_INET") or []
    routes = []
    for message in messages:
        dst = message.get_attr("RTA_DST") or "0.0.0.0"
        routes.append({
            "dst": f"{dst}/{message['dst_len']}",
            "oif": message.get_attr("RTA_OIF"),
            "gateway": message.get_attr("RTA_GATEWAY"),
        })
    return routes


def ipv4_addresses(iproute: Any) -> list[dict]:
    """Return the IPv4 addresses of every link: address, prefixlen, index."""
    messages = request("RTM_GETADDR", lambda: iproute.get_addr(family=2), family="AF_INET") or []
    return [
        {"address": message.get_attr("IFA_ADDRESS"), "prefixlen": message["prefixlen"], "index": message["index"]}
        for message in messages
    ]


def link_mtu(iproute: Any, index: int) -> int | None:
    """Return a link's MTU, or None when the link is gone."""
    try:
        messages = request("RTM_GETLINK", lambda: iproute.get_links(index), index=index) or []
    except OSError as err:
        if err.errno == errno.ENODEV:
            return None
        raise
    for message in messages:
        return message.get_attr("IFLA_MTU")
    return None
