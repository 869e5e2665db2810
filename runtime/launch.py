"""Start the container's first process from a bundle, with a channel back to pyrun.

Two processes take part:

    pyrun (P)       sets PR_SET_CHILD_SUBREAPER, clones C with clone3(2)
       |            into the cgroup's cgroup2 directory and into new
       |            namespaces; while C sets up, makes the v1 hierarchies
       |            of the cgroup with its limits ("cgroup") and compiles the
       |            seccomp filter; attaches the network to C, then sends C
       |            "go" with the filter
       +-- container (C)  pid 1 in the new pid namespace: mounts, joining the
                          rest of the cgroup and then its own cgroup
                          namespace before the cgroup filesystem is mounted;
                          pivot_root, identity, capabilities, then execve(2)

C is born in its cgroup2 directory (CLONE_INTO_CGROUP) and moves itself
into each v1 hierarchy, so no process is moved by pid, which makes the
kernel wait (runtime.cgroups.base). Its cgroup namespace comes last, with
unshare(2): a new cgroup namespace takes the caller's cgroups as its root,
and C is in all of them only then. C runs no command before P has written
every limit.

Where clone3 cannot be used (no cgroup2 hierarchy, an old kernel, a seccomp
filter that denies it, other threads in P), or the spec joins an existing
namespace, a setup process S comes between P and C. P forks S; S joins
the existing namespaces, unshare(2)s the new ones but the cgroup namespace,
starts C in the cgroup's cgroup2 directory where clone3 allows it, then
exits. S is needed because unshare(CLONE_NEWPID) moves only the caller's
future children into the new pid namespace. C is then re-parented to P.
C joins the rest of the cgroup and makes its cgroup namespace, as a cloned
C does. S never joins the cgroup, so C can be its only process. S keeps
the signals that P forwards blocked, so a Ctrl-C cannot end it. P also
watches S through a pidfd, because C inherits S's end of the channel, so
the channel stays open after S ends.

P and its children talk over a SOCK_SEQPACKET socket pair whose ends are
close-on-exec: each message is one packet, and when C executes the command
its end closes, so P reads end-of-file. A failed step sends an "error" packet naming the step instead,
and the child exits without running anything.
"""

from __future__ import annotations

import _socket
import errno
import os
import select
import struct

from runtime import devices, namespaces, process, rootfs, seccomp, signals, syscalls
from runtime.errors import PyrunError
from runtime.log import get_logger
from runtime.records import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

    from runtime.cgroups import Cgroup

log = get_logger(__name__)

EXIT_SETUP_FAILED = 125

# Signals whose Python dispositions must not reach the command: Python
# ignores SIGPIPE and SIGXFSZ, and an ignored signal stays ignored across
# execve(2).

class SetupError(PyrunError):
    """A step inside the container failed before the command started."""


@record
class Started:
    """The container's first process, as pyrun records it."""

    pid: int
    console: int | None = None  # the pty master with `-t`


# -- The socket pair ---------------------------------------------------------------
# These use the C module _socket, not socket: socket imports enum and
# selectors, about 14 ms of every pyrun command (python -X importtime).
# The descriptors travel as C ints packed by struct: the array module would
# import collections.
FD_SIZE = struct.calcsize("i")

# The largest message is "go" with a seccomp filter of the kernel's most
# instructions (BPF_MAXINSNS, 4096) of 8 bytes each, in hex: 64 KiB and the kind.
MESSAGE_SIZE = 1 << 17


def socketpair() -> tuple[_socket.socket, _socket.socket]:
    """Return two connected, close-on-exec AF_UNIX SOCK_SEQPACKET sockets (socketpair(2))."""
    return _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)


def send_fds(sock: _socket.socket, data: bytes, fds: list[int]) -> None:
    """Send `data` as one message with copies of the descriptors `fds` (SCM_RIGHTS, unix(7))."""
    sock.sendmsg([data], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, struct.pack(f"{len(fds)}i", *fds))])


