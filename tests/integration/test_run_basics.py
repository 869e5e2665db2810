"""`pyrun run`: pid 1, hostname, exit codes, command rules, env, workdir, users, records."""

import glob
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import PYRUN, run_pyrun
from tests.fixtures.pyrunconfig import write_pyrun_config
from tests.integration.run_support import host_mounts_under, pyrun_run, run_env  # noqa: F401

pytestmark = [pytest.mark.root, pytest.mark.registry]


def test_echo_prints_output(run_env):
    result = pyrun_run(run_env, "busybox", "echo", "hi")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hi\n"


def test_missing_image_is_pulled_first(registry, tmp_path, store_root):
    config = tmp_path / "config.json"
    write_pyrun_config(config, registry.url, [], [registry.host])
    env = {"PYRUN_CONFIG": str(config)}
    result = run_pyrun("run", "--rm", "--network", "none", "busybox", "echo", "hi", root=store_root, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith("Unable to find image 'busybox:latest' locally\n")
    assert "Using default tag" not in result.stderr
    assert result.stdout == "hi\n"


def test_command_is_pid_1(run_env):
    result = pyrun_run(run_env, "busybox", "sh", "-c", "echo $$")
    assert result.stdout == "1\n"


def test_init_makes_command_pid_2(run_env):
    result = pyrun_run(run_env, "--init", "busybox", "sh", "-c", "echo $$")
    assert result.stdout == "2\n"


NAMESPACE_FLAGS = {"CLONE_NEWNS", "CLONE_NEWUTS", "CLONE_NEWIPC", "CLONE_NEWPID", "CLONE_NEWNET"}


def flags_of(trace_line: str) -> set[str]:
    return set(trace_line.split("flags='", 1)[1].split("'", 1)[0].split("|"))


def test_pid_1_is_cloned_into_its_namespaces(run_env):
    # One clone3(2) makes pid 1 in its cgroup and in every new namespace but
    # the cgroup namespace, which pid 1 makes itself once it is in all its cgroups.
    result = run_pyrun("--log-level", "trace", "run", "--rm", "--network", "none", "busybox", "sh", "-c", "echo $$",
                       root=run_env.root, env=run_env.env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "1\n"
    trace = [line for line in result.stderr.splitlines() if line.startswith("trace: ")]
    clones = [line for line in trace if line.startswith("trace: clone3(")]
    assert len(clones) == 2, clones  # the parent's return and the child's
    assert all(flags_of(line) == NAMESPACE_FLAGS | {"CLONE_INTO_CGROUP"} for line in clones)
    assert [flags_of(line) for line in trace if line.startswith("trace: unshare(")] == [{"CLONE_NEWCGROUP"}]
    assert not [line for line in trace if line.startswith("trace: fork(")]


# Runs pyrun under a seccomp filter that fails clone3(2) with ENOSYS, as
# Docker's default filter does, so pyrun must fall back to fork(2) and unshare(2).
WITHOUT_CLONE3 = """
import os, sys
sys.path.insert(0, sys.argv.pop(1))
from runtime import seccomp, syscalls
policy = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": [seccomp.host_architecture()],
          "syscalls": [{"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]}
syscalls.seccomp_set_mode_filter(seccomp.compile_program(policy))
os.execv(sys.argv[1], sys.argv[1:])
"""


def test_fallback_without_clone3(run_env):
    checkout = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_CLONE3, checkout, PYRUN, "--root", str(run_env.root), "--log-level", "trace",
         "run", "--rm", "--network", "none", "busybox", "sh", "-c", "echo $$; cat /proc/self/cgroup"],
        capture_output=True, text=True, timeout=120, env={**os.environ, **run_env.env},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "1"
    for line in result.stdout.splitlines()[1:]:
        hierarchy, _, path = line.rpartition(":")
        assert "name=" in hierarchy or path == "/", line
    trace = [line for line in result.stderr.splitlines() if line.startswith("trace: ")]
    assert any(line.startswith("trace: clone3(") and "ENOSYS" in line for line in trace)
    # The setup process unshares every namespace but the cgroup namespace and
    # forks pid 1, which joins the cgroup and then makes its cgroup namespace.
    unshares = [flags_of(line) for line in trace if line.startswith("trace: unshare(")]
    assert unshares == [NAMESPACE_FLAGS, {"CLONE_NEWCGROUP"}]
    assert len([line for line in trace if line.startswith("trace: fork(")]) == 4


def test_fallback_without_clone3_allows_one_process(run_env):
    # The setup process stays outside the cgroup, so pid 1 is its only process.
    checkout = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_CLONE3, checkout, PYRUN, "--root", str(run_env.root),
         "run", "--rm", "--network", "none", "--pids-limit", "1", "busybox", "true"],
        capture_output=True, text=True, timeout=120, env={**os.environ, **run_env.env},
    )
    assert result.returncode == 0, result.stderr


