"""--cap-add and --cap-drop over Docker's default capability set."""

import pytest

from runtime.capabilities import ALL_CAPABILITIES, DEFAULT_CAPABILITIES, compute_capabilities
from runtime.errors import UsageError


def test_defaults_without_flags():
    assert compute_capabilities([], []) == DEFAULT_CAPABILITIES
    assert len(DEFAULT_CAPABILITIES) == 14


def test_add_and_drop_accept_both_spellings():
    caps = compute_capabilities(["net_admin"], ["CAP_CHOWN", "kill"])
    assert "CAP_NET_ADMIN" in caps
    assert "CAP_CHOWN" not in caps
    assert "CAP_KILL" not in caps


def test_drop_all_keeps_only_added():
    assert compute_capabilities(["NET_BIND_SERVICE"], ["ALL"]) == ["CAP_NET_BIND_SERVICE"]


def test_add_all_minus_drops():
    caps = compute_capabilities(["ALL"], ["SYS_ADMIN"], available=ALL_CAPABILITIES)
    assert "CAP_SYS_ADMIN" not in caps
    assert len(caps) == len(ALL_CAPABILITIES) - 1


def test_added_and_dropped_is_kept():
    assert "CAP_SYS_TIME" in compute_capabilities(["SYS_TIME"], ["SYS_TIME"])


def test_privileged_gets_all_available():
    assert compute_capabilities([], ["ALL"], privileged=True, available=ALL_CAPABILITIES) == ALL_CAPABILITIES
    assert compute_capabilities([], [], privileged=True, available=["CAP_KILL"]) == ["CAP_KILL"]


def test_unknown_capability_is_error():
    with pytest.raises(UsageError, match="CAP_BOGUS"):
        compute_capabilities(["CAP_BOGUS"], [])
