"""`pyrun pull` against the real local registry: tags, digests, mirrors, platforms."""

from __future__ import annotations

import json
import os

import pytest

from runtime.store import ImageStore
from tests.conftest import run_pyrun
from tests.fixtures.pyrunconfig import dead_endpoint

pytestmark = [pytest.mark.root, pytest.mark.registry]

SINGLE_PLATFORM_TAGS = [
    "library/busybox:latest",
    "library/busybox:uncompressed",
    "library/busybox:zstd",
    "library/busybox:docker",
    "library/manylayers:latest",
    "library/dive:latest",
    "library/httpd:latest",
]


def pull(env, *args):
    return run_pyrun("pull", *args, env=env, timeout=300)


def assert_image_complete(store_root, reference, fixture):
    """Check that the store contains the image: ID from the config, every layer unpacked."""
    image = ImageStore(store_root).lookup(reference)
    assert image is not None, f"{reference} not in the store"
    assert image.id == fixture.config.digest
    assert len(image.layer_dirs) == fixture.layer_count
    for directory in image.layer_dirs:
        assert os.path.isdir(directory)
    return image


@pytest.mark.parametrize("tag", SINGLE_PLATFORM_TAGS)
def test_pull_by_tag(pyrun_env, store_root, registry, tag):
    fixture = registry.images[tag]
    result = pull(pyrun_env, tag)
    assert result.returncode == 0, result.stderr
    familiar = tag.removeprefix("library/")
    assert f"Digest: {fixture.digest}" in result.stdout
    assert f"Status: Downloaded newer image for {familiar}" in result.stdout
    assert result.stdout.strip().endswith(f"docker.io/{tag}")
    assert_image_complete(store_root, tag, fixture)


@pytest.mark.parametrize("tag", ["library/busybox:latest", "library/httpd:latest"])
def test_pull_by_digest(pyrun_env, store_root, registry, tag):
    fixture = registry.images[tag]
    name = tag.split(":")[0].removeprefix("library/")
    result = pull(pyrun_env, f"{name}@{fixture.digest}")
    assert result.returncode == 0, result.stderr
    assert f"{fixture.digest}: Pulling from {tag.split(':')[0]}" in result.stdout
    image = assert_image_complete(store_root, f"{name}@{fixture.digest}", fixture)
    assert f"docker.io/{tag.split(':')[0]}@{fixture.digest}" in image.repo_digests
    # A digest pull gives no tag.
    assert ImageStore(store_root).lookup(name) is None


def test_pull_by_wrong_digest_fails(pyrun_env, store_root):
    result = pull(pyrun_env, "busybox@sha256:" + "0" * 64)
    assert result.returncode != 0
    assert "not found" in result.stderr
    assert "MANIFEST_UNKNOWN" in result.stderr


def test_pull_default_tag_output(pyrun_env):
    result = pull(pyrun_env, "busybox")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "Using default tag: latest"
    assert lines[1] == "latest: Pulling from library/busybox"
    assert any(line.endswith(": Pull complete") for line in lines)


def test_pull_quiet_prints_only_reference(pyrun_env):
    result = pull(pyrun_env, "-q", "busybox")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "docker.io/library/busybox:latest\n"


def test_second_pull_is_up_to_date_after_one_request(make_pyrun_env, fault_proxy):
    proxy = fault_proxy()
    env = make_pyrun_env(docker_hub_endpoint=proxy.url)
    assert pull(env, "busybox").returncode == 0
    proxy.clear()
    result = pull(env, "busybox")
    assert result.returncode == 0, result.stderr
    assert "Status: Image is up to date for busybox:latest" in result.stdout
    # Docker Hub's endpoint gets one HEAD, for the rate limit and the digest, and nothing else.
    assert len(proxy.requests) == 1
    assert proxy.requests[0].method == "HEAD"
    assert "/manifests/latest" in proxy.requests[0].path


def test_second_pull_through_mirror_needs_one_get(make_pyrun_env, fault_proxy):
    proxy = fault_proxy()
    env = make_pyrun_env(docker_hub_endpoint=dead_endpoint(), mirrors=[proxy.url])
    assert pull(env, "busybox").returncode == 0
    proxy.clear()
    result = pull(env, "busybox")
    assert "Image is up to date" in result.stdout
    assert [(r.method, r.path) for r in proxy.requests] == [
        ("GET", "/v2/library/busybox/manifests/latest")]


def test_pull_through_mirror_by_short_name(make_pyrun_env, registry, store_root):
    env = make_pyrun_env(docker_hub_endpoint=dead_endpoint(), mirrors=[registry.url])
    result = pull(env, "httpd")
    assert result.returncode == 0, result.stderr
    assert_image_complete(store_root, "httpd", registry.images["library/httpd:latest"])


def test_failing_mirror_falls_back_to_next(make_pyrun_env, registry):
    dead = dead_endpoint()
    env = make_pyrun_env(docker_hub_endpoint=dead_endpoint(), mirrors=[dead, registry.url])
    result = pull(env, "busybox")
    assert result.returncode == 0, result.stderr
    assert f"from mirror {dead} failed" in result.stderr
    assert f"trying mirror {registry.url}" in result.stderr


