"""runtime.cdata: the C types and libc functions the seam uses, built without the ctypes package."""

import ctypes
import errno
import os

from runtime import cdata


def test_types_have_the_sizes_of_their_ctypes_namesakes():
    pairs = [
        (cdata.c_char, ctypes.c_char), (cdata.c_int, ctypes.c_int), (cdata.c_uint, ctypes.c_uint),
        (cdata.c_long, ctypes.c_long), (cdata.c_ulong, ctypes.c_ulong), (cdata.c_ushort, ctypes.c_ushort),
        (cdata.c_uint32, ctypes.c_uint32), (cdata.c_uint64, ctypes.c_uint64), (cdata.c_size_t, ctypes.c_size_t),
        (cdata.c_void_p, ctypes.c_void_p),
    ]
    for ours, theirs in pairs:
        assert cdata.sizeof(ours) == ctypes.sizeof(theirs), ours.__name__


def test_structure_lays_out_fields_as_ctypes_does():
    class Ours(cdata.Structure):
        _fields_ = [("len", cdata.c_ushort), ("filter", cdata.c_void_p)]

    class Theirs(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    assert cdata.sizeof(Ours) == ctypes.sizeof(Theirs) == 16
    assert Ours.filter.offset == Theirs.filter.offset == 8


def test_string_buffer_keeps_binary_data_exactly():
    data = b"\x06\x00\x00\x00\x00\x00\xff\x7f"
    buffer = cdata.string_buffer(data)
    assert cdata.sizeof(buffer) == len(data)
    assert buffer.raw == data


def test_string_buffer_of_a_size_is_zeroed():
    assert cdata.string_buffer(4).raw == b"\0\0\0\0"


def test_libc_function_returns_its_result_and_keeps_errno():
    libc = cdata.Library("libc.so.6")
    assert libc.getpid() == os.getpid()
    assert libc.rmdir(b"/nonexistent/pyrun-test") == -1
    assert cdata.get_errno() == errno.ENOENT


def test_library_looks_each_function_up_once():
    libc = cdata.Library("libc.so.6")
    assert libc.getpid is libc.getpid


def test_values_pass_to_ctypes_functions():
    # Both sides are _ctypes objects, so a buffer made here works with ctypes.
    buffer = cdata.string_buffer(b"abc\0")
    assert ctypes.string_at(cdata.addressof(buffer)) == b"abc"
