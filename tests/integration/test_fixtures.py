"""The test registry serves every fixture image as the other tests expect."""

from __future__ import annotations

import hashlib
import json

import pytest
import requests

pytestmark = [pytest.mark.root, pytest.mark.registry]

MANIFEST_ACCEPT = ", ".join([
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
])

EXPECTED_LAYER_COUNTS = {
    "library/busybox:latest": 1,
    "library/busybox:uncompressed": 1,
    "library/busybox:zstd": 1,
    "library/busybox:docker": 1,
    "library/manylayers:latest": 45,
    "library/dive:latest": 14,
}


def get_manifest(base_url: str, repository: str, reference: str, **kwargs) -> requests.Response:
    return requests.get(f"{base_url}/v2/{repository}/manifests/{reference}",
                        headers={"Accept": MANIFEST_ACCEPT}, timeout=10, **kwargs)


def test_catalog_lists_repositories(registry):
    catalog = requests.get(f"{registry.url}/v2/_catalog", timeout=10).json()
    for repository in ("library/busybox", "library/manylayers", "library/multiarch",
                       "library/dive"):
        assert repository in catalog["repositories"]


def test_registry_listens_on_loopback(registry):
    assert registry.url.startswith("http://127.0.0.1:")
    assert registry.host == registry.url.removeprefix("http://")


@pytest.mark.parametrize("reference", sorted(EXPECTED_LAYER_COUNTS) + ["library/multiarch:latest"])
def test_manifest_by_tag_and_digest(registry, reference):
    image = registry.images[reference]
    by_tag = get_manifest(registry.url, image.repository, image.tag)
    assert by_tag.status_code == 200
    assert by_tag.headers["Content-Type"] == image.manifest.media_type
    assert by_tag.headers["Docker-Content-Digest"] == image.digest
    assert "sha256:" + hashlib.sha256(by_tag.content).hexdigest() == image.digest

    by_digest = get_manifest(registry.url, image.repository, image.digest)
    assert by_digest.status_code == 200
    assert by_digest.content == by_tag.content


@pytest.mark.parametrize("reference,count", sorted(EXPECTED_LAYER_COUNTS.items()))
def test_layer_counts(registry, reference, count):
    image = registry.images[reference]
    manifest = get_manifest(registry.url, image.repository, image.tag).json()
    assert image.layer_count == count
    assert len(manifest["layers"]) == count


def test_layer_blobs_match_digests(registry):
    image = registry.images["library/busybox:zstd"]
    for blob in [image.config, *image.layers]:
        response = requests.get(f"{registry.url}/v2/{image.repository}/blobs/{blob.digest}",
                                timeout=30)
        assert response.status_code == 200
        assert "sha256:" + hashlib.sha256(response.content).hexdigest() == blob.digest
    assert response.content[:4] == b"\x28\xb5\x2f\xfd"  # the zstd frame magic


@pytest.mark.parametrize("tag,layer_type,magic", [
    ("latest", "application/vnd.oci.image.layer.v1.tar+gzip", b"\x1f\x8b"),
    ("uncompressed", "application/vnd.oci.image.layer.v1.tar", None),
    ("zstd", "application/vnd.oci.image.layer.v1.tar+zstd", b"\x28\xb5\x2f\xfd"),
    ("docker", "application/vnd.docker.image.rootfs.diff.tar.gzip", b"\x1f\x8b"),
])
def test_busybox_variants_media_types(registry, tag, layer_type, magic):
    image = registry.images[f"library/busybox:{tag}"]
    assert image.layers[0].media_type == layer_type
    blob = requests.get(f"{registry.url}/v2/library/busybox/blobs/{image.layers[0].digest}",
                        timeout=30).content
    if magic is None:
        assert blob[257:262] == b"ustar"
    else:
        assert blob.startswith(magic)


def test_busybox_variants_share_diff_ids(registry):
    configs = []
    for tag in ("latest", "uncompressed", "zstd", "docker"):
        image = registry.images[f"library/busybox:{tag}"]
        response = requests.get(f"{registry.url}/v2/library/busybox/blobs/{image.config.digest}",
                                timeout=10)
        configs.append(response.json())
    assert len({json.dumps(config["rootfs"]) for config in configs}) == 1
    assert configs[0]["config"]["Cmd"] == ["sh"]


def test_multiarch_index_platforms(registry):
    image = registry.images["library/multiarch:latest"]
    index = get_manifest(registry.url, "library/multiarch", "latest").json()
    platforms = [(entry["platform"]["os"], entry["platform"]["architecture"])
                 for entry in index["manifests"]]
    assert platforms == [("linux", "amd64"), ("linux", "arm64"), ("unknown", "unknown")]
    attestation = index["manifests"][2]
    assert attestation["annotations"]["vnd.docker.reference.type"] == "attestation-manifest"
    assert attestation["annotations"]["vnd.docker.reference.digest"] == index["manifests"][0]["digest"]
    assert [child.digest for child in image.children] == [
        entry["digest"] for entry in index["manifests"]]


def test_multiarch_children_by_digest(registry):
    for child in registry.images["library/multiarch:latest"].children:
        response = get_manifest(registry.url, "library/multiarch", child.digest)
        assert response.status_code == 200
        config_digest = response.json()["config"]["digest"]
        config = requests.get(f"{registry.url}/v2/library/multiarch/blobs/{config_digest}",
                              timeout=10).json()
        assert config["architecture"] == child.platform["architecture"]


def test_unknown_tag_is_manifest_unknown(registry):
    response = get_manifest(registry.url, "library/busybox", "no-such-tag")
    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
