"""The `pyrun` command: global options, then one sub-command.

COMMANDS lists every sub-command with the modules that define it and its
one-line help. The top-level parser lists them all, but imports a command's
modules only when the command line names it, so `pyrun run` does not
build the parsers of all the other commands, and `pyrun --help` imports
none. Each module in COMMAND_MODULES defines `register(subparsers)`, which
adds its sub-commands and sets `handler` on each. Modules here import only
the standard library at the top: the heavy imports (requests, pyroute2)
happen inside the handlers.

A usage error (an unknown flag, a missing argument, an invalid value) exits
with status 125, as Docker does, with the message and the command's help
flag: "pyrun: unknown flag: --bogus", then "See 'pyrun run --help'.".
"""

from __future__ import annotations

import _signal
import os
import sys

from runtime.cli.parser import CommandLineError, CommandParser, Namespace, Subcommands
from runtime.errors import PyrunError, describe_error

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
    "container": (LIFECYCLE + RESOURCES + ("runtime.cli.networks",), "manage containers (pyrun container VERB)"),
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
    "help": (("runtime.cli.system",), "show the help of pyrun or of one of its commands"),
    "info": (("runtime.cli.system",), "show the host's container facilities and pyrun's store"),
}


def add_global_options(parser: CommandParser) -> None:
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
    parser.add_argument("-v", "--version", action="store_true", help="print pyrun's version and exit")


def build_parser() -> CommandParser:
    """Build the `pyrun` parser: the global options, and every command listed but not yet loaded."""
    parser = CommandParser("pyrun", description="Run Linux containers from OCI images, without a daemon.")
    add_global_options(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        commands.add_loader(name, help_text, load_command)
    return parser


def load_command(commands: Subcommands, command: str) -> None:
    """Import the modules that define `command` and register their parsers."""
    for name in COMMANDS[command][0]:
        __import__(name)  # importlib.import_module would load importlib and warnings as well
        module = sys.modules[name]
        # A module with register_command builds only the parsers this command needs.
        if hasattr(module, "register_command"):
            module.register_command(commands, command)
        else:
            module.register(commands)


def parse_command_line(argv: list[str]) -> Namespace:
    """Parse `argv` into the options of one sub-command.

    Raises CommandLineError for any usage error, unknown flags included.
    """
    return build_parser().parse_args(argv)


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
    if getattr(args, "version", False):
        from runtime.cli.system import pyrun_version

        # As `docker --version`, which ignores the rest of the command line.
        print(f"pyrun version {pyrun_version()}")
        return 0
    if not getattr(args, "handler", None):
        # `pyrun` alone, as `docker` alone: the usage on stdout, status 0.
        build_parser().print_help()
        return 0
    configure_logging(args.log_level)
    if args.explain:
        from runtime import explain

        explain.enable()
    # The command's modules are loaded: let a held Ctrl-C through (see runtime/console.py).
    _signal.pthread_sigmask(_signal.SIG_UNBLOCK, {_signal.SIGINT})
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
