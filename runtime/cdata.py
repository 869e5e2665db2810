"""The C types and libraries that the syscall seam passes to libc, without importing ctypes.

`import ctypes` costs about 3.5 ms on the development VM, on top of its C
core `_ctypes`: the package defines some thirty classes of C types and
libraries, and loads struct and the byte-order helpers. The seam needs
eight types, structures, and functions looked up by name in libc. This
module builds those from `_ctypes` itself, as ctypes/__init__.py does,
in about 0.4 ms.

The objects behave as their ctypes namesakes: `c_ulong(5)`, `byref(x)`,
`sizeof(x)`, a `Structure` subclass with `_fields_`, and
`Library("libc.so.6").mount(...)` with errno kept for `get_errno()`.
Values made here can be passed to real ctypes functions and back, because
both sides are `_ctypes` objects.

NOTE: Python 3.14 computes a Structure's layout in ctypes._layout, which
imports ctypes, so there the seam's first Structure brings the package back.
"""

from __future__ import annotations

from _ctypes import (
    FUNCFLAG_CDECL,
    FUNCFLAG_PYTHONAPI,
    FUNCFLAG_USE_ERRNO,
    RTLD_LOCAL,
    Array,
    CFuncPtr,
    Structure,
    _SimpleCData,
    addressof,
    byref,
    dlopen,
    get_errno,
    sizeof,
)

__all__ = [
    "Array", "Structure", "addressof", "byref", "get_errno", "sizeof",
    "c_char", "c_int", "c_uint", "c_long", "c_ulong", "c_ushort", "c_uint32", "c_uint64", "c_size_t",
    "c_void_p", "string_buffer", "Library",
]


# -- Types ---------------------------------------------------------------------
# Each letter is the struct module's code for the C type, and _ctypes reads
# the size and alignment from it. Linux on x86_64 and arm64 is LP64: long
# and size_t are 64 bits, int 32.


def _c_type(name: str, code: str) -> type:
    """Make the C type `name` whose struct format letter is `code`."""
    return type(name, (_SimpleCData,), {"_type_": code})


c_char = _c_type("c_char", "c")
c_int = _c_type("c_int", "i")
c_uint = _c_type("c_uint", "I")
c_long = _c_type("c_long", "l")
c_ulong = _c_type("c_ulong", "L")
c_ushort = _c_type("c_ushort", "H")
c_uint64 = _c_type("c_uint64", "Q")
c_void_p = _c_type("c_void_p", "P")
c_uint32 = c_uint
c_size_t = c_ulong


def string_buffer(init: bytes | int) -> Array:
    """Return a writable char array: a copy of the bytes `init`, or `init` zero bytes.

    Unlike ctypes.create_string_buffer, no NUL is added after the bytes:
    callers pass binary data (BPF instructions) with its exact length.
    """
    if isinstance(init, int):
        return (c_char * init)()
    buffer = (c_char * len(init))()
    buffer.raw = init
    return buffer


# -- Functions -------------------------------------------------------------------


class _Function(CFuncPtr):
    """A C function returning int that releases the interpreter lock, as ctypes.CDLL's do."""

    _flags_ = FUNCFLAG_CDECL | FUNCFLAG_USE_ERRNO
    _restype_ = c_int


class _LockedFunction(CFuncPtr):
    """A C function returning int that keeps the interpreter lock, as ctypes.PyDLL's do."""

    _flags_ = FUNCFLAG_CDECL | FUNCFLAG_PYTHONAPI | FUNCFLAG_USE_ERRNO
    _restype_ = c_int


class Library:
    """A shared library loaded with dlopen(3); its functions are its attributes.

    `name` None means the program itself and what it has loaded, as
    dlopen(NULL) does. Each call saves errno for get_errno(). By default
    the interpreter lock is released during a call. With `keep_lock` it is
    held, because the Python C API and a fork by syscall(2) need it.
    """

    def __init__(self, name: str | None, *, keep_lock: bool = False) -> None:
        self._handle = dlopen(name, RTLD_LOCAL)
        self._function_type = _LockedFunction if keep_lock else _Function

    def __getattr__(self, name: str) -> CFuncPtr:
        if name.startswith("__"):
            raise AttributeError(name)
        function = self._function_type((name, self))
        function.__name__ = name
        setattr(self, name, function)  # looked up once
        return function
