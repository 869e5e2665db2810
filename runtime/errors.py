"""Errors that the command line reports to the user."""

from __future__ import annotations


class PyrunError(Exception):
    """A failure the user can act on; the CLI prints it once, in one line.

    `exit_code` follows Docker: 125 when pyrun itself fails, 126 when the
    command cannot be executed, 127 when it is not found.
    """

    exit_code = 125

    def __init__(self, message: str, *, exit_code: int | None = None, hint: str = "") -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code
        self.hint = hint


class UsageError(PyrunError):
    """Invalid command-line input: a flag, an argument or a value."""


class NotFoundError(PyrunError):
    """A container, image or file that the user named does not exist."""


class ContainerNotFoundError(NotFoundError):
    """A container that the user named does not exist; Docker's commands exit with 1 then."""

    exit_code = 1


def describe_error(err: BaseException) -> str:
    """Join an exception chain into one line: intent first, cause last."""
    parts = []
    current: BaseException | None = err
    while current is not None:
        text = str(current) or type(current).__name__
        if not parts or text not in parts[-1]:
            parts.append(text)
        current = current.__cause__
    return ": ".join(parts)
