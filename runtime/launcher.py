"""Write the `pyrun` command as a launcher that starts Python without `site`.

pip writes a `pyrun` script that starts the venv's Python normally: the
`site` module then reads every .pth file in the venv and imports what they
name, about 5 ms before pyrun's first line, on every command. The launcher
written here starts Python with `-I -S` instead (no site module, no PYTHON*
variables, no user site directory) and puts the only two directories pyrun
needs on sys.path itself: the checkout and the venv's site-packages. The
standard library stays first, so its modules are found with no extra
lookups.

pyrun's own modules then load through runtime.importer, a finder that
reads their compiled files directly: a few milliseconds less for each start.

`make install` runs `python -m runtime.launcher VENV/bin/pyrun` after pip,
over pip's script. pip's script keeps working if it is left in place.
"""

from __future__ import annotations

import os
import sys
import sysconfig

TEMPLATE = """\
#!{python} -IS
# Written by `python -m runtime.launcher` (see runtime/launcher.py): Python
# without the site module, with pyrun's directories on sys.path.
import sys
import _signal
# Hold Ctrl-C until pyrun can report it (see runtime/console.py).
_signal.pthread_sigmask(_signal.SIG_BLOCK, {{_signal.SIGINT}})
sys.path += {paths!r}
# pyrun's modules load through a lighter finder (see runtime/importer.py).
from runtime.importer import install
install({checkout!r})
from runtime.console import run
run()
"""


def launcher_text(python: str, paths: list[str]) -> str:
    """Return the launcher's text; `paths[0]` is the checkout that contains pyrun's packages."""
    return TEMPLATE.format(python=python, paths=paths, checkout=paths[0])


def write_launcher(path: str) -> None:
    """Write the launcher for this interpreter and this checkout to `path`, mode 0755."""
    checkout = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    installed = sysconfig.get_paths()
    # Pure-Python and compiled packages share one directory in a venv
    # on Linux; list both in case they differ.
    paths = list(dict.fromkeys([checkout, installed["purelib"], installed["platlib"]]))
    text = launcher_text(sys.executable, paths)
    temporary = f"{path}.tmp"
    with open(temporary, "w") as file:
        file.write(text)
    os.chmod(temporary, 0o755)
    os.replace(temporary, path)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m runtime.launcher PATH")
    write_launcher(sys.argv[1])
