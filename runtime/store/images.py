"""The image store: look up, list, tag, remove and prune pulled images.

Pulling lives in `runtime.store.pull`, which alone imports the registry
client (and `requests`), so `lookup` stays cheap for `pyrun run`.
"""

from __future__ import annotations

import os
import sys

from runtime import fileio, jsonio
from runtime.errors import NotFoundError, PyrunError, UsageError
from runtime.store.index import ImageIndex
from runtime.store.layout import StoreLayout, hex_of, locked, remove_tree, tree_size
from runtime.log import get_logger
from runtime.records import factory, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from runtime.store.reporter import PullReporter

log = get_logger(__name__)

LOWERCASE_HEX = frozenset("0123456789abcdef")


class ImageInUseError(PyrunError):
    """An image that a container uses, removed without --force."""


@record
class Image:
    """A pulled image: what `pyrun run` needs to build a container."""

    id: str                         # "sha256:<config digest>"
    reference: str                  # "docker.io/library/busybox:latest", or the ID
    config: dict                    # the image config JSON
    layer_dirs: list[str]           # unpacked layers, lowest first
    record: dict = factory(dict)
    repo_tags: list[str] = factory(list)

    @property
    def repo_digests(self) -> list[str]:
        return list(self.record.get("repo_digests", []))

    @property
    def size(self) -> int:
        return int(self.record.get("size", 0))


