"""Temporary directories laid out like cgroup hierarchies, for unit tests.

`FakeCgroupfs` writes a mountinfo file that mounts the hierarchies inside a
temporary directory, and fills each cgroup directory that pyrun creates with
the control files the kernel would create, so a cgroup manager pointed at it
runs without root.
"""

from __future__ import annotations

from pathlib import Path

from runtime import syscalls
from runtime.cgroups import detect

UNLIMITED_V1 = "9223372036854771712"

V1_FILES = {
    "memory": {
        "memory.limit_in_bytes": UNLIMITED_V1,
        "memory.memsw.limit_in_bytes": UNLIMITED_V1,
        "memory.soft_limit_in_bytes": UNLIMITED_V1,
        "memory.usage_in_bytes": "0",
        "memory.swappiness": "60",
        "memory.stat": "cache 0\ntotal_inactive_file 0\n",
        "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
    },
    "cpu": {"cpu.shares": "1024", "cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": "-1"},
    "cpuacct": {"cpuacct.usage": "0"},
    "cpuset": {"cpuset.cpus": "", "cpuset.mems": ""},
    "pids": {"pids.max": "max", "pids.current": "0"},
    "freezer": {"freezer.state": "THAWED"},
}

V2_FILES = {
    "cgroup.controllers": "cpuset cpu io memory hugetlb pids",
    "cgroup.subtree_control": "",
    "cgroup.events": "populated 0\nfrozen 0\n",
    "cgroup.freeze": "0",
    "cgroup.kill": "",
    "cgroup.type": "domain",
    "memory.max": "max",
    "memory.swap.max": "max",
    "memory.low": "0",
    "memory.current": "0",
    "memory.stat": "anon 0\nfile 0\ninactive_file 0\n",
    "memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n",
    "memory.oom.group": "0",
    "cpu.max": "max 100000",
    "cpu.weight": "100",
    "cpu.stat": "usage_usec 0\nuser_usec 0\nsystem_usec 0\n",
    "cpuset.cpus": "",
    "cpuset.mems": "",
    "cpuset.cpus.effective": "0-1",
    "cpuset.mems.effective": "0",
    "pids.max": "max",
    "pids.current": "0",
}

FILESYSTEMS_TEXT = "nodev\tsysfs\nnodev\tcgroup\nnodev\tcgroup2\n"


class FakeCgroupfs:
    """A v1, hybrid or v2 cgroup tree under `base`, with its own mountinfo."""

    def __init__(self, base: Path, kind: str) -> None:
        self.base = base
        self.kind = kind
        self.mountinfo = base / "mountinfo"
        self.filesystems = base / "filesystems"
        self.filesystems.write_text(FILESYSTEMS_TEXT)
        lines = [f"31 23 0:28 / {base}/cgroup rw,relatime - tmpfs tmpfs rw,mode=755"]
        if kind in ("v1", "hybrid"):
            for number, controller in enumerate(V1_FILES, start=32):
                mount = self.v1_mount(controller)
                mount.mkdir(parents=True)
                self.fill_v1(mount, controller, root=True)
                lines.append(f"{number} 31 0:{number} / {mount} rw,relatime - cgroup cgroup rw,{controller}")
        if kind in ("hybrid", "v2"):
            mount = self.unified_mount()
            mount.mkdir(parents=True)
            self.fill_v2(mount, root=True)
            lines.append(f"50 31 0:50 / {mount} rw,relatime - cgroup2 cgroup2 rw")
        self.mountinfo.write_text("\n".join(lines) + "\n")
        detect.forget_layouts()
        syscalls.add_listener(self.on_call)

    def close(self) -> None:
        syscalls.remove_listener(self.on_call)
        detect.forget_layouts()

    def v1_mount(self, controller: str) -> Path:
        return self.base / "cgroup" / controller

    def unified_mount(self) -> Path:
        if self.kind == "v2":
            return self.base / "cgroup" / "v2"
        return self.base / "cgroup" / "unified"

    def fill_v1(self, directory: Path, controller: str, root: bool = False) -> None:
        (directory / "cgroup.procs").write_text("")
        (directory / "tasks").write_text("")
        for name, value in V1_FILES[controller].items():
            if root and name == "freezer.state":
                continue
            if root and controller == "cpuset":
                value = {"cpuset.cpus": "0-1", "cpuset.mems": "0"}[name]
            (directory / name).write_text(value + "\n" if value else "")

    def fill_v2(self, directory: Path, root: bool = False) -> None:
        (directory / "cgroup.procs").write_text("")
        for name, value in V2_FILES.items():
            if root and name in ("cgroup.freeze", "cgroup.type", "memory.max", "cpu.max"):
                continue
            (directory / name).write_text(value + "\n" if value else "")

    def on_call(self, call: syscalls.Call) -> None:
        """Imitate the kernel: a new cgroup directory gets its control files."""
        if call.name != "mkdir" or call.error is not None:
            return
        path = Path(call.args["path"])
        if not path.is_dir():
            return  # a recorder made the call, so nothing was created
        for controller in V1_FILES:
            if self.kind != "v2" and path.is_relative_to(self.v1_mount(controller)):
                self.fill_v1(path, controller)
        if self.kind != "v1" and path.is_relative_to(self.unified_mount()):
            self.fill_v2(path)

    def open(self, path: str):
        from runtime import cgroups

        return cgroups.open_cgroup(path, mountinfo=str(self.mountinfo), filesystems=str(self.filesystems))


def record_fork_into(manager, monkeypatch, *, threads: bool = False, fail: dict[str, int] | None = None):
    """Call `manager.fork_into()` with a recorder in place of the kernel; return (recorder, born_inside).

    The process counts as single-threaded unless `threads` is set: under
    `make test` the test process runs server threads, which make fork_into
    fork. `fail` maps call names to the errno the recorder fails them with.
    """
    from runtime.cgroups import base

    monkeypatch.setattr(base, "_has_other_threads", lambda: threads)
    with syscalls.recording() as recorder:
        recorder.fail.update(fail or {})
        _, born_inside = manager.fork_into()
    return recorder, born_inside
