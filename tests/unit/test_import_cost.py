"""The modules that `pyrun run` and `pyrun ps` load leave the costly standard modules out.

Every pyrun command is a new interpreter, so what these modules import is
paid on every start. The check runs in a fresh `python -I -S`, imports the
modules of `run -d --network none`, `run --rm` and `ps`, parses their
command lines, calls the functions those commands call, and lists what got
imported.
"""

from __future__ import annotations

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Each of these costs milliseconds to import, mostly through enum and re;
# ctypes and python-prctl's prctl build tables of C types and capabilities.
COSTLY_MODULES = [
    "enum", "re", "json", "pathlib", "fnmatch", "urllib", "socket", "selectors", "signal", "ipaddress",
    "argparse", "gettext", "warnings", "datetime", "tempfile", "shutil", "contextlib", "functools",
    "collections", "array", "ctypes", "prctl",
]

HOT_PATH_MODULES = [
    "runtime.console", "runtime.errors", "runtime.records", "runtime.syscalls", "runtime.log", "runtime.cgroups",
    "runtime.cgroups.v1", "runtime.cgroups.v2", "runtime.cgroups.devices", "runtime.network", "runtime.devices",
    "runtime.etc_files", "runtime.init", "runtime.namespaces", "runtime.capabilities", "runtime.seccomp",
    "runtime.process", "runtime.mounts", "runtime.rootfs", "runtime.launch", "runtime.overlay", "runtime.state",
    "runtime.users", "runtime.spec", "runtime.container", "runtime.logs", "runtime.store", "registry_client",
    "registry_client.errors", "registry_client.reference", "runtime.lifecycle", "runtime.attach", "runtime.monitor",
    "runtime.output", "runtime.cli", "runtime.cli.containers", "runtime.cli.lifecycle",
]

# The calls `run` and `ps` make, on a throwaway store at `root`. The log
# level is set as the CLI sets it, so that debug messages import no logging.
CALLS = """
from runtime.cli import parse_command_line
parse_command_line(["run", "-d", "--network", "none", "busybox", "sleep", "1"])
parse_command_line(["ps", "-a"])
from runtime.log import configure
configure("warning", "pyrun: %(message)s")
from registry_client.reference import parse_reference
from runtime import jsonio, lifecycle, logs, state
from runtime.cgroups.flags import parse_size
from runtime.network.dns import resolv_conf_content
from runtime.store import ImageStore

assert ImageStore(root).lookup("busybox") is None
parse_reference("127.0.0.1:5000/library/busybox:latest")
logs.parse_log_options([])
logs.parse_timestamp("2026-01-01T00:00:00.5Z")
parse_size("512m", "--memory")
resolv_conf_content({"mode": "none"}, "nameserver 127.0.0.1\\n")
lifecycle.parse_signal("TERM")
state.create_record(root, "a" * 64, {"name": "web"})
jsonio.dumps(lifecycle.list_containers(root), indent=2)
state.remove_container(root, "a" * 64)
"""


def imported_modules(code: str) -> set[str]:
    """Run `code` in a fresh interpreter and return the names in its sys.modules."""
    # site-packages (for python-prctl) is added by hand, because -S leaves it out.
    path = [ROOT] + [entry for entry in sys.path if entry.endswith("site-packages")]
    program = (
        f"import sys; sys.path[:0] = {path!r}\n"
        f"{code}\n"
        "print(' '.join(sorted(sys.modules)))"
    )
    result = subprocess.run([sys.executable, "-I", "-S", "-c", program], capture_output=True, text=True, check=True)
    return set(result.stdout.split())


def costly(modules: set[str]) -> list[str]:
    return sorted(name for name in modules if name.split(".")[0] in COSTLY_MODULES)


def test_hot_path_imports_leave_costly_modules_out():
    modules = imported_modules("\n".join(f"import {name}" for name in HOT_PATH_MODULES))
    assert costly(modules) == []


def test_hot_path_calls_leave_costly_modules_out(tmp_path):
    modules = imported_modules(f"root = {str(tmp_path)!r}\n{CALLS}")
    assert costly(modules) == []


def test_run_network_none_skips_attach_code():
    """`run --network none` of an image that exposes no port needs only the plan and the dns text."""
    modules = imported_modules(
        "from runtime.cli import parse_command_line\n"
        "from runtime.network import plan_from_args, resolv_conf_content\n"
        'args = parse_command_line(["run", "--rm", "--network", "none", "busybox", "true"])\n'
        'plan_from_args(args, {"config": {}})\n'
        'resolv_conf_content({"mode": "none"}, "nameserver 127.0.0.1\\n")\n'
    )
    assert "runtime.network.plan" in modules
    assert not {"runtime.network.connect", "runtime.network.ports"} & modules
