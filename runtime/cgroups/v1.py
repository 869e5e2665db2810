"""The cgroup v1 driver, also used on hybrid hosts.

On v1 every controller (or group of co-mounted controllers) is its own
hierarchy, so one container cgroup is one directory per hierarchy:
/sys/fs/cgroup/memory/pyrun/<id>, /sys/fs/cgroup/cpu/pyrun/<id>, ... A
process is added to each of them. On a hybrid host the process also joins
the same path in the cgroup2 hierarchy, so that /proc/self/cgroup and a
cgroup namespace show it in its own cgroup there too.

Named hierarchies without controllers (name=systemd) are left alone: they
belong to their manager. Kernel documentation:
Documentation/admin-guide/cgroup-v1/ (memory.rst, cpusets.rst, pids.rst,
freezer-subsystem.rst) and the CFS bandwidth notes in
Documentation/scheduler/sched-bwc.rst.
"""

from __future__ import annotations

import os
import time

from runtime.cgroups import files
from runtime.cgroups.base import Cgroup
from runtime.cgroups.detect import CgroupError, Layout
from runtime.cgroups.flags import FLAG_NAMES
from runtime.cgroups.stats import CgroupStats
from runtime.log import get_logger

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from runtime.cgroups import devices

log = get_logger(__name__)

# The kernel reports "no limit" as the largest page-aligned counter value
# (9223372036854771712 with 4 KiB pages), so anything this large is no limit.
UNLIMITED_THRESHOLD = 1 << 62

# How long `remove` lets the freezer stop processes before it kills them.
FREEZE_BEFORE_KILL_SECONDS = 1.0


