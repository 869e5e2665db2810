"""Container commands: `run`.

`pyrun run IMAGE [COMMAND...]` behaves like `docker run`: the image is looked
up locally and pulled when missing, and a container is created from it. In
the foreground, pyrun waits for the container and exits with its exit code.
With `-d`, a monitor process takes the container over (runtime.lifecycle),
so pyrun prints the container's ID and returns.
"""

from __future__ import annotations

import sys

from runtime.cli.parser import CommandParser, Namespace, REMAINDER, SUPPRESS



def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run a command in a new container",
        description="Create a container from IMAGE and run COMMAND in it, in the foreground or with -d in the background.",
        add_help=False,
    )
    # -h is Docker's --hostname, so help is only --help.
    parser.add_argument("--help", action="help", help="show this help message and exit")
    add_container_flags(parser)
    parser.add_argument("--rm", action="store_true", help="remove the container when it exits")
    parser.add_argument(
        "-d", "--detach", action="store_true", help="run the container in the background and print its ID"
    )
    parser.add_argument("image", metavar="IMAGE")
    parser.add_argument("command", nargs=REMAINDER, metavar="COMMAND", help="command and arguments")
    parser.set_defaults(handler=run)


def add_container_flags(parser: CommandParser) -> None:
    """Add the flags `run` and `create` share: process, filesystem, security, network, cgroups."""
    process = parser.add_argument_group("process")
    process.add_argument("-i", "--interactive", action="store_true", help="keep stdin open and pass it on")
    process.add_argument("-t", "--tty", action="store_true", help="allocate a terminal (pty) for the container")
    process.add_argument("-e", "--env", action="append", default=[], metavar="KEY[=VALUE]",
                         help="set an environment variable; KEY alone takes the host's value")
    process.add_argument("--env-file", action="append", default=[], metavar="FILE",
                         help="read KEY=VALUE lines from FILE")
    process.add_argument("-w", "--workdir", default="", metavar="DIR", help="working directory inside the container")
    process.add_argument("-u", "--user", default=None, metavar="USER[:GROUP]",
                         help="user name or uid, optionally with group name or gid")
    process.add_argument("--entrypoint", default=None, metavar="COMMAND",
                         help="replace the image's entrypoint (an empty string removes it)")
    process.add_argument("--init", action="store_true",
                         help="run a small init as pid 1 that forwards signals and reaps zombies")
    process.add_argument("--name", default="", help="name for the container (default: a generated one)")
    process.add_argument("-h", "--hostname", default="", help="hostname inside the container (default: short ID)")
    process.add_argument("--platform", default=None, metavar="OS/ARCH",
                         help="platform to pull when the image is missing")
    process.add_argument("--pull", default="missing", choices=["missing", "always", "never"],
                         help="pull the image before creating the container: when it is missing "
                              "(default), always, or never")

    filesystem = parser.add_argument_group("filesystem")
    filesystem.add_argument("-v", "--volume", action="append", default=[], metavar="HOST:CONTAINER[:ro]",
                            help="bind a host directory or file into the container")
    filesystem.add_argument("--mount", action="append", default=[], metavar="type=bind|tmpfs,...",
                            help="add a bind or tmpfs mount (target=, source=, readonly)")
    filesystem.add_argument("--tmpfs", action="append", default=[], metavar="DIR[:OPTIONS]",
                            help="mount a tmpfs at DIR")
    filesystem.add_argument("--read-only", action="store_true", help="mount the root filesystem read-only")

    security = parser.add_argument_group("security")
    security.add_argument("--cap-add", action="append", default=[], metavar="CAP", help="add a capability")
    security.add_argument("--cap-drop", action="append", default=[], metavar="CAP", help="drop a capability")
    security.add_argument("--privileged", action="store_true",
                          help="give every capability and no masked paths")
    security.add_argument("--security-opt", action="append", default=[], metavar="OPTION",
                          help="no-new-privileges[=true|false], or seccomp=unconfined to run without "
                               "Docker's default seccomp filter")

    log_group = parser.add_argument_group("logging")
    log_group.add_argument("--log-driver", default="json-file", choices=["json-file"],
                         help="where a detached container's output goes (only json-file)")
    log_group.add_argument("--log-opt", action="append", default=[], metavar="KEY=VALUE",
                         help="json-file option: max-size (e.g. 10m) or max-file (files kept)")

    from runtime.cgroups import add_resource_flags
    from runtime.network.plan import add_network_flags

    add_network_flags(parser)
    add_resource_flags(parser)
    for flag in UNSUPPORTED_FLAGS:
        parser.add_argument(flag, action="unsupported", help=SUPPRESS)


# Docker flags that pyrun does not implement: named in an error, never ignored.
UNSUPPORTED_FLAGS = ["--restart", "--health-cmd", "--log-driver-opt", "--detach-keys", "--sig-proxy",
                     "--device", "--device-cgroup-rule"]


def run_options(args: Namespace):
    """Collect the parsed flags into a runtime.spec.RunOptions."""
    from runtime.spec import RunOptions

    return RunOptions(
        command=list(args.command),
        entrypoint=args.entrypoint,
        env=list(args.env),
        env_files=list(args.env_file),
        workdir=args.workdir,
        user=args.user,
        hostname=args.hostname,
        tty=args.tty,
        interactive=args.interactive,
        read_only=args.read_only,
        cap_add=list(args.cap_add),
        cap_drop=list(args.cap_drop),
        privileged=args.privileged,
        security_opt=list(args.security_opt),
        init=args.init,
    )