def test_image_missing_on_mirror_named_when_hub_unreachable(make_pyrun_env, registry):
    # The offline set-up of `make demo`: the mirror responds, Docker Hub cannot be reached.
    dead = dead_endpoint()
    env = make_pyrun_env(docker_hub_endpoint=dead, mirrors=[registry.url])
    result = pull(env, "nosuchimage")
    assert result.returncode == 125
    last_line = result.stderr.strip().splitlines()[-1]
    assert f"nosuchimage:latest was not found at mirror {registry.url}" in last_line
    assert f"and {dead} could not be reached" in last_line
    assert "check the image's name and tag" in last_line


def test_failing_mirror_falls_back_to_docker_hub(make_pyrun_env, registry):
    dead = dead_endpoint()
    env = make_pyrun_env(mirrors=[dead])
    result = pull(env, "busybox")
    assert result.returncode == 0, result.stderr
    assert f"trying {registry.url}" in result.stderr


def test_registry_mirror_flag_is_used(make_pyrun_env, fault_proxy):
    proxy = fault_proxy()
    env = make_pyrun_env(docker_hub_endpoint=dead_endpoint())
    result = pull(env, "--registry-mirror", proxy.url, "busybox")
    assert result.returncode == 0, result.stderr
    assert proxy.count("GET", "/manifests/") == 1


def test_every_endpoint_failing_is_an_error(make_pyrun_env):
    env = make_pyrun_env(docker_hub_endpoint=dead_endpoint())
    result = run_pyrun("pull", "busybox", env=env, timeout=120)
    assert result.returncode == 125
    assert "cannot reach" in result.stderr


def test_pull_from_registry_by_host_name(make_pyrun_env, registry, store_root):
    env = make_pyrun_env(docker_hub_endpoint=dead_endpoint())
    result = pull(env, f"{registry.host}/library/busybox:zstd")
    assert result.returncode == 0, result.stderr
    assert_image_complete(store_root, f"{registry.host}/library/busybox:zstd",
                          registry.images["library/busybox:zstd"])


def test_plain_http_refused_for_non_local_mirror(make_pyrun_env, tmp_path):
    config = tmp_path / "remote-mirror.json"
    config.write_text(json.dumps({"docker-hub-endpoint": dead_endpoint(),
                                  "registry-mirrors": ["http://mirror.invalid:5000"]}))
    env = make_pyrun_env()
    env["PYRUN_CONFIG"] = str(config)
    result = pull(env, "busybox")
    assert result.returncode != 0
    assert "refusing plain HTTP to mirror http://mirror.invalid:5000" in result.stderr


def test_invalid_reference_rejected(pyrun_env):
    result = pull(pyrun_env, "Busybox")
    assert result.returncode == 125
    assert "invalid reference format 'Busybox': repository name must be lowercase" \
        in result.stderr


def test_missing_repository_named(pyrun_env):
    result = pull(pyrun_env, "nosuchimage")
    assert result.returncode == 125
    assert "library/nosuchimage" in result.stderr


# -- Platforms -----------------------------------------------------------------------

def test_index_resolves_to_host_platform(pyrun_env, store_root, registry):
    result = pull(pyrun_env, "multiarch")
    assert result.returncode == 0, result.stderr
    image = ImageStore(store_root).lookup("multiarch")
    assert image.config["architecture"] == "amd64"
    assert image.record["platform"] == "linux/amd64"


def test_platform_flag_chooses_arm64(pyrun_env, store_root):
    result = pull(pyrun_env, "--platform", "linux/arm64", "multiarch")
    assert result.returncode == 0, result.stderr
    image = ImageStore(store_root).lookup("multiarch")
    assert image.config["architecture"] == "arm64"


def test_platform_switch_pulls_again(pyrun_env, store_root):
    assert pull(pyrun_env, "multiarch").returncode == 0
    amd64_id = ImageStore(store_root).lookup("multiarch").id
    result = pull(pyrun_env, "--platform", "linux/arm64/v8", "multiarch")
    assert "Downloaded newer image" in result.stdout
    assert ImageStore(store_root).lookup("multiarch").id != amd64_id


def test_platform_without_match_lists_available(pyrun_env, store_root):
    result = pull(pyrun_env, "--platform", "linux/s390x", "multiarch")
    assert result.returncode == 125
    assert "no matching manifest for linux/s390x" in result.stderr
    assert "available: linux/amd64, linux/arm64" in result.stderr
    assert "unknown" not in result.stderr.split("available:")[1]
    assert ImageStore(store_root).lookup("multiarch") is None


def test_platform_flag_checked_for_single_manifest(pyrun_env):
    result = pull(pyrun_env, "--platform", "linux/arm64", "busybox")
    assert result.returncode == 125
    assert "does not match the requested platform (linux/arm64/v8)" in result.stderr


def test_platform_flag_checked_for_stored_image(pyrun_env):
    assert pull(pyrun_env, "busybox").returncode == 0
    result = pull(pyrun_env, "--platform", "linux/arm64", "busybox")
    assert result.returncode == 125
    assert "does not match the requested platform" in result.stderr
    result = pull(pyrun_env, "--platform", "linux/amd64", "busybox")
    assert "Image is up to date" in result.stdout


def test_invalid_platform_flag(pyrun_env):
    result = pull(pyrun_env, "--platform", "arm64", "busybox")
    assert result.returncode == 125
    assert "invalid --platform 'arm64'" in result.stderr
