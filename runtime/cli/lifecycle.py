"""Lifecycle commands: create, start, ps, stop, kill, restart, rm, wait, attach,
inspect, rename, logs, exec and `container prune`, with Docker's flags and output.

Each command is also spelled `pyrun container <verb>` (`container ls` is
`ps`). The work happens in runtime.lifecycle; this module parses, formats
and prints.
"""

from __future__ import annotations

import os
import sys
import time

from runtime.cli.parser import BOOLEANS, ArgumentTypeError, CommandParser, Namespace, REMAINDER, Subcommands

# Docker's `ps` columns and the --format field behind each.
PS_COLUMNS = [
    ("CONTAINER ID", "ID"),
    ("IMAGE", "Image"),
    ("COMMAND", "Command"),
    ("CREATED", "RunningFor"),
    ("STATUS", "Status"),
    ("PORTS", "Ports"),
    ("NAMES", "Names"),
]
SIZE_COLUMN = ("SIZE", "Size")
# Every field of a ps row (ps_row), for --format.
PS_FIELDS = ["ID", "Image", "Command", "CreatedAt", "RunningFor", "Status", "Ports", "Names", "State", "Size"]
PS_FILTERS = ("id", "name", "status", "ancestor", "exited")
DOCKER_STATUSES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")
SHORT_ID = 12
COMMAND_WIDTH = 20


def register(subparsers: Subcommands) -> None:
    """Add every lifecycle command, and the `container` group with the same verbs."""
    container = subparsers.add_parser("container", help="manage containers (pyrun container VERB)")
    verbs = container.add_subparsers(dest="container_command", metavar="VERB")
    container.set_defaults(handler=lambda args: container.print_help() or 2)

    for group in (subparsers, verbs):
        for add_parser in COMMAND_PARSERS.values():
            add_parser(group)
    add_ps(verbs, "ls", aliases=["list"])
    prune = verbs.add_parser("prune", help="remove all stopped containers")
    prune.add_argument("-f", "--force", action="store_true", help="do not ask for confirmation")
    prune.set_defaults(handler=prune_command)

    from runtime.cli import containers

    containers.register(verbs)


def register_command(subparsers: Subcommands, command: str) -> None:
    """Add only the parser `command` needs, or everything for `container`.

    All of them (`create` and `container run` with some 60 flags each,
    twice over for the `container` group) took about 20 ms per command,
    half of a `pyrun ps` (measured with Python 3.11).
    """
    if command in COMMAND_PARSERS:
        COMMAND_PARSERS[command](subparsers)
    else:
        register(subparsers)


def add_containers_argument(parser: CommandParser) -> None:
    parser.add_argument("containers", nargs="+", metavar="CONTAINER", help="container name, ID or unique ID prefix")


def add_create(subparsers) -> None:
    from runtime.cli.containers import add_container_flags

    parser = subparsers.add_parser("create", help="create a container without starting it", add_help=False)
    parser.add_argument("--help", action="help", help="show this help message and exit")
    add_container_flags(parser)
    parser.add_argument("--rm", action="store_true", help="remove the container when it exits")
    parser.add_argument("image", metavar="IMAGE")
    parser.add_argument("command", nargs=REMAINDER, metavar="COMMAND", help="command and arguments")
    parser.set_defaults(handler=create_command, detach=True)


def add_start(subparsers) -> None:
    parser = subparsers.add_parser("start", help="start one or more stopped containers")
    parser.add_argument("-a", "--attach", action="store_true", help="print the container's output and wait for it")
    parser.add_argument("-i", "--interactive", action="store_true",
                        help="attach, and pass stdin on to a container created with -i")
    add_sig_proxy_flag(parser)
    add_containers_argument(parser)
    parser.set_defaults(handler=start_command)


def add_ps(subparsers, name: str = "ps", aliases: list[str] | tuple[str, ...] = ()) -> None:
    parser = subparsers.add_parser(name, help="list containers", aliases=aliases)
    parser.add_argument("-a", "--all", action="store_true", help="show all containers (default: running only)")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the IDs")
    parser.add_argument("--no-trunc", action="store_true", help="do not shorten IDs and commands")
    parser.add_argument("-f", "--filter", action="append", default=[], metavar="KEY=VALUE",
                        help=f"keep containers that match ({', '.join(PS_FILTERS)})")
    parser.add_argument("--format", default="", help="Go-template-like format, e.g. '{{.ID}} {{.Names}}', or json")
    parser.add_argument("-n", "--last", type=int, default=-1, metavar="N",
                        help="show the N containers created last, in any state")
    parser.add_argument("-l", "--latest", action="store_true", help="show the container created last, in any state")
    parser.add_argument("-s", "--size", action="store_true",
                        help="add a SIZE column: the container's own files, and with its image (virtual)")
    parser.set_defaults(handler=ps_command)


