"""The `pyrun` command: global options, then one sub-command.

COMMANDS lists every sub-command with the modules that define it and its
one-line help. `main` finds the sub-command on the command line first and
imports only its modules, so `pyrun run` does not build the parsers of all
the other commands. `pyrun --help` lists the table without importing any.
Each module in COMMAND_MODULES defines `register(subparsers)`, which adds its
sub-commands and sets `handler` on each. Modules here import only the
standard library at the top: the heavy imports (requests, pyroute2) happen
inside the handlers.

A usage error (an unknown flag, a missing argument, an invalid value) exits
with status 125, as Docker does, with the message and the command's help
flag: "pyrun: unknown flag: --bogus", then "See 'pyrun run --help'.".
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import signal
import sys

from runtime.errors import PyrunError, UsageError, describe_error

DEFAULT_ROOT = "/var/lib/pyrun"

# Add a module here when it defines new sub-commands, and add its commands
# to COMMANDS below.
COMMAND_MODULES = [
    "runtime.cli.images",
    "runtime.cli.containers",
    "runtime.cli.lifecycle",
    "runtime.cli.resources",
    "runtime.cli.networks",
    "runtime.cli.teach",
    "runtime.cli.system",
]

IMAGES = ("runtime.cli.images",)
LIFECYCLE = ("runtime.cli.lifecycle",)
RESOURCES = ("runtime.cli.resources",)

# Sub-command -> (modules whose register() adds it, help line), in the order
# `pyrun --help` lists them. The help lines repeat the modules' own, and a
# unit test checks both against what the modules register. `container`
# needs two modules because runtime.cli.resources adds `stats` and `top` to
# the group that runtime.cli.lifecycle creates.
COMMANDS: dict[str, tuple[tuple[str, ...], str]] = {
    "pull": (IMAGES, "download an image from a registry"),
    "images": (IMAGES, "list images"),
    "rmi": (IMAGES, "remove images"),
    "tag": (IMAGES, "give an image another name"),
    "login": (IMAGES, "save credentials for a registry"),
    "logout": (IMAGES, "remove saved credentials for a registry"),
    "image": (IMAGES, "manage images"),
    "run": (("runtime.cli.containers",), "run a command in a new container"),
    "container": (LIFECYCLE + RESOURCES, "manage containers (pyrun container VERB)"),
    "create": (LIFECYCLE, "create a container without starting it"),
    "start": (LIFECYCLE, "start one or more stopped containers"),
    "ps": (LIFECYCLE, "list containers"),
    "stop": (LIFECYCLE, "stop running containers with the stop signal, then SIGKILL"),
    "kill": (LIFECYCLE, "send a signal to running containers"),
    "restart": (LIFECYCLE, "stop and start containers again"),
    "rm": (LIFECYCLE, "remove containers"),
    "wait": (LIFECYCLE, "wait for containers to stop and print their exit codes"),
    "attach": (LIFECYCLE, "connect to a running container's output, and its stdin with -i"),
    "inspect": (LIFECYCLE, "show containers' details as JSON"),
    "rename": (LIFECYCLE, "rename a container"),
    "logs": (LIFECYCLE, "print a container's output"),
    "exec": (LIFECYCLE, "run a command in a running container"),
    "stats": (RESOURCES, "show containers' CPU, memory and process use"),
    "top": (RESOURCES, "list the processes running in a container"),
    "port": (("runtime.cli.networks",), "list a container's published ports"),
    "explain": (("runtime.cli.teach",), "print a short lesson on a container topic, using this host"),
    "version": (("runtime.cli.system",), "show pyrun's version and the host it runs on"),
    "info": (("runtime.cli.system",), "show the host's container facilities and pyrun's store"),
}


def _untranslated(message: str) -> str:
    return message


def _untranslated_plural(singular: str, plural: str, count: int) -> str:
    return singular if count == 1 else plural


# argparse passes each of its own messages through gettext, which imports
# locale and looks for a translation catalogue on disk for every message
# (about 2 ms per pyrun command here). pyrun's own messages are English
# only, so argparse's stay untranslated too.
argparse._ = _untranslated
argparse.ngettext = _untranslated_plural


DASH_AND_DIGIT = re.compile(r"^-\.?\d")


class CommandLineError(UsageError):
    """A usage error found by the argument parser; `prog` is the command it concerns."""

    def __init__(self, message: str, prog: str) -> None:
        super().__init__(message)
        self.prog = prog


def terminal_columns() -> int:
    """Return $COLUMNS, else the width of the terminal on stdout, else 80, as shutil.get_terminal_size does."""
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns > 0:
        return columns
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns or 80
    except (AttributeError, ValueError, OSError):
        return 80


class HelpFormatter(argparse.HelpFormatter):
    """argparse's help formatter, given its width so that it does not import shutil for it.

    argparse makes a formatter for every add_argument call, and each one
    gets the terminal's width from shutil. Importing shutil (and the
    compression modules it loads) costs `pyrun ps` about 2 ms.
    """

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        if width is None:
            width = terminal_columns() - 2  # the margin argparse keeps
        super().__init__(prog, indent_increment, max_help_position, width)


class CommandParser(argparse.ArgumentParser):
    """An ArgumentParser that raises CommandLineError where argparse would exit 2.

    Sub-command parsers are made with the class of their parent, so every
    parser under `pyrun` raises the same way. Each parser also sets
    `command_prog` (e.g. "pyrun container ps") as a default, and the most
    deeply nested one wins, so `main` can name the command whose help to
    read.
    """

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)
        self.set_defaults(command_prog=self.prog)
        # argparse takes "-5m" for an unknown flag, so `--memory -5m` failed
        # with "expected one argument". Docker's flag parser takes whatever
        # follows a flag that needs a value as that value. pyrun does so for
        # an argument that starts with a dash and a digit, so that the flag's
        # own check names the invalid value. "-.5" stays a value too.
        self._negative_number_matcher = DASH_AND_DIGIT

    def error(self, message: str):
        raise CommandLineError(message, self.prog)


def add_global_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--root",
        default=os.environ.get("PYRUN_ROOT", DEFAULT_ROOT),
        help=f"directory for images and containers (default: $PYRUN_ROOT or {DEFAULT_ROOT})",
    )
    parser.add_argument(
        "--log-level",
        default="warning",
        choices=["trace", "debug", "info", "warning", "error"],
        help="how much to log to stderr; 'trace' also prints every kernel call",
    )
    parser.add_argument(
        "--explain",
        action="store_true",
        help="narrate each step pyrun takes with the kernel and the registry, on stderr",
    )


def find_command(argv: list[str]) -> str | None:
    """Return the sub-command named in `argv`, or None when there is none.

    Only the global options are parsed, by argparse itself, so `--root DIR`,
    `--root=DIR` and abbreviations such as `--log debug` are skipped exactly
    as the full parse skips them. Returns None as well when an unknown
    option or `--help` comes before the sub-command, or when a global option
    is invalid: the full parser then lists every command or reports the error.
    """
    if argv and not argv[0].startswith("-"):
        return argv[0]  # no global option first: argparse would find the same, only slower
    parser = CommandParser(prog="pyrun", add_help=False)
    add_global_options(parser)
    parser.add_argument("command", nargs="?")
    parser.add_argument("arguments", nargs=argparse.REMAINDER)
    try:
        args, unknown = parser.parse_known_args(argv)
    except CommandLineError:
        return None
    if unknown:
        return None
    return args.command


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Build the `pyrun` parser for `command`, or with every command listed.

    For a command in COMMANDS, only the modules that define it are imported
    and registered. Otherwise each command gets an empty placeholder parser,
    which is enough for `pyrun --help` and for the error on an unknown
    command, but not for running one.
    """
    parser = CommandParser(
        prog="pyrun",
        description="Run Linux containers from OCI images, without a daemon.",
    )
    add_global_options(parser)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    if command in COMMANDS:
        modules, _ = COMMANDS[command]
        for name in modules:
            module = importlib.import_module(name)
            # A module with register_command builds only the parsers this command needs.
            if hasattr(module, "register_command"):
                module.register_command(subparsers, command)
            else:
                module.register(subparsers)
    else:
        for name, (_, help_text) in COMMANDS.items():
            subparsers.add_parser(name, help=help_text, add_help=False)
    return parser


