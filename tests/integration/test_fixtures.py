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


def get_manifest(base_url: str, repository: str, reference: str,
                 token: str | None = None) -> requests.Response:
    headers = {"Accept": MANIFEST_ACCEPT}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return requests.get(f"{base_url}/v2/{repository}/manifests/{reference}",
                        headers=headers, timeout=10)


def test_catalog_lists_repositories(registry):
    catalog = requests.get(f"{registry.url}/v2/_catalog", timeout=10).json()
    for reference in registry.images:
        assert reference.rpartition(":")[0] in catalog["repositories"]


def test_registry_listens_on_loopback(registry):
    assert registry.url.startswith("http://127.0.0.1:")
    assert registry.host == registry.url.removeprefix("http://")


@pytest.mark.parametrize("reference", sorted(EXPECTED_LAYER_COUNTS) + [
    "library/multiarch:latest", "library/httpd:latest"])
def test_manifest_by_tag_and_digest(registry, require_image, reference):
    image = require_image(reference)
    by_tag = get_manifest(registry.url, image.repository, image.tag)
    assert by_tag.status_code == 200
    assert by_tag.headers["Content-Type"] == image.manifest.media_type
    assert by_tag.headers["Docker-Content-Digest"] == image.digest
    assert "sha256:" + hashlib.sha256(by_tag.content).hexdigest() == image.digest

    by_digest = get_manifest(registry.url, image.repository, image.digest)
    assert by_digest.status_code == 200
    assert by_digest.content == by_tag.content


@pytest.mark.parametrize("reference,count", sorted(EXPECTED_LAYER_COUNTS.items()))
def test_layer_counts(registry, require_image, reference, count):
    image = require_image(reference)
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


def test_multiarch_index_platforms(registry, require_image):
    image = require_image("library/multiarch:latest")
    index = get_manifest(registry.url, "library/multiarch", "latest").json()
    platforms = [(entry["platform"]["os"], entry["platform"]["architecture"])
                 for entry in index["manifests"]]
    assert platforms == [("linux", "amd64"), ("linux", "arm64"), ("unknown", "unknown")]
    attestation = index["manifests"][2]
    assert attestation["annotations"]["vnd.docker.reference.type"] == "attestation-manifest"
    assert attestation["annotations"]["vnd.docker.reference.digest"] == index["manifests"][0]["digest"]
    assert [child.digest for child in image.children] == [
        entry["digest"] for entry in index["manifests"]]


def test_multiarch_children_by_digest(registry, require_image):
    for child in require_image("library/multiarch:latest").children:
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


def test_httpd_image_config(registry, require_image):
    image = require_image("library/httpd:latest")
    config = requests.get(f"{registry.url}/v2/library/httpd/blobs/{image.config.digest}",
                          timeout=10).json()["config"]
    assert image.layer_count == 2
    assert config["Cmd"] == ["httpd-foreground"]
    assert config["WorkingDir"] == "/usr/local/apache2"
    assert config["ExposedPorts"] == {"80/tcp": {}}
    assert config["StopSignal"] == "SIGWINCH"


def test_layers_carry_whiteouts(registry, require_image):
    """The last manylayers layer and httpd's apache layer each delete files of a lower layer."""
    import gzip
    import io
    import tarfile

    for reference in ("library/manylayers:latest", "library/httpd:latest"):
        image = require_image(reference)
        blob = requests.get(
            f"{registry.url}/v2/{image.repository}/blobs/{image.layers[-1].digest}", timeout=60)
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob.content))) as tar:
            names = tar.getnames()
        assert any("/.wh." in name and not name.endswith(".wh..wh..opq") for name in names)


# Token auth


def request_token(token_registry, *scopes, auth=None) -> requests.Response:
    return requests.get(token_registry.issuer.realm, auth=auth, timeout=10,
                        params={"service": "pyrun-test-registry", "scope": list(scopes)})


def test_token_registry_challenges(token_registry):
    response = get_manifest(token_registry.url, "library/busybox", "latest")
    challenge = response.headers["WWW-Authenticate"]
    assert response.status_code == 401
    assert challenge.startswith("Bearer ")
    assert f'realm="{token_registry.issuer.realm}"' in challenge
    assert 'service="pyrun-test-registry"' in challenge
    assert 'scope="repository:library/busybox:pull"' in challenge


def test_token_grants_pull(token_registry):
    body = request_token(token_registry, "repository:library/busybox:pull").json()
    response = get_manifest(token_registry.url, "library/busybox", "latest",
                            token=body["token"])
    assert body["access_token"] == body["token"]
    assert body["expires_in"] == 300
    assert response.status_code == 200
    assert response.headers["Docker-Content-Digest"] == token_registry.images[
        "library/busybox:latest"].digest
    assert token_registry.issuer.tokens_issued == 1


