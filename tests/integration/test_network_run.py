"""`pyrun run` with networking, inside the session's test namespace.

Images are pulled first in the host's namespace, where the fixture registry
listens on 127.0.0.1. The store is shared, so `run` in the test namespace
finds them without a pull.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import PYRUN, run_pyrun
from tests.fixtures import hostleaks
from tests.integration.test_network import PEER_SERVER, assert_nothing_left, http_status

pytestmark = [pytest.mark.root, pytest.mark.network, pytest.mark.registry]

# busybox's web server, serving /etc so /passwd is a page that exists.
# Runs under --init: as pid 1 it would ignore the SIGTERM that stops it.
HTTPD = ["busybox", "httpd", "-f", "-p", "80", "-h", "/etc"]


@pytest.fixture
def env(pyrun_env, store_root):
    """The pyrun environment, with busybox already pulled into the store."""
    result = run_pyrun("pull", "busybox", env=pyrun_env)
    assert result.returncode == 0, result.stderr
    return pyrun_env


def with_test_dns(test_network, args: tuple) -> list[str]:
    """Give `run` a nameserver inside the test namespace, never the host's resolvers."""
    args = list(args)
    joins_other = any(arg.startswith("container:") for arg in args)
    if args and args[0] == "run" and "--dns" not in args and not joins_other:
        args[1:1] = ["--dns", test_network.outside_address]
    return args


def pyrun(test_network, env, *args, **kwargs):
    return test_network.pyrun(*with_test_dns(test_network, args), env=env, **kwargs)


