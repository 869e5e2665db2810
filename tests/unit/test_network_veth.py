"""Deleting a container's veth pair while the kernel may delete it too."""

import errno
import os

import pytest

from runtime.network import veth


class FakeIPRoute:
    """An IPRoute whose host end exists at lookup and fails with `delete_errno` at deletion."""

    def __init__(self, delete_errno: int) -> None:
        self.delete_errno = delete_errno

    def link_lookup(self, ifname: str) -> list[int]:
        return [7]

    def link(self, command: str, index: int) -> None:
        raise OSError(self.delete_errno, os.strerror(self.delete_errno))


def test_delete_pair_gone_meanwhile():
    assert veth.delete_pair(FakeIPRoute(errno.ENODEV), "a" * 64) is False


def test_delete_pair_other_error_raised():
    with pytest.raises(OSError) as raised:
        veth.delete_pair(FakeIPRoute(errno.EPERM), "a" * 64)
    assert raised.value.errno == errno.EPERM
