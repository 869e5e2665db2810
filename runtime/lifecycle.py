"""Detached containers: start under a monitor, stop, kill, remove, wait, and the true state.

There is no daemon, so the truth about a container is spread over three
places, and `reconcile` puts them together each time a command looks:

* the record (`state.json`), written by the monitor and its start helper;
* the container's pid 1, identified by its pid and its start time in
  /proc/<pid>/stat (a pid alone may be reused by another process);
* the monitor, which keeps an exclusive flock(2) on `monitor.lock` while it lives.

A record with status "running" is wrong when the host rebooted since
(/proc/sys/kernel/random/boot_id differs), or when pid 1 is gone and no
monitor is left to record its exit. Such an exit was seen by nobody, so
its exit code is unknown (recorded as None). When `stop` or `kill` sent
the signal that ended it, the code is 128 + that signal, as Docker shows
it. `reconcile` then cleans up the cgroup, network and overlay mount the
container left behind.

`start` forks the future monitor, which forks the start helper and then
execs `runtime/monitor.py`; after the exit, the monitor imports this module
and runs `main(["cleanup", ...])` in its own process.

Record fields this module and the monitor add to runtime.state's:

    monitor_pid, pid_start_time, boot_id   who watches pid 1, and which pid 1 it is
    oom_file                              the cgroup file with the "oom_kill" count
    error                                 why the start failed, or that the exit is unknown
    auto_remove, init, tty, stop_signal, log_config, path, args, image_name
                                          the run options (written by the CLI at create)

`exit_code` is None while the container runs and when its exit was unknown.
"""

from __future__ import annotations

import fcntl
import os
import sys
import time

# runtime.syscalls (with _ctypes) and runtime.overlay are imported inside the
# functions that make kernel calls, so `ps` and `inspect` do without them.
# The context managers below are classes, not contextlib generators (see
# "Start-up cost" in docs/architecture.md).
from runtime import jsonio, signals, state
from runtime.errors import ContainerNotFoundError, NotFoundError, PyrunError, UsageError, describe_error
from runtime.log import configure as configure_logging, get_logger

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

log = get_logger(__name__)

MONITOR_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "monitor.py")
MONITOR_LOCK = "monitor.lock"
BOOT_ID_FILE = "/proc/sys/kernel/random/boot_id"
UNKNOWN_EXIT_ERROR = "the container exited while no monitor watched it, so its exit code is unknown"
# How long `kill` waits for pid 1 to exit when no monitor is left to record the exit.
KILL_EXIT_WAIT_SECONDS = 2.0


# -- Processes -----------------------------------------------------------------


_boot_id: list[str] = []  # read once per process


def boot_id() -> str:
    """Return this boot's random ID, which changes on every reboot."""
    if not _boot_id:
        with open(BOOT_ID_FILE, encoding="ascii") as file:
            _boot_id.append(file.read().strip())
    return _boot_id[0]


def process_start_time(pid: int) -> int | None:
    """Return field 22 of /proc/<pid>/stat (start time in clock ticks since boot), or None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            data = file.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) may contain spaces and ")", so split after its last ")".
    fields = data[data.rindex(b")") + 2 :].split()
    if fields[0] == b"Z":
        return None  # a zombie has exited already
    return int(fields[19])


def process_alive(pid: int, start_time: int | None) -> bool:
    """True when `pid` runs and is the same process that started at `start_time`."""
    if not pid:
        return False
    current = process_start_time(pid)
    return current is not None and (start_time is None or current == start_time)


def container_alive(record: dict[str, Any]) -> bool:
    return process_alive(record.get("pid", 0), record.get("pid_start_time"))


class _Flock:
    """A flock(2) held for a `with` block, on a file or a directory of a container.

    The block gets False when LOCK_NB could not take the lock, else True.
    Entering raises NotFoundError when the container's directory is gone
    (removed by another command or by --rm).
    """

    def __init__(self, path: str, operation: int, *, open_flags: int, container_id: str) -> None:
        self.path = path
        self.operation = operation
        self.open_flags = open_flags
        self.container_id = container_id
        self.fd = -1

    def __enter__(self) -> bool:
        try:
            self.fd = os.open(self.path, self.open_flags | os.O_CLOEXEC, 0o600)
        except FileNotFoundError:
            raise ContainerNotFoundError(f"no such container: {self.container_id}") from None
        try:
            fcntl.flock(self.fd, self.operation)
        except BlockingIOError:
            return False
        except BaseException:
            os.close(self.fd)
            raise
        return True

    def __exit__(self, *exc_info: object) -> None:
        os.close(self.fd)


def _flock(path: str, operation: int) -> _Flock:
    """Return flock(2) `operation` on the file `path` in a container's directory, for a `with` block."""
    return _Flock(path, operation, open_flags=os.O_RDWR | os.O_CREAT,
                  container_id=os.path.basename(os.path.dirname(path)))


