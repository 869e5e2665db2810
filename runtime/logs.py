"""Container logs in Docker's json-file format, with rotation, and reading them back.

Each line the container writes becomes one JSON object on its own line:

    {"log":"It works!\\n","stream":"stdout","time":"2026-12-04T17:05:49.123456789Z"}

The monitor writes `<container dir>/<id>-json.log`. With `max-size`, a
file that would grow past the limit is renamed to `.1`, older ones move up
to `.2` and so on, and a new file starts. `max-file` counts the files
kept, the current one included. This module imports only the standard library
and runtime.jsonio, because the lean monitor imports it. The parsers import `re` when they
are called, which keeps about 2 MiB out of every monitor (measured
with VmRSS, Python 3.11).
"""

from __future__ import annotations

import os
import time

from runtime import jsonio

# Docker splits a line longer than this into several entries (16 KiB).
MAX_ENTRY_BYTES = 16 * 1024

SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "m": 1024**2, "mb": 1024**2, "g": 1024**3, "gb": 1024**3}
DURATION_UNITS = {"s": 1, "m": 60, "h": 3600}


class LogOptionError(ValueError):
    """A --log-opt value that pyrun cannot use."""


def log_path(container_dir: str, container_id: str) -> str:
    return os.path.join(container_dir, f"{container_id}-json.log")


def timestamp(nanoseconds: int | None = None) -> str:
    """Return a UTC time in RFC 3339 with nanoseconds, as Docker's json-file driver writes it."""
    if nanoseconds is None:
        nanoseconds = time.time_ns()
    seconds, fraction = divmod(nanoseconds, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{fraction:09d}Z"


def parse_timestamp(text: str) -> int:
    """Return nanoseconds since the epoch for an RFC 3339 time such as 2026-12-04T17:05:49.1Z.

    Accepts what time.strptime's "%Y-%m-%dT%H:%M:%S" accepts (seconds up to
    61, for leap seconds) and raises ValueError for anything else. The date
    arithmetic is done here, because `ps` parses two times per container and
    strptime with calendar.timegm costs about 14 us a call plus 3 ms of
    imports (measured with Python 3.11). The shape is checked by hand for
    the same reason: importing re would cost `ps` about 10 ms.
    """
    rest = text[19:]
    if rest.endswith("Z"):
        zone, rest = "Z", rest[:-1]
    elif len(rest) >= 6 and rest[-6] in "+-" and _has_shape(rest[-5:], "dd:dd"):
        zone, rest = rest[-6:], rest[:-6]
    else:
        raise ValueError(f"invalid time {text!r}")
    # What is left between the seconds and the zone is nothing or "." and 1 to 9 digits.
    fraction_text = rest[1:]
    if not _has_shape(text[:19], "dddd-dd-ddTdd:dd:dd") or (
        rest and not (rest[0] == "." and 1 <= len(fraction_text) <= 9 and fraction_text.isdecimal())
    ):
        raise ValueError(f"invalid time {text!r}")
    year, month, day = int(text[0:4]), int(text[5:7]), int(text[8:10])
    hour, minute, second = int(text[11:13]), int(text[14:16]), int(text[17:19])
    if not (year >= 1 and 1 <= month <= 12 and 1 <= day <= days_in_month(year, month)
            and hour <= 23 and minute <= 59 and second <= 61):
        raise ValueError(f"invalid time {text!r}")
    seconds = days_since_epoch(year, month, day) * 86400 + hour * 3600 + minute * 60 + second
    fraction = int((fraction_text or "0").ljust(9, "0"))
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        seconds -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return seconds * 1_000_000_000 + fraction


def _has_shape(text: str, shape: str) -> bool:
    """Tell whether `text` matches `shape`, where "d" is any decimal digit and other characters stand for themselves."""
    if len(text) != len(shape):
        return False
    return all(character.isdecimal() if expected == "d" else character == expected
               for character, expected in zip(text, shape))


def days_in_month(year: int, month: int) -> int:
    """Return the number of days in `month` (1 to 12) of `year` in the Gregorian calendar."""
    if month == 2:
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        return 29 if leap else 28
    return 30 if month in (4, 6, 9, 11) else 31


def days_since_epoch(year: int, month: int, day: int) -> int:
    """Return the days from 1970-01-01 to a Gregorian date.

    This is days_from_civil from Howard Hinnant's "chrono-Compatible
    Low-Level Date Algorithms" (howardhinnant.github.io/date_algorithms.html).
    Counting each year from March 1 puts the leap day at the end of the
    year, so every 400-year era has 146097 days.
    """
    year -= month <= 2
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month - 3 if month > 2 else month + 9) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468


