"""What each step pyrun takes is for, in plain words: the table `--explain` reads.

Every call that passes through `runtime.syscalls` (and every registry request
that `runtime.explain.step` reports) is narrated with the first entry of
STEPS that matches it:

- `call` is the name the seam records, e.g. "mount" or "write cgroup file";
- `when` maps an argument of the call to a shell-style pattern (fnmatch) that
  its value must match, e.g. ``fstype="proc"`` or ``target="*/etc/hosts"``;
  `flags` is the exception: it lists flags that must all be set, in any
  order, e.g. ``flags="MS_BIND|MS_REC"``. An entry without patterns matches
  every call of that name;
- `text` says what the step is for; ``{name}`` fields are filled in from the
  call's arguments, e.g. ``{target}`` for a mount.

So the more specific entries of a call come before its general one. A call
that no entry matches is still narrated, with UNKNOWN_STEP. To translate the
narration, translate the `text` column, NAMESPACES, REFERENCES and the two
fallback texts; leave `call` and `when` as they are, because they must match
what the code records.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any


class _KeepMissing(dict):
    """Format-map arguments that leave a missing field as written, e.g. ``{address}``."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


@dataclass(frozen=True)
class Step:
    """One explanation: the call it applies to, the argument patterns, the text."""

    call: str
    text: str
    when: dict[str, str] = field(default_factory=dict)

    def matches(self, name: str, args: dict[str, Any]) -> bool:
        if name != self.call:
            return False
        for key, pattern in self.when.items():
            if key not in args:
                return False
            if key == "flags":
                if not set(pattern.split("|")) <= set(str(args[key]).split("|")):
                    return False
                continue
            # A pattern may name another argument, e.g. source="{target}".
            pattern = pattern.format_map(_KeepMissing(args))
            if not fnmatch.fnmatchcase(str(args[key]), pattern):
                return False
        return True


def step(call: str, text: str, **when: str) -> Step:
    return Step(call, text, when)


# The kind and purpose of each namespace flag, printed one line per flag
# under an unshare(2) or clone(2) step.
NAMESPACES = {
    "CLONE_NEWNS": ("mount", "its own mount table, so the mounts made next stay invisible to the host"),
    "CLONE_NEWUTS": ("uts", "its own hostname and domain name"),
    "CLONE_NEWIPC": ("ipc", "its own System V message queues, semaphores and shared memory"),
    "CLONE_NEWPID": ("pid", "its own process numbers, where the first process is pid 1"),
    "CLONE_NEWNET": ("net", "its own interfaces, addresses, routes and firewall rules, with only a loopback at first"),
    "CLONE_NEWCGROUP": ("cgroup", "its own cgroup shown as the root in /proc/self/cgroup"),
    "CLONE_NEWUSER": ("user", "its own user and group IDs, mapped to other IDs on the host"),
    "CLONE_NEWTIME": ("time", "its own boot and monotonic clocks"),
}

