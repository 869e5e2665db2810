"""The network flags and the plan built from them."""

import pytest

from runtime.cli.parser import CommandParser
from runtime.errors import UsageError
from runtime.network import plan_from_args
from runtime.network.plan import add_network_flags

HTTPD_CONFIG = {"config": {"ExposedPorts": {"80/tcp": {}}}}


def parse(*argv):
    parser = CommandParser("pyrun run")
    add_network_flags(parser)
    return parser.parse_args(list(argv))


def test_defaults_to_bridge_without_ports():
    plan = plan_from_args(parse(), HTTPD_CONFIG)
    assert plan["mode"] == "bridge"
    assert plan["ports"] == []
    assert plan["exposed"] == ["80/tcp"]


def test_publish_all_uses_exposed_ports():
    plan = plan_from_args(parse("-P", "--expose", "53/udp"), HTTPD_CONFIG)
    keys = sorted(f"{p['container_port']}/{p['protocol']}" for p in plan["ports"])
    assert keys == ["53/udp", "80/tcp"]
    assert all(p["host_port"] == 0 for p in plan["ports"])


def test_publish_all_keeps_explicit_mapping():
    plan = plan_from_args(parse("-P", "-p", "8080:80"), HTTPD_CONFIG)
    assert len(plan["ports"]) == 1
    assert plan["ports"][0]["host_port"] == 8080


def test_container_mode_names_container():
    plan = plan_from_args(parse("--network", "container:web"), None)
    assert plan["mode"] == "container"
    assert plan["container"] == "web"


def test_host_mode_discards_ports():
    plan = plan_from_args(parse("--network", "host", "-p", "80"), None)
    assert plan["mode"] == "host"
    assert plan["ports"] == []


@pytest.mark.parametrize("argv, message", [
    (["--network", "none", "-p", "80"], "conflicting options"),
    (["--network", "container:web", "--dns", "1.1.1.1"], "conflicting options"),
    (["--network", "mynet"], "unsupported --network 'mynet'"),
    (["--network", "container:"], "name the container"),
    (["--dns", "resolver"], "invalid --dns 'resolver'"),
    (["--ip", "fd00::5"], "invalid --ip"),
    (["--network", "none", "--ip", "172.17.0.9"], "needs the bridge network"),
    (["--add-host", "db"], "invalid --add-host 'db'"),
    (["--add-host", "db:nowhere"], "not an IP address"),
])
def test_invalid_flags_rejected(argv, message):
    with pytest.raises(UsageError) as info:
        plan_from_args(parse(*argv), None)
    assert message in str(info.value)


def test_dns_and_hosts_kept():
    args = parse("--dns", "198.51.100.2", "--dns-search", "example.org", "--add-host", "db:10.0.0.5",
                 "--add-host", "gw:host-gateway", "--ip", "172.17.0.9")
    plan = plan_from_args(args, None)
    assert plan["dns"] == ["198.51.100.2"]
    assert plan["dns_search"] == ["example.org"]
    assert plan["extra_hosts"] == [["db", "10.0.0.5"], ["gw", "host-gateway"]]
    assert plan["ip"] == "172.17.0.9"


def test_network_lazy_names_load_submodules():
    import runtime.network as network
    from runtime.network import connect, ports

    assert network.attach is connect.attach
    assert network.detach is connect.detach
    assert network.SETTINGS_FILE == "network.json"
    assert network.format_ports is ports.format_ports
    with pytest.raises(AttributeError, match="no attribute 'bridges'"):
        network.bridges  # noqa: B018 - the lookup is the test


def test_plan_without_ports_is_empty():
    plan = plan_from_args(parse("--network", "none"), {"config": {}})
    assert plan["ports"] == []
    assert plan["exposed"] == []
