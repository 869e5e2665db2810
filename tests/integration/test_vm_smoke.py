"""Smoke tests of the cgroup v2 test VM that `make vm-test` boots.

tests/vm/run.py and vagrant/vm-test.sh set PYRUN_VM_GUEST=1 in the guest.
The checks that need the guest (cgroup2 at /sys/fs/cgroup, systemd as init,
a container that leaves systemd's cgroups as they were, httpd on a
published port) skip elsewhere with the reason. The httpd check is among
them because it adds a bridge and NAT rules to the network namespace it
runs in, which only the guest may change freely. The others run on any
root host.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import run_pyrun
from tests.integration.run_support import pyrun_run, run_env  # noqa: F401

pytestmark = [pytest.mark.root, pytest.mark.vmsmoke]

IN_TEST_VM = os.environ.get("PYRUN_VM_GUEST") == "1"
CGROUP_ROOT = Path("/sys/fs/cgroup")
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"




def vm_only(test):
    """Mark `test` as a check of the test VM: it skips elsewhere, even under make test.

    A marker, not a call in the test, so the skip comes before any fixture set-up.
    """
    skip = pytest.mark.skipif(not IN_TEST_VM, reason="checks the test VM's set-up: run it with `make vm-test`")
    return pytest.mark.vmonly(skip(test))


def mounted_fs_type(mount_point: str) -> str | None:
    """Return the file system type of the top mount at `mount_point`, if any."""
    fs_type = None
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        if fields[1] == mount_point:
            fs_type = fields[2]
    return fs_type


def cgroups_outside_pyrun() -> set[str]:
    """List the cgroups that are not in pyrun's subtree: systemd's slices and units."""
    return {str(path.relative_to(CGROUP_ROOT)) for path in CGROUP_ROOT.rglob("*")
            if path.is_dir() and not path.relative_to(CGROUP_ROOT).parts[0].startswith("pyrun")}


@vm_only
def test_cgroup_root_is_cgroup2():
    assert mounted_fs_type("/sys/fs/cgroup") == "cgroup2"


@vm_only
def test_init_is_systemd():
    assert Path("/proc/1/comm").read_text().strip() == "systemd"


def test_pyrun_help_runs():
    result = run_pyrun("--help")
    assert result.returncode == 0, result.stderr
    assert "usage: pyrun" in result.stdout


@pytest.mark.registry
def test_registry_serves_fixture(registry):
    # In the guest, this shows the host's cached fixture images reached the
    # guest's own registry on 127.0.0.1 without any network device.
    response = requests.get(f"{registry.url}/v2/library/busybox/manifests/latest",
                            headers={"Accept": OCI_MANIFEST}, timeout=30)
    assert response.status_code == 200
    assert response.headers["Docker-Content-Digest"] == registry.digests["library/busybox:latest"]


@vm_only
@pytest.mark.registry
def test_container_leaves_systemd_cgroups(run_env):
    before = cgroups_outside_pyrun()
    result = pyrun_run(run_env, "--memory", "64m", "--pids-limit", "20", "busybox", "true")
    assert result.returncode == 0, result.stderr
    assert cgroups_outside_pyrun() == before


def test_detached_busybox_listed_and_removed(run_env):
    started = run_pyrun("run", "-d", "--network", "none", "busybox", "sleep", "300",
                        root=run_env.root, env=run_env.env)
    assert started.returncode == 0, started.stderr
    container_id = started.stdout.strip()
    try:
        listed = run_pyrun("ps", "-q", "--no-trunc", root=run_env.root, env=run_env.env)
        assert listed.returncode == 0, listed.stderr
        assert container_id in listed.stdout.split()
    finally:
        removed = run_pyrun("rm", "-f", container_id, root=run_env.root, env=run_env.env)
    assert removed.returncode == 0, removed.stderr
    listed_after = run_pyrun("ps", "-a", "-q", "--no-trunc", root=run_env.root, env=run_env.env)
    assert container_id not in listed_after.stdout.split()


@vm_only
@pytest.mark.registry
@pytest.mark.network
def test_httpd_published_port_serves_page(pyrun_env):
    # The students' first command: `pyrun run -d -P httpd`, then the page on
    # the published port of 127.0.0.1.
    started = run_pyrun("run", "-d", "-P", "httpd", env=pyrun_env, timeout=600)
    assert started.returncode == 0, started.stderr
    container_id = started.stdout.strip()
    try:
        port = run_pyrun("port", container_id, "80/tcp", env=pyrun_env)
        assert port.returncode == 0, port.stderr
        host_port = int(port.stdout.split()[0].rsplit(":", 1)[1])
        # Apache takes a while to start under software emulation.
        deadline = time.monotonic() + 120
        page = None
        while page is None and time.monotonic() < deadline:
            try:
                page = requests.get(f"http://127.0.0.1:{host_port}/", timeout=10)
            except requests.ConnectionError:
                time.sleep(1)
        assert page is not None, f"nothing answered on 127.0.0.1:{host_port} within 120 s"
        assert page.status_code == 200
        assert "It works!" in page.text
    finally:
        removed = run_pyrun("rm", "-f", container_id, env=pyrun_env)
    assert removed.returncode == 0, removed.stderr
