"""The --explain narration: what it prints for calls recorded at the seam."""

import errno
import os
import subprocess
import sys

import pytest

from runtime import explain, syscalls
from runtime.teaching import steps


@pytest.fixture(autouse=True)
def narration_off():
    """Leave the narration off after each test, whatever the test did."""
    yield
    explain.disable()


def narrated_calls(text: str) -> list[str]:
    """Return the indented call lines of a narration, without the man page."""
    lines = []
    for line in text.splitlines():
        if line.startswith("    ") and not line.startswith("    -"):
            lines.append(line.strip().split("    [")[0])
    return lines


def test_steps_narrated_in_order(capfd):
    explain.enable(colour=False)
    with syscalls.recording() as recorder:
        syscalls.unshare(syscalls.CLONE_NEWNS | syscalls.CLONE_NEWPID)
        syscalls.mount(None, "/", None, syscalls.MS_REC | syscalls.MS_PRIVATE)
        syscalls.mount("proc", "/r/proc", "proc", syscalls.MS_NOSUID)
        syscalls.pivot_root("/r", "/r/.oldroot")
        syscalls.execve("/bin/echo", ["echo", "hi"], {})
    err = capfd.readouterr().err
    assert narrated_calls(err) == [call.render() for call in recorder.calls]


def test_call_line_names_man_page(capfd):
    explain.enable(colour=False)
    with syscalls.recording():
        syscalls.pivot_root("/r", "/r/.oldroot")
    err = capfd.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("Swap the root of this mount namespace: /r becomes /")
    assert lines[1] == "    pivot_root(new_root='/r', put_old='/r/.oldroot') = 0    [man 2 pivot_root]"


def test_unshare_lists_each_namespace(capfd):
    explain.enable(colour=False)
    with syscalls.recording():
        syscalls.unshare(syscalls.CLONE_NEWUTS | syscalls.CLONE_NEWNET)
    err = capfd.readouterr().err
    assert "  - uts namespace (CLONE_NEWUTS): its own hostname" in err
    assert "  - net namespace (CLONE_NEWNET): its own interfaces" in err
    assert "mount namespace" not in err


@pytest.mark.parametrize(
    "source, target, fstype, flags, expected",
    [
        ("proc", "/r/proc", "proc", syscalls.MS_NOSUID, "Mount a new proc filesystem at /r/proc"),
        ("/c/hosts", "/r/etc/hosts", None, syscalls.MS_BIND, "Bind-mount the container's own hosts file"),
        (None, "/", None, syscalls.MS_REC | syscalls.MS_PRIVATE, "Make every mount under / private"),
        ("/c/rootfs", "/c/rootfs", None, syscalls.MS_BIND | syscalls.MS_REC,
         "Bind-mount the new root /c/rootfs onto itself"),
        ("/r/proc/sys", "/r/proc/sys", None, syscalls.MS_BIND, "Bind-mount /r/proc/sys onto itself, so it"),
        ("/dev/null", "/proc/keys", None, syscalls.MS_BIND, "Hide /proc/keys by bind-mounting /dev/null"),
        ("tmpfs", "/proc/acpi", "tmpfs", syscalls.MS_RDONLY, "Hide /proc/acpi under an empty tmpfs"),
        ("/data", "/r/data", None, syscalls.MS_BIND, "Bind-mount /data at /r/data"),
        ("overlay", "/r", "overlay", 0, "Stack the image's layers into one root filesystem at /r"),
        ("tmpfs", "/r/dev", "tmpfs", syscalls.MS_NOSUID, "Mount an empty tmpfs at /r/dev, so"),
        ("tmpfs", "/r/dev/shm", "tmpfs", 0, "Mount an empty tmpfs at /r/dev/shm for POSIX shared memory"),
        ("tmpfs", "/r/run", "tmpfs", 0, "Mount an empty in-memory filesystem (tmpfs) at /r/run"),
        ("x", "/r/y", "ext4", 0, "Mount a ext4 filesystem from x at /r/y"),
    ],
)
def test_mount_explanation_by_arguments(source, target, fstype, flags, expected):
    with syscalls.recording() as recorder:
        syscalls.mount(source, target, fstype, flags)
    call = recorder.calls[0]
    assert steps.explain(call.name, call.args).startswith(expected)


