"""The syscall seam: every call pyrun makes into the kernel passes through here.

Each wrapper is named and ordered like the call it makes (see the man page in
its docstring). A wrapper does three things:

1. builds a `Call` record with the arguments, flags rendered by name;
2. hands the record to every listener (tracing, the teaching mode, tests);
3. performs the call through the current backend and raises `OSError` that
   names the call, its flags and its paths when the kernel refuses.

When no listener is registered and the kernel is the backend (no trace,
no teaching mode, no test recorder), the wrapper makes the call directly
and builds the record only to describe a failure: about a hundred calls
start a container, so the records would cost a millisecond for nothing.

The standard library is used where it has the call (`os.chroot`);
where it has not (`os.sethostname` does not exist), libc is called
through runtime.cdata, a lighter front to ctypes' C core. Calls made through
libraries (python-prctl, pyroute2, nft) are wrapped here too, by `record()`,
so a trace shows every step.

Unit tests swap the backend for a `Recorder`, which stores the calls and
performs none of them, so they need no root.
"""

from __future__ import annotations

import errno as _errno
import fcntl
import os
import sys

from runtime import cdata, signals
from runtime.records import factory, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

# -- Flag tables --------------------------------------------------------------
# Values from <sched.h>, <sys/mount.h> and <linux/mount.h>.

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

CLONE_FLAGS = {
    "CLONE_NEWNS": CLONE_NEWNS,
    "CLONE_NEWCGROUP": CLONE_NEWCGROUP,
    "CLONE_NEWUTS": CLONE_NEWUTS,
    "CLONE_NEWIPC": CLONE_NEWIPC,
    "CLONE_NEWUSER": CLONE_NEWUSER,
    "CLONE_NEWPID": CLONE_NEWPID,
    "CLONE_NEWNET": CLONE_NEWNET,
}

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_SYNCHRONOUS = 0x10
MS_REMOUNT = 0x20
MS_MANDLOCK = 0x40
MS_DIRSYNC = 0x80
MS_NOSYMFOLLOW = 0x100
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_SILENT = 0x8000
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24

MOUNT_FLAGS = {
    "MS_RDONLY": MS_RDONLY,
    "MS_NOSUID": MS_NOSUID,
    "MS_NODEV": MS_NODEV,
    "MS_NOEXEC": MS_NOEXEC,
    "MS_SYNCHRONOUS": MS_SYNCHRONOUS,
    "MS_REMOUNT": MS_REMOUNT,
    "MS_MANDLOCK": MS_MANDLOCK,
    "MS_DIRSYNC": MS_DIRSYNC,
    "MS_NOSYMFOLLOW": MS_NOSYMFOLLOW,
    "MS_NOATIME": MS_NOATIME,
    "MS_NODIRATIME": MS_NODIRATIME,
    "MS_BIND": MS_BIND,
    "MS_MOVE": MS_MOVE,
    "MS_REC": MS_REC,
    "MS_SILENT": MS_SILENT,
    "MS_UNBINDABLE": MS_UNBINDABLE,
    "MS_PRIVATE": MS_PRIVATE,
    "MS_SLAVE": MS_SLAVE,
    "MS_SHARED": MS_SHARED,
    "MS_RELATIME": MS_RELATIME,
    "MS_STRICTATIME": MS_STRICTATIME,
}

MNT_FORCE = 0x1
MNT_DETACH = 0x2
MNT_EXPIRE = 0x4
UMOUNT_NOFOLLOW = 0x8

UMOUNT_FLAGS = {
    "MNT_FORCE": MNT_FORCE,
    "MNT_DETACH": MNT_DETACH,
    "MNT_EXPIRE": MNT_EXPIRE,
    "UMOUNT_NOFOLLOW": UMOUNT_NOFOLLOW,
}

# Syscall numbers that glibc has no wrapper for, per architecture
# (from the kernel's syscall tables: arch/x86/entry/syscalls/syscall_64.tbl
# and include/uapi/asm-generic/unistd.h for arm64).
SYSCALL_NUMBERS = {
    "x86_64": {"pivot_root": 155, "openat2": 437, "bpf": 321, "rt_sigaction": 13, "seccomp": 317, "clone3": 435},
    "aarch64": {"pivot_root": 41, "openat2": 437, "bpf": 280, "rt_sigaction": 134, "seccomp": 277, "clone3": 435},
}


def render_flags(value: int, table: dict[str, int]) -> str:
    """Render a flag word by name, e.g. ``MS_BIND|MS_REC``; unknown bits in hex."""
    if value == 0:
        return "0"
    names = []
    rest = value
    for name, bit in table.items():
        if bit and value & bit == bit:
            names.append(name)
            rest &= ~bit
    if rest:
        names.append(hex(rest))
    return "|".join(names)


