"""runtime.cli.parser: Docker's flag rules with argparse's declarations."""

from __future__ import annotations

import pytest

from runtime.cli.parser import REMAINDER, SUPPRESS, ArgumentTypeError, CommandLineError, CommandParser


def run_parser() -> CommandParser:
    """A small `run`: value flags, switches, an append flag, IMAGE and COMMAND..."""
    parser = CommandParser("pyrun run", add_help=False)
    parser.add_argument("--help", action="help", help="show this help message and exit")
    parser.add_argument("-d", "--detach", action="store_true", help="run in the background")
    parser.add_argument("-i", "--interactive", action="store_true")
    parser.add_argument("-t", "--tty", action="store_true")
    parser.add_argument("-e", "--env", action="append", default=[], metavar="KEY[=VALUE]")
    parser.add_argument("-p", "--publish", action="append", default=[])
    parser.add_argument("-m", "--memory", metavar="BYTES")
    parser.add_argument("--pids-limit", type=int)
    parser.add_argument("--pull", default="missing", choices=["missing", "always", "never"])
    parser.add_argument("--sig-proxy", type=lambda text: text == "true", nargs="?", const=True, default=True)
    parser.add_argument("--restart", action="unsupported", help=SUPPRESS)
    parser.add_argument("image", metavar="IMAGE")
    parser.add_argument("command", nargs=REMAINDER, metavar="COMMAND")
    return parser


def rm_parser() -> CommandParser:
    parser = CommandParser("pyrun rm")
    parser.add_argument("-f", "--force", action="store_true")
    parser.add_argument("containers", nargs="+", metavar="CONTAINER")
    return parser


def error_of(parser: CommandParser, argv: list[str]) -> str:
    with pytest.raises(CommandLineError) as raised:
        parser.parse_args(argv)
    assert raised.value.prog == parser.prog
    return str(raised.value)


def test_value_flag_takes_dashed_value():
    # pflag's rule: "--memory -5m" gives --memory's own check the value.
    args = run_parser().parse_args(["--memory", "-5m", "busybox"])
    assert args.memory == "-5m"
    assert args.image == "busybox"


@pytest.mark.parametrize("argv", [["-e", "A=1"], ["-eA=1"], ["-e=A=1"], ["--env", "A=1"], ["--env=A=1"]])
def test_every_spelling_of_a_value(argv):
    assert run_parser().parse_args([*argv, "busybox"]).env == ["A=1"]


def test_short_flags_cluster():
    args = run_parser().parse_args(["-dit", "-p8080:80", "-dp", "53:53", "busybox"])
    assert (args.detach, args.interactive, args.tty) == (True, True, True)
    assert args.publish == ["8080:80", "53:53"]


def test_append_defaults_are_not_shared_between_parses():
    parser = run_parser()
    parser.parse_args(["-e", "A=1", "busybox"])
    assert parser.parse_args(["busybox"]).env == []


def test_command_keeps_its_flags():
    args = run_parser().parse_args(["-d", "busybox", "-d", "ls", "-l", "--", "x"])
    assert args.detach is True
    assert args.command == ["-d", "ls", "-l", "--", "x"]


def test_double_dash_ends_the_flags():
    args = run_parser().parse_args(["--", "-weird-image", "true"])
    assert (args.image, args.command) == ("-weird-image", ["true"])


def test_flags_may_follow_arguments_where_no_command_follows():
    args = rm_parser().parse_args(["web", "-f", "db"])
    assert (args.force, args.containers) == (True, ["web", "db"])


@pytest.mark.parametrize("argv, detach", [(["--detach=false"], False), (["-d=true"], True), (["-d=0"], False),
                                          (["-d", "--detach=False"], False), (["-i", "-d=1"], True)])
def test_switches_take_go_booleans_after_equals(argv, detach):
    args = run_parser().parse_args([*argv, "busybox"])
    assert args.detach is detach
    assert args.image == "busybox"


def test_optional_value_only_after_equals():
    parser = run_parser()
    assert parser.parse_args(["--sig-proxy=false", "busybox"]).sig_proxy is False
    args = parser.parse_args(["--sig-proxy", "false", "busybox"])
    assert (args.sig_proxy, args.image, args.command) == (True, "false", ["busybox"])