def test_token_rejected_for_other_repository(token_registry):
    token = request_token(token_registry, "repository:library/dive:pull").json()["token"]
    response = get_manifest(token_registry.url, "library/busybox", "latest",
                            token=token)
    assert response.status_code == 401
    assert response.json()["errors"][0]["code"] == "UNAUTHORIZED"


def test_token_denied_repository(token_registry):
    token_registry.issuer.settings.denied_repositories = {"library/busybox"}
    token = request_token(token_registry, "repository:library/busybox:pull").json()["token"]
    response = get_manifest(token_registry.url, "library/busybox", "latest",
                            token=token)
    assert response.status_code == 401


def test_token_basic_credentials(token_registry):
    token_registry.issuer.settings.credentials = ("student", "secret")
    anonymous = request_token(token_registry, "repository:library/busybox:pull")
    wrong = request_token(token_registry, "repository:library/busybox:pull",
                          auth=("student", "wrong"))
    right = request_token(token_registry, "repository:library/busybox:pull",
                          auth=("student", "secret"))
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Basic ")
    assert wrong.status_code == 401
    assert right.status_code == 200
    assert token_registry.issuer.tokens_issued == 1
    assert [request.basic_user for request in token_registry.issuer.requests] == [
        None, "student", "student"]


def test_token_without_access_token(token_registry):
    token_registry.issuer.settings.send_access_token = False
    body = request_token(token_registry, "repository:library/busybox:pull").json()
    assert "token" in body
    assert "access_token" not in body


@pytest.mark.slow
def test_token_expires_at_registry(token_registry):
    import time

    token_registry.issuer.settings.expires_in = 2
    token_registry.issuer.settings.registry_lifetime = 2
    body = request_token(token_registry, "repository:library/busybox:pull").json()
    fresh = get_manifest(token_registry.url, "library/busybox", "latest", token=body["token"])
    time.sleep(4)
    expired = get_manifest(token_registry.url, "library/busybox", "latest", token=body["token"])
    assert body["expires_in"] == 2
    assert fresh.status_code == 200
    assert expired.status_code == 401


def test_token_registry_serves_same_digests(token_registry, registry):
    assert token_registry.digests == registry.digests


# Fault proxy


def test_proxy_forwards_and_counts(registry, fault_proxy):
    proxy = fault_proxy()
    response = get_manifest(proxy.url, "library/busybox", "latest")
    assert response.status_code == 200
    assert response.headers["Docker-Content-Digest"] == registry.digests["library/busybox:latest"]
    assert proxy.count("GET", "/manifests/") == 1
    assert proxy.count("HEAD") == 0


def test_proxy_injects_status_once(fault_proxy):
    proxy = fault_proxy()
    proxy.fail("/manifests/", status=503)
    first = get_manifest(proxy.url, "library/busybox", "latest")
    second = get_manifest(proxy.url, "library/busybox", "latest")
    assert first.status_code == 503
    assert second.status_code == 200
    assert [request.fault for request in proxy.requests] == ["status", None]


def test_proxy_rate_limit_headers(fault_proxy):
    proxy = fault_proxy()
    proxy.rate_limit("/manifests/", retry_after=7)
    response = get_manifest(proxy.url, "library/busybox", "latest")
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"
    assert response.headers["ratelimit-limit"] == "100;w=21600"
    assert response.headers["ratelimit-remaining"] == "0;w=21600"
    assert response.json()["errors"][0]["code"] == "TOOMANYREQUESTS"


def test_proxy_hub_pull_counting(fault_proxy):
    proxy = fault_proxy()
    proxy.hub_rate_limit(limit=100, remaining=1)
    head = requests.head(f"{proxy.url}/v2/library/busybox/manifests/latest",
                         headers={"Accept": MANIFEST_ACCEPT}, timeout=10)
    first = get_manifest(proxy.url, "library/busybox", "latest")
    second = get_manifest(proxy.url, "library/busybox", "latest")
    assert head.headers["ratelimit-remaining"] == "1;w=21600"
    assert first.status_code == 200
    assert first.headers["ratelimit-remaining"] == "0;w=21600"
    assert second.status_code == 429