class Flags:
    """A flag word kept as a number until a trace or an error message shows it by name."""

    __slots__ = ("value", "table")

    def __init__(self, value: int, table: dict[str, int]) -> None:
        self.value = value
        self.table = table

    def __str__(self) -> str:
        return render_flags(self.value, self.table)


# -- Call records and listeners -------------------------------------------------


@record
class Call:
    """One kernel call: its name, man page, arguments as the trace shows them."""

    name: str
    manpage: str
    args: dict[str, Any] = factory(dict)
    error: OSError | None = None
    result: Any = None  # what the call returned: a pid, a descriptor, ...

    def render(self) -> str:
        """Render the call strace-like: ``mount("overlay", "/x", ...) = 0``, or ``fork() = 4242``."""
        parts = []
        for key, value in self.args.items():
            if isinstance(value, str):
                parts.append(f"{key}={value!r}")
            else:
                parts.append(f"{key}={value}")
        # An integer result (a pid, a descriptor) is shown as strace shows
        # it; calls whose wrappers return nothing succeeded with 0.
        is_number = isinstance(self.result, int) and not isinstance(self.result, bool)
        outcome = str(self.result) if is_number else "0"
        if self.error is not None:
            code = _errno.errorcode.get(self.error.errno or 0, "?")
            outcome = f"-1 {code} ({os.strerror(self.error.errno or 0)})"
        return f"{self.name}({', '.join(parts)}) = {outcome}"


if TYPE_CHECKING:
    Listener = Callable[[Call], None]
_listeners: list[Listener] = []


def add_listener(listener: Listener) -> None:
    """Register a function that receives every `Call` after it is made."""
    _listeners.append(listener)


def remove_listener(listener: Listener) -> None:
    _listeners.remove(listener)


def _notify(call: Call) -> None:
    for listener in list(_listeners):
        listener(call)


_trace_fd: int | None = None


def start_tracing() -> None:
    """Print every call on stderr from now on: ``--log-level trace``.

    The lines go to a copy of fd 2 made here, close-on-exec like every
    os.dup(), so they stay on pyrun's stderr after a container's process has
    put the container's own stderr on fd 2, and the command never inherits it.
    """
    global _trace_fd
    _trace_fd = os.dup(2)
    add_listener(trace_to_stderr)


def trace_fd() -> int | None:
    """Return the descriptor the trace writes to, or None when tracing is off (see runtime.process.narration_fd)."""
    return _trace_fd


def trace_to_stderr(call: Call) -> None:
    """Print one strace-like line per call; the listener that start_tracing adds.

    When stderr is gone (`pyrun --log-level trace ... 2>&1 | head`), the
    trace stops and the call goes on: a failed write must not look like a
    failed kernel call, which would stop a container's set-up or clean-up.
    """
    try:
        if _trace_fd is None:
            sys.stderr.write(f"trace: {call.render()}\n")
            sys.stderr.flush()
        else:
            os.write(_trace_fd, f"trace: {call.render()}\n".encode(errors="replace"))
    except (OSError, ValueError):
        remove_listener(trace_to_stderr)


# -- Backends -----------------------------------------------------------------


class Recorder:
    """A fake backend that stores each call and performs nothing.

    Unit tests use it through `recording()`. `fail` maps a call name to an
    errno, so a test can make one call fail as the kernel would.
    """

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.fail: dict[str, int] = {}

    def perform(self, call: Call, action: Callable[[], Any]) -> Any:
        self.calls.append(call)
        code = self.fail.get(call.name)
        if code is not None:
            raise OSError(code, os.strerror(code))
        return None

    def names(self) -> list[str]:
        return [call.name for call in self.calls]


class KernelBackend:
    """The real backend: runs the action, which calls libc or a library."""

    def perform(self, call: Call, action: Callable[[], Any]) -> Any:
        return action()


_KERNEL = KernelBackend()
_backend: KernelBackend | Recorder = _KERNEL


class _Recording:
    """A `Recorder` in place of the kernel for a ``with`` block, which gets the recorder."""

    def __init__(self) -> None:
        self.recorder = Recorder()
        self.previous: list[KernelBackend | Recorder] = []

    def __enter__(self) -> Recorder:
        global _backend
        self.previous.append(_backend)
        _backend = self.recorder
        return self.recorder

    def __exit__(self, *exc_info: object) -> None:
        global _backend
        _backend = self.previous.pop()


def recording() -> _Recording:
    """Return a ``with`` block in which a `Recorder` takes every call instead of the kernel.

    A class, not contextlib: see "Start-up cost" in docs/architecture.md.
    """
    return _Recording()


