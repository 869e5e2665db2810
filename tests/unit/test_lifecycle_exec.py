"""The order of `pyrun exec`'s steps in the joining process, recorded without root."""

from __future__ import annotations

import os
import socket

import pytest

from runtime import exec as container_exec
from runtime import launch, syscalls


class Exited(Exception):
    """Raised in place of os._exit, so the test process survives the joiner's exit."""


def run_joiner(monkeypatch, namespaces: list[str]) -> list[syscalls.Call]:
    def fake_exit(code: int) -> None:
        raise Exited(code)

    monkeypatch.setattr(os, "_exit", fake_exit)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    fds = [(kind, os.open(os.devnull, os.O_RDONLY)) for kind in namespaces]
    try:
        with syscalls.recording() as recorder, pytest.raises(Exited):
            container_exec._joiner_process(launch.Channel(theirs), fds, None, False, {"terminal": False}, False, True)
    finally:
        ours.close()
    return recorder.calls


def test_joiner_non_dumpable_before_setns(monkeypatch):
    calls = run_joiner(monkeypatch, ["ipc", "uts", "pid", "mount"])
    names = [call.name for call in calls]
    assert names[0] == "prctl"
    assert calls[0].args["option"] == "PR_SET_DUMPABLE"
    assert calls[0].args["arg2"] == 0
    assert names.index("setns") > 0


def test_joiner_mount_namespace_last(monkeypatch):
    order = [kind for kind in container_exec.JOIN_ORDER if kind != "user"]
    calls = run_joiner(monkeypatch, order)
    joined = [call.args["path"] for call in calls if call.name == "setns"]
    assert joined[-1] == "ns/mnt"
    assert len(joined) == len(order)
    assert [call.name for call in calls][-1] == "fork"
