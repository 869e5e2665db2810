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

from contextlib import contextmanager

from runtime import jsonio
from runtime.errors import PyrunError
from runtime.store.layout import StoreLayout, locked, write_json_atomic

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterator


class StoreCorruptError(PyrunError):
    """A store file that pyrun cannot read."""


class ImageIndex:
    def __init__(self, layout: StoreLayout) -> None:
        self.layout = layout

    def read(self) -> dict:
        """Read the index without the lock; it is replaced atomically, never torn."""
        return read_index(self.layout.index)

    @contextmanager
    def update(self) -> Iterator[dict]:
        """Lock the index, yield its contents for changes, and write them back."""
        self.layout.create()
        with locked(self.layout.lock_file("images")):
            data = read_index(self.layout.index)
            yield data
            write_json_atomic(self.layout.index, data)


def read_index(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as file:
            data = jsonio.load(file)
    except FileNotFoundError:
        data = {}
    except (OSError, ValueError) as err:
        raise StoreCorruptError(f"cannot read the image index {path}: {err}",
                                hint="move the file away to start an empty store") from err
    data.setdefault("references", {})
    data.setdefault("images", {})
    return data
