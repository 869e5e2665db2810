"""A finder that loads pyrun's own modules straight from their compiled files.

Python's own finder costs about 0.1 ms per module on the development VM,
before the module's code runs. It tries each file suffix a module may have
(two kinds of extension module, .py, .pyc) through several layers of
importlib. The loader then stats the source, opens the cached file, and
checks it, each step a Python function. `pyrun run` loads some fifty of
pyrun's modules, so that is about 5 ms of every start.

The launcher (runtime/launcher.py) puts `PyrunFinder` on sys.meta_path,
just before Python's path finder. For a module of the `runtime` or
`registry_client` package, it stats the source once and reads
`__pycache__/NAME.cpython-XY.pyc`. It checks, as the standard loader
does, that this Python compiled the file from this version of the source:
the magic number, the source's modification time and size. When anything
is off (no compiled file yet, a stale one, a module that is not a plain
.py file), it declines, and Python's own finder loads the module and
writes a fresh compiled file.
"""

from __future__ import annotations

import _imp
import marshal
import os
import sys
from _frozen_importlib import ModuleSpec
from _frozen_importlib_external import MAGIC_NUMBER

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType

# The header of a compiled file (PEP 552): magic number, flags, then the
# source's modification time and size, four little-endian bytes each.
# Flags 0 mean the file is checked against the source by time and size.
HEADER_SIZE = 16
CACHE_TAG = sys.implementation.cache_tag  # "cpython-311"
READ_SIZE = 1 << 18  # larger than any of pyrun's compiled files, so one read(2) and one at the end


class PyrunFinder:
    """A meta path finder and loader for the packages under one directory."""

    def __init__(self, directory: str, packages: tuple[str, ...]) -> None:
        self.directory = directory
        self.packages = packages

    def find_spec(self, name: str, path: object = None, target: ModuleType | None = None) -> ModuleSpec | None:
        if name.partition(".")[0] not in self.packages:
            return None
        relative = name.replace(".", "/")
        for source, is_package in ((f"{self.directory}/{relative}.py", False),
                                   (f"{self.directory}/{relative}/__init__.py", True)):
            try:
                status = os.stat(source)
            except OSError:
                continue
            folder, _, file_name = source.rpartition("/")
            cached = f"{folder}/__pycache__/{file_name[:-3]}.{CACHE_TAG}.pyc"
            code_bytes = _read_current(cached, status)
            if code_bytes is None:
                return None  # Python's own finder compiles it and writes the cache
            spec = ModuleSpec(name, self, origin=source, loader_state=code_bytes, is_package=is_package)
            spec.has_location = True
            spec.cached = cached
            if is_package:
                spec.submodule_search_locations = [folder]
            return spec
        return None

    def create_module(self, spec: ModuleSpec) -> None:
        return None  # the default module object

    def exec_module(self, module: ModuleType) -> None:
        spec = module.__spec__
        code = marshal.loads(spec.loader_state)
        spec.loader_state = None
        _imp._fix_co_filename(code, spec.origin)  # as the standard loader does, for a moved checkout
        exec(code, module.__dict__)


def _read_current(cached: str, source_status: os.stat_result) -> memoryview | None:
    """Return the code part of the compiled file `cached` if it matches the source, else None."""
    data = _read_whole(cached)
    if data is None:
        return None
    header = data[:HEADER_SIZE]
    if (
        len(header) != HEADER_SIZE
        or header[:4] != MAGIC_NUMBER
        or header[4:8] != b"\0\0\0\0"
        or int.from_bytes(header[8:12], "little") != int(source_status.st_mtime) & 0xFFFFFFFF
        or int.from_bytes(header[12:16], "little") != source_status.st_size & 0xFFFFFFFF
    ):
        return None
    return memoryview(data)[HEADER_SIZE:]


def _read_whole(path: str) -> bytes | None:
    """Return the bytes of the file `path`, or None when it cannot be read.

    os.read, not open(): a file object costs an fstat(2), an ioctl(2) that
    checks whether the file is a terminal, and its own buffer, for each module.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        chunks = []
        while chunk := os.read(fd, READ_SIZE):
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)


def install(directory: str, packages: tuple[str, ...] = ("runtime", "registry_client")) -> None:
    """Put a PyrunFinder for `packages` under `directory` on sys.meta_path, before the path finder.

    Finders that come earlier (the built-in and frozen modules' finders,
    and hooks that tools or tests insert at the front) still come first.
    """
    from _frozen_importlib_external import PathFinder

    finder = PyrunFinder(directory, packages)
    if PathFinder in sys.meta_path:
        sys.meta_path.insert(sys.meta_path.index(PathFinder), finder)
    else:
        sys.meta_path.append(finder)
