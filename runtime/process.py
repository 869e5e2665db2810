"""The last steps of the container's process: stdio, identity, privileges, execve.

These run inside the container after the root filesystem is in place, in
this order (runc's finalizeNamespace and setupUser take the same order):

1. stdio: the terminal or the host's stdin/stdout/stderr, in a new session;
2. the bounding set is trimmed while the process is still full root;
3. supplementary groups, gid and uid, with PR_SET_KEEPCAPS so that the
   capabilities survive leaving uid 0 until they are set explicitly;
4. the working directory, checked as the container's user;
5. the capability sets, then PR_SET_NO_NEW_PRIVS when asked;
6. every file descriptor above 2 is closed, except the close-on-exec
   channel that reports a failed execve(2) to pyrun;
7. execve(2) of the command, found on the container's PATH.

The seccomp filter (runtime.seccomp) is installed before step 2, or after
step 6 when no_new_privs is set; `finalize` gives the reason.
"""

from __future__ import annotations

import errno
import os
import stat
import struct
import sys

# capabilities is imported here because the container's process cannot
# import once it is inside the new root.
from runtime import capabilities, syscalls
from runtime.errors import PyrunError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# Exit codes of a command that cannot start, as Docker returns them.
EXIT_CANNOT_EXECUTE = 126
EXIT_NOT_FOUND = 127


class ExecError(PyrunError):
    """The command was not found or could not be executed."""


def open_console(rootfs: str) -> tuple[int, int]:
    """Open a new pty pair in the container's own devpts; return (master, slave) fds.

    The pair comes from the container's /dev/pts/ptmx, so `tty` inside
    prints /dev/pts/0. TIOCGPTPEER opens the slave through the master,
    without a path that could be swapped (ioctl_tty(2)).
    """
    master = os.open(os.path.join(rootfs, "dev", "pts", "ptmx"), os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    syscalls.ioctl(master, syscalls.TIOCSPTLCK, struct.pack("i", 0))
    slave = syscalls.ioctl(master, syscalls.TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    return master, int(slave)


def setup_terminal(console_fd: int) -> None:
    """Make the terminal `console_fd` this process's controlling terminal and stdio."""
    syscalls.setsid()
    syscalls.ioctl(console_fd, syscalls.TIOCSCTTY, 0)
    for target in (0, 1, 2):
        os.dup2(console_fd, target)
    if console_fd > 2:
        os.close(console_fd)


def setup_plain_stdio(interactive: bool, stdio: tuple[int, int, int] | None = None) -> None:
    """Put `stdio` (stdin, stdout, stderr) on fd 0, 1 and 2, or keep them.

    stdin is the given pipe (-1: none), or stays as it is with `-i`, or
    becomes /dev/null, as in Docker.
    """
    syscalls.setsid()
    # dup2(2) clears close-on-exec on each copy, so the command keeps fd 0, 1 and 2.
    if stdio is not None and stdio[0] >= 0:
        os.dup2(stdio[0], 0)
    elif not interactive:
        null = os.open("/dev/null", os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
    if stdio is not None:
        os.dup2(stdio[1], 1)
        os.dup2(stdio[2], 2)


def set_identity(user: dict[str, Any]) -> None:
    """Switch to the spec's uid, gid and supplementary groups, keeping capabilities."""
    syscalls.prctl(syscalls.PR_SET_KEEPCAPS, 1)
    syscalls.setgroups(list(user.get("additionalGids") or []))
    gid = user.get("gid", 0)
    uid = user.get("uid", 0)
    syscalls.setresgid(gid, gid, gid)
    syscalls.setresuid(uid, uid, uid)
    syscalls.prctl(syscalls.PR_SET_KEEPCAPS, 0)


def change_directory(cwd: str) -> None:
    try:
        syscalls.chdir(cwd)
    except OSError as err:
        raise PyrunError(f"change to working directory {cwd!r}: {err.strerror}") from err


# The highest descriptor number close_range(2) is asked to close: os.closerange
# takes an exclusive end that must fit a C int.
LAST_FD = 2**31 - 2


def close_other_fds(*keep: int | None) -> None:
    """Close every descriptor above stderr except those in `keep` (close_range(2))."""
    first = 3
    for fd in sorted({fd for fd in keep if fd is not None and fd >= 3}):
        if fd > first:
            syscalls.close_range(first, fd - 1)
        first = fd + 1
    syscalls.close_range(first, LAST_FD)


def narration_fd() -> int | None:
    """Return the --explain output descriptor, if the teaching mode is loaded.

    It is close-on-exec, so the command never inherits it, and keeping it
    open lets the last steps (closing descriptors, execve) be narrated even
    when fd 2 is already the container's log or terminal. The module is
    looked up rather than imported, because only `--explain` loads it.
    """
    explain = sys.modules.get("runtime.explain")
    if explain is None:
        return None
    return explain.output_fd()


def find_executable(name: str, env: list[str]) -> str:
    """Look `name` up on the container's PATH, as execvp(3) would.

    Raises ExecError with Docker's exit code 127 when nothing matches and
    126 when a match cannot be executed.
    """
    if "/" in name:
        return name
    path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    for entry in env:
        if entry.startswith("PATH="):
            path = entry[len("PATH=") :]
    denied = ""
    for directory in path.split(":"):
        candidate = os.path.join(directory or ".", name)
        try:
            mode = os.stat(candidate).st_mode
        except OSError:
            continue
        if stat.S_ISREG(mode) and os.access(candidate, os.X_OK):
            return candidate
        denied = denied or candidate
    if denied:
        raise ExecError(f"exec {name!r}: permission denied ({denied})", exit_code=EXIT_CANNOT_EXECUTE)
    raise ExecError(f"exec {name!r}: executable file not found in $PATH", exit_code=EXIT_NOT_FOUND)


def exec_command(args: list[str], env: list[str]) -> None:
    """Replace this process with the command; raises ExecError if execve(2) fails."""
    path = find_executable(args[0], env)
    environment = dict(entry.split("=", 1) if "=" in entry else (entry, "") for entry in env)
    try:
        syscalls.execve(path, args, environment)
    except OSError as err:
        code = EXIT_NOT_FOUND if err.errno == errno.ENOENT else EXIT_CANNOT_EXECUTE
        raise ExecError(f"exec {args[0]!r}: {err.strerror}", exit_code=code) from err


def finalize(process: dict[str, Any], keep_fd: int | None, seccomp_program: bytes | None = None) -> None:
    """Run steps 2 to 6 for the spec's "process" object, and install the seccomp filter `seccomp_program`.

    `seccomp_program` is the spec's `linux.seccomp` policy compiled by
    runtime.seccomp.compile_program. Without no_new_privs, installing a
    filter needs CAP_SYS_ADMIN, so it comes first, while the process is
    still full root. With no_new_privs it comes last, so pyrun's own steps
    never pass through it. runc takes the same order.
    """
    no_new_privileges = bool(process.get("noNewPrivileges"))
    if seccomp_program is not None and not no_new_privileges:
        syscalls.seccomp_set_mode_filter(seccomp_program)

    caps = process.get("capabilities") or {}
    capabilities.drop_bounding_set(caps.get("bounding", []))
    set_identity(process.get("user") or {})
    change_directory(process.get("cwd") or "/")
    capabilities.apply_capabilities(caps)
    if no_new_privileges:
        syscalls.prctl(syscalls.PR_SET_NO_NEW_PRIVS, 1)
    close_other_fds(keep_fd, narration_fd(), syscalls.trace_fd())

    if seccomp_program is not None and no_new_privileges:
        syscalls.seccomp_set_mode_filter(seccomp_program)
