"""NAT and filtering with nftables: pyrun's own table `ip pyrun`.

All of pyrun's rules live in one table, created with the first container and
deleted with the last:

    table ip pyrun {
        chain prerouting   nat, prerouting hook: packets for a host address
                           jump to `published`
        chain output       nat, output hook: the same for the host's own
                           connections (to 127.0.0.1 or its addresses)
        chain published    one DNAT rule per published port, commented
                           "pyrun container <ID>"
        chain postrouting  masquerade: containers to the outside, the host's
                           127.0.0.1 to a container, and hairpin traffic
        chain localnet     drop packets from the bridge addressed to
                           127.0.0.0/8, which route_localnet would let in
        chain forward      only when pyrun turned IPv4 forwarding on: drop
                           forwarded packets that do not use the bridge
    }

The host's firewall is another matter. An accept in pyrun's table does not
override a drop in another table, because each base chain on a hook gives
its own verdict. So when another table's forward chain drops packets, pyrun
inserts two accept rules for its bridge there (traffic from the bridge and
traffic to it), commented HOST_RULE_COMMENT, and removes them with the last
container. Those chains are changed through nft's JSON input, which needs no
quoting of the host's table and chain names.

Every nft run goes through the syscall seam, so a trace shows each rule.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import shutil
import subprocess

from runtime import syscalls
from runtime.errors import PyrunError
from runtime.network.bridge import BRIDGE
from runtime.network.ports import PortMapping
from runtime.log import get_logger

log = get_logger(__name__)

TABLE = "pyrun"
FAMILY = "ip"
PUBLISHED_CHAIN = "published"
HOST_RULE_COMMENT = f"pyrun: accept traffic of bridge {BRIDGE}"
LOOPBACK = "127.0.0.0/8"


def container_comment(container_id: str) -> str:
    return f"pyrun container {container_id}"


# -- Running nft ------------------------------------------------------------------


def nft_binary() -> str:
    path = shutil.which("nft") or shutil.which("nft", path="/usr/sbin:/sbin")
    if path is None:
        raise PyrunError("nft not found: pyrun needs it for NAT and published ports",
                         hint="install the nftables package")
    return path


def run_nft(script: str, *, json_input: bool = False) -> None:
    """Run nft commands as one transaction (`nft -f -`): all apply or none does."""
    commands = script.strip().splitlines() if not json_input else [script]
    name = "nft -j -f -" if json_input else command_name(commands)
    arguments = [nft_binary()] + (["-j"] if json_input else []) + ["-f", "-"]
    call_nft(name, arguments, script, commands=commands)


def list_json(*objects: str) -> list[dict]:
    """Run `nft -j -a list ...` and return the objects it lists (rules carry handles)."""
    arguments = [nft_binary(), "-j", "-a", "list", *objects]
    output = call_nft("nft list " + " ".join(objects), arguments, None)
    return json.loads(output or "{}").get("nftables", [])


def call_nft(name: str, arguments: list[str], script: str | None, **trace_args) -> str | None:
    """Run nft through the seam and return its output (None under the recorder).

    The seam names a failure by errno only, so nft's own message, which says
    what was wrong, is added to the error afterwards.
    """
    failure = {}

    def action() -> str:
        result = subprocess.run(arguments, input=script, capture_output=True, text=True)
        if result.returncode != 0:
            failure["message"] = " ".join(result.stderr.split())
            raise OSError(errno.EINVAL, "nft failed")
        return result.stdout

    try:
        return syscalls.record(name, "nft(8)", action, **trace_args)
    except OSError as err:
        raise OSError(err.errno, f"{err.strerror}: {failure.get('message', '')}") from None


def command_name(commands: list[str]) -> str:
    """Name a script by its verb and object, e.g. ``nft add rule``, for the trace."""
    heads = {" ".join(command.split()[:2]) for command in commands}
    return f"nft {heads.pop()}" if len(heads) == 1 else "nft -f -"


# -- pyrun's table ------------------------------------------------------------------


def table_exists() -> bool:
    tables = list_json("tables")
    return any(item.get("table", {}).get("name") == TABLE and item["table"].get("family") == FAMILY
               for item in tables)


def table_script(subnet: ipaddress.IPv4Network, isolate_forwarding: bool = False) -> str:
    """Return the nft commands that create pyrun's table for the bridge's subnet.

    `isolate_forwarding` adds the forward chain, for hosts where pyrun had to
    turn IPv4 forwarding on.
    """
    script = f"""
