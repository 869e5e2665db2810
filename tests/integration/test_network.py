"""Bridge networking against the real kernel, inside the session's test namespace.

Each "container" here is a `sleep` in a new network namespace, started in the
test namespace. An attach process (ATTACH_SCRIPT) calls `network.attach` for
it and keeps the published ports held until its stdin closes, as the monitor
would. Commands run inside a container with `nsenter --net=/proc/PID/ns/net`.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time

import pytest

pytestmark = [pytest.mark.root, pytest.mark.network]

# Attach, print the settings, hold the ports until stdin closes, then detach.
ATTACH_SCRIPT = """
import json, sys
import runtime.network as network
from runtime.errors import PyrunError
container_id, pid, plan, container_dir = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3]), sys.argv[4]
try:
    settings = network.attach(container_id, pid, plan, container_dir)
except PyrunError as err:
    print(f"{err} ({err.hint})", file=sys.stderr)
    sys.exit(1)
print(json.dumps(settings), flush=True)
sys.stdin.read()
network.detach(container_id, settings)
"""

# Accept one connection at a time and send back the client's address.
PEER_SERVER = """
import socket, sys
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind((sys.argv[1], int(sys.argv[2])))
server.listen()
while True:
    connection, peer = server.accept()
    connection.sendall(peer[0].encode())
    connection.close()
"""

PEER_CLIENT = """
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5) as connection:
    print(connection.recv(100).decode())
