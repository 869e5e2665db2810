"""`pyrun exec`: run another process inside a running container.

Three processes take part, as in runc's exec:

    pyrun (P)            forks J into the cgroup, relays the terminal, waits
      +-- joiner (J)     non-dumpable; joins the rest of the cgroup (its v1
         |               hierarchies), then setns(2) into each
         |               of pid 1's namespaces (the mount namespace last); forks E
         +-- exec (E)    the first process in the container's pid namespace:
                         identity, capabilities, working directory, the
                         container's seccomp filter, execve(2)

setns(CLONE_NEWPID) moves only future children into the namespace, hence E.
J makes itself non-dumpable before it joins anything: until E calls execve(2),
both map the host's Python interpreter, and a container process that could
open /proc/<pid>/exe of such a process for writing could overwrite the
host's interpreter (CVE-2019-5736 in runc). A non-dumpable process's
/proc/<pid>/exe and /proc/<pid>/mem are closed to other users and to
processes without CAP_SYS_PTRACE over it. E closes every descriptor above 2
before execve(2), so none of pyrun's files reaches the container. J never
enters the container's pid namespace, so no container process can see it.
"""

from __future__ import annotations

import copy
import os

from runtime import launch, process, rootfs, seccomp, signals, state, syscalls
# Imported here: the joining process cannot import modules once it is in
# the container's mount namespace.
from runtime.container import FORWARDED_SIGNALS, forward_signals
from runtime.errors import PyrunError
from runtime.namespaces import NAMESPACE_FLAGS, PROC_NAMES
from runtime.output import StdioPipes

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# setns(2) order: the mount namespace last, because after it /proc/<pid>/ns
# is the container's /proc, where the host pid means nothing.
JOIN_ORDER = ["user", "cgroup", "ipc", "uts", "network", "pid", "mount"]


def exec_process(spec: dict[str, Any], pid: int, command: list[str], *, user: str | None, env: list[str],
                 workdir: str, tty: bool) -> dict[str, Any]:
    """Return the spec's "process" object adjusted for the exec: args, env, user, cwd, terminal."""
    from runtime.spec import merge_env
    from runtime.users import resolve_user

    result = copy.deepcopy(spec["process"])
    result["args"] = command
    merged = merge_env(list(result.get("env") or []), env)
    if tty:
        merged.setdefault("TERM", "xterm")
    result["env"] = [f"{key}={value}" for key, value in merged.items()]
    result["terminal"] = tty
    if workdir:
        result["cwd"] = workdir
    if user is not None:
        container_root = f"/proc/{pid}/root"
        resolved = resolve_user(
            user,
            rootfs.read_file_in_root(container_root, "/etc/passwd"),
            rootfs.read_file_in_root(container_root, "/etc/group"),
        )
        result["user"] = {"uid": resolved.uid, "gid": resolved.gid, "additionalGids": resolved.additional_gids}
    return result


def exec_in(root: str, record: dict[str, Any], command: list[str], *, user: str | None = None,
            env: list[str] = (), workdir: str = "", tty: bool = False, interactive: bool = False,
            detach: bool = False) -> int:
    """Run `command` in the running container of `record`; return its exit code (0 with `detach`)."""
    from runtime import cgroups, lifecycle

    if record.get("status") != state.STATUS_RUNNING or not lifecycle.container_alive(record):
        raise PyrunError(f"container {record['name']!r} is not running", hint=f"start it with pyrun start {record['name']}")
    pid = record["pid"]
    spec = lifecycle.spec_of(root, record["id"])
    exec_spec = exec_process(spec, pid, command, user=user, env=list(env), workdir=workdir, tty=tty and not detach)
    cgroup = cgroups.open_cgroup(spec["linux"]["cgroupsPath"]) if spec["linux"].get("cgroupsPath") else None
    # The namespace files are opened here, in the host's mount namespace.
    namespace_fds = _open_namespaces(spec, pid)

    # Without a terminal, the command writes to pipes that pyrun copies, as `docker exec` does.
    pipes = None if exec_spec["terminal"] or detach else StdioPipes(stdin=interactive)
    parent_end, child_end = launch.socketpair()
    channel = launch.Channel(parent_end)
    # A signal that arrives before the forwarding handlers are in place stays
    # pending instead of ending pyrun or the joiner; E unblocks it before execve(2).
    previous_mask = signals.pthread_sigmask(signals.SIG_BLOCK, FORWARDED_SIGNALS)
    try:
        joiner, in_cgroup2 = launch.fork_in(cgroup)
    except BaseException:
        # No joiner exists (the cgroup was removed as the container exited,
        # say), so nothing passed to it may stay open or blocked.
        signals.pthread_sigmask(signals.SIG_SETMASK, previous_mask)
        for end in (parent_end, child_end):
            end.close()
        for _, fd in namespace_fds:
            os.close(fd)
        if pipes is not None:
            pipes.close()
        raise
    if joiner == 0:
        parent_end.close()
        if pipes is not None:
            pipes.close_pyrun_ends()
        _joiner_process(launch.Channel(child_end), namespace_fds, cgroup, in_cgroup2, exec_spec, interactive,
                        detach, spec["linux"].get("seccomp"), pipes.container_ends() if pipes else None)
    previous_handlers = forward_signals(joiner)
    signals.pthread_sigmask(signals.SIG_SETMASK, previous_mask)
    child_end.close()
    for _, fd in namespace_fds:
        os.close(fd)
    try:
        return _wait_for_exec(joiner, channel, exec_spec, interactive, pipes)
    finally:
        for sig, handler in previous_handlers.items():
            signals.signal(sig, handler)
        if pipes is not None:
            pipes.close()


