"""A container's life: create the bundle, start it, wait for it, clean up.

`create` turns an image and the `run` options into an OCI bundle in
`<root>/containers/<id>/`: the overlay root filesystem at `rootfs/`, the
generated /etc files, and `config.json`. `run` starts pid 1 from that
bundle, with its cgroup and network, waits for it while forwarding signals
(or relaying the terminal), and `cleanup` undoes what `create` and `run` did.
"""

from __future__ import annotations

import os

from runtime import devices, etc_files, fileio, jsonio, launch, mounts, overlay, rootfs, signals, state, syscalls
from runtime.errors import PyrunError
from runtime.spec import RunOptions, build_spec, process_args
from runtime.users import resolve_user
from runtime.log import get_logger
from runtime.records import factory, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from runtime.logs import JsonFileWriter
    from runtime.output import StdioPipes

log = get_logger(__name__)

# Signals pyrun passes on to the container, as `docker run` does (sig-proxy).
FORWARDED_SIGNALS = [
    signals.SIGINT,
    signals.SIGTERM,
    signals.SIGHUP,
    signals.SIGQUIT,
    signals.SIGUSR1,
    signals.SIGUSR2,
]


@record
class Container:
    """A created container: its record and bundle, and what `run` set up."""

    root: str
    id: str
    name: str
    directory: str
    spec: dict[str, Any]
    network_plan: dict[str, Any] = factory(dict)
    cgroup: Any = None
    network_settings: dict[str, Any] | None = None
    pid: int = 0

    @property
    def rootfs(self) -> str:
        return os.path.join(self.directory, self.spec["root"]["path"])


def create(
    root: str,
    image: Any,
    options: RunOptions,
    *,
    name: str = "",
    user_mounts: list[dict[str, Any]] = (),
    network_plan: dict[str, Any] | None = None,
    resources: dict[str, Any] | None = None,
    cgroup_parent: str = "",
    ephemeral: bool = False,
    details: dict[str, Any] | None = None,
) -> Container:
    """Create the bundle and record for one container of `image` (a runtime.store Image).

    `ephemeral` marks a container that `--rm` deletes when it exits.
    `details` are more fields for the record (the command line's settings
    that the monitor and the lifecycle commands read). On any failure,
    everything created so far is removed again.
    """
    from runtime.cgroups import cgroup_path
    from runtime.store.init_layer import rootfs_layers

    image_config = image.config.get("config") or {}
    # The command is checked, and recorded for `ps`, before anything is made.
    command = process_args(image_config, options)
    container_id = state.new_container_id()
    os.makedirs(state.containers_dir(root), exist_ok=True)
    chosen = bool(name)
    if chosen:
        state.check_name(name)
    else:
        name = state.generated_name()
    network_plan = network_plan or {"mode": "none"}
    directory = state.container_dir(root, container_id)
    mounted = ""
    try:
        # The record comes before the name link, so a name always leads to a
        # record: a create killed in between leaves a record that `rm` finds.
        state.create_record(
            root,
            container_id,
            {"name": name, "image": image.reference, "image_id": image.id, "network_plan": network_plan,
             "path": command[0], "args": command[1:], **(details or {})},
        )
        if chosen:
            state.reserve_name(root, name, container_id)
        else:
            reserved = state.reserve_generated_name(root, container_id, first=name)
            if reserved != name:
                name = reserved
                state.update_record(root, container_id, name=name)
        mounted = overlay.mount_overlay(directory, rootfs_layers(root, image), volatile=ephemeral)

        user_spec = options.user if options.user is not None else image_config.get("User", "")
        user = resolve_user(
            user_spec,
            rootfs.read_file_in_root(mounted, "/etc/passwd"),
            rootfs.read_file_in_root(mounted, "/etc/group"),
        )
        # Docker names a container after its ID, or after the host when it shares the host's network.
        default_hostname = os.uname().nodename if network_plan.get("mode") == "host" else container_id[:12]
        hostname = options.hostname or default_hostname
        etc_files.write_etc_files(directory, hostname, network_plan)
        spec = build_spec(
            image_config,
            options,
            user,
            bundle=directory,
            hostname=hostname,
            user_mounts=list(user_mounts),
            resources=resources,
            cgroups_path=cgroup_path(container_id, cgroup_parent),
            devices=devices.host_devices() if options.privileged else [],
        )
        _apply_network_mode(root, spec, network_plan)
        # Missing -v sources are created only after every check has passed, so a
        # rejected run leaves no new directory on the host.
        mounts.create_missing_sources(list(user_mounts))
        fileio.write_text(os.path.join(directory, "config.json"), jsonio.dumps(spec, indent=2))
    except BaseException:
        # Checked on disk, not by `mounted`: a Ctrl-C can land after the
        # mount and before mount_overlay returns.
        rootfs_path = os.path.join(directory, "rootfs")
        if os.path.ismount(rootfs_path):
            overlay.unmount_overlay(rootfs_path)
        state.remove_container(root, container_id)
        state.release_name(root, name, container_id)
        raise
    log.debug("created container %s (%s) from %s", container_id[:12], name, image.reference)
    return Container(root, container_id, name, directory, spec, network_plan)


