"""`images.json`: the records of pulled images and the names that point at them.

    {
      "references": {"docker.io/library/httpd:latest": "sha256:<image id>"},
      "images": {
        "sha256:<image id>": {
          "repo_digests": ["docker.io/library/httpd@sha256:<index or manifest>"],
          "manifest_digest": "sha256:...",   # the platform's image manifest
          "platform": "linux/amd64",
          "layers": [{"digest", "media_type", "size", "diff_id", "chain_id"}, ...],
          "size": <bytes unpacked>,
          "pulled": "<RFC 3339 time>"
        }
      }
    }

An image ID is the digest of its config blob, as in Docker. A record is
written only after every blob and layer it names is in place, so an image
is either fully present or absent. Every change happens under the index
lock: read, modify, write atomically.
"""

from __future__ import annotations

from runtime import fileio, jsonio
from runtime.errors import PyrunError
from runtime.store.layout import StoreLayout, locked, write_json_atomic


class StoreCorruptError(PyrunError):
    """A store file that pyrun cannot read."""


class ImageIndex:
    def __init__(self, layout: StoreLayout) -> None:
        self.layout = layout

    def read(self) -> dict:
        """Read the index without the lock; it is replaced atomically, never torn."""
        return read_index(self.layout.index)

    def update(self) -> IndexUpdate:
        """Return a `with` block that locks the index and gives its contents for changes, written back at the end."""
        return IndexUpdate(self.layout)


class IndexUpdate:
    """The index, locked for a `with` block; the dict the block changes is written back when the block succeeds."""

    def __init__(self, layout: StoreLayout) -> None:
        self.layout = layout
        self.lock = locked(layout.lock_file("images"))
        self.data: dict = {}

    def __enter__(self) -> dict:
        self.layout.create()
        self.lock.__enter__()
        try:
            self.data = read_index(self.layout.index)
        except BaseException:
            self.lock.__exit__(None, None, None)
            raise
        return self.data

    def __exit__(self, exc_type: type | None, *exc_info: object) -> None:
        try:
            if exc_type is None:
                write_json_atomic(self.layout.index, self.data)
        finally:
            self.lock.__exit__(exc_type, *exc_info)


def read_index(path: str) -> dict:
    try:
        data = jsonio.loads(fileio.read_bytes(path))
    except FileNotFoundError:
        data = {}
    except (OSError, ValueError) as err:
        raise StoreCorruptError(f"cannot read the image index {path}: {err}",
                                hint="move the file away to start an empty store") from err
    data.setdefault("references", {})
    data.setdefault("images", {})
    return data