def parse_command_line(argv: list[str]) -> argparse.Namespace:
    """Parse `argv` into the options of one sub-command.

    Raises CommandLineError for any usage error, unknown flags included.
    """
    command = find_command(argv)
    if command is not None and command not in COMMANDS:
        raise CommandLineError(f"unknown command: {command!r}", "pyrun")
    parser = build_parser(command)
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        first = unknown[0]
        if first.startswith("-") and first != "-":
            message = f"unknown flag: {first.split('=', 1)[0]}"
        else:
            message = f"unexpected argument: {first!r}"
        raise CommandLineError(message, args.command_prog)
    return args


def configure_logging(level: str) -> None:
    from runtime import log

    log.configure(level)
    if level == "trace":
        from runtime import syscalls

        syscalls.start_tracing()


def main(argv: list[str] | None = None) -> int:
    """Run the `pyrun` command line and return its exit status.

    Ctrl-C at any point, even while the command's modules are still being
    imported, ends with "pyrun: interrupted" and status 130. When the
    reader of stdout goes away (`pyrun logs CONTAINER | head`), pyrun stops
    quietly with status 141, as a program that SIGPIPE ends does.
    """
    try:
        return run_command_line(sys.argv[1:] if argv is None else argv)
    except KeyboardInterrupt:
        print("pyrun: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        if not stdout_reader_gone():
            raise
        # The exit flushes stdout once more: let that write go to /dev/null.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + 13  # SIGPIPE


def stdout_reader_gone() -> bool:
    """Tell whether stdout is a pipe whose reading end is closed (poll(2) reports POLLERR)."""
    import select

    poller = select.poll()
    poller.register(sys.stdout.fileno(), select.POLLOUT)
    return any(event & select.POLLERR for _, event in poller.poll(0))


def run_command_line(argv: list[str]) -> int:
    """Parse `argv`, run the sub-command's handler and report a PyrunError."""
    try:
        args = parse_command_line(argv)
    except CommandLineError as err:
        print(f"pyrun: {err}", file=sys.stderr)
        print(f"See '{err.prog} --help'.", file=sys.stderr)
        return err.exit_code
    if not getattr(args, "handler", None):
        build_parser().print_help(sys.stderr)
        return 2
    configure_logging(args.log_level)
    if args.explain:
        from runtime import explain

        explain.enable()
    # The command's modules are loaded: let a held Ctrl-C through (see runtime/console.py).
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    try:
        return args.handler(args) or 0
    except PyrunError as err:
        message = describe_error(err)
        if err.hint:
            message += f" ({err.hint})"
        print(f"pyrun: {message}", file=sys.stderr)
        return err.exit_code


if __name__ == "__main__":
    sys.exit(main())
