"""Manifests: fetch, identify, verify, and resolve an index to one platform.

A tag points at either an image manifest (config + layers) or an index
(Docker calls it a manifest list) of manifests, one per platform. The
registry names the type in `Content-Type`; the JSON's own `mediaType`, when
present, must agree. Old or unusual registries send `application/json`,
so a body without `mediaType` is identified by its shape.

Pulling by digest must give exactly the bytes that digest names, so the
SHA-256 of the body is compared with the reference's digest and with the
`Docker-Content-Digest` header.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass

from registry_client.client import Repository
from registry_client.errors import ManifestError
from registry_client.platform import (Platform, available_platforms, choose_manifest)

log = logging.getLogger(__name__)

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

INDEX_TYPES = {OCI_INDEX, DOCKER_MANIFEST_LIST}
MANIFEST_TYPES = {OCI_MANIFEST, DOCKER_MANIFEST}
# Sent with every manifest request. Without the OCI index type, Docker Hub
# returns MANIFEST_UNKNOWN for images whose tag points at an OCI index.
ACCEPT = ", ".join([OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST])

CONFIG_TYPES = {
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
}
LAYER_TYPES = {
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
}
FOREIGN_LAYER_TYPES = {
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
}
# A manifest larger than this is not an image manifest (the spec suggests 4 MiB).
MAX_MANIFEST_SIZE = 4 * 1024 * 1024


@dataclass
class Manifest:
    """A manifest or index as fetched: its exact bytes, digest, type and JSON."""

    media_type: str
    body: bytes
    digest: str
    data: dict

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES

    @property
    def config(self) -> dict:
        return self.data["config"]

    @property
    def layers(self) -> list[dict]:
        return self.data["layers"]


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def head_manifest(repository: Repository, reference: str):
    """HEAD a manifest; returns the response (its digest and rate-limit headers)."""
    url = repository.url(f"manifests/{reference}")
    response = repository.request("HEAD", url, headers={"Accept": ACCEPT})
    response.close()
    return response


def fetch_manifest(repository: Repository, reference: str, *,
                   expected_digest: str | None = None) -> Manifest:
    """GET a manifest by tag or digest, identify its type and verify its digest."""
    url = repository.url(f"manifests/{reference}")
    response = repository.request("GET", url, headers={"Accept": ACCEPT})
    if response.status_code != 200:
        if response.status_code == 404:
            raise repository.error(f"manifest for {repository.name}:{reference} not found",
                                   "GET", url, response, ManifestError)
        raise repository.error(f"fetching the manifest for {repository.name}:{reference} "
                               "failed", "GET", url, response, ManifestError)
    body = response.content
    if len(body) > MAX_MANIFEST_SIZE:
        raise ManifestError(f"manifest for {reference} is larger than 4 MiB",
                            method="GET", url=url)

    digest = sha256_digest(body)
    if expected_digest and digest != expected_digest:
        raise ManifestError(
            f"manifest digest mismatch: requested {expected_digest}, "
            f"the registry sent {digest}", method="GET", url=url)
    header_digest = response.headers.get("Docker-Content-Digest", "")
    if header_digest.startswith("sha256:") and header_digest != digest:
        raise ManifestError(
            f"manifest digest mismatch: Docker-Content-Digest is {header_digest}, "
            f"the body is {digest}", method="GET", url=url)

    content_type = response.headers.get("Content-Type", "").split(";")[0].strip()
    try:
        data = json.loads(body)
    except ValueError as err:
        raise ManifestError(f"manifest for {reference} is not valid JSON",
                            method="GET", url=url) from err
    if not isinstance(data, dict):
        raise ManifestError(f"manifest for {reference} is not a JSON object",
                            method="GET", url=url)
    media_type = identify(data, content_type, url)
    manifest = Manifest(media_type, body, digest, data)
    if not manifest.is_index:
        check_image_manifest(manifest, url)
    return manifest


def identify(data: dict, content_type: str, url: str) -> str:
    """Decide a manifest's media type from Content-Type, `mediaType` and shape."""
    declared = data.get("mediaType", "")
    if data.get("schemaVersion") == 1 or content_type in (DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED) \
            or declared in (DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED):
        raise ManifestError(
            "the registry serves this image as a Docker schema 1 manifest, which "
            "pyrun does not support (Docker removed it in version 28.2)",
            url=url, hint="push the image again with a current Docker or buildah")

    known = INDEX_TYPES | MANIFEST_TYPES
    if declared and content_type in known and declared != content_type:
        raise ManifestError(
            f"manifest media type {declared} does not match the Content-Type "
            f"{content_type}", url=url)
    for candidate in (declared, content_type):
        if candidate in known:
            return candidate
    if declared or content_type not in ("", "application/json", "application/octet-stream",
                                        "text/plain"):
        raise ManifestError(
            f"unsupported manifest media type {declared or content_type}", url=url)

    # Neither names a known type: decide by shape, as the OCI image spec allows.
    if isinstance(data.get("manifests"), list):
        return OCI_INDEX
    if isinstance(data.get("config"), dict) and isinstance(data.get("layers"), list):
        return OCI_MANIFEST
    raise ManifestError("the registry's response is neither an image manifest nor an index",
                        url=url)


def check_image_manifest(manifest: Manifest, url: str) -> None:
    """Reject manifests whose config or layers pyrun cannot use, naming the blob."""
    config = manifest.data.get("config")
    layers = manifest.data.get("layers")
    if not isinstance(config, dict) or not isinstance(layers, list):
        raise ManifestError("image manifest without config or layers", url=url)
    for descriptor in [config, *layers]:
        if not isinstance(descriptor, dict) or not str(descriptor.get("digest", "")) \
                .startswith("sha256:") or not isinstance(descriptor.get("size"), int):
            raise ManifestError(f"invalid descriptor in the manifest: {descriptor!r}", url=url)
    if config.get("mediaType") not in CONFIG_TYPES:
        raise ManifestError(
            f"unsupported image config type {config.get('mediaType')!r}: this artifact "
            "is not a container image", url=url)
    for layer in layers:
        media_type = layer.get("mediaType", "")
        if media_type in FOREIGN_LAYER_TYPES or layer.get("urls"):
            raise ManifestError(
                f"layer {layer['digest']} is a foreign (non-distributable) layer, "
                f"which pyrun does not download", url=url,
                hint="such layers belong to Windows base images")
        if media_type not in LAYER_TYPES:
            raise ManifestError(f"layer {layer['digest']} has unsupported media type "
                                f"{media_type!r}", url=url)


def resolve_platform(repository: Repository, index: Manifest, wanted: Platform,
                     reference: str) -> Manifest:
    """Fetch the image manifest for `wanted` from an index."""
    entries = index.data.get("manifests") or []
    chosen = choose_manifest(entries, wanted)
    if chosen is None:
        offered = ", ".join(available_platforms(entries)) or "none"
        raise ManifestError(
            f"no matching manifest for {wanted} in the manifest list entries of "
            f"{reference} (available: {offered})",
            hint="choose one with --platform")
    log.debug("index %s: chose %s for %s", index.digest, chosen["digest"], wanted)
    manifest = fetch_manifest(repository, chosen["digest"], expected_digest=chosen["digest"])
    if manifest.is_index:
        raise ManifestError(f"index entry {chosen['digest']} is another index, "
                            "which pyrun does not follow")
    return manifest
