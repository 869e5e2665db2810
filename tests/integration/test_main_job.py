"""The main job end to end: `pyrun run -d -P httpd`, served, stopped, started and removed.

pyrun runs in the session's test network namespace. A second docker-registry
process serves the fixture registry's storage inside that namespace, on the
same 127.0.0.1 port, so the first `run` pulls `httpd` by its short name
through the mirror setting, exactly as on a fresh host.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fixtures.pyrunconfig import dead_endpoint
from tests.fixtures.registry import REGISTRY_BINARY
from tests.integration.test_network import assert_nothing_left

pytestmark = [pytest.mark.root, pytest.mark.network, pytest.mark.registry, pytest.mark.slow]


@pytest.fixture
def env(require_image, make_pyrun_env, namespace_registry):
    """A config with Docker Hub unreachable and the fixture registry as its mirror."""
    require_image("library/httpd:latest")
    return make_pyrun_env(docker_hub_endpoint=dead_endpoint(), mirrors=[namespace_registry.url])


@pytest.fixture
def remove_containers(test_network, env):
    """Remove every container of the test's store through pyrun after the test, even after a failed check."""
    yield
    ids = test_network.pyrun("ps", "-a", "-q", "--no-trunc", env=env).stdout.split()
    if ids:
        test_network.pyrun("rm", "-f", *ids, env=env)


def fetch(test_network, url: str) -> str:
    """GET `url` from inside the test namespace, retrying while Apache starts."""
    deadline = time.monotonic() + 15
    result = None
    while time.monotonic() < deadline:
        result = test_network.run("curl", "-sS", "-m", "5", url)
        if result.returncode == 0:
            return result.stdout
        time.sleep(0.2)
    return result.stdout + result.stderr


def monitors_of(container_id: str) -> list[int]:
    """PIDs of monitor processes watching `container_id`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            command = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(part.endswith(b"monitor.py") for part in command) and container_id.encode() in command:
            found.append(int(entry))
    return found


def cgroup_dirs(container_id: str) -> list[str]:
    """Cgroup directories of the container: pure v2, or any v1 controller and the v1 hybrid's unified tree."""
    bases = ["/sys/fs/cgroup"] + glob.glob("/sys/fs/cgroup/*/")
    candidates = [os.path.join(base, "pyrun", container_id) for base in bases]
    return [candidate for candidate in candidates if os.path.isdir(candidate)]


def test_run_detached_httpd(test_network, env, store_root, remove_containers):
    def pyrun(*args, **kwargs):
        return test_network.pyrun(*args, env=env, **kwargs)

    # First run: the image is not in the store, so pyrun pulls it by its short name.
    first = pyrun("run", "-d", "-P", "httpd")
    assert first.returncode == 0, first.stderr
    assert "Unable to find image 'httpd:latest' locally" in first.stderr
    container_id = first.stdout.strip()
    assert len(container_id) == 64

    port_output = pyrun("port", container_id, "80")
    assert port_output.returncode == 0, port_output.stderr
    host_port = port_output.stdout.strip().rsplit(":", 1)[1]
    assert "It works!" in fetch(test_network, f"http://127.0.0.1:{host_port}/")

    # pyrun has exited, and the monitor keeps the container and its port.
    assert len(monitors_of(container_id)) == 1
    listing = pyrun("ps")
    assert container_id[:12] in listing.stdout
    assert f"0.0.0.0:{host_port}->80/tcp" in listing.stdout
    assert "Up " in listing.stdout

    # Second run: the image is reused, no pull.
    second = pyrun("run", "-d", "-P", "httpd")
    assert second.returncode == 0, second.stderr
    assert "Unable to find image" not in second.stderr
    second_id = second.stdout.strip()
    second_port = pyrun("port", second_id, "80").stdout.strip().rsplit(":", 1)[1]
    assert second_port != host_port
    assert "It works!" in fetch(test_network, f"http://127.0.0.1:{second_port}/")

    # logs: Apache's start-up notice on stderr and the access log line on stdout.
    logs = pyrun("logs", container_id)
    assert logs.returncode == 0, logs.stderr
    assert "resuming normal operations" in logs.stderr
    assert '"GET / HTTP/1.1" 200' in logs.stdout

    # exec: a process inside the running container.
    executed = pyrun("exec", container_id, "cat", "/usr/local/apache2/htdocs/index.html")
    assert executed.returncode == 0, executed.stderr
    assert "It works!" in executed.stdout

    # stop: the image's StopSignal (SIGWINCH) makes Apache shut down gracefully.
    stopped = pyrun("stop", container_id)
    assert stopped.returncode == 0, stopped.stderr
    assert "caught SIGWINCH, shutting down gracefully" in pyrun("logs", container_id).stderr
    state = pyrun("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", container_id).stdout.split()
    assert state == ["exited", "0"]
    # stop returns once the exit is recorded; the monitor exits after its clean-up.
    deadline = time.monotonic() + 15
    while monitors_of(container_id) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert monitors_of(container_id) == []

    # start again: a new monitor, the page is served again.
    started = pyrun("start", container_id)
    assert started.returncode == 0, started.stderr
    new_port = pyrun("port", container_id, "80").stdout.strip().rsplit(":", 1)[1]
    assert "It works!" in fetch(test_network, f"http://127.0.0.1:{new_port}/")

    # rm: a running container needs -f.
    refused = pyrun("rm", container_id)
    assert refused.returncode != 0
    assert "is running" in refused.stderr
    for removed_id in (container_id, second_id):
        removed = pyrun("rm", "-f", removed_id)
        assert removed.returncode == 0, removed.stderr

    # Nothing is left: records, mounts, monitors, cgroups, links, rules.
    assert pyrun("ps", "-a", "-q").stdout == ""
    assert os.listdir(store_root / "containers") == []
    assert str(store_root) not in Path("/proc/self/mountinfo").read_text()
    for removed_id in (container_id, second_id):
        assert monitors_of(removed_id) == []
        assert cgroup_dirs(removed_id) == []
    assert_nothing_left(test_network)


def test_demo_serves_httpd(test_network, env, store_root, remove_containers):
    # The demo's last step, as `make demo` runs it, in the test namespace.
    script = "import os, sys; from tests.fixtures import demo; sys.exit(demo.serve_httpd(dict(os.environ)))"
    result = test_network.run(sys.executable, "-c", script, env=env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "It works!" in result.stdout
    assert "pyrun stop " in result.stdout
    container_id = next(line for line in result.stdout.splitlines() if len(line) == 64)
    removed = test_network.pyrun("rm", "-f", container_id, env=env)
    assert removed.returncode == 0, removed.stderr
    assert_nothing_left(test_network)