def test_hostname_default_and_flag(run_env):
    default = pyrun_run(run_env, "busybox", "hostname")
    assert len(default.stdout.strip()) == 12
    named = pyrun_run(run_env, "--hostname", "box1", "busybox", "sh", "-c", "hostname; cat /etc/hostname")
    assert named.stdout == "box1\nbox1\n"
    assert os.uname().nodename != "box1"


@pytest.mark.parametrize(
    "command, code",
    [
        (["true"], 0),
        (["false"], 1),
        (["sh", "-c", "exit 42"], 42),
        (["/etc/passwd"], 126),
        (["no-such-command"], 127),
        (["/no/such/path"], 127),
    ],
)
def test_exit_codes(run_env, command, code):
    assert pyrun_run(run_env, "busybox", *command).returncode == code


def test_exit_code_137_on_sigkill(run_env):
    result = pyrun_run(run_env, "--init", "busybox", "sh", "-c", "kill -9 $$")
    assert result.returncode == 137


def test_not_found_message_names_command(run_env):
    result = pyrun_run(run_env, "busybox", "no-such-command")
    assert "no-such-command" in result.stderr
    assert "not found" in result.stderr
    assert result.stderr.count("pyrun:") == 1


def test_entrypoint_override(run_env):
    result = pyrun_run(run_env, "--entrypoint", "echo", "busybox", "a", "b")
    assert result.stdout == "a b\n"


def test_env_flags_and_file(run_env, tmp_path):
    env_file = tmp_path / "env"
    env_file.write_text("FROM_FILE=file\nSHARED=file\n")
    result = pyrun_run(
        run_env, "--env-file", str(env_file), "-e", "SHARED=flag", "-e", "HOST_ONLY", "busybox", "env",
        env={"HOST_ONLY": "from-host"},
    )
    lines = result.stdout.splitlines()
    assert "FROM_FILE=file" in lines
    assert "SHARED=flag" in lines
    assert "HOST_ONLY=from-host" in lines
    assert "HOME=/root" in lines
    assert any(line.startswith("PATH=") for line in lines)
    assert any(line.startswith("HOSTNAME=") for line in lines)


def test_workdir_created_when_missing(run_env):
    result = pyrun_run(run_env, "-w", "/made/for/test", "busybox", "pwd")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "/made/for/test\n"


@pytest.mark.parametrize(
    "user, expected",
    [
        (None, "uid=0(root) gid=0(root) groups=0(root),10(wheel)"),
        ("tester", "uid=1000(tester) gid=1000(tester) groups=28(video),29(audio),1000(tester),2000(testers)"),
        ("1000", "uid=1000(tester) gid=1000(tester) groups=28(video),29(audio),1000(tester),2000(testers)"),
        ("1000:33", "uid=1000(tester) gid=33(www-data) groups=33(www-data)"),
        ("tester:audio", "uid=1000(tester) gid=29(audio) groups=29(audio)"),
        ("4242", "uid=4242 gid=0(root) groups=0(root)"),
        ("4242:4343", "uid=4242 gid=4343 groups=4343"),
    ],
)
def test_user_forms(run_env, user, expected):
    args = ["-u", user] if user else []
    result = pyrun_run(run_env, *args, "busybox", "id")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected


def test_user_home_from_passwd(run_env):
    result = pyrun_run(run_env, "-u", "tester", "busybox", "sh", "-c", "echo $HOME")
    assert result.stdout == "/home/tester\n"