def _apply_network_mode(root: str, spec: dict[str, Any], plan: dict[str, Any]) -> None:
    """Drop the network namespace for --network host; point it at another container's for container:NAME."""
    mode = plan.get("mode", "none")
    linux = spec["linux"]
    if mode == "host":
        linux["namespaces"] = [ns for ns in linux["namespaces"] if ns["type"] != "network"]
    elif mode == "container":
        other = state.load_record(root, state.find_container(root, plan["container"]))
        if other.get("status") != state.STATUS_RUNNING or not other.get("pid"):
            raise PyrunError(
                f"cannot join the network of container {plan['container']!r}: it is not running",
                hint="start that container first",
            )
        for namespace in linux["namespaces"]:
            if namespace["type"] == "network":
                namespace["path"] = f"/proc/{other['pid']}/ns/net"


def run(container: Container, *, interactive: bool = False, use_init: bool = False,
        log_file: JsonFileWriter | None = None) -> int:
    """Start the container, wait for it to exit and return its exit code (Docker's rules).

    Without a terminal, the container writes to pipes that pyrun copies to
    its own stdout and stderr (runtime.output). `log_file`, when given,
    receives the output too, with a terminal or without.
    """
    from runtime.output import StdioPipes

    container.cgroup = _open_cgroup(container)
    pipes = None if container.spec["process"].get("terminal") else StdioPipes(stdin=interactive)
    try:
        return _run_started(container, interactive, use_init, log_file, pipes)
    finally:
        if pipes is not None:
            pipes.close()
        if log_file is not None:
            log_file.close()


def _run_started(container: Container, interactive: bool, use_init: bool, log_file: JsonFileWriter | None,
                 pipes: StdioPipes | None) -> int:
    """Start pid 1, pass its output on until it ends, and return its exit code."""

    # A signal that arrives while the container starts stays pending until
    # the handlers that forward it are in place, so it neither kills pyrun
    # nor gets lost. The children unblock the signals before they run anything.
    previous_mask = signals.pthread_sigmask(signals.SIG_BLOCK, FORWARDED_SIGNALS)
    try:
        started = launch.start(
            container.directory,
            container.spec,
            interactive=interactive,
            use_init=use_init,
            cgroup=container.cgroup,
            finish_cgroup=lambda: _finish_cgroup(container),
            before_exec=lambda pid: _attach_network(container, pid),
            stdio=pipes.container_ends() if pipes else None,
        )
        container.pid = started.pid
        previous_handlers = forward_signals(started.pid)
    finally:
        signals.pthread_sigmask(signals.SIG_SETMASK, previous_mask)

    try:
        # Recorded only now: before pivot_root(2), an `exec` that joined the
        # container's mount namespace would find the host's files there.
        state.update_record(
            container.root, container.id, status=state.STATUS_RUNNING, pid=started.pid, started_at=state.now()
        )
        log.debug("container %s runs as host pid %d", container.id[:12], started.pid)
        if started.console is not None:
            _relay_terminal(started.console, interactive, log_file)
        elif pipes is not None:
            pipes.close_container_ends()
            pipes.copy(log_file)
        _, status = os.waitpid(started.pid, 0)
    finally:
        for sig, handler in previous_handlers.items():
            signals.signal(sig, handler)
    container.pid = 0
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _open_cgroup(container: Container) -> Any:
    """Create the container's cgroup in its cgroup2 hierarchy, where pid 1 is born.

    On a v2 host that directory is the whole cgroup, so its limits are
    written here too: no process is ever in it without them. On a v1 or
    hybrid host, launch.start calls `_finish_cgroup` for the v1 hierarchies
    and the limits once pid 1 is forked. So pyrun sets them up while pid 1
    sets up its mounts, and pid 1 joins them only after that.
    """
    from runtime import cgroups

    manager = cgroups.open_cgroup(container.spec["linux"]["cgroupsPath"])
    if manager.exists():
        # Left by a pyrun that was killed (SIGKILL) while it started this
        # container: the container is not running, so remove it and start clean.
        log.info("removing cgroup %s, left over from an earlier start", container.spec["linux"]["cgroupsPath"])
        manager.remove()
    manager.create_in_cgroup2()
    if manager.layout.kind == "v2":
        try:
            manager.apply(container.spec["linux"].get("resources") or {})
        except BaseException:
            manager.remove()
            raise
    return manager