class ImageStore:
    def __init__(self, root: str | os.PathLike) -> None:
        self.layout = StoreLayout(root)
        self.index = ImageIndex(self.layout)

    # -- Reading -------------------------------------------------------------

    def lookup(self, name: str) -> Image | None:
        """Find an image by reference (`busybox`, `a/b@sha256:...`) or ID; None if absent."""
        data = self.index.read()
        image_id = self._resolve(data, name)
        if image_id is None:
            return None
        return self._load(data, image_id, name)

    def get(self, name: str) -> Image:
        """Like `lookup`, but raise `NotFoundError` naming the image when it is absent."""
        image = self.lookup(name)
        if image is None:
            raise NotFoundError(f"no such image: {name}",
                                hint=f"pull it first with 'pyrun pull {name}'")
        return image

    def list_images(self) -> list[Image]:
        """Return every image in the store, newest pull first."""
        data = self.index.read()
        images = [self._load(data, image_id, image_id) for image_id in data["images"]]
        images.sort(key=lambda image: image.record.get("pulled", ""), reverse=True)
        return images

    def _resolve(self, data: dict, name: str) -> str | None:
        return self._resolve_kind(data, name)[0]

    def _resolve_kind(self, data: dict, name: str) -> tuple[str | None, str]:
        """Find the image `name` means; return (image ID or None, "tag", "digest" or "id")."""
        from registry_client.errors import InvalidReferenceError
        from registry_client.reference import parse_reference

        try:
            reference = parse_reference(name)
        except InvalidReferenceError:
            reference = None
        if reference is not None and reference.digest:
            pinned = f"{reference.name}@{reference.digest}"
            for image_id, record in data["images"].items():
                if pinned in record.get("repo_digests", []):
                    return image_id, "digest"
        elif reference is not None and str(reference) in data["references"]:
            return data["references"][str(reference)], "tag"
        return self._resolve_id(data, name), "id"

    def _resolve_id(self, data: dict, name: str) -> str | None:
        if not is_image_id_prefix(name):
            return None
        prefix = "sha256:" + name.removeprefix("sha256:")
        found = [image_id for image_id in data["images"] if image_id.startswith(prefix)]
        if len(found) > 1:
            raise UsageError(f"image ID prefix {name!r} is ambiguous: it matches "
                             f"{len(found)} images", hint="give more digits")
        return found[0] if found else None

    def _load(self, data: dict, image_id: str, reference: str) -> Image:
        record = data["images"][image_id]
        config_path = self.layout.blob(image_id)
        try:
            config = jsonio.loads(fileio.read_bytes(config_path))
        except (OSError, ValueError) as err:
            raise PyrunError(f"cannot read the config of image {image_id} at "
                             f"{config_path}: {err}",
                             hint=f"remove the image with 'pyrun rmi -f {image_id}' "
                                  "and pull it again") from err
        tags = sorted(name for name, target in data["references"].items()
                      if target == image_id)
        if reference not in tags:
            reference = _canonical(reference, tags, image_id)
        layer_dirs = [self.layout.layer(layer["chain_id"]) for layer in record["layers"]]
        return Image(image_id, reference, config, layer_dirs, record, tags)

    # -- Pulling -------------------------------------------------------------

    def pull(self, name: str, *, quiet: bool = False, platform: str | None = None,
             reporter: PullReporter | None = None, mirrors: tuple[str, ...] = ()) -> Image:
        """Pull `name` from its registry (or Docker Hub's mirrors) and return the image.

        Progress goes to `reporter`; without one, Docker-style lines go to
        stderr unless `quiet`. `platform` is `os/arch[/variant]`, by default
        the host's. `mirrors` come before the configured registry mirrors.
        """
        from runtime.store.pull import pull_image

        if reporter is None:
            if quiet:
                from runtime.store.reporter import PullReporter

                reporter = PullReporter()
            else:
                from runtime.cli.progress import PullProgress

                reporter = PullProgress(sys.stderr)
        try:
            image_id = pull_image(self.layout, self.index, name, reporter=reporter,
                                  platform=platform, mirrors=mirrors)
        finally:
            reporter.close()
        return self.lookup(name) or self.get(image_id)

    # -- Names ---------------------------------------------------------------

    def tag(self, source: str, target: str) -> str:
        """Point the name `target` at the image `source` names; return the full name."""
        from registry_client.reference import parse_reference

        reference = parse_reference(target)
        if reference.digest:
            raise UsageError(f"invalid tag {target!r}: a tag cannot contain a digest")
        with self.index.update() as data:
            image_id = self._resolve(data, source)
            if image_id is None:
                raise NotFoundError(f"no such image: {source}")
            data["references"][str(reference)] = image_id
        return str(reference)

    def images_used_by_containers(self) -> dict[str, str]:
        """Image IDs that containers use, mapped to one such container's ID."""
        used = {}
        try:
            entries = os.listdir(self.layout.containers)
        except FileNotFoundError:
            return used
        for entry in entries:
            try:
                with open(os.path.join(self.layout.containers, entry, "state.json"), encoding="utf-8") as file:
                    state = jsonio.load(file)
            except (OSError, ValueError):
                continue
            image_id = state.get("image_id")
            if image_id:
                used.setdefault(image_id, entry)
        return used

    # -- Removal -------------------------------------------------------------

    def remove(self, name: str, *, force: bool = False) -> list[tuple[str, str]]:
        """Remove a name, or an image with all its names, as `docker rmi` does.

        Returns the steps taken, as ("Untagged", name) and ("Deleted", id).
        An image that a container uses loses only its names, and only with
        `force`; its layers stay until the container is gone.
        """
        from registry_client.reference import parse_reference

        steps: list[tuple[str, str]] = []
        users = self.images_used_by_containers()
        with self.index.update() as data:
            image_id, kind = self._resolve_kind(data, name)
            if image_id is None:
                raise NotFoundError(f"no such image: {name}")
            tags = [tag for tag, target in data["references"].items() if target == image_id]

            if kind == "tag":
                tag = str(parse_reference(name))
                if len(tags) > 1:
                    del data["references"][tag]
                    return [("Untagged", _familiar(tag))]
            elif len(tags) > 1 and not force:
                raise UsageError(
                    f"conflict: unable to delete {_short(image_id)} (must be forced): "
                    f"the image is referenced in {len(tags)} repositories",
                    hint="remove the names one by one, or use -f")

            container = users.get(image_id)
            if container and not force:
                raise ImageInUseError(
                    f"conflict: unable to remove image {name}: container "
                    f"{container[:12]} is using it", hint="remove the container first, or use -f")
            for tag in tags:
                del data["references"][tag]
                steps.append(("Untagged", _familiar(tag)))
            if container:
                return steps
            record = data["images"].pop(image_id)
            for repo_digest in record.get("repo_digests", []):
                steps.append(("Untagged", _familiar(repo_digest)))
            steps.append(("Deleted", image_id))
            self._collect_garbage(data)
        return steps

    def prune(self) -> tuple[list[str], int]:
        """Delete dangling images (no name, no container); return their IDs and bytes freed."""
        users = self.images_used_by_containers()
        with self.index.update() as data:
            named = set(data["references"].values())
            dangling = [image_id for image_id in data["images"]
                        if image_id not in named and image_id not in users]
            for image_id in dangling:
                data["images"].pop(image_id)
            freed = self._collect_garbage(data)
        return dangling, freed

    def _collect_garbage(self, data: dict) -> int:
        """Delete layers and blobs no remaining image uses; return the bytes freed.

        Runs under the index lock. A pull holds the garbage-collection lock
        shared from before its first download until its record is written,
        so when a pull is running the clean-up is skipped and left for the
        next `rmi` or `prune`.
        """
        gc_lock = self.layout.lock_file("gc")
        try:
            with locked(gc_lock, wait=False):
                return self._delete_unused(data)
        except BlockingIOError:
            log.info("a pull is running; unused layers stay until the next prune")
            return 0

    def _delete_unused(self, data: dict) -> int:
        keep_layers, keep_blobs = set(), set()
        for image_id, record in data["images"].items():
            keep_blobs.add(hex_of(image_id))
            keep_blobs.update(hex_of(d) for d in record.get("manifest_blobs", []))
            for layer in record["layers"]:
                keep_layers.add(hex_of(layer["chain_id"]))
                keep_blobs.add(hex_of(layer["digest"]))
        freed = 0
        for name in _list_directory(self.layout.layers):
            if name not in keep_layers:
                path = os.path.join(self.layout.layers, name)
                freed += tree_size(path)
                # Rename first, so a half-deleted layer never sits at its path.
                trash = os.path.join(self.layout.tmp, f"trash-{name}-{os.getpid()}")
                os.rename(path, trash)
                remove_tree(trash)
        from runtime.store.init_layer import remove_unused_init_layers

        remove_unused_init_layers(self.layout.root, set(data["images"]))
        for name in _list_directory(self.layout.blobs):
            if name not in keep_blobs and not name.startswith("."):
                path = os.path.join(self.layout.blobs, name)
                freed += os.stat(path).st_size
                os.unlink(path)
        # No pull holds a blob or layer lock while the collector runs, so
        # their lock files (blob-*.lock, layer-*.lock) can go too; the next
        # pull creates them again.
        for name in _list_directory(self.layout.locks):
            if name.startswith(("blob-", "layer-")) and name.endswith(".lock"):
                os.unlink(os.path.join(self.layout.locks, name))
        return freed


def _list_directory(path: str) -> list[str]:
    """Return the names in the directory `path`, or [] when it does not exist."""
    try:
        return os.listdir(path)
    except FileNotFoundError:
        return []


def is_image_id_prefix(name: str) -> bool:
    """Tell whether `name` is 4 to 64 lowercase hex digits, optionally after "sha256:"."""
    digits = name.removeprefix("sha256:")
    return 4 <= len(digits) <= 64 and set(digits) <= LOWERCASE_HEX


def _familiar(name: str) -> str:
    from registry_client.reference import parse_reference

    return parse_reference(name).familiar()


def _short(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


def _canonical(reference: str, tags: list[str], image_id: str) -> str:
    """Return the name to report for an image found by ID or digest.

    That is the lookup text if it is a reference, else the first tag, else the ID.
    """
    if is_image_id_prefix(reference):
        return tags[0] if tags else image_id
    from registry_client.reference import parse_reference

    return str(parse_reference(reference))