def test_proxy_cuts_blob(registry, fault_proxy):
    proxy = fault_proxy()
    layer = registry.images["library/busybox:latest"].layers[0]
    proxy.cut("/blobs/", after_bytes=1000)
    url = f"{proxy.url}/v2/library/busybox/blobs/{layer.digest}"
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(url, timeout=30).content
    resumed = requests.get(url, headers={"Range": "bytes=1000-"}, timeout=30)
    assert resumed.status_code == 206
    assert len(resumed.content) == layer.size - 1000


def test_proxy_tampers_blob(registry, fault_proxy):
    proxy = fault_proxy()
    layer = registry.images["library/busybox:latest"].layers[0]
    proxy.tamper("/blobs/")
    body = requests.get(f"{proxy.url}/v2/library/busybox/blobs/{layer.digest}", timeout=30).content
    assert len(body) == layer.size
    assert "sha256:" + hashlib.sha256(body).hexdigest() != layer.digest


def test_proxy_redirect_drops_authorization(registry, fault_proxy):
    proxy = fault_proxy()
    layer = registry.images["library/busybox:latest"].layers[0]
    proxy.redirect("/blobs/", host="localhost")
    response = requests.get(f"{proxy.url}/v2/library/busybox/blobs/{layer.digest}",
                            headers={"Authorization": "Bearer secret"}, timeout=30)
    first, redirected = proxy.requests
    assert response.history[0].status_code == 307
    assert "sha256:" + hashlib.sha256(response.content).hexdigest() == layer.digest
    assert first.has_authorization
    assert redirected.headers["host"].startswith("localhost:")
    assert not redirected.has_authorization


# pyrun config


def test_pyrun_env_points_at_registry(registry, pyrun_env, store_root):
    with open(pyrun_env["PYRUN_CONFIG"]) as file:
        config = json.load(file)
    assert config["docker-hub-endpoint"] == registry.url
    assert config["insecure-registries"] == [registry.host]
    assert config["registry-mirrors"] == []
    assert pyrun_env["PYRUN_ROOT"] == str(store_root)


def test_pyrun_env_with_mirror(registry, make_pyrun_env, fault_proxy):
    from tests.fixtures.pyrunconfig import dead_endpoint

    proxy = fault_proxy()
    endpoint = dead_endpoint()
    env = make_pyrun_env(docker_hub_endpoint=endpoint, mirrors=[proxy.url])
    with open(env["PYRUN_CONFIG"]) as file:
        config = json.load(file)
    assert config["registry-mirrors"] == [proxy.url]
    assert config["insecure-registries"] == [endpoint.removeprefix("http://"), proxy.host]


def test_pyrun_config_rejects_internet(tmp_path):
    from tests.fixtures.pyrunconfig import write_pyrun_config

    with pytest.raises(ValueError, match="127.0.0.1"):
        write_pyrun_config(tmp_path / "config.json", "https://registry-1.docker.io")


# The image cache


def test_cache_reuses_and_prunes(tmp_path, caplog):
    import logging
    import os

    from tests.fixtures.images import STALE_AGE, ImageCache

    cache = ImageCache(tmp_path)
    first = cache.load(("busybox",))
    stale_record = cache.records_dir / "busybox-0000000000000000.json"
    stale_blob = cache.blobs.add_bytes(b"only the stale record lists this", "text/plain")
    stale_record.write_text(json.dumps({"library/busybox:old": stale_blob.to_json()}))
    long_ago = os.stat(stale_record).st_mtime - STALE_AGE - 60
    os.utime(stale_record, (long_ago, long_ago))
    os.utime(cache.blobs.path(stale_blob.digest), (long_ago, long_ago))

    with caplog.at_level(logging.INFO, logger="tests.fixtures.images"):
        second = ImageCache(tmp_path).load(("busybox",))
    cache.prune()

    assert second == first
    assert "fixture images busybox: cached" in caplog.text
    assert not stale_record.exists()
    assert not cache.blobs.has(stale_blob.digest)
    assert cache.blobs.has(first["library/busybox:latest"].digest)


def test_cache_failed_optional_build(tmp_path, monkeypatch):
    import subprocess

    from tests.fixtures import debian
    from tests.fixtures.images import ImageCache

    def unreachable_mirror(blobs):
        raise subprocess.CalledProcessError(1, ["debootstrap"])

    monkeypatch.setattr(debian, "build_httpd", unreachable_mirror)
    cache = ImageCache(tmp_path)
    tags = cache.load(("httpd",))
    assert tags == {}
    assert "debootstrap" in cache.unavailable["library/httpd:latest"]


# The image builder


def layer_names(blobs, layer) -> dict[str, "tarfile.TarInfo"]:
    import tarfile

    with tarfile.open(blobs.path(layer.descriptor.digest)) as tar:
        return {member.name: member for member in tar.getmembers()}