class V1Cgroup(Cgroup):
    """One container cgroup on a v1 or hybrid host."""

    def __init__(self, path: str, layout: Layout) -> None:
        super().__init__(path, layout)
        # One directory per hierarchy, keyed by mount point. Co-mounted
        # controllers (cpu,cpuacct) share a hierarchy and so a directory.
        self.mounts = sorted(set(layout.v1_mounts.values()))
        self.unified_mount = layout.unified

    def controller_directory(self, controller: str) -> str | None:
        """Return this cgroup's directory in the hierarchy of `controller`."""
        mount = self.layout.v1_mounts.get(controller)
        return os.path.join(mount, self.path) if mount else None

    def require(self, controller: str, purpose: str) -> str:
        """Return the directory of `controller`, or raise naming the flag or purpose."""
        directory = self.controller_directory(controller)
        if directory is None:
            raise CgroupError(f"{purpose} needs the {controller} cgroup controller, which is not mounted")
        return directory

    def all_directories(self) -> list[str]:
        directories = [os.path.join(mount, self.path) for mount in self.mounts]
        if self.unified_mount:
            directories.append(os.path.join(self.unified_mount, self.path))
        return directories

    def exists(self) -> bool:
        """Return True while the cgroup exists in at least one hierarchy."""
        return any(os.path.isdir(directory) for directory in self.all_directories())

    # -- Creating and joining --------------------------------------------------

    def create_in_cgroup2(self) -> None:
        """Create the cgroup in the hybrid host's cgroup2 hierarchy, if it has one."""
        if self.unified_mount:
            self.create_in([self.unified_mount])

    def create_in_v1(self) -> None:
        """Create the cgroup in each v1 hierarchy, with any missing parents."""
        self.create_in(self.mounts)
        log.debug("created cgroup %s in %d v1 hierarchies", self.path, len(self.mounts))

    def create_in(self, mounts: list[str]) -> None:
        cpuset_mount = self.layout.v1_mounts.get("cpuset")
        made_before = len(self.created)
        try:
            for mount in mounts:
                self.create_levels(mount, copy_cpuset=(mount == cpuset_mount))
        except BaseException:
            # A failed or interrupted create removes the leaves it made, so
            # no half-made cgroup is left behind.
            self.remove_created(made_before)
            raise

    def create_levels(self, mount: str, *, copy_cpuset: bool) -> None:
        """Create each level of the path below `mount`, parents first."""
        current = mount
        parts = self.path.split("/")
        # The parents (pyrun/ by default) are usually left from an earlier
        # container. A stat that finds them costs less than a mkdir(2) per
        # parent that fails with EEXIST.
        first_missing = len(parts) - 1 if os.path.isdir(os.path.join(mount, *parts[:-1])) else 0
        for depth, part in enumerate(parts):
            current = os.path.join(current, part)
            is_leaf = depth == len(parts) - 1
            if is_leaf:
                # Listed before the mkdir, so that a Ctrl-C between the two
                # still has it removed (removing a missing one does nothing).
                self.created.append(current)
            made = files.make_dir(current) if depth >= first_missing else False
            if is_leaf and not made:
                self.created.pop()
                raise CgroupError(
                    f"cgroup {current} already exists",
                    hint="a container with this id is running or was not cleaned up; remove it first",
                )
            # A new cpuset cgroup starts with no CPUs and no memory nodes,
            # and the kernel rejects adding a process to it until both are
            # set, so each level copies its parent's.
            if copy_cpuset:
                self.copy_cpuset_from_parent(current)

    def copy_cpuset_from_parent(self, directory: str) -> None:
        parent = os.path.dirname(directory)
        for name in ("cpuset.cpus", "cpuset.mems"):
            if files.read_file(directory, name) == "":
                files.write_file(directory, name, files.read_file(parent, name))

    def add_process(self, pid: int) -> None:
        """Move process `pid` (all its threads) into the cgroup in every hierarchy."""
        for directory in self.all_directories():
            files.write_file(directory, "cgroup.procs", pid)

    def cgroup2_directory(self) -> str | None:
        return os.path.join(self.unified_mount, self.path) if self.unified_mount else None

    def join_self(self, *, cgroup2: bool = True) -> None:
        """Move the calling process, which has one thread, into the cgroup.

        In each v1 hierarchy the process writes "0" (the writer) to `tasks`,
        which moves only the calling thread. For a thread that moves itself,
        the kernel skips the global lock that a cgroup.procs write takes.
        The first taker of that lock after a quiet spell waits for an RCU
        grace period, several milliseconds.
        """
        for mount in self.mounts:
            files.write_file(os.path.join(mount, self.path), "tasks", 0)
        directory = self.cgroup2_directory()
        if cgroup2 and directory:
            files.write_file(directory, "cgroup.procs", 0)

    # -- Limits ----------------------------------------------------------------

    def apply(self, resources: dict[str, Any]) -> None:
        """Write an OCI "linux.resources" dict into the control files."""
        cpu = resources.get("cpu") or {}
        memory = resources.get("memory") or {}
        pids = resources.get("pids") or {}
        # Imported here, not at the top: `run` applies the limits after the
        # fork, in parallel with the container's mounts (see runtime.container).
        from runtime.cgroups import devices

        device_rules = devices.rules_from_resources(resources)
        if device_rules is not None:
            self.apply_devices(device_rules)
        self.apply_cpuset(cpu)
        self.apply_memory(memory)
        self.apply_cpu(cpu)
        if pids.get("limit") is not None:
            directory = self.require("pids", "--pids-limit")
            limit = pids["limit"]
            files.write_file(directory, "pids.max", "max" if limit <= 0 else limit,
                             flag=FLAG_NAMES["pids", "limit"])

    def apply_devices(self, rules: list[devices.DeviceRule]) -> None:
        directory = self.controller_directory("devices")
        if directory is None and self.unified_mount:
            # A hybrid host without a v1 devices hierarchy: a device program
            # in the cgroup2 hierarchy restricts the same processes.
            from runtime.cgroups import bpf  # here: a v1 devices hierarchy needs no eBPF

            bpf.attach_device_program(os.path.join(self.unified_mount, self.path), rules)
            return
        from runtime.cgroups import devices

        devices.apply_v1(self.require("devices", "applying the device rules"), rules)

    def apply_cpuset(self, cpu: dict[str, Any]) -> None:
        for key, name in (("cpus", "cpuset.cpus"), ("mems", "cpuset.mems")):
            if cpu.get(key):
                directory = self.require("cpuset", FLAG_NAMES["cpu", key])
                files.write_file(directory, name, cpu[key], flag=FLAG_NAMES["cpu", key])

    def apply_memory(self, memory: dict[str, Any]) -> None:
        if not memory:
            return
        directory = self.require("memory", "--memory")
        limit = memory.get("limit")
        swap = memory.get("swap")
        has_swap_accounting = os.path.exists(os.path.join(directory, "memory.memsw.limit_in_bytes"))
        if swap is not None and not has_swap_accounting:
            log.warning("this kernel does not account swap (memory.memsw.* is missing): "
                        "--memory-swap is ignored")
            swap = None

        # memory.memsw.limit_in_bytes (memory plus swap) may never be below
        # memory.limit_in_bytes, so the kernel rejects whichever write would
        # cross the other. Raise the memsw limit first when the new memory
        # limit is above it, otherwise write the memory limit first.
        current_memsw = files.read_int(directory, "memory.memsw.limit_in_bytes") if has_swap_accounting else 0
        memsw_first = swap is not None and limit is not None and swap != -1 and limit > current_memsw
        if memsw_first:
            self.write_memsw(directory, swap)
        if limit is not None:
            files.write_file(directory, "memory.limit_in_bytes", limit, flag=FLAG_NAMES["memory", "limit"])
        if swap is not None and not memsw_first:
            self.write_memsw(directory, swap)

        if memory.get("reservation") is not None:
            files.write_file(directory, "memory.soft_limit_in_bytes", memory["reservation"],
                             flag=FLAG_NAMES["memory", "reservation"])
        if memory.get("swappiness") is not None:
            files.write_file(directory, "memory.swappiness", memory["swappiness"],
                             flag=FLAG_NAMES["memory", "swappiness"])
        if memory.get("disableOOMKiller"):
            # Processes that hit the limit then wait for memory instead of
            # being killed (memory.rst, "OOM Control").
            files.write_file(directory, "memory.oom_control", 1, flag=FLAG_NAMES["memory", "disableOOMKiller"])

    def write_memsw(self, directory: str, swap: int) -> None:
        files.write_file(directory, "memory.memsw.limit_in_bytes", swap, flag=FLAG_NAMES["memory", "swap"])

    def apply_cpu(self, cpu: dict[str, Any]) -> None:
        if cpu.get("shares"):
            directory = self.require("cpu", FLAG_NAMES["cpu", "shares"])
            files.write_file(directory, "cpu.shares", cpu["shares"], flag=FLAG_NAMES["cpu", "shares"])

        # The quota is CPU time per period, so the period is written first:
        # the kernel checks each new quota against the current period.
        if cpu.get("period"):
            directory = self.require("cpu", FLAG_NAMES["cpu", "period"])
            files.write_file(directory, "cpu.cfs_period_us", cpu["period"], flag=FLAG_NAMES["cpu", "period"])
        if cpu.get("quota"):
            directory = self.require("cpu", FLAG_NAMES["cpu", "quota"])
            files.write_file(directory, "cpu.cfs_quota_us", cpu["quota"], flag=FLAG_NAMES["cpu", "quota"])

    # -- Reading ---------------------------------------------------------------

    def pids(self) -> list[int]:
        """List the processes in the cgroup, across every hierarchy."""
        found = set()
        for directory in self.all_directories():
            found.update(files.read_pids(directory))
        return sorted(found)

    def stats(self) -> CgroupStats:
        """Read CPU time, memory use and limit, and process count and limit."""
        cpu_usage = 0
        cpuacct = self.controller_directory("cpuacct")
        if cpuacct:
            cpu_usage = files.read_int(cpuacct, "cpuacct.usage")

        memory_usage, memory_limit, oom_kills = 0, None, 0
        memory = self.controller_directory("memory")
        if memory:
            # Like `docker stats`, leave out page cache the kernel can drop
            # at once (total_inactive_file).
            inactive = files.read_keyed(memory, "memory.stat").get("total_inactive_file", 0)
            memory_usage = max(files.read_int(memory, "memory.usage_in_bytes") - inactive, 0)
            limit = files.read_int(memory, "memory.limit_in_bytes")
            memory_limit = None if limit >= UNLIMITED_THRESHOLD else limit
            oom_kills = files.read_keyed(memory, "memory.oom_control").get("oom_kill", 0)

        pids_current, pids_limit = 0, None
        pids = self.controller_directory("pids")
        if pids:
            pids_current = files.read_int(pids, "pids.current")
            text = files.read_file(pids, "pids.max")
            pids_limit = None if text == "max" else int(text)

        return CgroupStats(cpu_usage, memory_usage, memory_limit, pids_current, pids_limit, oom_kills)

    def oom_killed(self) -> bool:
        """Return True when the kernel's OOM killer killed a process in this cgroup.

        NOTE: memory.oom_control gained its "oom_kill" counter in Linux 4.13.
        On older kernels this returns False even after an OOM kill.
        """
        memory = self.controller_directory("memory")
        if memory is None or not os.path.isdir(memory):
            return False
        return files.read_keyed(memory, "memory.oom_control").get("oom_kill", 0) > 0

    # -- Freezing and removing ----------------------------------------------------

    def freeze(self) -> None:
        """Stop every process in the cgroup until `thaw` (freezer.state)."""
        self.set_freezer("FROZEN")

    def thaw(self) -> None:
        """Let frozen processes run again."""
        self.set_freezer("THAWED")

    def set_freezer(self, state: str, timeout: float | None = None) -> bool:
        """Write freezer.state and wait up to `timeout` seconds for it to take effect.

        Return False when the state was not reached in time and `timeout`
        was given. Without a `timeout`, raise CgroupError instead.
        """
        directory = self.require("freezer", "freezing")
        files.write_file(directory, "freezer.state", state)
        # Freezing is not instant: the state reads FREEZING until every task
        # has stopped, and a task waiting in the OOM handler does not stop
        # (seen on Linux 6.18 with the OOM killer turned off).
        limit = files.EMPTY_TIMEOUT_SECONDS if timeout is None else timeout
        deadline = time.monotonic() + limit
        while files.read_file(directory, "freezer.state") != state:
            if time.monotonic() > deadline:
                if timeout is not None:
                    return False
                raise CgroupError(f"{directory}/freezer.state did not reach {state} in {limit:.0f} s",
                                  hint="a process waiting for memory (under_oom 1) cannot be frozen")
            time.sleep(files.POLL_SECONDS)
        return True

    def remove(self) -> None:
        """Kill what is left in the cgroup, wait until it is empty, then remove it."""
        directories = [d for d in self.all_directories() if os.path.isdir(d)]
        if not directories:
            return
        if files.remove_if_unused(reversed(directories)):
            log.debug("removed cgroup %s", self.path)
            return
        directories = [d for d in directories if os.path.isdir(d)]
        left = self.pids()
        if left:
            # Freezing first stops a process from forking new children
            # between reading cgroup.procs and sending the signals.
            # A process that waits for memory with the OOM killer turned off
            # cannot be frozen, so removal kills even when freezing stalls.
            freezer = self.controller_directory("freezer")
            has_freezer = freezer is not None and os.path.isdir(freezer)
            if has_freezer and not self.set_freezer("FROZEN", timeout=FREEZE_BEFORE_KILL_SECONDS):
                log.debug("cgroup %s did not freeze in time, so its processes are killed unfrozen", self.path)
            files.kill_all(self.pids())
            if has_freezer:
                self.set_freezer("THAWED")
        files.wait_until_empty(directories)
        for directory in reversed(directories):
            files.remove_dir(directory)
        log.debug("removed cgroup %s", self.path)