def _clean_up_lock(directory: str) -> _Flock:
    """Return an exclusive flock(2) on the container's directory, held while its resources are released.

    `reconcile` and `remove` take it, so two commands never release one
    container's resources at the same time. (They wait for a monitor's
    clean-up through monitor.lock.) Locking the directory creates no file:
    a lock file that `rm` created only to delete it again cost about 0.7 ms
    per container (measured on ext4).
    """
    return _Flock(directory, fcntl.LOCK_EX, open_flags=os.O_RDONLY | os.O_DIRECTORY,
                  container_id=os.path.basename(directory))


def monitor_alive(directory: str) -> bool:
    """True while a monitor holds the container's monitor.lock."""
    if not os.path.exists(os.path.join(directory, MONITOR_LOCK)):
        return False
    with _flock(os.path.join(directory, MONITOR_LOCK), fcntl.LOCK_SH | fcntl.LOCK_NB) as free:
        return not free


def wait_for_monitor(directory: str) -> None:
    """Block until no monitor watches the container (its lock is released on exit or kill)."""
    try:
        with _flock(os.path.join(directory, MONITOR_LOCK), fcntl.LOCK_SH):
            pass
    except NotFoundError:
        pass  # removed, so no monitor is left either


# -- The true state ------------------------------------------------------------


def reconcile(root: str, record: dict[str, Any], *, ending_signal: int | None = None) -> dict[str, Any]:
    """Return the record corrected for a reboot or an exit no monitor saw; clean up after one.

    `ending_signal` is the signal the caller sent and after which pid 1
    exited. An exit no monitor saw then gets exit code 128 + that signal
    rather than None (unknown).
    """
    if record.get("status") != state.STATUS_RUNNING:
        return record
    same_boot = record.get("boot_id") in (None, boot_id())
    if same_boot and container_alive(record):
        return record
    directory = state.container_dir(root, record["id"])
    if same_boot and monitor_alive(directory):
        return record  # the monitor is recording the exit right now
    with _clean_up_lock(directory):
        record = state.load_record(root, record["id"])
        if record.get("status") != state.STATUS_RUNNING:
            return record  # another command cleaned up first
        log.info("container %s exited while no monitor watched it", record["id"][:12])
        try:
            release_resources(root, record["id"])
        except PyrunError as err:
            log.warning("clean-up of container %s: %s", record["id"][:12], err)
        if same_boot and ending_signal:
            # NOTE: this assumes the signal ended pid 1. A pid 1 that caught
            # the signal and exited with a code of its own is recorded the same.
            exit_code, error = 128 + ending_signal, ""
        else:
            exit_code, error = None, UNKNOWN_EXIT_ERROR
        return state.update_record(
            root, record["id"], status=state.STATUS_EXITED, exit_code=exit_code, pid=0,
            finished_at=state.now(), error=error,
        )


def load(root: str, reference: str) -> dict[str, Any]:
    """Find a container by name, ID or unique ID prefix and return its reconciled record."""
    container_id = find(root, reference)
    return reconcile(root, state.load_record(root, container_id))


def find(root: str, reference: str) -> str:
    """Return the ID for a name, full ID or unique ID prefix; an ambiguous prefix lists its matches."""
    try:
        return state.find_container(root, reference.lstrip("/"))
    except UsageError:
        matches = sorted(entry[:12] for entry in os.listdir(state.containers_dir(root)) if entry.startswith(reference))
        raise UsageError(
            f"container ID prefix {reference!r} is ambiguous: it matches {', '.join(matches)}",
            hint="give more characters of the ID, or the name",
        ) from None


