"""The syscall seam: flag rendering, recording, listeners and error text."""

import ctypes
import errno
import os
import signal
import sys

import pytest

from runtime import syscalls


def test_render_flags_by_name():
    flags = syscalls.MS_BIND | syscalls.MS_REC
    assert syscalls.render_flags(flags, syscalls.MOUNT_FLAGS) == "MS_BIND|MS_REC"


def test_render_flags_unknown_bits_in_hex():
    rendered = syscalls.render_flags(syscalls.MNT_DETACH | 0x100, syscalls.UMOUNT_FLAGS)
    assert rendered == "MNT_DETACH|0x100"


def test_recorder_stores_calls_without_making_them():
    with syscalls.recording() as recorder:
        syscalls.unshare(syscalls.CLONE_NEWNS | syscalls.CLONE_NEWUTS)
        syscalls.mount("proc", "/nonexistent/proc", "proc", syscalls.MS_NOSUID)
    assert recorder.names() == ["unshare", "mount"]
    assert recorder.calls[0].args["flags"] == "CLONE_NEWNS|CLONE_NEWUTS"
    assert recorder.calls[1].args["target"] == "/nonexistent/proc"


def test_listener_sees_each_call():
    seen = []
    syscalls.add_listener(seen.append)
    try:
        with syscalls.recording():
            syscalls.sethostname("box")
    finally:
        syscalls.remove_listener(seen.append)
    assert [call.name for call in seen] == ["sethostname"]
    assert seen[0].render() == "sethostname(name='box') = 0"


def test_trace_shows_returned_number():
    # As strace does: a fork returns the child's pid, an open its descriptor.
    assert syscalls.Call("fork", "fork(2)", {}, None, 4242).render() == "fork() = 4242"
    assert syscalls.Call("fork", "fork(2)", {}, None, 0).render() == "fork() = 0"
    assert syscalls.Call("setsid", "setsid(2)", {}, None, None).render() == "setsid() = 0"


def test_real_call_records_its_result():
    seen = []
    syscalls.add_listener(seen.append)
    try:
        fd = syscalls.openat2(-100, "/", os.O_RDONLY | os.O_DIRECTORY, 0)
    finally:
        syscalls.remove_listener(seen.append)
    os.close(fd)
    assert seen[0].result == fd
    assert seen[0].render().endswith(f") = {fd}")


def test_failure_names_call_flags_and_path():
    with syscalls.recording() as recorder:
        recorder.fail["mount"] = errno.EINVAL
        with pytest.raises(OSError) as info:
            syscalls.mount("overlay", "/tmp/x", "overlay", syscalls.MS_RDONLY, "lowerdir=/a")
    message = str(info.value)
    assert "mount(" in message
    assert "MS_RDONLY" in message
    assert "/tmp/x" in message
    assert info.value.errno == errno.EINVAL


def test_execve_is_announced_before_it_runs():
    seen = []
    syscalls.add_listener(seen.append)
    try:
        with syscalls.recording():
            syscalls.execve("/bin/true", ["true"], {})
    finally:
        syscalls.remove_listener(seen.append)
    assert [call.name for call in seen] == ["execve"]


def test_failed_execve_is_announced_again_with_error():
    seen = []
    syscalls.add_listener(seen.append)
    try:
        with syscalls.recording() as recorder:
            recorder.fail["execve"] = errno.ENOENT
            with pytest.raises(OSError):
                syscalls.execve("/missing", ["missing"], {})
    finally:
        syscalls.remove_listener(seen.append)
    assert [call.name for call in seen] == ["execve", "execve"]
    assert seen[1].error is not None
    assert seen[1].error.errno == errno.ENOENT


