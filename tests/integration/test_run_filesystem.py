"""`pyrun run`: the mounts, masked paths, /dev and volumes inside a container."""

import os

import pytest

from tests.integration.run_support import pyrun_run, run_env  # noqa: F401

pytestmark = [pytest.mark.root, pytest.mark.registry]


def mounts_inside(run_env, *flags):
    """Return {mount point: (fstype, options)} from the container's /proc/self/mountinfo."""
    result = pyrun_run(run_env, *flags, "busybox", "cat", "/proc/self/mountinfo")
    assert result.returncode == 0, result.stderr
    mounts = {}
    for line in result.stdout.splitlines():
        fields = line.split()
        separator = fields.index("-")
        mounts[fields[4]] = (fields[separator + 1], fields[5] + "," + fields[separator + 3])
    return mounts


def test_standard_mounts(run_env):
    mounts = mounts_inside(run_env)
    assert mounts["/"][0] == "overlay"
    assert mounts["/proc"][0] == "proc"
    assert mounts["/dev"][0] == "tmpfs"
    assert mounts["/dev/pts"][0] == "devpts"
    assert mounts["/dev/shm"][0] == "tmpfs"
    assert mounts["/dev/mqueue"][0] == "mqueue"
    assert mounts["/sys"][0] == "sysfs"
    assert "ro" in mounts["/sys"][1].split(",")
    for name in ("hostname", "hosts", "resolv.conf"):
        assert f"/etc/{name}" in mounts


def test_devpts_new_instance(run_env):
    options = mounts_inside(run_env)["/dev/pts"][1].split(",")
    assert "ptmxmode=666" in options
    assert "mode=620" in options


def test_readonly_proc_paths(run_env):
    mounts = mounts_inside(run_env)
    for path in ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"):
        if os.path.exists(path):
            assert "ro" in mounts[path][1].split(","), path


def test_masked_paths_are_empty(run_env):
    masked = ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/acpi", "/proc/latency_stats",
              "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
              "/sys/devices/virtual/powercap"]
    present = [path for path in masked if os.path.exists(path)]
    assert present, "the host has none of the masked paths"
    script = "; ".join(f"echo {path}: $(cat {path} 2>/dev/null | wc -c) $(ls -A {path} 2>/dev/null | wc -l)"
                       for path in present)
    result = pyrun_run(run_env, "busybox", "sh", "-c", script)
    for line in result.stdout.splitlines():
        path, size, entries = line.split()
        assert (size, entries) in (("0", "0"), ("0", "1")), line


def test_privileged_sees_unmasked_proc(run_env):
    mounts = mounts_inside(run_env, "--privileged")
    assert "/proc/sys" not in mounts
    assert "rw" in mounts["/sys"][1].split(",")


def test_proc_sys_write_fails(run_env):
    result = pyrun_run(run_env, "busybox", "sh", "-c", "echo 1 > /proc/sys/kernel/ns_last_pid")
    assert result.returncode != 0
    assert "Read-only" in result.stderr


def test_dev_contents(run_env):
    result = pyrun_run(run_env, "busybox", "ls", "-A", "/dev")
    assert result.stdout.split() == sorted(
        ["fd", "full", "mqueue", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin", "stdout", "tty",
         "urandom", "zero"]
    )