def list_containers(root: str) -> list[dict[str, Any]]:
    """Return every container's reconciled record, skipping those removed meanwhile."""
    records = []
    for record in state.list_records(root):
        try:
            records.append(reconcile(root, record))
        except NotFoundError:
            continue
    return records


def spec_of(root: str, container_id: str) -> dict[str, Any]:
    with open(os.path.join(state.container_dir(root, container_id), "config.json"), encoding="utf-8") as file:
        return jsonio.load(file)


# -- Starting ------------------------------------------------------------------


def start(root: str, container_id: str) -> None:
    """Start a created or exited container under a new monitor; return once its command runs.

    Must be called from a process without other threads, because it forks.
    """
    from runtime import syscalls

    directory = state.container_dir(root, container_id)
    record = reconcile(root, state.load_record(root, container_id))
    if record.get("status") == state.STATUS_RUNNING:
        return  # Docker's start of a running container does nothing
    # The previous run's monitor may still be cleaning up (after stop, restart).
    wait_for_monitor(directory)

    ready_read, ready_write = os.pipe()
    # Once forked, the monitor starts the container whatever this process
    # does. So a Ctrl-C waits for the monitor's report, and the caller
    # that catches the KeyboardInterrupt finds the container either
    # running or exited, never halfway started.
    with InterruptDeferred():
        intermediate = syscalls.fork()
        if intermediate == 0:
            os.close(ready_read)
            _become_monitor(root, container_id, ready_write)
        os.close(ready_write)
        os.waitpid(intermediate, 0)
        with os.fdopen(ready_read, encoding="utf-8", errors="replace") as ready:
            answer = ready.readline().strip()
    if answer == "ok":
        return
    # The monitor reports "CODE MESSAGE" when the start named an exit code.
    code, _, message = answer.partition(" ")
    if not code.isdigit():
        code, message = "125", answer or "the monitor exited before it started the container"
    raise PyrunError(f"start container {container_id[:12]}: {message}", exit_code=int(code))


class _SigintHandler:
    """A SIGINT handler set for a `with` block, in the main thread only, because only it may set handlers."""

    def __init__(self, handler: Any) -> None:
        self.handler = handler
        self.previous: list[Any] = []  # empty when no handler was set

    def __enter__(self) -> None:
        try:
            self.previous.append(signals.signal(signals.SIGINT, self.handler))
        except ValueError:  # raised in any thread but the main one
            pass

    def __exit__(self, *exc_info: object) -> None:
        if self.previous:
            signals.signal(signals.SIGINT, self.previous.pop())


class InterruptDeferred:
    """A `with` block that holds back a SIGINT, and raises KeyboardInterrupt once the block has ended."""

    def __init__(self) -> None:
        self.received: list[int] = []
        self.handler = _SigintHandler(lambda signum, frame: self.received.append(signum))

    def __enter__(self) -> None:
        self.handler.__enter__()

    def __exit__(self, exc_type: type | None, *exc_info: object) -> None:
        self.handler.__exit__()
        if self.received and exc_type is None:
            raise KeyboardInterrupt


class RemovedOnInterrupt:
    """A `with` block that removes the containers listed in it when Ctrl-C interrupts it, then raises again.

    `run -d` enters this block before it creates its container and adds
    the new ID to the block's list inside `InterruptDeferred()`, so no
    Ctrl-C can fall between the creation and the listing. An interrupted
    run then leaves no container behind, whether it had started or not.
    (`container.create` already removes a container it did not finish.)
    """

    def __init__(self, root: str) -> None:
        self.root = root
        self.container_ids: list[str] = []

    def __enter__(self) -> list[str]:
        return self.container_ids

    def __exit__(self, exc_type: type | None, *exc_info: object) -> None:
        if exc_type is None or not issubclass(exc_type, KeyboardInterrupt):
            return
        # Ignore a second Ctrl-C, which would leave a container half removed.
        with _SigintHandler(signals.SIG_IGN):
            for container_id in self.container_ids:
                log.info("interrupted: removing container %s", container_id[:12])
                try:
                    remove(self.root, container_id, force=True)
                except NotFoundError:
                    pass  # an --rm container removed itself after its start failed
                except PyrunError as err:
                    log.warning("failed to remove interrupted container %s: %s",
                                container_id[:12], describe_error(err))