def record(
    name: str,
    manpage: str,
    action: Callable[[], Any],
    /,
    *,
    returns: bool = True,
    **args: Any,
) -> Any:
    """Make one call through the seam: run it, notify listeners, wrap errors.

    `action` performs the call. Library calls (python-prctl, pyroute2, nft)
    use this directly so that they are traced like libc calls. A call that
    does not return on success (execve) sets `returns=False`, so listeners
    hear of it before it is made, and once more if it fails.
    """
    if _backend is _KERNEL and not _listeners:
        # No trace and no recorder: make the call, and build its record
        # only to describe a failure.
        try:
            return action()
        except OSError as err:
            raise _describe(Call(name, manpage, _shown(args)), err) from None

    call = Call(name, manpage, _shown(args))
    if not returns:
        _notify(call)
    try:
        result = _backend.perform(call, action)
    except OSError as err:
        # A call that does not return on success was announced already;
        # listeners hear of it again, with its error, when it does return.
        call.error = err
        _notify(call)
        raise _describe(call, err) from None
    if returns:
        call.result = result
        _notify(call)
    return result


def _shown(args: dict[str, Any]) -> dict[str, Any]:
    """Return the arguments as a trace shows them: flag words by name."""
    return {key: str(value) if isinstance(value, Flags) else value for key, value in args.items()}


def _describe(call: Call, err: OSError) -> OSError:
    """Build an OSError that names the call, its flags and its paths."""
    detail = ", ".join(f"{k}={v}" for k, v in call.args.items())
    paths = [v for k, v in call.args.items() if k in ("path", "target", "source", "new_root")]
    message = f"{call.name}({detail}): {os.strerror(err.errno or 0)}"
    new = OSError(err.errno, message)
    if paths:
        new.filename = str(paths[0])
    return new


# -- libc ---------------------------------------------------------------------

_libc: cdata.Library | None = None


def libc() -> cdata.Library:
    """Load libc once, with errno captured for each call."""
    global _libc
    if _libc is None:
        try:
            # glibc's soname. ctypes.util (which imports subprocess and
            # tempfile) is only needed to find another libc.
            _libc = cdata.Library("libc.so.6")
        except OSError:
            from ctypes.util import find_library

            _libc = cdata.Library(find_library("c"))
    return _libc


def _check(result: int) -> int:
    if result == -1:
        code = cdata.get_errno()
        raise OSError(code, os.strerror(code))
    return result


def _bytes(value: str | None) -> bytes | None:
    return None if value is None else os.fsencode(value)


_MACHINE = os.uname().machine  # the architecture this process runs on


def syscall_number(name: str) -> int:
    """Look up a syscall number that libc has no wrapper for."""
    table = SYSCALL_NUMBERS.get(_MACHINE)
    if table is None:
        raise OSError(
            _errno.ENOSYS,
            f"no syscall table for architecture {_MACHINE!r}: add its numbers "
            "to SYSCALL_NUMBERS in runtime/syscalls.py",
        )
    return table[name]


# -- Namespaces: unshare(2), setns(2) --------------------------------------------


def unshare(flags: int) -> None:
    """Move the caller into new namespaces (unshare(2))."""
    record(
        "unshare",
        "unshare(2)",
        lambda: _check(libc().unshare(flags)),
        flags=Flags(flags, CLONE_FLAGS),
    )


def setns(fd: int, nstype: int = 0, *, path: str = "") -> None:
    """Join the namespace that `fd` refers to (setns(2))."""
    record(
        "setns",
        "setns(2)",
        lambda: _check(libc().setns(fd, nstype)),
        path=path or f"fd {fd}",
        nstype=Flags(nstype, CLONE_FLAGS),
    )


# -- Mounts: mount(2), umount2(2), pivot_root(2) --------------------------------


def mount(
    source: str | None,
    target: str,
    fstype: str | None = None,
    flags: int = 0,
    data: str | None = None,
) -> None:
    """Attach a filesystem, or change a mount's flags or propagation (mount(2))."""

    def action() -> int:
        return _check(
            libc().mount(_bytes(source), _bytes(target), _bytes(fstype), cdata.c_ulong(flags), _bytes(data))
        )

    record(
        "mount",
        "mount(2)",
        action,
        source=source or "none",
        target=target,
        fstype=fstype or "none",
        flags=Flags(flags, MOUNT_FLAGS),
        data=data or "",
    )


def umount2(target: str, flags: int = 0) -> None:
    """Detach a mount (umount2(2))."""
    record(
        "umount2",
        "umount2(2)",
        lambda: _check(libc().umount2(_bytes(target), flags)),
        target=target,
        flags=Flags(flags, UMOUNT_FLAGS),
    )


