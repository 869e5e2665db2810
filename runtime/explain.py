"""The narration of `pyrun --explain`: each step, as it happens, on stderr.

`enable()` registers `narrate` as a listener of the syscall seam, so every
call that pyrun makes into the kernel is narrated right after it is made
(execve just before, because it does not return). Nothing here repeats the
logic of a step: what is narrated is exactly what the seam saw, so turning
the narration on changes what is printed, never what is done.

Steps that are not kernel calls, such as registry requests, are reported by
the code that makes them:

    from runtime import explain
    explain.step("registry request", method="GET", url=url, status=response.status_code)

`step()` does nothing until `enable()` is called, and this module imports
only the standard library, the seam and the table of explanations, so any
module may call it.

Each step prints one line saying what it is for (from
`runtime.teaching.steps`) and one indented line naming the call and its man
page, e.g.

    Mount a new proc filesystem at /var/lib/pyrun/.../rootfs/proc, so ...
        mount(source='proc', target='...', fstype='proc', ...) = 0    [man 2 mount]
"""

from __future__ import annotations

import errno
import os
import re

from urllib.parse import urlsplit, urlunsplit

from runtime import syscalls
from runtime.teaching import steps
from runtime.log import get_logger

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

log = get_logger(__name__)

# ANSI SGR sequences, used only when the output is a terminal.
BOLD = "\033[1m"
CYAN = "\033[36m"
RED = "\033[31m"
RESET = "\033[0m"

_output_fd: int | None = None
# (st_dev, st_ino) of the stderr that enable() duplicated, to recognise it.
_output_identity: tuple[int, int] | None = None
_colour = False
# The process that called enable(). Steps made by any other process, such as
# the container's child after fork(2), are marked CHILD_MARK.
_parent_pid = 0
# The process that narrated last, to tell the two returns of fork(2) apart.
_narrating_pid = 0

CHILD_MARK = "[child] "

# Names the descriptor a pyrun process spawned by another (not forked) should
# narrate to; see child_environment().
EXPLAIN_FD_VARIABLE = "PYRUN_EXPLAIN_FD"


def enable(*, colour: bool | None = None, fd: int | None = None) -> None:
    """Start narrating every step on stderr, or on `fd`; `colour` None means "if a terminal"."""
    global _output_fd, _output_identity, _colour, _parent_pid, _narrating_pid
    if _output_fd is not None:
        return

    if fd is None:
        # Write to a duplicate of stderr, not to fd 2 itself: the container's
        # child may point fd 2 at a terminal or log of the container before
        # execve, and the narration of its last steps must still reach the
        # user. os.dup() makes the copy close-on-exec, so the container's
        # command never inherits it.
        fd = os.dup(2)
    else:
        os.set_inheritable(fd, False)
    _output_fd = fd
    _output_identity = _identity(_output_fd)
    _colour = wants_colour(_output_fd) if colour is None else colour
    _parent_pid = _narrating_pid = os.getpid()
    syscalls.add_listener(narrate)


def child_environment() -> dict[str, str]:
    """Return what a pyrun process spawned by this one needs to narrate too, or {} when off.

    For a helper started with exec (subprocess, posix_spawn) rather than
    fork: add this to its environment, pass it output_fd() (``pass_fds``),
    and call enable_from_environment() in it.
    """
    if _output_fd is None:
        return {}
    return {EXPLAIN_FD_VARIABLE: str(_output_fd)}


def enable_from_environment() -> bool:
    """Narrate to the descriptor named by child_environment(), if the variable is set.

    Removes the variable from os.environ, so the container's command does not
    see it, and returns whether the narration is now on.
    """
    value = os.environ.pop(EXPLAIN_FD_VARIABLE, None)
    if value is None:
        return False
    try:
        fd = int(value)
        os.fstat(fd)
    except (ValueError, OSError) as err:
        log.debug("no narration: %s=%r is not an open descriptor (%s)", EXPLAIN_FD_VARIABLE, value, err)
        return False
    enable(fd=fd)
    return True


def disable() -> None:
    """Stop narrating and close the duplicate of stderr."""
    global _output_fd
    if _output_fd is None:
        return
    syscalls.remove_listener(narrate)
    fd, _output_fd = _output_fd, None

    # Close the copy only while it is still ours: after close_range(2) its
    # number may belong to another file.
    if _identity(fd) == _output_identity:
        os.close(fd)


def is_enabled() -> bool:
    return _output_fd is not None


def output_fd() -> int | None:
    """Return the descriptor the narration writes to, or None when it is off.

    Code that closes every descriptor before execve (close_range(2)) should
    keep this one open: it is close-on-exec, so the command never gets it,
    and without it the last steps are narrated only while fd 2 is still the
    original stderr.
    """
    return _output_fd


def wants_colour(fd: int) -> bool:
    """Return True when `fd` is a terminal and the user has not turned colour off."""
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("TERM") == "dumb":
        return False
    return os.isatty(fd)


def step(key: str, **details: Any) -> None:
    """Narrate a step that is not a kernel call, e.g. ``step("registry token", url=..., scope=...)``.

    Call it after the step happened, with what it used (method, URL,
    status). `key` chooses the explanation in `runtime.teaching.steps`.
    """
    if _output_fd is None:
        return
    safe_details = {name: redact_url(value) if name == "url" else value for name, value in details.items()}
    narrate(syscalls.Call(key, steps.REFERENCES.get(key, ""), safe_details))


def redact_url(url: str) -> str:
    """Drop the user info and the query of a URL: a CDN's signed query is a credential."""
    parts = urlsplit(str(url))
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    query = "?..." if parts.query else ""
    return urlunsplit((parts.scheme, host, parts.path, "", "")) + query


