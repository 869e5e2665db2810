"""The top-level parser: the command table, lazy loading, and usage errors."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

import pytest

from runtime import cli
from runtime.cli import COMMANDS, COMMAND_MODULES, main
from runtime.cli.parser import CommandParser, Namespace

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def registered_commands(module_name: str) -> dict[str, str]:
    """Return the top-level commands a module's register() adds, with their help lines."""
    parser = CommandParser("pyrun")
    subparsers = parser.add_subparsers(dest="command")
    importlib.import_module(module_name).register(subparsers)
    return dict(subparsers.help)


def test_table_lists_every_registered_command():
    registered = {}
    for module_name in COMMAND_MODULES:
        for name, help_text in registered_commands(module_name).items():
            registered[name] = help_text
            assert module_name in COMMANDS[name][0], f"{name} is registered by {module_name}"
    assert set(registered) == set(COMMANDS)
    for name, help_text in registered.items():
        assert COMMANDS[name][1] == help_text, name


def test_table_names_only_listed_modules():
    for name, (modules, _) in COMMANDS.items():
        for module_name in modules:
            assert module_name in COMMAND_MODULES, name


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for name, (_, help_text) in COMMANDS.items():
        assert f"    {name} " in out
        assert help_text.split()[0] in out


@pytest.mark.parametrize(
    "argv, command, root",
    [
        (["run", "--rm", "busybox", "true"], "run", None),
        (["--root", "/tmp/store", "run", "busybox"], "run", "/tmp/store"),
        (["--root=/tmp/store", "--log-level", "debug", "ps", "-a"], "ps", "/tmp/store"),
        (["--log-level=debug", "--explain", "images"], "images", None),
        (["--root", "run", "ps"], "ps", "run"),
        (["container", "ps"], "container ps", None),
    ],
)
def test_global_options_come_before_the_command(argv, command, root):
    args = cli.parse_command_line(argv)
    assert args.command_prog == f"pyrun {command}"
    if root is not None:
        assert args.root == root


def test_long_flags_are_not_abbreviated(capsys):
    # argparse took --log for --log-level; Docker's flag parser does not.
    lines = usage_error(capsys, ["--log", "debug", "ps"])
    assert lines == ["pyrun: unknown flag: --log", "See 'pyrun --help'."]


@pytest.mark.parametrize(
    "argv, handler_module",
    [
        (["run", "-d", "--rm", "busybox", "sleep", "1"], "runtime.cli.containers"),
        (["container", "run", "busybox"], "runtime.cli.containers"),
        (["container", "ls", "-a"], "runtime.cli.lifecycle"),
        (["container", "stats", "--no-stream"], "runtime.cli.resources"),
        (["container", "top", "web"], "runtime.cli.resources"),
        (["image", "ls"], "runtime.cli.images"),
        (["image", "rm", "busybox"], "runtime.cli.images"),
        (["stats", "--no-stream"], "runtime.cli.resources"),
        (["port", "web", "80"], "runtime.cli.networks"),
        (["container", "port", "web"], "runtime.cli.networks"),
        (["container", "list", "-a"], "runtime.cli.lifecycle"),
    ],
)
def test_parse_reaches_handler(argv, handler_module):
    args = cli.parse_command_line(argv)
    assert args.handler.__module__ == handler_module


def test_run_keeps_command_flags():
    args = cli.parse_command_line(["--root", "/tmp/store", "run", "--rm", "-h", "box", "busybox", "ls", "-l"])
    assert args.root == "/tmp/store"
    assert args.rm is True
    assert args.hostname == "box"
    assert args.image == "busybox"
    assert args.command == ["ls", "-l"]


def usage_error(capsys, argv: list[str]) -> list[str]:
    """Run main(argv), check that it exits 125, and return the lines on stderr."""
    assert main(argv) == 125
    captured = capsys.readouterr()
    assert captured.out == ""
    return captured.err.splitlines()


