"""Errors raised by the registry client.

Every error is a `PyrunError`, so the CLI prints it in one line. Errors about
an HTTP exchange carry the method, the URL (never with credentials or
tokens), the status and the registry's error code from the response body,
as the distribution spec defines them (`MANIFEST_UNKNOWN`, `DENIED`, ...).
"""

from __future__ import annotations

from runtime.errors import PyrunError


def redact_url(url: str) -> str:
    """Return `url` without a user name, password or query string.

    Token endpoints and CDN redirects carry signatures in the query string,
    so errors and logs show only the scheme, host and path.
    """
    # Imported here: urllib.parse imports re, and `pyrun run` imports this
    # module for InvalidReferenceError without ever making a request.
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class InvalidReferenceError(PyrunError):
    """An image reference that does not parse."""


class RegistryError(PyrunError):
    """A registry returned an error, or could not be reached."""

    def __init__(self, message: str, *, method: str = "", url: str = "",
                 status: int | None = None, code: str = "", hint: str = "") -> None:
        details = []
        if method and url:
            details.append(f"{method} {redact_url(url)}")
        if status is not None:
            details.append(f"status {status}")
        if code:
            details.append(code)
        if details:
            message = f"{message} ({', '.join(details)})"
        super().__init__(message, hint=hint)
        self.method = method
        self.url = redact_url(url) if url else ""
        self.status = status
        self.code = code


class UnreachableError(RegistryError):
    """The registry could not be reached at all, after the last retry."""


class AuthError(RegistryError):
    """The registry refused our credentials or the token service failed."""


class RateLimitError(RegistryError):
    """The registry returned 429 Too Many Requests after the last retry."""


class ManifestError(RegistryError):
    """A manifest that pyrun cannot use: wrong type, digest, or platform."""


class BlobError(RegistryError):
    """A blob whose download failed or whose content does not match its digest."""


class PullStopped(Exception):
    """Raised in a download thread when the caller stopped the pull (not a failure of its own)."""
