"""Signal numbers, names and handlers, without importing the signal module.

The standard `signal` module is the C module `_signal` plus the enums
`Signals`, `Handlers` and `Sigmasks`. Importing it costs about 8 ms per
pyrun command here, because it imports enum. So pyrun's runtime modules
use this module in its place: it exports everything `_signal` has (every
SIG* constant, SIG_DFL, SIG_IGN, SIG_BLOCK, signal(), pthread_sigmask(),
valid_signals() ...) and adds the names that the `Signals` enum would give.

The difference for a caller: functions return plain ints where `signal`
returns enum members, so `signals.signal(SIGINT, handler)` returns 0 for
SIG_DFL and 1 for SIG_IGN, and pthread_sigmask() returns a set of ints.
Both are accepted back wherever `signal` accepts its enums.
"""

from __future__ import annotations

from _signal import *  # noqa: F403 - the SIG* constants and the functions of `_signal`
import _signal


def _canonical_names() -> dict[int, str]:
    """Return {number: name} for every signal, preferring the name `signal.Signals` uses.

    Linux has aliases (SIGIOT is SIGABRT, SIGCLD is SIGCHLD, SIGPOLL is
    SIGIO). Like the enum, this picks the alphabetically first name for
    each number.
    """
    names: dict[int, str] = {}
    for name in sorted(vars(_signal)):
        if name.startswith("SIG") and not name.startswith("SIG_"):
            names.setdefault(getattr(_signal, name), name)
    return names


NAMES_BY_NUMBER = _canonical_names()


def number_for_name(name: str) -> int | None:
    """Return the number of the signal called `name` ("SIGKILL", or an alias such as "SIGCLD"), or None."""
    if not name.startswith("SIG") or name.startswith("SIG_"):
        return None
    number = getattr(_signal, name, None)
    return number if isinstance(number, int) else None