def test_no_command_prints_usage_and_succeeds(capsys):
    # As `docker` alone: the usage on stdout, status 0.
    assert main([]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("usage: pyrun [OPTIONS] COMMAND ...")
    assert captured.err == ""


@pytest.mark.parametrize("argv", [["--version"], ["-v"], ["--version", "ps"]])
def test_version_flag_prints_version(capsys, argv):
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("pyrun version ")
    assert captured.err == ""


def test_help_command_prints_a_commands_help(capsys):
    assert main(["help", "image", "ls"]) == 0
    assert capsys.readouterr().out.startswith("usage: pyrun image ls [OPTIONS]")
    assert main(["help"]) == 0
    assert capsys.readouterr().out.startswith("usage: pyrun [OPTIONS] COMMAND ...")


@pytest.mark.parametrize("words, usage", [(["run", "busybox"], "usage: pyrun run "),
                                          (["help", "run"], "usage: pyrun help "),
                                          (["image", "ls", "extra"], "usage: pyrun image ls ")])
def test_help_ignores_words_after_the_command(capsys, words, usage):
    assert main(["help", *words]) == 0
    assert capsys.readouterr().out.startswith(usage)


def test_help_of_unknown_command_exits_125(capsys):
    lines = usage_error(capsys, ["help", "bogus"])
    assert lines[0] == "pyrun: unknown command: 'bogus'"


def test_bad_port_reported_before_the_image_lookup(capsys, tmp_path):
    lines = usage_error(capsys, ["--root", str(tmp_path), "run", "-p", "bogus", "--pull", "never", "nosuch", "true"])
    assert "bogus" in lines[0]


def test_unknown_flag_exits_125(capsys):
    lines = usage_error(capsys, ["run", "--bogus", "busybox"])
    assert lines == ["pyrun: unknown flag: --bogus", "See 'pyrun run --help'."]


def test_unknown_flag_with_value_named_alone(capsys):
    lines = usage_error(capsys, ["run", "--bogus=1", "busybox"])
    assert lines[0] == "pyrun: unknown flag: --bogus"


def test_unknown_flag_in_group_names_verb(capsys):
    lines = usage_error(capsys, ["container", "ps", "--bogus"])
    assert lines == ["pyrun: unknown flag: --bogus", "See 'pyrun container ps --help'."]


def test_unsupported_docker_flag_named(capsys):
    lines = usage_error(capsys, ["run", "--restart", "always", "busybox"])
    assert lines[0] == "pyrun: --restart is not supported by pyrun"
    assert lines[1] == "See 'pyrun run --help'."


def test_invalid_value_names_flag(capsys):
    lines = usage_error(capsys, ["run", "--memory-swappiness", "lots", "busybox"])
    assert lines[0].startswith("pyrun: argument --memory-swappiness: invalid")
    assert "'lots'" in lines[0]


def test_negative_value_reaches_flag_check(capsys):
    # Docker passes "-5m" to --memory's own check; argparse took it for a flag.
    lines = usage_error(capsys, ["run", "--memory", "-5m", "busybox", "true"])
    assert lines[0].startswith("pyrun: invalid value for --memory: '-5m'")
    lines = usage_error(capsys, ["run", "--cpus", "-.5", "busybox", "true"])
    assert lines[0].startswith("pyrun: invalid value for --cpus: '-.5'")


def test_missing_image_exits_125(capsys):
    lines = usage_error(capsys, ["run"])
    assert "IMAGE" in lines[0]
    assert lines[1] == "See 'pyrun run --help'."


def test_unexpected_argument_exits_125(capsys):
    lines = usage_error(capsys, ["ps", "extra"])
    assert lines == ["pyrun: unexpected argument: 'extra'", "See 'pyrun ps --help'."]


def test_unknown_command_exits_125(capsys):
    lines = usage_error(capsys, ["bogus"])
    assert lines == ["pyrun: unknown command: 'bogus'", "See 'pyrun --help'."]


def test_invalid_global_option_exits_125(capsys):
    lines = usage_error(capsys, ["--log-level", "loud", "ps"])
    assert lines[0].startswith("pyrun: argument --log-level: invalid choice: 'loud'")
    assert lines[1] == "See 'pyrun --help'."


def loaded_modules(code: str) -> set[str]:
    """Run `code` in a fresh interpreter and return the names in its sys.modules."""
    script = f"import sys\n{code}\nprint('\\n'.join(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=True, cwd=REPO)
    return set(result.stdout.split())


def test_run_parse_imports_only_its_module():
    loaded = loaded_modules("from runtime.cli import parse_command_line\n"
                            "parse_command_line(['run', '--rm', 'busybox', 'true'])")
    assert "runtime.cli.containers" in loaded
    for name in ["runtime.cli.lifecycle", "runtime.cli.images", "runtime.cli.resources",
                 "runtime.cli.networks", "runtime.cli.teach"]:
        assert name not in loaded


def test_parsing_skips_shutil():
    # argparse imported shutil for the terminal's width on every add_argument.
    loaded = loaded_modules("from runtime.cli import parse_command_line\n"
                            "parse_command_line(['ps', '-a'])")
    assert "runtime.cli.lifecycle" in loaded
    assert "shutil" not in loaded


@pytest.mark.parametrize("columns", ["50", "132"])
def test_run_help_fits_the_terminal(monkeypatch, capsys, columns):
    monkeypatch.setenv("COLUMNS", columns)
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: pyrun run [OPTIONS] IMAGE [COMMAND ...]\n")
    for line in out.splitlines():
        # A flag with a long metavar is alone on its line, as in argparse.
        assert len(line) <= int(columns) or "  " not in line.strip(), line
    for flag in ["--rm", "-d, --detach", "-e, --env KEY[=VALUE]", "--memory", "--network, --net NETWORK", "--cpus NUMBER"]:
        assert flag in out
    assert "--restart" not in out  # rejected flags stay out of the help


def test_run_path_skips_requests_and_pyroute2():
    # What `pyrun run` imports when the image is in the store and there is
    # no network to attach: the registry client and netlink load only on a
    # pull or a network attach.
    loaded = loaded_modules(
        "from runtime.cli import parse_command_line\n"
        "parse_command_line(['run', '--rm', '--network', 'none', 'busybox', 'true'])\n"
        "import runtime.container, runtime.store, runtime.cgroups, runtime.network, runtime.launch"
    )
    assert "runtime.container" in loaded
    assert "requests" not in loaded
    assert "pyroute2" not in loaded


def test_interrupt_while_parsing_exits_130(capsys, monkeypatch):
    # Parsing imports the command's modules, which is where an early Ctrl-C lands.
    def interrupted(argv):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "parse_command_line", interrupted)
    assert main(["run", "busybox", "true"]) == 130
    assert capsys.readouterr().err == "pyrun: interrupted\n"


