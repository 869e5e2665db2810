"""The init layer: mountpoints an image lacks come from a shared layer, not from each container's upper directory."""

import json
import os

import pytest

from tests.conftest import run_pyrun
from tests.integration.run_support import detached, pyrun, pyrun_run, run_env  # noqa: F401

pytestmark = [pytest.mark.root, pytest.mark.registry]


def image_id(run_env, name):
    result = pyrun(run_env, "image", "inspect", "--format", "{{.Id}}", name)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_container_upper_stays_empty(run_env):
    # busybox has no /etc/hosts or /etc/resolv.conf: without the init layer,
    # making their mountpoints copies /etc up into the container's upper directory.
    container_id = detached(run_env, "busybox", "sleep", "30")
    try:
        upper = run_env.root / "containers" / container_id / "upper"
        assert os.listdir(upper) == []
        inside = pyrun(run_env, "exec", container_id, "cat", "/etc/hosts")
        assert "localhost" in inside.stdout
    finally:
        pyrun(run_env, "rm", "-f", container_id)


def test_init_layer_has_missing_mountpoints(run_env):
    result = pyrun_run(run_env, "busybox", "true")
    assert result.returncode == 0, result.stderr
    layer = run_env.root / "init-layers" / image_id(run_env, "busybox").removeprefix("sha256:")
    assert sorted(os.listdir(layer / "etc")) == ["hosts", "resolv.conf"]


def test_etc_keeps_image_attributes(run_env):
    result = pyrun_run(run_env, "busybox", "stat", "-c", "%a %u %g %Y", "/etc")
    assert result.returncode == 0, result.stderr
    index = json.loads((run_env.root / "images.json").read_text())
    top_layer = index["images"][image_id(run_env, "busybox")]["layers"][-1]["chain_id"]
    expected = os.stat(run_env.root / "layers" / top_layer.removeprefix("sha256:") / "etc")
    mode, uid, gid, mtime = result.stdout.split()
    assert int(mode, 8) == expected.st_mode & 0o7777
    assert (int(uid), int(gid)) == (expected.st_uid, expected.st_gid)
    assert int(mtime) == int(expected.st_mtime)


def test_restart_mounts_init_layer_again(run_env):
    result = pyrun_run(run_env, "--name", "init-layer-restart", "busybox", "true", keep=True)
    assert result.returncode == 0, result.stderr
    try:
        started = pyrun(run_env, "start", "-a", "init-layer-restart")
        assert started.returncode == 0, started.stderr
        container_id = pyrun(run_env, "inspect", "--format", "{{.Id}}", "init-layer-restart").stdout.strip()
        assert os.listdir(run_env.root / "containers" / container_id / "upper") == []
    finally:
        pyrun(run_env, "rm", "-f", "init-layer-restart")


def test_many_layer_image_runs_with_init_layer(run_env):
    result = pyrun_run(run_env, "manylayers", "sh", "-c", "cat /etc/hosts >/dev/null && echo ok")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_rmi_removes_init_layer(registry, tmp_path):
    from tests.fixtures.pyrunconfig import write_pyrun_config

    root = tmp_path / "root"
    root.mkdir()
    config = tmp_path / "pyrun-config.json"
    write_pyrun_config(config, registry.url, [], [registry.host])
    env = {"PYRUN_CONFIG": str(config), "PYRUN_ROOT": str(root)}
    run_pyrun("pull", "-q", "busybox", root=root, env=env, check=True)
    run_pyrun("run", "--rm", "--network", "none", "busybox", "true", root=root, env=env, check=True)
    assert len(os.listdir(root / "init-layers")) == 1
    run_pyrun("rmi", "busybox", root=root, env=env, check=True)
    assert os.listdir(root / "init-layers") == []
