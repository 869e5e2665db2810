"""The socket pair between pyrun and its children: messages and passed descriptors."""

from __future__ import annotations

import os
import signal
import time

import pytest

from runtime import launch, syscalls


@pytest.fixture
def pair():
    ours, theirs = launch.socketpair()
    yield ours, theirs
    ours.close()
    theirs.close()


def test_socketpair_close_on_exec(pair):
    for end in pair:
        assert not os.get_inheritable(end.fileno())


def test_send_fds_passes_descriptors(pair):
    ours, theirs = pair
    read_end, write_end = os.pipe()
    launch.send_fds(theirs, b"started\0", [write_end, read_end])
    os.close(write_end)
    os.close(read_end)
    data, fds = launch.recv_fds(ours, 65536, 4)
    assert data == b"started\0"
    assert len(fds) == 2
    os.write(fds[0], b"through the copy")
    assert os.read(fds[1], 100) == b"through the copy"
    for fd in fds:
        os.close(fd)


def test_recv_fds_without_descriptors(pair):
    ours, theirs = pair
    launch.send_fds(theirs, b"plain", [])
    assert launch.recv_fds(ours, 65536, 4) == (b"plain", [])


def test_channel_messages_and_error(pair):
    ours, theirs = pair
    child = launch.Channel(theirs)
    parent = launch.Channel(ours)
    child.send("pid", "42")
    assert parent.expect("pid") == ("42", [])
    child.send("error", "mount filesystems\0" "125\0" "no such file")
    with pytest.raises(launch.SetupError, match="failed at mount filesystems: no such file"):
        parent.receive()
    theirs.close()
    assert parent.receive() == ("", "", [])


def test_largest_seccomp_filter_fits_one_message(pair):
    # "go" carries the compiled filter: the kernel takes at most 4096 instructions of 8 bytes.
    ours, theirs = pair
    program = bytes(range(256)) * 128
    launch.Channel(ours).send("go", program.hex())
    payload, _ = launch.Channel(theirs).expect("go")
    assert bytes.fromhex(payload) == program


def test_cut_short_message_is_an_error(pair):
    ours, theirs = pair
    theirs.send(b"x" * 100)
    with pytest.raises(OSError, match="longer than 10 bytes"):
        launch.recv_fds(ours, 10, 4)


def test_go_to_a_failed_child_reports_its_error(pair):
    # C failed a step, reported it and exited before pyrun sent "go".
    ours, theirs = pair
    launch.Channel(theirs).send("error", "mount filesystems\0" "125\0" "symlink at /proc")
    theirs.close()
    channel = launch.Channel(ours)
    launch.send_go(channel, b"\x06\x00\x00\x00\x00\x00\xff\x7f")
    with pytest.raises(launch.SetupError, match="failed at mount filesystems: symlink at /proc"):
        channel.receive()


def test_go_after_unread_message_reports_error(pair):
    # C failed before it read "cgroup": the socket was closed with that
    # message unread, so the send of "go" fails with ECONNRESET.
    ours, theirs = pair
    channel = launch.Channel(ours)
    launch.send_to_child(channel, "cgroup")
    launch.Channel(theirs).send("error", "mount filesystems\0" "125\0" "symlink at /proc")
    theirs.close()
    launch.send_go(channel, b"\x06\x00\x00\x00\x00\x00\xff\x7f")
    with pytest.raises(launch.SetupError, match="failed at mount filesystems: symlink at /proc"):
        channel.receive()


def test_error_sent_before_a_reset_is_still_read(pair):
    # C failed after pyrun's "go" had reached it unread: closing its end
    # resets pyrun's, and the kernel reports the reset before the queued
    # "error" message.
    ours, theirs = pair
    channel = launch.Channel(ours)
    launch.send_go(channel, b"")
    launch.Channel(theirs).send("error", "mount filesystems\0" "125\0" "symlink at /proc")
    theirs.close()
    with pytest.raises(launch.SetupError, match="failed at mount filesystems: symlink at /proc"):
        channel.receive()


def test_child_killed_with_message_unread_is_the_end(pair):
    # C was killed (stop, rm -f) before it read "go": pyrun's next receive
    # gets ECONNRESET, which means the same as end-of-file.
    ours, theirs = pair
    channel = launch.Channel(ours)
    launch.send_go(channel, b"")
    theirs.close()
    assert channel.receive() == ("", "", [])


def spec_with(namespaces: list[dict]) -> dict:
    return {"linux": {"namespaces": namespaces}}


def test_clone_flags_skip_cgroup_namespace():
    spec = spec_with([{"type": kind} for kind in ("pid", "network", "ipc", "uts", "mount", "cgroup")])
    expected = (syscalls.CLONE_NEWPID | syscalls.CLONE_NEWNET | syscalls.CLONE_NEWIPC
                | syscalls.CLONE_NEWUTS | syscalls.CLONE_NEWNS)
    assert launch.namespaces_at_clone(spec) == expected


def test_joined_namespace_needs_setup_process():
    spec = spec_with([{"type": "pid"}, {"type": "mount"}, {"type": "network", "path": "/proc/42/ns/net"}])
    assert launch.namespaces_at_clone(spec) == 0


class CgroupThatCannotBeJoined:
    def join_self(self, cgroup2: bool = True) -> None:
        raise OSError(13, "write /sys/fs/cgroup/memory/pyrun/c1/cgroup.procs: Permission denied")


def test_failed_cgroup_join_names_its_step(pair, monkeypatch):
    ours, theirs = pair
    parent = launch.Channel(ours)
    parent.send("cgroup")
    reported = []
    monkeypatch.setattr(launch, "_report_and_exit", lambda channel, step, err: reported.append((step, err)))

    launch._enter_cgroup(launch.Channel(theirs), CgroupThatCannotBeJoined(), syscalls.CLONE_NEWCGROUP, in_cgroup2=True)

    assert len(reported) == 1
    assert reported[0][0] == "join the cgroup"
    assert "cgroup.procs" in str(reported[0][1])


def start_setup_process(theirs, message: str | None) -> tuple[int, int]:
    """Fork a stand-in for S: it forks a stand-in for C that keeps the channel open, sends `message` or nothing, and exits.

    Returns (S's pid, C's pid).
    """
    read_end, write_end = os.pipe()
    setup_pid = os.fork()
    if setup_pid == 0:
        try:
            container_pid = os.fork()
            if container_pid == 0:
                time.sleep(30)  # keeps its copy of the channel open, as pid 1 does
                os._exit(0)
            os.write(write_end, str(container_pid).encode())
            if message is not None:
                launch.Channel(theirs).send("pid", message)
        finally:
            os._exit(0)
    os.close(write_end)
    container_pid = int(os.read(read_end, 20))
    os.close(read_end)
    return setup_pid, container_pid


@pytest.mark.parametrize("message", ["4242", None])
def test_expect_pid_watches_setup_process(pair, message):
    ours, theirs = pair
    setup_pid, container_pid = start_setup_process(theirs, message)
    try:
        if message is None:
            with pytest.raises(launch.SetupError, match="setup process ended before it started pid 1"):
                launch._expect_pid(launch.Channel(ours), setup_pid)
        else:
            assert launch._expect_pid(launch.Channel(ours), setup_pid) == message
    finally:
        os.kill(container_pid, signal.SIGKILL)
        os.waitpid(setup_pid, 0)