STEPS = [
    # -- Namespaces --------------------------------------------------------
    step("unshare", "Create new namespaces, so the container gets its own view of the system:"),
    step("clone", "Start a child process in new namespaces, so it gets its own view of the system:"),
    step("setns", "Join the existing namespace {path}, so this process sees what the container sees."),
    step("sethostname", "Give the container's UTS namespace its own hostname, {name}; the host keeps its own."),
    step("setdomainname", "Give the container's UTS namespace its own domain name, {name}."),
    # -- Mounts: propagation first, because it is set with flags alone -----
    step(
        "mount",
        "Make every mount under / private, so the mounts made next are not copied back to the host.",
        target="/",
        flags="MS_PRIVATE",
    ),
    step(
        "mount",
        "Make every mount under / a slave: mounts from the host still arrive, none go back.",
        target="/",
        flags="MS_SLAVE",
    ),
    step("mount", "Make the mount at {target} private, so mount events stop spreading from it.",
         flags="MS_PRIVATE"),
    step("mount", "Make the mount at {target} a slave of its peers: it receives mount events, sends none.",
         flags="MS_SLAVE"),
    step("mount", "Make the mount at {target} unbindable, so it cannot be bind-mounted elsewhere.",
         flags="MS_UNBINDABLE"),
    step("mount", "Make the mount at {target} shared with its peers.", flags="MS_SHARED"),
    step(
        "mount",
        "Remount the bind mount at {target} read-only: a bind mount takes its flags only when remounted.",
        flags="MS_REMOUNT|MS_BIND|MS_RDONLY",
    ),
    step("mount", "Change the flags of the mount at {target} to {flags}.", flags="MS_REMOUNT"),
    # -- Mounts: the root filesystem ---------------------------------------
    step(
        "mount",
        "Stack the image's layers into one root filesystem at {target} with overlayfs: "
        "the layers stay read-only below, and every write goes to the container's upper directory.",
        fstype="overlay",
    ),
    step(
        "mount",
        "Bind-mount the new root {source} onto itself, so it is a mount point, as pivot_root requires.",
        flags="MS_BIND",
        source="{target}",
    ),
    # -- Mounts: files pyrun writes for each container ---------------------
    step("mount", "Bind-mount the container's own hosts file over {target}, so localhost and its hostname resolve.",
         flags="MS_BIND", target="*/etc/hosts"),
    step("mount", "Bind-mount the container's own resolv.conf over {target}, so DNS lookups use its name servers.",
         flags="MS_BIND", target="*/etc/resolv.conf"),
    step("mount", "Bind-mount the container's own hostname file over {target}.",
         flags="MS_BIND", target="*/etc/hostname"),
    step("mount", "Bind-mount the host's device node {source} at {target}, so programs in the container can use it.",
         flags="MS_BIND", source="/dev/*"),
    step("mount", "Bind-mount {source} at {target}: the same files appear in a second place.", flags="MS_BIND"),
    step("mount", "Move the mount at {source} to {target}.", flags="MS_MOVE"),
    # -- Mounts: the kernel's virtual filesystems --------------------------
    step("mount", "Mount a new proc filesystem at {target}, so /proc lists only the processes of the "
         "container's pid namespace.", fstype="proc"),
    step("mount", "Mount sysfs at {target}, so tools can read device and network information.", fstype="sysfs"),
    step("mount", "Mount an empty tmpfs at {target}, so the container gets only the device nodes pyrun "
         "creates next, not the host's.", fstype="tmpfs", target="*/dev"),
    step("mount", "Mount an empty tmpfs at {target} for POSIX shared memory (shm_open).",
         fstype="tmpfs", target="*/dev/shm"),
    step("mount", "Mount a new devpts instance at {target}, so the container gets its own pseudo-terminals.",
         fstype="devpts"),
    step("mount", "Mount the message-queue filesystem of the container's IPC namespace at {target}.",
         fstype="mqueue"),
    step("mount", "Mount the cgroup v2 hierarchy at {target}, so the container can read its own limits.",
         fstype="cgroup2"),
    step("mount", "Mount the cgroup v1 hierarchy {data} at {target}, so the container can read its own limits.",
         fstype="cgroup"),
    step("mount", "Mount an empty in-memory filesystem (tmpfs) at {target}.", fstype="tmpfs"),
    step("mount", "Mount a {fstype} filesystem from {source} at {target}."),
    step("umount2", "Detach the old root, the host's filesystem, so nothing of the host is reachable from inside.",
         target="*old*"),
    step("umount2", "Detach the mount at {target}."),
    step(
        "pivot_root",
        "Swap the root of this mount namespace: {new_root} becomes /, and the old root moves to {put_old}.",
    ),
    step("chroot", "Change this process's root directory to {path}."),
    step("chdir", "Change the working directory to {path}."),
    # -- Files in the new root ---------------------------------------------
    step("mknod", "Create the device node {path} ({device}), one of the few devices a container may use."),
    step("symlink", "Create the symbolic link {path} pointing to {target}."),
    # -- Cgroups: limits, written as files ---------------------------------
    step("create cgroup", "Create the cgroup {path}: a directory in the cgroup filesystem that groups the "
         "container's processes."),
    step("remove cgroup", "Remove the cgroup {path}, now that no process is left in it."),
    step("write cgroup file", "Limit the container's memory to {value} bytes (cgroup v2); the kernel's OOM "
         "killer stops it if it uses more.", path="*/memory.max"),
    step("write cgroup file", "Limit the container's memory to {value} bytes (cgroup v1); the kernel's OOM "
         "killer stops it if it uses more.", path="*/memory.limit_in_bytes"),
    step("write cgroup file", "Limit the container's swap to {value} bytes (cgroup v2).", path="*/memory.swap.max"),
    step("write cgroup file", "Limit the container's memory plus swap to {value} bytes (cgroup v1).",
         path="*/memory.memsw.limit_in_bytes"),
    step("write cgroup file", "Set the container's memory reservation to {value} bytes.", path="*/memory.low"),
    step("write cgroup file", "Set the container's memory reservation to {value} bytes.",
         path="*/memory.soft_limit_in_bytes"),
    step("write cgroup file", "Limit the container's CPU time: \"{value}\" is quota and period in microseconds "
         "(cgroup v2).", path="*/cpu.max"),
    step("write cgroup file", "Set the container's CPU quota to {value} microseconds per period (cgroup v1).",
         path="*/cpu.cfs_quota_us"),
    step("write cgroup file", "Set the CPU period the quota counts in to {value} microseconds (cgroup v1).",
         path="*/cpu.cfs_period_us"),
    step("write cgroup file", "Set the container's CPU weight to {value} against other cgroups (cgroup v2).",
         path="*/cpu.weight"),
    step("write cgroup file", "Set the container's CPU shares to {value} against other cgroups (cgroup v1).",
         path="*/cpu.shares"),
    step("write cgroup file", "Allow the container at most {value} processes and threads; fork fails beyond.",
         path="*/pids.max"),
    step("write cgroup file", "Restrict the container to the CPUs {value}.", path="*/cpuset.cpus"),
    step("write cgroup file", "Restrict the container to the memory nodes {value}.", path="*/cpuset.mems"),
    step("write cgroup file", "Enable the controllers \"{value}\" for the cgroups below this one (cgroup v2).",
         path="*/cgroup.subtree_control"),
    step("write cgroup file", "Move process {value} into the cgroup, so its limits apply to it and its children.",
         path="*/cgroup.procs"),
    step("write cgroup file", "Move task {value} into the cgroup (cgroup v1).", path="*/tasks"),
    step("write cgroup file", "Freeze (1) or thaw (0) every process in the cgroup (cgroup v2).",
         path="*/cgroup.freeze"),
    step("write cgroup file", "Set the freezer state of the cgroup to {value} (cgroup v1).", path="*/freezer.state"),
    step("write cgroup file", "Kill every process left in the cgroup at once (cgroup v2).", path="*/cgroup.kill"),
    step("write cgroup file", "Allow or deny device access: {value} (cgroup v1).", path="*/devices.*"),
    step("write cgroup file", "Write {value} to the cgroup file {path}."),
    # -- Network: links, addresses and routes over netlink -----------------
    step("netlink RTM_NEWLINK", "Create a veth pair {ifname} and {peer}: a virtual cable, whatever goes in one "
         "end comes out of the other.", kind="veth"),
    step("netlink RTM_NEWLINK", "Create the bridge {ifname}: a virtual switch that connects the containers' "
         "veth ends on the host.", kind="bridge"),
    step("netlink RTM_NEWLINK", "Create the network link {ifname}."),
    step("netlink RTM_SETLINK", "Move {ifname} into the container's network namespace, so the container sees "
         "it as its own interface.", net_ns_pid="*"),
    step("netlink RTM_SETLINK", "Move {ifname} into the container's network namespace, so the container sees "
         "it as its own interface.", net_ns_fd="*"),
    step("netlink RTM_SETLINK", "Plug {ifname} into the bridge {master}.", master="*"),
    step("netlink RTM_SETLINK", "Rename {ifname} to {new_ifname}.", new_ifname="*"),
    step("netlink RTM_SETLINK", "Switch {ifname} {state}, so it can carry packets.", state="up"),
    step("netlink RTM_SETLINK", "Change the settings of the link {ifname}."),
    step("netlink RTM_DELLINK", "Delete the link {ifname}; deleting one end of a veth pair deletes both."),
    step("netlink RTM_NEWADDR", "Give {ifname} the address {address}, so it can send and receive IP packets."),
    step("netlink RTM_DELADDR", "Remove the address {address} from {ifname}."),
    step("netlink RTM_NEWROUTE", "Add a default route via {gateway}, so traffic to other networks leaves "
         "through the bridge.", dst="default"),
    step("netlink RTM_NEWROUTE", "Add a default route via {gateway}, so traffic to other networks leaves "
         "through the bridge.", dst="0.0.0.0/0"),
    step("netlink RTM_NEWROUTE", "Add a route to {dst}."),
    step("netlink RTM_DELROUTE", "Delete the route to {dst}."),
    # -- Network: NAT and port publishing with nftables --------------------
    step("nft add table", "Create the nftables table {table}, so pyrun's rules sit together and are removed "
         "together."),
    step("nft add chain", "Create the chain {chain}, hooked into the kernel's packet path at {hook}."),
    step("nft add rule", "Rewrite the source address of packets leaving the container network (masquerade), so "
         "replies find their way back.", rule="*masquerade*"),
    step("nft add rule", "Forward the host port to the container (destination NAT): {rule}.", rule="*dnat*"),
    step("nft add rule", "Add the firewall rule \"{rule}\" to the chain {chain}."),
    step("nft delete rule", "Delete the rule {handle} from the chain {chain}."),
    step("nft delete chain", "Delete the chain {chain}."),
    step("nft delete table", "Delete the nftables table {table} with every rule in it."),
    step("write sysctl", "Set the kernel setting {path} to {value}.", path="*ip_forward"),
    step("write sysctl", "Set the kernel setting {path} to {value}."),
    # -- Security: capabilities, privileges, seccomp -----------------------
    step("prctl PR_CAPBSET_DROP", "Drop {capability} from the bounding set: no program the container runs can "
         "get it back."),
    step("capset", "Keep only the capabilities the container needs (effective, permitted, inheritable): "
         "{effective}."),
    step("prctl PR_CAP_AMBIENT", "Set the ambient capabilities, so they survive execve: {capabilities}."),
    step("prctl PR_SET_NO_NEW_PRIVS", "Forbid gaining privileges through setuid programs or file "
         "capabilities, from here on."),
    step("prctl PR_SET_KEEPCAPS", "Keep the permitted capabilities across the change of user ID that follows."),
    step("setgroups", "Set the supplementary groups of the container's user: {groups}."),
    step("setgid", "Switch to the container's group ID {gid}."),
    step("setuid", "Switch to the container's user ID {uid}."),
    step("seccomp", "Install the seccomp filter, so the kernel rejects the system calls a container never needs."),
    step("setrlimit", "Set the resource limit {resource} to {soft} (soft) and {hard} (hard)."),
    # -- Processes ---------------------------------------------------------
    step("execve", "Run the container's command {path}: this process stops being pyrun and becomes the "
         "container's program, in everything set up above."),
    step("kill", "Send {signal} to process {pid}."),
    # -- The registry: pulling an image ------------------------------------
    step("registry token", "Ask the token service for a pull token for {scope}; the registry requires one even "
         "for a public image."),
    step("registry manifest", "Download the manifest of {reference}: the list of the image's config and layers, "
         "each named by its digest.", media_type="*manifest*"),
    step("registry manifest", "Download the index of {reference}: one manifest per platform, and pyrun picks the "
         "one for this machine.", media_type="*index*"),
    step("registry manifest", "Download the manifest of {reference}."),
    step("registry config", "Download the image config {digest}: the command, environment and working directory "
         "the container starts with, and the layer list."),
    step("registry blob", "Download the layer {digest}: a tar archive of the files this layer adds or changes."),
    step("unpack layer", "Unpack the layer {digest} into its own directory, turning deletions into overlay "
         "whiteouts."),
]

