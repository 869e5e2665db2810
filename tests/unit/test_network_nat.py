"""nftables rules: the table script, DNAT rules, and the host firewall check."""

import ipaddress
import os
import shutil

import pytest

from runtime import syscalls
from runtime.network import nat, veth
from runtime.network.ports import PortMapping

ID = "0123456789abcdef" * 4


def test_table_script_masquerades_subnet():
    script = nat.table_script(ipaddress.IPv4Network("172.17.0.0/16"))
    assert 'ip saddr 172.17.0.0/16 oifname != "pyrun0" masquerade' in script
    assert "type nat hook output priority -100" in script
    assert 'iifname "pyrun0" ip daddr 127.0.0.0/8 drop' in script


def test_table_script_forward_chain_optional():
    subnet = ipaddress.IPv4Network("172.17.0.0/16")
    assert "hook forward" not in nat.table_script(subnet)
    script = nat.table_script(subnet, isolate_forwarding=True)
    assert 'iifname != "pyrun0" oifname != "pyrun0" drop' in script


def test_dnat_rule_for_any_and_one_address():
    address = ipaddress.IPv4Address("172.17.0.2")
    rule = nat.dnat_rule(ID, address, PortMapping(80, "tcp", "0.0.0.0", 49153))
    assert "tcp dport 49153 dnat to 172.17.0.2:80" in rule
    assert "ip daddr" not in rule
    assert f'comment "pyrun container {ID}"' in rule
    rule = nat.dnat_rule(ID, address, PortMapping(53, "udp", "127.0.0.1", 5353))
    assert "ip daddr 127.0.0.1 udp dport 5353 dnat to 172.17.0.2:53" in rule


def test_add_container_rules_is_one_recorded_transaction():
    mappings = [PortMapping(80, "tcp", "0.0.0.0", 8080), PortMapping(443, "tcp", "0.0.0.0", 8443)]
    with syscalls.recording() as recorder:
        nat.add_container_rules(ID, ipaddress.IPv4Address("172.17.0.2"), mappings)
    assert recorder.names() == ["nft add rule"]
    assert len(recorder.calls[0].args["commands"]) == 2


def chain(name, family="inet", table="filter", policy="accept"):
    return {"chain": {"family": family, "table": table, "name": name, "hook": "forward", "policy": policy}}


def test_dropping_forward_chains():
    ruleset = [
        chain("forward", policy="drop"),
        chain("FORWARD", family="ip", table="filter"),
        {"rule": {"family": "ip", "table": "filter", "chain": "FORWARD", "expr": [{"reject": None}]}},
        chain("open", table="other"),
        chain("forward", family="ip", table="pyrun", policy="drop"),
        chain("forward", family="ip6", table="filter6", policy="drop"),
    ]
    found = nat.dropping_forward_chains(ruleset)
    assert {"family": "inet", "table": "filter", "chain": "forward"} in found
    assert {"family": "ip", "table": "filter", "chain": "FORWARD"} in found
    assert len(found) == 2


def test_accept_rule_is_commented():
    rule = nat.accept_rule({"family": "inet", "table": "filter", "chain": "forward"}, "iifname")["insert"]["rule"]
    assert rule["comment"] == nat.HOST_RULE_COMMENT
    assert rule["expr"][0]["match"]["right"] == "pyrun0"


def test_veth_names_fit_ifnamsiz():
    assert len(veth.host_ifname(ID)) <= 15
    assert len(veth.peer_ifname(ID)) <= 15
    assert veth.mac_address(ipaddress.IPv4Address("172.17.0.2")) == "02:42:ac:11:00:02"


def test_nft_failure_carries_nft_message():
    if not shutil.which("nft") and not os.path.exists("/usr/sbin/nft"):
        pytest.skip("needs the nft command")
    with pytest.raises(OSError) as info:
        nat.run_nft("add rule ip pyrun-no-such-table")
    message = str(info.value)
    assert "nft add rule" in message
    assert "syntax error" in message or "No such file or directory" in message
