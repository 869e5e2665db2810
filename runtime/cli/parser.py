"""pyrun's command-line parser: Docker's flag rules, argparse's way of declaring them.

Commands declare their flags with argparse's vocabulary (`add_argument`,
`add_argument_group`, `add_subparsers`, `set_defaults`), but the parsing
follows Docker's flag library (spf13/pflag) where the two differ:

- a flag that takes a value takes the next argument whatever it is, so
  `--memory -5m` reaches --memory's own check (argparse took "-5m" for a flag);
- a long flag is never abbreviated: `--log` is not `--log-level`;
- a flag with an optional value (`--sig-proxy`) takes one only after "=",
  and so does a switch: `--rm=false`, `-d=true` (Go's boolean spellings);
- `run IMAGE COMMAND...` and `exec CONTAINER COMMAND...` read no flags
  after COMMAND starts, so the container's command keeps its own flags.
  Other commands take flags anywhere.
- everything after "--" is an argument.

Why not argparse itself: it imports re, and re imports enum. With gettext,
that took about 10 ms of every pyrun command here (see docs/benchmarks.md).
This module imports only os and sys.

A usage error raises CommandLineError, which names the command whose help
to read ("pyrun container ps").
"""

from __future__ import annotations

import os
import sys

from runtime.errors import UsageError

# Values with argparse's spelling, so declarations read as they would there.
SUPPRESS = "==SUPPRESS=="  # help=SUPPRESS hides a flag from the help
REMAINDER = "..."          # nargs=REMAINDER: every argument left, flags included
ONE_OR_MORE = "+"
ANY_NUMBER = "*"
OPTIONAL = "?"

ACTIONS = ("store", "store_true", "append", "help", "unsupported")

# The values a switch takes after "=", as Go's strconv.ParseBool reads them.
BOOLEANS = {"1": True, "t": True, "T": True, "true": True, "TRUE": True, "True": True,
            "0": False, "f": False, "F": False, "false": False, "FALSE": False, "False": False}


class CommandLineError(UsageError):
    """A usage error; `prog` is the command it concerns, e.g. "pyrun run"."""

    def __init__(self, message: str, prog: str) -> None:
        super().__init__(message)
        self.prog = prog


class ArgumentTypeError(ValueError):
    """Raised by a `type=` function; its message follows "argument --flag: "."""


class Namespace:
    """The parsed values, one attribute per destination."""

    def __init__(self, **values) -> None:
        self.__dict__.update(values)

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={value!r}" for name, value in sorted(self.__dict__.items()))
        return f"Namespace({fields})"


class Argument:
    """One flag (`names` start with "-") or one positional argument."""

    def __init__(self, names: tuple[str, ...], *, action: str = "store", dest: str | None = None,
                 nargs: str | None = None, default=None, const=None, type=None, choices=None,
                 metavar: str | None = None, help: str | None = None, required: bool = False) -> None:
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}: expected one of {', '.join(ACTIONS)}")
        self.names = names
        self.is_flag = names[0].startswith("-")
        if dest is None:
            long_names = [name for name in names if name.startswith("--")]
            dest = (long_names or list(names))[0].lstrip("-").replace("-", "_")
        self.dest = dest
        self.action = action
        self.nargs = nargs
        self.default = False if action == "store_true" and default is None else default
        self.const = const
        self.type = type
        self.choices = choices
        self.metavar = metavar
        self.help = help
        self.required = required

    @property
    def takes_value(self) -> bool:
        """Tell whether the flag needs a value: "=value", attached to a short flag, or the next argument.

        A flag with nargs="?" takes a value only after "=".
        """
        return self.action in ("store", "append") and self.nargs != OPTIONAL

    def label(self) -> str:
        """Return the name that messages use: "--memory-swappiness", "-t/--time", or the positional's metavar."""
        return "/".join(self.names) if self.is_flag else (self.metavar or self.dest)

    def convert(self, text: str):
        """Return `text` converted by `type` and checked against `choices`."""
        value = text
        if self.type is not None:
            try:
                value = self.type(text)
            except ArgumentTypeError as err:
                raise CommandLineError(f"argument {self.label()}: {err}", "") from None
            except (TypeError, ValueError):
                type_name = getattr(self.type, "__name__", "")
                raise CommandLineError(f"argument {self.label()}: invalid {type_name} value: {text!r}",
                                       "") from None
        if self.choices is not None and value not in self.choices:
            listed = ", ".join(repr(choice) for choice in self.choices)
            raise CommandLineError(f"argument {self.label()}: invalid choice: {value!r} (choose from {listed})",
                                   "")
        return value


