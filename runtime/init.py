"""The `--init` mini init: pid 1 that forwards signals and reaps zombies.

Pid 1 in a pid namespace has two duties that most programs do not expect.
The kernel delivers it only the signals it has handlers for. And every
orphaned process in the namespace becomes its child, so it must wait(2) for
them or they stay zombies. With `--init`, pyrun's own process stays pid 1
and does both (like Docker's tini); the command runs as pid 2.

The init exits as soon as the command exits, with the command's status
(128+N when a signal N ended it). The kernel then kills whatever is left
in the namespace.

NOTE: the init keeps pyrun's Python interpreter mapped, so its
/proc/1/exe names the host's interpreter. The process is non-dumpable,
which keeps /proc/1/exe and /proc/1/mem closed to the container unless it
holds CAP_SYS_PTRACE (granted only by --cap-add SYS_PTRACE or --privileged).
"""

from __future__ import annotations

import os
import sys

# python-prctl's C module: see runtime.capabilities.
import _prctl

from runtime import signals, syscalls

# The name `ps` in the container shows for pid 1, in place of the host's
# interpreter path and pyrun's command line.
PROCESS_TITLE = "pyrun-init"

FORWARDED_SIGNALS = [
    signals.SIGHUP,
    signals.SIGINT,
    signals.SIGQUIT,
    signals.SIGTERM,
    signals.SIGUSR1,
    signals.SIGUSR2,
    signals.SIGWINCH,
    signals.SIGCONT,
]


def run_init(channel) -> None:
    """Fork the command's process; return in it, and never return in the init.

    `channel` is the launch channel: the command's process keeps it to
    report a failed execve(2), and the init closes its copy.
    """
    command_pid = 0

    def forward(signum: int, _frame) -> None:
        if command_pid:
            try:
                syscalls.kill(command_pid, signum)
            except ProcessLookupError:
                pass

    for sig in FORWARDED_SIGNALS:
        signals.signal(sig, forward)
    # Before the fork: the command may read /proc/1/cmdline at once, and
    # must find "pyrun-init" there, not pyrun's command line on the host.
    syscalls.record(
        "set_proctitle",
        "prctl(2) PR_SET_NAME",
        lambda: (_prctl.prctl(_prctl.PR_SET_NAME, PROCESS_TITLE), _prctl.set_proctitle(PROCESS_TITLE)),
        title=PROCESS_TITLE,
    )

    command_pid = syscalls.fork()
    if command_pid == 0:
        for sig in FORWARDED_SIGNALS:
            signals.signal(sig, signals.SIG_DFL)
        # The command's process takes the terminal itself, before execve(2).
        # An interactive shell that starts in a background process group
        # stops itself with SIGTTIN, and nothing would continue it.
        _take_terminal()
        return

    channel.close()
    syscalls.prctl(syscalls.PR_SET_DUMPABLE, 0)
    os._exit(reap_until_exit(command_pid))


def _take_terminal() -> None:
    """Put this process in a new process group and make it the terminal's foreground group.

    Then Ctrl-C on the terminal reaches the command directly, as in tini.
    tcsetpgrp(3) from a background group sends SIGTTOU, so the signal is ignored
    for the call and set back to the default, which execve(2) keeps.
    """
    os.setpgid(0, 0)
    if not os.isatty(0):
        return
    signals.signal(signals.SIGTTOU, signals.SIG_IGN)
    try:
        os.tcsetpgrp(0, os.getpid())
    except OSError:
        pass  # ENOTTY: with -i but no -t, stdin is a terminal of the host's session
    finally:
        signals.signal(signals.SIGTTOU, signals.SIG_DFL)


def reap_until_exit(command_pid: int) -> int:
    """Wait for every child until the command exits; return its exit code."""
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 0
        if pid == command_pid:
            code = os.waitstatus_to_exitcode(status)
            sys.stdout.flush()
            return 128 - code if code < 0 else code
