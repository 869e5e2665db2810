"""Shared pytest set-up: markers, the pyrun command, and per-test store roots.

The registry and fixture images live in tests/fixtures and are exposed here
as session fixtures by tests/fixtures/plugin.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest_plugins = ["tests.fixtures.plugin", "tests.fixtures.netns"]

REPO = Path(__file__).resolve().parent.parent
PYRUN = str(Path(sys.executable).with_name("pyrun"))


def pytest_collection_modifyitems(config, items):
    """Skip root-only tests with the reason when not running as root."""
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root: integration tests use the real kernel")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Turn a skip into a failure when PYRUN_TEST_STRICT is set.

    `make test` installs everything the tests need, so a skip there means a
    fixture failed to build or a tool is missing: that must not pass
    quietly. Tests marked `cgroupv2` or `vmonly` are exempt because they
    skip by design outside a pure cgroup v2 host or the test VM.
    """
    outcome = yield
    report = outcome.get_result()
    if not os.environ.get("PYRUN_TEST_STRICT") or not report.skipped:
        return
    if "cgroupv2" in item.keywords or "vmonly" in item.keywords:
        return
    if hasattr(report, "wasxfail"):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
    report.outcome = "failed"
    report.longrepr = f"skipped under PYRUN_TEST_STRICT: {reason}"


def host_network_marks() -> set[str]:
    """List what pyrun's bridge network would leave in the host's network namespace."""
    marks = set()
    if os.path.exists("/sys/class/net/pyrun0"):
        marks.add("link pyrun0")
    with open("/proc/sys/net/ipv4/ip_forward") as forwarding:
        if forwarding.read().strip() == "1":
            # New network namespaces inherit this, which changes other tests too.
            marks.add("net.ipv4.ip_forward=1")
    try:
        tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True,
                                timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return marks
    for line in tables.splitlines():
        if line.split()[-1:] == ["pyrun"]:
            marks.add(line.strip())
    return marks


@pytest.fixture(autouse=True)
def host_network_untouched(request):
    """Fail a test that leaves pyrun's bridge or nftables table on the host.

    Tests run containers with --network none, or inside the test network
    namespace (tests/fixtures/netns.py), so the host's own network never
    changes. Only marks that were absent before the test count.
    """
    if os.geteuid() != 0 or "root" not in request.keywords:
        yield
        return
    before = host_network_marks()
    yield
    added = host_network_marks() - before
    assert not added, f"the test left {sorted(added)} in the host's network namespace"


@pytest.fixture(autouse=True)
def host_resources_released(request, tmp_path_factory):
    """Fail a test that leaves a mount, a container cgroup or a process of its pyrun behind.

    The rules for what counts are in tests/fixtures/hostleaks.py. After the
    failure the leftovers are removed, so that the tests after it start clean.
    """
    if os.geteuid() != 0 or "root" not in request.keywords:
        yield
        return
    from tests.fixtures import hostleaks

    basetemp = tmp_path_factory.getbasetemp()
    before = hostleaks.take_snapshot()
    yield
    leaks = hostleaks.wait_for_leaks(before, basetemp)
    if not leaks:
        return
    failures = hostleaks.remove_leaks(leaks)
    message = f"the test left {len(leaks)} things on the host: " + "; ".join(str(leak) for leak in leaks)
    if failures:
        message += ". Removing them failed too: " + "; ".join(failures)
    pytest.fail(message, pytrace=False)


@pytest.fixture
def store_root(tmp_path: Path) -> Path:
    """An empty pyrun root (images and containers) for one test."""
    root = tmp_path / "pyrun-root"
    root.mkdir()
    return root


def run_pyrun(*args: str, root: Path | None = None, check: bool = False,
              env: dict | None = None, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    """Run the installed `pyrun` command and capture its output as text."""
    command = [PYRUN]
    if root is not None:
        command += ["--root", str(root)]
    command += list(args)
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    return subprocess.run(command, capture_output=True, text=True, check=check,
                          env=full_env, timeout=timeout, **kwargs)