def recv_fds(sock: _socket.socket, size: int, max_fds: int) -> tuple[bytes, list[int]]:
    """Receive one message of up to `size` bytes and the descriptors (at most `max_fds`) sent with it.

    The received descriptors are new in this process and inheritable, as
    with socket.recv_fds; the caller owns and closes them. A longer message
    raises OSError (EMSGSIZE): SOCK_SEQPACKET would drop its end silently.
    """
    fds: list[int] = []
    data, ancillary, flags, _address = sock.recvmsg(size, _socket.CMSG_LEN(max_fds * FD_SIZE))
    for level, kind, payload in ancillary:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            # A truncated message may end in part of a descriptor, which is dropped.
            count = len(payload) // FD_SIZE
            fds += struct.unpack(f"{count}i", payload[: count * FD_SIZE])
    if flags & _socket.MSG_TRUNC:
        for fd in fds:
            os.close(fd)
        raise OSError(errno.EMSGSIZE, f"a message longer than {size} bytes was cut short")
    return data, fds


class Channel:
    """One end of the socket pair; each message is a kind and a payload."""

    def __init__(self, sock: _socket.socket) -> None:
        self.sock = sock

    def send(self, kind: str, payload: str = "", fds: list[int] = ()) -> None:
        data = f"{kind}\0{payload}".encode()
        if fds:
            send_fds(self.sock, data, list(fds))
        else:
            self.sock.send(data)

    def receive(self) -> tuple[str, str, list[int]]:
        """Return (kind, payload, fds); kind "" means every child end is closed.

        A child that exited with a message of pyrun's unread (it was killed,
        or failed) resets the socket, and recvmsg(2) reports ECONNRESET once,
        before the messages the child sent ahead of its exit. So the reset
        is followed by one more read: the child's "error", or end-of-file.
        """
        try:
            data, fds = recv_fds(self.sock, MESSAGE_SIZE, 4)
        except ConnectionResetError:
            try:
                data, fds = recv_fds(self.sock, MESSAGE_SIZE, 4)
            except ConnectionResetError:
                return "", "", []
        if not data:
            return "", "", []
        kind, _, payload = data.decode().partition("\0")
        if kind == "error":
            step, code, message = payload.split("\0", 2)
            raise SetupError(f"container setup failed at {step}: {message}", exit_code=int(code))
        return kind, payload, fds

    def expect(self, kind: str) -> tuple[str, list[int]]:
        received, payload, fds = self.receive()
        if received != kind:
            raise SetupError(f"container setup ended early: expected {kind!r} from the child, got {received!r}")
        return payload, fds

    def close(self) -> None:
        self.sock.close()