def _become_monitor(root: str, container_id: str, ready_fd: int) -> None:
    """In a child of the CLI: leave its session, start the container, then exec the monitor.

    The fork and the start in a child of this process reuse the modules
    the CLI has imported, which saves starting a full interpreter per
    container. The monitor itself is then a fresh, lean `python -S`.
    Never returns; a failure is reported on `ready_fd` as "CODE MESSAGE".
    """
    from runtime import syscalls

    try:
        # A new session without a terminal, and a second fork so that the
        # monitor is no session leader and cannot get a terminal again.
        os.setsid()
        if syscalls.fork() > 0:
            os._exit(0)
        argv = _start_for_monitor(root, container_id, ready_fd)
        # The container runs: report it now, so the caller does not wait
        # the 10 ms or so that the monitor's interpreter takes to start.
        _write_line(ready_fd, "ok")
        os.close(ready_fd)
        ready_fd = -1
        os.execv(sys.executable, argv)
    except BaseException as err:  # noqa: BLE001 - reported to the CLI, then exit
        # After "ok", only the exec can fail: the container then runs on
        # unwatched, as after a monitor killed with SIGKILL.
        if ready_fd >= 0:
            _write_line(ready_fd, f"125 {describe_error(err)}")
    os._exit(125)


def _start_for_monitor(root: str, container_id: str, ready_fd: int) -> list[str]:
    """Take the monitor's lock, start pid 1 through a forked start helper, and return the monitor's argv."""
    from runtime import launch, syscalls

    # The start helper reports pyrun's own messages (--log-level, a crash)
    # on the caller's stderr; it exits before `run -d` returns.
    caller_stderr = os.dup(2)
    null = os.open(os.devnull, os.O_RDWR)
    for target in (0, 1, 2):
        os.dup2(null, target)  # let go of the CLI's terminal and output pipes
    os.close(null)
    lock = os.open(os.path.join(state.container_dir(root, container_id), MONITOR_LOCK), os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(lock, fcntl.LOCK_EX)
    # Orphaned descendants become this process's children: pid 1 once the start helper exits.
    syscalls.prctl(syscalls.PR_SET_CHILD_SUBREAPER, 1)

    stdout_read, stdout_write = os.pipe()
    stderr_read, stderr_write = os.pipe()
    # The run options (-i, -t, --log-opt) were recorded at create, and the start does not change them.
    record = state.load_record(root, container_id)
    stdin_read, stdin_write = _stdin_pipe(record)
    ours, theirs = launch.socketpair()
    helper = syscalls.fork()
    if helper == 0:
        try:
            for fd in (stdout_read, stderr_read, lock, ready_fd):
                os.close(fd)
            ours.close()
            if stdin_read >= 0:
                os.close(stdin_write)
                os.dup2(stdin_read, 0)
            os.dup2(caller_stderr, 2)
            os._exit(run_start_helper(root, container_id, theirs.detach(), (stdout_write, stderr_write)))
        except BaseException as err:  # noqa: BLE001 - the caller's stderr shows it
            _write_line(2, describe_error(err))
        os._exit(125)
    os.close(caller_stderr)
    os.close(stdout_write)
    os.close(stderr_write)
    if stdin_read >= 0:
        os.close(stdin_read)
    theirs.close()

    # Imported while the start helper works, on the other CPU if there is one:
    # the helper does not need these modules.
    from runtime import attach, logs, monitor

    message, fds = launch.recv_fds(ours, 65536, monitor.MAX_PASSED_FDS)
    ours.close()
    os.waitpid(helper, 0)
    kind, _, payload = message.decode(errors="replace").partition("\0")
    if kind != "started":
        # The payload is "CODE MESSAGE". A helper that died without one has
        # printed why on the caller's stderr.
        report = payload or "125 the start helper exited without a report"
        _write_line(ready_fd, report)
        os._exit(1)

    pid_text, _, console_flag = payload.partition("\0")
    console = fds.pop() if console_flag == "console" else -1
    if console >= 0 and record.get("interactive"):
        stdin_write = console  # with -t -i, input goes to the pty master
    # The attach FIFOs and the log file are opened here, before the exec,
    # so that `attach` and `logs` find them as soon as `run -d` returns.
    directory = state.container_dir(root, container_id)
    control_fd, input_fd = attach.open_fifos(directory, stdin_write >= 0)
    log_fd = os.open(logs.log_path(directory, container_id), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    passed = [lock, stdout_read, stderr_read, control_fd, log_fd, *fds]
    passed += [fd for fd in (console, stdin_write, input_fd) if fd >= 0]
    for fd in passed:
        os.set_inheritable(fd, True)
    # Descriptors the CLI inherited from its caller (a test's pipes, a
    # shell's files) would otherwise stay open in the monitor for the
    # container's whole life.
    for name in os.listdir("/proc/self/fd"):
        if int(name) > 2 and int(name) not in passed and int(name) != ready_fd:
            try:
                os.close(int(name))
            except OSError:
                pass  # the fd of the listing itself, closed already
    log_config = record.get("log_config") or {}
    # `python -S`: the monitor needs no site-packages, which saves memory.
    return [
        sys.executable, "-S", MONITOR_SCRIPT, root, container_id, str(lock), pid_text,
        str(stdout_read), str(stderr_read), str(console), ",".join(str(fd) for fd in fds), str(stdin_write),
        str(control_fd), str(input_fd), str(log_fd),
        str(log_config.get("max_size", 0)), str(log_config.get("max_file", 1)),
    ]


def _stdin_pipe(record: dict[str, Any]) -> tuple[int, int]:
    """Return a pipe for the stdin of a container created with -i and without -t, else (-1, -1).

    The monitor keeps the write end for the container's whole life, so the
    command reads no end-of-file while no client is attached (runtime.attach).
    """
    if not record.get("interactive") or record.get("tty"):
        return -1, -1
    return os.pipe()


def _write_line(fd: int, text: str) -> None:
    try:
        os.write(fd, (text.replace("\n", " ") + "\n").encode(errors="replace"))
    except OSError:
        pass  # the reader is gone


def run_start_helper(root: str, container_id: str, channel_fd: int, output: tuple[int, int]) -> int:
    """In the start helper: set up and start the container, send pid 1's fds to the monitor; return the exit status.

    `output` is the write ends of the pipes the monitor logs: pid 1 gets
    them as stdout and stderr (runtime.output), without a terminal. The
    helper's own stderr stays the caller's, for pyrun's messages.
    """
    import _socket

    from runtime import container as containers
    from runtime import launch

    channel = _socket.socket(fileno=channel_fd)
    record = state.load_record(root, container_id)
    spec = spec_of(root, container_id)
    directory = state.container_dir(root, container_id)
    created = containers.Container(
        root, container_id, record["name"], directory, spec, record.get("network_plan") or {"mode": "none"}
    )
    try:
        _mount_rootfs(created, record["image_id"], ephemeral=bool(record.get("auto_remove")))
        # NOTE: these two helpers are private to runtime.container; the
        # foreground `run` uses them in the same order.
        created.cgroup = containers._open_cgroup(created)
        started = launch.start(
            directory, spec,
            use_init=bool(record.get("init")),
            cgroup=created.cgroup,
            finish_cgroup=lambda: containers._finish_cgroup(created),
            before_exec=lambda pid: containers._attach_network(created, pid),
            detached=True,
            interactive=bool(record.get("interactive")),
            stdio=(-1, *output),  # stdin is already on fd 0: the monitor's pipe with -i
        )
    except BaseException as err:
        message = describe_error(err)
        code = getattr(err, "exit_code", 125)
        released = True
        try:
            release_resources(root, container_id)
        except PyrunError as cleanup_error:
            log.warning("clean-up after a failed start: %s", describe_error(cleanup_error))
            released = False
        finish(root, container_id, code, False, error=message, released=released)
        # The CLI prints the message as it prints its own errors: hint last.
        hint = getattr(err, "hint", "")
        channel.send(f"failed\0{code} {message}{f' ({hint})' if hint else ''}".encode())
        return 1

    state.update_record(
        root, container_id,
        status=state.STATUS_RUNNING, pid=started.pid, pid_start_time=process_start_time(started.pid),
        boot_id=boot_id(), started_at=state.now(), finished_at=None, exit_code=None, error="",
        monitor_pid=os.getppid(), oom_file=_oom_file(created.cgroup),
    )
    from runtime import network

    fds = [sock.fileno() for sock in network.held_sockets(container_id)]
    payload = f"started\0{started.pid}\0{'console' if started.console is not None else ''}"
    if started.console is not None:
        fds.append(started.console)
    launch.send_fds(channel, payload.encode(), fds)
    log.debug("container %s runs as host pid %d under monitor %d", container_id[:12], started.pid, os.getppid())
    return 0


def _mount_rootfs(created: Any, image_id: str, *, ephemeral: bool) -> None:
    """Mount the overlay again for a container that ran before.

    Its layers are those linked in l/, or, when the mount named them by
    their full paths, those of its image in the store (`rmi` keeps the
    layers of an image that a container uses).
    """
    if os.path.ismount(created.rootfs):
        return
    from runtime import overlay

    layer_dirs = overlay.linked_layers(created.directory)
    if not layer_dirs:
        from runtime.store import ImageStore
        from runtime.store.init_layer import rootfs_layers

        layer_dirs = rootfs_layers(created.root, ImageStore(created.root).get(image_id))
    overlay.mount_overlay(created.directory, layer_dirs, volatile=ephemeral)


def _oom_file(cgroup: Any) -> str:
    """Return the file with the cgroup's "oom_kill" count: memory.events (v2) or memory.oom_control (v1)."""
    controller_directory = getattr(cgroup, "controller_directory", None)
    if controller_directory is not None:
        memory = controller_directory("memory")
        return os.path.join(memory, "memory.oom_control") if memory else ""
    return os.path.join(cgroup.directory, "memory.events")


# -- Cleaning up ---------------------------------------------------------------


def release_resources(root: str, container_id: str) -> None:
    """Remove the container's network, cgroup and overlay mount; each step runs even if one fails."""
    from runtime import overlay

    directory = state.container_dir(root, container_id)
    errors: list[BaseException] = []
    if os.path.exists(os.path.join(directory, "network.json")):
        try:
            from runtime import network

            network.detach(container_id)
        except (OSError, PyrunError) as err:
            errors.append(err)
    try:
        from runtime import cgroups

        manager = cgroups.open_cgroup(_cgroups_path(root, container_id))
        if manager.exists():
            manager.remove()
    except (OSError, PyrunError, KeyError) as err:
        errors.append(err)
    try:
        overlay.unmount_overlay(os.path.join(directory, "rootfs"))
    except OSError as err:
        errors.append(err)
    if errors:
        raise PyrunError(f"clean up container {container_id[:12]}") from errors[0]


def _cgroups_path(root: str, container_id: str) -> str:
    """Return the cgroup path in the container's config.json, or the default path when that file is missing or torn.

    pyrun writes config.json last when it creates a container, and makes the
    cgroup only when the container starts. A create that was killed before
    then leaves no config.json, and no cgroup at any other path.
    """
    try:
        return spec_of(root, container_id)["linux"]["cgroupsPath"]
    except (FileNotFoundError, ValueError):
        from runtime.cgroups import cgroup_path

        return cgroup_path(container_id)


def finish(
    root: str, container_id: str, exit_code: int | None, oom_killed: bool, *, error: str = "", released: bool = True
) -> None:
    """Record the exit, or remove the container when it was started with --rm.

    An --rm container whose resources were not all `released` keeps its
    record, because `pyrun rm` needs it to find them and retry.
    """
    record = state.load_record(root, container_id)
    if record.get("auto_remove") and released:
        state.remove_container(root, container_id)
        return
    state.update_record(
        root, container_id, status=state.STATUS_EXITED, exit_code=exit_code, pid=0,
        finished_at=state.now(), oom_killed=oom_killed, error=error,
    )


def run_cleanup_helper(root: str, container_id: str, exit_code: int, oom_killed: bool) -> int:
    """In the monitor after the exit: undo cgroup, network and mounts, then remove an --rm container if that worked.

    The monitor records the exit first; the record is written here only
    when the monitor could not write it.
    """
    error = ""
    try:
        release_resources(root, container_id)
    except PyrunError as err:
        error = describe_error(err)
        print(f"pyrun: {error}", file=sys.stderr)
    record = state.load_record(root, container_id)
    if record.get("auto_remove") or record.get("status") == state.STATUS_RUNNING:
        finish(root, container_id, exit_code, oom_killed, error=error, released=not error)
    return 1 if error else 0


# -- Commands ------------------------------------------------------------------


def stop_signal(record: dict[str, Any]) -> int:
    """Return the image's StopSignal (SIGWINCH for httpd), or SIGTERM when the image sets none."""
    return parse_signal(record.get("stop_signal") or "SIGTERM")


def parse_signal(text: str) -> int:
    """Return the number for "SIGKILL", "KILL", "kill" or "9"."""
    if text.isdigit():
        number = int(text)
        if 0 < number < signals.NSIG:
            return number
    else:
        name = text.upper()
        name = name if name.startswith("SIG") else "SIG" + name
        number = signals.number_for_name(name)
        if number is not None:
            return number
    raise UsageError(f"invalid signal {text!r}", hint="use a name such as SIGTERM or KILL, or a number")


def send_signal(record: dict[str, Any], sig: int) -> None:
    """Send `sig` to the container's pid 1 after checking that the pid was not reused."""
    from runtime import syscalls

    if record.get("status") != state.STATUS_RUNNING or not container_alive(record):
        raise PyrunError(f"container {record['name']!r} is not running", hint=f"start it with pyrun start {record['name']}")
    try:
        syscalls.kill(record["pid"], sig)
    except ProcessLookupError:
        pass  # it exited just now


def wait_until_stopped(root: str, container_id: str, timeout: float | None) -> bool:
    """Wait until pid 1 is gone (up to `timeout` seconds); True if it is."""
    record = state.load_record(root, container_id)
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = 0.005
    while container_alive(record):
        if deadline is not None and time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.1)
    return True


def settle(root: str, container_id: str, *, ending_signal: int | None = None) -> dict[str, Any]:
    """After pid 1 exited: wait for the monitor to record the exit, or clean up when there is none.

    The monitor records the exit before its clean-up runs, so this
    returns before the cgroup, network and mounts are gone; `start` and
    `rm` wait for the monitor itself. `ending_signal` is passed on to
    `reconcile` for an exit no monitor saw.
    """
    directory = state.container_dir(root, container_id)
    delay = 0.002
    while True:
        record = state.load_record(root, container_id)
        if record.get("status") != state.STATUS_RUNNING or not monitor_alive(directory):
            return reconcile(root, record, ending_signal=ending_signal)
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def stop(root: str, reference: str, timeout: float | None = None, sig: int | None = None) -> str:
    """Send `sig` or the image's stop signal, then SIGKILL after `timeout` seconds (default 10); return the ID."""
    record = load(root, reference)
    container_id = record["id"]
    if record.get("status") != state.STATUS_RUNNING:
        return container_id
    if timeout is None:
        timeout = 10
    elif timeout < 0:
        timeout = None  # Docker's -t -1: wait as long as it takes, never SIGKILL
    # The last signal this stop delivered, which ended pid 1 unless it exited on its own.
    ending_signal = sig or stop_signal(record)
    try:
        send_signal(record, ending_signal)
    except PyrunError:
        ending_signal = None  # exited meanwhile, so its exit code is not ours to tell
    if not wait_until_stopped(root, container_id, timeout):
        log.info("container %s ignored its stop signal for %s s: sending SIGKILL", container_id[:12], timeout)
        ending_signal = signals.SIGKILL
        try:
            send_signal(state.load_record(root, container_id), signals.SIGKILL)
        except PyrunError:
            ending_signal = None
        wait_until_stopped(root, container_id, None)
    settle(root, container_id, ending_signal=ending_signal)
    return container_id


def kill(root: str, reference: str, sig: int = signals.SIGKILL) -> str:
    """Send `sig` to the container's pid 1; return the ID.

    Without a monitor, nobody would see the exit that `sig` causes, so
    `kill` waits up to KILL_EXIT_WAIT_SECONDS for pid 1 to exit and
    records 128 + `sig` itself. A pid 1 that outlives the wait keeps
    running, and its later exit stays unknown.
    """
    record = load(root, reference)
    container_id = record["id"]
    send_signal(record, sig)
    if not monitor_alive(state.container_dir(root, container_id)):
        if wait_until_stopped(root, container_id, KILL_EXIT_WAIT_SECONDS):
            settle(root, container_id, ending_signal=sig)
    return container_id


def remove(root: str, reference: str, *, force: bool = False) -> str:
    """Remove a container; a running one only with `force`, which kills it first."""
    try:
        record = load(root, reference)
    except ContainerNotFoundError:
        leftover = _remove_name_without_record(root, reference)
        if leftover is None:
            raise
        return leftover
    container_id = record["id"]
    if record.get("status") == state.STATUS_RUNNING:
        if not force:
            raise PyrunError(
                f"cannot remove container {record['name']!r}: it is running",
                hint="stop the container before removing it, or use rm -f",
            )
        try:
            send_signal(record, signals.SIGKILL)
        except PyrunError:
            pass  # it exited meanwhile, so the wait below returns at once
        wait_until_stopped(root, container_id, None)
        settle(root, container_id)
    directory = state.container_dir(root, container_id)
    wait_for_monitor(directory)
    try:
        with _clean_up_lock(directory):
            if not os.path.exists(os.path.join(directory, "state.json")):
                return container_id  # another rm removed it while this one waited
            release_resources(root, container_id)
            state.remove_container(root, container_id)
    except NotFoundError:
        pass  # an --rm monitor or another rm removed it
    return container_id


def _remove_name_without_record(root: str, reference: str) -> str | None:
    """Free the name `reference` when it leads to no record; return the container ID it named, else None.

    A create writes the record before the name link. Older versions of
    pyrun made the link first, so a create killed between the two left a
    name that no command could free, with no directory or one without
    state.json (and so no mount or cgroup).
    """
    name = reference.lstrip("/")
    container_id = state.id_for_name(root, name)
    if container_id is None:
        return None
    directory = state.container_dir(root, container_id)
    if os.path.exists(os.path.join(directory, "state.json")):
        return None
    state.remove_tree(directory)
    state.release_name(root, name, container_id)
    return container_id


def wait(root: str, reference: str) -> int | None:
    """Block until the container is not running; return its exit code (None when unknown)."""
    container_id = find(root, reference)
    record = reconcile(root, state.load_record(root, container_id))
    if record.get("status") == state.STATUS_RUNNING:
        wait_until_stopped(root, container_id, None)
        try:
            record = settle(root, container_id)
        except NotFoundError:
            # NOTE: an --rm container whose clean-up won the race is gone
            # with its record, so its exit code is unknown here.
            return None
    return record.get("exit_code")


def rename(root: str, reference: str, new_name: str) -> None:
    record = load(root, reference)
    container_id = record["id"]
    state.reserve_name(root, new_name, container_id)
    state.update_record(root, container_id, name=new_name)
    state.release_name(root, record["name"], container_id)


def prune(root: str) -> tuple[list[str], int]:
    """Remove every container that is not running; return their IDs and the bytes their writable layers held."""
    from runtime.store.layout import tree_size

    removed, freed = [], 0
    for record in list_containers(root):
        if record.get("status") != state.STATUS_RUNNING:
            size = tree_size(os.path.join(state.container_dir(root, record["id"]), "upper"))
            remove(root, record["id"])
            removed.append(record["id"])
            freed += size
    return removed, freed


def main(argv: list[str]) -> int:
    """Run the monitor's clean-up, `cleanup ROOT ID EXIT_CODE OOM`, in this process or from a shell."""
    configure_logging("warning", "pyrun %(name)s: %(message)s")
    verb, root, container_id, *rest = argv
    if verb == "cleanup":
        return run_cleanup_helper(root, container_id, int(rest[0]), rest[1] == "1")
    print(f"pyrun lifecycle helper: unknown verb {verb!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