def add_stop(subparsers) -> None:
    parser = subparsers.add_parser("stop", help="stop running containers with the stop signal, then SIGKILL")
    parser.add_argument("-t", "--time", "--timeout", dest="timeout", type=int, default=None,
                        help="seconds to wait before SIGKILL (default 10)")
    parser.add_argument("-s", "--signal", default=None, help="signal to send instead of the image's StopSignal")
    add_containers_argument(parser)
    parser.set_defaults(handler=stop_command)


def add_kill(subparsers) -> None:
    parser = subparsers.add_parser("kill", help="send a signal to running containers")
    parser.add_argument("-s", "--signal", default="KILL", help="signal to send (default KILL)")
    add_containers_argument(parser)
    parser.set_defaults(handler=kill_command)


def add_restart(subparsers) -> None:
    parser = subparsers.add_parser("restart", help="stop and start containers again")
    parser.add_argument("-t", "--time", "--timeout", dest="timeout", type=int, default=None,
                        help="seconds to wait before SIGKILL (default 10)")
    add_containers_argument(parser)
    parser.set_defaults(handler=restart_command)


def add_rm(subparsers) -> None:
    parser = subparsers.add_parser("rm", help="remove containers")
    parser.add_argument("-f", "--force", action="store_true", help="kill and remove a running container")
    parser.add_argument("-v", "--volumes", action="store_true", help="accepted for Docker's sake: pyrun has no volumes")
    add_containers_argument(parser)
    parser.set_defaults(handler=rm_command)


def add_wait(subparsers) -> None:
    parser = subparsers.add_parser("wait", help="wait for containers to stop and print their exit codes")
    add_containers_argument(parser)
    parser.set_defaults(handler=wait_command)


def add_attach(subparsers) -> None:
    parser = subparsers.add_parser("attach", help="connect to a running container's output, and its stdin with -i")
    parser.add_argument("--no-stdin", action="store_true", help="do not pass stdin on to the container")
    add_sig_proxy_flag(parser)
    parser.add_argument("container", metavar="CONTAINER")
    parser.set_defaults(handler=attach_command)


def add_sig_proxy_flag(parser: CommandParser) -> None:
    parser.add_argument(
        "--sig-proxy", type=parse_bool, nargs="?", const=True, default=True, metavar="true|false",
        help="pass the signals pyrun receives (Ctrl-C's SIGINT, SIGTERM, ...) on to a container without -t "
             "(default true)",
    )


def parse_bool(text: str) -> bool:
    """Parse a Docker boolean flag value, as in --sig-proxy=false."""
    if text not in BOOLEANS:  # Go's spellings, as for --rm=false
        raise ArgumentTypeError(f"invalid boolean {text!r}: expected true or false")
    return BOOLEANS[text]


def add_inspect(subparsers) -> None:
    parser = subparsers.add_parser("inspect", help="show containers' details as JSON")
    parser.add_argument("-f", "--format", default="", help="print one field, e.g. '{{.State.Status}}'")
    parser.add_argument("--type", choices=["container", "image"], default=None,
                        help="inspect only this kind of object (default: a container, else an image)")
    add_containers_argument(parser)
    parser.set_defaults(handler=inspect_command)


def add_rename(subparsers) -> None:
    parser = subparsers.add_parser("rename", help="rename a container")
    parser.add_argument("container", metavar="CONTAINER")
    parser.add_argument("new_name", metavar="NEW_NAME")
    parser.set_defaults(handler=rename_command)


def add_logs(subparsers) -> None:
    parser = subparsers.add_parser("logs", help="print a container's output")
    parser.add_argument("-f", "--follow", action="store_true", help="keep printing new output until the container exits")
    parser.add_argument("-n", "--tail", default="all", help="print only the last N lines (default all)")
    parser.add_argument("--since", default=None, help="only output since a time (RFC 3339, Unix seconds, or 10m)")
    parser.add_argument("-t", "--timestamps", action="store_true", help="prefix each line with its time")
    parser.add_argument("container", metavar="CONTAINER")
    parser.set_defaults(handler=logs_command)


