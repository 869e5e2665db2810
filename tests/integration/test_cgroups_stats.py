"""pyrun stats and pyrun top against a real cgroup with a real process in it.

The container record is written by hand (state.json, config.json and the
name link), so these tests need only the cgroup, not `pyrun run`.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import time

import pytest

from runtime import cgroups
from tests.conftest import PYRUN, run_pyrun
from tests.integration.test_cgroups_manager import (  # noqa: F401 (fixtures)
    BUSY_LOOP,
    MiB,
    cgroup_parent,
    start_in,
)

pytestmark = [pytest.mark.root, pytest.mark.cgroupv2]


@pytest.fixture
def container(store_root, cgroup_parent):
    """A hand-written running container record whose cgroup contains a busy loop."""
    container_id = secrets.token_hex(32)
    name = f"stats-{container_id[:6]}"
    manager = cgroups.open_cgroup(f"/{cgroup_parent}/{container_id}")
    manager.create()
    manager.apply({"memory": {"limit": 64 * MiB}, "pids": {"limit": 20}})
    process = start_in(manager, BUSY_LOOP)

    directory = store_root / "containers" / container_id
    directory.mkdir(parents=True)
    record = {"id": container_id, "name": name, "status": "running", "pid": process.pid,
              "created": "2026-01-01T00:00:00.000000000Z"}
    (directory / "state.json").write_text(json.dumps(record))
    (directory / "config.json").write_text(json.dumps({"linux": {"cgroupsPath": manager.path}}))
    (store_root / "names").mkdir()
    os.symlink(container_id, store_root / "names" / name)
    time.sleep(0.3)
    yield record
    manager.remove()
    process.wait(timeout=10)


def test_stats_no_stream_shows_usage(store_root, container):
    result = run_pyrun("stats", "--no-stream", container["name"], root=store_root)
    assert result.returncode == 0, result.stderr
    header, row = result.stdout.splitlines()
    assert header.split("   ")[0] == "CONTAINER ID"
    assert "MEM USAGE / LIMIT" in header
    fields = row.split()
    assert fields[0] == container["id"][:12]
    assert fields[1] == container["name"]
    cpu = float(fields[2].rstrip("%"))
    assert cpu > 20.0  # a busy loop, where 100% is one full core
    assert fields[5] == "64MiB"
    assert fields[-1] == "1"


def test_stats_lists_running_without_names(store_root, container):
    result = run_pyrun("stats", "--no-stream", "--no-trunc", root=store_root)
    assert result.returncode == 0, result.stderr
    assert container["id"] in result.stdout


def test_stats_by_id_prefix(store_root, container):
    result = run_pyrun("stats", "--no-stream", container["id"][:8], root=store_root)
    assert result.returncode == 0, result.stderr
    assert container["name"] in result.stdout


def test_stats_unknown_container(store_root, container):
    result = run_pyrun("stats", "--no-stream", "no-such-box", root=store_root)
    assert result.returncode == 1  # Docker's status for an unknown container
    assert "no such container: no-such-box" in result.stderr


def test_top_lists_container_processes(store_root, container):
    result = run_pyrun("top", container["name"], root=store_root)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    assert len(lines) == 2
    assert lines[1].split()[1] == str(container["pid"])
    assert "python" in lines[1]


def test_top_with_ps_options(store_root, container):
    result = run_pyrun("top", container["name"], "-o", "pid,comm", root=store_root)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["PID", "COMMAND", str(container["pid"]), "python"]


def test_top_stopped_container(store_root, container):
    state_path = store_root / "containers" / container["id"] / "state.json"
    state_path.write_text(json.dumps({**container, "status": "exited"}))
    result = run_pyrun("top", container["name"], root=store_root)
    assert result.returncode == 125
    assert "is not running" in result.stderr


def test_stats_streams_until_interrupted(store_root, container):
    command = [PYRUN, "--root", str(store_root), "stats", container["name"]]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    headers = 0
    try:
        while headers < 2:
            line = process.stdout.readline()
            if not line:
                break
            headers += line.startswith("CONTAINER ID")
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=10)
    assert headers == 2
    assert process.returncode == 0, stderr
