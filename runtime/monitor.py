"""The per-container monitor: one small process per detached container, and no daemon.

Like Podman's conmon, the monitor is the parent of a detached container's
pid 1 for the container's whole life:

    pyrun run -d / start     forks the future monitor and waits for its "ok" line
      future monitor         new session, no terminal, PR_SET_CHILD_SUBREAPER,
        |                    flock(2) on monitor.lock
        +-- start helper     a fork of it (the CLI's modules are loaded already):
        |                    cgroup, network, namespaces, then exits, and pid 1
        |                    is re-parented to the future monitor
        |                  the future monitor opens the attach FIFOs and the log,
        |                  sends "ok", then execs `python -S runtime/monitor.py`
      monitor                keeps the container's stdout and stderr pipes and its
                             published ports' sockets; logs the output, waitpid()s pid 1,
                             serves `pyrun attach` through FIFOs (runtime.attach),
                             then runs runtime.lifecycle's clean-up itself and exits

The monitor is a fresh interpreter started with -S (no site module) that
imports only the standard library, runtime.logs and runtime.attach while
the container runs, so it stays near 10 MiB of memory. The start (cgroups,
pyroute2, mounts) runs in the short-lived start helper, and the modules of
the clean-up load only after the container has exited.

While it lives, the monitor holds an exclusive flock(2) on
`<container dir>/monitor.lock`, taken before the exec and inherited
through it. The kernel drops the lock when the monitor exits or is killed,
so `pyrun wait`, `stop` and `rm -f` wait for the monitor by taking the same
lock, and any command can tell whether a monitor is still watching the
container.

NOTE: a monitor killed with SIGKILL takes the read ends of the container's
stdout and stderr with it. The container keeps running, but a write to its
stdout or stderr then fails with EPIPE (or SIGPIPE), as it does under
Podman when conmon is gone, and its published ports are no longer held.
"""

from __future__ import annotations

import fcntl
import os
import select
import sys

# When run by path with -S, the directory above `runtime/` is not on
# sys.path (the editable install's .pth file is read by the site module).
if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from runtime import attach, jsonio, logs, signals  # noqa: E402 - after the sys.path fix above

MAX_PASSED_FDS = 254  # published-port sockets (at most 253) plus a terminal
READ_SIZE = 65536


def read_record(container_dir: str) -> dict:
    with open(os.path.join(container_dir, "state.json"), encoding="utf-8") as file:
        return jsonio.load(file)


def record_exit(container_dir: str, exit_code: int, oom: bool) -> None:
    """Set the record to exited, as runtime.state.update_record does: under flock(2) on `lock`, by rename(2).

    runtime.state is not imported, because it would import more than the
    monitor needs; the file names and the lock must stay the same as there.
    As there, a missing lock file, or one unlinked while this waited for the
    lock, means `rm -f` removed the container: there is nothing to record,
    and making the file again would leave it behind.
    """
    fields = {"status": "exited", "exit_code": exit_code, "pid": 0, "finished_at": logs.timestamp(),
              "oom_killed": oom, "error": ""}
    try:
        lock = os.open(os.path.join(container_dir, "lock"), os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.fstat(lock).st_nlink == 0:
            return
        record = read_record(container_dir)
        record.update(fields)
        temporary = os.path.join(container_dir, "state.json.tmp")
        with open(temporary, "w", encoding="utf-8") as file:
            jsonio.dump(record, file, indent=2)
            file.write("\n")
        os.rename(temporary, os.path.join(container_dir, "state.json"))
    finally:
        os.close(lock)


def oom_killed(oom_file: str) -> bool:
    """Read the "oom_kill N" line of memory.events (v2) or memory.oom_control (v1)."""
    try:
        with open(oom_file, encoding="ascii") as file:
            for line in file:
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value) > 0
    except (OSError, ValueError):
        pass
    return False