def pivot_root(new_root: str, put_old: str) -> None:
    """Make `new_root` the root of this mount namespace (pivot_root(2))."""

    def action() -> int:
        number = syscall_number("pivot_root")
        return _check(libc().syscall(number, _bytes(new_root), _bytes(put_old)))

    record("pivot_root", "pivot_root(2)", action, new_root=new_root, put_old=put_old)


def chroot(path: str) -> None:
    """Change the root directory of this process (chroot(2))."""
    record("chroot", "chroot(2)", lambda: os.chroot(path), path=path)


def chdir(path: str) -> None:
    """Change the working directory (chdir(2))."""
    record("chdir", "chdir(2)", lambda: os.chdir(path), path=path)


# -- Identity: sethostname(2) ---------------------------------------------------


def sethostname(name: str) -> None:
    """Set the hostname of this UTS namespace (sethostname(2))."""
    encoded = name.encode()
    record(
        "sethostname",
        "sethostname(2)",
        lambda: _check(libc().sethostname(encoded, len(encoded))),
        name=name,
    )


# -- Files: mknod(2), symlink(2) ---------------------------------------------------


def mknod(path: str, mode: int, device: int = 0) -> None:
    """Create a device node or FIFO (mknod(2))."""
    record(
        "mknod",
        "mknod(2)",
        lambda: os.mknod(path, mode, device),
        path=path,
        mode=oct(mode),
        device=f"{os.major(device)}:{os.minor(device)}",
    )


def symlink(target: str, path: str) -> None:
    """Create a symbolic link at `path` that points to `target` (symlink(2))."""
    record("symlink", "symlink(2)", lambda: os.symlink(target, path), target=target, path=path)


# -- Processes: execve(2) ------------------------------------------------------------


def execve(path: str, argv: list[str], env: dict[str, str]) -> None:
    """Replace this process with `path` (execve(2)). Returns only on failure.

    SIGPIPE gets its default action only here, as the last step: until
    then pyrun ignores it, so that narrating to a stderr whose reader is
    gone (`pyrun --explain ... 2>&1 | head`) fails with EPIPE instead of
    killing the set-up (see reset_signal_actions).
    """

    def action() -> None:
        signals.signal(signals.SIGPIPE, signals.SIG_DFL)
        try:
            os.execve(path, argv, env)
        finally:
            signals.signal(signals.SIGPIPE, signals.SIG_IGN)  # reached only when execve failed

    record("execve", "execve(2)", action, returns=False, path=path, argv=argv)


# -- Cgroups: cgroups(7), mkdir(2), rmdir(2), kill(2) -------------------------------

def mkdir(path: str, mode: int = 0o755) -> None:
    """Create a directory; in a cgroup filesystem this creates a cgroup (mkdir(2))."""
    record("mkdir", "mkdir(2)", lambda: os.mkdir(path, mode), path=path, mode=oct(mode))


def rmdir(path: str) -> None:
    """Remove an empty directory; in a cgroup filesystem, an empty cgroup (rmdir(2))."""
    record("rmdir", "rmdir(2)", lambda: os.rmdir(path), path=path)


def write_cgroup_file(path: str, value: str) -> None:
    """Write `value` to a cgroup control file in one write(2) (cgroups(7)).

    The kernel parses each write(2) on its own, so the value must not be split
    into several writes. The file is opened without O_CREAT: a control file
    that does not exist means the controller or feature is missing.
    """

    def action() -> None:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
        try:
            os.write(fd, value.encode())
        finally:
            os.close(fd)

    record("write_cgroup_file", "cgroups(7)", action, path=path, value=value)


def kill(pid: int, sig: int) -> None:
    """Send signal `sig` to process `pid` (kill(2))."""
    record(
        "kill",
        "kill(2)",
        lambda: os.kill(pid, sig),
        pid=pid,
        signal=signals.NAMES_BY_NUMBER.get(sig, str(sig)),
    )


# -- Containers: the calls `pyrun run` makes ------------------------------------
# Values from <linux/prctl.h>, <asm-generic/ioctls.h> and <linux/sockios.h>.

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4

PRCTL_OPTIONS = {
    PR_SET_PDEATHSIG: "PR_SET_PDEATHSIG",
    PR_SET_DUMPABLE: "PR_SET_DUMPABLE",
    PR_SET_KEEPCAPS: "PR_SET_KEEPCAPS",
    PR_CAPBSET_DROP: "PR_CAPBSET_DROP",
    PR_SET_CHILD_SUBREAPER: "PR_SET_CHILD_SUBREAPER",
    PR_SET_NO_NEW_PRIVS: "PR_SET_NO_NEW_PRIVS",
    PR_CAP_AMBIENT: "PR_CAP_AMBIENT",
}

