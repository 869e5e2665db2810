"""Lifecycle without root: ps columns, signal names, addressing and state reconciliation."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess

import pytest

from runtime import lifecycle, logs, state, syscalls
from runtime.cli import lifecycle as cli, templates
from runtime.errors import UsageError


@pytest.mark.parametrize("seconds, text", [
    (0.4, "Less than a second"), (1, "1 second"), (59, "59 seconds"), (60, "About a minute"),
    (119, "About a minute"), (120, "2 minutes"), (3600, "About an hour"), (7200, "2 hours"),
    (47 * 3600, "47 hours"), (3 * 86400, "3 days"), (20 * 86400, "2 weeks"), (90 * 86400, "3 months"),
    (800 * 86400, "2 years"),
])
def test_human_duration_like_docker(seconds, text):
    assert cli.human_duration(seconds) == text


def record(**fields) -> dict:
    base = {"id": "a" * 64, "name": "web", "image_name": "httpd", "path": "httpd-foreground", "args": [],
            "created": logs.timestamp(1_000 * 10**9), "status": "running",
            "started_at": logs.timestamp(1_000 * 10**9), "finished_at": None, "exit_code": None,
            "network_settings": {"Ports": {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "49153"}]}}}
    base.update(fields)
    return base


def test_ps_row_running():
    row = cli.ps_row(record(), now=1_003)
    assert row["ID"] == "a" * 12
    assert row["Image"] == "httpd"
    assert row["Command"] == '"httpd-foreground"'
    assert row["RunningFor"] == "3 seconds ago"
    assert row["Status"] == "Up 3 seconds"
    assert row["Ports"] == "0.0.0.0:49153->80/tcp"
    assert row["Names"] == "web"


def test_ps_row_exited_and_unknown():
    finished = logs.timestamp(1_000 * 10**9)
    exited = cli.ps_row(record(status="exited", exit_code=0, finished_at=finished), now=1_120)
    assert exited["Status"] == "Exited (0) 2 minutes ago"
    assert exited["Ports"] == ""
    unknown = cli.ps_row(record(status="exited", exit_code=None, finished_at=finished), now=1_001)
    assert unknown["Status"] == "Exited (unknown) 1 second ago"
    assert cli.ps_row(record(status="created"), now=1_001)["Status"] == "Created"


def test_ps_row_truncates_command():
    long = record(path="sh", args=["-c", "echo a very long command line"])
    assert cli.ps_row(long, now=1_001)["Command"] == '"sh -c echo a very l…"'
    assert cli.ps_row(long, now=1_001, no_trunc=True)["Command"] == '"sh -c echo a very long command line"'


def test_ps_filters():
    running, exited = record(), record(id="b" * 64, name="db", status="exited", exit_code=3)
    assert cli.matches(running, cli.parse_filters(["status=running"]))
    assert not cli.matches(exited, cli.parse_filters(["status=running"]))
    assert cli.matches(exited, cli.parse_filters(["status=running", "status=exited"]))
    assert cli.matches(exited, cli.parse_filters(["exited=3", "name=d"]))
    assert not cli.matches(exited, cli.parse_filters(["exited=3", "name=web"]))
    assert cli.matches(running, cli.parse_filters(["ancestor=httpd", "id=aaa"]))
    with pytest.raises(UsageError, match="status must be one of"):
        cli.parse_filters(["status=sleeping"])


def test_render_templates():
    row = cli.ps_row(record(), now=1_003)
    assert templates.render("{{.Names}}\\t{{ .Status }}", row) == "web\tUp 3 seconds"
    document = {"State": {"Status": "running", "Running": True, "Pid": 5}, "Name": "/web"}
    assert cli.render_inspect_format("{{.State.Status}} {{.State.Running}} {{.Name}}", document) == "running true /web"
    assert cli.render_inspect_format("{{json .State}}", document) == '{"Status":"running","Running":true,"Pid":5}'


def test_inspect_format_prints_lists_and_maps_as_go():
    document = {"Config": {"Cmd": ["sh", "-c", "true"], "Labels": {"b": "2", "a": None}, "Tty": False}}
    assert cli.render_inspect_format("{{.Config.Cmd}}", document) == "[sh -c true]"
    assert cli.render_inspect_format("{{.Config.Labels}}", document) == "map[a:<nil> b:2]"
    assert cli.render_inspect_format("{{.Config.Tty}} {{.Config.Missing}}", document) == "false <no value>"
    assert cli.render_inspect_format("{{json .Config.Cmd}}", document) == '["sh","-c","true"]'


@pytest.mark.parametrize("template, problem", [("{{.State.Pid", "has no matching"), ("{{.State.Pid}} {{if}}", "{{if}}"),
                                               ("x }}", "has no matching")])
def test_inspect_format_rejects_broken_templates(template, problem):
    with pytest.raises(UsageError, match=problem):
        cli.render_inspect_format(template, {"State": {"Pid": 5}})


@pytest.mark.parametrize("text, number", [("SIGWINCH", signal.SIGWINCH), ("KILL", signal.SIGKILL),
                                          ("term", signal.SIGTERM), ("9", 9)])
def test_parse_signal(text, number):
    assert lifecycle.parse_signal(text) == number


@pytest.mark.parametrize("text", ["SIGNOPE", "0", "999", ""])
def test_parse_signal_rejects(text):
    with pytest.raises(UsageError, match="invalid signal"):
        lifecycle.parse_signal(text)


def make_container(root, container_id: str, name: str, **fields) -> None:
    state.reserve_name(str(root), name, container_id)
    state.create_record(str(root), container_id, {"name": name, **fields})


def test_find_by_name_id_and_prefix(tmp_path):
    make_container(tmp_path, "abc" + "0" * 61, "first")
    make_container(tmp_path, "abd" + "0" * 61, "second")
    assert lifecycle.find(str(tmp_path), "first") == "abc" + "0" * 61
    assert lifecycle.find(str(tmp_path), "/second") == "abd" + "0" * 61
    assert lifecycle.find(str(tmp_path), "abc") == "abc" + "0" * 61
    with pytest.raises(UsageError, match="'ab' is ambiguous: it matches abc000000000, abd000000000"):
        lifecycle.find(str(tmp_path), "ab")


def test_process_start_time_detects_reuse():
    own = lifecycle.process_start_time(os.getpid())
    assert own is not None
    assert lifecycle.process_alive(os.getpid(), own)
    assert not lifecycle.process_alive(os.getpid(), own + 1)
    assert not lifecycle.process_alive(0, None)


def test_process_start_time_of_zombie_is_none():
    child = subprocess.Popen(["true"])
    while lifecycle.process_start_time(child.pid) is not None:
        pass  # until it has exited and is a zombie
    assert lifecycle.process_start_time(child.pid) is None
    child.wait()


def test_reconcile_keeps_live_container(tmp_path):
    make_container(tmp_path, "c" * 64, "alive", status="running", pid=os.getpid(),
                   pid_start_time=lifecycle.process_start_time(os.getpid()), boot_id=lifecycle.boot_id())
    assert lifecycle.reconcile(str(tmp_path), state.load_record(str(tmp_path), "c" * 64))["status"] == "running"


def test_reconcile_dead_without_monitor_is_unknown(tmp_path):
    make_container(tmp_path, "d" * 64, "dead", status="running", pid=os.getpid(), pid_start_time=1,
                   boot_id=lifecycle.boot_id())
    with syscalls.recording():
        result = lifecycle.reconcile(str(tmp_path), state.load_record(str(tmp_path), "d" * 64))
    assert result["status"] == "exited"
    assert result["exit_code"] is None
    assert result["error"] == lifecycle.UNKNOWN_EXIT_ERROR
    assert state.load_record(str(tmp_path), "d" * 64)["status"] == "exited"


def test_reconcile_exit_after_our_signal(tmp_path):
    make_container(tmp_path, "9" * 64, "killed", status="running", pid=os.getpid(), pid_start_time=1,
                   boot_id=lifecycle.boot_id())
    with syscalls.recording():
        result = lifecycle.reconcile(str(tmp_path), state.load_record(str(tmp_path), "9" * 64),
                                     ending_signal=signal.SIGKILL)
    assert result["status"] == "exited"
    assert result["exit_code"] == 137
    assert result["error"] == ""
    assert state.load_record(str(tmp_path), "9" * 64)["exit_code"] == 137


def test_reconcile_trusts_live_monitor(tmp_path):
    make_container(tmp_path, "e" * 64, "exiting", status="running", pid=0, boot_id=lifecycle.boot_id())
    directory = state.container_dir(str(tmp_path), "e" * 64)
    lock = os.open(os.path.join(directory, lifecycle.MONITOR_LOCK), os.O_RDWR | os.O_CREAT, 0o600)
    # flock(2) locks belong to the open file, so a lock taken here blocks the
    # reconcile's own LOCK_NB probe as a monitor's would.
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        assert lifecycle.monitor_alive(directory)
        assert lifecycle.reconcile(str(tmp_path), state.load_record(str(tmp_path), "e" * 64))["status"] == "running"
    finally:
        os.close(lock)
    assert not lifecycle.monitor_alive(directory)


def test_reconcile_other_boot_is_exited(tmp_path):
    make_container(tmp_path, "f" * 64, "rebooted", status="running", pid=os.getpid(),
                   pid_start_time=lifecycle.process_start_time(os.getpid()), boot_id="another-boot")
    with syscalls.recording():
        result = lifecycle.reconcile(str(tmp_path), state.load_record(str(tmp_path), "f" * 64))
    assert result["status"] == "exited"
    assert result["exit_code"] is None


def make_stopped_container(root, container_id: str) -> None:
    """Create an exited container whose config.json names a cgroup that does not exist."""
    make_container(root, container_id, "stopped-" + container_id[:4], status="exited", exit_code=0)
    spec = {"linux": {"cgroupsPath": f"/pyrun-unit-test-absent/{container_id}"}}
    with open(os.path.join(state.container_dir(str(root), container_id), "config.json"), "w", encoding="utf-8") as file:
        json.dump(spec, file)


def prune_arguments(root, *, force: bool):
    import argparse

    return argparse.Namespace(root=str(root), force=force)


@pytest.mark.parametrize("answer", ["", "n\n", "no\n"])
def test_container_prune_without_yes_keeps_all(tmp_path, monkeypatch, capsys, answer):
    import io

    make_stopped_container(tmp_path, "1" * 64)
    monkeypatch.setattr("sys.stdin", io.StringIO(answer))
    assert cli.prune_command(prune_arguments(tmp_path, force=False)) == 0
    assert "Are you sure you want to continue? [y/N]" in capsys.readouterr().out
    assert state.load_record(str(tmp_path), "1" * 64)["status"] == "exited"


def test_container_prune_after_yes_removes(tmp_path, monkeypatch, capsys):
    import io

    make_stopped_container(tmp_path, "2" * 64)
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))
    with syscalls.recording():
        assert cli.prune_command(prune_arguments(tmp_path, force=False)) == 0
    assert "2" * 64 in capsys.readouterr().out
    assert not os.path.exists(state.container_dir(str(tmp_path), "2" * 64))


def test_container_prune_force_asks_nothing(tmp_path, monkeypatch, capsys):
    import io

    make_stopped_container(tmp_path, "3" * 64)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    with syscalls.recording():
        assert cli.prune_command(prune_arguments(tmp_path, force=True)) == 0
    output = capsys.readouterr().out
    assert "Are you sure" not in output
    assert "3" * 64 in output
    assert not os.path.exists(state.container_dir(str(tmp_path), "3" * 64))


def test_interrupt_deferred_until_block_ends():
    reached_end_of_block = False
    with pytest.raises(KeyboardInterrupt):
        with lifecycle.InterruptDeferred():
            os.kill(os.getpid(), signal.SIGINT)
            reached_end_of_block = True
    assert reached_end_of_block
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_removed_on_interrupt_removes_container(tmp_path):
    make_stopped_container(tmp_path, "4" * 64)
    with syscalls.recording(), pytest.raises(KeyboardInterrupt):
        with lifecycle.RemovedOnInterrupt(str(tmp_path)) as container_ids:
            container_ids.append("4" * 64)
            raise KeyboardInterrupt
    assert not os.path.exists(state.container_dir(str(tmp_path), "4" * 64))


def test_map_in_threads_keeps_order():
    import threading
    import time

    running = []
    peak = []
    lock = threading.Lock()

    def square(number: int) -> int:
        with lock:
            running.append(number)
            peak.append(len(running))
        time.sleep(0.01)
        with lock:
            running.remove(number)
        return number * number

    assert cli.map_in_threads(square, list(range(20)), 4) == [number * number for number in range(20)]
    assert max(peak) <= 4
    assert max(peak) > 1


def test_map_in_threads_raises_failure():
    def fail_on_three(number: int) -> int:
        if number == 3:
            raise ValueError("three")
        return number

    with pytest.raises(ValueError, match="three"):
        cli.map_in_threads(fail_on_three, list(range(8)), 3)
    assert cli.map_in_threads(fail_on_three, [], 3) == []


def loaded_parsers(command: str) -> dict:
    """Return the sub-command parsers that naming `command` on a new `pyrun` parser registers, by name."""
    from runtime.cli import build_parser

    commands = build_parser().subcommands
    commands.find(command)
    return commands.choices


@pytest.mark.parametrize("command", sorted(cli.COMMAND_PARSERS))
def test_register_command_builds_one_parser(command):
    alone = loaded_parsers(command)
    assert list(alone) == [command]
    full = loaded_parsers("container")
    assert alone[command].format_help() == full[command].format_help()


def test_register_command_container_builds_group():
    parsers = loaded_parsers("container")
    verbs = parsers["container"].subcommands.choices
    assert set(cli.COMMAND_PARSERS) <= set(verbs)
    assert {"ls", "prune", "run", "stats", "top"} <= set(verbs)
    assert set(cli.COMMAND_PARSERS) <= set(parsers)


def test_inspect_clears_the_network_of_a_stopped_container(tmp_path):
    settings = {"IPAddress": "172.17.0.2", "IPPrefixLen": 16, "Gateway": "172.17.0.1", "MacAddress": "02:42:ac:11:00:02",
                "SandboxKey": "/proc/42/ns/net", "Ports": {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "49153"}]},
                "Networks": {"bridge": {"IPAddress": "172.17.0.2", "IPPrefixLen": 16, "Gateway": "172.17.0.1",
                                        "MacAddress": "02:42:ac:11:00:02"}}}
    running = cli.inspect_document(record(network_settings=settings), {}, str(tmp_path))["NetworkSettings"]
    assert running["IPAddress"] == "172.17.0.2"
    assert running["SandboxKey"] == "/proc/42/ns/net"
    stopped = cli.inspect_document(record(network_settings=settings, status="exited", exit_code=0), {},
                                   str(tmp_path))["NetworkSettings"]
    assert (stopped["IPAddress"], stopped["SandboxKey"], stopped["Ports"], stopped["Bridge"]) == ("", "", {}, "")
    assert stopped["Networks"]["bridge"]["IPAddress"] == ""


def test_ps_command_is_quoted_and_escaped():
    row = cli.ps_row(record(path="sh", args=["-c", 'echo "a"\n\tb']), now=1_003, no_trunc=True)
    assert row["Command"] == '"sh -c echo \\"a\\"\\n\\tb"'


@pytest.mark.parametrize("config_text", [None, '{"linux": {"cgroupsPa'])
def test_rm_of_killed_create_removes_it(tmp_path, config_text):
    """A create killed before its config.json was complete leaves a record that rm -f still removes."""
    container_id = "4" * 64
    make_container(tmp_path, container_id, "half-made")
    if config_text is not None:
        with open(os.path.join(state.container_dir(str(tmp_path), container_id), "config.json"), "w") as file:
            file.write(config_text)

    with syscalls.recording():
        assert lifecycle.remove(str(tmp_path), "half-made", force=True) == container_id
    assert not os.path.exists(state.container_dir(str(tmp_path), container_id))
    assert state.id_for_name(str(tmp_path), "half-made") is None


@pytest.mark.parametrize("directory_left", [False, True])
def test_rm_frees_a_name_without_record(tmp_path, directory_left):
    """A create killed between its name link and its record (the order before the record came first)."""
    container_id = "5" * 64
    state.reserve_name(str(tmp_path), "stuck", container_id)
    if directory_left:
        os.makedirs(state.container_dir(str(tmp_path), container_id))
        open(os.path.join(state.container_dir(str(tmp_path), container_id), "lock"), "w").close()

    assert lifecycle.remove(str(tmp_path), "stuck", force=True) == container_id
    assert state.id_for_name(str(tmp_path), "stuck") is None
    assert not os.path.exists(state.container_dir(str(tmp_path), container_id))