"""


class Container:
    """A process in its own network namespace, attached by a holder process."""

    def __init__(self, network, tmp_path, plan: dict) -> None:
        self.network = network
        self.id = secrets.token_hex(32)
        self.dir = tmp_path / self.id[:12]
        self.dir.mkdir()
        self.process = network.popen("unshare", "--net", "--", "sleep", "600")
        self.pid = self.process.pid
        wait_for_own_netns(network, self.pid)
        self.netns = f"/proc/{self.pid}/ns/net"
        self.holder = network.popen(
            sys.executable, "-c", ATTACH_SCRIPT, self.id, str(self.pid), json.dumps(plan), str(self.dir),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        line = self.holder.stdout.readline()
        if not line:
            error = self.holder.stderr.read()
            self.holder.wait()
            self.stop_process()
            raise AttachFailed(error)
        self.settings = json.loads(line)

    def run(self, *command: str, **kwargs) -> subprocess.CompletedProcess:
        return self.network.run(*command, netns=self.netns, **kwargs)

    def popen(self, *command: str, **kwargs) -> subprocess.Popen:
        return self.network.popen(*command, netns=self.netns, **kwargs)

    def holder_log(self) -> str:
        """Return what the attach process logged so far (its stderr), after it ends."""
        self.detach()
        return self.holder.stderr.read()

    def host_port(self, key: str = "80/tcp") -> int:
        return int(self.settings["Ports"][key][0]["HostPort"])

    def detach(self) -> None:
        """Close the holder's stdin: it detaches and exits."""
        if self.holder.poll() is None:
            self.holder.stdin.close()
            self.holder.wait(timeout=30)

    def stop_process(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class AttachFailed(Exception):
    pass


def wait_for_own_netns(network, pid: int) -> None:
    """Wait until `pid` has left the test namespace (unshare ran) and execed sleep."""
    test_netns = os.stat(network.netns).st_ino
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/comm") as stream:
                execed = stream.read().strip() == "sleep"
            if execed and os.stat(f"/proc/{pid}/ns/net").st_ino != test_netns:
                return
        except FileNotFoundError:
            pass
        time.sleep(0.02)
    raise TimeoutError(f"process {pid} did not get its own network namespace")


def bridge_plan(*ports: dict, **extra) -> dict:
    return {"mode": "bridge", "ports": list(ports), "exposed": [], **extra}


def publish(container_port: int, host_port: int = 0, host_ip: str = "0.0.0.0", protocol: str = "tcp") -> dict:
    return {"container_port": container_port, "protocol": protocol, "host_ip": host_ip, "host_port": host_port}


def start_web_server(container: Container, port: int = 80) -> subprocess.Popen:
    """Start a web server in the container and wait until it returns 200."""
    server = container.popen(sys.executable, "-m", "http.server", str(port), "--bind", "0.0.0.0",
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if http_status(container.network, f"http://127.0.0.1:{port}/", netns=container.netns) == "200":
            return server
        time.sleep(0.1)
    server.kill()
    raise TimeoutError("the web server in the container did not start")


def http_status(network, url: str, netns: str | None = None) -> str:
    result = network.run("curl", "-sS", "-m", "5", "-o", "/dev/null", "-w", "%{http_code}", url, netns=netns)
    return result.stdout.strip()


@pytest.fixture
def containers(test_network, tmp_path):
    """Create containers with `containers(plan)`. All are detached and stopped at the end."""
    created: list[Container] = []
    servers: list[subprocess.Popen] = []

    def create(plan: dict) -> Container:
        container = Container(test_network, tmp_path, plan)
        created.append(container)
        return container

    create.servers = servers
    yield create
    for server in servers:
        server.kill()
        server.wait()
    for container in created:
        container.detach()
        container.stop_process()


@pytest.fixture
def outside_server(test_network):
    """A server in the outside namespace that returns each client's address."""
    server = test_network.popen(sys.executable, "-c", PEER_SERVER, test_network.outside_address, "7000",
                                netns=test_network.outside_netns)
    time.sleep(0.3)
    yield (test_network.outside_address, 7000)
    server.kill()
    server.wait()


def assert_nothing_left(network) -> None:
    links = network.links()
    assert "pyrun0" not in links
    assert not [link for link in links if link.startswith("veth")]
    assert not [address for address in network.addresses() if address.startswith("172.")]
    assert "table ip pyrun" not in network.ruleset()
    assert "pyrun" not in network.ruleset()
    # No state file at all means no container was ever attached here.
    state_file = os.path.join(network.state_dir, "network.json")
    if os.path.exists(state_file):
        with open(state_file) as stream:
            assert json.load(stream)["containers"] == {}
    # The test namespace starts with forwarding off, so pyrun turned it on.
    assert network.run("sysctl", "-n", "net.ipv4.ip_forward").stdout.strip() == "0"


def test_container_reaches_outside_through_nat(containers, outside_server):
    container = containers(bridge_plan())
    result = container.run(sys.executable, "-c", PEER_CLIENT, *map(str, outside_server))
    assert result.returncode == 0, result.stderr
    # The outside server receives the host's address: the source was masqueraded.
    assert result.stdout.strip() == container.network.host_address


def test_container_gets_address_route_and_mtu(containers, test_network):
    container = containers(bridge_plan())
    settings = container.settings
    assert settings["IPAddress"].startswith("172.17.")
    assert settings["Gateway"] == "172.17.0.1"
    assert settings["MacAddress"].startswith("02:42:ac:11:")
    links = container.run("ip", "-o", "link", "show").stdout
    assert "eth0" in links
    assert f"mtu {test_network.mtu}" in links.split("eth0")[1]
    assert "state UP" in container.run("ip", "link", "show", "lo").stdout or "LOOPBACK,UP" in links
    routes = container.run("ip", "route").stdout
    assert "default via 172.17.0.1 dev eth0" in routes


def test_published_port_from_host_and_outside(containers, test_network):
    container = containers(bridge_plan(publish(80)))
    containers.servers.append(start_web_server(container))
    port = container.host_port()
    assert port > 0
    assert http_status(test_network, f"http://127.0.0.1:{port}/") == "200"
    assert http_status(test_network, f"http://{test_network.host_address}:{port}/") == "200"
    assert http_status(test_network, f"http://{test_network.host_address}:{port}/",
                       netns=test_network.outside_netns) == "200"


def test_fixed_host_port_on_one_address(containers, test_network):
    container = containers(bridge_plan(publish(80, 18080, "127.0.0.1")))
    containers.servers.append(start_web_server(container))
    assert container.settings["Ports"]["80/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": "18080"}]
    assert http_status(test_network, "http://127.0.0.1:18080/") == "200"
    # Bound to 127.0.0.1 only: the host's other address does not forward.
    assert http_status(test_network, f"http://{test_network.host_address}:18080/") != "200"


def test_random_ports_differ_and_are_held(containers, test_network):
    first = containers(bridge_plan(publish(80), publish(53, protocol="udp")))
    second = containers(bridge_plan(publish(80)))
    ports = {first.host_port(), first.host_port("53/udp"), second.host_port()}
    assert len(ports) == 3
    probe = ("import socket, sys\n"
             "s = socket.socket()\n"
             "try:\n    s.bind(('0.0.0.0', int(sys.argv[1])))\nexcept OSError as e:\n    print(e.errno)\n")
    result = test_network.run(sys.executable, "-c", probe, str(first.host_port()))
    assert result.stdout.strip() == "98"  # EADDRINUSE: the holder keeps the port


def test_container_to_container(containers, test_network):
    server = containers(bridge_plan(publish(80)))
    client = containers(bridge_plan())
    containers.servers.append(start_web_server(server))
    assert client.settings["IPAddress"] != server.settings["IPAddress"]
    direct = f"http://{server.settings['IPAddress']}:80/"
    assert http_status(test_network, direct, netns=client.netns) == "200"
    # Hairpin: through the host's address and the published port.
    via_host = f"http://{test_network.host_address}:{server.host_port()}/"
    assert http_status(test_network, via_host, netns=client.netns) == "200"
    assert http_status(test_network, via_host, netns=server.netns) == "200"


def test_port_conflict_fails_before_changes(containers, test_network):
    other_program = test_network.popen(sys.executable, "-c", PEER_SERVER, "0.0.0.0", "18081")
    time.sleep(0.3)
    try:
        with pytest.raises(AttachFailed) as info:
            containers(bridge_plan(publish(80, 18081)))
    finally:
        other_program.kill()
        other_program.wait()
    assert "0.0.0.0:18081/tcp" in str(info.value)
    assert "already in use" in str(info.value)
    assert_nothing_left(test_network)


def test_requested_ip_and_conflict(containers):
    first = containers(bridge_plan(ip="172.17.0.50"))
    assert first.settings["IPAddress"] == "172.17.0.50"
    assert "172.17.0.50/16" in first.run("ip", "-o", "-4", "addr").stdout
    with pytest.raises(AttachFailed) as info:
        containers(bridge_plan(ip="172.17.0.50"))
    assert "already in use" in str(info.value)


def test_detach_leaves_nothing(containers, test_network):
    first = containers(bridge_plan(publish(80)))
    second = containers(bridge_plan(publish(80)))
    assert "pyrun0" in test_network.links()
    first.detach()
    assert first.settings["IPAddress"] not in json.dumps(json.load(open(os.path.join(test_network.state_dir,
                                                                                        "network.json"))))
    assert f"dport {first.host_port()} " not in test_network.ruleset()
    assert f"dport {second.host_port()} " in test_network.ruleset()
    second.detach()
    assert_nothing_left(test_network)


def test_dead_container_cleaned_up(containers, test_network):
    container = containers(bridge_plan(publish(80)))
    container.stop_process()
    container.holder.kill()  # pyrun crashed: no detach ran
    container.holder.wait()
    assert "pyrun container" in test_network.ruleset()
    result = test_network.run(sys.executable, "-m", "runtime.network.cleanup", "--dead")
    assert result.returncode == 0, result.stderr
    assert_nothing_left(test_network)


def test_cleanup_helper_with_container_dir(containers, test_network):
    container = containers(bridge_plan(publish(80)))
    container.stop_process()
    container.holder.kill()
    container.holder.wait()
    result = test_network.run(sys.executable, "-m", "runtime.network.cleanup", str(container.dir))
    assert result.returncode == 0, result.stderr
    assert_nothing_left(test_network)


def test_host_firewall_drop_gets_accept_rules(containers, test_network, outside_server):
    firewall = ("table inet hostfw {\n chain forward {\n  type filter hook forward priority 0; policy drop;\n"
                "  ct state established,related accept\n }\n}\n")
    test_network.run("nft", "-f", "-", input=firewall, check=True)
    try:
        container = containers(bridge_plan(publish(80)))
        containers.servers.append(start_web_server(container))
        rules = test_network.run("nft", "list", "table", "inet", "hostfw", check=True).stdout
        assert 'iifname "pyrun0" accept comment "pyrun: accept traffic of bridge pyrun0"' in rules
        assert 'oifname "pyrun0" accept comment "pyrun: accept traffic of bridge pyrun0"' in rules
        result = container.run(sys.executable, "-c", PEER_CLIENT, *map(str, outside_server))
        assert result.returncode == 0, result.stderr
        url = f"http://{test_network.host_address}:{container.host_port()}/"
        assert http_status(test_network, url, netns=test_network.outside_netns) == "200"
        # Bridged traffic between containers passes the forward hook too when
        # br_netfilter is loaded.
        client = containers(bridge_plan())
        direct = f"http://{container.settings['IPAddress']}:80/"
        assert http_status(test_network, direct, netns=client.netns) == "200"
        client.detach()
        container.detach()
        rules = test_network.run("nft", "list", "table", "inet", "hostfw", check=True).stdout
        assert "pyrun" not in rules
        assert "policy drop" in rules
        assert "ct state established,related accept" in rules
    finally:
        test_network.run("nft", "delete", "table", "inet", "hostfw")


def test_network_none_has_loopback_only(test_network, tmp_path):
    process = test_network.popen("unshare", "--net", "--", "sleep", "600")
    try:
        wait_for_own_netns(test_network, process.pid)
        script = ("import json, sys, runtime.network as n\n"
                  "print(json.dumps(n.attach('cd' * 32, int(sys.argv[1]), {'mode': 'none'}, sys.argv[2])))")
        result = test_network.run(sys.executable, "-c", script, str(process.pid), str(tmp_path))
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["IPAddress"] == ""
        links = test_network.run("ip", "-o", "link", netns=f"/proc/{process.pid}/ns/net").stdout.splitlines()
        assert len(links) == 1
        assert "lo:" in links[0]
        assert ",UP" in links[0]
    finally:
        process.kill()
        process.wait()
    assert "pyrun0" not in test_network.links()


def test_network_host_changes_nothing(test_network, tmp_path):
    script = ("import json, os, sys, runtime.network as n\n"
              "print(json.dumps(n.attach('ef' * 32, os.getpid(), {'mode': 'host'}, sys.argv[1])))")
    before = test_network.links()
    result = test_network.run(sys.executable, "-c", script, str(tmp_path))
    assert result.returncode == 0, result.stderr
    settings = json.loads(result.stdout)
    assert settings["IPAddress"] == ""
    assert "host" in settings["Networks"]
    assert test_network.links() == before


def test_port_command_lists_mappings(containers, test_network, tmp_path):
    container = containers(bridge_plan(publish(80), publish(53, protocol="udp")))
    root = tmp_path / "root"
    (root / "containers").mkdir(parents=True)
    os.symlink(container.dir, root / "containers" / container.id)
    result = test_network.pyrun("port", container.id[:12], root=root)
    assert result.returncode == 0, result.stderr
    assert f"80/tcp -> 0.0.0.0:{container.host_port()}" in result.stdout
    assert f"53/udp -> 0.0.0.0:{container.host_port('53/udp')}" in result.stdout
    result = test_network.pyrun("port", container.id[:12], "80", root=root)
    assert result.stdout.strip() == f"0.0.0.0:{container.host_port()}"


def test_concurrent_attach_gets_distinct_addresses(containers, test_network):
    results: list = []
    lock = threading.Lock()

    def attach_one() -> None:
        container = containers(bridge_plan(publish(80)))
        with lock:
            results.append(container)

    threads = [threading.Thread(target=attach_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(results) == 4
    addresses = {container.settings["IPAddress"] for container in results}
    assert len(addresses) == 4
    ports = {container.host_port() for container in results}
    assert len(ports) == 4
    assert test_network.links().count("pyrun0") == 1


def test_attach_again_replaces_stale_record(containers, test_network, tmp_path):
    first = containers(bridge_plan(publish(80)))
    first.holder.kill()  # no detach: the record and the rule stay
    first.holder.wait()
    first.stop_process()
    script = ("import json, sys, runtime.network as n\n"
              "plan = {'mode': 'bridge', 'ports': [], 'exposed': []}\n"
              "print(json.dumps(n.attach(sys.argv[1], int(sys.argv[2]), plan, sys.argv[3])))\n"
              "n.detach(sys.argv[1])")
    process = test_network.popen("unshare", "--net", "--", "sleep", "600")
    try:
        wait_for_own_netns(test_network, process.pid)
        result = test_network.run(sys.executable, "-c", script, first.id, str(process.pid), str(tmp_path))
    finally:
        process.kill()
        process.wait()
    assert result.returncode == 0, result.stderr
    assert_nothing_left(test_network)


@pytest.fixture
def side_network(test_network, tmp_path):
    """A third namespace routed through the test namespace, on 203.0.113.0/24 (TEST-NET-3)."""
    side = str(tmp_path / "side-netns")
    open(side, "w").close()
    subprocess.run(["unshare", f"--net={side}", "true"], check=True)
    steps = [
        (test_network.netns, ["ip", "link", "add", "side0", "type", "veth", "peer", "name", "side1"]),
        (test_network.netns, ["ip", "link", "set", "side1", "netns", side]),
        (test_network.netns, ["ip", "addr", "add", "203.0.113.1/24", "dev", "side0"]),
        (test_network.netns, ["ip", "link", "set", "side0", "up"]),
        (side, ["ip", "addr", "add", "203.0.113.2/24", "dev", "side1"]),
        (side, ["ip", "link", "set", "side1", "up"]),
        (side, ["ip", "route", "add", "default", "via", "203.0.113.1"]),
        (test_network.outside_netns, ["ip", "route", "add", "203.0.113.0/24", "via", test_network.host_address]),
    ]
    try:
        for netns, command in steps:
            test_network.run(*command, netns=netns, check=True)
        yield side
    finally:
        test_network.run("ip", "route", "del", "203.0.113.0/24", netns=test_network.outside_netns)
        test_network.run("ip", "link", "del", "side0")
        subprocess.run(["umount", side], check=False)


def test_forwarding_limited_to_bridge(containers, test_network, outside_server, side_network):
    container = containers(bridge_plan())
    assert test_network.run("sysctl", "-n", "net.ipv4.ip_forward").stdout.strip() == "1"
    result = container.run(sys.executable, "-c", PEER_CLIENT, *map(str, outside_server))
    assert result.returncode == 0, result.stderr
    # The host forwards for the bridge only, so the side namespace cannot
    # use it as a router even though forwarding is on.
    result = test_network.run(sys.executable, "-c", PEER_CLIENT, *map(str, outside_server), netns=side_network)
    assert result.returncode != 0
    # Control: without pyrun's forward chain the same connection works.
    test_network.run("nft", "flush", "chain", "ip", "pyrun", "forward", check=True)
    result = test_network.run(sys.executable, "-c", PEER_CLIENT, *map(str, outside_server), netns=side_network)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "203.0.113.2"


def test_iptables_forward_drop_gets_accept_rules(containers, test_network):
    if shutil.which("iptables") is None or "nf_tables" not in test_network.run("iptables", "-V").stdout:
        pytest.skip("needs iptables-nft: pyrun reads and changes iptables rules through nftables")
    test_network.run("iptables", "-P", "FORWARD", "DROP", check=True)
    try:
        container = containers(bridge_plan())
        rules = test_network.run("iptables", "-S", "FORWARD", check=True).stdout
        assert '-A FORWARD -i pyrun0 -m comment --comment "pyrun: accept traffic of bridge pyrun0" -j ACCEPT' in rules
        assert '-A FORWARD -o pyrun0 -m comment --comment "pyrun: accept traffic of bridge pyrun0" -j ACCEPT' in rules
        container.detach()
        rules = test_network.run("iptables", "-S", "FORWARD", check=True).stdout
        assert rules.strip() == "-P FORWARD DROP"
    finally:
        test_network.run("nft", "delete", "table", "ip", "filter")


def test_bridge_avoids_host_route(containers, test_network):
    test_network.run("ip", "route", "add", "172.17.0.0/16", "via", test_network.outside_address, check=True)
    try:
        container = containers(bridge_plan())
        assert container.settings["IPAddress"].startswith("172.18.")
        assert "172.18.0.1/16" in test_network.addresses()
        assert "the bridge uses 172.18.0.0/16" in container.holder_log()
        container.detach()
    finally:
        test_network.run("ip", "route", "del", "172.17.0.0/16")
    assert_nothing_left(test_network)


UDP_ECHO = """
import socket
server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
server.bind(("0.0.0.0", 53))
while True:
    data, peer = server.recvfrom(100)
    server.sendto(data.upper(), peer)
"""

UDP_CLIENT = """
import socket, sys
client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
client.settimeout(3)
client.sendto(b"ping", (sys.argv[1], int(sys.argv[2])))
print(client.recvfrom(100)[0].decode())
"""


def test_published_udp_port(containers, test_network):
    container = containers(bridge_plan(publish(53, protocol="udp")))
    containers.servers.append(container.popen(sys.executable, "-c", UDP_ECHO))
    time.sleep(0.5)
    port = str(container.host_port("53/udp"))
    result = test_network.run(sys.executable, "-c", UDP_CLIENT, "127.0.0.1", port)
    assert result.stdout.strip() == "PING", result.stderr
    result = test_network.run(sys.executable, "-c", UDP_CLIENT, test_network.host_address, port,
                              netns=test_network.outside_netns)
    assert result.stdout.strip() == "PING", result.stderr
