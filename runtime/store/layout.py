"""The image store's directory layout, and how it writes files safely.

    <root>/blobs/sha256/<hex>      manifests, configs, compressed layers
    <root>/layers/<chain-id hex>/  one unpacked layer, shared by images
    <root>/init-layers/<id hex>/   the mountpoints an image lacks (runtime.store.init_layer)
    <root>/images.json             image records and names -> image IDs
    <root>/containers/<id>/        containers (written by the runtime)
    <root>/tmp/                    partial downloads, unpacking, lock files

A file or directory appears at its final path only through `rename`, which
is atomic on one filesystem, so a reader sees all of it or none. Writers
that could race (two pulls of one image) take an `fcntl` lock first;
the kernel drops it when the process dies, so a killed pull never leaves a
stale lock behind.

Paths are strings joined with os.path, not pathlib.Path: `pyrun run`
looks an image up on every start, and importing pathlib costs about 15 ms
(python -X importtime, Python 3.11), because it imports fnmatch, re and
urllib. The functions that take a path accept a Path too.
"""

from __future__ import annotations

import fcntl
import os

from runtime import jsonio

class StoreLayout:
    """The paths of one store, as strings."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = os.fspath(root)
        self.blobs = os.path.join(self.root, "blobs", "sha256")
        self.layers = os.path.join(self.root, "layers")
        self.index = os.path.join(self.root, "images.json")
        self.containers = os.path.join(self.root, "containers")
        self.tmp = os.path.join(self.root, "tmp")
        self.partial = os.path.join(self.tmp, "partial")
        self.locks = os.path.join(self.tmp, "locks")

    def create(self) -> None:
        for directory in (self.blobs, self.layers, self.containers, self.partial, self.locks):
            os.makedirs(directory, exist_ok=True)
        os.chmod(self.root, 0o700)

    def blob(self, digest: str) -> str:
        return os.path.join(self.blobs, hex_of(digest))

    def layer(self, chain_id: str) -> str:
        return os.path.join(self.layers, hex_of(chain_id))

    def partial_blob(self, digest: str) -> str:
        return os.path.join(self.partial, hex_of(digest))

    def lock_file(self, name: str) -> str:
        return os.path.join(self.locks, f"{name}.lock")


def hex_of(digest: str) -> str:
    """Return the hex part of `sha256:<hex>`, checked so that it is safe as a file name."""
    algorithm, _, value = digest.partition(":")
    if algorithm != "sha256" or len(value) != 64 or not all(c in "0123456789abcdef"
                                                            for c in value):
        raise ValueError(f"invalid sha256 digest {digest!r}")
    return value


class locked:
    """An `fcntl.flock` on `path` (created if missing), held for a `with` block.

    With `wait=False`, entering raises `BlockingIOError` at once if another
    process holds a conflicting lock. A class, not contextlib: see
    "Start-up cost" in docs/architecture.md.
    """

    def __init__(self, path: str | os.PathLike, *, shared: bool = False, wait: bool = True) -> None:
        self.path = path
        self.operation = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        if not wait:
            self.operation |= fcntl.LOCK_NB
        self.file = None

    def __enter__(self) -> None:
        self.file = open(self.path, "a")
        try:
            fcntl.flock(self.file, self.operation)
        except BaseException:
            self.file.close()
            raise

    def __exit__(self, *exc_info: object) -> None:
        try:
            fcntl.flock(self.file, fcntl.LOCK_UN)
        finally:
            self.file.close()


def write_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to a temporary file beside `path`, then rename it over `path`."""
    import tempfile  # here, not at the top: `pyrun run` never writes to the store

    directory, name = os.path.split(os.fspath(path))
    descriptor, temporary = tempfile.mkstemp(prefix=f".{name}.", dir=directory)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def write_json_atomic(path: str | os.PathLike, data: object) -> None:
    write_atomic(path, (jsonio.dumps(data, indent=2, sort_keys=True) + "\n").encode())


def remove_tree(path: str | os.PathLike) -> None:
    """Delete a directory tree, also one with read-only directories in it."""
    import shutil  # here, not at the top: `pyrun run` never removes from the store

    def make_writable_and_retry(function, name, _excinfo):
        os.chmod(os.path.dirname(name), 0o700)
        function(name)

    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, onerror=make_writable_and_retry)
    elif os.path.lexists(path):
        os.unlink(path)


def tree_size(path: str | os.PathLike) -> int:
    """Add up the sizes (lstat) of everything under `path` except directories."""
    total = 0
    for directory, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(directory, name)).st_size
            except OSError:
                pass
    return total
