"""Building config.json: Docker's rules for command, env, workdir, capabilities, mounts."""

import pytest

from runtime import spec
from runtime.errors import UsageError
from runtime.spec import RunOptions, build_spec
from runtime.users import User

IMAGE = {
    "Entrypoint": ["/docker-entrypoint.sh"],
    "Cmd": ["httpd", "-f"],
    "Env": ["PATH=/usr/bin:/bin", "LANG=C.UTF-8"],
    "WorkingDir": "/srv",
}


def build(options=None, image=IMAGE, user=None, user_mounts=()):
    return build_spec(
        image,
        options or RunOptions(),
        user or User(home="/root"),
        bundle="/store/containers/abc",
        hostname="abc123",
        user_mounts=list(user_mounts),
        cgroups_path="/pyrun/abc",
    )


@pytest.mark.parametrize(
    "image, entrypoint, command, expected",
    [
        (IMAGE, None, [], ["/docker-entrypoint.sh", "httpd", "-f"]),
        (IMAGE, None, ["sh"], ["/docker-entrypoint.sh", "sh"]),
        (IMAGE, "/bin/env", [], ["/bin/env"]),
        (IMAGE, "/bin/env", ["-i"], ["/bin/env", "-i"]),
        (IMAGE, "", ["echo", "hi"], ["echo", "hi"]),
        ({"Cmd": ["sh"]}, None, ["echo", "hi"], ["echo", "hi"]),
        ({"Cmd": ["sh"]}, None, [], ["sh"]),
    ],
)
def test_process_args_docker_rules(image, entrypoint, command, expected):
    options = RunOptions(entrypoint=entrypoint, command=command)
    assert spec.process_args(image, options) == expected


def test_process_args_empty_is_error():
    with pytest.raises(UsageError, match="no command specified"):
        spec.process_args({}, RunOptions())


def test_entrypoint_empty_without_command_is_error():
    with pytest.raises(UsageError):
        spec.process_args(IMAGE, RunOptions(entrypoint=""))


def test_merge_env_later_wins():
    merged = spec.merge_env(["A=1", "B=2"], ["B=3", "C=4"], host_env={})
    assert merged == {"A": "1", "B": "3", "C": "4"}


def test_merge_env_bare_key_takes_host_value():
    merged = spec.merge_env(["A=1"], ["HOSTVAR", "MISSING"], host_env={"HOSTVAR": "h"})
    assert merged["HOSTVAR"] == "h"
    assert "MISSING" not in merged


def test_merge_env_value_may_contain_equals():
    assert spec.merge_env([], ["Q=a=b"], host_env={})["Q"] == "a=b"


def test_env_file_then_flag(tmp_path):
    env_file = tmp_path / "env"
    env_file.write_text("# comment\n\nFROM_FILE=1\nBOTH=file\n")
    options = RunOptions(env_files=[str(env_file)], env=["BOTH=flag"])
    env = spec.process_env(IMAGE, options, User(home="/root"), "box")
    assert "FROM_FILE=1" in env
    assert "BOTH=flag" in env
    assert "BOTH=file" not in env


def test_env_file_missing_is_usage_error(tmp_path):
    with pytest.raises(UsageError, match="env file"):
        spec.parse_env_file(str(tmp_path / "absent"))


def test_env_defaults_path_hostname_home():
    env = spec.process_env({}, RunOptions(), User(home="/home/tester"), "box")
    assert f"PATH={spec.DEFAULT_PATH}" in env
    assert "HOSTNAME=box" in env
    assert "HOME=/home/tester" in env


def test_env_keeps_image_path_and_home():
    image = {"Env": ["PATH=/custom", "HOME=/data"]}
    env = spec.process_env(image, RunOptions(), User(home="/root"), "box")
    assert "PATH=/custom" in env
    assert "HOME=/data" in env


def test_env_term_with_tty():
    env = spec.process_env({}, RunOptions(tty=True), User(), "box")
    assert "TERM=xterm" in env


def test_workdir_flag_over_image():
    assert spec.working_dir(IMAGE, RunOptions(workdir="/tmp/x/")) == "/tmp/x"
    assert spec.working_dir(IMAGE, RunOptions()) == "/srv"
    assert spec.working_dir({}, RunOptions()) == "/"