def start(
    bundle: str,
    spec: dict[str, Any],
    *,
    interactive: bool = False,
    use_init: bool = False,
    cgroup: Cgroup | None = None,
    finish_cgroup: Callable[[], None] | None = None,
    before_exec: Callable[[int], None] | None = None,
    detached: bool = False,
    stdio: tuple[int, int, int] | None = None,
) -> Started:
    """Start the container's pid 1 and return once the command runs.

    `cgroup` needs to exist only in its cgroup2 hierarchy (Cgroup.create_in_cgroup2):
    `finish_cgroup()` creates the rest and applies the limits once the child
    is forked, while it sets up, and the processes join the rest only then,
    before the cgroup namespace exists. `before_exec(pid)`
    (network attach) runs once pid 1 is in its network namespace and before
    the command runs. `detached` containers outlive this process: their pid 1
    passes to the nearest subreaper (the monitor) instead of being killed
    when this process exits. `stdio`, without a terminal, lists the
    descriptors that become the command's stdin, stdout and stderr
    (runtime.output), with -1 for no stdin pipe. Without it, the command
    keeps this process's. Raises SetupError, with exit code 126 or 127 when
    the command cannot be run.
    """
    if use_init:
        # Imported before the fork: C cannot reach pyrun's files after pivot_root(2).
        from runtime import init  # noqa: F401
    parent_end, child_end = socketpair()
    channel = Channel(parent_end)
    syscalls.prctl(syscalls.PR_SET_CHILD_SUBREAPER, 1)

    at_clone = namespaces_at_clone(spec)
    try:
        if at_clone:
            child_pid, cloned = fork_in(cgroup, at_clone)
        else:
            # S stays outside the cgroup, so that C can be its only process (--pids-limit 1).
            child_pid, cloned = syscalls.fork(), False
    except BaseException:
        channel.close()
        child_end.close()
        raise
    # Born in its cgroup2 directory, the child was born in the namespaces too: it is C.
    # Otherwise it was forked, outside the cgroup and in pyrun's namespaces: it is S.
    if child_pid == 0:
        parent_end.close()
        child_channel = Channel(child_end)
        if cloned:
            _enter(child_channel, spec, unshare_flags=0)
            cgroup_namespace = namespaces.clone_flags(spec) & ~at_clone
            _container_process(child_channel, bundle, spec, interactive, use_init, detached, stdio,
                               lambda: _enter_cgroup(child_channel, cgroup, cgroup_namespace, in_cgroup2=True))
        _setup_process(child_channel, bundle, spec, interactive, use_init, detached, stdio, cgroup)
    child_end.close()

    container_pid, setup_pid = (child_pid, 0) if cloned else (0, child_pid)
    try:
        if cgroup is not None:
            # The child sets up what needs no cgroup meanwhile, and waits for
            # "cgroup" before it joins the rest.
            if finish_cgroup:
                finish_cgroup()
            send_to_child(channel, "cgroup")
        if not cloned:
            payload = _expect_pid(channel, setup_pid)
            container_pid = int(payload)
            _wait_for(setup_pid)
            setup_pid = 0  # reaped: its number may belong to another process from now on
        log.debug("pid 1 of the new pid namespace is host pid %d", container_pid)

        # The filter is compiled here, while C sets up its mounts, and sent
        # with "go". A failure kills C, as any failure here does.
        policy = spec["linux"].get("seccomp")
        program = seccomp.compile_program(policy) if policy is not None else b""

        console = None
        if spec["process"].get("terminal"):
            from runtime import terminal

            _, fds = channel.expect("console")
            console = fds[0]
            # Set before the command starts, which may read the size at once.
            terminal.copy_window_size(0, console)
        if before_exec:
            before_exec(container_pid)
        send_go(channel, program)

        # End-of-file: C executed the command and its close-on-exec end is gone.
        kind, _, _ = channel.receive()
        if kind:
            raise SetupError(f"container setup sent an unexpected {kind!r} message")
        return Started(container_pid, console)
    except BaseException:
        _kill_and_reap(container_pid)
        _kill_and_reap(setup_pid)
        raise
    finally:
        channel.close()


def send_go(channel: Channel, program: bytes) -> None:
    """Let C run its command, with the seccomp filter `program` (empty for none)."""
    send_to_child(channel, "go", program.hex())


def send_to_child(channel: Channel, kind: str, payload: str = "") -> None:
    """Send a message to S or C.

    A child whose set-up failed may have sent its "error" message and exited
    already, so the send can find the socket closed: EPIPE, or ECONNRESET
    when the child left an earlier message unread. The next receive then
    reports the error.
    """
    try:
        channel.send(kind, payload)
    except (BrokenPipeError, ConnectionResetError):
        pass


def namespaces_at_clone(spec: dict[str, Any]) -> int:
    """Return the CLONE_NEW* flags that C can be cloned with, or 0 when S must make the namespaces.

    The flags are those of every new namespace but the cgroup namespace,
    which C makes once it is in every hierarchy of its cgroup. The result is
    0 when the spec joins an existing namespace (--network container:NAME):
    S joins it first, so P finds pid 1 in it once the "pid" message arrives.
    """
    if any(namespace.get("path") for namespace in spec["linux"].get("namespaces", [])):
        return 0
    return namespaces.clone_flags(spec) & ~syscalls.CLONE_NEWCGROUP


def fork_in(cgroup: Cgroup | None, namespaces: int = 0) -> tuple[int, bool]:
    """Fork; with a cgroup, the child is born in its cgroup2 directory where the kernel allows.

    Returns (pid, in_cgroup2), as Cgroup.fork_into does: the child then
    joins the rest of the cgroup with `cgroup.join_self(cgroup2=not in_cgroup2)`.
    A child born in its cgroup2 directory is born in new `namespaces` too.
    """
    if cgroup is None:
        return syscalls.fork(), False
    return cgroup.fork_into(namespaces)


