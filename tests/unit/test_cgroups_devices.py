"""Device cgroup rules: parsing, the v1 lines, and which driver applies them."""

import errno

import pytest

from runtime import syscalls
from runtime.cgroups import CgroupError
from runtime.cli import main
from runtime.cgroups.devices import DeviceRule, parse_rules, rules_from_resources, v1_lines, v1_writes
from runtime.spec import DEFAULT_DEVICE_RULES
from tests.unit import cgroupfs_fake
from tests.unit.cgroupfs_fake import FakeCgroupfs

PRIVILEGED_RULES = [{"allow": True, "access": "rwm"}]
DEVICES_FILES = {"devices.allow": "", "devices.deny": "", "devices.list": "a *:* rwm"}


@pytest.fixture
def written():
    """Collect (path, value) of every control file written, as the trace records them."""
    writes = []

    def listen(call):
        if call.name == "write_cgroup_file":
            writes.append((call.args["path"], call.args["value"]))

    syscalls.add_listener(listen)
    yield writes
    syscalls.remove_listener(listen)


def make_fakefs(tmp_path, monkeypatch, kind, *, with_devices=True):
    """A fake cgroup tree; on v1 and hybrid it has a devices hierarchy unless `with_devices` is False."""
    if with_devices:
        monkeypatch.setitem(cgroupfs_fake.V1_FILES, "devices", DEVICES_FILES)
    return FakeCgroupfs(tmp_path, kind)


# -- Parsing -----------------------------------------------------------------------


def test_parse_fills_defaults():
    [rule] = parse_rules([{"allow": True}])
    assert rule == DeviceRule(allow=True, type="a", major=None, minor=None, access="rwm")


def test_parse_minus_one_is_wildcard():
    [rule] = parse_rules([{"allow": True, "type": "c", "major": -1, "minor": -1, "access": "r"}])
    assert rule.major is None
    assert rule.minor is None


def test_parse_sorts_access_letters():
    [rule] = parse_rules([{"allow": False, "type": "b", "major": 8, "minor": 0, "access": "mwr"}])
    assert rule.access == "rwm"


@pytest.mark.parametrize("entry, named", [
    ({"access": "rwm"}, '"allow"'),
    ({"allow": "yes", "access": "rwm"}, '"allow"'),
    ({"allow": True, "type": "x"}, "type 'x'"),
    ({"allow": True, "access": "rx"}, "access 'rx'"),
    ({"allow": True, "type": "c", "major": "1"}, "major '1'"),
    ({"allow": True, "type": "c", "major": 1, "minor": -2}, "minor -2"),
    ({"allow": True, "type": "c", "major": 1 << 31}, "major 2147483648"),
    ("c 1:3 rwm", "'c 1:3 rwm'"),
])
def test_parse_rejects_invalid_rule(entry, named):
    with pytest.raises(CgroupError) as info:
        parse_rules([entry])
    assert "invalid device rule" in str(info.value)
    assert named in str(info.value)


def test_resources_without_devices_keep_inherited():
    assert rules_from_resources({"pids": {"limit": 5}}) is None
    assert rules_from_resources({"devices": []}) == []


def test_resources_devices_not_a_list():
    with pytest.raises(CgroupError, match="expected a list"):
        rules_from_resources({"devices": {"allow": True}})


# -- cgroup v1 lines -----------------------------------------------------------------


@pytest.mark.parametrize("entry, lines", [
    ({"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"}, ["c 1:3 rwm"]),
    ({"allow": True, "type": "c", "major": 136, "access": "rwm"}, ["c 136:* rwm"]),
    ({"allow": True, "type": "b", "access": "m"}, ["b *:* m"]),
    ({"allow": False, "access": "rwm"}, ["a"]),
    ({"allow": True, "type": "a", "major": 7, "access": "r"}, ["c 7:* r", "b 7:* r"]),
    ({"allow": True, "access": "m"}, ["c *:* m", "b *:* m"]),
])
def test_v1_lines(entry, lines):
    [rule] = parse_rules([entry])
    assert v1_lines(rule) == lines


def test_v1_writes_default_rules():
    writes = v1_writes(parse_rules(DEFAULT_DEVICE_RULES))
    assert writes[0] == ("devices.deny", "a")
    assert ("devices.deny", "a") not in writes[1:]
    assert ("devices.allow", "c 1:3 rwm") in writes
    assert ("devices.allow", "c 136:* rwm") in writes
    assert len(writes) == len(DEFAULT_DEVICE_RULES)
    assert all(name == "devices.allow" for name, _ in writes[1:])


def test_v1_writes_privileged_allow_all():
    assert v1_writes(parse_rules(PRIVILEGED_RULES)) == [("devices.deny", "a"), ("devices.allow", "a")]


def test_v1_writes_keep_spec_order():
    rules = parse_rules([
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
        {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "w"},
    ])
    assert v1_writes(rules) == [
        ("devices.deny", "a"),
        ("devices.allow", "c 1:3 rwm"),
        ("devices.deny", "c 1:3 w"),
    ]


def test_v1_writes_empty_denies_all():
    assert v1_writes([]) == [("devices.deny", "a")]


# -- Which driver applies the rules ---------------------------------------------------