def test_interrupt_in_handler_reported_once(capsys, monkeypatch):
    def interrupted(args):
        raise KeyboardInterrupt

    args = Namespace(handler=interrupted, log_level="warning", explain=False)
    monkeypatch.setattr(cli, "parse_command_line", lambda argv: args)
    monkeypatch.setattr(cli, "configure_logging", lambda level: None)
    assert main(["ps"]) == 130
    assert capsys.readouterr().err == "pyrun: interrupted\n"


class InterruptingFinder:
    """An import finder that raises KeyboardInterrupt for one module, as Ctrl-C during its import would."""

    def __init__(self, name: str) -> None:
        self.name = name

    def find_spec(self, name, path=None, target=None):
        if name == self.name:
            raise KeyboardInterrupt
        return None


def test_console_interrupt_while_importing_cli(capsys, monkeypatch):
    from runtime import console

    monkeypatch.delitem(sys.modules, "runtime.cli")
    monkeypatch.setattr(sys, "meta_path", [InterruptingFinder("runtime.cli"), *sys.meta_path])
    assert console.main() == 130
    assert capsys.readouterr().err == "pyrun: interrupted\n"


def test_console_raises_the_collector_threshold(monkeypatch):
    import gc

    from runtime import console

    monkeypatch.setattr(sys, "argv", ["pyrun", "version"])
    previous = gc.get_threshold()
    try:
        assert console.main() == 0
        assert gc.get_threshold()[0] == console.GC_THRESHOLD
    finally:
        gc.set_threshold(*previous)


