"""runtime.launcher: the `pyrun` script that starts Python without site."""

import subprocess
import sys

from runtime.launcher import launcher_text, write_launcher


def test_launcher_text_uses_isolated_python_without_site():
    text = launcher_text("/venv/bin/python", ["/src/pyrun", "/venv/site-packages"])
    assert text.startswith("#!/venv/bin/python -IS\n")
    assert "sys.path += ['/src/pyrun', '/venv/site-packages']" in text
    assert text.endswith("from runtime.console import run\nrun()\n")


def test_written_launcher_runs_pyrun(tmp_path):
    path = tmp_path / "pyrun"
    write_launcher(str(path))
    assert path.stat().st_mode & 0o777 == 0o755
    assert path.read_text().startswith(f"#!{sys.executable} -IS\n")
    result = subprocess.run([str(path), "--help"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "Run Linux containers" in result.stdout
