"""Reading and writing cgroup control files, shared by the v1 and v2 drivers.

Writes go through `syscalls.write_cgroup_file`, so the trace and the teaching
mode show every file written with its value. Reads are plain file reads.
"""

from __future__ import annotations

import errno
import os
import time

from runtime import fileio, signals, syscalls
from runtime.cgroups.detect import CgroupError
from runtime.log import get_logger

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterable

log = get_logger(__name__)

# How long `remove` waits for killed processes to leave a cgroup.
EMPTY_TIMEOUT_SECONDS = 10.0
POLL_SECONDS = 0.02


def write_file(directory: str, name: str, value: str | int, *, flag: str = "") -> None:
    """Write one control file; a rejected value raises CgroupError naming `flag`."""
    path = os.path.join(directory, name)
    text = str(value)
    try:
        syscalls.write_cgroup_file(path, text)
    except OSError as err:
        if err.errno == errno.ENOENT:
            purpose = flag or f"writing {text}"
            raise CgroupError(
                f"cannot apply {purpose}: the control file {path} is missing",
                hint="the kernel lacks this controller or feature, or it is not enabled for this cgroup",
            ) from err
        if flag:
            # The OSError repeats the path, so only its reason is added.
            raise CgroupError(f"invalid value for {flag}: the kernel rejected {text} in {path}: "
                              f"{os.strerror(err.errno or 0)}") from None
        raise CgroupError(f"write {text} to {path}") from err


def read_file(directory: str, name: str) -> str:
    """Read one control file and strip the trailing newline."""
    path = os.path.join(directory, name)
    try:
        return fileio.read_text(path).strip()
    except OSError as err:
        raise CgroupError(f"read {path}") from err


def read_int(directory: str, name: str) -> int:
    """Read a control file that contains one integer."""
    text = read_file(directory, name)
    try:
        return int(text)
    except ValueError as err:
        raise CgroupError(f"{os.path.join(directory, name)} contains {text!r}, not an integer") from err


def read_keyed(directory: str, name: str) -> dict[str, int]:
    """Read a flat keyed file ("key value" per line), such as memory.stat."""
    values = {}
    for line in read_file(directory, name).splitlines():
        key, _, value = line.partition(" ")
        try:
            values[key] = int(value)
        except ValueError:
            continue
    return values


def read_pids(directory: str) -> list[int]:
    """List the processes in one cgroup, from its cgroup.procs file."""
    try:
        text = read_file(directory, "cgroup.procs")
    except CgroupError as err:
        if isinstance(err.__cause__, FileNotFoundError):
            return []
        raise
    return [int(line) for line in text.split()]


def make_dir(path: str) -> bool:
    """Create a cgroup directory; return False when it already exists."""
    try:
        syscalls.mkdir(path)
    except FileExistsError:
        return False
    except OSError as err:
        if err.errno == errno.EEXIST:
            return False
        raise CgroupError(f"create cgroup {path}") from err
    return True


def remove_dir(path: str, *, busy_ok: bool = False) -> bool:
    """Remove an empty cgroup directory; a missing one is already removed.

    With `busy_ok`, a directory that still has a process or a child cgroup
    (EBUSY) stays, and the result is False.
    """
    try:
        syscalls.rmdir(path)
    except OSError as err:
        if err.errno == errno.ENOENT:
            return True
        if busy_ok and err.errno == errno.EBUSY:
            return False
        raise CgroupError(f"remove cgroup {path}") from err
    return True


def remove_if_unused(directories: Iterable[str]) -> bool:
    """Remove `directories` in the order given, children first; return whether all are gone.

    Once a container's processes have exited, as they have when it stops,
    each directory can go at once. A directory still in use (EBUSY), or one
    that fails for another reason, stops the loop with False, and the caller
    then kills what is left before it removes the rest and reports errors.
    """
    try:
        return all(remove_dir(directory, busy_ok=True) for directory in directories)
    except CgroupError:
        return False


def kill_all(pids: list[int]) -> None:
    """Send SIGKILL to each process; one that has exited already is skipped."""
    for pid in pids:
        try:
            syscalls.kill(pid, signals.SIGKILL)
        except OSError as err:
            if err.errno != errno.ESRCH:
                raise CgroupError(f"kill process {pid}") from err


def wait_until_empty(directories: list[str]) -> None:
    """Poll cgroup.procs until no process is left in any of `directories`."""
    timeout = EMPTY_TIMEOUT_SECONDS
    deadline = time.monotonic() + timeout
    while True:
        left = {pid for directory in directories for pid in read_pids(directory)}
        if not left:
            return
        if time.monotonic() > deadline:
            raise CgroupError(
                f"processes {sorted(left)} are still in {directories[0]} after {timeout:.0f} s",
                hint="a process in uninterruptible sleep (state D) cannot be killed until its I/O ends",
            )
        time.sleep(POLL_SECONDS)