def signal_mask(field: str) -> int:
    """Return a signal mask of this process from /proc/self/status: SigIgn (ignored) or SigCgt (caught)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1], 16)
    raise AssertionError(f"no {field} line in /proc/self/status")


def masks_around_reset(prepare) -> tuple[int, int, int, int]:
    """Run `prepare`, then reset_signal_actions, in a child; return SigIgn and SigCgt before and after.

    A child, so that the test process keeps its own signal actions.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            prepare()
            before = (signal_mask("SigIgn"), signal_mask("SigCgt"))
            syscalls.reset_signal_actions()
            after = (signal_mask("SigIgn"), signal_mask("SigCgt"))
            os.write(write_end, " ".join(str(mask) for mask in before + after).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    ignored_before, caught_before, ignored_after, caught_after = (int(value) for value in os.read(read_end, 200).split())
    os.close(read_end)
    os.waitpid(pid, 0)
    return ignored_before, caught_before, ignored_after, caught_after


def test_reset_clears_python_set_signals():
    # Ignored and caught signals, set through Python's signal module as
    # pyrun and its caller set them: none may remain after the reset.
    def prepare():
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)
        signal.signal(signal.SIGRTMIN + 6, signal.SIG_IGN)
        signal.signal(signal.SIGUSR2, lambda *_: None)

    ignored_before, caught_before, ignored_after, caught_after = masks_around_reset(prepare)
    for number in (signal.SIGUSR1, signal.SIGRTMIN + 6):
        assert ignored_before & (1 << (number - 1))
        assert not ignored_after & (1 << (number - 1))
    assert caught_before & (1 << (signal.SIGUSR2 - 1))
    assert not caught_after & (1 << (signal.SIGUSR2 - 1))


def test_reset_signal_actions_keeps_only_sigpipe_ignored():
    # SIGPIPE stays ignored until execve (see syscalls.execve).
    def prepare():
        ignore = syscalls._KernelSigaction(handler=1)  # SIG_IGN, for a signal glibc reserves
        number = syscalls.syscall_number("rt_sigaction")
        syscalls.libc().syscall(number, 32, ctypes.byref(ignore), None, 8)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)

    before, _, after, _ = masks_around_reset(prepare)
    assert before & (1 << 31)
    assert before & (1 << (signal.SIGPIPE - 1))
    assert after == 1 << (signal.SIGPIPE - 1)


class ClosedPipe:
    """A stderr whose reader has gone, as after `pyrun ... 2>&1 | head`."""

    def write(self, text):
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self):
        raise BrokenPipeError(32, "Broken pipe")


def test_trace_stops_when_stderr_is_gone(monkeypatch):
    monkeypatch.setattr(sys, "stderr", ClosedPipe())
    syscalls.add_listener(syscalls.trace_to_stderr)
    try:
        assert syscalls.record("getpid", "getpid(2)", lambda: 42) == 42
        assert syscalls.trace_to_stderr not in syscalls._listeners
    finally:
        if syscalls.trace_to_stderr in syscalls._listeners:
            syscalls.remove_listener(syscalls.trace_to_stderr)


def test_unknown_architecture_names_the_table_to_extend(monkeypatch):
    monkeypatch.setattr(syscalls, "_MACHINE", "riscv64")
    with pytest.raises(OSError, match="riscv64.*SYSCALL_NUMBERS") as caught:
        syscalls.syscall_number("openat2")
    assert caught.value.errno == errno.ENOSYS


def test_untraced_failure_still_names_flags(tmp_path):
    # Without listeners the call skips its record, but a failure is described in full.
    with pytest.raises(OSError) as caught:
        syscalls.mount(None, str(tmp_path / "missing"), None, syscalls.MS_BIND | syscalls.MS_REC)
    assert "flags=MS_BIND|MS_REC" in str(caught.value)
    assert f"target={tmp_path / 'missing'}" in str(caught.value)


def test_flags_render_by_name_when_shown():
    flags = syscalls.Flags(syscalls.MS_BIND | syscalls.MS_REC, syscalls.MOUNT_FLAGS)
    assert str(flags) == "MS_BIND|MS_REC"


def test_libc_falls_back_to_find_library(monkeypatch):
    # Where the soname libc.so.6 does not load (not glibc), ctypes.util finds the C library.
    from runtime import cdata

    real_library = cdata.Library
    failed_names = []

    def fail_first(name, **kwargs):
        if not failed_names:
            failed_names.append(name)
            raise OSError(f"{name}: cannot open shared object file")
        return real_library(name, **kwargs)

    monkeypatch.setattr(cdata, "Library", fail_first)
    monkeypatch.setattr(syscalls, "_libc", None)
    assert syscalls.libc().getpid() == os.getpid()
    assert failed_names == ["libc.so.6"]