@pytest.mark.parametrize("kind", ["v1", "hybrid"])
def test_v1_apply_writes_devices_files(tmp_path, monkeypatch, written, kind):
    fakefs = make_fakefs(tmp_path, monkeypatch, kind)
    try:
        manager = fakefs.open("/pyrun/c1")
        manager.create()
        written.clear()
        manager.apply({"devices": DEFAULT_DEVICE_RULES, "pids": {"limit": 5}})
    finally:
        fakefs.close()
    directory = fakefs.v1_mount("devices") / "pyrun" / "c1"
    device_writes = [(path, value) for path, value in written if "/devices." in path]
    assert device_writes[0] == (str(directory / "devices.deny"), "a")
    assert (str(directory / "devices.allow"), "c 1:3 rwm") in device_writes
    assert len(device_writes) == len(DEFAULT_DEVICE_RULES)


def test_v1_apply_without_devices_key_writes_none(tmp_path, monkeypatch, written):
    fakefs = make_fakefs(tmp_path, monkeypatch, "v1")
    try:
        manager = fakefs.open("/pyrun/c1")
        manager.create()
        written.clear()
        manager.apply({"pids": {"limit": 5}})
    finally:
        fakefs.close()
    assert [path for path, _ in written if "/devices." in path] == []


def test_v1_apply_without_devices_hierarchy_fails(tmp_path, monkeypatch):
    fakefs = make_fakefs(tmp_path, monkeypatch, "v1", with_devices=False)
    try:
        manager = fakefs.open("/pyrun/c1")
        manager.create()
        with pytest.raises(CgroupError, match="applying the device rules needs the devices cgroup controller"):
            manager.apply({"devices": DEFAULT_DEVICE_RULES})
    finally:
        fakefs.close()


def test_hybrid_without_devices_hierarchy_uses_bpf(tmp_path, monkeypatch):
    fakefs = make_fakefs(tmp_path, monkeypatch, "hybrid", with_devices=False)
    try:
        manager = fakefs.open("/pyrun/c1")
        manager.create()
        with syscalls.recording() as recorder:
            manager.apply({"devices": DEFAULT_DEVICE_RULES})
    finally:
        fakefs.close()
    bpf_calls = [call for call in recorder.calls if call.name == "bpf"]
    assert [call.args["cmd"] for call in bpf_calls] == ["BPF_PROG_LOAD", "BPF_PROG_ATTACH"]
    assert bpf_calls[1].args["target"] == str(fakefs.unified_mount() / "pyrun" / "c1")


def test_v2_apply_loads_and_attaches(tmp_path, monkeypatch):
    fakefs = make_fakefs(tmp_path, monkeypatch, "v2")
    try:
        manager = fakefs.open("/pyrun/c1")
        manager.create()
        with syscalls.recording() as recorder:
            manager.apply({"devices": DEFAULT_DEVICE_RULES})
    finally:
        fakefs.close()
    load, attach = recorder.calls
    assert load.name == "bpf"
    assert load.args["cmd"] == "BPF_PROG_LOAD"
    assert load.args["prog_type"] == "BPF_PROG_TYPE_CGROUP_DEVICE"
    assert attach.args["cmd"] == "BPF_PROG_ATTACH"
    assert attach.args["target"] == manager.directory
    assert attach.args["attach_type"] == "BPF_CGROUP_DEVICE"
    assert attach.args["flags"] == "BPF_F_ALLOW_MULTI"


def test_v2_apply_without_devices_key_loads_nothing(tmp_path, monkeypatch):
    fakefs = make_fakefs(tmp_path, monkeypatch, "v2")
    try:
        manager = fakefs.open("/pyrun/c1")
        manager.create()
        with syscalls.recording() as recorder:
            manager.apply({"pids": {"limit": 5}})
    finally:
        fakefs.close()
    assert "bpf" not in recorder.names()


def test_v2_load_refused_names_cgroup(tmp_path, monkeypatch):
    fakefs = make_fakefs(tmp_path, monkeypatch, "v2")
    try:
        manager = fakefs.open("/pyrun/c1")
        manager.create()
        with syscalls.recording() as recorder:
            recorder.fail["bpf"] = errno.EPERM
            with pytest.raises(CgroupError) as info:
                manager.apply({"devices": DEFAULT_DEVICE_RULES})
    finally:
        fakefs.close()
    assert manager.directory in str(info.value)
    assert "needs root" in info.value.hint
    assert "BPF_PROG_LOAD" in str(info.value.__cause__)


def test_v2_verifier_rejection_loads_again_for_log(tmp_path, monkeypatch):
    fakefs = make_fakefs(tmp_path, monkeypatch, "v2")
    try:
        manager = fakefs.open("/pyrun/c1")
        manager.create()
        with syscalls.recording() as recorder:
            recorder.fail["bpf"] = errno.EACCES
            with pytest.raises(CgroupError, match="load the device program"):
                manager.apply({"devices": DEFAULT_DEVICE_RULES})
    finally:
        fakefs.close()
    assert [call.args["cmd"] for call in recorder.calls] == ["BPF_PROG_LOAD", "BPF_PROG_LOAD"]
    assert "BPF_PROG_ATTACH" not in [call.args["cmd"] for call in recorder.calls]


# -- The command line -----------------------------------------------------------------


@pytest.mark.parametrize("argv", [
    ["run", "--device", "/dev/sda", "busybox"],
    ["run", "--device=/dev/sda:/dev/xvda:r", "busybox"],
    ["run", "--device-cgroup-rule", "b 8:* rmw", "busybox"],
])
def test_run_rejects_device_flags(capsys, argv):
    assert main(argv) == 125
    flag = argv[1].partition("=")[0]
    assert capsys.readouterr().err.splitlines()[0] == f"pyrun: {flag} is not supported by pyrun"
