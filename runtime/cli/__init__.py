"""The `pyrun` command: global options, one sub-command per module.

Each module in COMMAND_MODULES defines `register(subparsers)`, which adds its
sub-commands and sets `handler` on each. Modules here import only the
standard library at the top: the heavy imports (requests, pyroute2) happen
inside the handlers, so `pyrun ps` and `pyrun --help` stay fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from runtime.errors import PyrunError

DEFAULT_ROOT = "/var/lib/pyrun"

# Add a module here when it defines new sub-commands.
COMMAND_MODULES = [
    "runtime.cli.images",
    "runtime.cli.containers",
    "runtime.cli.lifecycle",
    "runtime.cli.resources",
    "runtime.cli.networks",
    "runtime.cli.teach",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pyrun",
        description="Run Linux containers from OCI images, without a daemon.",
    )
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
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name != name:
                raise
            continue
        module.register(subparsers)
    return parser


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if level == "trace" else getattr(logging, level.upper()))
    if level == "trace":
        from runtime import syscalls

        syscalls.add_listener(syscalls.trace_to_stderr)


def describe_error(err: BaseException) -> str:
    """Join an exception chain into one line: intent first, cause last."""
    parts = []
    current: BaseException | None = err
    while current is not None:
        text = str(current) or type(current).__name__
        if not parts or text not in parts[-1]:
            parts.append(text)
        current = current.__cause__
    return ": ".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return 2
    configure_logging(args.log_level)
    if args.explain:
        from runtime import explain

        explain.enable()
    try:
        return args.handler(args) or 0
    except PyrunError as err:
        message = describe_error(err)
        if err.hint:
            message += f" ({err.hint})"
        print(f"pyrun: {message}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("pyrun: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
