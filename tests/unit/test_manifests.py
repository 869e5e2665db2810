"""Identifying manifest types and rejecting what pyrun cannot pull."""

import pytest

from registry_client import manifests
from registry_client.errors import ManifestError
from registry_client.manifests import Manifest, check_image_manifest, identify

URL = "http://127.0.0.1:1/v2/x/manifests/latest"
DIGEST = "sha256:" + "a" * 64


def image_manifest(layer_type="application/vnd.oci.image.layer.v1.tar+gzip", **extra):
    layer = {"mediaType": layer_type, "digest": DIGEST, "size": 10, **extra}
    return {
        "schemaVersion": 2,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": DIGEST, "size": 5},
        "layers": [layer],
    }


def test_accept_header_lists_four_types():
    for media_type in (manifests.OCI_INDEX, manifests.DOCKER_MANIFEST_LIST,
                       manifests.OCI_MANIFEST, manifests.DOCKER_MANIFEST):
        assert media_type in manifests.ACCEPT


@pytest.mark.parametrize("content_type", sorted(manifests.INDEX_TYPES | manifests.MANIFEST_TYPES))
def test_content_type_decides(content_type):
    assert identify({"schemaVersion": 2}, content_type, URL) == content_type


def test_declared_type_must_match_content_type():
    with pytest.raises(ManifestError, match="does not match the Content-Type"):
        identify({"mediaType": manifests.OCI_INDEX}, manifests.OCI_MANIFEST, URL)


def test_shape_decides_without_media_type():
    assert identify({"manifests": []}, "application/json", URL) == manifests.OCI_INDEX
    assert identify(image_manifest(), "", URL) == manifests.OCI_MANIFEST


def test_declared_type_used_with_generic_content_type():
    data = {"mediaType": manifests.DOCKER_MANIFEST, **image_manifest()}
    assert identify(data, "application/json", URL) == manifests.DOCKER_MANIFEST


@pytest.mark.parametrize("data, content_type", [
    ({"schemaVersion": 1, "fsLayers": []}, "application/json"),
    ({}, manifests.DOCKER_SCHEMA1_SIGNED),
])
def test_schema1_rejected(data, content_type):
    with pytest.raises(ManifestError, match="schema 1"):
        identify(data, content_type, URL)


def test_unknown_type_rejected():
    with pytest.raises(ManifestError, match="unsupported manifest media type"):
        identify({}, "application/vnd.example+json", URL)


def test_unknown_shape_rejected():
    with pytest.raises(ManifestError, match="neither an image manifest nor an index"):
        identify({"schemaVersion": 2}, "application/json", URL)


def test_good_manifest_accepted():
    data = image_manifest()
    check_image_manifest(Manifest(manifests.OCI_MANIFEST, b"", DIGEST, data), URL)


@pytest.mark.parametrize("data, message", [
    (image_manifest("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"), "foreign"),
    (image_manifest(urls=["https://example.com/layer"]), "foreign"),
    (image_manifest("application/vnd.example.weird"), "unsupported media type"),
    ({**image_manifest(), "config": {"mediaType": "application/vnd.cncf.helm.config.v1+json",
                                     "digest": DIGEST, "size": 1}}, "not a container image"),
    ({"config": {}, "layers": None}, "without config or layers"),
])
def test_unusable_manifest_rejected(data, message):
    with pytest.raises(ManifestError, match=message):
        check_image_manifest(Manifest(manifests.OCI_MANIFEST, b"", DIGEST, data), URL)
