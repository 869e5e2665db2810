"""Show a pull as Docker does: status lines, or progress bars on a terminal.

    Using default tag: latest
    latest: Pulling from library/httpd
    8a1e25ce7c4f: Pulling fs layer
    8a1e25ce7c4f: Download complete
    8a1e25ce7c4f: Pull complete
    Digest: sha256:...
    Status: Downloaded newer image for httpd:latest

On a terminal, each layer gets a tqdm bar while it downloads, and one more
bar counts the total bytes. Elsewhere (a pipe, a log file) only the lines
are written, one per event.
"""

from __future__ import annotations

import threading

from runtime.store.reporter import PullReporter

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TextIO


def short_id(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]


class PullProgress(PullReporter):
    def __init__(self, stream: TextIO, *, bars: bool | None = None) -> None:
        self.stream = stream
        self.bars = stream.isatty() if bars is None else bars
        self.lock = threading.Lock()
        self.layer_bars: dict = {}
        self.layer_done: dict[str, int] = {}
        self.total_bar = None

    def line(self, text: str) -> None:
        with self.lock:
            if self.bars and self.layer_bars:
                from tqdm import tqdm

                tqdm.write(text, file=self.stream)
            else:
                print(text, file=self.stream, flush=True)

    def using_default_tag(self, tag: str) -> None:
        self.line(f"Using default tag: {tag}")

    def pulling_from(self, tag_or_digest: str, repository: str) -> None:
        self.line(f"{tag_or_digest}: Pulling from {repository}")

    def layer_exists(self, digest: str) -> None:
        self.line(f"{short_id(digest)}: Already exists")

    def layer_waiting(self, digest: str, size: int) -> None:
        if not self.bars:
            self.line(f"{short_id(digest)}: Pulling fs layer")
            return
        from tqdm import tqdm

        with self.lock:
            if self.total_bar is None:
                self.total_bar = tqdm(total=0, unit="B", unit_scale=True, desc="total",
                                      file=self.stream, position=0, leave=False)
            self.total_bar.total += size
            self.total_bar.refresh()
            self.layer_bars[digest] = tqdm(
                total=size, unit="B", unit_scale=True, desc=short_id(digest),
                file=self.stream, position=len(self.layer_bars) + 1, leave=False)
            self.layer_done[digest] = 0

    def layer_progress(self, digest: str, done: int, size: int) -> None:
        if not self.bars:
            return
        with self.lock:
            bar = self.layer_bars.get(digest)
            if bar is None:
                return
            step = done - self.layer_done[digest]
            self.layer_done[digest] = done
            bar.update(step)
            self.total_bar.update(step)

    def layer_downloaded(self, digest: str) -> None:
        self.line(f"{short_id(digest)}: Download complete")

    def layer_extracting(self, digest: str) -> None:
        if self.bars:
            with self.lock:
                bar = self.layer_bars.get(digest)
                if bar is not None:
                    bar.set_description(f"{short_id(digest)} extracting")

    def layer_complete(self, digest: str) -> None:
        self.line(f"{short_id(digest)}: Pull complete")

    def digest(self, digest: str) -> None:
        self.close()
        self.line(f"Digest: {digest}")

    def status(self, message: str) -> None:
        self.close()
        self.line(f"Status: {message}")

    def close(self) -> None:
        with self.lock:
            for bar in self.layer_bars.values():
                bar.close()
            if self.total_bar is not None:
                self.total_bar.close()
            self.layer_bars.clear()
            self.total_bar = None
