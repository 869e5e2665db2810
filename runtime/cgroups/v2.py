"""The cgroup v2 driver, for hosts with one unified hierarchy.

On v2 a container cgroup is one directory, e.g. /sys/fs/cgroup/pyrun/<id>.
Two rules shape how it is made (Documentation/admin-guide/cgroup-v2.rst):

- A controller works in a cgroup only when its parent lists it in
  cgroup.subtree_control, so each level from the root down enables the
  controllers for the level below.
- No internal processes: a cgroup other than the root that enables
  controllers for its children cannot hold processes itself. The pyrun
  parent therefore never contains a process, and only the leaf, the
  container's own cgroup, does.
"""

from __future__ import annotations

import errno
import os
import time

from runtime.cgroups import bpf, devices, files
from runtime.cgroups.base import Cgroup
from runtime.cgroups.detect import CgroupError, Layout
from runtime.cgroups.flags import FLAG_NAMES
from runtime.cgroups.stats import CgroupStats
from runtime.log import get_logger

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

log = get_logger(__name__)

# Controllers a container cgroup gets when the host offers them.
CONTROLLERS = ("cpuset", "cpu", "io", "memory", "pids", "hugetlb")


def cpu_weight_from_shares(shares: int) -> int:
    """Map v1 cpu.shares (2 to 262144) onto v2 cpu.weight (1 to 10000).

    This is the linear mapping that runc and crun use for the OCI "shares"
    value on cgroup v2. It maps Docker's default of 1024 shares to weight
    39, not to v2's default of 100.
    """
    shares = min(max(shares, 2), 262144)
    return 1 + (shares - 2) * 9999 // 262142


