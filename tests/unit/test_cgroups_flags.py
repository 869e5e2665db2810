"""Docker's resource flags turned into OCI linux.resources, and cgroup paths."""

import os

import pytest

from runtime import cgroups
from runtime.cli.parser import CommandParser
from runtime.errors import UsageError


def parse(*argv):
    parser = CommandParser("pyrun run")
    cgroups.add_resource_flags(parser)
    return cgroups.resources_from_args(parser.parse_args(list(argv)))


@pytest.mark.parametrize(
    "text, expected",
    [
        ("16m", 16 * 1024 * 1024),
        ("16M", 16 * 1024 * 1024),
        ("1g", 1024**3),
        ("1.5g", 1536 * 1024 * 1024),
        ("8192k", 8192 * 1024),
        ("64MiB", 64 * 1024 * 1024),
        ("64mb", 64 * 1024 * 1024),
        ("7000000", 7000000),
        ("8000000b", 8000000),
    ],
)
def test_memory_units(text, expected):
    assert parse("--memory", text)["memory"]["limit"] == expected


@pytest.mark.parametrize("text", ["12x", "m", "", "-5m", "1..5g", "ten"])
def test_memory_invalid_names_flag(text):
    with pytest.raises(UsageError) as info:
        parse(f"--memory={text}")
    assert "--memory" in str(info.value)
    assert repr(text) in str(info.value)


def test_memory_below_minimum_rejected():
    with pytest.raises(UsageError, match="--memory"):
        parse("--memory", "4m")


def test_memory_zero_means_no_limit():
    # Docker takes -m 0 as no limit, not as a limit below the minimum.
    assert "memory" not in parse("--memory", "0")
    assert "memory" not in parse("--memory", "0", "--memory-swap", "-1")


def test_memory_swap_defaults_to_twice_memory():
    memory = parse("-m", "64m")["memory"]
    assert memory["swap"] == 128 * 1024 * 1024


def test_memory_swap_unlimited():
    assert parse("-m", "64m", "--memory-swap", "-1")["memory"]["swap"] == -1


def test_memory_swap_needs_memory():
    with pytest.raises(UsageError, match="--memory-swap needs --memory"):
        parse("--memory-swap", "1g")


def test_memory_swap_below_memory_rejected():
    with pytest.raises(UsageError, match="--memory-swap"):
        parse("-m", "64m", "--memory-swap", "32m")


def test_memory_reservation_above_limit_rejected():
    with pytest.raises(UsageError, match="--memory-reservation"):
        parse("-m", "64m", "--memory-reservation", "128m")


def test_oom_kill_disable_and_swappiness():
    memory = parse("--oom-kill-disable", "--memory-swappiness", "0")["memory"]
    assert memory["disableOOMKiller"] is True
    assert memory["swappiness"] == 0


def test_swappiness_out_of_range_rejected():
    with pytest.raises(UsageError, match="--memory-swappiness"):
        parse("--memory-swappiness", "101")


@pytest.mark.parametrize("cpus, quota", [("0.5", 50_000), ("1", 100_000), ("1.25", 125_000)])
def test_cpus_become_quota_and_period(cpus, quota):
    cpu = parse("--cpus", cpus)["cpu"]
    assert cpu["period"] == 100_000
    assert cpu["quota"] == quota


@pytest.mark.parametrize("cpus", ["0", "-1", "half"])
def test_cpus_invalid_names_flag(cpus):
    with pytest.raises(UsageError, match="--cpus"):
        parse(f"--cpus={cpus}")


def test_cpu_shares_and_cpuset():
    cpu = parse("-c", "512", "--cpuset-cpus", "0,1", "--cpuset-mems", "0")["cpu"]
    assert cpu["shares"] == 512
    assert cpu["cpus"] == "0,1"
    assert cpu["mems"] == "0"


def test_cpu_shares_zero_means_unset():
    assert parse("--cpu-shares", "0") == {}


def test_cpuset_of_missing_cpu_rejected_at_create():
    missing = str(cgroups.flags.cpu_list_ranges(open("/sys/devices/system/cpu/online").read())[-1][1] + 7)
    with pytest.raises(UsageError, match=f"--cpuset-cpus: CPUs {missing} are not available"):
        parse("--cpuset-cpus", missing)