def _finish_cgroup(container: Container) -> None:
    """Create the cgroup in the v1 hierarchies and apply the limits (the container's clean-up removes it)."""
    if container.cgroup.layout.kind == "v2":
        return
    container.cgroup.create_in_v1()
    container.cgroup.apply(container.spec["linux"].get("resources") or {})


def _attach_network(container: Container, pid: int) -> None:
    """Connect the container's network namespace; --network none needs nothing from the host."""
    plan = container.network_plan
    if plan.get("mode", "none") in ("none", "host"):
        return
    from runtime import network

    container.network_settings = network.attach(container.id, pid, plan, container.directory)
    etc_files.rewrite_hosts(container.directory, container.spec["hostname"], plan, container.network_settings)
    state.update_record(container.root, container.id, network_settings=container.network_settings)


def forward_signals(pid: int) -> dict[int, Any]:
    """Pass pyrun's FORWARDED_SIGNALS on to `pid` (run and exec do); return the handlers they replace."""

    def forward(signum: int, _frame: Any) -> None:
        try:
            syscalls.kill(pid, signum)
        except ProcessLookupError:
            pass

    return {sig: signals.signal(sig, forward) for sig in FORWARDED_SIGNALS}


def _relay_terminal(console: int, interactive: bool, log_file: JsonFileWriter | None) -> None:
    """Copy between the host terminal and the container's pty until the pty closes."""
    from runtime import terminal

    try:
        if interactive:
            with terminal.raw_mode(0):
                terminal.relay(console, interactive, log_file)
        else:
            terminal.relay(console, interactive, log_file)
    finally:
        os.close(console)


def _reap_orphans() -> None:
    """Reap processes re-parented to pyrun, the subreaper, when pid 1's namespace ended."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def cleanup(container: Container, exit_code: int | None, *, remove: bool) -> None:
    """Undo `run` and `create`: kill leftovers, detach, unmount, record or delete.

    Each step runs even when an earlier one fails; the first failure is
    raised at the end.
    """
    errors: list[BaseException] = []

    if container.pid:
        try:
            os.kill(container.pid, signals.SIGKILL)
            os.waitpid(container.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
    _reap_orphans()
    if container.network_settings is not None:
        try:
            from runtime import network

            network.detach(container.id, container.network_settings)
        except Exception as err:  # noqa: BLE001 - collected, raised below
            errors.append(err)
    oom_killed = False
    if container.cgroup is not None:
        try:
            oom_killed = container.cgroup.oom_killed()
            container.cgroup.remove()
        except Exception as err:  # noqa: BLE001
            errors.append(err)
    try:
        overlay.unmount_overlay(container.rootfs)
    except OSError as err:
        errors.append(err)

    # A record whose clean-up failed stays, even with --rm, because no later
    # command could find the cgroup, mount or network to retry without it.
    if remove and not errors:
        state.remove_container(container.root, container.id)
    else:
        state.update_record(
            container.root,
            container.id,
            status=state.STATUS_EXITED,
            exit_code=exit_code,
            finished_at=state.now(),
            pid=0,
            oom_killed=oom_killed,
        )
    if errors:
        raise PyrunError(
            f"clean up container {container.id[:12]}", hint=f"retry with pyrun rm {container.id[:12]}"
        ) from errors[0]