def test_read_only_bind_remount_explained():
    with syscalls.recording() as recorder:
        syscalls.mount(None, "/r/sys", None, syscalls.MS_REMOUNT | syscalls.MS_BIND | syscalls.MS_RDONLY)
    call = recorder.calls[0]
    assert steps.explain(call.name, call.args).startswith("Remount the bind mount at /r/sys read-only")


def test_cgroup_write_explained_by_file():
    with syscalls.recording() as recorder:
        syscalls.write_cgroup_file("/sys/fs/cgroup/pyrun/ab/memory.max", "16777216")
        syscalls.write_cgroup_file("/sys/fs/cgroup/memory/pyrun/ab/memory.limit_in_bytes", "16777216")
        syscalls.write_cgroup_file("/sys/fs/cgroup/pyrun/ab/io.weight", "50")
    v2, v1, other = (steps.explain(call.name, call.args) for call in recorder.calls)
    assert v2.startswith("Limit the container's memory to 16777216 bytes (cgroup v2)")
    assert v1.startswith("Limit the container's memory to 16777216 bytes (cgroup v1)")
    assert other == "Write 50 to the cgroup file /sys/fs/cgroup/pyrun/ab/io.weight."


def test_unknown_call_still_narrated(capfd):
    explain.enable(colour=False)
    with syscalls.recording():
        syscalls.record("frobnicate", "frobnicate(2)", lambda: None, level=3)
    err = capfd.readouterr().err
    assert "Call frobnicate (runtime/teaching/steps.py has no explanation for it yet)." in err
    assert "    frobnicate(level=3) = 0    [man 2 frobnicate]" in err


def test_missing_field_left_as_written():
    # An entry whose text names an argument the call lacks must not fail.
    text = steps.explain("netlink RTM_NEWADDR", {"ifname": "eth0"})
    assert text == "Give eth0 the address {address}, so it can send and receive IP packets."


def test_failed_call_narrated_with_error(capfd):
    explain.enable(colour=False)
    with syscalls.recording() as recorder:
        recorder.fail["mount"] = errno.EINVAL
        with pytest.raises(OSError):
            syscalls.mount("overlay", "/r", "overlay", 0, "lowerdir=/a")
    err = capfd.readouterr().err
    assert err.startswith("Failed (EINVAL): Stack the image's layers")
    assert "= -1 EINVAL (Invalid argument)" in err


def test_execve_narrated_before_it_runs(capfd):
    explain.enable(colour=False)
    seen_before = []

    def fake_exec():
        seen_before.append(capfd.readouterr().err)

    syscalls.record("execve", "execve(2)", fake_exec, returns=False, path="/bin/true", argv=["true"])
    assert "Run the container's command /bin/true" in seen_before[0]
    assert capfd.readouterr().err == ""


def test_disabled_prints_nothing(capfd):
    with syscalls.recording():
        syscalls.sethostname("box")
    explain.step("registry request", method="GET", url="http://127.0.0.1/v2/", status=200)
    assert capfd.readouterr().err == ""


def test_registry_step_narrated(capfd):
    explain.enable(colour=False)
    url = "http://127.0.0.1:5000/v2/library/busybox/blobs/sha256:0a1b"
    explain.step("registry request", method="GET", url=url, status=200)
    lines = capfd.readouterr().err.splitlines()
    assert lines[0] == f"Download the blob at {url}: the image config or a layer, checked against its digest."
    assert lines[1] == f"    registry request: method=GET, url={url}, status=200    [OCI distribution spec]"


def test_registry_challenge_explained():
    text = steps.explain("registry request", {"method": "GET", "url": "http://h/v2/", "status": 401})
    assert text.startswith("The registry wants a token first (401 Unauthorized)")


def test_plain_text_when_not_terminal(capfd):
    explain.enable()
    with syscalls.recording():
        syscalls.sethostname("box")
    assert "\033[" not in capfd.readouterr().err


def test_colour_when_forced(capfd):
    explain.enable(colour=True)
    with syscalls.recording():
        syscalls.sethostname("box")
    assert explain.BOLD in capfd.readouterr().err


