"""Images that try to redirect pyrun's mounts with symlinks, built and pushed by the test."""

import os

import pytest

from tests.conftest import run_pyrun
from tests.fixtures.busybox import busybox_config, rootfs_members
from tests.fixtures.oci import BlobStore, TarMember
from tests.fixtures.registry import push_image
from tests.integration.run_support import host_mounts_under, pyrun_run, run_env  # noqa: F401

pytestmark = [pytest.mark.root, pytest.mark.registry]


def push_busybox_variant(registry, tmp_path, tag, replacements):
    """Push busybox with some members replaced, as library/hostile:TAG."""
    base, binary, links = rootfs_members()
    replaced = {member.path for member in replacements}
    members = [member for member in base if member.path not in replaced] + replacements + binary + links
    blobs = BlobStore(tmp_path / f"blobs-{tag}")
    layer = blobs.add_layer_from_members(members)
    push_image(blobs, registry.url, "library/hostile", tag, blobs.add_image(busybox_config(1), [layer]))


@pytest.fixture(scope="module")
def hostile_images(registry, run_env, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("hostile")
    outside = str(tmp_path / "outside")
    push_busybox_variant(registry, tmp_path, "proc", [TarMember("proc", "symlink", link_target=outside)])
    push_busybox_variant(registry, tmp_path, "dev", [TarMember("dev", "symlink", link_target="/tmp")])
    push_busybox_variant(registry, tmp_path, "resolv", [
        TarMember("etc/resolv.conf", "symlink", link_target="/run/systemd/resolve/stub-resolv.conf"),
        TarMember("etc/hosts", "symlink", link_target="../../../../etc/hosts-in-image"),
    ])
    for tag in ("proc", "dev", "resolv"):
        run_pyrun("pull", "-q", f"hostile:{tag}", root=run_env.root, env=run_env.env, check=True)
    return outside


@pytest.mark.parametrize("tag, path", [("proc", "/proc"), ("dev", "/dev")])
def test_symlinked_system_dir_is_rejected(run_env, hostile_images, tag, path):
    result = pyrun_run(run_env, f"hostile:{tag}", "true")
    assert result.returncode == 125
    assert f"symlink at {path}" in result.stderr
    assert host_mounts_under(run_env.root) == []
    assert not os.path.exists(hostile_images)


def test_etc_symlinks_resolve_inside_root(run_env, hostile_images):
    script = "cat /run/systemd/resolve/stub-resolv.conf | grep -c nameserver; grep -c localhost /etc/hosts-in-image"
    result = pyrun_run(run_env, "hostile:resolv", "sh", "-c", script)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.split()[0]) >= 1
    assert int(result.stdout.split()[1]) >= 1
    assert not os.path.exists("/etc/hosts-in-image")