def test_dev_nodes_work(run_env):
    script = "echo x > /dev/null && head -c 4 /dev/zero | wc -c && head -c 4 /dev/urandom | wc -c"
    result = pyrun_run(run_env, "-u", "tester", "busybox", "sh", "-c", script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["4", "4"]


def test_dev_symlinks(run_env):
    result = pyrun_run(run_env, "busybox", "sh", "-c", "for link in fd stdin ptmx; do readlink /dev/$link; done")
    assert result.stdout.split() == ["/proc/self/fd", "/proc/self/fd/0", "pts/ptmx"]


def test_volume_bind_read_write_and_ro(run_env, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "in.txt").write_text("from host\n")
    result = pyrun_run(run_env, "-v", f"{shared}:/data", "busybox", "sh", "-c",
                       "cat /data/in.txt; echo from container > /data/out.txt")
    assert result.stdout == "from host\n"
    assert (shared / "out.txt").read_text() == "from container\n"

    readonly = pyrun_run(run_env, "-v", f"{shared}:/data:ro", "busybox", "touch", "/data/new")
    assert readonly.returncode != 0
    assert not (shared / "new").exists()


def test_volume_creates_missing_host_dir(run_env, tmp_path):
    missing = tmp_path / "made-by-v"
    result = pyrun_run(run_env, "-v", f"{missing}:/data", "busybox", "true")
    assert result.returncode == 0, result.stderr
    assert missing.is_dir()


@pytest.mark.parametrize(
    "flags",
    [["--memory", "64q", "busybox"], ["nosuchimage"]],
    ids=["invalid-flag", "missing-image"],
)
def test_rejected_run_creates_no_source(run_env, tmp_path, flags):
    missing = tmp_path / "newdir" / "sub"
    result = pyrun_run(run_env, "-v", f"{missing}:/x", *flags, "true")
    assert result.returncode == 125, result.stderr
    assert not (tmp_path / "newdir").exists()


def test_volume_binds_a_single_file(run_env, tmp_path):
    host_file = tmp_path / "passwd"
    host_file.write_text("teacher:x:1000:1000::/home/teacher:/bin/sh\n")
    replaced = pyrun_run(run_env, "-v", f"{host_file}:/etc/passwd:ro", "busybox", "cat", "/etc/passwd")
    assert replaced.returncode == 0, replaced.stderr
    assert replaced.stdout == host_file.read_text()

    # A target the image lacks becomes an empty file inside the root, not a directory.
    added = pyrun_run(run_env, "-v", f"{host_file}:/opt/notes.txt", "busybox", "cat", "/opt/notes.txt")
    assert added.returncode == 0, added.stderr
    assert added.stdout == host_file.read_text()


def test_mount_flag_bind_and_tmpfs(run_env, tmp_path):
    (tmp_path / "file").write_text("x")
    result = pyrun_run(
        run_env, "--mount", f"type=bind,source={tmp_path},target=/src,readonly",
        "--mount", "type=tmpfs,target=/scratch", "busybox", "sh", "-c",
        "cat /src/file; touch /src/y 2>/dev/null || echo ro; grep ' /scratch ' /proc/mounts | cut -d' ' -f3",
    )
    assert result.stdout.split() == ["xro", "tmpfs"]


def test_mount_missing_source_is_error(run_env, tmp_path):
    result = pyrun_run(run_env, "--mount", f"type=bind,source={tmp_path}/absent,target=/x", "busybox", "true")
    assert result.returncode == 125
    assert "does not exist" in result.stderr


def test_tmpfs_flag(run_env):
    result = pyrun_run(run_env, "--tmpfs", "/run/scratch:size=1m", "busybox", "sh", "-c",
                       "grep ' /run/scratch ' /proc/mounts")
    assert "tmpfs" in result.stdout
    assert "size=1024k" in result.stdout


def test_read_only_root(run_env):
    result = pyrun_run(run_env, "--read-only", "--tmpfs", "/tmp", "busybox", "sh", "-c",
                       "touch /tmp/ok && echo tmp-writable; touch /etc/nope || echo root-readonly")
    assert result.stdout.split() == ["tmp-writable", "root-readonly"]


def test_writes_stay_in_container(run_env):
    pyrun_run(run_env, "busybox", "sh", "-c", "echo changed > /etc/motd-test")
    result = pyrun_run(run_env, "busybox", "cat", "/etc/motd-test")
    assert result.returncode != 0


def test_privileged_gets_host_devices(run_env):
    assert os.path.exists("/dev/kmsg"), "the host has no /dev/kmsg to compare with"
    script = "test -c /dev/kmsg && echo has-kmsg || echo no-kmsg"
    assert pyrun_run(run_env, "--privileged", "busybox", "sh", "-c", script).stdout == "has-kmsg\n"
    assert pyrun_run(run_env, "busybox", "sh", "-c", script).stdout == "no-kmsg\n"


def test_cgroup_filesystem_shows_own_limits(run_env):
    script = ("cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes; "
              "grep ' /sys/fs/cgroup' /proc/mounts | grep -c ' ro,'")
    result = pyrun_run(run_env, "--memory", "64m", "busybox", "sh", "-c", script)
    assert result.returncode == 0, result.stderr
    limit, read_only_mounts = result.stdout.split()
    assert limit == str(64 * 1024 * 1024)
    assert int(read_only_mounts) >= 1
