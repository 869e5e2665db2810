"""The default seccomp filter, checked from inside containers on the real kernel.

`Seccomp:` in /proc/self/status is 2 when a filter is installed and 0
without one (proc(5)).
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.integration.run_support import cleanup, detached, pyrun, pyrun_run, run_env  # noqa: F401
from tests.integration.test_run_runc import CREATE_BUNDLE, REMOVE_BUNDLE

pytestmark = [pytest.mark.root, pytest.mark.registry]

# Prints the seccomp mode, then tries a new user namespace and a new network namespace.
PROBE = ("grep '^Seccomp:' /proc/self/status; "
         "unshare -U true && echo user-ok || echo user-denied; "
         "unshare -n true && echo net-ok || echo net-denied")


def probe(run_env, *flags: str) -> list[str]:  # noqa: F811
    result = pyrun_run(run_env, *flags, "busybox", "sh", "-c", PROBE)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_default_filter_denies_namespaces(run_env):  # noqa: F811
    result = pyrun_run(run_env, "busybox", "sh", "-c", PROBE)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["Seccomp:", "2", "user-denied", "net-denied"]
    assert "Operation not permitted" in result.stderr


def test_unconfined_has_no_filter(run_env):  # noqa: F811
    # A user namespace needs no capability; a network namespace still needs CAP_SYS_ADMIN.
    assert probe(run_env, "--security-opt", "seccomp=unconfined") == ["Seccomp:", "0", "user-ok", "net-denied"]


def test_privileged_has_no_filter(run_env):  # noqa: F811
    assert probe(run_env, "--privileged") == ["Seccomp:", "0", "user-ok", "net-ok"]


def test_cap_add_sys_admin_allows_namespaces(run_env):  # noqa: F811
    assert probe(run_env, "--cap-add", "SYS_ADMIN") == ["Seccomp:", "2", "user-ok", "net-ok"]


def test_no_new_privileges_keeps_filter(run_env):  # noqa: F811
    assert probe(run_env, "--security-opt", "no-new-privileges") == ["Seccomp:", "2", "user-denied",
                                                                      "net-denied"]


def test_filtered_workload_runs(run_env):  # noqa: F811
    script = "ls / >/dev/null && echo listed; sleep 0.1 & wait $! && echo forked; cat /etc/hostname >/dev/null && echo read"
    result = pyrun_run(run_env, "--user", "1000:1000", "busybox", "sh", "-c", script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["listed", "forked", "read"]


def test_custom_profile_rejected(run_env):  # noqa: F811
    result = pyrun_run(run_env, "--security-opt", "seccomp=/etc/profile.json", "busybox", "true")
    assert result.returncode != 0
    assert "seccomp=/etc/profile.json" in result.stderr


def test_exec_gets_filter(run_env, cleanup):  # noqa: F811
    container_id = detached(run_env, "busybox", "sleep", "600")
    result = pyrun(run_env, "exec", container_id, "sh", "-c", PROBE)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["Seccomp:", "2", "user-denied", "net-denied"]


# The kernel fails clone3(NULL, 0) with EINVAL, but the filter returns ENOSYS
# before the kernel sees it. Then a thread starts through glibc 2.36, which tries clone3 and falls
# back to clone when it gets ENOSYS.
CLONE3_PROBE = """
syscall(435, 0, 0); print 0 + $!, "\\n";
require threads; threads->create(sub { print "thread\\n" })->join;
"""


def test_clone3_enosys_and_glibc_threads(run_env, require_image):  # noqa: F811
    require_image("library/httpd:latest")
    pulled = pyrun(run_env, "pull", "-q", "httpd")
    assert pulled.returncode == 0, pulled.stderr
    result = pyrun_run(run_env, "httpd", "perl", "-e", CLONE3_PROBE)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["38", "thread"]


def test_runc_applies_bundle_policy(run_env):  # noqa: F811
    # The same policy, read from config.json by Debian's runc through libseccomp.
    runc = shutil.which("runc")
    if runc is None:
        pytest.skip("runc is not installed (apt-get install runc)")
    created = subprocess.run([sys.executable, "-c", CREATE_BUNDLE, str(run_env.root), "sh", "-c", PROBE],
                             capture_output=True, text=True, check=True, env=run_env.env)
    container_id = created.stdout.strip()
    bundle = run_env.root / "containers" / container_id
    try:
        result = subprocess.run([runc, "run", "-b", str(bundle), f"pyrun-test-{container_id[:12]}"],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == ["Seccomp:", "2", "user-denied", "net-denied"]
    finally:
        subprocess.run([sys.executable, "-c", REMOVE_BUNDLE, str(run_env.root), container_id], check=True)
