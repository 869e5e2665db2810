"""Shared set-up for the `pyrun run` integration tests.

`run_env` is a store, per test module, with busybox and manylayers pulled
once from the fixture registry; `pyrun_run(run_env, *args)` runs
`pyrun run --rm --network none` there. Import both into a test module:

    from tests.integration.run_support import pyrun_run, run_env  # noqa: F401
"""

from __future__ import annotations

import fcntl
import os
import select
import struct
import subprocess
import termios
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import PYRUN, run_pyrun
from tests.fixtures.pyrunconfig import write_pyrun_config

PULLED_IMAGES = ["busybox", "manylayers"]


@dataclass
class RunEnv:
    root: Path
    env: dict[str, str]


@pytest.fixture(scope="module")
def run_env(registry, tmp_path_factory) -> RunEnv:
    """A store root with the run test images already pulled."""
    base = tmp_path_factory.mktemp("run")
    root = base / "root"
    root.mkdir()
    config = base / "pyrun-config.json"
    write_pyrun_config(config, registry.url, [], [registry.host])
    env = {"PYRUN_CONFIG": str(config), "PYRUN_ROOT": str(root)}
    for image in PULLED_IMAGES:
        run_pyrun("pull", "-q", image, root=root, env=env, check=True)
    return RunEnv(root, env)


def pyrun_run(run_env: RunEnv, *args: str, keep: bool = False, env: dict | None = None,
              **kwargs) -> subprocess.CompletedProcess:
    """Run `pyrun run --network none [--rm] ARGS` in the module's store; `env` adds variables."""
    flags = ["--network", "none"] + ([] if keep else ["--rm"])
    return run_pyrun("run", *flags, *args, root=run_env.root, env={**run_env.env, **(env or {})}, **kwargs)


def pyrun_command(run_env: RunEnv, *args: str, keep: bool = False) -> list[str]:
    """The argv of `pyrun --root ROOT run [--rm] --network none ARGS`, for Popen."""
    return [PYRUN, "--root", str(run_env.root), "run", *([] if keep else ["--rm"]), "--network", "none", *args]


def popen_env(run_env: RunEnv) -> dict[str, str]:
    return {**os.environ, **run_env.env}


def host_mounts_under(path: Path) -> list[str]:
    """Mount points on the host below `path`, from /proc/self/mountinfo."""
    with open("/proc/self/mountinfo") as file:
        points = [line.split()[4] for line in file]
    return [point for point in points if point.startswith(str(path))]


def pyrun(run_env: RunEnv, *args: str, **kwargs) -> subprocess.CompletedProcess:
    """Run `pyrun ARGS` in the module's store."""
    return run_pyrun(*args, root=run_env.root, env=run_env.env, **kwargs)


def detached(run_env: RunEnv, *args: str) -> str:
    """Start `run -d --network none ARGS` and return the container ID."""
    result = pyrun(run_env, "run", "-d", "--network", "none", *args)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.fixture
def cleanup(run_env):  # noqa: F811 - the module fixture of the same name
    """Remove every container of the module's store after the test."""
    yield
    ids = pyrun(run_env, "ps", "-a", "-q", "--no-trunc").stdout.split()
    if ids:
        pyrun(run_env, "rm", "-f", *ids)


def wait_for(condition, timeout: float = 10) -> bool:
    """Poll `condition` every 50 ms; return whether it became true within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def run_in_pty(run_env: RunEnv, *args: str, rows: int = 33, columns: int = 101, timeout: float = 30,
               keep: bool = False) -> tuple[int, str]:
    """Run `pyrun run` with a new pty as its terminal; return (exit code, output)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    before = termios.tcgetattr(slave)
    process = subprocess.Popen(pyrun_command(run_env, *args, keep=keep), stdin=slave, stdout=slave, stderr=slave,
                               env=popen_env(run_env), start_new_session=True)
    output = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    output += os.read(master, 4096)
                except OSError:
                    break
            elif process.poll() is not None:
                break
        code = process.wait(timeout=timeout)
        after = termios.tcgetattr(slave)
    finally:
        # A pyrun still running after a failed check ends with the hangup.
        os.close(master)
        os.close(slave)
        process.wait(timeout=timeout)
    assert after == before, "pyrun left the host terminal in another mode"
    return code, output.decode(errors="replace")
