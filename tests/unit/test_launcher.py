"""runtime.launcher: the `pyrun` script that starts Python without site."""

import subprocess
import sys

import pytest

from runtime.launcher import launcher_text, write_launcher


def test_launcher_text_uses_isolated_python_without_site():
    text = launcher_text("/venv/bin/python", ["/src/pyrun", "/venv/site-packages"])
    assert text.startswith("#!/venv/bin/python -IS\n")
    assert "sys.path += ['/src/pyrun', '/venv/site-packages']" in text
    assert text.endswith("from runtime.console import run\nrun()\n")
    # SIGINT is blocked before the first import.
    assert text.index("pthread_sigmask") < text.index("sys.path +=")


def test_written_launcher_runs_pyrun(tmp_path):
    path = tmp_path / "pyrun"
    write_launcher(str(path))
    assert path.stat().st_mode & 0o777 == 0o755
    assert path.read_text().startswith(f"#!{sys.executable} -IS\n")
    result = subprocess.run([str(path), "--help"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "Run Linux containers" in result.stdout


# Runs the launcher's text after an import hook that sends this process a
# real SIGINT the first time MODULE is imported, as a Ctrl-C pressed during
# that import would. `posix` and `_signal` are loaded before any Python code
# runs, so the hook imports nothing itself.
INTERRUPTED_IMPORT = """
import sys, posix, _signal
class Interrupting:
    def find_spec(self, name, path=None, target=None):
        if name == MODULE:
            sys.meta_path.remove(self)
            posix.kill(posix.getpid(), _signal.SIGINT)
sys.meta_path.insert(0, Interrupting())
exec(open(LAUNCHER).read())
"""


@pytest.mark.parametrize("module", ["runtime.console", "os", "runtime.cli", "runtime.cli.parser"])
def test_ctrl_c_during_import_exits_130(tmp_path, module):
    path = tmp_path / "pyrun"
    write_launcher(str(path))
    code = f"MODULE = {module!r}\nLAUNCHER = {str(path)!r}\n" + INTERRUPTED_IMPORT
    result = subprocess.run([sys.executable, "-I", "-S", "-c", code, "version"], capture_output=True, text=True)
    assert "Traceback" not in result.stderr
    assert result.stderr == "pyrun: interrupted\n"
    assert result.returncode == 130
