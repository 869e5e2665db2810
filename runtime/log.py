"""Loggers that import the logging module only when there is something to write.

The logging module and what it imports cost about 8 ms at start-up on the
development VM, and a command that works logs nothing at the default
level ("warning"). So the runtime's modules take their loggers from here:

    from runtime.log import get_logger
    log = get_logger(__name__)
    log.debug("mounted %s", target)

`configure` (called by the CLI with --log-level) sets the level. A message
below it is dropped without importing logging. Any other message, and
every message once logging has been imported by anyone (the tests, the
registry client), goes to the standard logger of the same name, so
handlers, levels and pytest's caplog work as usual.

The registry client uses the logging module directly; code that calls it
calls `standard_logging()` first, so its messages get the CLI's format.
"""

from __future__ import annotations

import sys

LEVELS = {"trace": 10, "debug": 10, "info": 20, "warning": 30, "error": 40}

_threshold = 0            # no level set: pass everything on (tests, helpers)
_pending: tuple[str, str] | None = None   # (level, format) asked for, not yet applied to logging


class LazyLogger:
    """A stand-in for logging.getLogger(name) with the methods pyrun uses."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def _write(self, level: int, method: str, message: str, args: tuple, kwargs: dict) -> None:
        if level < _threshold and "logging" not in sys.modules:
            return
        logger = standard_logging().getLogger(self.name)
        # stacklevel=3 makes the record name the caller, not this module.
        getattr(logger, method)(message, *args, stacklevel=3, **kwargs)

    def debug(self, message: str, *args, **kwargs) -> None:
        self._write(10, "debug", message, args, kwargs)

    def info(self, message: str, *args, **kwargs) -> None:
        self._write(20, "info", message, args, kwargs)

    def warning(self, message: str, *args, **kwargs) -> None:
        self._write(30, "warning", message, args, kwargs)

    def error(self, message: str, *args, **kwargs) -> None:
        self._write(40, "error", message, args, kwargs)

    def exception(self, message: str, *args, **kwargs) -> None:
        self._write(40, "exception", message, args, kwargs)


def get_logger(name: str) -> LazyLogger:
    return LazyLogger(name)


def configure(level: str, line_format: str = "%(levelname)s: %(message)s") -> None:
    """Log messages at `level` and above to stderr, each formatted with `line_format`.

    At "warning" and "error", the logging module is imported only when the
    first such message comes. At the other levels it is set up at once.
    """
    global _threshold, _pending
    _threshold = LEVELS[level]
    _pending = (level, line_format)
    if level not in ("warning", "error"):
        standard_logging()


def standard_logging():
    """Import the logging module, apply the level `configure` set, and return the module."""
    global _pending
    import logging

    if _pending is not None:
        (level, line_format), _pending = _pending, None
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(line_format))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(LEVELS[level])
    return logging
