"""The bundle pyrun builds is a standard OCI bundle: Debian's runc starts it unchanged."""

import json
import shutil
import subprocess
import sys

import pytest

from tests.integration.run_support import host_mounts_under, run_env  # noqa: F401

pytestmark = [pytest.mark.root, pytest.mark.registry]

# Creates a container with pyrun's own code and prints its ID.
CREATE_BUNDLE = """
import sys
from runtime import container
from runtime.spec import RunOptions
from runtime.store import ImageStore

root = sys.argv[1]
image = ImageStore(root).lookup("busybox")
created = container.create(root, image, RunOptions(command=sys.argv[2:], hostname="from-runc"),
                           network_plan={"mode": "none"})
print(created.id)
"""

# Unmounts the rootfs and deletes the container, as `--rm` would.
REMOVE_BUNDLE = """
import sys
from runtime import overlay, state

root, container_id = sys.argv[1], sys.argv[2]
overlay.unmount_overlay(state.container_dir(root, container_id) + "/rootfs")
state.remove_container(root, container_id)
"""


@pytest.fixture
def runc():
    path = shutil.which("runc")
    if path is None:
        pytest.skip("runc is not installed (apt-get install runc)")
    return path


def test_runc_runs_pyrun_bundle(run_env, runc):
    script = "hostname; id -u; grep -c . /proc/self/mountinfo >/dev/null && echo mounted; cat /etc/hostname"
    created = subprocess.run([sys.executable, "-c", CREATE_BUNDLE, str(run_env.root), "sh", "-c", script],
                             capture_output=True, text=True, check=True, env=run_env.env)
    container_id = created.stdout.strip()
    bundle = run_env.root / "containers" / container_id
    try:
        config = json.loads((bundle / "config.json").read_text())
        assert config["root"]["path"] == "rootfs"
        result = subprocess.run([runc, "run", "-b", str(bundle), f"pyrun-test-{container_id[:12]}"],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == ["from-runc", "0", "mounted", "from-runc"]
    finally:
        subprocess.run([sys.executable, "-c", REMOVE_BUNDLE, str(run_env.root), container_id], check=True)
    assert not bundle.exists()
    assert host_mounts_under(run_env.root) == []
