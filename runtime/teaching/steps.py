"""What each step pyrun takes is for, in plain words: the table `--explain` reads.

Every call that passes through `runtime.syscalls` (and every registry request
that `runtime.explain.step` reports) is narrated with the first entry of
STEPS that matches it:

- `call` is the name the seam records, e.g. "mount" or "write_cgroup_file",
  or a pattern of names, e.g. "nft list *";
- `when` maps an argument of the call to a shell-style pattern (fnmatch) that
  its value must match, e.g. ``fstype="proc"`` or ``target="*/etc/hosts"``;
  `flags` is the exception: it lists flags that must all be set, in any
  order, e.g. ``flags="MS_BIND|MS_REC"``. An entry without patterns matches
  every call of that name;
- `text` says what the step is for; ``{name}`` fields are filled in from the
  call's arguments, e.g. ``{target}`` for a mount.

So the more specific entries of a call come before its general one. A call
that no entry matches is still narrated, with UNKNOWN_STEP. To translate the
narration, translate the `text` column, NAMESPACES, NFT_COMMANDS, REFERENCES
and the texts at the end of this file; leave `call` and `when` as they are, because they must match
what the code records.
"""

from __future__ import annotations

import fnmatch

from runtime.records import factory, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class _KeepMissing(dict):
    """Format-map arguments that leave a missing field as written, e.g. ``{address}``."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


@record(frozen=True)
class Step:
    """One explanation: the call it applies to, the argument patterns, the text."""

    call: str
    text: str
    when: dict[str, str] = factory(dict)

    def matches(self, name: str, args: dict[str, Any]) -> bool:
        if not fnmatch.fnmatchcase(name, self.call):
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
# under an unshare(2), clone(2) or clone3(2) step.
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

# One line per command of an nft script (nft(8)): the first pattern that
# matches the command explains it.
NFT_COMMANDS = [
    ("add table *", "Create the table, so pyrun's chains and rules sit together and go together."),
    ("add chain * { type nat hook prerouting *", "Create a NAT chain for packets arriving from outside."),
    ("add chain * { type nat hook output *", "Create a NAT chain for connections the host itself opens."),
    ("add chain * { type nat hook postrouting *", "Create a NAT chain for packets about to leave."),
    ("add chain * { type filter *", "Create a filter chain, which decides which packets may pass."),
    ("add chain *", "Create a regular chain, which other chains jump to."),
    ("* jump *", "Send packets addressed to this host to the chain of published ports."),
    ("* masquerade*", "Rewrite the source address to the outgoing interface's (masquerade), so replies "
     "find their way back."),
    ("* dnat to *", "Forward a host port to the container (destination NAT)."),
    ("* drop*", "Drop matching packets."),
    ("* accept*", "Accept matching packets."),
    ("delete rule *", "Delete one rule, found by its handle."),
    ("delete table *", "Delete the table with every chain and rule in it."),
    ("*", "Run the nft command."),
]

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
        source="*/rootfs",
        target="{source}",
    ),
    step("mount", "Bind-mount {target} onto itself, so it becomes a mount point of its own whose flags can "
         "then be changed.", flags="MS_BIND", target="{source}"),
    # -- Mounts: files pyrun writes for each container ------------------------
    step("mount", "Bind-mount the container's own hosts file over {target}, so localhost and its hostname "
         "resolve.", flags="MS_BIND", source="*/hosts"),
    step("mount", "Bind-mount the container's own resolv.conf over {target}, so DNS lookups use its name "
         "servers.", flags="MS_BIND", source="*/resolv.conf"),
    step("mount", "Bind-mount the container's own hostname file over {target}.", flags="MS_BIND",
         source="*/hostname"),
    # -- Mounts: hiding what the host's kernel shows ---------------------------
    step("mount", "Hide {target} by bind-mounting /dev/null over it, so the container cannot read what the "
         "host's kernel shows there.", flags="MS_BIND", source="/dev/null", target="/proc/*"),
    step("mount", "Hide {target} under an empty tmpfs, so the container cannot read what the host's kernel "
         "shows there.", fstype="tmpfs", target="/proc/*"),
    step("mount", "Hide {target} under an empty tmpfs, so the container cannot read what the host's kernel "
         "shows there.", fstype="tmpfs", target="/sys/*"),
    step("mount", "Bind-mount the host's device node {source} at {target}, so programs in the container can "
         "use it.", flags="MS_BIND", source="/dev/*"),
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
    step("umount2", "Detach the old root, the host's filesystem, so nothing of the host is reachable from "
         "inside.", target="*old*"),
    step("umount2", "Detach the old root, which pivot_root stacked on top of the new one, so nothing of the "
         "host's filesystem is reachable from inside.", target=".", flags="MNT_DETACH"),
    step("umount2", "Detach the mount at {target}."),
    step(
        "pivot_root",
        "Swap the root of this mount namespace: the current directory, the container's root filesystem, "
        "becomes /, and the host's old root is stacked on top of it until it is detached.",
        new_root=".",
        put_old=".",
    ),
    step(
        "pivot_root",
        "Swap the root of this mount namespace: {new_root} becomes /, and the old root moves to {put_old}.",
    ),
    step("chroot", "Change this process's root directory to {path}."),
    step("chdir", "Change the working directory to {path}."),
    # -- Files in the new root ---------------------------------------------
    step("mknod", "Create the device node {path} ({device}), one of the few devices a container may use."),
    # -- Device rules on cgroup v2: an eBPF program -------------------------
    step("bpf", "Load an eBPF program of {insn_cnt} instructions that decides which devices the container may "
         "open or create; cgroup v2 has no devices files. The kernel's verifier checks the program first.",
         cmd="BPF_PROG_LOAD"),
    step("bpf", "Attach the device program to the cgroup {target}, so the kernel runs it each time a process "
         "there opens or creates a device node.", cmd="BPF_PROG_ATTACH"),
    step("bpf", "Make the eBPF call {cmd}."),
    step("symlink", "Create the symbolic link {path} pointing to {target}."),
    # -- Cgroups: limits, written as files ---------------------------------
    step("mkdir", "Create the cgroup {path}: a directory in the cgroup filesystem, which groups the "
         "container's processes under one set of limits.", path="/sys/fs/cgroup/*"),
    step("mkdir", "Create the directory {path}."),
    step("rmdir", "Remove the cgroup {path}, now that no process is left in it.", path="/sys/fs/cgroup/*"),
    step("rmdir", "Remove the empty directory {path}."),
    step("write_cgroup_file", "Limit the container's memory to {value} bytes (cgroup v2); the kernel's OOM "
         "killer stops it if it uses more.", path="*/memory.max"),
    step("write_cgroup_file", "Limit the container's memory to {value} bytes (cgroup v1); the kernel's OOM "
         "killer stops it if it uses more.", path="*/memory.limit_in_bytes"),
    step("write_cgroup_file", "Limit the container's swap to {value} bytes (cgroup v2).", path="*/memory.swap.max"),
    step("write_cgroup_file", "Limit the container's memory plus swap to {value} bytes (cgroup v1).",
         path="*/memory.memsw.limit_in_bytes"),
    step("write_cgroup_file", "Set the container's memory reservation to {value} bytes.", path="*/memory.low"),
    step("write_cgroup_file", "Set the container's memory reservation to {value} bytes.",
         path="*/memory.soft_limit_in_bytes"),
    step("write_cgroup_file", "Limit the container's CPU time: \"{value}\" is quota and period in microseconds "
         "(cgroup v2).", path="*/cpu.max"),
    step("write_cgroup_file", "Set the container's CPU quota to {value} microseconds per period (cgroup v1).",
         path="*/cpu.cfs_quota_us"),
    step("write_cgroup_file", "Set the CPU period the quota counts in to {value} microseconds (cgroup v1).",
         path="*/cpu.cfs_period_us"),
    step("write_cgroup_file", "Set the container's CPU weight to {value} against other cgroups (cgroup v2).",
         path="*/cpu.weight"),
    step("write_cgroup_file", "Set the container's CPU shares to {value} against other cgroups (cgroup v1).",
         path="*/cpu.shares"),
    step("write_cgroup_file", "Allow the container at most {value} processes and threads; fork fails beyond.",
         path="*/pids.max"),
    step("write_cgroup_file", "Restrict the container to the CPUs {value}.", path="*/cpuset.cpus"),
    step("write_cgroup_file", "Restrict the container to the memory nodes {value}.", path="*/cpuset.mems"),
    step("write_cgroup_file", "Enable the controllers \"{value}\" for the cgroups below this one (cgroup v2).",
         path="*/cgroup.subtree_control"),
    step("write_cgroup_file", "Move this process into the cgroup (\"0\" names the writer), so its limits apply "
         "to it and its children.", path="*/cgroup.procs", value="0"),
    step("write_cgroup_file", "Move process {value} into the cgroup, so its limits apply to it and its children.",
         path="*/cgroup.procs"),
    step("write_cgroup_file", "Move this thread into the cgroup (cgroup v1; \"0\" names the writer). A thread "
         "that moves itself skips the kernel's global lock, and the wait that comes with it.",
         path="*/tasks", value="0"),
    step("write_cgroup_file", "Move task {value} into the cgroup (cgroup v1).", path="*/tasks"),
    step("write_cgroup_file", "Freeze (1) or thaw (0) every process in the cgroup (cgroup v2).",
         path="*/cgroup.freeze"),
    step("write_cgroup_file", "Set the freezer state of the cgroup to {value} (cgroup v1).", path="*/freezer.state"),
    step("write_cgroup_file", "Kill every process left in the cgroup at once (cgroup v2).", path="*/cgroup.kill"),
    step("write_cgroup_file", "Deny the container every device (cgroup v1). Each rule written next allows a few "
         "back, as \"type major:minor access\": c or b, then r(ead), w(rite) and m(knod).",
         path="*/devices.deny", value="a"),
    step("write_cgroup_file", "Allow the container every device, as --privileged requests (cgroup v1).",
         path="*/devices.allow", value="a"),
    step("write_cgroup_file", "Allow the container the device access \"{value}\" (cgroup v1).",
         path="*/devices.allow"),
    step("write_cgroup_file", "Deny the container the device access \"{value}\" (cgroup v1).",
         path="*/devices.deny"),
    step("write_cgroup_file", "Write {value} to the cgroup file {path}."),
    # -- Network: links, addresses and routes over netlink -----------------
    step("netlink RTM_NEWLINK", "Create a veth pair {ifname} and {peer}: a virtual cable, whatever goes in one "
         "end comes out of the other.", kind="veth"),
    step("netlink RTM_NEWLINK", "Create the bridge {ifname}: a virtual switch that connects the containers' "
         "veth ends on the host.", kind="bridge"),
    step("netlink RTM_NEWLINK", "Move {ifname} into the container's network namespace ({net_ns_fd}), so the "
         "container sees it as its own interface.", net_ns_fd="*"),
    step("netlink RTM_NEWLINK", "Plug {ifname} into the bridge {master} and switch it {state}.", master="*",
         state="*"),
    step("netlink RTM_NEWLINK", "Plug {ifname} into the bridge {master}.", master="*"),
    step("netlink RTM_NEWLINK", "Rename {ifname} to {new_ifname} and give it the MAC address {address}.",
         new_ifname="*", address="*"),
    step("netlink RTM_NEWLINK", "Rename {ifname} to {new_ifname}.", new_ifname="*"),
    step("netlink RTM_NEWLINK", "Switch the loopback interface up: a new network namespace starts with it down.",
         ifname="lo", state="up"),
    step("netlink RTM_NEWLINK", "Switch {ifname} {state}, so it can carry packets.", state="up"),
    step("netlink RTM_NEWLINK", "Turn on hairpin mode on {ifname}, so a container can reach itself through a "
         "port published on the host.", kind="bridge_slave", hairpin_mode="1"),
    step("netlink RTM_NEWLINK", "Create or change the network link {ifname}."),
    step("netlink RTM_SETLINK", "Change the settings of the link {ifname}."),
    step("netlink RTM_DELLINK", "Delete the link {ifname}; deleting one end of a veth pair deletes both.",
         ifname="veth*"),
    step("netlink RTM_DELLINK", "Delete the link {ifname}."),
    step("netlink RTM_GETLINK", "Look up the link {ifname} to learn its index.", ifname="*"),
    step("netlink RTM_GETLINK", "Read the settings of link {index}, e.g. its MTU."),
    step("netlink RTM_NEWADDR", "Give {ifname} the address {address}, so it can send and receive IP packets."),
    step("netlink RTM_DELADDR", "Remove the address {address} from {ifname}."),
    step("netlink RTM_GETADDR", "Read the IPv4 addresses in use, so the container network gets a subnet no "
         "address is in."),
    step("netlink RTM_NEWROUTE", "Add a default route via {gateway}, so traffic to other networks leaves "
         "through the bridge.", dst="default"),
    step("netlink RTM_NEWROUTE", "Add a route to {dst}."),
    step("netlink RTM_DELROUTE", "Delete the route to {dst}."),
    step("netlink RTM_GETROUTE", "Read the IPv4 routes, so the container network gets a subnet no route uses."),
    # -- Network: NAT and port publishing with nftables --------------------
    step("nft -f -", "Change pyrun's nftables rules in one transaction: all of them apply, or none does."),
    step("nft add table", "Create nftables objects, applied in one transaction:"),
    step("nft add chain", "Create nftables chains, applied in one transaction:"),
    step("nft add rule", "Add nftables rules, applied in one transaction:"),
    step("nft insert rule", "Insert nftables rules at the start of their chains:"),
    step("nft delete rule", "Delete nftables rules:"),
    step("nft delete table", "Delete nftables tables with every chain and rule in them:"),
    step("nft list *", "Read the nftables rules now in place ({call}), to decide what to change."),
    step("write", "Turn IPv4 forwarding on, so the host passes packets between the bridge and its other "
         "interfaces.", path="*/ip_forward", value="1"),
    step("write", "Turn IPv4 forwarding off again, as it was before pyrun turned it on.",
         path="*/ip_forward", value="0"),
    step("write", "Let {path} be {value}: packets from 127.0.0.1 may then leave through the bridge, so a "
         "published port answers on localhost.", path="*/route_localnet"),
    step("write", "Set the kernel setting {path} to {value}.", path="/proc/sys/*"),
    step("write", "Write {value} to {path}."),
    step("read", "Read whether IPv4 forwarding is on, so it can be restored later.", path="*/ip_forward"),
    step("read", "Read the kernel setting {path}."),
    # -- Security: capabilities, privileges, seccomp -----------------------
    step("capbset_drop", "Drop {capability} from the bounding set: no program the container runs can get "
         "it back."),
    step("prctl", "Drop capability number {arg2} from the bounding set: no program the container runs can "
         "get it back.", option="PR_CAPBSET_DROP"),
    step("capset", "Set the container's effective, permitted and inheritable capabilities; effective: "
         "{effective}."),
    step("prctl", "Clear the ambient capabilities, so execve grants none beyond the file's own.",
         option="PR_CAP_AMBIENT"),
    step("prctl", "Forbid gaining privileges through setuid programs or file capabilities, from here on.",
         option="PR_SET_NO_NEW_PRIVS"),
    step("prctl", "Keep the permitted capabilities across the change of user ID that follows.",
         option="PR_SET_KEEPCAPS"),
    step("prctl", "Ask the kernel to send signal {arg2} to this process when its parent dies.",
         option="PR_SET_PDEATHSIG"),
    step("prctl", "Set whether this process may be dumped or traced (dumpable = {arg2}).",
         option="PR_SET_DUMPABLE"),
    step("prctl", "Adopt orphaned descendants, so pyrun can reap them and read their exit status.",
         option="PR_SET_CHILD_SUBREAPER"),
    step("prctl", "Change the process attribute {option}."),
    step("setgroups", "Set the supplementary groups of the container's user: {groups}."),
    step("setresgid", "Switch to the container's group ID {egid} (real, effective and saved)."),
    step("setresuid", "Switch to the container's user ID {euid} (real, effective and saved)."),
    step("seccomp", "Install the seccomp filter ({instructions} BPF instructions): from here on the kernel fails "
         "the system calls a container never needs, such as mount, unshare and keyctl, with EPERM.",
         operation="SECCOMP_SET_MODE_FILTER"),
    step("setrlimit", "Set the resource limit {resource} to {soft} (soft) and {hard} (hard)."),
    # -- Processes ---------------------------------------------------------
    step("fork", "Start a child process, a copy of pyrun, that goes on with the steps marked [child]."),
    step("clone3", "Start the container's first process, a copy of pyrun, inside the cgroup {cgroup} from its "
         "first moment (CLONE_INTO_CGROUP) and in new namespaces; a new pid namespace holds this child itself, "
         "as its pid 1. It goes on with the steps marked [child]:", flags="CLONE_INTO_CGROUP|CLONE_NEWPID"),
    step("clone3", "Start a child process, a copy of pyrun, inside the cgroup {cgroup} from its first moment "
         "(CLONE_INTO_CGROUP), so nobody has to move it there. It goes on with the steps marked [child]."),
    step("sigaction", "Restore the default action of every signal, because ignored signals would "
         "otherwise pass to the container's command through execve."),
    step("setsid", "Start a new session, so the container's process leads its own process group."),
    step("close_range", "Close the file descriptors {first} to {last}, so the container inherits none of "
         "pyrun's open files."),
    step("openat2", "Open {path} inside the new root ({resolve}), so a symlink in the image cannot lead "
         "outside it.", resolve="*RESOLVE_IN_ROOT*"),
    step("openat2", "Open {path} under the resolution limits {resolve}."),
    step("fchdir", "Change the working directory to {path}."),
    step("ioctl", "Make this terminal the controlling terminal of the container's session.",
         request="TIOCSCTTY"),
    step("ioctl", "Set the terminal's window size.", request="TIOCSWINSZ"),
    step("ioctl", "Unlock the new pseudo-terminal, so it can be opened.", request="TIOCSPTLCK"),
    step("ioctl", "Open the other side of the pseudo-terminal.", request="TIOCGPTPEER"),
    step("ioctl", "Read the interface flags.", request="SIOCGIFFLAGS"),
    step("ioctl", "Set the interface flags, e.g. to switch it up.", request="SIOCSIFFLAGS"),
    step("ioctl", "Send the request {request} to file descriptor {fd}."),
    step("execve", "Run the container's command {path}: unless execve fails, this process stops being pyrun "
         "and becomes the container's program, in everything set up above."),
    step("kill", "Send {signal} to process {pid}."),
    # -- The registry: pulling an image ------------------------------------
    step("registry token", "Get a pull token for {scope} from the token service {url}; the registry asks for "
         "one even for a public image."),
    step("registry request", "The registry wants a token first (401 Unauthorized); its WWW-Authenticate "
         "header says where to get one.", status="401"),
    step("registry request", "Ask for the digest of {url} without downloading it (HEAD).", method="HEAD"),
    step("registry request", "Download the manifest or index at {url}: it names the image's config and "
         "layers by digest.", url="*/manifests/*"),
    step("registry request", "Download the blob at {url}: the image config or a layer, checked against its "
         "digest.", url="*/blobs/*"),
    step("registry request", "Check that {url} speaks the registry API.", url="*/v2/"),
    step("registry request", "Send {method} {url} to the registry."),
    step("unpack layer", "Unpack the layer {digest} into its own directory, turning deletions into overlay "
         "whiteouts."),
]

# The specification to read for each step that is not a kernel call, so has no man page.
REFERENCES = {
    "registry token": "distribution token authentication spec",
    "registry request": "OCI distribution spec",
    "unpack layer": "OCI image spec, image layer filesystem changeset",
}

UNKNOWN_STEP = "Call {call} (runtime/teaching/steps.py has no explanation for it yet)."
FAILED_STEP = "{outcome} ({error}): {step}"
# How a failed step starts, by errno; pyrun expects some failures, e.g.
# EEXIST for a cgroup directory that an earlier container created.
FAILURE_OUTCOMES = {
    "EEXIST": "Exists already",
    "ENOENT": "Not found",
}
FAILURE_OUTCOME = "Failed"
FD_PATH_NOTE = ("{fd_path} is {path}, opened inside the new root first: going through the file "
                "descriptor means a symlink in the image cannot redirect the step to the host.")


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
    return entry.text.format_map(_KeepMissing(args, call=name))


def nft_command_lines(commands: list[str]) -> list[tuple[str, str]]:
    """Return each command of an nft script with the line that explains it."""
    explained = []
    for command in commands:
        text = next(text for pattern, text in NFT_COMMANDS if fnmatch.fnmatchcase(command, pattern))
        explained.append((text, command))
    return explained


def namespace_lines(flags: str) -> list[str]:
    """Return one line per namespace in a rendered flag word like ``CLONE_NEWNS|CLONE_NEWPID``."""
    lines = []
    for flag in flags.split("|"):
        if flag in NAMESPACES:
            kind, purpose = NAMESPACES[flag]
            lines.append(f"{kind} namespace ({flag}): {purpose}")
    return lines
