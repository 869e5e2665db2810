"""`pull`: from an image reference to verified blobs and unpacked layers.

The steps, in the order of `Puller.pull`:

1. Resolve the reference to a manifest, trying each endpoint in turn
   (Docker Hub mirrors, then Docker Hub itself). Before asking Docker Hub,
   a HEAD of the manifest reads the rate-limit headers (HEADs do not count
   against the limit) and the digest the tag points at.
2. If an image pulled from that digest is already stored, stop: the image
   is up to date.
3. From an index, fetch the manifest for the requested platform.
4. Download the config blob; its digest is the image ID, and its
   `rootfs.diff_ids` name the uncompressed layers.
5. Download the missing layers in parallel, and unpack each one as soon as
   its download ends. A layer directory is keyed by its chain ID, so images
   that share a base share its directories, and a layer already present is
   neither downloaded nor unpacked again.
6. Write the image record: only now does the image become visible.

A pull holds the garbage-collection lock shared from step 1 to step 6, so a
concurrent `rmi` or `prune` never deletes a layer the pull has unpacked but
not yet recorded.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from registry_client.blobs import download_blob
from registry_client.client import Repository, RegistryClient, remaining_pulls
from registry_client.config import RegistryConfig
from registry_client.errors import ManifestError, PullStopped, RegistryError, UnreachableError
from registry_client.manifests import (Manifest, fetch_manifest, head_manifest,
                                       resolve_platform, sha256_digest)
from registry_client.platform import Platform
from registry_client.reference import Reference
from runtime import explain
from runtime.errors import PyrunError
from runtime.store.layout import (StoreLayout, hex_of, locked, remove_tree, tree_size,
                                  write_atomic)
from runtime.store.reporter import PullReporter
from runtime.log import get_logger, standard_logging
from runtime.records import record

log = get_logger(__name__)

# Warn before pulling from Docker Hub when fewer pulls than this remain.
RATE_LIMIT_WARNING = 10
# Manifest attempts at an endpoint that has another one after it.
FALLBACK_ATTEMPTS = 2


class LayerMismatchError(PyrunError):
    """A layer whose uncompressed digest is not the one the image config names."""


@record
class LayerPlan:
    """One layer of the image being pulled."""

    digest: str          # compressed blob digest, from the manifest
    media_type: str
    size: int
    diff_id: str         # uncompressed digest, from the config
    chain_id: str


def chain_ids(diff_ids: list[str]) -> list[str]:
    """Chain IDs (image spec, config.md): the first is the first diff_id;
    each next one is sha256 of "<previous chain ID> <diff_id>"."""
    result: list[str] = []
    for diff_id in diff_ids:
        if result:
            diff_id = sha256_digest(f"{result[-1]} {diff_id}".encode())
        result.append(diff_id)
    return result


class Puller:
    def __init__(self, layout: StoreLayout, config: RegistryConfig, reporter: PullReporter,
                 requested: Platform, platform_requested: bool) -> None:
        self.layout = layout
        self.config = config
        self.reporter = reporter
        self.requested = requested
        self.platform_requested = platform_requested
        self.client = RegistryClient(config)
        # Set when one layer failed or Ctrl-C was pressed: the other
        # downloads stop at their next chunk or retry.
        self.cancelled = self.client.stopped

    # -- Steps 1 to 3: manifests ---------------------------------------------

    def open_manifest(self, reference: Reference, index_data: dict
                      ) -> tuple[Repository, Manifest | None, str | None]:
        """Fetch the reference's manifest, falling back from mirror to mirror.

        Returns (repository, manifest, image ID). When the stored images
        already contain the digest the registry reports, the image ID is
        set and the manifest may be None (Docker Hub's HEAD response was enough).
        """
        endpoints = self.client.endpoints(reference)
        not_found_at: list[str] = []  # the endpoints that returned 404 for the manifest
        for position, endpoint in enumerate(endpoints):
            repository = self.client.repository(endpoint, reference.repository)
            log.debug("resolving %s at %s", reference, endpoint.describe())
            is_last = position == len(endpoints) - 1
            # While another endpoint remains, retry once and then move on,
            # as Docker does with a mirror that fails.
            if not is_last:
                repository.max_attempts = FALLBACK_ATTEMPTS
            try:
                if reference.is_docker_hub and not endpoint.is_mirror:
                    digest = self.check_rate_limit(repository, reference)
                    image_id = find_pulled(index_data, reference, digest, self.requested,
                                           self.platform_requested)
                    if image_id:
                        return repository, None, image_id
                manifest = fetch_manifest(repository, reference.manifest_reference(),
                                          expected_digest=reference.digest)
                repository.max_attempts = self.client.max_attempts
                log.debug("%s is %s, type %s", reference, manifest.digest, manifest.media_type)
                image_id = find_pulled(index_data, reference, manifest.digest,
                                       self.requested, self.platform_requested)
                return repository, manifest, image_id
            except RegistryError as err:
                if is_last and not_found_at and isinstance(err, UnreachableError):
                    # The last endpoint could not be reached at all, so the
                    # earlier 404 is the error worth reporting.
                    raise RegistryError(
                        f"image {reference.familiar()} was not found at {', '.join(not_found_at)}, "
                        f"and {endpoint.describe()} could not be reached: {err}",
                        hint="check the image's name and tag",
                    ) from err
                if is_last:
                    raise
                if err.status == 404:
                    not_found_at.append(endpoint.describe())
                log.warning("pulling %s from %s failed: %s; trying %s", reference.familiar(),
                            endpoint.describe(), err, endpoints[position + 1].describe())
        raise AssertionError("endpoints() returns at least one endpoint")

    def check_rate_limit(self, repository: Repository, reference: Reference) -> str | None:
        """HEAD the manifest, warn when few Docker Hub pulls remain; return its digest."""
        response = head_manifest(repository, reference.manifest_reference())
        if response.status_code != 200:
            log.debug("HEAD of the manifest returned %d", response.status_code)
            return None
        remaining = remaining_pulls(response.headers)
        if remaining is not None and remaining < RATE_LIMIT_WARNING:
            log.warning("Docker Hub allows %d more pulls from this address in its current "
                        "window (ratelimit-remaining: %s); 'pyrun login' raises the limit",
                        remaining, response.headers.get("ratelimit-remaining"))
        return response.headers.get("Docker-Content-Digest")

    # -- Step 4: the config ----------------------------------------------------

    def fetch_config(self, repository: Repository, manifest: Manifest) -> dict:
        descriptor = manifest.config
        self.ensure_blob(repository, descriptor["digest"], descriptor["size"])
        path = Path(self.layout.blob(descriptor["digest"]))
        try:
            config = json.loads(path.read_bytes())
        except ValueError as err:
            raise ManifestError(f"image config {descriptor['digest']} is not valid JSON") \
                from err
        diff_ids = (config.get("rootfs") or {}).get("diff_ids")
        if not isinstance(diff_ids, list) or len(diff_ids) != len(manifest.layers):
            raise ManifestError(
                f"image config {descriptor['digest']} lists "
                f"{len(diff_ids) if isinstance(diff_ids, list) else 'no'} diff_ids for "
                f"{len(manifest.layers)} layers")
        if self.platform_requested:
            actual = Platform(config.get("os", ""), config.get("architecture", ""),
                              config.get("variant", "")).normalized()
            if (actual.os, actual.architecture) != (self.requested.os,
                                                   self.requested.architecture):
                raise ManifestError(
                    f"the image's platform ({actual}) does not match the requested "
                    f"platform ({self.requested})")
        return config

    # -- Step 5: layers ----------------------------------------------------------

    def fetch_layers(self, repository: Repository, layers: list[LayerPlan]) -> None:
        """Download missing layers in parallel; unpack them in order as they arrive.

        Unpacking goes lowest layer first, because the unpacker reads the
        layers below (for hard-link targets that live there and for the
        attributes of parent directories the tar leaves out).
        """
        missing = []
        for layer in layers:
            if os.path.isdir(self.layout.layer(layer.chain_id)):
                self.reporter.layer_exists(layer.digest)
            else:
                self.reporter.layer_waiting(layer.digest, layer.size)
                missing.append(layer)
        log.debug("%d of %d layers to download", len(missing), len(layers))
        if not missing:
            return

        downloads = ThreadPoolExecutor(self.config.max_concurrent_downloads,
                                       thread_name_prefix="download")
        try:
            futures = [downloads.submit(self.download_layer, repository, layer)
                       for layer in missing]
            for layer, future in zip(missing, futures):
                future.result()
                below = layers[:layers.index(layer)]
                self.unpack_layer(layer, [self.layout.layer(lower.chain_id)
                                          for lower in below])
        except BaseException:
            # Stop the other downloads at their next chunk; their partial
            # files stay for the next pull to resume.
            self.cancelled.set()
            raise
        finally:
            downloads.shutdown(wait=True, cancel_futures=True)

    def download_layer(self, repository: Repository, layer: LayerPlan) -> None:
        if os.path.isdir(self.layout.layer(layer.chain_id)):
            return
        self.ensure_blob(repository, layer.digest, layer.size,
                         lambda done: self.reporter.layer_progress(layer.digest, done,
                                                                   layer.size))
        self.reporter.layer_downloaded(layer.digest)

    def ensure_blob(self, repository: Repository, digest: str, size: int,
                    progress=None) -> None:
        """Download a blob unless the store has it; one process at a time per blob."""
        path = self.layout.blob(digest)
        with locked(self.layout.lock_file(f"blob-{hex_of(digest)}")):
            if os.path.exists(path):
                return

            def report(done: int) -> None:
                if self.cancelled.is_set():
                    raise PullStopped(digest)
                if progress:
                    progress(done)

            download_blob(repository, digest, size, path, self.layout.partial_blob(digest), report)

    def unpack_layer(self, layer: LayerPlan, lowers: list[str]) -> None:
        """Unpack a layer's blob into a temporary directory, check it, rename it into place."""
        from runtime.unpack import unpack_layer

        dest = self.layout.layer(layer.chain_id)
        with locked(self.layout.lock_file(f"layer-{hex_of(layer.chain_id)}")):
            if os.path.isdir(dest):
                self.reporter.layer_complete(layer.digest)
                return
            self.reporter.layer_extracting(layer.digest)
            work = Path(tempfile.mkdtemp(prefix=f"unpack-{os.getpid()}-", dir=self.layout.tmp))
            try:
                diff_id = unpack_layer(self.layout.blob(layer.digest), work,
                                       media_type=layer.media_type, digest=layer.digest,
                                       lowers=lowers)
                if diff_id != layer.diff_id:
                    raise LayerMismatchError(
                        f"layer {layer.digest} unpacks to {diff_id}, but the image "
                        f"config expects {layer.diff_id}",
                        hint="the image is corrupt; ask its publisher to push it again")
                os.rename(work, dest)
                explain.step("unpack layer", digest=layer.digest)
            except BaseException:
                remove_tree(work)
                raise
        self.reporter.layer_complete(layer.digest)


def find_pulled(index_data: dict, reference: Reference, digest: str | None,
                requested: Platform, platform_requested: bool) -> str | None:
    """Return the ID of the stored image pulled from `digest` for `requested`, or None.

    An image from a single-platform manifest matches whatever the host is,
    but not a different `--platform`: that pull goes on, and fails on the
    platform check.
    """
    if not digest:
        return None
    pinned = f"{reference.name}@{digest}"
    for image_id, record in index_data["images"].items():
        if pinned not in record.get("repo_digests", []):
            continue
        if record.get("platform") == str(requested):
            return image_id
        if not record.get("from_index") and not platform_requested:
            return image_id
    return None


def clean_stale_work(layout: StoreLayout) -> None:
    """Delete the unpack, trash and init layer directories of pyrun processes that were killed.

    Their names end in the creating process's ID (`unpack-<pid>-<random>`,
    `trash-<layer>-<pid>`, `init-<image>-<pid>`), so a directory that a
    running pull, `rmi` or first container of an image still uses is left alone.
    """
    tmp = Path(layout.tmp)
    for path in [*tmp.glob("unpack-*"), *tmp.glob("trash-*"), *tmp.glob("init-*")]:
        if path.name.startswith("unpack-"):
            pid_text = path.name.split("-")[1]
        else:
            pid_text = path.name.rsplit("-", 1)[1]
        try:
            pid = int(pid_text)
        except ValueError:
            continue
        if pid != os.getpid() and not _process_exists(pid):
            log.debug("removing %s, left by a pyrun process that was interrupted", path)
            remove_tree(path)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def store_manifest(layout: StoreLayout, manifest: Manifest) -> None:
    path = layout.blob(manifest.digest)
    if not os.path.exists(path):
        write_atomic(path, manifest.body)


def now_rfc3339() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())