class ArgumentGroup:
    """A heading in the help; its flags belong to the parser."""

    def __init__(self, parser: CommandParser, title: str) -> None:
        self.parser = parser
        self.title = title

    def add_argument(self, *names: str, **spec) -> Argument:
        return self.parser.add_argument(*names, group=self.title, **spec)


class Subcommands:
    """The sub-commands of a parser: `pyrun run`, `pyrun container ps`.

    A sub-command can be added lazily with `add_loader`: the loader runs
    only when the command is named, and registers its real parser then.
    """

    def __init__(self, parent: CommandParser, dest: str, metavar: str) -> None:
        self.parent = parent
        self.dest = dest
        self.metavar = metavar
        self.choices: dict[str, CommandParser] = {}
        self.help: dict[str, str] = {}  # shown name -> help line, in order
        self.loaders: dict[str, object] = {}

    def add_parser(self, name: str, *, help: str | None = None, description: str | None = None,
                   add_help: bool = True, aliases: list[str] | tuple[str, ...] = ()) -> CommandParser:
        parser = CommandParser(f"{self.parent.prog} {name}", description=description or help, add_help=add_help)
        for each in (name, *aliases):
            self.choices[each] = parser
            self.loaders.pop(each, None)
        if help is not None and help != SUPPRESS:
            self.help[name] = help
        return parser

    def add_loader(self, name: str, help: str, loader) -> None:
        """List `name` with its help line; `loader(self, name)` registers its parser when it is named."""
        self.loaders[name] = loader
        self.help[name] = help

    def find(self, name: str) -> CommandParser | None:
        if name not in self.choices and name in self.loaders:
            self.loaders.pop(name)(self, name)
        return self.choices.get(name)