TIOCSCTTY = 0x540E
TIOCSWINSZ = 0x5414
TIOCSPTLCK = 0x40045431
TIOCGPTPEER = 0x5441
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914

IOCTL_REQUESTS = {
    TIOCSCTTY: "TIOCSCTTY",
    TIOCSWINSZ: "TIOCSWINSZ",
    TIOCSPTLCK: "TIOCSPTLCK",
    TIOCGPTPEER: "TIOCGPTPEER",
    SIOCGIFFLAGS: "SIOCGIFFLAGS",
    SIOCSIFFLAGS: "SIOCSIFFLAGS",
}


def fork() -> int:
    """Create a child process (fork(2)); returns 0 in the child, its pid in the parent."""
    return record("fork", "fork(2)", os.fork)


# -- clone3(2) into a cgroup ----------------------------------------------------
# Values from <linux/sched.h>. CLONE_INTO_CGROUP came in Linux 5.7.

CLONE_INTO_CGROUP = 0x200000000
CLONE3_FLAGS = {**CLONE_FLAGS, "CLONE_INTO_CGROUP": CLONE_INTO_CGROUP}


class _CloneArgs(cdata.Structure):
    """`struct clone_args` up to its `cgroup` field (CLONE_ARGS_SIZE_VER2)."""

    _fields_ = [
        ("flags", cdata.c_uint64),
        ("pidfd", cdata.c_uint64),
        ("child_tid", cdata.c_uint64),
        ("parent_tid", cdata.c_uint64),
        ("exit_signal", cdata.c_uint64),
        ("stack", cdata.c_uint64),
        ("stack_size", cdata.c_uint64),
        ("tls", cdata.c_uint64),
        ("set_tid", cdata.c_uint64),
        ("set_tid_size", cdata.c_uint64),
        ("cgroup", cdata.c_uint64),
    ]


def fork_into_cgroup(cgroup_fd: int, *, path: str = "", namespaces: int = 0) -> int:
    """Fork a child that starts inside a cgroup v2 cgroup (clone3(2), CLONE_INTO_CGROUP).

    `cgroup_fd` is the cgroup's directory, opened. Returns 0 in the child
    and the child's pid in the parent, as fork(2) does. A child born in its
    cgroup needs no move later. Such a move, a pid written to cgroup.procs,
    makes the kernel wait for an RCU grace period when no other move came
    just before it, several milliseconds.

    `namespaces` (CLONE_NEW* flags) starts the child in new namespaces of
    those kinds. Unlike unshare(2), a new pid namespace then holds the child
    itself, as its pid 1, so no second fork is needed.

    With no stack given, clone3(2) copies the caller's stack as fork(2)
    does. Python's own bookkeeping runs around it, as os.fork() runs it:
    the at-fork hooks, and in the child the reset of the interpreter's
    locks. A kernel older than 5.7, or a seccomp filter without clone3
    (Docker's default one returns ENOSYS, others EPERM), fails with ENOSYS,
    EINVAL, E2BIG or EPERM: the caller then forks and moves the child instead.

    The caller must have a single thread: glibc's fork(2) wrapper, which is
    bypassed here, is what makes locks that other threads held (malloc's,
    stdio's) usable in the child.

    NOTE: glibc's record of the thread ID in the child is also still the
    parent's. Nothing pyrun's children do before execve(2) reads it, as far
    as tested with glibc 2.36; an os.fork() in the child (--init) sets it
    right again.
    """
    flags = CLONE_INTO_CGROUP | namespaces
    args = _CloneArgs(flags=flags, exit_signal=signals.SIGCHLD, cgroup=cgroup_fd)

    def action() -> int:
        number = syscall_number("clone3")
        # A PyDLL function keeps the interpreter lock through the call, as
        # os.fork() does, so the child starts out holding it.
        python = cdata.Library(None, keep_lock=True)
        raw_syscall = python.syscall
        raw_syscall.restype = cdata.c_long
        python.PyOS_BeforeFork()
        pid = raw_syscall(cdata.c_long(number), cdata.byref(args), cdata.c_size_t(cdata.sizeof(args)))
        if pid == 0:
            python.PyOS_AfterFork_Child()
            return 0
        code = cdata.get_errno()
        python.PyOS_AfterFork_Parent()
        if pid < 0:
            raise OSError(code, os.strerror(code))
        return pid

    return record("clone3", "clone3(2)", action, flags=Flags(flags, CLONE3_FLAGS), cgroup=path or f"fd {cgroup_fd}")