def add_exec(subparsers) -> None:
    parser = subparsers.add_parser("exec", help="run a command in a running container")
    parser.add_argument("-i", "--interactive", action="store_true", help="keep stdin open")
    parser.add_argument("-t", "--tty", action="store_true", help="allocate a terminal (pty)")
    parser.add_argument("-d", "--detach", action="store_true", help="run the command in the background")
    parser.add_argument("-u", "--user", default=None, metavar="USER[:GROUP]", help="user name or uid")
    parser.add_argument("-e", "--env", action="append", default=[], metavar="KEY[=VALUE]",
                        help="set an environment variable")
    parser.add_argument("-w", "--workdir", default="", metavar="DIR", help="working directory inside the container")
    parser.add_argument("--privileged", action="store_true", help="not supported: rejected")
    parser.add_argument("container", metavar="CONTAINER")
    parser.add_argument("command", nargs=REMAINDER, metavar="COMMAND")
    parser.set_defaults(handler=exec_command)


# The function that adds each command's parser, in the order `pyrun container --help` lists them.
COMMAND_PARSERS = {
    "create": add_create,
    "start": add_start,
    "ps": add_ps,
    "stop": add_stop,
    "kill": add_kill,
    "restart": add_restart,
    "rm": add_rm,
    "wait": add_wait,
    "attach": add_attach,
    "inspect": add_inspect,
    "rename": add_rename,
    "logs": add_logs,
    "exec": add_exec,
}


# -- Handlers ------------------------------------------------------------------


# Containers that stop, kill, wait and inspect handle at the same time:
# each mostly waits for a process to exit or for a monitor.
PARALLEL_CONTAINERS = 16
# rm mostly works rather than waits: it deletes files, and its threads
# contend for the GIL and the containers directory. Removing 50 stopped
# containers whose monitors had exited took 99 to 107 ms with 4 threads,
# 150 to 160 ms with 8 and 173 to 200 ms with 16 (three runs each, timed
# inside one process, on a shared 2-CPU VM).
REMOVE_THREADS = 4


def for_each(args: Namespace, action, *, parallel: bool = True, threads: int = PARALLEL_CONTAINERS,
             harmless: tuple[type[BaseException], ...] = ()) -> int:
    """Run `action(reference)` for each container; print errors and go on, as Docker does.

    `action` prints nothing: it returns the line to print, and the lines
    come out in the order of the arguments. With `parallel`, up to
    `threads` run at once, so an `action` that forks (starts a container)
    must pass parallel=False. An error of a `harmless` type is printed
    as a warning and leaves the exit status 0.
    """
    from runtime.errors import describe_error
    from runtime.errors import PyrunError

    def attempt(reference: str) -> tuple[str | None, str | None, bool]:
        try:
            return action(reference), None, False
        except PyrunError as err:
            message = f"pyrun: {describe_error(err)}" + (f" ({err.hint})" if err.hint else "")
            return None, message, isinstance(err, harmless)

    if not parallel or len(args.containers) == 1:
        outcomes = [attempt(reference) for reference in args.containers]
    else:
        outcomes = map_in_threads(attempt, args.containers, threads)
    status = 0
    for line, error, is_harmless in outcomes:
        if error is not None:
            print(error, file=sys.stderr)
            if not is_harmless:
                status = 1
        elif line is not None:
            print(line)
    return status


