"""`pyrun version` and `pyrun info`."""

import json
import os
import subprocess
import sys


def pyrun(tmp_path, *args):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"registry-mirrors": ["http://127.0.0.1:5999"]}))
    env = {**os.environ, "PYRUN_CONFIG": str(config)}
    return subprocess.run([sys.executable, "-m", "runtime", "--root", str(tmp_path / "root"), *args],
                          capture_output=True, text=True, env=env)


def test_version_names_client_and_no_daemon(tmp_path):
    result = pyrun(tmp_path, "version")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "Client: pyrun"
    assert lines[1].split() == ["Version:", "0.1.0"]
    assert any(line.startswith(" OS/Arch:        linux/") for line in lines)
    assert lines[-1].startswith("Server: none (pyrun has no daemon")


def test_info_on_an_empty_store(tmp_path):
    result = pyrun(tmp_path, "info")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert " Containers: 0" in lines
    assert " Images: 0" in lines
    assert f" Pyrun Root Dir: {tmp_path / 'root'}" in lines
    assert "  http://127.0.0.1:5999" in lines
    cgroup_line = next(line for line in lines if line.startswith(" Cgroup Version: "))
    assert cgroup_line.split()[2] in ("1", "2")


def test_info_rejects_format_by_name(tmp_path):
    result = pyrun(tmp_path, "info", "--format", "{{json .}}")
    assert result.returncode == 125
    assert "unknown flag: --format" in result.stderr