def prctl(option: int, arg2: int = 0, arg3: int = 0) -> int:
    """Change a process attribute that python-prctl does not cover (prctl(2))."""

    def action() -> int:
        return _check(libc().prctl(option, cdata.c_ulong(arg2), cdata.c_ulong(arg3), 0, 0))

    return record(
        "prctl", "prctl(2)", action, option=PRCTL_OPTIONS.get(option, str(option)), arg2=arg2, arg3=arg3
    )


def fchdir(fd: int, *, path: str = "") -> None:
    """Change the working directory to the directory open as `fd` (fchdir(2))."""
    record("fchdir", "fchdir(2)", lambda: os.fchdir(fd), fd=fd, path=path or f"fd {fd}")


def setsid() -> None:
    """Start a new session with no controlling terminal (setsid(2))."""
    record("setsid", "setsid(2)", os.setsid)


def setgroups(groups: list[int]) -> None:
    """Set the supplementary group IDs (setgroups(2))."""
    record("setgroups", "setgroups(2)", lambda: os.setgroups(groups), groups=groups)


def setresgid(rgid: int, egid: int, sgid: int) -> None:
    """Set the real, effective and saved group IDs (setresgid(2))."""
    record("setresgid", "setresgid(2)", lambda: os.setresgid(rgid, egid, sgid), rgid=rgid, egid=egid, sgid=sgid)


def setresuid(ruid: int, euid: int, suid: int) -> None:
    """Set the real, effective and saved user IDs (setresuid(2))."""
    record("setresuid", "setresuid(2)", lambda: os.setresuid(ruid, euid, suid), ruid=ruid, euid=euid, suid=suid)


def close_range(first: int, last: int) -> None:
    """Close every file descriptor from `first` to `last`, inclusive (close_range(2))."""
    record("close_range", "close_range(2)", lambda: os.closerange(first, last + 1), first=first, last=last)


def ioctl(fd: int, request: int, arg: int | bytes = 0) -> int | bytes:
    """Send a device-specific request to the file open as `fd` (ioctl(2))."""
    return record(
        "ioctl",
        "ioctl(2)",
        lambda: fcntl.ioctl(fd, request, arg),
        fd=fd,
        request=IOCTL_REQUESTS.get(request, hex(request)),
    )


# -- Path resolution: openat2(2) ---------------------------------------------------
# Values from <linux/openat2.h> and <fcntl.h>. glibc 2.36 has no openat2()
# wrapper, so the call goes through syscall(2) with a `struct open_how`.

RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10
RESOLVE_CACHED = 0x20

RESOLVE_FLAGS = {
    "RESOLVE_NO_XDEV": RESOLVE_NO_XDEV,
    "RESOLVE_NO_MAGICLINKS": RESOLVE_NO_MAGICLINKS,
    "RESOLVE_NO_SYMLINKS": RESOLVE_NO_SYMLINKS,
    "RESOLVE_BENEATH": RESOLVE_BENEATH,
    "RESOLVE_IN_ROOT": RESOLVE_IN_ROOT,
    "RESOLVE_CACHED": RESOLVE_CACHED,
}

OPEN_FLAGS = {
    "O_WRONLY": os.O_WRONLY,
    "O_RDWR": os.O_RDWR,
    "O_CREAT": os.O_CREAT,
    "O_EXCL": os.O_EXCL,
    "O_TRUNC": os.O_TRUNC,
    "O_DIRECTORY": os.O_DIRECTORY,
    "O_NOFOLLOW": os.O_NOFOLLOW,
    "O_CLOEXEC": os.O_CLOEXEC,
    "O_PATH": getattr(os, "O_PATH", 0o10000000),
}


class _OpenHow(cdata.Structure):
    """`struct open_how` from <linux/openat2.h>."""

    _fields_ = [
        ("flags", cdata.c_uint64),
        ("mode", cdata.c_uint64),
        ("resolve", cdata.c_uint64),
    ]