def test_cpuset_of_missing_node_rejected_at_create():
    with pytest.raises(UsageError, match="--cpuset-mems: memory nodes 0,4095 are not available"):
        parse("--cpuset-mems", "0,4095")


def test_cpu_list_ranges_and_cover():
    assert cgroups.flags.cpu_list_ranges("0-2,5\n") == [(0, 2), (5, 5)]
    available = cgroups.flags.cpu_list_ranges("0-2,3-5,8")
    assert cgroups.flags.covers(available, 1, 5)
    assert not cgroups.flags.covers(available, 5, 8)
    assert not cgroups.flags.covers(available, 0, 4_000_000_000)  # fast: no list of numbers is built


@pytest.mark.parametrize("text", ["a", "0-", "1,,2", "3-1"])
def test_cpuset_invalid_names_flag(text):
    with pytest.raises(UsageError, match="--cpuset-cpus"):
        parse("--cpuset-cpus", text)


@pytest.mark.parametrize("given, limit", [("100", 100), ("0", -1), ("-1", -1)])
def test_pids_limit(given, limit):
    assert parse(f"--pids-limit={given}")["pids"] == {"limit": limit}


def test_no_flags_no_resources():
    assert parse() == {}


def test_cgroup_path_default_parent():
    assert cgroups.cgroup_path("abc") == "/pyrun/abc"


def test_cgroup_path_custom_parent():
    assert cgroups.cgroup_path("abc", "/classroom/box/") == "/classroom/box/abc"


@pytest.mark.parametrize("parent", ["../etc", "a//b", "a/./b"])
def test_cgroup_parent_invalid(parent):
    with pytest.raises(UsageError, match="--cgroup-parent"):
        cgroups.cgroup_path("abc", parent)


def test_cpus_above_host_cpus_rejected():
    with pytest.raises(UsageError, match="--cpus") as info:
        parse("--cpus", str(os.cpu_count() + 1))
    assert f"as this host has {os.cpu_count()} CPUs" in info.value.hint


def test_cpu_period_and_quota():
    cpu = parse("--cpu-period", "50000", "--cpu-quota", "25000")["cpu"]
    assert cpu == {"period": 50000, "quota": 25000}


def test_cpu_quota_unlimited():
    assert parse("--cpu-quota=-1")["cpu"] == {"quota": -1}


@pytest.mark.parametrize("argv", [["--cpu-period", "999"], ["--cpu-period", "1000001"], ["--cpu-quota", "500"]])
def test_cpu_period_quota_out_of_range(argv):
    with pytest.raises(UsageError, match=argv[0]):
        parse(*argv)


def test_cpus_conflicts_with_quota():
    with pytest.raises(UsageError, match="--cpus cannot be combined"):
        parse("--cpus", "1", "--cpu-quota", "50000")


@pytest.mark.parametrize("text, expected", [
    ("1024", 1024),
    (" 64MiB ", 64 << 20),
    ("512 m", 512 << 20),
    ("1.5G", 3 << 29),
    ("2kb", 2048),
    ("3Ki", 3072),
    ("7b", 7),
    ("7i", 7),
    ("7 IB", 7),
    ("١٢", 12),
])
def test_parse_size_grammar_accepted(text, expected):
    from runtime.cgroups.flags import parse_size

    assert parse_size(text, "--memory") == expected


@pytest.mark.parametrize("text", ["", "m", "1.", ".5", "1.5.2", "1  m", "1mm", "1bi", "1x", "-1", "1e3", "1k\n2"])
def test_parse_size_grammar_rejected(text):
    from runtime.cgroups.flags import parse_size

    with pytest.raises(UsageError, match="invalid value for --memory"):
        parse_size(text, "--memory")


@pytest.mark.parametrize("text, valid", [
    ("0", True), ("0-3", True), ("0,2,4-7", True), ("", False), ("0-", False), ("-3", False),
    ("0--3", False), ("0,", False), ("0-3-5", False), ("a", False), ("0 ,1", False), ("0-3\n", False),
])
def test_parse_cpu_list_grammar(text, valid):
    from runtime.cgroups.flags import parse_cpu_list

    if valid:
        assert parse_cpu_list(text, "--cpuset-cpus") == text
    else:
        with pytest.raises(UsageError, match="invalid value for --cpuset-cpus"):
            parse_cpu_list(text, "--cpuset-cpus")