class Monitor:
    """One detached container's monitor: logs its output, reaps it and cleans up after it."""

    def __init__(self, root: str, container_id: str) -> None:
        self.root = root
        self.container_id = container_id
        self.directory = os.path.join(root, "containers", container_id)
        self.python = sys.executable
        self.held_fds: list[int] = []
        self.attach_point: attach.AttachPoint | None = None

    def run(self, pid: int, streams: dict[int, str], held_fds: list[int], writer: logs.JsonFileWriter) -> int:
        """Log pid 1's `streams` with `writer` until they end, reap it, and clean up; `held_fds` close last."""
        self.held_fds = held_fds
        self.copy_output(streams, writer)
        if self.attach_point is not None:
            self.attach_point.close()  # attached clients read end-of-file after the last output
        writer.close()
        exit_code = self.wait_for(pid)
        oom = oom_killed(read_record(self.directory).get("oom_file", ""))
        # Recorded before the clean-up, so `stop` and `wait` return as soon
        # as the container has exited.
        try:
            record_exit(self.directory, exit_code, oom)
        except OSError:
            pass  # the clean-up records the exit instead
        self.clean_up(exit_code, oom)
        return 0

    def copy_output(self, streams: dict[int, str], writer: logs.JsonFileWriter) -> None:
        """Log the container's output until every stream has ended."""
        poller = select.poll()
        for fd in streams:
            poller.register(fd, select.POLLIN)
        attach_point = self.attach_point
        if attach_point is not None:
            attach_point.register(poller)
        while streams:
            for fd, _event in poller.poll(attach_point.timeout() if attach_point else None):
                if fd not in streams:
                    attach_point.handle(fd)  # only the attach point registers other fds
                    continue
                try:
                    data = os.read(fd, READ_SIZE)
                except OSError:
                    data = b""  # EIO: the pty's last user closed it
                if data:
                    writer.write(streams[fd], data)
                    if attach_point is not None:
                        attach_point.send_output(streams[fd], data)
                    continue
                writer.flush_partial(streams[fd])
                poller.unregister(fd)
                os.close(fd)
                del streams[fd]
                if attach_point is not None:
                    attach_point.stream_closed(fd)
            if attach_point is not None:
                attach_point.flush()  # input the container's stdin did not take before

    def wait_for(self, pid: int) -> int:
        """Reap children until `pid` exits; return its exit code (128+N for signal N)."""
        while True:
            try:
                reaped, status = os.waitpid(-1, 0)
            except ChildProcessError:
                return -1
            if reaped == pid:
                code = os.waitstatus_to_exitcode(status)
                return 128 - code if code < 0 else code

    def clean_up(self, exit_code: int, oom: bool) -> None:
        """Undo cgroup, network and mounts (and remove an --rm container), then close the held ports.

        The clean-up runs in this process, after the exit: a helper
        interpreter per container would cost more time than the clean-up
        itself. Its modules load only now, so the monitor stays small while
        the container runs. Its errors go to cleanup.log, which `rm`
        deletes with the container.

        NOTE: a monitor killed during the clean-up leaves it half done
        (a separate helper process would have finished it). `rm` releases
        the rest, but an --rm container then stays listed as exited.
        """
        error_log = os.open(
            os.path.join(self.directory, "cleanup.log"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600
        )
        os.dup2(error_log, 2)
        os.close(error_log)
        reap_exited_children()
        try:
            release_after_exit(self.root, self.container_id, exit_code, oom)
        except BaseException:  # noqa: BLE001 - nobody else would see it
            import traceback

            traceback.print_exc()
        # The published ports stay held until the clean-up removed their DNAT rules.
        for fd in self.held_fds:
            os.close(fd)


def reap_exited_children() -> None:
    """Reap the container's processes that exited after pid 1, so no zombie stays in its cgroup."""
    while True:
        try:
            reaped, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if reaped == 0:
            return


def release_after_exit(root: str, container_id: str, exit_code: int, oom: bool) -> int:
    """Run runtime.lifecycle's clean-up in this process; return its exit status.

    The network clean-up imports pyroute2 from site-packages, which
    `python -S` left off sys.path, so site.main() adds them first, and only
    for a container that has network resources.
    """
    if os.path.exists(os.path.join(root, "containers", container_id, "network.json")):
        import site

        site.main()
    from runtime import lifecycle

    return lifecycle.main(["cleanup", root, container_id, str(exit_code), "1" if oom else "0"])


def detach_from_caller() -> None:
    """Ignore the terminal's and the caller's signals, and leave the caller's working directory."""
    os.chdir("/")
    signals.signal(signals.SIGPIPE, signals.SIG_IGN)
    for sig in (signals.SIGINT, signals.SIGHUP, signals.SIGTERM, signals.SIGQUIT):
        signals.signal(sig, signals.SIG_IGN)


def main(argv: list[str]) -> int:
    """Watch one container until it exits.

    argv: ROOT CONTAINER_ID LOCK_FD PID STDOUT_FD STDERR_FD CONSOLE_FD HELD_FDS
    STDIN_FD CONTROL_FD INPUT_FD LOG_FD LOG_MAX_SIZE LOG_MAX_FILE, where the
    fds are inherited from runtime.lifecycle.start, CONSOLE_FD is -1
    without -t and HELD_FDS is a comma-separated list (maybe empty).
    STDIN_FD is the container's stdin with -i: the write end of its stdin
    pipe, or CONSOLE_FD with -t. It is -1 without -i. CONTROL_FD and
    INPUT_FD are the attach FIFOs (runtime.attach.open_fifos; INPUT_FD is -1
    without -i) and LOG_FD the json-file log, opened for appending. The log
    limits are --log-opt max-size in bytes (0: no limit) and max-file; they
    come on the command line because the record is JSON, and importing json
    costs about 8 ms here (measured with Python 3.11).
    """
    root, container_id = argv[0], argv[1]
    lock_fd, pid, stdout_fd, stderr_fd, console_fd = (int(value) for value in argv[2:7])
    held_fds = [int(fd) for fd in argv[7].split(",") if fd]
    stdin_fd, control_fd, input_fd, log_fd = (int(value) for value in argv[8:12])
    max_size, max_file = int(argv[12]), int(argv[13])
    # None of these may leak into a process that the clean-up starts. The
    # lock stays held by this process, because flock(2) locks belong to the open file.
    for fd in [lock_fd, stdout_fd, stderr_fd, *held_fds, console_fd, stdin_fd, control_fd, input_fd, log_fd]:
        if fd >= 0:
            os.set_inheritable(fd, False)
    detach_from_caller()
    # runtime.lifecycle made this process a child subreaper before the exec,
    # and prctl(2) keeps PR_SET_CHILD_SUBREAPER across execve(2), so the
    # monitor does not load the syscall seam to set it again.

    streams = {stdout_fd: "stdout", stderr_fd: "stderr"}
    if console_fd >= 0:
        # With -t, everything the container writes arrives on the pty master, as stdout.
        streams[console_fd] = "stdout"
    monitor = Monitor(root, container_id)
    # `pyrun run -d` has returned already, so a failure here reaches no
    # caller: the container is then left as after a killed monitor.
    monitor.attach_point = attach.AttachPoint(monitor.directory, stdin_fd, console_fd, (control_fd, input_fd))
    writer = logs.JsonFileWriter(logs.log_path(monitor.directory, container_id), max_size, max_file, log_fd)
    return monitor.run(pid, streams, held_fds, writer)


if __name__ == "__main__":
    status = main(sys.argv[1:])
    # Everything is written by now. Ending with os._exit skips the
    # interpreter's freeing of every module that the clean-up loaded, about
    # 8 ms of CPU per monitor (measured with Python 3.11), which `rm` right
    # after `stop` of many containers waits for.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