def test_no_colour_honoured(monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    assert explain.wants_colour(2) is False


def test_broken_table_entry_does_not_stop_call(capfd, monkeypatch):
    def broken(name, args):
        raise KeyError("typo")

    monkeypatch.setattr(steps, "explain", broken)
    explain.enable(colour=False)
    with syscalls.recording() as recorder:
        syscalls.sethostname("box")
    assert recorder.names() == ["sethostname"]
    assert "    sethostname(name='box') = 0" in capfd.readouterr().err


def test_child_narration_survives_stderr_redirect(capfd):
    # The container's child may point fd 2 at the container log before
    # execve; the narration must still reach the stderr pyrun started with.
    explain.enable(colour=False)
    pid = os.fork()
    if pid == 0:
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            with syscalls.recording():
                syscalls.sethostname("child")
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert "Give the container's UTS namespace its own hostname, child" in capfd.readouterr().err


def test_output_not_inherited_by_exec():
    explain.enable(colour=False)
    assert os.get_inheritable(explain._output_fd) is False


# Argument names each seam wrapper records; a `when` pattern on another name
# could never match, which would hide the entry.
SEAM_ARGUMENTS = {
    "mount": {"source", "target", "fstype", "flags", "data"},
    "umount2": {"target", "flags"},
    "unshare": {"flags"},
    "setns": {"path", "nstype"},
    "pivot_root": {"new_root", "put_old"},
    "chroot": {"path"},
    "chdir": {"path"},
    "sethostname": {"name"},
    "mknod": {"path", "mode", "device"},
    "symlink": {"target", "path"},
    "execve": {"path", "argv"},
    "mkdir": {"path", "mode"},
    "rmdir": {"path"},
    "write_cgroup_file": {"path", "value"},
    "kill": {"pid", "signal"},
    "fork": set(),
    "prctl": {"option", "arg2", "arg3"},
    "openat2": {"dirfd", "path", "flags", "resolve"},
    "fchdir": {"fd", "path"},
    "setsid": set(),
    "setgroups": {"groups"},
    "setresgid": {"rgid", "egid", "sgid"},
    "setresuid": {"ruid", "euid", "suid"},
    "close_range": {"first", "last"},
    "ioctl": {"fd", "request"},
}


@pytest.mark.parametrize("entry", [e for e in steps.STEPS if e.call in SEAM_ARGUMENTS], ids=lambda e: e.call)
def test_table_patterns_use_recorded_arguments(entry):
    assert set(entry.when) <= SEAM_ARGUMENTS[entry.call]


def test_flag_pattern_ignores_order():
    entry = steps.Step("mount", "x", {"flags": "MS_BIND|MS_RDONLY"})
    assert entry.matches("mount", {"flags": "MS_RDONLY|MS_REMOUNT|MS_BIND"})
    assert not entry.matches("mount", {"flags": "MS_BIND"})


def test_cgroup_directory_explained():
    with syscalls.recording() as recorder:
        syscalls.mkdir("/sys/fs/cgroup/memory/pyrun/ab")
        syscalls.mkdir("/tmp/not-a-cgroup")
    texts = [steps.explain(call.name, call.args) for call in recorder.calls]
    assert texts[0].startswith("Create the cgroup /sys/fs/cgroup/memory/pyrun/ab: a directory")
    assert texts[1] == "Create the directory /tmp/not-a-cgroup."


def test_nft_script_lists_each_command(capfd):
    explain.enable(colour=False)
    commands = [
        "add table ip pyrun",
        'add rule ip pyrun postrouting ip saddr 10.88.0.0/16 oifname != "pyrun0" masquerade',
        "add rule ip pyrun published tcp dport 8080 dnat to 10.88.0.2:80",
    ]
    with syscalls.recording():
        syscalls.record("nft -f -", "nft(8)", lambda: None, commands=commands)
    lines = capfd.readouterr().err.splitlines()
    assert lines[0] == "Change pyrun's nftables rules in one transaction: all of them apply, or none does."
    assert lines[1].startswith("  - Create the table")
    assert lines[2] == "      add table ip pyrun"
    assert lines[3].startswith("  - Rewrite the source address")
    assert lines[5] == "  - Forward a host port to the container (destination NAT)."
    assert lines[6] == "      add rule ip pyrun published tcp dport 8080 dnat to 10.88.0.2:80"
    assert lines[7] == "    nft -f -(commands='<3 commands, listed above>') = 0    [man 8 nft]"


def test_fork_narrated_once_child_marked(capfd):
    explain.enable(colour=False)
    child = syscalls.record("fork", "fork(2)", os.fork)
    if child == 0:
        try:
            with syscalls.recording():
                syscalls.sethostname("inside")
        finally:
            os._exit(0)
    os.waitpid(child, 0)
    err = capfd.readouterr().err
    assert err.count("Start a child process") == 1
    assert "[child] Give the container's UTS namespace its own hostname, inside" in err


def test_call_name_pattern_fills_call_field():
    text = steps.explain("nft list chain ip pyrun published", {})
    assert text == "Read the nftables rules now in place (nft list chain ip pyrun published), to decide what to change."


def test_narration_moves_to_stderr_when_copy_closed(capfd):
    explain.enable(colour=False)
    os.close(explain._output_fd)
    with syscalls.recording():
        syscalls.sethostname("after-close")
    assert "its own hostname, after-close" in capfd.readouterr().err


def test_narration_never_writes_to_reused_fd(capfd, tmp_path):
    # After close_range(2) in the child, the number of the copy may belong
    # to another file; the narration must not write into it.
    explain.enable(colour=False)
    fd = explain._output_fd
    os.close(fd)
    other = tmp_path / "other-file"
    reused = os.open(other, os.O_WRONLY | os.O_CREAT)
    try:
        assert reused == fd
        with syscalls.recording():
            syscalls.sethostname("box")
    finally:
        os.close(reused)
    assert other.read_text() == ""
    assert "its own hostname, box" in capfd.readouterr().err


def test_fd_path_target_resolved(capfd, tmp_path):
    # pyrun mounts onto /proc/self/fd/N; the narration names the directory.
    dev = tmp_path / "rootfs" / "dev"
    dev.mkdir(parents=True)
    fd = os.open(dev, os.O_PATH)
    explain.enable(colour=False)
    try:
        with syscalls.recording():
            syscalls.mount("tmpfs", f"/proc/self/fd/{fd}", "tmpfs", syscalls.MS_NOSUID)
    finally:
        os.close(fd)
    lines = capfd.readouterr().err.splitlines()
    assert lines[0].startswith(f"Mount an empty tmpfs at {dev}, so the container gets only the device nodes")
    assert lines[1] == (f"  - /proc/self/fd/{fd} is {dev}, opened inside the new root first: going through the "
                        "file descriptor means a symlink in the image cannot redirect the step to the host.")
    assert lines[2].startswith(f"    mount(source='tmpfs', target='/proc/self/fd/{fd}'")


def test_expected_failure_named_by_errno(capfd):
    explain.enable(colour=False)
    with syscalls.recording() as recorder:
        recorder.fail["mkdir"] = errno.EEXIST
        with pytest.raises(OSError):
            syscalls.mkdir("/sys/fs/cgroup/memory/pyrun")
    err = capfd.readouterr().err
    assert err.startswith("Exists already (EEXIST): Create the cgroup /sys/fs/cgroup/memory/pyrun")


def test_registry_url_redacted(capfd):
    explain.enable(colour=False)
    url = "https://user:secret@cdn.example/blobs/ab?X-Amz-Signature=deadbeef&expires=1"
    explain.step("registry request", method="GET", url=url, status=200)
    err = capfd.readouterr().err
    assert "secret" not in err
    assert "deadbeef" not in err
    assert "url=https://cdn.example/blobs/ab?..." in err


def test_spawned_helper_narrates_to_same_stderr(capfd, tmp_path):
    # A helper started with exec, not fork, gets the descriptor and the
    # variable, and narrates to the same stderr.
    explain.enable(colour=False)
    env = dict(os.environ, **explain.child_environment())
    script = (
        "import os\n"
        "from runtime import explain, syscalls\n"
        "assert explain.enable_from_environment()\n"
        "assert 'PYRUN_EXPLAIN_FD' not in os.environ\n"
        "with syscalls.recording():\n"
        "    syscalls.sethostname('helper')\n"
    )
    fd = explain.output_fd()
    result = subprocess.run([sys.executable, "-c", script], env=env, pass_fds=[fd],
                            stderr=subprocess.DEVNULL, cwd=tmp_path.parent, timeout=60)
    assert result.returncode == 0
    assert "its own hostname, helper" in capfd.readouterr().err


def test_environment_empty_when_off():
    assert explain.child_environment() == {}


def test_enable_from_environment_ignores_closed_fd(monkeypatch):
    monkeypatch.setenv(explain.EXPLAIN_FD_VARIABLE, "987")
    assert explain.enable_from_environment() is False
    assert explain.is_enabled() is False
