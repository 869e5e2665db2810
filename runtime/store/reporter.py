"""The events of a pull, for the code that shows progress.

The store never prints: it calls these methods, and the command line's
implementation (`runtime.cli.progress`) turns them into Docker's lines or
progress bars. Layer methods may be called from several threads at once.
"""

from __future__ import annotations


class PullReporter:
    """Receives pull events and ignores them; subclasses show them."""

    def using_default_tag(self, tag: str) -> None:
        pass

    def pulling_from(self, tag_or_digest: str, repository: str) -> None:
        pass

    def layer_exists(self, digest: str) -> None:
        pass

    def layer_waiting(self, digest: str, size: int) -> None:
        pass

    def layer_progress(self, digest: str, done: int, size: int) -> None:
        pass

    def layer_downloaded(self, digest: str) -> None:
        pass

    def layer_extracting(self, digest: str) -> None:
        pass

    def layer_complete(self, digest: str) -> None:
        pass

    def digest(self, digest: str) -> None:
        pass

    def status(self, message: str) -> None:
        pass

    def close(self) -> None:
        pass