def test_console_entry_imports_only_sys():
    loaded = loaded_modules("import runtime.console")
    assert "runtime.console" in loaded
    assert "runtime.cli" not in loaded
    assert "runtime.cli.parser" not in loaded


def test_console_run_flushes_output_and_keeps_status():
    # runtime.console.run ends the process with os._exit: piped output must
    # still arrive whole, and the status must be the command's own.
    listing = subprocess.run([sys.executable, "-m", "runtime", "run", "--help"],
                             capture_output=True, text=True)
    assert listing.returncode == 0
    assert "--rm" in listing.stdout
    failed = subprocess.run([sys.executable, "-m", "runtime", "bogus"], capture_output=True, text=True)
    assert failed.returncode == 125
    assert "unknown command: 'bogus'" in failed.stderr


@pytest.mark.parametrize("closed", [0, 1, 2])
def test_closed_stdio_gets_dev_null(closed):
    # `pyrun version >&-`: the command still works, and no traceback reaches the streams left open.
    result = subprocess.run([sys.executable, "-c", "from runtime.console import run\nrun()", "version"],
                            capture_output=True, preexec_fn=lambda: os.close(closed), cwd=REPO)
    assert result.returncode == 0
    assert result.stderr == b""
    if closed != 1:
        assert b"Client: pyrun" in result.stdout


def test_closed_stdout_ends_quietly_with_sigpipe_status():
    # The reader is gone before pyrun writes, as with `pyrun logs C | head`
    # once head has exited.
    read_end, write_end = os.pipe()
    os.close(read_end)
    result = subprocess.run([sys.executable, "-m", "runtime", "version"],
                            stdout=write_end, stderr=subprocess.PIPE, text=True)
    os.close(write_end)
    assert result.returncode == 141
    assert result.stderr == ""


@pytest.mark.parametrize("command", [["rename", "nosuch", "other"], ["logs", "nosuch"], ["start", "-a", "nosuch"],
                                     ["stop", "nosuch"], ["inspect", "--type", "container", "nosuch"]])
def test_unknown_container_exits_1_as_docker(tmp_path, command):
    result = subprocess.run([sys.executable, "-m", "runtime", "--root", str(tmp_path), *command],
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip() == "pyrun: no such container: nosuch"


def test_forced_rm_of_unknown_container_succeeds(tmp_path):
    # As `docker rm -f` since Docker 20.10, and `rm -f` of a missing file: a warning and status 0.
    result = subprocess.run([sys.executable, "-m", "runtime", "--root", str(tmp_path), "rm", "-f", "nosuch"],
                            capture_output=True, text=True)
    assert result.returncode == 0
    assert result.stderr.strip() == "pyrun: no such container: nosuch"
    assert result.stdout == ""


def test_inspect_of_unknown_object_exits_1(tmp_path):
    result = subprocess.run([sys.executable, "-m", "runtime", "--root", str(tmp_path), "inspect", "nosuch"],
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.startswith("pyrun: no such object: nosuch (list containers with pyrun ps -a")


def test_sig_proxy_takes_go_booleans():
    from runtime.cli import parse_command_line

    assert parse_command_line(["start", "--sig-proxy=f", "c1"]).sig_proxy is False
    assert parse_command_line(["attach", "--sig-proxy=T", "c1"]).sig_proxy is True
