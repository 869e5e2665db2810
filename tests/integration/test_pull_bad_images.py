"""Images that pyrun must reject, pushed to the real registry or served by the fault proxy."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile

from pathlib import Path

import pytest
import requests

from runtime.store import ImageStore
from tests.conftest import run_pyrun

pytestmark = [pytest.mark.root, pytest.mark.registry]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
GZIP_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def push_blob(registry, repository: str, data: bytes) -> str:
    """Upload a blob in one POST + PUT (the distribution spec's monolithic upload)."""
    digest = sha256(data)
    start = requests.post(f"{registry.url}/v2/{repository}/blobs/uploads/", timeout=30)
    assert start.status_code == 202, start.text
    location = start.headers["Location"]
    if location.startswith("/"):
        location = registry.url + location
    separator = "&" if "?" in location else "?"
    done = requests.put(f"{location}{separator}digest={digest}", data=data, timeout=30,
                        headers={"Content-Type": "application/octet-stream"})
    assert done.status_code == 201, done.text
    return digest


def push_manifest(registry, repository: str, tag: str, manifest: dict, media_type: str) -> str:
    body = json.dumps(manifest).encode()
    response = requests.put(f"{registry.url}/v2/{repository}/manifests/{tag}", data=body,
                            headers={"Content-Type": media_type}, timeout=30)
    assert response.status_code == 201, response.text
    return sha256(body)


def small_layer() -> tuple[bytes, str]:
    """Build a gzip layer with one file; return (blob, diff_id)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        content = b"hello\n"
        info = tarfile.TarInfo("hello.txt")
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    tar_bytes = raw.getvalue()
    return gzip.compress(tar_bytes, mtime=0), sha256(tar_bytes)


def push_image(registry, repository: str, *, diff_id: str | None = None,
               layer_fields: dict | None = None) -> None:
    blob, real_diff_id = small_layer()
    layer_digest = push_blob(registry, repository, blob)
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "config": {"Cmd": ["/hello"]},
                         "rootfs": {"type": "layers",
                                    "diff_ids": [diff_id or real_diff_id]}}).encode()
    config_digest = push_blob(registry, repository, config)
    layer = {"mediaType": GZIP_LAYER, "digest": layer_digest, "size": len(blob)}
    layer.update(layer_fields or {})
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": config_digest,
                           "size": len(config)},
                "layers": [layer]}
    push_manifest(registry, repository, "latest", manifest, OCI_MANIFEST)


def test_small_pushed_image_pulls(pyrun_env, registry, store_root):
    """The helper's good image pulls, so the failures below come from the defect alone."""
    push_image(registry, "test/good")
    result = run_pyrun("pull", "test/good", env=pyrun_env, timeout=120)
    assert result.returncode == 0, result.stderr
    image = ImageStore(store_root).lookup("test/good")
    with open(f"{image.layer_dirs[0]}/hello.txt") as file:
        assert file.read() == "hello\n"


def test_wrong_diff_id_rejected_and_nothing_stored(pyrun_env, registry, store_root):
    wrong = "sha256:" + "e" * 64
    push_image(registry, "test/bad-diffid", diff_id=wrong)
    result = run_pyrun("pull", "test/bad-diffid", env=pyrun_env, timeout=120)
    assert result.returncode == 125
    assert f"but the image config expects {wrong}" in result.stderr
    store = ImageStore(store_root)
    assert store.lookup("test/bad-diffid") is None
    assert list(Path(store.layout.layers).iterdir()) == []
    assert list(Path(store.layout.tmp).glob("unpack-*")) == []


def serve_manifest(proxy, manifest: dict, content_type: str) -> None:
    """Make the proxy return `manifest` for the next GET of busybox's manifest."""
    proxy.fail("/v2/library/busybox/manifests/latest", status=200, method="GET",
               body=json.dumps(manifest).encode(), headers={"Content-Type": content_type})


def busybox_manifest(registry) -> dict:
    fixture = registry.images["library/busybox:latest"]
    return {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": fixture.config.to_json(),
            "layers": [layer.to_json() for layer in fixture.layers]}


@pytest.fixture
def proxy_env(make_pyrun_env, fault_proxy):
    proxy = fault_proxy()
    return proxy, make_pyrun_env(docker_hub_endpoint=proxy.url)


def test_foreign_layer_rejected(proxy_env, registry):
    proxy, env = proxy_env
    manifest = busybox_manifest(registry)
    manifest["layers"][0]["urls"] = ["https://example.invalid/layer.tar.gz"]
    serve_manifest(proxy, manifest, OCI_MANIFEST)
    result = run_pyrun("pull", "busybox", env=env, timeout=120)
    assert result.returncode == 125
    assert "is a foreign (non-distributable) layer" in result.stderr
    assert proxy.count("GET", "/blobs/") == 0


def test_manifest_type_mismatch_rejected(proxy_env, registry):
    proxy, env = proxy_env
    serve_manifest(proxy, busybox_manifest(registry), DOCKER_MANIFEST)
    result = run_pyrun("pull", "busybox", env=env, timeout=120)
    assert result.returncode == 125
    assert f"manifest media type {OCI_MANIFEST} does not match the Content-Type " \
        f"{DOCKER_MANIFEST}" in result.stderr


def test_schema1_manifest_rejected(proxy_env):
    proxy, env = proxy_env
    serve_manifest(proxy, {"schemaVersion": 1, "name": "library/busybox", "tag": "latest",
                           "fsLayers": [], "history": []},
                   "application/vnd.docker.distribution.manifest.v1+prettyjws")
    result = run_pyrun("pull", "busybox", env=env, timeout=120)
    assert result.returncode == 125
    assert "schema 1 manifest, which pyrun does not support" in result.stderr


def test_manifest_shape_decides_without_type(proxy_env, registry, store_root):
    proxy, env = proxy_env
    manifest = busybox_manifest(registry)
    del manifest["mediaType"]
    serve_manifest(proxy, manifest, "application/json")
    result = run_pyrun("pull", "busybox", env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert ImageStore(store_root).lookup("busybox") is not None


def test_wrong_content_digest_header_rejected(proxy_env, registry):
    proxy, env = proxy_env
    proxy.fail("/v2/library/busybox/manifests/latest", status=200, method="GET",
               body=json.dumps(busybox_manifest(registry)).encode(),
               headers={"Content-Type": OCI_MANIFEST,
                        "Docker-Content-Digest": "sha256:" + "f" * 64})
    result = run_pyrun("pull", "busybox", env=env, timeout=120)
    assert result.returncode == 125
    assert "manifest digest mismatch: Docker-Content-Digest is sha256:fff" in result.stderr
