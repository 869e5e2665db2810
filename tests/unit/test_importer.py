"""runtime.importer: pyrun's modules load from their compiled files, and stale files are left to Python."""

import os
import py_compile
import subprocess
import sys
import textwrap

from runtime import importer

# Runs in a fresh interpreter: installs the finder for the package `pkg`
# under DIRECTORY, imports pkg.mod, and prints which loader loaded it and
# the module's VALUE.
PROBE = textwrap.dedent("""
    import sys
    from runtime.importer import PyrunFinder, install
    install(DIRECTORY, ("pkg",))
    import pkg.mod
    print(type(pkg.mod.__spec__.loader).__name__, pkg.mod.VALUE, pkg.mod.__file__ == pkg.mod.__spec__.origin)
""")


def make_package(tmp_path, value):
    package = tmp_path / "pkg"
    package.mkdir(exist_ok=True)
    (package / "__init__.py").write_text("")
    (package / "mod.py").write_text(f"VALUE = {value!r}\n")
    return package


def compile_package(package):
    for name in ("__init__.py", "mod.py"):
        py_compile.compile(str(package / name), doraise=True)


def probe(tmp_path):
    code = f"DIRECTORY = {str(tmp_path)!r}\n" + PROBE
    # As in the launcher, the directory is on sys.path too, for Python's own finder.
    checkout = os.path.dirname(os.path.dirname(importer.__file__))
    env = {**os.environ, "PYTHONPATH": f"{checkout}:{tmp_path}"}
    result = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_compiled_module_loads_through_the_finder(tmp_path):
    compile_package(make_package(tmp_path, "one"))
    assert probe(tmp_path) == ["PyrunFinder", "one", "True"]


def test_missing_compiled_file_is_left_to_python(tmp_path):
    make_package(tmp_path, "one")
    loader, value, _ = probe(tmp_path)
    assert loader == "SourceFileLoader"
    assert value == "one"


def test_stale_compiled_file_is_left_to_python(tmp_path):
    package = make_package(tmp_path, "one")
    compile_package(package)
    (package / "mod.py").write_text("VALUE = 'three'\n")  # a new size: an edit in the same second keeps the time
    loader, value, _ = probe(tmp_path)
    assert loader == "SourceFileLoader"
    assert value == "three"


def test_other_packages_are_not_found(tmp_path):
    finder = importer.PyrunFinder(str(tmp_path), ("pkg",))
    assert finder.find_spec("json") is None
    assert finder.find_spec("pkgx.mod") is None


def test_install_puts_the_finder_before_the_path_finder(monkeypatch):
    from _frozen_importlib_external import PathFinder

    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    importer.install("/nonexistent")
    position = next(i for i, finder in enumerate(sys.meta_path) if isinstance(finder, importer.PyrunFinder))
    assert sys.meta_path[position + 1] is PathFinder
