"""The contents of a container's /etc/resolv.conf and /etc/hosts.

The runtime writes the files; these functions only build the text, from the
network plan, the host's resolv.conf and the container's address.
"""

from __future__ import annotations

import _socket  # for inet_pton: ipaddress costs about 9 ms to import on every `run`

from runtime import fileio
from runtime.log import get_logger

log = get_logger(__name__)

HOST_RESOLV_CONF = "/etc/resolv.conf"
# systemd-resolved's list of the upstream servers behind its 127.0.0.53 stub.
RESOLVED_UPSTREAM = "/run/systemd/resolve/resolv.conf"
# Docker's fallback when the host lists only loopback servers, which a
# container in its own network namespace cannot reach.
FALLBACK_NAMESERVERS = ["8.8.8.8", "8.8.4.4"]
IPV6_LOOPBACK = bytes(15) + b"\x01"


def parse_resolv_conf(text: str) -> dict[str, list[str]]:
    """Split resolv.conf text into nameservers, search domains and options."""
    parsed: dict[str, list[str]] = {"nameserver": [], "search": [], "options": []}
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        keyword, values = fields[0], fields[1:]
        if keyword == "nameserver" and values:
            parsed["nameserver"].append(values[0])
        elif keyword in ("search", "domain"):
            parsed["search"] = values
        elif keyword == "options":
            parsed["options"].extend(values)
    return parsed


def read_host_resolv_conf() -> str:
    """Return the host's resolv.conf, skipping systemd-resolved's loopback stub."""
    text = read_text(HOST_RESOLV_CONF)
    servers = parse_resolv_conf(text)["nameserver"]
    if servers and all(is_loopback(server) for server in servers):
        upstream = read_text(RESOLVED_UPSTREAM)
        if parse_resolv_conf(upstream)["nameserver"]:
            return upstream
    return text


def resolv_conf_content(plan: dict, host_text: str | None = None) -> str:
    """Build the container's /etc/resolv.conf.

    --dns, --dns-search and --dns-option replace the host's values of the
    same kind. With --network host the host's file is used as it is. In a
    network namespace of its own a container cannot reach a server on the
    host's loopback, so those are dropped, and when none is left, Docker's
    public fallbacks are used.
    """
    if host_text is None:
        host_text = read_host_resolv_conf()
    host = parse_resolv_conf(host_text)
    mode = plan.get("mode", "bridge")
    nameservers = plan.get("dns") or host["nameserver"]
    if mode != "host" and not plan.get("dns"):
        nameservers = [server for server in nameservers if not is_loopback(server)]
        if not nameservers:
            log.info("the host has only loopback nameservers; the container gets %s",
                     ", ".join(FALLBACK_NAMESERVERS))
            nameservers = list(FALLBACK_NAMESERVERS)
    search = plan.get("dns_search") or host["search"]
    options = plan.get("dns_options") or host["options"]

    lines = [f"nameserver {server}" for server in nameservers]
    if search and search != ["."]:
        lines.append("search " + " ".join(search))
    if options:
        lines.append("options " + " ".join(options))
    return "\n".join(lines) + "\n"


def hosts_content(plan: dict, hostname: str, settings: dict | None = None) -> str:
    """Build the container's /etc/hosts: loopback names, its own name, --add-host.

    `settings` is what `attach` returned; its IPAddress names the container's
    address and its Gateway replaces ``host-gateway`` in --add-host values.
    """
    settings = settings or {}
    lines = [
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "fe00::0\tip6-localnet",
        "ff00::0\tip6-mcastprefix",
        "ff02::1\tip6-allnodes",
        "ff02::2\tip6-allrouters",
    ]
    for name, address in plan.get("extra_hosts", []):
        if address == "host-gateway":
            address = settings.get("Gateway") or "127.0.0.1"
        lines.append(f"{address}\t{name}")
    if settings.get("IPAddress"):
        lines.append(f"{settings['IPAddress']}\t{hostname}")
    return "\n".join(lines) + "\n"


def is_loopback(address: str) -> bool:
    """Tell whether `address` is in 127.0.0.0/8 or is ::1; False when it is no IP address.

    A zone ("fe80::1%eth0") is ignored. An IPv4-mapped address
    (::ffff:127.0.0.1) is not loopback, as for ipaddress in Python 3.11.
    """
    address = address.split("%")[0]
    try:
        if ":" in address:
            return _socket.inet_pton(_socket.AF_INET6, address) == IPV6_LOOPBACK
        return _socket.inet_pton(_socket.AF_INET, address)[0] == 127
    except (OSError, ValueError):  # ValueError: a NUL or a character outside ASCII
        return False


def read_text(path: str) -> str:
    try:
        return fileio.read_text(path)
    except OSError:
        return ""