def user_mounts(args: Namespace) -> list[dict]:
    from runtime import mounts

    entries = [mounts.parse_volume(value) for value in args.volume]
    entries += [mounts.parse_mount(value) for value in args.mount]
    entries += [mounts.parse_tmpfs(value) for value in args.tmpfs]
    return entries


def find_or_pull_image(args: Namespace):
    """Return the image from the store, pulling it first under the --pull policy (by default, when missing)."""
    from runtime.store import ImageStore

    store = ImageStore(args.root)
    image = None if args.pull == "always" else store.lookup(args.image)
    if image is None:
        from registry_client.reference import parse_reference

        familiar = parse_reference(args.image).familiar()
        if args.pull == "never":
            from runtime.errors import NotFoundError

            raise NotFoundError(f"no such image: {familiar}",
                                hint=f"pull it with 'pyrun pull {familiar}', or leave out --pull never")
        if args.pull == "missing":
            print(f"Unable to find image '{familiar}' locally", file=sys.stderr)
        # The name carries its tag, so the pull does not print "Using default
        # tag", which `docker run` does not print either.
        image = store.pull(familiar, platform=args.platform)
    return image


def container_settings(args: Namespace) -> tuple:
    """Check the flags `run` and `create` share, find or pull the image, and return what creating needs.

    Returns (options, log_config, mounts, resources, image, network plan).
    Every flag is checked before the image lookup, as Docker does, so an
    invalid value never starts a pull.
    """
    from runtime.cgroups import resources_from_args
    from runtime.network import plan_from_args

    options = run_options(args)
    log_config = log_options(args)
    mounts = user_mounts(args)
    resources = resources_from_args(args)
    # This first plan only checks -p, --dns and --ip. The plan is built
    # again after the lookup, because -P needs the image's exposed ports.
    plan_from_args(args, None)
    image = find_or_pull_image(args)
    plan = plan_from_args(args, image.config)
    return options, log_config, mounts, resources, image, plan


def run(args: Namespace) -> int:
    from runtime import container, state
    from runtime.errors import PyrunError

    # Checked before the image lookup, so an invalid name never starts a pull.
    if args.name:
        state.check_name(args.name)
    options, log_config, mounts, resources, image, plan = container_settings(args)

    def create():
        return container.create(
            args.root,
            image,
            options,
            name=args.name,
            user_mounts=mounts,
            network_plan=plan,
            resources=resources,
            cgroup_parent=args.cgroup_parent,
            ephemeral=args.rm,
            details=record_details(args, image, log_config),
        )

    if args.detach:
        return run_detached(args, create)
    check_input_is_terminal(args)
    created = create()
    exit_code = None
    try:
        exit_code = container.run(created, interactive=args.interactive, use_init=args.init,
                                  log_file=None if args.rm else open_log(args.root, created.id, log_config))
    except PyrunError as err:
        exit_code = err.exit_code
        raise
    finally:
        container.cleanup(created, exit_code, remove=args.rm)
    return exit_code


def check_input_is_terminal(args: Namespace) -> None:
    """Refuse -i -t when stdin is no terminal, as Docker does: raw mode and resizes need one."""
    import os

    from runtime.errors import PyrunError

    if args.tty and args.interactive and not os.isatty(0):
        raise PyrunError("the input device is not a TTY", exit_code=1,
                         hint="drop -t to pass piped input, or run pyrun from a terminal")


def open_log(root: str, container_id: str, log_config: dict):
    """Open the container's json-file log with its --log-opt limits, as the monitor of `run -d` does."""
    from runtime import logs, state

    return logs.JsonFileWriter(logs.log_path(state.container_dir(root, container_id), container_id),
                               log_config.get("max_size", 0), log_config.get("max_file", 1))


def log_options(args: Namespace) -> dict:
    """Return the --log-opt settings; {} gives the defaults to every reader, without importing runtime.logs."""
    if not args.log_opt:
        return {}
    from runtime.errors import UsageError
    from runtime.logs import LogOptionError, parse_log_options

    try:
        return parse_log_options(args.log_opt)
    except LogOptionError as err:
        raise UsageError(str(err)) from None


def record_details(args: Namespace, image, log_config: dict) -> dict:
    """Return what the monitor and the lifecycle commands need in a new container's record."""
    image_config = image.config.get("config") or {}
    return {
        "auto_remove": bool(getattr(args, "rm", False)),
        "init": bool(args.init),
        "tty": bool(args.tty),
        "interactive": bool(args.interactive),
        "stop_signal": image_config.get("StopSignal") or "SIGTERM",
        "log_config": log_config,
        "image_name": args.image,
    }


def run_detached(args: Namespace, create) -> int:
    """Create the container, hand it to a monitor, print its ID and return.

    A Ctrl-C during the creation is held back until the new ID is listed
    for removal, so an interrupted `run -d` never leaves a container.
    """
    from runtime import lifecycle

    with lifecycle.RemovedOnInterrupt(args.root) as container_ids:
        with lifecycle.InterruptDeferred():
            created = create()
            container_ids.append(created.id)
        lifecycle.start(args.root, created.id)
        print(created.id, flush=True)
    return 0