def parse_since(text: str, now_ns: int | None = None) -> int:
    """Return nanoseconds since the epoch for --since: RFC 3339, Unix seconds, or a duration like 10m."""
    import re

    now_ns = time.time_ns() if now_ns is None else now_ns
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([smh])", text)
    if match:
        return now_ns - int(float(match.group(1)) * DURATION_UNITS[match.group(2)] * 1_000_000_000)
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return int(float(text) * 1_000_000_000)
    if re.fullmatch(r"\d{4}-\d\d-\d\d", text):
        text += "T00:00:00Z"
    elif re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?", text):
        text += "Z"
    return parse_timestamp(text)


def parse_log_options(values: list[str]) -> dict[str, int]:
    """Turn --log-opt KEY=VALUE strings into {"max_size": bytes (0: no limit), "max_file": count}."""
    options = {"max_size": 0, "max_file": 1}
    for value in values:
        key, separator, setting = value.partition("=")
        if not separator:
            raise LogOptionError(f"invalid --log-opt {value!r}: expected KEY=VALUE")
        if key == "max-size":
            # DIGITS followed by ASCII letters, if any, that name a unit.
            number = setting.rstrip("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
            unit = setting[len(number):].lower()
            if not number.isdecimal() or unit not in SIZE_UNITS or int(number) == 0:
                raise LogOptionError(f"invalid --log-opt max-size={setting!r}: expected a size such as 10m or 512k")
            options["max_size"] = int(number) * SIZE_UNITS[unit]
        elif key == "max-file":
            if not setting.isdigit() or int(setting) < 1:
                raise LogOptionError(f"invalid --log-opt max-file={setting!r}: expected a whole number of 1 or more")
            options["max_file"] = int(setting)
        else:
            raise LogOptionError(f"unsupported --log-opt {key!r}: pyrun's json-file logs take max-size and max-file")
    if options["max_file"] > 1 and not options["max_size"]:
        raise LogOptionError("--log-opt max-file needs max-size as well")
    return options


class JsonFileWriter:
    """Append a container's output to its json-file log, one entry per line."""

    def __init__(self, path: str, max_size: int = 0, max_file: int = 1, fd: int = -1) -> None:
        """Append to `path`, or to `fd` when given: `path` already opened for appending."""
        self.path = path
        self.max_size = max_size
        self.max_file = max_file
        self.partial = {"stdout": b"", "stderr": b""}
        self.file = open(path, "ab") if fd < 0 else os.fdopen(fd, "ab")
        self.size = self.file.tell()

    def write(self, stream: str, data: bytes) -> None:
        """Log `data` from `stream`; a line without its newline waits for the rest."""
        buffered = self.partial[stream] + data
        while True:
            end = buffered.find(b"\n")
            if end < 0 and len(buffered) < MAX_ENTRY_BYTES:
                break
            cut = end + 1 if 0 <= end < MAX_ENTRY_BYTES else MAX_ENTRY_BYTES
            self._write_entry(stream, buffered[:cut])
            buffered = buffered[cut:]
        self.partial[stream] = buffered

    def flush_partial(self, stream: str) -> None:
        """Log what is left of an unfinished line, when the stream has ended."""
        if self.partial[stream]:
            self._write_entry(stream, self.partial[stream])
            self.partial[stream] = b""

    def close(self) -> None:
        for stream in self.partial:
            self.flush_partial(stream)
        self.file.close()

    def _write_entry(self, stream: str, data: bytes) -> None:
        entry = {"log": data.decode("utf-8", "replace"), "stream": stream, "time": timestamp()}
        line = (jsonio.dumps(entry, separators=(",", ":")) + "\n").encode()
        if self.max_size and self.size and self.size + len(line) > self.max_size:
            self._rotate()
        self.file.write(line)
        self.file.flush()
        self.size += len(line)

    def _rotate(self) -> None:
        """Shift path.N-1 to path.N, ..., path to path.1, and start an empty file."""
        self.file.close()
        if self.max_file > 1:
            for index in range(self.max_file - 1, 1, -1):
                older = f"{self.path}.{index - 1}"
                if os.path.exists(older):
                    os.replace(older, f"{self.path}.{index}")
            os.replace(self.path, f"{self.path}.1")
        self.file = open(self.path, "wb")
        self.size = 0


def log_files(path: str) -> list[str]:
    """Return the log's files, oldest first: the rotated ones (highest number first), then the current one."""
    directory, base = os.path.split(path)
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    rotated = []
    for name in names:
        suffix = name[len(base) + 1 :]
        if name.startswith(base + ".") and suffix.isdigit():
            rotated.append((int(suffix), os.path.join(directory, name)))
    files = [file for _, file in sorted(rotated, reverse=True)]
    if os.path.exists(path):
        files.append(path)
    return files


def _inode(path: str) -> int | None:
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return None


def read_entries(path: str) -> list[dict]:
    """Return every complete entry of the log, oldest first, skipping a half-written last line."""
    entries = []
    for file in log_files(path):
        with open(file, "rb") as stream:
            for line in stream:
                if line.endswith(b"\n"):
                    entries.append(jsonio.loads(line))
    return entries


def select_entries(entries: list[dict], *, tail: int | None = None, since_ns: int | None = None) -> list[dict]:
    """Keep the entries at or after `since_ns`, then the last `tail` of them."""
    if since_ns is not None:
        entries = [entry for entry in entries if parse_timestamp(entry["time"]) >= since_ns]
    if tail is not None:
        entries = entries[-tail:] if tail > 0 else []
    return entries


def format_entry(entry: dict, timestamps: bool) -> str:
    return f"{entry['time']} {entry['log']}" if timestamps else entry["log"]


class Follower:
    """A reader of the entries appended to a log after a given point, across rotations.

    It keeps the file it reads open, so a rotation that renames that file
    (to path.1, path.2, ...) does not take it away. When the current file
    is another one, the reader finishes its own and goes on to the next
    newer file, found by inode among log_files(): after its own file, or
    all of them when its own was dropped as the oldest. Only files dropped
    before the reader reached them are lost, as with Docker's json-file.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.file = None
        self.inode = None
        self.buffer = b""

    def skip_to_end(self) -> None:
        self._open(self.path)
        if self.file is not None:
            self.file.seek(0, os.SEEK_END)

    def start_at_oldest(self) -> None:
        """Start before the first entry the log still holds, so read_new returns them all."""
        files = log_files(self.path)
        self._open(files[0] if files else self.path)

    def read_new(self) -> list[dict]:
        """Return the entries written since the last call, from every file that rotated in between."""
        if self.file is None:
            self._open(self.path)
            if self.file is None:
                return []
        entries = self._read_lines()
        while self.inode != _inode(self.path):
            # The file being read was rotated: the writer has closed it, so what is left of it is complete.
            entries += self._read_lines()
            newer = self._newer_files()
            self.file.close()
            self.file = None
            self.buffer = b""
            self._open(newer[0] if newer else self.path)
            if self.file is None:
                break
            entries += self._read_lines()
        return entries

    def _newer_files(self) -> list[str]:
        """Return the log's files written after the one being read, oldest first."""
        files = log_files(self.path)
        inodes = [_inode(file) for file in files]
        if self.inode in inodes:
            return files[inodes.index(self.inode) + 1 :]
        return files

    def close(self) -> None:
        if self.file is not None:
            self.file.close()

    def _open(self, path: str) -> None:
        try:
            self.file = open(path, "rb")
        except FileNotFoundError:
            self.file = None
            return
        self.inode = os.fstat(self.file.fileno()).st_ino

    def _read_lines(self) -> list[dict]:
        self.buffer += self.file.read()
        *lines, self.buffer = self.buffer.split(b"\n")
        return [jsonio.loads(line) for line in lines if line]