# The specification to read for each step that is not a kernel call, so has no man page.
REFERENCES = {
    "registry token": "OCI distribution spec, token authentication",
    "registry manifest": "OCI distribution spec, pulling manifests",
    "registry config": "OCI image spec, image configuration",
    "registry blob": "OCI distribution spec, pulling blobs",
    "unpack layer": "OCI image spec, image layer filesystem changeset",
}

UNKNOWN_STEP = "Call {call} (runtime/teaching/steps.py has no explanation for it yet)."
FAILED_STEP = "Failed: {step}"


def find_step(name: str, args: dict[str, Any]) -> Step | None:
    """Return the first entry of STEPS that matches the call, or None."""
    for entry in STEPS:
        if entry.matches(name, args):
            return entry
    return None


def explain(name: str, args: dict[str, Any]) -> str:
    """Return the plain-words line for one call: what the step is for."""
    entry = find_step(name, args)
    if entry is None:
        return UNKNOWN_STEP.format(call=name)
    return entry.text.format_map(_KeepMissing(args))


def namespace_lines(flags: str) -> list[str]:
    """Return one line per namespace in a rendered flag word like ``CLONE_NEWNS|CLONE_NEWPID``."""
    lines = []
    for flag in flags.split("|"):
        if flag in NAMESPACES:
            kind, purpose = NAMESPACES[flag]
            lines.append(f"{kind} namespace ({flag}): {purpose}")
    return lines
