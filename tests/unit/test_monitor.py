"""The monitor stays lean: a fresh `python -S` that imports only the standard library."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from runtime import monitor

HEAVY_MODULES = ["prctl", "pyroute2", "requests", "subprocess", "runtime.syscalls", "runtime.cgroups",
                 "runtime.state", "site", "calendar", "json", "ctypes", "_ctypes"]


def test_monitor_imports_stay_lean():
    script = ("import runpy, sys; sys.argv = ['monitor.py']; "
              f"runpy.run_path({monitor.__file__!r}, run_name='not_main'); print('\\n'.join(sorted(sys.modules)))")
    # run_name other than __main__ loads the module without running main(),
    # so the sys.path fix is made here.
    result = subprocess.run([sys.executable, "-S", "-c", f"import sys; sys.path.insert(0, {repo()!r}); {script}"],
                            capture_output=True, text=True, check=True)
    loaded = set(result.stdout.split())
    assert "runtime.logs" in loaded
    for name in HEAVY_MODULES:
        assert name not in loaded


def repo() -> str:
    import os

    return os.path.dirname(os.path.dirname(monitor.__file__))


def test_oom_killed_reads_counter(tmp_path):
    events = tmp_path / "memory.events"
    events.write_text("low 0\nhigh 0\nmax 2\noom 1\noom_kill 1\n")
    assert monitor.oom_killed(str(events))
    events.write_text("oom_kill 0\n")
    assert not monitor.oom_killed(str(events))
    control = tmp_path / "memory.oom_control"
    control.write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n")
    assert monitor.oom_killed(str(control))
    assert not monitor.oom_killed(str(tmp_path / "missing"))
    assert not monitor.oom_killed("")


def test_reap_exited_children_collects_zombies():
    import os

    child = os.fork()
    if child == 0:
        os._exit(0)
    os.waitid(os.P_PID, child, os.WEXITED | os.WNOWAIT)  # exited, not yet reaped
    monitor.reap_exited_children()
    with pytest.raises(ChildProcessError):
        os.waitpid(child, os.WNOHANG)


def test_record_exit_of_removed_container_writes_nothing(tmp_path):
    from runtime import state

    root = str(tmp_path)
    directory = state.container_dir(root, "9" * 64)
    state.create_record(root, "9" * 64, {"name": "removed"})
    # rm -f got this far: the lock file and the record are gone, the directory not yet.
    os.unlink(os.path.join(directory, "lock"))
    os.unlink(os.path.join(directory, "state.json"))

    monitor.record_exit(directory, 0, False)
    assert os.listdir(directory) == []


def test_record_exit_updates_the_record(tmp_path):
    from runtime import state

    root = str(tmp_path)
    state.create_record(root, "8" * 64, {"name": "kept", "status": "running"})
    monitor.record_exit(state.container_dir(root, "8" * 64), 3, False)
    record = state.load_record(root, "8" * 64)
    assert record["status"] == "exited"
    assert record["exit_code"] == 3
