"""The stats and top commands' formatting: sizes, CPU %, tables, ps filtering."""

import pytest

from runtime.cgroups.stats import CgroupStats, cpu_percent, memory_percent
from runtime.cli import resources
from runtime.cli.parser import CommandParser
from runtime.errors import PyrunError

MiB = 1024 * 1024


@pytest.mark.parametrize(
    "size, text",
    [(0, "0B"), (1000, "1000B"), (2048, "2KiB"), (2 * MiB + MiB // 1000, "2.001MiB"), (15.5 * 1024 * MiB, "15.5GiB")],
)
def test_format_bytes_like_docker(size, text):
    assert resources.format_bytes(size) == text


def stats(cpu_ns=0, usage=0, limit=None, pids=1):
    return CgroupStats(cpu_ns, usage, limit, pids, None)


def test_cpu_percent_half_core():
    # 0.5 s of container CPU while the host's two CPUs ran 2 s in total.
    before, after = stats(cpu_ns=0), stats(cpu_ns=500_000_000)
    assert cpu_percent(before, after, 0, 2_000_000_000, online_cpus=2) == pytest.approx(50.0)


def test_cpu_percent_no_progress_is_zero():
    assert cpu_percent(stats(cpu_ns=5), stats(cpu_ns=5), 0, 100, online_cpus=2) == 0.0


def test_memory_percent_uses_limit_or_host():
    assert memory_percent(stats(usage=16 * MiB, limit=64 * MiB), 1024 * MiB) == pytest.approx(25.0)
    assert memory_percent(stats(usage=16 * MiB), 64 * MiB) == pytest.approx(25.0)


def test_stats_rows_for_running_and_stopped():
    running = resources.Target("a" * 64, "web", "running", None)
    stopped = resources.Target("b" * 64, "old", "exited", None)
    before = ({running.id: stats(cpu_ns=0, usage=MiB, limit=64 * MiB, pids=3)}, 0)
    after = ({running.id: stats(cpu_ns=10**9, usage=8 * MiB, limit=64 * MiB, pids=3)}, 4 * 10**9)
    rows = resources.stats_rows([running, stopped], before, after, no_trunc=False)
    assert rows[0][0] == "a" * 12
    assert rows[0][1] == "web"
    assert rows[0][3] == "8MiB / 64MiB"
    assert rows[0][4] == "12.50%"
    assert rows[0][5] == "3"
    assert rows[1] == ("b" * 12, "old", "0.00%", "0B / 0B", "0.00%", "0")


def test_format_table_aligns_columns():
    table = resources.format_table(("ID", "NAME"), [("abc", "x"), ("d", "longname")])
    assert table.splitlines() == ["ID    NAME", "abc   x", "d     longname"]


PS_OUTPUT = """\
UID          PID    PPID  C STIME TTY          TIME CMD
root           1       0  0 10:00 ?        00:00:01 /sbin/init
root         200       1  0 10:01 ?        00:00:00 sleep 30 --flag
root         201     200  0 10:01 ?        00:00:00 sh -c echo 200
"""


def test_filter_ps_keeps_container_pids():
    lines = resources.filter_ps_output(PS_OUTPUT, {200})
    assert lines[0].startswith("UID")
    assert len(lines) == 2
    assert lines[1].endswith("sleep 30 --flag")


def test_filter_ps_without_pid_column():
    with pytest.raises(PyrunError, match="no PID column"):
        resources.filter_ps_output("USER COMMAND\nroot init\n", {1})


def test_container_group_gets_stats_and_top():
    parser = CommandParser("pyrun")
    subparsers = parser.add_subparsers(dest="command")
    group = subparsers.add_parser("container")
    group.add_subparsers(dest="container_command")
    resources.register(subparsers)
    args = parser.parse_args(["container", "stats", "--no-stream", "web"])
    assert args.handler is resources.stats_command
    assert args.containers == ["web"]
    args = parser.parse_args(["container", "top", "web", "-o", "pid"])
    assert args.handler is resources.top_command
    assert args.ps_options == ["-o", "pid"]


def test_top_passes_ps_options():
    parser = CommandParser("pyrun")
    resources.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["top", "web", "aux"])
    assert args.container == "web"
    assert args.ps_options == ["aux"]
