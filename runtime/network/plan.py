"""The network flags of `run`/`create`, and the plan built from them.

The plan is a JSON-able dict kept in the container record, so `start` can
attach a stopped container again without the command line:

    {"mode": "bridge" | "none" | "host" | "container",
     "container": NAME,            # mode "container" only
     "ports": [PortMapping.to_dict(), ...],
     "exposed": ["80/tcp", ...],   # the image's ExposedPorts and --expose
     "ip": "172.17.0.9" | None,
     "dns": [...], "dns_search": [...], "dns_options": [...],
     "extra_hosts": [["name", "address"], ...]}

Mode "host" means no new network namespace; "container" means joining the
network namespace of the container named in "container". The runtime
creates (bridge, none) or joins (container) the namespace; `attach` fills it.
"""

from __future__ import annotations

# ipaddress (about 9 ms to import) is imported by the checks of --ip, --dns
# and --add-host, and runtime.network.ports only when there are ports to plan.
from runtime.errors import UsageError
from runtime.log import get_logger

TYPE_CHECKING = False
if TYPE_CHECKING:
    from runtime.cli.parser import CommandParser, Namespace
    from runtime.network.ports import PortMapping

log = get_logger(__name__)

MODES = ("bridge", "none", "host", "container")


def add_network_flags(parser: CommandParser) -> None:
    """Add Docker's network flags to a `run` or `create` parser."""
    group = parser.add_argument_group("network")
    group.add_argument(
        "--network", "--net", dest="network", default="bridge", metavar="NETWORK",
        help="bridge (default: pyrun0 with NAT), none (loopback only), host "
        "(the host's network), or container:NAME (share that container's network)",
    )
    group.add_argument(
        "-p", "--publish", dest="publish", action="append", default=[], metavar="[IP:][HOSTPORT:]PORT[/PROTO]",
        help="publish a container port on the host; without HOSTPORT a free port is chosen",
    )
    group.add_argument(
        "-P", "--publish-all", dest="publish_all", action="store_true",
        help="publish every exposed port to a free host port",
    )
    group.add_argument(
        "--expose", dest="expose", action="append", default=[], metavar="PORT[/PROTO]",
        help="expose a port or a range of ports (published with -P)",
    )
    group.add_argument(
        "--dns", dest="dns", action="append", default=[], metavar="ADDRESS",
        help="nameserver address written to the container's /etc/resolv.conf",
    )
    group.add_argument(
        "--dns-search", dest="dns_search", action="append", default=[], metavar="DOMAIN",
        help="search domain written to the container's /etc/resolv.conf",
    )
    group.add_argument(
        "--dns-option", dest="dns_option", action="append", default=[], metavar="OPTION",
        help="resolver option written to the container's /etc/resolv.conf (e.g. ndots:2)",
    )
    group.add_argument(
        "--add-host", dest="add_host", action="append", default=[], metavar="HOST:IP",
        help="add a line to the container's /etc/hosts; IP host-gateway means the bridge address",
    )
    group.add_argument(
        "--ip", dest="ip", default=None, metavar="ADDRESS",
        help="IPv4 address for the container on the bridge (default: the next free one)",
    )


def plan_from_args(args: Namespace, image_config: dict | None) -> dict:
    """Build the network plan from parsed flags and the image config.

    `image_config` is the image's config JSON (with a "config" object that
    may list "ExposedPorts"). Raises UsageError for invalid or conflicting
    flags.
    """
    mode, joined = parse_network(getattr(args, "network", "bridge") or "bridge")
    mappings, exposed = plan_ports(args, image_config)
    if mappings and mode in ("none", "container"):
        raise UsageError(f"conflicting options: -p/-P cannot be used with --network {args.network}")
    if mappings and mode == "host":
        log.warning("published ports are discarded with --network host: the container uses the host's ports")
        mappings = []

    dns = [check_address(value, "--dns") for value in getattr(args, "dns", []) or []]
    dns_search = list(getattr(args, "dns_search", []) or [])
    dns_options = list(getattr(args, "dns_option", []) or [])
    if mode == "container" and (dns or dns_search or dns_options):
        raise UsageError(
            f"conflicting options: --dns, --dns-search and --dns-option cannot be used with --network {args.network}"
        )

    ip = getattr(args, "ip", None)
    if ip is not None:
        import ipaddress

        try:
            ipaddress.IPv4Address(ip)
        except ValueError:
            raise UsageError(f"invalid --ip {ip!r}: expected an IPv4 address") from None
        if mode != "bridge":
            raise UsageError(f"--ip {ip} needs the bridge network, not --network {args.network}")

    return {
        "mode": mode,
        "container": joined,
        "ports": [mapping.to_dict() for mapping in mappings],
        "exposed": exposed,
        "ip": ip,
        "dns": dns,
        "dns_search": dns_search,
        "dns_options": dns_options,
        "extra_hosts": [parse_add_host(value) for value in getattr(args, "add_host", []) or []],
    }


def plan_ports(args: Namespace, image_config: dict | None) -> tuple[list[PortMapping], list[str]]:
    """Return the port mappings of -p and -P, and the exposed ports (the image's and --expose)."""
    exposed = image_exposed_ports(image_config)
    publish = getattr(args, "publish", []) or []
    expose = getattr(args, "expose", []) or []
    if not (exposed or publish or expose):
        return [], []
    from runtime.network import ports

    mappings: list[PortMapping] = []
    for value in publish:
        mappings.extend(ports.parse_publish(value))
    for value in expose:
        exposed.extend(ports.parse_expose(value))
    exposed.extend(mapping.key for mapping in mappings)
    exposed = sorted(set(exposed), key=ports.port_sort_key)

    if getattr(args, "publish_all", False):
        published = {mapping.key for mapping in mappings}
        mappings.extend(ports.mapping_from_key(key) for key in exposed if key not in published)
    return mappings, exposed


def parse_network(value: str) -> tuple[str, str | None]:
    """Split a --network value into the mode and, for container:NAME, the name."""
    if value == "default":
        value = "bridge"
    if value.startswith("container:"):
        name = value.partition(":")[2]
        if not name:
            raise UsageError("invalid --network 'container:': name the container, as in container:web")
        return "container", name
    if value not in MODES or value == "container":
        raise UsageError(
            f"unsupported --network {value!r}: use bridge, none, host or container:NAME "
            "(pyrun has no user-defined networks)"
        )
    return value, None


def image_exposed_ports(image_config: dict | None) -> list[str]:
    """Return the image's ExposedPorts keys (``80/tcp``), protocol made explicit."""
    config = (image_config or {}).get("config") or {}
    keys = []
    for key in config.get("ExposedPorts") or {}:
        port, _, protocol = key.partition("/")
        keys.append(f"{port}/{protocol or 'tcp'}")
    return keys


def parse_add_host(value: str) -> list[str]:
    """Parse ``name:address`` (Docker also accepts ``name=address``)."""
    separator = "=" if "=" in value else ":"
    name, _, address = value.partition(separator)
    if not name or not address:
        raise UsageError(f"invalid --add-host {value!r}: expected HOST:IP, as in db:10.0.0.5")
    if address != "host-gateway":
        import ipaddress

        try:
            ipaddress.ip_address(address.strip("[]"))
        except ValueError:
            raise UsageError(f"invalid --add-host {value!r}: {address!r} is not an IP address") from None
    return [name, address.strip("[]")]


def check_address(value: str, flag: str) -> str:
    import ipaddress

    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise UsageError(f"invalid {flag} {value!r}: expected an IP address") from None
    return value
