"""The interface that the v1 and v2 drivers share."""

from __future__ import annotations

import abc

from runtime.cgroups import files
from runtime.cgroups.detect import CgroupError, Layout
from runtime.cgroups.stats import CgroupStats
from runtime.log import get_logger

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

log = get_logger(__name__)


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

    @abc.abstractmethod
    def create(self) -> None: ...

    @abc.abstractmethod
    def apply(self, resources: dict[str, Any]) -> None: ...

    @abc.abstractmethod
    def add_process(self, pid: int) -> None: ...

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

    def remove_created(self) -> None:
        """Remove the leaf directories `create` made, newest first.

        Runs while another error is on its way up, so a failure here is
        logged and not raised, to keep the first error visible.
        """
        for directory in reversed(self.created):
            try:
                files.remove_dir(directory)
            except CgroupError as err:
                log.warning("could not remove cgroup %s after a failed create: %s", directory, err.__cause__)
        self.created.clear()