def test_unknown_user_is_error(run_env):
    result = pyrun_run(run_env, "-u", "ghost", "busybox", "id")
    assert result.returncode == 125
    assert "'ghost'" in result.stderr


def test_non_root_has_no_effective_caps(run_env):
    result = pyrun_run(run_env, "-u", "tester", "busybox", "grep", "CapEff", "/proc/self/status")
    assert result.stdout.split() == ["CapEff:", "0000000000000000"]


def test_default_capabilities(run_env):
    result = pyrun_run(run_env, "busybox", "grep", "-E", "Cap(Eff|Bnd|Inh|Amb)", "/proc/self/status")
    values = dict(line.split() for line in result.stdout.splitlines())
    assert values["CapEff:"] == "00000000a80425fb"
    assert values["CapBnd:"] == "00000000a80425fb"
    assert values["CapInh:"] == "0000000000000000"
    assert values["CapAmb:"] == "0000000000000000"


def test_cap_drop_and_add(run_env):
    dropped = pyrun_run(run_env, "--cap-drop", "CHOWN", "busybox", "chown", "1", "/tmp")
    assert dropped.returncode == 1
    added = pyrun_run(run_env, "--cap-add", "NET_ADMIN", "busybox", "ip", "link", "set", "lo", "mtu", "1500")
    assert added.returncode == 0, added.stderr


def test_no_new_privileges(run_env):
    result = pyrun_run(run_env, "--security-opt", "no-new-privileges", "busybox", "grep", "NoNewPrivs",
                       "/proc/self/status")
    assert result.stdout.split() == ["NoNewPrivs:", "1"]


def test_record_kept_without_rm(run_env):
    result = pyrun_run(run_env, "--name", "kept-record", "busybox", "sh", "-c", "exit 3", keep=True)
    assert result.returncode == 3
    container_id = os.readlink(run_env.root / "names" / "kept-record")
    record = json.loads((run_env.root / "containers" / container_id / "state.json").read_text())
    assert record["status"] == "exited"
    assert record["exit_code"] == 3
    assert record["name"] == "kept-record"
    assert record["image"] == "docker.io/library/busybox:latest"
    assert record["image_id"].startswith("sha256:")
    assert record["finished_at"]
    assert host_mounts_under(run_env.root / "containers" / container_id) == []
    assert glob.glob(f"/sys/fs/cgroup/pyrun/{container_id}") == []
    assert glob.glob(f"/sys/fs/cgroup/*/pyrun/{container_id}") == []


def test_name_in_use_is_error(run_env):
    pyrun_run(run_env, "--name", "taken-name", "busybox", "true", keep=True)
    result = pyrun_run(run_env, "--name", "taken-name", "busybox", "true")
    assert result.returncode == 125
    assert "already in use" in result.stderr


def test_too_long_name_is_usage_error(run_env):
    before = set(os.listdir(run_env.root / "containers"))
    result = pyrun_run(run_env, "-d", "--name", "x" * 300, "busybox", "sleep", "5", keep=True)
    assert result.returncode == 125, result.stderr
    assert "invalid container name" in result.stderr
    assert "Traceback" not in result.stderr
    assert set(os.listdir(run_env.root / "containers")) == before


def test_rm_leaves_nothing(run_env):
    before = set(os.listdir(run_env.root / "containers"))
    result = pyrun_run(run_env, "--name", "removed-after", "busybox", "true")
    assert result.returncode == 0
    assert set(os.listdir(run_env.root / "containers")) == before
    assert not (run_env.root / "names" / "removed-after").exists()
    assert host_mounts_under(run_env.root) == []


def test_failed_setup_leaves_nothing(run_env):
    before = set(os.listdir(run_env.root / "containers"))
    result = pyrun_run(run_env, "-w", "/etc/passwd", "busybox", "true")
    assert result.returncode == 125
    assert "working directory" in result.stderr or "Not a directory" in result.stderr
    assert set(os.listdir(run_env.root / "containers")) == before
    assert host_mounts_under(run_env.root) == []