add table {FAMILY} {TABLE}
add chain {FAMILY} {TABLE} prerouting {{ type nat hook prerouting priority dstnat; policy accept; }}
add chain {FAMILY} {TABLE} output {{ type nat hook output priority -100; policy accept; }}
add chain {FAMILY} {TABLE} {PUBLISHED_CHAIN}
add chain {FAMILY} {TABLE} postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}
add chain {FAMILY} {TABLE} localnet {{ type filter hook prerouting priority raw; policy accept; }}
add rule {FAMILY} {TABLE} prerouting fib daddr type local jump {PUBLISHED_CHAIN}
add rule {FAMILY} {TABLE} output fib daddr type local jump {PUBLISHED_CHAIN}
add rule {FAMILY} {TABLE} postrouting ip saddr {subnet} oifname != "{BRIDGE}" masquerade comment "containers to the outside"
add rule {FAMILY} {TABLE} postrouting ip saddr {LOOPBACK} oifname "{BRIDGE}" masquerade comment "host via 127.0.0.1 to a published port"
add rule {FAMILY} {TABLE} postrouting ip saddr {subnet} oifname "{BRIDGE}" ct status dnat masquerade comment "hairpin: container via a host address to a container"
add rule {FAMILY} {TABLE} localnet iifname "{BRIDGE}" ip daddr {LOOPBACK} drop comment "no container reaches the host's loopback"
"""
    if isolate_forwarding:
        script += f"""add chain {FAMILY} {TABLE} forward {{ type filter hook forward priority filter; policy accept; }}
add rule {FAMILY} {TABLE} forward iifname != "{BRIDGE}" oifname != "{BRIDGE}" drop comment "pyrun enabled forwarding for its bridge only"
"""
    return script


def ensure_table(subnet: ipaddress.IPv4Network, isolate_forwarding: bool = False) -> None:
    """Create pyrun's table when it is missing."""
    if table_exists():
        return
    run_nft(table_script(subnet, isolate_forwarding))
    log.info("created nftables table %s %s for subnet %s", FAMILY, TABLE, subnet)


def delete_table() -> None:
    if table_exists():
        run_nft(f"delete table {FAMILY} {TABLE}")


def dnat_rule(container_id: str, address: ipaddress.IPv4Address, mapping: PortMapping) -> str:
    """Return the rule that sends one published host port to the container."""
    match = ""
    if mapping.host_ip != "0.0.0.0":
        match = f"ip daddr {mapping.host_ip} "
    return (
        f"add rule {FAMILY} {TABLE} {PUBLISHED_CHAIN} {match}{mapping.protocol} dport {mapping.host_port} "
        f"dnat to {address}:{mapping.container_port} comment \"{container_comment(container_id)}\""
    )


def add_container_rules(container_id: str, address: ipaddress.IPv4Address, mappings: list[PortMapping]) -> None:
    """Add the DNAT rules of a container's published ports, in one transaction."""
    if not mappings:
        return
    run_nft("\n".join(dnat_rule(container_id, address, mapping) for mapping in mappings))


def delete_container_rules(container_id: str) -> int:
    """Delete every rule commented with the container's ID; return how many."""
    if not table_exists():
        return 0
    comment = container_comment(container_id)
    handles = [
        item["rule"]["handle"]
        for item in list_json("chain", FAMILY, TABLE, PUBLISHED_CHAIN)
        if "rule" in item and item["rule"].get("comment") == comment
    ]
    if handles:
        run_nft("\n".join(f"delete rule {FAMILY} {TABLE} {PUBLISHED_CHAIN} handle {handle}" for handle in handles))
    return len(handles)


