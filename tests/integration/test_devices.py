"""Device cgroup rules on the real kernel: v1's devices files, v2's eBPF program.

The containers run `pyrun run --rm --network none`, and each check runs
from inside them: root in a container must not reach the host's disk, so
either mknod(2) of its node or the open must fail with EPERM ("Operation
not permitted"). EACCES would instead point at a nodev mount, which is no
proof of the device rules.

The manager tests put a Python process into a cgroup of their own, which
also checks the eBPF program in the cgroup2 hierarchy of a hybrid host.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from runtime.cgroups import bpf, detect
from runtime.cgroups.devices import parse_rules
from runtime.spec import DEFAULT_DEVICE_RULES
from tests.integration.run_support import pyrun_run, run_env  # noqa: F401
from tests.integration.test_cgroups_manager import GATE, cgroup_parent, manager, start_in  # noqa: F401

pytestmark = [pytest.mark.root, pytest.mark.cgroupv2]

# What a loop device shows in the privileged test: the start of its backing file.
LOOP_CONTENT = b"pyrun device test\n"

# Tries each device operation and prints "label ok" or "label ERRNO-NAME".
DEVICE_PROBE = GATE + """
import errno, os, stat, sys, tempfile

def attempt(label, action):
    try:
        action()
        print(label, "ok", flush=True)
    except OSError as err:
        print(label, errno.errorcode[err.errno], flush=True)

def read_one(path, flags=os.O_RDONLY):
    os.close(os.open(path, flags))

scratch = tempfile.mkdtemp()
attempt("read-null", lambda: read_one("/dev/null"))
attempt("write-null", lambda: read_one("/dev/null", os.O_WRONLY))
attempt("read-zero", lambda: read_one("/dev/zero"))
attempt("mknod-disk", lambda: os.mknod(os.path.join(scratch, "disk"), stat.S_IFBLK | 0o600, os.makedev(8, 0)))
attempt("mknod-null", lambda: os.mknod(os.path.join(scratch, "null"), stat.S_IFCHR | 0o600, os.makedev(1, 3)))
for name in os.listdir(scratch):
    os.unlink(os.path.join(scratch, name))
os.rmdir(scratch)
"""


def probe_results(process: subprocess.Popen) -> dict[str, str]:
    output, errors = process.communicate(timeout=60)
    assert process.returncode == 0, errors
    return dict(line.split() for line in output.splitlines())


@pytest.fixture
def loop_device(tmp_path):
    """A read-only loop device over a small file that starts with LOOP_CONTENT; yields its path."""
    backing = tmp_path / "backing.img"
    backing.write_bytes(LOOP_CONTENT + bytes(4096 - len(LOOP_CONTENT)))
    try:
        result = subprocess.run(["losetup", "--find", "--show", "--read-only", str(backing)],
                                capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        pytest.skip("losetup is not installed")
    if result.returncode != 0:
        pytest.skip(f"no loop device available: {result.stderr.strip()}")
    device = result.stdout.strip()
    yield device
    subprocess.run(["losetup", "--detach", device], check=True, timeout=30)


# -- Containers ------------------------------------------------------------------------


@pytest.mark.registry
def test_host_disk_open_denied(run_env):
    result = pyrun_run(run_env, "busybox", "sh", "-c", "mknod /tmp/sda b 8 0 && head -c1 /tmp/sda")
    assert result.returncode != 0
    assert "Operation not permitted" in result.stderr


@pytest.mark.registry
def test_default_devices_usable(run_env):
    script = ("head -c4 /dev/zero | wc -c && echo gone > /dev/null && "
              "mknod /tmp/null c 1 3 && echo gone > /tmp/null && head -c1 /tmp/null | wc -c")
    result = pyrun_run(run_env, "busybox", "sh", "-c", script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["4", "0"]


@pytest.mark.registry
def test_block_device_denied_by_default(run_env, loop_device):
    device = os.stat(loop_device).st_rdev
    script = f"mknod /tmp/loop b {os.major(device)} {os.minor(device)} && head -c4 /tmp/loop"
    result = pyrun_run(run_env, "busybox", "sh", "-c", script)
    assert result.returncode != 0
    assert "Operation not permitted" in result.stderr


@pytest.mark.registry
def test_privileged_reads_block_device(run_env, loop_device):
    device = os.stat(loop_device).st_rdev
    script = f"mknod /tmp/loop b {os.major(device)} {os.minor(device)} && head -c{len(LOOP_CONTENT)} /tmp/loop"
    result = pyrun_run(run_env, "--privileged", "busybox", "sh", "-c", script)
    assert result.returncode == 0, result.stderr
    assert result.stdout == LOOP_CONTENT.decode()


@pytest.mark.registry
def test_v1_rules_listed_inside(run_env):
    if detect.detect_layout().kind == "v2":
        pytest.skip("cgroup v2 has no devices.list")
    result = pyrun_run(run_env, "busybox", "cat", "/sys/fs/cgroup/devices/devices.list")
    assert result.returncode == 0, result.stderr
    rules = result.stdout.split("\n")
    assert "c 1:3 rwm" in rules
    assert "a *:* rwm" not in rules


# -- The cgroup manager -------------------------------------------------------------------


def test_manager_applies_default_rules(manager):
    manager.apply({"devices": DEFAULT_DEVICE_RULES})
    results = probe_results(start_in(manager, DEVICE_PROBE))
    assert results["read-null"] == "ok"
    assert results["write-null"] == "ok"
    assert results["read-zero"] == "ok"
    assert results["mknod-null"] == "ok"
    assert results["mknod-disk"] == "EPERM"


def test_bpf_program_in_cgroup2(manager):
    layout = detect.detect_layout()
    if layout.unified is None:
        pytest.skip("this host has no cgroup2 hierarchy to attach an eBPF program to")
    # Read access to /dev/null only, so the test also checks a rule with part of the access.
    rules = parse_rules([{"allow": True, "type": "c", "major": 1, "minor": 3, "access": "r"}])
    bpf.attach_device_program(str(Path(layout.unified) / manager.path), rules)
    results = probe_results(start_in(manager, DEVICE_PROBE))
    assert results["read-null"] == "ok"
    assert results["write-null"] == "EPERM"
    assert results["read-zero"] == "EPERM"
    assert results["mknod-null"] == "EPERM"
    assert results["mknod-disk"] == "EPERM"
