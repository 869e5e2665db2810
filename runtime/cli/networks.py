"""`pyrun port CONTAINER [PRIVATE_PORT[/PROTO]]`: list a container's published ports.

The output matches Docker's: ``80/tcp -> 0.0.0.0:49153`` per binding, or
only ``0.0.0.0:49153`` when a private port is named.
"""

from __future__ import annotations

import json
import os

from runtime.cli.parser import Namespace, Subcommands
from runtime.errors import NotFoundError

SETTINGS_FILE = "network.json"  # written by runtime.network.attach


def register(subparsers: Subcommands) -> None:
    add_port(subparsers)
    # `pyrun container port`, when a module registered before this one has made the `container` group.
    group = subparsers.choices.get("container")
    if group is not None and group.subcommands is not None:
        add_port(group.subcommands)


def add_port(subparsers: Subcommands) -> None:
    parser = subparsers.add_parser("port", help="list a container's published ports")
    parser.add_argument("container", help="container name, ID or unique ID prefix")
    parser.add_argument("private_port", nargs="?", metavar="PRIVATE_PORT[/PROTO]",
                        help="show only the host bindings of this container port")
    parser.set_defaults(handler=port_command)


def port_command(args: Namespace) -> int:
    container_dir = find_container_dir(args.root, args.container)
    ports = read_ports(container_dir)
    if args.private_port:
        key = args.private_port if "/" in args.private_port else f"{args.private_port}/tcp"
        bindings = ports.get(key)
        if not bindings:
            raise NotFoundError(f"no public port {key!r} published for {args.container}",
                                hint="`pyrun port CONTAINER` lists the published ports")
        for binding in bindings:
            print(f"{binding['HostIp']}:{binding['HostPort']}")
        return 0
    for key in sorted(ports, key=sort_key):
        for binding in ports[key] or []:
            print(f"{key} -> {binding['HostIp']}:{binding['HostPort']}")
    return 0


def find_container_dir(root: str, reference: str) -> str:
    """Find a container's directory by name, full ID or unique ID prefix."""
    from runtime import state

    return state.container_dir(root, state.find_container(root, reference))


def read_ports(container_dir: str) -> dict:
    """Return NetworkSettings.Ports from the container's record, else from the
    network file that `attach` wrote. Returns {} when neither has them."""
    record = read_json(os.path.join(container_dir, "state.json"))
    settings = record.get("network_settings") or read_json(os.path.join(container_dir, SETTINGS_FILE)).get("settings")
    return (settings or {}).get("Ports") or {}


def read_json(path: str) -> dict:
    try:
        with open(path) as stream:
            return json.load(stream)
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def sort_key(key: str) -> tuple[int, str]:
    port, _, protocol = key.partition("/")
    return (int(port) if port.isdigit() else 0, protocol)