def test_workdir_relative_is_error():
    with pytest.raises(UsageError, match="absolute"):
        spec.working_dir({}, RunOptions(workdir="tmp"))


def test_security_opt_no_new_privileges():
    assert spec.no_new_privileges(["no-new-privileges"]) is True
    assert spec.no_new_privileges(["no-new-privileges:true"]) is True
    assert spec.no_new_privileges(["no-new-privileges=false"]) is False
    assert spec.no_new_privileges([]) is False


def test_security_opt_unsupported_is_error():
    with pytest.raises(UsageError, match="apparmor"):
        spec.no_new_privileges(["apparmor=unconfined"])


def test_spec_shape_for_runc():
    config = build()
    assert config["ociVersion"].startswith("1.")
    assert config["root"] == {"path": "rootfs", "readonly": False}
    assert config["hostname"] == "abc123"
    assert config["process"]["user"] == {"uid": 0, "gid": 0, "additionalGids": []}
    assert config["process"]["cwd"] == "/srv"
    assert config["linux"]["cgroupsPath"] == "/pyrun/abc"
    types = sorted(ns["type"] for ns in config["linux"]["namespaces"])
    assert types == ["cgroup", "ipc", "mount", "network", "pid", "uts"]


def test_spec_masked_and_readonly_paths():
    linux = build()["linux"]
    for path in ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/acpi", "/proc/latency_stats",
                 "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
                 "/sys/devices/virtual/powercap"]:
        assert path in linux["maskedPaths"]
    for path in ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]:
        assert path in linux["readonlyPaths"]


def test_privileged_has_no_masks_and_rw_sys():
    config = build(RunOptions(privileged=True))
    assert config["linux"]["maskedPaths"] == []
    assert config["linux"]["readonlyPaths"] == []
    sysfs = next(m for m in config["mounts"] if m["destination"] == "/sys")
    assert "rw" in sysfs["options"]
    assert "CAP_SYS_ADMIN" in config["process"]["capabilities"]["bounding"]


def test_spec_mounts_order_and_etc_binds():
    destinations = [m["destination"] for m in build()["mounts"]]
    assert destinations[:7] == ["/proc", "/dev", "/dev/pts", "/sys", "/sys/fs/cgroup", "/dev/mqueue", "/dev/shm"]
    assert destinations[7:] == ["/etc/hostname", "/etc/hosts", "/etc/resolv.conf"]
    hosts = build()["mounts"][8]
    assert hosts["source"] == "/store/containers/abc/hosts"
    assert hosts["type"] == "bind"


def test_devpts_newinstance_ptmxmode():
    devpts = next(m for m in build()["mounts"] if m["destination"] == "/dev/pts")
    assert "newinstance" in devpts["options"]
    assert "ptmxmode=0666" in devpts["options"]


def test_user_mounts_parent_first():
    mounts = [
        {"destination": "/data/inner", "type": "tmpfs", "source": "tmpfs", "options": []},
        {"destination": "/data", "type": "tmpfs", "source": "tmpfs", "options": []},
    ]
    destinations = [m["destination"] for m in build(user_mounts=mounts)["mounts"]]
    assert destinations.index("/data") < destinations.index("/data/inner")


def test_read_only_root():
    assert build(RunOptions(read_only=True))["root"]["readonly"] is True


def test_user_ids_in_spec():
    config = build(user=User(1000, 1000, [28, 29], "tester", "/home/tester"))
    assert config["process"]["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [28, 29]}


def test_devices_listed_in_spec():
    device = {"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11, "fileMode": 0o644, "uid": 0, "gid": 0}
    config = build_spec({"Cmd": ["sh"]}, RunOptions(privileged=True), User(), bundle="/b", hostname="h",
                        user_mounts=[], devices=[device])
    assert config["linux"]["devices"] == [device]
    assert build()["linux"]["devices"] == []


def test_device_rules_deny_by_default():
    rules = build()["linux"]["resources"]["devices"]
    assert rules[0] == {"allow": False, "access": "rwm"}
    allowed = {(rule["major"], rule.get("minor")) for rule in rules[1:]}
    assert {(1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0)} <= allowed
    privileged = build(RunOptions(privileged=True))["linux"]["resources"]["devices"]
    assert privileged == [{"allow": True, "access": "rwm"}]