def map_in_threads(function, items: list, max_threads: int) -> list:
    """Return [function(item) for item in items], computed by up to `max_threads` threads.

    After an exception from `function`, items not yet started are skipped,
    and the exception is raised here once every thread has finished.
    concurrent.futures would do the same, but its import costs
    about 2.5 ms and loads logging (measured with Python 3.11).
    """
    import threading

    results: list = [None] * len(items)
    failures: list[BaseException] = []
    indexes = iter(range(len(items)))
    lock = threading.Lock()

    def work() -> None:
        while not failures:
            with lock:
                index = next(indexes, None)
            if index is None:
                return
            try:
                results[index] = function(items[index])
            except BaseException as err:  # noqa: BLE001 - raised again in the calling thread
                failures.append(err)

    threads = [threading.Thread(target=work) for _ in range(min(max_threads, len(items)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    return results


def create_command(args: Namespace) -> int:
    from runtime import container
    from runtime.cli import containers

    options, log_config, mounts, resources, image, plan = containers.container_settings(args)
    details = containers.record_details(args, image, log_config)
    # Docker's StdinOnce: an attach to a container created with -i closes
    # its stdin when the attach's own stdin ends (`run -d -i` does not).
    details["stdin_once"] = bool(args.interactive)
    created = container.create(
        args.root, image, options, name=args.name, user_mounts=mounts, network_plan=plan,
        resources=resources, cgroup_parent=args.cgroup_parent, ephemeral=args.rm, details=details,
    )
    print(created.id)
    return 0


def start_command(args: Namespace) -> int:
    from runtime import lifecycle

    if args.attach or args.interactive:
        from runtime import attach
        from runtime.errors import UsageError

        if len(args.containers) > 1:
            raise UsageError("pyrun start -a and -i take one container", hint="start the others without -a and -i")
        container_id = lifecycle.find(args.root, args.containers[0])
        return attach.session(args.root, container_id, stdin=args.interactive, sig_proxy=args.sig_proxy, start=True)

    def start_one(reference: str) -> str:
        lifecycle.start(args.root, lifecycle.find(args.root, reference))
        return reference

    return for_each(args, start_one, parallel=False)


def stop_command(args: Namespace) -> int:
    from runtime import lifecycle

    sig = lifecycle.parse_signal(args.signal) if args.signal else None

    def stop_one(reference: str) -> str:
        lifecycle.stop(args.root, reference, args.timeout, sig)
        return reference

    return for_each(args, stop_one)


def kill_command(args: Namespace) -> int:
    from runtime import lifecycle

    sig = lifecycle.parse_signal(args.signal)

    def kill_one(reference: str) -> str:
        lifecycle.kill(args.root, reference, sig)
        return reference

    return for_each(args, kill_one)


def restart_command(args: Namespace) -> int:
    from runtime import lifecycle

    def restart_one(reference: str) -> str:
        container_id = lifecycle.stop(args.root, reference, args.timeout)
        lifecycle.start(args.root, container_id)
        return reference

    return for_each(args, restart_one, parallel=False)


def rm_command(args: Namespace) -> int:
    from runtime import lifecycle
    from runtime.errors import ContainerNotFoundError

    def remove_one(reference: str) -> str:
        lifecycle.remove(args.root, reference, force=args.force)
        return reference

    # As `docker rm -f` since Docker 20.10: a missing container is a warning
    # and status 0, as with `rm -f` of a missing file.
    harmless = (ContainerNotFoundError,) if args.force else ()
    return for_each(args, remove_one, threads=REMOVE_THREADS, harmless=harmless)


def wait_command(args: Namespace) -> int:
    from runtime import lifecycle

    def wait_one(reference: str) -> str:
        code = lifecycle.wait(args.root, reference)
        return str(-1 if code is None else code)

    return for_each(args, wait_one)


def rename_command(args: Namespace) -> int:
    from runtime import lifecycle

    lifecycle.rename(args.root, args.container, args.new_name)
    return 0


def prune_command(args: Namespace) -> int:
    from runtime import lifecycle
    from runtime.cli.images import ask

    if not args.force:
        # Like Docker: anything but "y" or "yes", an empty stdin included, removes nothing.
        answer = ask("WARNING! This will remove all stopped containers.\n"
                     "Are you sure you want to continue? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            return 0
    from runtime.cli.images import human_size

    removed, freed = lifecycle.prune(args.root)
    if removed:
        print("Deleted Containers:")
        for container_id in removed:
            print(container_id)
        print()
    print(f"Total reclaimed space: {human_size(freed)}")
    return 0


def attach_command(args: Namespace) -> int:
    """Connect to the container's new output and, unless --no-stdin, its stdin; return its exit code."""
    from runtime import attach, lifecycle, logs, state
    from runtime.errors import PyrunError

    record = lifecycle.load(args.root, args.container)
    if record.get("status") != state.STATUS_RUNNING:
        raise PyrunError(f"cannot attach to container {args.container!r}: it is not running",
                         hint=f"start it with pyrun start -a {args.container}")
    try:
        return attach.session(args.root, record["id"], stdin=not args.no_stdin, sig_proxy=args.sig_proxy)
    except attach.NoAttachPoint:
        # A monitor started by an older pyrun has no attach.ctl: show its log instead, output only.
        follower = logs.Follower(logs.log_path(state.container_dir(args.root, record["id"]), record["id"]))
        follower.skip_to_end()
        return follow_until_exit(args.root, record["id"], follower, timestamps=False)


def follow_until_exit(root: str, container_id: str, follower, *, timestamps: bool) -> int:
    """Print entries as they come until the container stops; return its exit code."""
    from runtime import lifecycle, state
    from runtime.errors import NotFoundError

    while True:
        print_entries(follower.read_new(), timestamps)
        try:
            record = lifecycle.reconcile(root, state.load_record(root, container_id))
        except NotFoundError:
            return 0  # removed by --rm after it exited
        if record.get("status") != state.STATUS_RUNNING:
            print_entries(follower.read_new(), timestamps)
            code = record.get("exit_code")
            return 0 if code is None else code
        time.sleep(0.1)


def print_entries(entries: list[dict], timestamps: bool) -> None:
    from runtime.logs import format_entry

    for entry in entries:
        stream = sys.stderr if entry.get("stream") == "stderr" else sys.stdout
        stream.write(format_entry(entry, timestamps))
        stream.flush()


def logs_command(args: Namespace) -> int:
    from runtime import lifecycle, logs, state
    from runtime.errors import UsageError

    record = lifecycle.load(args.root, args.container)
    path = logs.log_path(state.container_dir(args.root, record["id"]), record["id"])
    if args.tail != "all" and not args.tail.isdigit():
        raise UsageError(f"invalid --tail {args.tail!r}: expected a number of lines or 'all'")
    try:
        since = logs.parse_since(args.since) if args.since else None
    except ValueError as err:
        raise UsageError(f"invalid --since {args.since!r}: expected RFC 3339, Unix seconds or a duration like 10m") from err

    follower = logs.Follower(path)
    if args.follow:
        # One reader gives the history and what follows, so no line is shown twice or skipped.
        follower.start_at_oldest()
        entries = follower.read_new()
    else:
        entries = logs.read_entries(path)
    tail = None if args.tail == "all" else int(args.tail)
    print_entries(logs.select_entries(entries, tail=tail, since_ns=since), args.timestamps)
    if args.follow and record.get("status") == state.STATUS_RUNNING:
        follow_until_exit(args.root, record["id"], follower, timestamps=args.timestamps)
    return 0


def exec_command(args: Namespace) -> int:
    from runtime import exec as container_exec
    from runtime import lifecycle
    from runtime.errors import UsageError

    if args.privileged:
        raise UsageError("pyrun exec --privileged is not supported")
    if not args.command:
        raise UsageError("pyrun exec needs a command to run", hint="pyrun exec CONTAINER COMMAND [ARG...]")
    if not args.detach:
        from runtime.cli.containers import check_input_is_terminal

        check_input_is_terminal(args)
    record = lifecycle.load(args.root, args.container)
    return container_exec.exec_in(
        args.root, record, list(args.command), user=args.user, env=list(args.env), workdir=args.workdir,
        tty=args.tty, interactive=args.interactive, detach=args.detach,
    )


# -- ps ------------------------------------------------------------------------


def ps_command(args: Namespace) -> int:
    from runtime import lifecycle

    template = format_template(args.format, PS_FIELDS)
    if template is not None:
        from runtime.cli import templates
    records = lifecycle.list_containers(args.root)
    records.sort(key=lambda record: record.get("created", ""), reverse=True)
    filters = parse_filters(args.filter)
    # Docker's --last and --latest count containers in any state; 0 means no limit.
    last = 1 if args.latest else args.last
    show_all = args.all or last >= 0
    selected = [record for record in records if (show_all or is_running(record)) and matches(record, filters)]
    if last > 0:
        selected = selected[:last]
    now = time.time()
    rows = [ps_row(record, now, no_trunc=args.no_trunc) for record in selected]
    if args.size or (template is not None and "Size" in templates.table_fields(template)):
        add_sizes(args.root, selected, rows)  # a template that shows .Size turns sizes on, as in Docker

    if args.quiet:
        for row in rows:
            print(row["ID"])
        return 0
    if template is None:
        columns = PS_COLUMNS + ([SIZE_COLUMN] if args.size else [])
        table = [[header for header, _ in columns]]
        table += [[str(row.get(field, "")) for _, field in columns] for row in rows]
    elif template.startswith("table"):
        table = templates.table(template, rows, {field: header for header, field in PS_COLUMNS + [SIZE_COLUMN]})
    else:
        for row in rows:
            print(templates.render(template, row))
        return 0
    print_table(table)
    return 0


def format_template(flag: str, fields: list[str]) -> str | None:
    """Return the --format template, checked against `fields`, or None for the command's own table.

    runtime.cli.templates is imported only for a template of one's own: it
    loads re and json, which a plain `pyrun ps` has no other use for.
    """
    if flag.strip() in ("", "table"):
        return None
    from runtime.cli import templates

    template = templates.from_flag(flag)
    templates.check(template, fields)
    return template


def add_sizes(root: str, records: list[dict], rows: list[dict]) -> None:
    """Set each row's Size as Docker's `ps -s` shows it: "2.5kB (virtual 4.27MB)".

    The container's own files are those in its overlay upper directory; the
    virtual size adds the image's unpacked size.
    """
    from runtime import state
    from runtime.cli.images import human_size
    from runtime.store import ImageStore
    from runtime.store.layout import tree_size

    store = ImageStore(root)
    for record, row in zip(records, rows):
        own = tree_size(os.path.join(state.container_dir(root, record["id"]), "upper"))
        image = store.lookup(record.get("image_id") or record.get("image") or "")
        virtual = own + (image.size if image else 0)
        row["Size"] = f"{human_size(own)} (virtual {human_size(virtual)})"


def print_table(table: list[list[str]]) -> None:
    """Print columns padded to the widest cell plus three spaces, as Docker's tabwriter does."""
    columns = max(len(row) for row in table)
    widths = [max((len(row[column]) for row in table if column < len(row)), default=0) for column in range(columns)]
    for row in table:
        cells = [cell.ljust(width + 3) for cell, width in zip(row[:-1], widths)] + row[-1:]
        print("".join(cells).rstrip())




def is_running(record: dict) -> bool:
    return record.get("status") == "running"


def parse_filters(values: list[str]) -> list[tuple[str, str]]:
    from runtime.errors import UsageError

    filters = []
    for value in values:
        key, separator, expected = value.partition("=")
        if not separator or key not in PS_FILTERS:
            raise UsageError(f"invalid filter {value!r}", hint=f"use KEY=VALUE with KEY one of {', '.join(PS_FILTERS)}")
        if key == "status" and expected not in DOCKER_STATUSES:
            raise UsageError(f"invalid filter {value!r}: status must be one of {', '.join(DOCKER_STATUSES)}")
        filters.append((key, expected))
    return filters


def matches(record: dict, filters: list[tuple[str, str]]) -> bool:
    """Docker's rule: values of one key are alternatives, different keys must all match."""
    by_key: dict[str, list[str]] = {}
    for key, expected in filters:
        by_key.setdefault(key, []).append(expected)
    for key, values in by_key.items():
        if key == "id":
            ok = any(record["id"].startswith(value) for value in values)
        elif key == "name":
            import re

            ok = any(re.search(value, record.get("name", "")) for value in values)
        elif key == "status":
            ok = record.get("status") in values
        elif key == "ancestor":
            ok = any(value in (record.get("image_name"), record.get("image"), record.get("image_id")) for value in values)
        else:  # exited
            ok = record.get("status") == "exited" and str(record.get("exit_code")) in values
        if not ok:
            return False
    return True


def ps_row(record: dict, now: float, *, no_trunc: bool = False) -> dict:
    """Return one container as Docker's `ps` fields (ID, Image, Command, RunningFor, Status, Ports, Names, ...)."""
    command = " ".join([record.get("path", "")] + list(record.get("args") or [])).strip()
    if not no_trunc and len(command) > COMMAND_WIDTH:
        command = command[: COMMAND_WIDTH - 1] + "…"
    created = seconds_since(record.get("created"), now)
    ports = (record.get("network_settings") or {}).get("Ports") or {}
    ports_text = ""
    if ports and is_running(record):
        # Imported only here: runtime.network loads socket and more, which
        # a listing of containers without published ports does not need.
        from runtime.network import format_ports

        ports_text = format_ports(ports)
    return {
        "ID": record["id"] if no_trunc else record["id"][:SHORT_ID],
        "Image": record.get("image_name") or record.get("image", ""),
        "Command": quote(command),
        "CreatedAt": record.get("created", ""),
        "RunningFor": f"{human_duration(created)} ago",
        "Status": status_text(record, now),
        "Ports": ports_text,
        "Names": record.get("name", ""),
        "State": record.get("status", ""),
    }


def quote(text: str) -> str:
    """Quote and escape `text` as json.dumps(text, ensure_ascii=False) does, for Docker's strconv.Quote.

    The json package's C function, called directly: importing json loads
    re as well, which `ps` has no other use for.
    """
    from _json import encode_basestring

    return encode_basestring(text)


def status_text(record: dict, now: float) -> str:
    """Docker's STATUS column: "Up 3 seconds", "Exited (0) 2 minutes ago", "Created"."""
    status = record.get("status")
    if status == "running":
        return "Up " + human_duration(seconds_since(record.get("started_at"), now))
    if status == "exited":
        code = record.get("exit_code")
        code_text = "unknown" if code is None else code
        return f"Exited ({code_text}) {human_duration(seconds_since(record.get('finished_at'), now))} ago"
    return "Created"


def seconds_since(rfc3339: str | None, now: float) -> float:
    from runtime.logs import parse_timestamp

    if not rfc3339:
        return 0.0
    return max(0.0, now - parse_timestamp(rfc3339) / 1e9)


def human_duration(seconds: float) -> str:
    """go-units' HumanDuration, which Docker uses: "Less than a second", "About a minute", "3 hours"."""
    seconds = int(seconds)
    minutes, hours = seconds // 60, seconds // 3600
    if seconds < 1:
        return "Less than a second"
    if seconds == 1:
        return "1 second"
    if seconds < 60:
        return f"{seconds} seconds"
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // (24 * 7)} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // (24 * 30)} months"
    return f"{hours // (24 * 365)} years"


# -- inspect -------------------------------------------------------------------


def inspect_command(args: Namespace) -> int:
    from runtime import lifecycle
    from runtime.errors import NotFoundError

    documents = []

    def inspect_one(reference: str) -> None:
        # As `docker inspect`: a container by that name or ID, else an image.
        if args.type != "image":
            try:
                record = lifecycle.load(args.root, reference)
            except NotFoundError:
                if args.type == "container":
                    raise
            else:
                documents[reference] = inspect_document(record, lifecycle.spec_of(args.root, record["id"]),
                                                        args.root)
                return
        documents[reference] = image_document(args.root, reference, only_images=args.type == "image")

    documents: dict[str, dict] = {}
    status = for_each(args, inspect_one)
    print_documents([documents[reference] for reference in args.containers if reference in documents], args.format)
    return status


def print_documents(documents: list[dict], template: str) -> None:
    """Print inspect's documents: a JSON list, or one line per document filled from `template`."""
    import json

    if template:
        for document in documents:
            print(render_inspect_format(template, document))
    else:
        print(json.dumps(documents, indent=4))


def image_document(root: str, reference: str, *, only_images: bool) -> dict:
    """Return `image inspect`'s document for the image `reference`; NotFoundError names the object when it is absent."""
    from runtime.cli import images
    from runtime.errors import NotFoundError
    from runtime.store import ImageStore

    store = ImageStore(root)
    image = store.lookup(reference)
    if image is None:
        # Docker's words: "No such object" when both kinds were searched.
        kind = "image" if only_images else "object"
        raise NotFoundError(f"no such {kind}: {reference}",
                            hint="list containers with pyrun ps -a and images with pyrun images")
    return images.inspect_document(store, image)


def render_inspect_format(template: str, document: dict) -> str:
    """Fill {{.A.B}} paths (and {{json .A}}) from the document.

    Any other action, or braces left open, raises UsageError naming the
    template, where Docker reports its template parser's error.
    """
    import json
    import re

    from runtime.errors import UsageError

    action = re.compile(r"{{\s*(json\s+)?\.([\w.]*)\s*}}")
    for found in re.finditer(r"{{.*?}}", template):
        if not action.fullmatch(found.group(0)):
            raise UsageError(f"invalid --format {template!r}: {found.group(0)} is not supported",
                             hint="use {{.Field.Path}} or {{json .Field}}")
    outside_actions = re.sub(r"{{.*?}}", "", template)
    if "{{" in outside_actions or "}}" in outside_actions:
        raise UsageError(f"invalid --format {template!r}: a {{{{ has no matching }}}}")

    def value(match: re.Match) -> str:
        as_json, path = match.group(1), match.group(2)
        current = document
        for part in path.split(".") if path else []:
            current = current.get(part) if isinstance(current, dict) else None
        if as_json:
            return json.dumps(current, separators=(",", ":"))  # compact, as Docker's json function
        return "<no value>" if current is None else go_text(current)

    return action.sub(value, template)


def go_text(value) -> str:
    """Return `value` as Go's text/template prints it: [a b] for a list, map[k:v] for a map, <nil> for null."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "<nil>"
    if isinstance(value, list):
        return "[" + " ".join(go_text(item) for item in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{key}:{go_text(value[key])}" for key in sorted(value)) + "]"
    return str(value)


def inspect_document(record: dict, spec: dict, root: str) -> dict:
    """Return the record in the shape of `docker inspect`'s output."""
    import os

    from runtime import state

    running = is_running(record)
    code = record.get("exit_code")
    process = spec.get("process") or {}
    network = record.get("network_settings") or {}
    if network and not running:
        # As Docker shows a container that is not running: no address, bridge, namespace or ports.
        cleared = {"IPAddress": "", "IPPrefixLen": 0, "Gateway": "", "MacAddress": ""}
        networks = {name: {**endpoint, **cleared} for name, endpoint in (network.get("Networks") or {}).items()}
        network = {**network, **cleared, "Bridge": "", "SandboxKey": "", "Ports": {}, "Networks": networks}
    directory = state.container_dir(root, record["id"])
    mounts = [
        {"Type": mount.get("type", "bind"), "Source": mount.get("source", ""), "Destination": mount["destination"],
         "Mode": "", "RW": "ro" not in (mount.get("options") or []), "Propagation": ""}
        for mount in spec.get("mounts") or []
        if mount.get("source", "").startswith("/") and not mount["source"].startswith(directory)
    ]
    plan = record.get("network_plan") or {}
    return {
        "Id": record["id"],
        "Created": record.get("created"),
        "Path": record.get("path", (process.get("args") or [""])[0]),
        "Args": record.get("args", (process.get("args") or [])[1:]),
        "State": {
            "Status": record.get("status"),
            "Running": running,
            "Paused": False,
            "Restarting": False,
            "OOMKilled": bool(record.get("oom_killed")),
            "Dead": False,
            "Pid": record.get("pid", 0) if running else 0,
            "ExitCode": -1 if code is None and record.get("status") == "exited" else (code or 0),
            "Error": record.get("error", ""),
            "StartedAt": record.get("started_at") or "0001-01-01T00:00:00Z",
            "FinishedAt": record.get("finished_at") or "0001-01-01T00:00:00Z",
        },
        "Image": record.get("image_id"),
        "LogPath": os.path.join(directory, f"{record['id']}-json.log"),
        "Name": "/" + record.get("name", ""),
        "HostConfig": {
            "AutoRemove": bool(record.get("auto_remove")),
            "NetworkMode": "default" if plan.get("mode") == "bridge" else plan.get("mode", "none"),
            "PortBindings": port_bindings(plan),
            "PublishAllPorts": bool(plan.get("publish_all")),
            "LogConfig": {"Type": "json-file", "Config": log_config_strings(record.get("log_config") or {})},
            "Init": bool(record.get("init")),
            "CgroupsPath": spec.get("linux", {}).get("cgroupsPath", ""),
            "ReadonlyRootfs": bool(spec.get("root", {}).get("readonly")),
        },
        "Config": {
            "Hostname": spec.get("hostname", ""),
            "User": user_text(process.get("user") or {}),
            "Tty": bool(process.get("terminal")),
            "Env": process.get("env") or [],
            "Cmd": process.get("args") or [],
            "Image": record.get("image_name") or record.get("image"),
            "WorkingDir": process.get("cwd", "/"),
            "StopSignal": record.get("stop_signal", "SIGTERM"),
        },
        "Mounts": mounts,
        "NetworkSettings": {**network, "Ports": network.get("Ports") or {}},
    }


def port_bindings(plan: dict) -> dict:
    bindings: dict[str, list] = {}
    for mapping in plan.get("ports") or []:
        key = f"{mapping['container_port']}/{mapping['protocol']}"
        host_port = str(mapping["host_port"]) if mapping.get("host_port") else ""
        bindings.setdefault(key, []).append({"HostIp": mapping.get("host_ip", ""), "HostPort": host_port})
    return bindings


def log_config_strings(config: dict) -> dict:
    strings = {}
    if config.get("max_size"):
        strings["max-size"] = str(config["max_size"])
    if config.get("max_file", 1) > 1:
        strings["max-file"] = str(config["max_file"])
    return strings


def user_text(user: dict) -> str:
    uid, gid = user.get("uid", 0), user.get("gid", 0)
    return f"{uid}:{gid}" if uid or gid else ""