class CommandParser:
    """The flags and arguments of one command, and its sub-commands if it has any."""

    def __init__(self, prog: str, *, description: str | None = None, add_help: bool = True) -> None:
        self.prog = prog
        self.description = description
        self.arguments: list[Argument] = []
        self.groups: dict[str, list[Argument]] = {"options": []}
        self.flags: dict[str, Argument] = {}
        self.defaults: dict[str, object] = {"command_prog": prog}
        self.subcommands: Subcommands | None = None
        if add_help:
            self.add_argument("-h", "--help", action="help", help="show this help message and exit")

    # -- declaring ------------------------------------------------------------

    def add_argument(self, *names: str, group: str = "options", **spec) -> Argument:
        argument = Argument(names, **spec)
        self.arguments.append(argument)
        if argument.is_flag:
            for name in names:
                if name in self.flags:
                    raise ValueError(f"{self.prog}: flag {name} is declared twice")
                self.flags[name] = argument
            self.groups.setdefault(group, []).append(argument)
        return argument

    def add_argument_group(self, title: str) -> ArgumentGroup:
        self.groups.setdefault(title, [])
        return ArgumentGroup(self, title)

    def add_subparsers(self, *, dest: str, metavar: str = "COMMAND") -> Subcommands:
        self.subcommands = Subcommands(self, dest, metavar)
        return self.subcommands

    def set_defaults(self, **values) -> None:
        self.defaults.update(values)

    # -- parsing --------------------------------------------------------------

    def parse_args(self, argv: list[str], namespace: Namespace | None = None) -> Namespace:
        """Parse `argv` into `namespace` (a new one by default); raise CommandLineError on a usage error."""
        values = Namespace() if namespace is None else namespace
        for argument in self.arguments:
            if argument.action != "help":
                default = argument.default
                setattr(values, argument.dest, list(default) if isinstance(default, list) else default)
        if self.subcommands is not None:
            setattr(values, self.subcommands.dest, None)
        for name, value in self.defaults.items():
            setattr(values, name, value)
        try:
            self._parse(list(argv), values)
        except CommandLineError as err:
            if not err.prog:
                err.prog = self.prog
            raise
        return values

    def _parse(self, args: list[str], values: Namespace) -> None:
        positionals = [argument for argument in self.arguments if not argument.is_flag]
        # This parser's flags end where a REMAINDER starts (the container's
        # command) or after the sub-command's name (its flags are its own).
        flags_end = next((index for index, argument in enumerate(positionals) if argument.nargs == REMAINDER),
                         None)
        if self.subcommands is not None:
            flags_end = len(positionals) + 1
        words: list[str] = []
        rest: list[str] = []
        while args:
            if flags_end is not None and len(words) >= flags_end:
                rest = args
                break
            arg = args.pop(0)
            if arg == "--":
                words += args
                break
            if arg.startswith("-") and arg != "-":
                self._parse_flag(arg, args, values)
            else:
                words.append(arg)
        if self.subcommands is not None:
            self._run_subcommand(words, rest, values, positionals)
            return
        self._assign(positionals, words + rest, values)

    def _parse_flag(self, arg: str, args: list[str], values: Namespace) -> None:
        """Apply one "--name[=value]" or one cluster of short flags ("-it", "-p8080:80", "-e=A")."""
        if arg.startswith("--"):
            name, has_value, value = arg.partition("=")
            argument = self.flags.get(name)
            if argument is None:
                raise CommandLineError(f"unknown flag: {name}", self.prog)
            self._apply(argument, name, value if has_value else None, args, values)
            return
        for position in range(1, len(arg)):
            name = "-" + arg[position]
            argument = self.flags.get(name)
            if argument is None:
                raise CommandLineError(f"unknown flag: {name}" + (f" in {arg}" if len(arg) > 2 else ""), self.prog)
            attached = arg[position + 1:]
            if argument.takes_value or attached.startswith("="):
                if attached.startswith("="):
                    attached = attached[1:]
                elif not attached:
                    attached = None
                self._apply(argument, name, attached, args, values)
                return
            self._apply(argument, name, None, args, values)

    def _apply(self, argument: Argument, name: str, value: str | None, args: list[str], values: Namespace) -> None:
        if argument.action == "help":
            self.print_help()
            raise SystemExit(0)
        if argument.action == "unsupported":
            raise CommandLineError(f"{name} is not supported by pyrun", self.prog)
        if argument.action == "store_true":
            if value is not None and value not in BOOLEANS:
                raise CommandLineError(f"invalid value {value!r} for {name}: expected true or false", self.prog)
            setattr(values, argument.dest, True if value is None else BOOLEANS[value])
            return
        if value is None and argument.nargs == OPTIONAL:
            setattr(values, argument.dest, argument.const)
            return
        if value is None:
            if not args:
                raise CommandLineError(f"flag needs an argument: {name}", self.prog)
            value = args.pop(0)
        converted = argument.convert(value)
        if argument.action == "append":
            getattr(values, argument.dest).append(converted)
        else:
            setattr(values, argument.dest, converted)

    def _assign(self, positionals: list[Argument], words: list[str], values: Namespace) -> None:
        """Assign the positional words in order: one each, "?" one if any is left, "+", "*" and REMAINDER the rest."""
        missing = []
        for argument in positionals:
            if argument.nargs is None:
                if not words:
                    missing.append(argument.label())
                    continue
                setattr(values, argument.dest, argument.convert(words.pop(0)))
            elif argument.nargs == OPTIONAL:
                if words:
                    setattr(values, argument.dest, argument.convert(words.pop(0)))
            else:
                if argument.nargs == ONE_OR_MORE and not words:
                    missing.append(argument.label())
                    continue
                taken, words = words, []
                if argument.nargs != REMAINDER:
                    taken = [argument.convert(word) for word in taken]
                setattr(values, argument.dest, taken)
        if missing:
            raise CommandLineError(f"the following arguments are required: {', '.join(missing)}", self.prog)
        if words:
            raise CommandLineError(f"unexpected argument: {words[0]!r}", self.prog)

    def _run_subcommand(self, words: list[str], rest: list[str], values: Namespace,
                        positionals: list[Argument]) -> None:
        self._assign(positionals, words[:len(positionals)], values)
        words = words[len(positionals):]
        if not words:
            return  # no sub-command: the parser's own handler (its help) runs
        name = words[0]
        parser = self.subcommands.find(name)
        if parser is None:
            raise CommandLineError(f"unknown command: {name!r}", self.prog)
        setattr(values, self.subcommands.dest, name)
        parser.parse_args(words[1:] + rest, values)

    # -- help -----------------------------------------------------------------

    def format_help(self) -> str:
        """Return the help: usage, description, then the arguments, sub-commands and flags by group."""
        width = max(terminal_columns() - 2, 40)
        positionals = [argument for argument in self.arguments if not argument.is_flag]
        usage = [f"usage: {self.prog}"]
        if any(argument.help != SUPPRESS for argument in self.flags.values()):
            usage.append("[OPTIONS]")
        usage += [usage_word(argument) for argument in positionals]
        if self.subcommands is not None:
            usage.append(f"{self.subcommands.metavar} ...")
        lines = [" ".join(usage), ""]
        if self.description:
            lines += wrap(self.description, width, "") + [""]
        if positionals:
            lines.append("arguments:")
            for argument in positionals:
                name = usage_word(argument)
                if argument.nargs == OPTIONAL:
                    name = name[1:-1]  # "[SERVER]" is listed as SERVER; "CONTAINER [CONTAINER ...]" keeps its brackets
                lines += help_entry(name, argument.help, width)
            lines.append("")
        if self.subcommands is not None and self.subcommands.help:
            lines.append("commands:")
            for name, help_text in self.subcommands.help.items():
                lines += help_entry(name, help_text, width, indent="    ")
            lines.append("")
        for title, arguments in self.groups.items():
            shown = [argument for argument in arguments if argument.help != SUPPRESS]
            if shown:
                lines.append(f"{title}:")
                for argument in shown:
                    lines += help_entry(flag_words(argument), argument.help, width)
                lines.append("")
        return "\n".join(lines)

    def print_help(self, file=None) -> None:
        (file or sys.stdout).write(self.format_help())