class V2Cgroup(Cgroup):
    """One container cgroup on a pure cgroup v2 host."""

    def __init__(self, path: str, layout: Layout) -> None:
        super().__init__(path, layout)
        assert layout.unified is not None, "a v2 layout always has a cgroup2 mount"
        self.mount = layout.unified
        self.directory = os.path.join(self.mount, self.path)
        self.controllers = CONTROLLERS

    def exists(self) -> bool:
        """Return True while the cgroup directory exists."""
        return os.path.isdir(self.directory)

    # -- Creating and joining --------------------------------------------------

    def create_in_cgroup2(self) -> None:
        """Create the cgroup and its parents, enabling controllers on the way down."""
        try:
            current = self.mount
            parts = self.path.split("/")
            for depth, part in enumerate(parts):
                self.enable_controllers(current)
                current = os.path.join(current, part)
                is_leaf = depth == len(parts) - 1
                if is_leaf:
                    # Listed before the mkdir, so that a Ctrl-C between the
                    # two still has it removed (see the v1 driver).
                    self.created.append(current)
                made = files.make_dir(current)
                if is_leaf and not made:
                    self.created.pop()
                    raise CgroupError(
                        f"cgroup {current} already exists",
                        hint="a container with this id is running or was not cleaned up; remove it first",
                    )
        except BaseException:
            self.remove_created()
            raise
        log.debug("created cgroup %s", self.directory)

    def create_in_v1(self) -> None:
        """Nothing to do: a v2 host has no v1 hierarchies."""

    def enable_controllers(self, directory: str) -> None:
        """Enable, for the children of `directory`, every wanted controller it has.

        NOTE: under systemd this writes to the root's cgroup.subtree_control,
        which systemd also manages, as Docker's cgroupfs driver does. A
        systemd driver (a transient scope created over D-Bus) would avoid
        that, and pyrun has none. Inside a container whose cgroup namespace
        root contains pyrun's own process, this write fails with EBUSY.
        """
        available = files.read_file(directory, "cgroup.controllers").split()
        enabled = files.read_file(directory, "cgroup.subtree_control").split()
        for controller in self.controllers:
            if controller not in available or controller in enabled:
                continue
            # One controller per write, so an error names the one that failed.
            try:
                files.write_file(directory, "cgroup.subtree_control", f"+{controller}")
            except CgroupError as err:
                if getattr(err.__cause__, "errno", None) == errno.EBUSY:
                    raise CgroupError(
                        f"enable the {controller} controller in {directory}",
                        hint="on cgroup v2 a cgroup that contains processes cannot enable controllers "
                        "for its children, so use a --cgroup-parent without processes",
                    ) from err.__cause__
                raise

    def add_process(self, pid: int) -> None:
        """Move process `pid` (all its threads) into the cgroup."""
        files.write_file(self.directory, "cgroup.procs", pid)

    def cgroup2_directory(self) -> str | None:
        return self.directory

    def join_self(self, *, cgroup2: bool = True) -> None:
        """Move the calling process into the cgroup ("0" names the writer itself)."""
        if cgroup2:
            files.write_file(self.directory, "cgroup.procs", 0)

    # -- Limits ----------------------------------------------------------------

    def apply(self, resources: dict[str, Any]) -> None:
        """Write an OCI "linux.resources" dict into the control files."""
        cpu = resources.get("cpu") or {}
        memory = resources.get("memory") or {}
        pids = resources.get("pids") or {}
        device_rules = devices.rules_from_resources(resources)
        if device_rules is not None:
            # cgroup v2 has no devices files: an eBPF program applies the rules.
            bpf.attach_device_program(self.directory, device_rules)

        for key, name in (("cpus", "cpuset.cpus"), ("mems", "cpuset.mems")):
            if cpu.get(key):
                self.write(name, cpu[key], ("cpu", key))
        self.apply_memory(memory)
        self.apply_cpu(cpu)
        if pids.get("limit") is not None:
            limit = pids["limit"]
            self.write("pids.max", "max" if limit <= 0 else limit, ("pids", "limit"))

    def write(self, name: str, value: str | int, resource: tuple[str, str]) -> None:
        files.write_file(self.directory, name, value, flag=FLAG_NAMES[resource])

    def apply_memory(self, memory: dict[str, Any]) -> None:
        limit = memory.get("limit")
        swap = memory.get("swap")
        if limit is not None:
            self.write("memory.max", "max" if limit < 0 else limit, ("memory", "limit"))

        # OCI's "swap" is memory plus swap, as v1's memsw is, but v2's
        # memory.swap.max counts swap alone.
        if swap is not None:
            if not os.path.exists(os.path.join(self.directory, "memory.swap.max")):
                log.warning("this kernel does not account swap (memory.swap.max is missing): "
                            "--memory-swap is ignored")
            elif swap < 0 or limit is None or limit < 0:
                self.write("memory.swap.max", "max", ("memory", "swap"))
            else:
                self.write("memory.swap.max", swap - limit, ("memory", "swap"))

        if memory.get("reservation") is not None:
            self.write("memory.low", memory["reservation"], ("memory", "reservation"))
        if memory.get("disableOOMKiller"):
            log.warning("cgroup v2 cannot turn off the OOM killer: --oom-kill-disable is ignored")
        if memory.get("swappiness") is not None:
            log.warning("cgroup v2 has no per-cgroup swappiness: --memory-swappiness is ignored")

    def apply_cpu(self, cpu: dict[str, Any]) -> None:
        if cpu.get("shares"):
            self.write("cpu.weight", cpu_weight_from_shares(cpu["shares"]), ("cpu", "shares"))
        quota = cpu.get("quota")
        period = cpu.get("period")
        if quota or period:
            # cpu.max contains "QUOTA PERIOD" in microseconds, where "max" is no quota.
            quota_text = str(quota) if quota and quota > 0 else "max"
            period_text = str(period) if period else "100000"
            self.write("cpu.max", f"{quota_text} {period_text}", ("cpu", "quota"))

    # -- Reading ---------------------------------------------------------------

    def subtree(self) -> list[str]:
        """List the cgroup and every cgroup below it, parents first."""
        found = []
        for directory, _, _ in os.walk(self.directory):
            found.append(directory)
        return found

    def pids(self) -> list[int]:
        """List the processes in the cgroup and in any cgroup the container made below it."""
        found = set()
        for directory in self.subtree():
            found.update(files.read_pids(directory))
        return sorted(found)

    def stats(self) -> CgroupStats:
        """Read CPU time, memory use and limit, and process count and limit."""
        directory = self.directory
        cpu_stat = files.read_keyed(directory, "cpu.stat")
        cpu_usage = cpu_stat.get("usage_usec", 0) * 1000

        memory_usage, memory_limit, oom_kills = 0, None, 0
        if os.path.exists(os.path.join(directory, "memory.current")):
            # Like `docker stats`, leave out page cache the kernel can drop
            # at once (inactive_file).
            inactive = files.read_keyed(directory, "memory.stat").get("inactive_file", 0)
            memory_usage = max(files.read_int(directory, "memory.current") - inactive, 0)
            text = files.read_file(directory, "memory.max")
            memory_limit = None if text == "max" else int(text)
            oom_kills = files.read_keyed(directory, "memory.events").get("oom_kill", 0)

        pids_current, pids_limit = 0, None
        if os.path.exists(os.path.join(directory, "pids.current")):
            pids_current = files.read_int(directory, "pids.current")
            text = files.read_file(directory, "pids.max")
            pids_limit = None if text == "max" else int(text)

        return CgroupStats(cpu_usage, memory_usage, memory_limit, pids_current, pids_limit, oom_kills)

    def oom_killed(self) -> bool:
        """Return True when the kernel's OOM killer killed a process in this cgroup.

        memory.events counts for the cgroup and all cgroups below it.
        """
        events = os.path.join(self.directory, "memory.events")
        if not os.path.exists(events):
            return False
        return files.read_keyed(self.directory, "memory.events").get("oom_kill", 0) > 0

    # -- Freezing and removing ----------------------------------------------------

    def freeze(self) -> None:
        """Stop every process in the cgroup until `thaw` (cgroup.freeze)."""
        self.set_frozen(True)

    def thaw(self) -> None:
        """Let frozen processes run again."""
        self.set_frozen(False)

    def set_frozen(self, frozen: bool) -> None:
        files.write_file(self.directory, "cgroup.freeze", int(frozen))
        # The kernel reports "frozen 1" in cgroup.events once every process
        # has stopped. Until then the cgroup is still freezing.
        deadline = time.monotonic() + files.EMPTY_TIMEOUT_SECONDS
        while files.read_keyed(self.directory, "cgroup.events").get("frozen", 0) != int(frozen):
            if time.monotonic() > deadline:
                raise CgroupError(f"{self.directory} did not reach frozen={int(frozen)}")
            time.sleep(files.POLL_SECONDS)

    def remove(self) -> None:
        """Kill what is left in the cgroup, wait until it is empty, then remove it."""
        if not os.path.isdir(self.directory):
            return
        if files.remove_if_unused(reversed(self.subtree())):
            log.debug("removed cgroup %s", self.directory)
            return
        if self.pids():
            if os.path.exists(os.path.join(self.directory, "cgroup.kill")):
                # cgroup.kill (Linux 5.14) sends SIGKILL to the whole subtree
                # at once, so no process can fork away from the signal.
                files.write_file(self.directory, "cgroup.kill", 1)
            else:
                self.freeze()
                files.kill_all(self.pids())
                self.thaw()
        directories = self.subtree()
        files.wait_until_empty(directories)
        for directory in reversed(directories):
            files.remove_dir(directory)
        log.debug("removed cgroup %s", self.directory)