def _wait_for_exec(joiner: int, channel: launch.Channel, exec_spec: dict[str, Any], interactive: bool,
                   pipes: StdioPipes | None) -> int:
    """Relay the terminal or copy the output pipes, if any, and wait for the joiner; return the command's exit code."""
    try:
        console = None
        if exec_spec["terminal"]:
            _, fds = channel.expect("console")
            console = fds[0]
        kind, _, _ = channel.receive()  # end-of-file once E runs the command
        if kind:
            raise launch.SetupError(f"exec setup sent an unexpected {kind!r} message")
    except BaseException:
        _reap(joiner)
        raise
    finally:
        channel.close()

    if console is not None:
        from runtime import terminal

        terminal.copy_window_size(0, console)
        try:
            with terminal.raw_mode(0) if interactive else _nothing():
                terminal.relay(console, interactive)
        finally:
            os.close(console)
    elif pipes is not None:
        pipes.close_container_ends()
        pipes.copy(None)
    _, status = os.waitpid(joiner, 0)
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _open_namespaces(spec: dict[str, Any], pid: int) -> list[tuple[str, int]]:
    kinds = {namespace["type"] for namespace in spec["linux"].get("namespaces", [])}
    fds = []
    for kind in JOIN_ORDER:
        if kind in kinds:
            fds.append((kind, os.open(f"/proc/{pid}/ns/{PROC_NAMES[kind]}", os.O_RDONLY | os.O_CLOEXEC)))
    return fds


def _reap(pid: int) -> None:
    try:
        os.kill(pid, signals.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


def _report_and_exit(channel: launch.Channel, step: str, err: BaseException) -> None:
    code = getattr(err, "exit_code", launch.EXIT_SETUP_FAILED)
    text = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
    try:
        channel.send("error", f"{step}\0{code}\0{text}")
    finally:
        os._exit(code)


def _joiner_process(channel: launch.Channel, namespace_fds: list[tuple[str, int]], cgroup: Any, in_cgroup2: bool,
                    exec_spec: dict[str, Any], interactive: bool, detach: bool,
                    seccomp_policy: dict[str, Any] | None = None,
                    stdio: tuple[int, int, int] | None = None) -> None:
    """J: become non-dumpable, join the cgroup and namespaces, fork E, wait for it."""
    step = "make the process non-dumpable"
    try:
        syscalls.prctl(syscalls.PR_SET_DUMPABLE, 0)
        syscalls.reset_signal_actions()
        if cgroup is not None:
            step = "join the cgroup"
            cgroup.join_self(cgroup2=not in_cgroup2)
        for kind, fd in namespace_fds:
            step = f"join the {kind} namespace"
            syscalls.setns(fd, NAMESPACE_FLAGS[kind], path=f"ns/{PROC_NAMES[kind]}")
            os.close(fd)
        step = "open terminal"
        console = None
        if exec_spec["terminal"]:
            master, console = process.open_console("/")
            channel.send("console", fds=[master])
            os.close(master)
        step = "fork the exec process"
        child = syscalls.fork()
        if child == 0:
            _exec_process(channel, exec_spec, console, interactive, detach, seccomp_policy, stdio)
    except BaseException as err:  # noqa: BLE001 - reported to pyrun, then exit
        _report_and_exit(channel, step, err)
    channel.close()
    for fd in stdio or ():
        if fd >= 0:
            os.close(fd)  # only E uses the pipes, so they end when E and its children do
    if console is not None:
        os.close(console)
    if detach:
        os._exit(0)
    # E runs in a session of its own, so the terminal's signals reach pyrun
    # and this process, which pass them on. They were blocked until now.
    forward_signals(child)
    signals.pthread_sigmask(signals.SIG_SETMASK, set())
    _, status = os.waitpid(child, 0)
    code = os.waitstatus_to_exitcode(status)
    os._exit(128 - code if code < 0 else code)


def _exec_process(channel: launch.Channel, exec_spec: dict[str, Any], console: int | None, interactive: bool,
                  detach: bool, seccomp_policy: dict[str, Any] | None = None,
                  stdio: tuple[int, int, int] | None = None) -> None:
    """E: stdio, identity, capabilities, the container's seccomp filter, close pyrun's descriptors, execve(2)."""
    step = "set up stdio"
    try:
        # The signal mask survives execve(2), so the command would start with these blocked.
        signals.pthread_sigmask(signals.SIG_SETMASK, set())
        if console is not None:
            process.setup_terminal(console)
        else:
            process.setup_plain_stdio(interactive and not detach, stdio)
        if detach:
            # pyrun returns at once, so its stdout must not stay open in the command.
            null = os.open("/dev/null", os.O_WRONLY)
            os.dup2(null, 1)
            os.dup2(null, 2)
            os.close(null)
        step = "apply user, capabilities and seccomp filter"
        program = seccomp.compile_program(seccomp_policy) if seccomp_policy is not None else None
        process.finalize(exec_spec, channel.sock.fileno(), program)
        step = "exec"
        process.exec_command(exec_spec["args"], exec_spec.get("env") or [])
    except BaseException as err:  # noqa: BLE001 - reported to pyrun, then exit
        _report_and_exit(channel, step, err)