def test_many_layers_image(run_env):
    result = pyrun_run(run_env, "manylayers", "sh", "-c", "ls /etc/deleted-by-whiteout; ls /bin | wc -l")
    assert "No such file" in result.stderr
    assert int(result.stdout.strip()) > 100


def test_run_imports_only_what_it_needs(run_env):
    # With the image present and --network none, run needs neither the
    # registry client's HTTP stack nor pyroute2, which cost 90 and 150 ms,
    # nor logging, dataclasses or typing, which cost 20 ms together.
    command = [sys.executable, "-X", "importtime", "-m", "runtime", "--root", str(run_env.root),
               "run", "--rm", "--network", "none", "busybox", "true"]
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **run_env.env})
    assert result.returncode == 0, result.stderr
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    assert "requests" not in imported
    assert "pyroute2" not in imported
    assert "logging" not in imported
    assert "dataclasses" not in imported
    assert "typing" not in imported


# Standard modules that `run -d`, `run --rm` and `ps` do without: enum
# (which re, signal and socket import) with re alone took about a tenth of
# a detached start here, and argparse, json and pathlib all load re.
# contextlib, functools and array load collections. ctypes (3.5 ms) and
# python-prctl's Python front prctl (1.5 ms) build tables at import.
HEAVY_STDLIB = ["enum", "re", "argparse", "gettext", "json", "pathlib", "socket", "signal", "ipaddress",
                "selectors", "fnmatch", "urllib", "datetime", "tempfile", "shutil", "warnings", "contextlib",
                "functools", "collections", "array", "ctypes", "prctl"]


def imports_of(run_env, *args: str) -> tuple[set[str], str]:
    """Run the installed `pyrun ARGS` as its launcher starts it, under -X importtime; return its imports and stdout."""
    command = [sys.executable, "-I", "-S", "-X", "importtime", PYRUN, "--root", str(run_env.root), *args]
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **run_env.env})
    assert result.returncode == 0, result.stderr
    return {line.split("|")[-1].strip() for line in result.stderr.splitlines() if "|" in line}, result.stdout


def test_hot_commands_skip_heavy_standard_modules(run_env):
    started, container_id = imports_of(run_env, "run", "-d", "--network", "none", "busybox", "sleep", "60")
    try:
        listed, _ = imports_of(run_env, "ps", "-a")
        foreground, _ = imports_of(run_env, "run", "--rm", "--network", "none", "busybox", "true")
        for name in HEAVY_STDLIB:
            assert name not in started, f"run -d imports {name}"
            assert name not in listed, f"ps imports {name}"
            assert name not in foreground, f"run --rm imports {name}"
    finally:
        run_pyrun("rm", "-f", container_id.strip(), root=run_env.root, env=run_env.env)


# Creates a container with a name and dies (os._exit, as SIGKILL would end it)
# when the name link is about to be made.
CREATE_KILLED_AT_NAME = """
import os, sys
from runtime import container, state
from runtime.spec import RunOptions
from runtime.store import ImageStore

state.reserve_name = lambda *args: os._exit(9)
root = sys.argv[1]
container.create(root, ImageStore(root).lookup("busybox"), RunOptions(command=["true"]), name="killed-create",
                 network_plan={"mode": "none"})
"""


def test_create_killed_before_its_name_leaves_a_record(run_env):
    checkout = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    killed = subprocess.run([sys.executable, "-c", CREATE_KILLED_AT_NAME, str(run_env.root)],
                            capture_output=True, text=True, cwd=checkout, timeout=60)
    assert killed.returncode == 9, killed.stderr
    listed = run_pyrun("ps", "-a", "--filter", "name=killed-create", "-q", root=run_env.root, env=run_env.env)
    (short_id,) = listed.stdout.split()
    removed = run_pyrun("rm", "-f", short_id, root=run_env.root, env=run_env.env)
    assert removed.returncode == 0, removed.stderr
    assert run_pyrun("ps", "-aq", "--filter", "name=killed-create", root=run_env.root, env=run_env.env).stdout == ""
    again = pyrun_run(run_env, "--name", "killed-create", "busybox", "true")
    assert again.returncode == 0, again.stderr