def test_builder_is_deterministic(tmp_path):
    from tests.fixtures.busybox import build_busybox_images
    from tests.fixtures.oci import BlobStore

    first = build_busybox_images(BlobStore(tmp_path / "first"))
    second = build_busybox_images(BlobStore(tmp_path / "second"))
    assert first == second


def test_busybox_rootfs_contents(registry):
    import gzip
    import io
    import tarfile

    image = registry.images["library/busybox:latest"]
    blob = requests.get(f"{registry.url}/v2/library/busybox/blobs/{image.layers[0].digest}",
                        timeout=30).content
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob))) as tar:
        members = {member.name: member for member in tar.getmembers()}
        passwd = tar.extractfile("etc/passwd").read().decode()
        group = tar.extractfile("etc/group").read().decode()
    assert members["bin/sh"].issym()
    assert members["bin/sh"].linkname == "busybox"
    assert members["bin/busybox"].mode == 0o755
    assert members["tmp"].mode == 0o1777
    assert members["home/tester"].uid == 1000
    assert passwd.startswith("root:x:0:0:")
    assert "tester:x:1000:1000:" in passwd
    assert "nobody:x:65534:65534:" in passwd
    assert "audio:x:29:tester" in group
    assert "testers:x:2000:tester" in group


def test_overlay_upper_to_layer(tmp_path):
    """Overlay whiteouts become `.wh.` files, and only opaque directories hiding a lower one get a marker."""
    import os
    import stat

    from tests.fixtures.oci import BlobStore

    lower, upper = tmp_path / "lower", tmp_path / "upper"
    (lower / "etc" / "old").mkdir(parents=True)
    (upper / "etc" / "old").mkdir(parents=True)
    (upper / "etc" / "new").mkdir(parents=True)
    (upper / "etc" / "kept.conf").write_text("kept\n")
    os.mknod(upper / "etc" / "deleted.conf", stat.S_IFCHR | 0o000, os.makedev(0, 0))
    for directory in (upper / "etc" / "old", upper / "etc" / "new"):
        os.setxattr(directory, "trusted.overlay.opaque", b"y")

    blobs = BlobStore(tmp_path / "blobs")
    layer = blobs.add_layer_from_dir(upper, compression="none", overlay_upper=True,
                                     overlay_lower=lower)
    names = layer_names(blobs, layer)
    assert names["etc/.wh.deleted.conf"].isreg()
    assert names["etc/.wh.deleted.conf"].size == 0
    assert "etc/deleted.conf" not in names
    assert "etc/old/.wh..wh..opq" in names
    assert "etc/new/.wh..wh..opq" not in names
    assert names["etc/kept.conf"].isreg()


def test_layer_excludes_contents_only(tmp_path):
    from tests.fixtures.oci import BlobStore

    rootfs = tmp_path / "rootfs"
    (rootfs / "dev").mkdir(parents=True)
    (rootfs / "dev" / "null-copy").write_text("")
    (rootfs / "usr" / "share" / "doc" / "pkg").mkdir(parents=True)
    (rootfs / "usr" / "bin").mkdir(parents=True)
    (rootfs / "usr" / "bin" / "tool").write_text("#!/bin/sh\n")

    blobs = BlobStore(tmp_path / "blobs")
    layer = blobs.add_layer_from_dir(rootfs, compression="none", exclude=("dev", "usr/share/doc"))
    names = layer_names(blobs, layer)
    assert names["dev"].isdir()
    assert "dev/null-copy" not in names
    assert names["usr/share/doc"].isdir()
    assert "usr/share/doc/pkg" not in names
    assert "usr/bin/tool" in names


# The demo


def test_demo_config_written_once(tmp_path, capsys):
    from tests.fixtures.demo import DEAD_HUB_ENDPOINT, write_demo_config

    path = tmp_path / "pyrun" / "config.json"
    wrote_first = write_demo_config("http://127.0.0.1:5000", path)
    written = json.loads(path.read_text())
    path.write_text('{"registry-mirrors": ["http://127.0.0.1:6000"]}')
    wrote_second = write_demo_config("http://127.0.0.1:5000", path)

    assert wrote_first
    assert written["registry-mirrors"] == ["http://127.0.0.1:5000"]
    assert written["insecure-registries"] == ["127.0.0.1:5000"]
    assert written["docker-hub-endpoint"] == DEAD_HUB_ENDPOINT
    assert not wrote_second
    assert json.loads(path.read_text()) == {"registry-mirrors": ["http://127.0.0.1:6000"]}
    assert "leaves it as it is" in capsys.readouterr().out