@pytest.mark.parametrize("argv, message", [
    (["--bogus", "busybox"], "unknown flag: --bogus"),
    (["--bogus=1", "busybox"], "unknown flag: --bogus"),
    (["-dx", "busybox"], "unknown flag: -x in -dx"),
    (["--detach=yes", "busybox"], "invalid value 'yes' for --detach: expected true or false"),
    (["busybox", "--memory"], None),  # after IMAGE, it is the command's
    (["--memory"], "flag needs an argument: --memory"),
    (["--pids-limit", "lots", "busybox"], "argument --pids-limit: invalid int value: 'lots'"),
    (["--pull", "sometimes", "busybox"],
     "argument --pull: invalid choice: 'sometimes' (choose from 'missing', 'always', 'never')"),
    (["--restart", "always", "busybox"], "--restart is not supported by pyrun"),
    ([], "the following arguments are required: IMAGE"),
])
def test_usage_errors(argv, message):
    if message is None:
        assert run_parser().parse_args(argv).command == ["--memory"]
    else:
        assert error_of(run_parser(), argv) == message


def test_type_error_message_follows_the_flag():
    parser = CommandParser("pyrun attach")

    def boolean(text: str) -> bool:
        raise ArgumentTypeError(f"invalid boolean {text!r}")

    parser.add_argument("--sig-proxy", type=boolean)
    assert error_of(parser, ["--sig-proxy", "maybe"]) == "argument --sig-proxy: invalid boolean 'maybe'"


def test_missing_and_extra_positionals():
    assert error_of(rm_parser(), ["-f"]) == "the following arguments are required: CONTAINER"
    parser = CommandParser("pyrun ps")
    parser.add_argument("-a", "--all", action="store_true")
    assert error_of(parser, ["-a", "extra"]) == "unexpected argument: 'extra'"


def test_help_exits_zero_after_printing(capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_parser().parse_args(["-d", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: pyrun run [OPTIONS] IMAGE [COMMAND ...]\n")
    assert "-e, --env KEY[=VALUE]" in out
    assert "--pull {missing,always,never}" in out
    assert "--restart" not in out


def test_subcommands_load_when_named():
    loaded = []

    def load(commands, name):
        loaded.append(name)
        verb = commands.add_parser(name, help="list containers", aliases=["ls"])
        verb.add_argument("-a", "--all", action="store_true")
        verb.set_defaults(handler="ps handler")

    top = CommandParser("pyrun")
    top.add_argument("--root", default="/var/lib/pyrun")
    commands = top.add_subparsers(dest="verb", metavar="COMMAND")
    commands.add_loader("ps", "list containers", load)
    commands.add_loader("rm", "remove containers", load)
    args = top.parse_args(["--root", "/tmp/r", "ps", "-a"])
    assert loaded == ["ps"]
    assert (args.root, args.verb, args.all, args.handler) == ("/tmp/r", "ps", True, "ps handler")
    assert args.command_prog == "pyrun ps"
    assert top.parse_args(["ls"]).command_prog == "pyrun ps"
    # A flag of the top level after the command is the command's, which has none.
    with pytest.raises(CommandLineError) as raised:
        top.parse_args(["ps", "--root", "/x"])
    assert (str(raised.value), raised.value.prog) == ("unknown flag: --root", "pyrun ps")
    assert error_of(top, ["bogus"]) == "unknown command: 'bogus'"
    assert top.parse_args([]).verb is None


def test_parser_rejects_a_duplicate_flag():
    parser = CommandParser("pyrun x")
    parser.add_argument("-f", "--force", action="store_true")
    with pytest.raises(ValueError, match="-f is declared twice"):
        parser.add_argument("-f", "--format")


def test_help_lists_a_repeated_positional_with_both_brackets():
    from runtime.cli.parser import CommandParser

    parser = CommandParser("pyrun rm")
    parser.add_argument("containers", nargs="+", metavar="CONTAINER", help="container")
    parser.add_argument("server", nargs="?", metavar="SERVER", help="server")
    text = parser.format_help()
    assert "  CONTAINER [CONTAINER ...]" in text
    assert "  SERVER " in text
    assert "[SERVER]\n" not in text.split("arguments:")[1]
