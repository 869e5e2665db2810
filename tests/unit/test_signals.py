"""runtime.signals against the signal module: the same numbers and names."""

from __future__ import annotations

import signal

from runtime import lifecycle, signals


def test_names_match_signals_enum():
    assert signals.NAMES_BY_NUMBER == {int(sig): sig.name for sig in signal.Signals}


def test_number_for_name_accepts_enum_names_and_aliases():
    for name in ("SIGKILL", "SIGRTMIN", "SIGRTMAX", "SIGCLD", "SIGIOT", "SIGPOLL"):
        assert signals.number_for_name(name) == int(signal.Signals[name])


def test_number_for_name_rejects_other_names():
    for name in ("SIG", "SIG_DFL", "SIG_IGN", "SIGNOPE", "KILL", "signal", "NSIG"):
        assert signals.number_for_name(name) is None


def test_constants_and_functions_exported():
    assert signals.SIGTERM == signal.SIGTERM
    assert signals.SIG_IGN == signal.SIG_IGN
    assert signals.NSIG == signal.NSIG
    assert signals.pthread_sigmask is not None
    assert signals.valid_signals() == set(signal.valid_signals())


def test_parse_signal_names_and_numbers():
    assert lifecycle.parse_signal("kill") == 9
    assert lifecycle.parse_signal("SIGTERM") == 15
    assert lifecycle.parse_signal("cld") == signal.SIGCHLD
    assert lifecycle.parse_signal("rtmax") == signal.SIGRTMAX
    assert lifecycle.parse_signal("64") == 64
