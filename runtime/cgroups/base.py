"""The interface that the v1 and v2 drivers share."""

from __future__ import annotations

import abc
import errno
import os

from runtime import syscalls
from runtime.cgroups import files
from runtime.cgroups.detect import CgroupError, Layout
from runtime.cgroups.stats import CgroupStats
from runtime.log import get_logger

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

log = get_logger(__name__)


def _has_other_threads() -> bool:
    """Return True when this process runs more than one thread.

    clone3 bypasses glibc's fork(2) wrapper, which makes the child's locks
    safe (malloc's among them) when another thread held one at the fork.
    So a process with threads forks the usual way.
    """
    return len(os.listdir("/proc/self/task")) > 1


class Cgroup(abc.ABC):
    """One container's cgroup; `path` is relative to each hierarchy's root."""

    def __init__(self, path: str, layout: Layout) -> None:
        self.path = path.strip("/")
        self.layout = layout
        # Leaf directories that `create` made, for clean-up when it fails.
        self.created: list[str] = []

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path} ({self.layout.kind})>"

    @abc.abstractmethod
    def exists(self) -> bool: ...

    def create(self) -> None:
        """Create the cgroup in every hierarchy, with any missing parents; a failure removes them again."""
        self.create_in_cgroup2()
        try:
            self.create_in_v1()
        except BaseException:
            self.remove_created()
            raise

    @abc.abstractmethod
    def create_in_cgroup2(self) -> None:
        """Create the cgroup's cgroup2 directory (the whole cgroup on v2), so a process can be born in it.

        Nothing on a pure v1 host. A failure removes what this call made.
        """

    @abc.abstractmethod
    def create_in_v1(self) -> None:
        """Create the cgroup in each v1 hierarchy; nothing on v2. A failure removes what this call made."""

    @abc.abstractmethod
    def apply(self, resources: dict[str, Any]) -> None: ...

    @abc.abstractmethod
    def add_process(self, pid: int) -> None: ...

    @abc.abstractmethod
    def cgroup2_directory(self) -> str | None:
        """Return this cgroup's directory in the cgroup2 hierarchy, or None on a pure v1 host."""

    @abc.abstractmethod
    def join_self(self, *, cgroup2: bool = True) -> None:
        """Move the calling process, which must have a single thread, into the cgroup.

        `cgroup2=False` skips the cgroup2 hierarchy, for a process that
        `fork_into` started there already.
        """

    def fork_into(self, namespaces: int = 0) -> tuple[int, bool]:
        """Fork, with the child born in this cgroup's cgroup2 directory where the kernel allows.

        Returns (pid, born_inside) in both processes, pid 0 in the child.
        born_inside is False on a pure v1 host, and where the kernel or a
        seccomp filter lacks clone3 (ENOSYS, EINVAL or E2BIG, and EPERM from
        filters that deny it). The child is then where its parent is, and
        moves itself with `join_self()`. Otherwise it calls
        `join_self(cgroup2=False)`, which only has v1 hierarchies left to join.
        A child born inside also starts in new `namespaces` (CLONE_NEW* flags,
        syscalls.fork_into_cgroup); one forked instead has its parent's.
        """
        directory = self.cgroup2_directory()
        if directory is None or _has_other_threads():
            return syscalls.fork(), False
        try:
            fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as err:
            raise CgroupError(f"failed to open the cgroup {directory}") from err
        try:
            return syscalls.fork_into_cgroup(fd, path=directory, namespaces=namespaces), True
        except OSError as err:
            if err.errno not in (errno.ENOSYS, errno.EINVAL, errno.E2BIG, errno.EPERM):
                where = f"the cgroup {directory}" + (" and new namespaces" if namespaces else "")
                raise CgroupError(f"failed to start a process in {where}", hint=_clone_hint(err.errno)) from err
            log.debug("clone3 into a cgroup is not available (%s); forking instead", err.strerror)
        finally:
            os.close(fd)
        return syscalls.fork(), False

    @abc.abstractmethod
    def pids(self) -> list[int]: ...

    @abc.abstractmethod
    def stats(self) -> CgroupStats: ...

    @abc.abstractmethod
    def freeze(self) -> None: ...

    @abc.abstractmethod
    def thaw(self) -> None: ...

    @abc.abstractmethod
    def oom_killed(self) -> bool: ...

    @abc.abstractmethod
    def remove(self) -> None: ...

    def remove_created(self, start: int = 0) -> None:
        """Remove the leaf directories `create` made, from the `start`th on, newest first.

        Runs while another error is on its way up, so a failure here is
        logged and not raised, to keep the first error visible.
        """
        for directory in reversed(self.created[start:]):
            try:
                files.remove_dir(directory)
            except CgroupError as err:
                log.warning("could not remove cgroup %s after a failed create: %s", directory, err.__cause__)
        del self.created[start:]


def _clone_hint(number: int) -> str:
    """Return what to check when clone3(2) fails with the error `number`; "" when nothing specific applies."""
    if number == errno.ENOSPC:
        # clone(2): a new namespace would exceed a limit in /proc/sys/user, or nest pid namespaces over 32 deep.
        return "a limit on namespaces was reached: see /proc/sys/user/max_*_namespaces"
    if number == errno.EAGAIN:
        # fork(2): the cgroup's pids.max, or the caller's RLIMIT_NPROC or the system's threads-max.
        return "too many processes: check the cgroup's pids.max, ulimit -u and /proc/sys/kernel/threads-max"
    return ""