def _expect_pid(channel: Channel, setup_pid: int) -> str:
    """Return the payload of S's "pid" message; raise SetupError if S ends without sending it.

    C inherits S's end of the channel, so S's exit alone does not end the
    channel: P also watches S through a pidfd (pidfd_open(2), Linux 5.3),
    which becomes readable when S exits.
    """
    try:
        pidfd = os.pidfd_open(setup_pid)
    except OSError:
        return channel.expect("pid")[0]  # an older kernel: the channel alone
    try:
        poller = select.poll()
        poller.register(channel.sock.fileno(), select.POLLIN)
        poller.register(pidfd, select.POLLIN)
        poller.poll()
        # S sends "pid" before it exits, so when S has ended, its message is
        # in the channel already, or was never sent.
        poller.unregister(pidfd)
        if poller.poll(0):
            return channel.expect("pid")[0]
    finally:
        os.close(pidfd)
    raise SetupError(f"container setup failed: the setup process ended before it started pid 1 (pid {setup_pid})",
                     hint="it was probably killed; run the command again")


def _wait_for(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _kill_and_reap(pid: int) -> None:
    if pid <= 0:
        return
    try:
        os.kill(pid, signals.SIGKILL)
    except ProcessLookupError:
        return
    _wait_for(pid)


# -- In the children -----------------------------------------------------------


def _report_and_exit(channel: Channel, step: str, err: BaseException) -> None:
    code = getattr(err, "exit_code", EXIT_SETUP_FAILED)
    parts = []
    current: BaseException | None = err
    while current is not None:
        if isinstance(current, OSError) and current.strerror:
            text = current.strerror  # the seam's message: the call, flags and paths
        else:
            text = str(current) or type(current).__name__
        if not parts or text not in parts[-1]:
            parts.append(text)
        current = current.__cause__
    try:
        channel.send("error", f"{step}\0{code}\0{': '.join(parts)}")
    finally:
        os._exit(code)


def _enter(channel: Channel, spec: dict[str, Any], unshare_flags: int) -> None:
    """In S, or in C when it was cloned: reset signals, join the existing namespaces, unshare `unshare_flags`.

    The signals that pyrun forwards stay blocked, as pyrun blocked them for
    the start: a Ctrl-C on the terminal reaches the whole process group,
    and would kill S, which is no pid namespace's init. C unblocks them
    (_container_process).
    """
    step = "reset signals"
    try:
        syscalls.reset_signal_actions()
        step = "join namespaces"
        namespaces.join_namespaces(spec)
        if unshare_flags:
            step = "unshare namespaces"
            namespaces.unshare_namespaces(unshare_flags)
    except BaseException as err:  # noqa: BLE001 - reported to pyrun, then exit
        _report_and_exit(channel, step, err)


def _enter_cgroup(channel: Channel, cgroup: Cgroup | None, cgroup_namespace: int, in_cgroup2: bool) -> None:
    """In C, before the cgroup filesystem is mounted: join the rest of the cgroup, then unshare `cgroup_namespace`.

    `in_cgroup2` is True when C was born in the cgroup2 directory, which
    leaves only the v1 hierarchies to join. A failure is reported with its
    own step, not as the mount step that runs this.
    """
    step = "join the cgroup"
    try:
        if cgroup is not None:
            _join_cgroup(channel, cgroup, in_cgroup2)
        if cgroup_namespace:
            step = "unshare the cgroup namespace"
            namespaces.unshare_namespaces(cgroup_namespace)
    except BaseException as err:  # noqa: BLE001 - reported to pyrun, then exit
        _report_and_exit(channel, step, err)


def _join_cgroup(channel: Channel, cgroup: Cgroup, in_cgroup2: bool) -> None:
    """Wait until pyrun has finished the cgroup ("cgroup"), then move this process into the rest of it."""
    channel.expect("cgroup")
    cgroup.join_self(cgroup2=not in_cgroup2)


def _setup_process(
    channel: Channel, bundle: str, spec: dict[str, Any], interactive: bool, use_init: bool, detached: bool,
    stdio: tuple[int, int, int] | None, cgroup: Cgroup | None,
) -> None:
    """S: join the existing namespaces, unshare the new ones but the cgroup namespace, start pid 1, exit.

    Pid 1 starts in the cgroup's cgroup2 directory where clone3(2) allows it
    (fork_in), then joins the rest of the cgroup and makes its own cgroup
    namespace, as a cloned C does. S itself never joins the cgroup.
    """
    flags = namespaces.clone_flags(spec)
    cgroup_namespace = flags & syscalls.CLONE_NEWCGROUP
    _enter(channel, spec, unshare_flags=flags & ~cgroup_namespace)
    try:
        pid, in_cgroup2 = fork_in(cgroup)
        if pid == 0:
            _container_process(channel, bundle, spec, interactive, use_init, detached, stdio,
                               lambda: _enter_cgroup(channel, cgroup, cgroup_namespace, in_cgroup2))
        channel.send("pid", str(pid))
    except BaseException as err:  # noqa: BLE001 - reported to pyrun, then exit
        _report_and_exit(channel, "fork pid 1", err)
    os._exit(0)


def _container_process(
    channel: Channel, bundle: str, spec: dict[str, Any], interactive: bool, use_init: bool, detached: bool,
    stdio: tuple[int, int, int] | None, enter_cgroup: Callable[[], None] | None = None,
) -> None:
    """C: build the container's view of the system, then run the command.

    `enter_cgroup()` joins the rest of the cgroup and makes the cgroup
    namespace: just before the cgroup filesystem is mounted.
    """
    step = "unblock signals"
    try:
        # pyrun blocks the signals it forwards while the container starts,
        # and the mask survives execve(2). In a new pid namespace, C is its
        # init, which does not die of a signal that it has no handler for.
        signals.pthread_sigmask(signals.SIG_SETMASK, set())

        step = "make the process non-dumpable"
        # Until execve(2), this process maps pyrun's Python interpreter. The
        # /proc/<pid>/exe and /proc/<pid>/mem of a non-dumpable process cannot
        # be opened by other processes (CVE-2019-5736).
        _set_dumpable(False)

        step = "set hostname"
        if spec.get("hostname"):
            namespaces.set_hostname(spec["hostname"])
        if namespaces.clone_flags(spec) & syscalls.CLONE_NEWNET:
            step = "bring up loopback"
            namespaces.bring_up_loopback()

        step = "mount filesystems"
        rootfs_path = rootfs.mount_filesystems(spec, bundle, before_cgroup=enter_cgroup)
        console = None
        if spec["process"].get("terminal"):
            step = "open terminal"
            master, console = process.open_console(rootfs_path)
            devices.bind_console(rootfs_path, console)
            channel.send("console", fds=[master])
            os.close(master)
        step = "pivot_root"
        rootfs.finish_rootfs(spec, rootfs_path)

        step = "set up stdio"
        if console is not None:
            process.setup_terminal(console)
        else:
            process.setup_plain_stdio(interactive, stdio)

        step = "wait for pyrun"
        program_hex, _ = channel.expect("go")
        # pyrun has reaped S by now, so pyrun is the parent: if pyrun dies,
        # the kernel kills the container instead of leaving it unsupervised.
        # A detached container's pyrun exits on purpose once the command runs.
        if not detached:
            syscalls.prctl(syscalls.PR_SET_PDEATHSIG, signals.SIGKILL)

        step = "apply user and capabilities"
        process.finalize(spec["process"], channel.sock.fileno(), bytes.fromhex(program_hex) or None)
        if use_init:
            step = "start init"
            from runtime import init  # loaded by start() before the fork

            init.run_init(channel)
        step = "exec"
        process.exec_command(spec["process"]["args"], spec["process"].get("env") or [])
    except BaseException as err:  # noqa: BLE001 - reported to pyrun, then exit
        _report_and_exit(channel, step, err)


def _set_dumpable(dumpable: bool) -> None:
    syscalls.prctl(syscalls.PR_SET_DUMPABLE, 1 if dumpable else 0)
