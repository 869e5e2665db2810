"""resolv.conf and hosts contents for --dns, --dns-search, --add-host."""

from runtime.network import dns, hosts_content, resolv_conf_content

HOST = "nameserver 192.0.2.53\nnameserver 127.0.0.1\nsearch corp.example\noptions ndots:2\n"


def test_resolv_conf_from_host_drops_loopback():
    text = resolv_conf_content({"mode": "bridge"}, HOST)
    assert text == "nameserver 192.0.2.53\nsearch corp.example\noptions ndots:2\n"


def test_resolv_conf_flags_replace_host_values():
    plan = {"mode": "bridge", "dns": ["198.51.100.2"], "dns_search": ["a.example", "b.example"],
            "dns_options": ["timeout:1"]}
    text = resolv_conf_content(plan, HOST)
    assert text == "nameserver 198.51.100.2\nsearch a.example b.example\noptions timeout:1\n"


def test_resolv_conf_loopback_only_falls_back():
    text = resolv_conf_content({"mode": "bridge"}, "nameserver 127.0.0.53\n")
    assert text.startswith("nameserver 8.8.8.8\nnameserver 8.8.4.4\n")


def test_resolv_conf_host_mode_keeps_loopback():
    text = resolv_conf_content({"mode": "host"}, "nameserver 127.0.0.53\n")
    assert text == "nameserver 127.0.0.53\n"


def test_hosts_has_container_and_extra_hosts():
    plan = {"extra_hosts": [["db", "10.0.0.5"], ["gw", "host-gateway"]]}
    text = hosts_content(plan, "web", {"IPAddress": "172.17.0.2", "Gateway": "172.17.0.1"})
    lines = text.splitlines()
    assert "127.0.0.1\tlocalhost" in lines
    assert "10.0.0.5\tdb" in lines
    assert "172.17.0.1\tgw" in lines
    assert lines[-1] == "172.17.0.2\tweb"


def test_is_loopback_matches_ipaddress():
    import ipaddress

    cases = [
        "127.0.0.1", "127.255.255.254", "128.0.0.1", "0.0.0.0", "8.8.8.8", "::1", "0:0:0:0:0:0:0:1", "0::1",
        "::ffff:127.0.0.1", "::127.0.0.1", "fe80::1%eth0", "::1%lo", "2001:db8::1", "::", "localhost", "",
        "127.0.0", "127.1", "127.000.0.1", "0127.0.0.1", "256.0.0.1", "127.0.0.1 ", "127.0.0.1\0", "[::1]",
        "::1/128", "1:2:3:4:5:6:7:8:9", "١٢٧.0.0.1",
    ]
    for address in cases:
        try:
            expected = ipaddress.ip_address(address.split("%")[0]).is_loopback
        except ValueError:
            expected = False
        assert dns.is_loopback(address) == expected, address