# -- The host's firewall ---------------------------------------------------------------


def dropping_forward_chains(ruleset: list[dict]) -> list[dict]:
    """Find other tables' forward base chains that may drop forwarded packets.

    A chain counts when its policy is drop or one of its rules ends in drop
    or reject. Only families ip and inet see IPv4 forwarding.

    NOTE: a drop inside a regular chain that a forward chain jumps to is not
    seen, so such a firewall gets no accept rules and blocks containers.
    """
    chains = {}
    for item in ruleset:
        chain = item.get("chain")
        if chain and chain.get("hook") == "forward" and chain.get("family") in ("ip", "inet") \
                and not (chain["family"] == FAMILY and chain["table"] == TABLE):
            key = (chain["family"], chain["table"], chain["name"])
            chains[key] = chain.get("policy") == "drop"
    for item in ruleset:
        rule = item.get("rule")
        if not rule:
            continue
        key = (rule["family"], rule["table"], rule["chain"])
        if key in chains and any("drop" in expr or "reject" in expr for expr in rule.get("expr", [])):
            chains[key] = True
    return [{"family": key[0], "table": key[1], "chain": key[2]} for key, drops in chains.items() if drops]


def host_rules(ruleset: list[dict]) -> list[dict]:
    """Find the accept rules pyrun inserted into other tables (by their comment)."""
    return [
        item["rule"] for item in ruleset
        if "rule" in item and item["rule"].get("comment") == HOST_RULE_COMMENT and item["rule"]["table"] != TABLE
    ]


def accept_rule(chain: dict, direction: str) -> dict:
    """Build the JSON of one accept rule: `direction` is iifname or oifname."""
    match = {"match": {"op": "==", "left": {"meta": {"key": direction}}, "right": BRIDGE}}
    return {"insert": {"rule": {**chain, "comment": HOST_RULE_COMMENT, "expr": [match, {"accept": None}]}}}


def allow_bridge_in_host_firewall() -> None:
    """Insert accept rules for the bridge into forward chains of other tables that drop.

    NOTE: nft cannot see iptables-legacy rules, so a legacy FORWARD chain
    that drops still blocks containers. pyrun only warns about it.
    """
    ruleset = list_json("ruleset")
    already = {(rule["family"], rule["table"], rule["chain"]) for rule in host_rules(ruleset)}
    commands = []
    for chain in dropping_forward_chains(ruleset):
        if (chain["family"], chain["table"], chain["chain"]) in already:
            continue
        commands += [accept_rule(chain, "oifname"), accept_rule(chain, "iifname")]
        log.warning("the forward chain %s %s %s drops packets: inserted accept rules for %s (comment %r); "
                    "pyrun removes them with its last container",
                    chain["family"], chain["table"], chain["chain"], BRIDGE, HOST_RULE_COMMENT)
    if commands:
        run_nft(json.dumps({"nftables": commands}), json_input=True)
    warn_about_legacy_iptables()


def remove_host_firewall_rules() -> None:
    """Delete the accept rules pyrun inserted into other tables."""
    commands = [
        {"delete": {"rule": {"family": rule["family"], "table": rule["table"], "chain": rule["chain"],
                             "handle": rule["handle"]}}}
        for rule in host_rules(list_json("ruleset"))
    ]
    if commands:
        run_nft(json.dumps({"nftables": commands}), json_input=True)
        log.info("removed pyrun's %d accept rules from the host's forward chains", len(commands))


def warn_about_legacy_iptables() -> None:
    try:
        with open("/proc/net/ip_tables_names") as stream:
            tables = stream.read().split()
    except OSError:
        return
    if "filter" in tables:
        log.warning("iptables-legacy has a filter table, which nft cannot read: if its FORWARD chain "
                    "drops packets, allow %s there (iptables-legacy -I FORWARD -i %s -j ACCEPT, and -o)",
                    BRIDGE, BRIDGE)
