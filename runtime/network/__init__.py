"""Container networking: bridge, veth pairs, NAT and published ports.

The runtime uses this package in four steps:

    network.add_network_flags(parser)                  # run/create flags
    plan = network.plan_from_args(args, image_config)  # JSON-able, kept in the record
    settings = network.attach(container_id, pid, plan, container_dir)
    network.detach(container_id, settings)

`plan["mode"]` selects the container's network namespace:
"bridge" and "none" need a new network namespace, "host" needs none, and
"container" means joining the namespace of the container `plan["container"]`.

`attach` runs in the host's network namespace after the container's first
process (`pid`) has its network namespace and before it runs the command.
For the bridge it holds the published host ports (an error names a port in
use before anything changes), creates the bridge and pyrun's nftables table
if needed, allocates an address, plugs a veth pair in, and adds the DNAT
rules. A failure undoes what it did. It returns Docker's NetworkSettings
(IPAddress, Gateway, MacAddress, Ports, ...), also written with the container
ID to `<container_dir>/network.json` for the clean-up helper.

Held ports: the sockets that hold the published ports belong to the process
that called `attach` (`held_sockets(container_id)`), and the ports stay held
as long as any copy is open. Hand them to the process that lives as long as
the container (inherit them, or `send_held_sockets` over a Unix socket),
then `release_sockets(container_id)` in the calling process.

Clean-up works from a fresh process and needs only the container ID:
`detach`, `python -m runtime.network.cleanup CONTAINER_DIR`, or
`cleanup_dead()`, which removes what containers whose process is gone left
behind (call it from commands that find a dead container).

pyroute2 is imported only by the functions that change links, so importing
this package costs the standard library only.
"""

from __future__ import annotations

from runtime.network.dns import hosts_content, resolv_conf_content
from runtime.network.plan import add_network_flags, plan_from_args

__all__ = [
    "add_network_flags",
    "plan_from_args",
    "attach",
    "detach",
    "cleanup_dead",
    "resolv_conf_content",
    "hosts_content",
    "format_ports",
    "held_sockets",
    "release_sockets",
    "send_held_sockets",
    "SETTINGS_FILE",
]

# The rest of the interface lives in two submodules that load on first use
# (a module __getattr__, PEP 562). `run --network none` needs only the plan
# and the dns text, so it does not pay for loading connect and ports.
_LAZY_NAMES = {
    "attach": "connect",
    "detach": "connect",
    "cleanup_dead": "connect",
    "read_settings_file": "connect",
    "SETTINGS_FILE": "connect",
    "format_ports": "ports",
    "held_sockets": "ports",
    "release_sockets": "ports",
    "send_held_sockets": "ports",
}


def __getattr__(name: str):
    submodule = _LAZY_NAMES.get(name)
    if submodule is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    # With a fromlist, __import__ returns the submodule itself, not the package.
    module = __import__(f"{__name__}.{submodule}", fromlist=[name])
    return getattr(module, name)