def pull_image(layout: StoreLayout, index, name: str, *, reporter: PullReporter,
               platform: str | None = None, mirrors: tuple[str, ...] = ()) -> str:
    """Pull `name` into the store; return the image ID. Steps 1 to 6 above."""
    from registry_client.config import load_config
    from registry_client.platform import host_platform, parse_platform
    from registry_client.reference import parse_reference

    # The registry client logs through the logging module itself: give it
    # the level and format the command line asked for.
    standard_logging()
    reference = parse_reference(name)
    if parse_reference(name, default_tag=False).tag is None and not reference.digest:
        reporter.using_default_tag(reference.tag)
    requested = parse_platform(platform) if platform else host_platform()
    config = load_config()
    for mirror in mirrors:
        config.add_mirror(mirror)

    layout.create()
    clean_stale_work(layout)
    puller = Puller(layout, config, reporter, requested, platform_requested=bool(platform))
    try:
        with locked(layout.lock_file("gc"), shared=True):
            return _pull(puller, layout, index, reference, requested)
    finally:
        puller.client.close()


def _pull(puller: Puller, layout: StoreLayout, index, reference: Reference,
          requested: Platform) -> str:
    puller.reporter.pulling_from(reference.tag or reference.digest, reference.repository)
    repository, top, image_id = puller.open_manifest(reference, index.read())
    if image_id:
        _record(index, reference, image_id, None)
        puller.reporter.digest(_top_digest(index, reference, image_id, top))
        puller.reporter.status(f"Image is up to date for {reference.familiar()}")
        return image_id

    manifest = top
    if top.is_index:
        manifest = resolve_platform(repository, top, requested, reference.familiar())
    config = puller.fetch_config(repository, manifest)
    image_id = manifest.config["digest"]
    diff_ids = config["rootfs"]["diff_ids"]
    layers = [LayerPlan(descriptor["digest"], descriptor["mediaType"], descriptor["size"],
                        diff_id, chain_id)
              for descriptor, diff_id, chain_id
              in zip(manifest.layers, diff_ids, chain_ids(diff_ids))]
    puller.fetch_layers(repository, layers)

    store_manifest(layout, top)
    store_manifest(layout, manifest)
    layer_records = []
    for layer in layers:
        layer_records.append({
            "digest": layer.digest, "media_type": layer.media_type, "size": layer.size,
            "diff_id": layer.diff_id, "chain_id": layer.chain_id,
            "unpacked_size": tree_size(layout.layer(layer.chain_id)),
        })
    record = {
        "repo_digests": [f"{reference.name}@{top.digest}"],
        "manifest_digest": manifest.digest,
        "manifest_blobs": sorted({top.digest, manifest.digest}),
        "from_index": top.is_index,
        "platform": str(Platform(config.get("os", ""), config.get("architecture", ""),
                                 config.get("variant", "")).normalized()),
        "layers": layer_records,
        "size": sum(layer["unpacked_size"] for layer in layer_records),
        "pulled": now_rfc3339(),
    }
    _record(index, reference, image_id, record)
    puller.reporter.digest(top.digest)
    puller.reporter.status(f"Downloaded newer image for {reference.familiar()}")
    return image_id


def _record(index, reference: Reference, image_id: str, record: dict | None) -> None:
    """Write the image record (merging repo digests) and point the tag at it."""
    with index.update() as data:
        existing = data["images"].get(image_id)
        if record is not None:
            if existing:
                digests = existing.get("repo_digests", []) + record["repo_digests"]
                record["repo_digests"] = sorted(set(digests))
                record["pulled"] = existing.get("pulled", record["pulled"])
            data["images"][image_id] = record
        if reference.tag:
            data["references"][str(reference)] = image_id


def _top_digest(index, reference: Reference, image_id: str, top: Manifest | None) -> str:
    if top is not None:
        return top.digest
    prefix = f"{reference.name}@"
    for repo_digest in index.read()["images"][image_id].get("repo_digests", []):
        if repo_digest.startswith(prefix):
            return repo_digest[len(prefix):]
    return ""