def openat2(dirfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
    """Open `path` relative to `dirfd` under resolution limits (openat2(2)).

    With RESOLVE_IN_ROOT, `dirfd` acts as the root directory for the lookup:
    ``..`` stops there and absolute symlinks resolve from there, so the
    result always lies inside `dirfd`. Returns the new file descriptor.
    """
    how = _OpenHow(flags, mode, resolve)

    def action() -> int:
        number = syscall_number("openat2")
        return _check(
            libc().syscall(
                cdata.c_long(number),
                cdata.c_int(dirfd),
                _bytes(path),
                cdata.byref(how),
                cdata.c_size_t(cdata.sizeof(how)),
            )
        )

    return record(
        "openat2",
        "openat2(2)",
        action,
        dirfd=dirfd,
        path=path,
        flags=Flags(flags, OPEN_FLAGS),
        resolve=Flags(resolve, RESOLVE_FLAGS),
    )


# -- eBPF: bpf(2) -------------------------------------------------------------------
# Values from <linux/bpf.h>. glibc has no bpf() wrapper, so the call goes
# through syscall(2) with a `union bpf_attr`, which each command reads as
# its own struct. The kernel treats the bytes after the struct as zero.

BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8

BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6

BPF_F_ALLOW_OVERRIDE = 1 << 0
BPF_F_ALLOW_MULTI = 1 << 1

BPF_PROG_TYPES = {BPF_PROG_TYPE_CGROUP_DEVICE: "BPF_PROG_TYPE_CGROUP_DEVICE"}
BPF_ATTACH_TYPES = {BPF_CGROUP_DEVICE: "BPF_CGROUP_DEVICE"}
BPF_ATTACH_FLAGS = {
    "BPF_F_ALLOW_OVERRIDE": BPF_F_ALLOW_OVERRIDE,
    "BPF_F_ALLOW_MULTI": BPF_F_ALLOW_MULTI,
}

# The size of one `struct bpf_insn`, the unit of an eBPF program.
BPF_INSN_SIZE = 8


class _BpfProgLoadAttr(cdata.Structure):
    """The part of `union bpf_attr` that BPF_PROG_LOAD reads."""

    _fields_ = [
        ("prog_type", cdata.c_uint32),
        ("insn_cnt", cdata.c_uint32),
        ("insns", cdata.c_uint64),
        ("license", cdata.c_uint64),
        ("log_level", cdata.c_uint32),
        ("log_size", cdata.c_uint32),
        ("log_buf", cdata.c_uint64),
        ("kern_version", cdata.c_uint32),
        ("prog_flags", cdata.c_uint32),
        ("prog_name", cdata.c_char * 16),
        ("prog_ifindex", cdata.c_uint32),
        ("expected_attach_type", cdata.c_uint32),
    ]


class _BpfProgAttachAttr(cdata.Structure):
    """The part of `union bpf_attr` that BPF_PROG_ATTACH reads."""

    _fields_ = [
        ("target_fd", cdata.c_uint32),
        ("attach_bpf_fd", cdata.c_uint32),
        ("attach_type", cdata.c_uint32),
        ("attach_flags", cdata.c_uint32),
    ]


def _bpf(command: int, attr: cdata.Structure) -> int:
    number = syscall_number("bpf")
    return _check(
        libc().syscall(cdata.c_long(number), cdata.c_int(command), cdata.byref(attr),
                       cdata.c_uint(cdata.sizeof(attr)))
    )


def bpf_prog_load(
    prog_type: int,
    instructions: bytes,
    *,
    license: str,
    name: str,
    log: cdata.Array | None = None,
) -> int:
    """Load an eBPF program and return its file descriptor (bpf(2), BPF_PROG_LOAD).

    `instructions` are encoded `struct bpf_insn`s, 8 bytes each. The kernel's
    verifier checks the program before it accepts it. When a `log` buffer
    (from cdata.string_buffer) is given, the verifier writes its
    reasons there. `name` is at most 15 characters: letters, digits, _ and ".".
    """
    code = cdata.string_buffer(instructions)
    license_text = cdata.string_buffer(license.encode() + b"\0")
    attr = _BpfProgLoadAttr(
        prog_type=prog_type,
        insn_cnt=len(instructions) // BPF_INSN_SIZE,
        insns=cdata.addressof(code),
        license=cdata.addressof(license_text),
        prog_name=name.encode(),
    )
    if log is not None:
        attr.log_level = 1
        attr.log_size = len(log)
        attr.log_buf = cdata.addressof(log)
    return record(
        "bpf",
        "bpf(2)",
        lambda: _bpf(BPF_PROG_LOAD, attr),
        cmd="BPF_PROG_LOAD",
        prog_type=BPF_PROG_TYPES.get(prog_type, str(prog_type)),
        insn_cnt=attr.insn_cnt,
        name=name,
    )


def bpf_prog_attach(target_fd: int, prog_fd: int, attach_type: int, flags: int = 0, *, path: str = "") -> None:
    """Attach the loaded program `prog_fd` to the cgroup open as `target_fd` (bpf(2), BPF_PROG_ATTACH).

    The program stays attached after both file descriptors are closed,
    until the cgroup is removed.
    """

    def action() -> int:
        attr = _BpfProgAttachAttr(
            target_fd=target_fd,
            attach_bpf_fd=prog_fd,
            attach_type=attach_type,
            attach_flags=flags,
        )
        return _bpf(BPF_PROG_ATTACH, attr)

    record(
        "bpf",
        "bpf(2)",
        action,
        cmd="BPF_PROG_ATTACH",
        target=path or f"fd {target_fd}",
        attach_type=BPF_ATTACH_TYPES.get(attach_type, str(attach_type)),
        flags=Flags(flags, BPF_ATTACH_FLAGS),
    )


# -- Signals: sigaction(2) --------------------------------------------------------


class _KernelSigaction(cdata.Structure):
    """The kernel's struct sigaction (the same layout on x86_64 and arm64)."""

    _fields_ = [
        ("handler", cdata.c_void_p),
        ("flags", cdata.c_ulong),
        ("restorer", cdata.c_void_p),
        ("mask", cdata.c_uint64),
    ]


def _set_default_action(number: int) -> None:
    """Set SIG_DFL for `number` with the raw rt_sigaction system call."""
    default = _KernelSigaction()  # all zero: SIG_DFL, no flags, empty mask
    size = cdata.sizeof(cdata.c_uint64)
    _check(libc().syscall(syscall_number("rt_sigaction"), number, cdata.byref(default), None, size))


def reset_signal_actions() -> None:
    """Restore the default action of every signal (sigaction(2) with SIG_DFL).

    Ignored signals survive execve(2), so without this the command would
    inherit what pyrun's caller or Python itself ignores (for example a
    real-time signal that a CI runner ignores). SIGPIPE is the exception:
    it stays ignored until `execve` sets its default action. Python's signal
    module and glibc both reject the two real-time signals glibc reserves
    (32 and 33), so those go through the rt_sigaction system call directly.
    One record covers the whole loop, so a trace shows a single step.

    Python's signal module reads every signal's action when it starts and
    records each change made through it. So signals.getsignal() shows,
    without a system call, whether a signal needs a change: only those are set.
    """

    def action() -> None:
        valid = signals.valid_signals()
        for number in range(1, signals.NSIG):
            if number in (signals.SIGKILL, signals.SIGSTOP):
                continue
            if number not in valid:
                _set_default_action(number)
                continue
            expected = signals.SIG_IGN if number == signals.SIGPIPE else signals.SIG_DFL
            if signals.getsignal(number) != expected:
                signals.signal(number, expected)

    record("sigaction", "sigaction(2)", action, signals="all", handler="SIG_DFL")


# -- Seccomp: seccomp(2) ----------------------------------------------------------
# Values from <linux/seccomp.h>. glibc 2.36 has no seccomp() wrapper.

SECCOMP_SET_MODE_FILTER = 1

SECCOMP_FILTER_FLAG_TSYNC = 1 << 0
SECCOMP_FILTER_FLAG_LOG = 1 << 1
SECCOMP_FILTER_FLAG_SPEC_ALLOW = 1 << 2

SECCOMP_FILTER_FLAGS = {
    "SECCOMP_FILTER_FLAG_TSYNC": SECCOMP_FILTER_FLAG_TSYNC,
    "SECCOMP_FILTER_FLAG_LOG": SECCOMP_FILTER_FLAG_LOG,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": SECCOMP_FILTER_FLAG_SPEC_ALLOW,
}

# The size of one `struct sock_filter`, the unit of a classic BPF program.
SOCK_FILTER_SIZE = 8


class _SockFprog(cdata.Structure):
    """struct sock_fprog: the number of instructions and a pointer to them."""

    _fields_ = [
        ("len", cdata.c_ushort),
        ("filter", cdata.c_void_p),
    ]


def seccomp_set_mode_filter(program: bytes, flags: int = 0) -> None:
    """Install a classic BPF filter on this thread's system calls (seccomp(2), SECCOMP_SET_MODE_FILTER).

    `program` is encoded `struct sock_filter`s, 8 bytes each. The kernel
    requires PR_SET_NO_NEW_PRIVS or CAP_SYS_ADMIN, and the filter stays for
    the life of the process and its children.
    """
    instructions = cdata.string_buffer(program)
    fprog = _SockFprog(len=len(program) // SOCK_FILTER_SIZE, filter=cdata.addressof(instructions))

    def action() -> int:
        number = syscall_number("seccomp")
        return _check(libc().syscall(cdata.c_long(number), cdata.c_uint(SECCOMP_SET_MODE_FILTER),
                                     cdata.c_uint(flags), cdata.byref(fprog)))

    record(
        "seccomp",
        "seccomp(2)",
        action,
        operation="SECCOMP_SET_MODE_FILTER",
        flags=Flags(flags, SECCOMP_FILTER_FLAGS),
        instructions=fprog.len,
    )