def narrate(call: syscalls.Call) -> None:
    """Print one step: what it is for, then the call itself."""
    global _narrating_pid
    if _output_fd is None:
        return

    # fork(2) and clone3(2) return twice, so listeners hear of them in both processes. The
    # parent narrates it; the child, which first notices that its pid has
    # changed, stays silent about it.
    pid = os.getpid()
    if pid != _narrating_pid:
        _narrating_pid = pid
        if call.name in ("fork", "clone3"):
            return

    try:
        text = format_step(call, colour=_colour, child=pid != _parent_pid)
    except Exception:
        # A mistake in a text of the table must not stop the container:
        # print the bare call instead and log what went wrong.
        log.exception("failed to explain the call %s", call.name)
        text = f"{call.name}\n    {call.render()}\n"
    _write(text)


def format_step(call: syscalls.Call, *, colour: bool = False, child: bool = False) -> str:
    """Return the narration of one call as lines of text, ending in a newline."""
    args, fd_notes = resolve_fd_paths(call.args)
    purpose = steps.explain(call.name, args)
    if call.error is not None:
        code = errno.errorcode.get(call.error.errno or 0, str(call.error.errno))
        outcome = steps.FAILURE_OUTCOMES.get(code, steps.FAILURE_OUTCOME)
        purpose = steps.FAILED_STEP.format(outcome=outcome, step=purpose, error=code)
    if child:
        purpose = CHILD_MARK + purpose
    lines = [_paint(purpose, BOLD if call.error is None else BOLD + RED, colour)]

    if call.name in ("unshare", "clone", "clone3"):
        for line in steps.namespace_lines(str(call.args.get("flags", ""))):
            lines.append(f"  - {line}")

    for note in fd_notes:
        lines.append(f"  - {note}")

    commands = call.args.get("commands")
    if isinstance(commands, list):
        for text, command in steps.nft_command_lines([str(c) for c in commands]):
            lines.append(f"  - {text}")
            lines.append(f"      {command}")

    rendered = format_call(call)
    lines.append("    " + _paint(rendered, CYAN if call.error is None else RED, colour))
    return "\n".join(lines) + "\n"


def resolve_fd_paths(args: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Replace ``/proc/self/fd/N`` arguments by the path that descriptor has now.

    pyrun mounts onto directories it opened with openat2(2), through their
    descriptors. The narration runs in the same process right after the
    call, so readlink(2) on the descriptor names the directory the step
    acted on. Returns the arguments for the explanation and one note per
    resolved descriptor.
    """
    resolved = dict(args)
    notes = []
    for key, value in args.items():
        if not isinstance(value, str) or not value.startswith("/proc/self/fd/"):
            continue
        try:
            path = os.readlink(value)
        except OSError:
            continue
        resolved[key] = path
        notes.append(steps.FD_PATH_NOTE.format(fd_path=value, path=path))
    return resolved, notes


def format_call(call: syscalls.Call) -> str:
    """Render the call and where to read about it: ``mount(...) = 0    [man 2 mount]``."""
    commands = call.args.get("commands")
    if isinstance(commands, list):
        # The commands are listed above, one per line, so the call line
        # only counts them.
        summarized_args = dict(call.args, commands=f"<{len(commands)} commands, listed above>")
        rendered = syscalls.Call(call.name, call.manpage, summarized_args, call.error, call.result).render()
    elif _is_kernel_call(call):
        rendered = call.render()
    else:
        details = ", ".join(f"{key}={value}" for key, value in call.args.items())
        rendered = f"{call.name}: {details}" if details else call.name
    reference = man_command(call.manpage)
    if reference:
        rendered += f"    [{reference}]"
    return rendered


def man_command(manpage: str) -> str:
    """Turn ``mount(2)`` into ``man 2 mount``; other references stay as they are."""
    match = re.fullmatch(r"([\w.-]+)\((\w+)\)", manpage)
    if match is None:
        return manpage
    return f"man {match.group(2)} {match.group(1)}"


def _is_kernel_call(call: syscalls.Call) -> bool:
    # Seam calls always name a man page; steps reported through step() name
    # a specification from steps.REFERENCES, or nothing.
    return call.name not in steps.REFERENCES and bool(call.manpage)


def _paint(text: str, style: str, colour: bool) -> str:
    return f"{style}{text}{RESET}" if colour else text


def _identity(fd: int) -> tuple[int, int] | None:
    try:
        status = os.fstat(fd)
    except OSError:
        return None
    return status.st_dev, status.st_ino


def _writable_fd() -> int | None:
    """Return a descriptor that is still the stderr pyrun started with, or None.

    The container's child closes its descriptors before execve, so the
    duplicate may be gone, or its number reused for another file. Writing
    there could corrupt that file, so the narration goes on through fd 2
    only while fd 2 is the original stderr, and stops otherwise.
    """
    for fd in (_output_fd, 2):
        if fd is not None and _identity(fd) == _output_identity:
            return fd
    return None


def _write(text: str) -> None:
    # One write per step: a pipe write of at most PIPE_BUF (4096) bytes is
    # atomic, so the lines of the parent and of the container's child do
    # not interleave inside one step.
    fd = _writable_fd()
    if fd is None:
        log.debug("narration stopped: stderr of pyrun is no longer open in process %d", os.getpid())
        return
    data = text.encode("utf-8", errors="replace")
    try:
        while data:
            written = os.write(fd, data)
            data = data[written:]
    except OSError as err:
        # The reader went away (e.g. `pyrun --explain ... 2>&1 | head`);
        # the container carries on without narration.
        log.debug("narration output failed: %s", err)