def start_pyrun(test_network, env, *args) -> subprocess.Popen:
    """Start `pyrun run` in the foreground, in the test namespace, without waiting."""
    command = test_network.command(PYRUN, *with_test_dns(test_network, args))
    return subprocess.Popen(command, env=test_network.env(env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def stop_pyrun(test_network, env, process: subprocess.Popen) -> str:
    """Stop a foreground `pyrun run` with SIGTERM, which it passes to the container."""
    process.send_signal(signal.SIGTERM)
    try:
        _, stderr = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        _, stderr = process.communicate()
        # A killed pyrun cleans up nothing. Its next command finds the dead
        # container and releases its cgroup, mount and network.
        pyrun(test_network, env, "container", "prune", "-f")
    return stderr


def wait_for_http(test_network, url: str, netns: str | None = None) -> str:
    deadline = time.monotonic() + 15
    status = ""
    while time.monotonic() < deadline:
        status = http_status(test_network, url, netns=netns)
        if status == "200":
            break
        time.sleep(0.2)
    return status


def test_run_gets_bridge_address_and_mtu(test_network, env):
    result = pyrun(test_network, env, "run", "--rm", "busybox", "ip", "-o", "addr", "show", "eth0")
    assert result.returncode == 0, result.stderr
    assert "inet 172.17." in result.stdout
    result = pyrun(test_network, env, "run", "--rm", "busybox", "cat", "/sys/class/net/eth0/mtu")
    assert result.stdout.strip() == str(test_network.mtu)
    assert_nothing_left(test_network)


def test_run_reaches_outside_through_nat(test_network, env):
    server = test_network.popen(sys.executable, "-c", PEER_SERVER, test_network.outside_address, "7001",
                                netns=test_network.outside_netns)
    time.sleep(0.3)
    try:
        result = pyrun(test_network, env, "run", "--rm", "busybox", "nc", test_network.outside_address, "7001")
    finally:
        server.kill()
        server.wait()
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == test_network.host_address


def test_run_published_port(test_network, env):
    process = start_pyrun(test_network, env, "run", "--rm", "--init", "-p", "18090:80", "busybox", *HTTPD)
    try:
        assert wait_for_http(test_network, "http://127.0.0.1:18090/passwd") == "200"
        assert http_status(test_network, f"http://{test_network.host_address}:18090/passwd") == "200"
        assert http_status(test_network, f"http://{test_network.host_address}:18090/passwd",
                           netns=test_network.outside_netns) == "200"
    finally:
        stop_pyrun(test_network, env, process)
    assert_nothing_left(test_network)


@pytest.mark.parametrize("detach", [[], ["-d"]])
def test_run_port_conflict(test_network, env, detach):
    # Detached, the error comes from the start helper through the monitor:
    # it must keep its hint on the way.
    other_program = test_network.popen(sys.executable, "-c", PEER_SERVER, "0.0.0.0", "18091")
    time.sleep(0.3)
    try:
        result = pyrun(test_network, env, "run", "--rm", *detach, "-p", "18091:80", "busybox", "true")
    finally:
        other_program.kill()
        other_program.wait()
    assert result.returncode == 125
    assert "0.0.0.0:18091/tcp" in result.stderr
    assert "already in use" in result.stderr
    assert "(choose another host port with -p" in result.stderr
    assert_nothing_left(test_network)


def test_run_network_none(test_network, env):
    result = pyrun(test_network, env, "run", "--rm", "--network", "none", "busybox", "ip", "-o", "link")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    assert "lo:" in lines[0]


def test_run_network_host(test_network, env):
    result = pyrun(test_network, env, "run", "--rm", "--network", "host", "busybox", "ip", "-o", "link")
    assert result.returncode == 0, result.stderr
    assert "out0" in result.stdout
    assert "pyrun0" not in test_network.links()


def test_network_host_takes_host_name(test_network, env):
    result = pyrun(test_network, env, "run", "--rm", "--network", "host", "busybox", "hostname")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == os.uname().nodename


def test_run_dns_and_add_host(test_network, env):
    result = pyrun(test_network, env, "run", "--rm", "--dns", test_network.outside_address,
                   "--dns-search", "example.test", "--add-host", "db:192.0.2.10", "--add-host", "gw:host-gateway",
                   "busybox", "cat", "/etc/resolv.conf", "/etc/hosts")
    assert result.returncode == 0, result.stderr
    assert f"nameserver {test_network.outside_address}" in result.stdout
    assert "search example.test" in result.stdout
    assert "192.0.2.10\tdb" in result.stdout
    assert "172.17.0.1\tgw" in result.stdout


def test_run_requested_ip(test_network, env):
    result = pyrun(test_network, env, "run", "--rm", "--ip", "172.17.0.77", "busybox",
                   "ip", "-o", "-4", "addr", "show", "eth0")
    assert result.returncode == 0, result.stderr
    assert "inet 172.17.0.77/16" in result.stdout


def test_run_publish_all_exposed(test_network, env):
    process = start_pyrun(test_network, env, "run", "--rm", "--init", "--expose", "80", "-P", "busybox", *HTTPD)
    try:
        deadline = time.monotonic() + 15
        ports = ""
        while time.monotonic() < deadline and not ports:
            ports = test_network.run("nft", "list", "chain", "ip", "pyrun", "published").stdout
            ports = ports if "dnat to" in ports else ""
            time.sleep(0.2)
        host_port = ports.split("tcp dport ")[1].split()[0]
        assert int(host_port) > 0
        assert wait_for_http(test_network, f"http://127.0.0.1:{host_port}/passwd") == "200"
    finally:
        stop_pyrun(test_network, env, process)
    assert_nothing_left(test_network)


def test_run_container_to_container(test_network, env):
    process = start_pyrun(test_network, env, "run", "--rm", "--init", "--name", "web", "--ip", "172.17.0.88",
                          "-p", "18093:80", "busybox", *HTTPD)
    try:
        assert wait_for_http(test_network, "http://127.0.0.1:18093/passwd") == "200"
        direct = pyrun(test_network, env, "run", "--rm", "busybox", "wget", "-qO-", "http://172.17.0.88/passwd")
        assert direct.returncode == 0, direct.stderr
        assert "root:x:0:0" in direct.stdout
        hairpin = pyrun(test_network, env, "run", "--rm", "busybox", "wget", "-qO-",
                        f"http://{test_network.host_address}:18093/passwd")
        assert hairpin.returncode == 0, hairpin.stderr
        assert "root:x:0:0" in hairpin.stdout
        joined = pyrun(test_network, env, "run", "--rm", "--network", "container:web", "busybox",
                       "wget", "-qO-", "http://127.0.0.1/passwd")
        assert joined.returncode == 0, joined.stderr
        assert "root:x:0:0" in joined.stdout
        # A joined namespace needs the setup process, which stays outside the cgroup.
        alone = pyrun(test_network, env, "run", "--rm", "--network", "container:web", "--pids-limit", "1",
                      "busybox", "true")
        assert alone.returncode == 0, alone.stderr
    finally:
        stop_pyrun(test_network, env, process)
    assert_nothing_left(test_network)


def test_killed_pyrun_cleaned_by_next_command(test_network, env):
    # SIGKILL gives pyrun no chance to clean up, and PR_SET_PDEATHSIG kills
    # the container with it. The next pyrun command finds the dead container
    # and releases its cgroup, rootfs mount, veth and published port.
    process = start_pyrun(test_network, env, "run", "--rm", "--init", "-p", "18094:80", "busybox", *HTTPD)
    try:
        assert wait_for_http(test_network, "http://127.0.0.1:18094/passwd") == "200"
    finally:
        process.kill()
        process.communicate()
    store = Path(env["PYRUN_ROOT"])
    (container_id,) = os.listdir(store / "containers")
    assert hostleaks.cgroup_directories(f"pyrun/{container_id}") != []
    assert str(store) in Path("/proc/self/mountinfo").read_text()
    assert "dport 18094" in test_network.ruleset()

    pruned = pyrun(test_network, env, "container", "prune", "-f")
    assert pruned.returncode == 0, pruned.stderr
    assert container_id in pruned.stdout
    assert os.listdir(store / "containers") == []
    assert hostleaks.cgroup_directories(f"pyrun/{container_id}") == []
    assert str(store) not in Path("/proc/self/mountinfo").read_text()
    assert "dport 18094" not in test_network.ruleset()
    assert not [link for link in test_network.links() if link.startswith("veth")]