def usage_word(argument: Argument) -> str:
    """Return how a positional appears in the usage line: IMAGE, [SERVER], CONTAINER [CONTAINER ...]."""
    name = argument.label()
    if argument.nargs == OPTIONAL:
        return f"[{name}]"
    if argument.nargs == ONE_OR_MORE:
        return f"{name} [{name} ...]"
    if argument.nargs in (ANY_NUMBER, REMAINDER):
        return f"[{name} ...]"
    return name


def flag_words(argument: Argument) -> str:
    """Return a flag's names with its value's metavar: "-e, --env KEY[=VALUE]"."""
    names = ", ".join(argument.names)
    value = argument.metavar or argument.dest.upper()
    if argument.metavar is None and argument.choices is not None:
        value = "{" + ",".join(str(choice) for choice in argument.choices) + "}"
    if argument.takes_value:
        return f"{names} {value}"
    if argument.nargs == OPTIONAL:
        return f"{names}[={value}]"
    return names


HELP_COLUMN = 24


def help_entry(name: str, help_text: str | None, width: int, indent: str = "  ") -> list[str]:
    """Lay out one entry of the help: the name, then its help text wrapped at column 24."""
    head = indent + name
    if not help_text:
        return [head]
    text = wrap(help_text, width - HELP_COLUMN, " " * HELP_COLUMN)
    if len(head) + 2 <= HELP_COLUMN:
        return [head.ljust(HELP_COLUMN) + text[0].lstrip()] + text[1:]
    return [head] + text


def wrap(text: str, width: int, indent: str) -> list[str]:
    """Break `text` into lines of at most `width` characters (longer words stand alone), each after `indent`."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(indent + line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return lines + [indent + line]


def terminal_columns() -> int:
    """Return $COLUMNS, else the width of the terminal on stdout, else 80."""
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
