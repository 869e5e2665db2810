"""json-file logs: entries, partial lines, rotation, reading with --tail and --since."""

from __future__ import annotations

import json

import pytest

from runtime import logs


def read_lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_writer_one_entry_per_line(tmp_path):
    path = tmp_path / "c-json.log"
    writer = logs.JsonFileWriter(str(path))
    writer.write("stdout", b"one\ntw")
    writer.write("stderr", b"oops\n")
    writer.write("stdout", b"o\n")
    writer.close()
    entries = read_lines(path)
    assert [(entry["stream"], entry["log"]) for entry in entries] == [
        ("stdout", "one\n"), ("stderr", "oops\n"), ("stdout", "two\n")]
    assert set(entries[0]) == {"log", "stream", "time"}


def test_writer_flushes_partial_line_at_close(tmp_path):
    path = tmp_path / "c-json.log"
    writer = logs.JsonFileWriter(str(path))
    writer.write("stdout", b"no newline")
    writer.close()
    assert read_lines(path)[0]["log"] == "no newline"


def test_writer_splits_long_lines(tmp_path):
    path = tmp_path / "c-json.log"
    writer = logs.JsonFileWriter(str(path))
    writer.write("stdout", b"x" * (logs.MAX_ENTRY_BYTES + 10) + b"\n")
    writer.close()
    entries = read_lines(path)
    assert len(entries) == 2
    assert len(entries[0]["log"]) == logs.MAX_ENTRY_BYTES
    assert entries[1]["log"] == "x" * 10 + "\n"


def test_rotation_keeps_max_file(tmp_path):
    path = tmp_path / "c-json.log"
    writer = logs.JsonFileWriter(str(path), max_size=500, max_file=3)
    for index in range(100):
        writer.write("stdout", f"line {index}\n".encode())
    writer.close()
    names = sorted(file.name for file in tmp_path.iterdir())
    assert names == ["c-json.log", "c-json.log.1", "c-json.log.2"]
    for file in tmp_path.iterdir():
        assert file.stat().st_size <= 500
    entries = logs.read_entries(str(path))
    assert entries[-1]["log"] == "line 99\n"
    numbers = [int(entry["log"].split()[1]) for entry in entries]
    assert numbers == list(range(numbers[0], 100))


def test_rotation_with_one_file_truncates(tmp_path):
    path = tmp_path / "c-json.log"
    writer = logs.JsonFileWriter(str(path), max_size=200, max_file=1)
    for index in range(50):
        writer.write("stdout", f"line {index}\n".encode())
    writer.close()
    assert [file.name for file in tmp_path.iterdir()] == ["c-json.log"]
    assert path.stat().st_size <= 200


def test_select_tail_and_since():
    entries = [{"log": f"{index}\n", "stream": "stdout", "time": f"2026-01-01T00:00:0{index}.000000000Z"}
               for index in range(5)]
    assert [entry["log"] for entry in logs.select_entries(entries, tail=2)] == ["3\n", "4\n"]
    assert logs.select_entries(entries, tail=0) == []
    since = logs.parse_timestamp("2026-01-01T00:00:03Z")
    assert [entry["log"] for entry in logs.select_entries(entries, since_ns=since)] == ["3\n", "4\n"]


def test_parse_since_forms():
    now = 1_700_000_000 * 10**9
    assert logs.parse_since("10m", now) == now - 600 * 10**9
    assert logs.parse_since("1700000000", now) == now
    assert logs.parse_since("2023-11-14T22:13:20Z", now) == now
    assert logs.parse_since("2023-11-14T23:13:20+01:00", now) == now
    with pytest.raises(ValueError):
        logs.parse_since("yesterday", now)


@pytest.mark.parametrize("text, expected_seconds", [
    ("1970-01-01T00:00:00Z", 0),
    ("2000-02-29T12:00:00Z", 951825600),
    ("2024-03-01T00:00:00Z", 1709251200),
    ("2026-12-31T23:59:59Z", 1798761599),
    ("2016-12-31T23:59:60Z", 1483228800),
    ("1969-12-31T23:59:59Z", -1),
    ("1600-03-01T00:00:00Z", -11670912000),
])
def test_parse_timestamp_dates(text, expected_seconds):
    assert logs.parse_timestamp(text) == expected_seconds * 10**9


@pytest.mark.parametrize("text", [
    "1900-02-29T00:00:00Z", "2026-02-29T00:00:00Z", "2026-04-31T00:00:00Z", "2026-13-01T00:00:00Z",
    "2026-00-10T00:00:00Z", "2026-01-00T00:00:00Z", "2026-01-01T24:00:00Z", "2026-01-01T00:60:00Z",
    "2026-01-01T00:00:62Z", "0000-01-01T00:00:00Z", "2026-01-01T00:00:00",
])
def test_parse_timestamp_rejects_invalid(text):
    with pytest.raises(ValueError):
        logs.parse_timestamp(text)


def test_timestamp_round_trip():
    assert logs.parse_timestamp(logs.timestamp(1_700_000_000_123_456_789)) == 1_700_000_000_123_456_789


@pytest.mark.parametrize("values, expected", [
    ([], {"max_size": 0, "max_file": 1}),
    (["max-size=10m"], {"max_size": 10 * 1024**2, "max_file": 1}),
    (["max-size=512k", "max-file=3"], {"max_size": 512 * 1024, "max_file": 3}),
])
def test_parse_log_options(values, expected):
    assert logs.parse_log_options(values) == expected


@pytest.mark.parametrize("values, message", [
    (["max-size=ten"], "max-size"),
    (["max-file=0", "max-size=1m"], "max-file"),
    (["max-file=2"], "needs max-size"),
    (["compress=true"], "compress"),
    (["max-size"], "KEY=VALUE"),
])
def test_parse_log_options_rejects(values, message):
    with pytest.raises(logs.LogOptionError, match=message):
        logs.parse_log_options(values)


def test_follower_reads_across_rotation(tmp_path):
    # About four entries fit in a file, and the follower reads every second entry.
    path = tmp_path / "c-json.log"
    writer = logs.JsonFileWriter(str(path), max_size=300, max_file=2)
    follower = logs.Follower(str(path))
    follower.skip_to_end()
    seen = []
    for index in range(30):
        writer.write("stdout", f"line {index}\n".encode())
        if index % 2 == 0:
            seen += follower.read_new()
    writer.close()
    seen += follower.read_new()
    assert [entry["log"] for entry in seen] == [f"line {index}\n" for index in range(30)]


def follow_twenty_lines_in_one_read(path, max_file: int) -> list[str]:
    """Follow a log of about four entries a file; write 20 lines between two reads; return what was read."""
    writer = logs.JsonFileWriter(str(path), max_size=300, max_file=max_file)
    follower = logs.Follower(str(path))
    follower.skip_to_end()
    writer.write("stdout", b"line 0\n")
    seen = follower.read_new()
    for index in range(1, 21):
        writer.write("stdout", f"line {index}\n".encode())
    seen += follower.read_new()
    writer.close()
    return [entry["log"] for entry in seen]


def test_follower_catches_up_over_several_rotations(tmp_path):
    # The 20 lines rotate the log five times, and five files are kept, so none is dropped unread.
    logged = follow_twenty_lines_in_one_read(tmp_path / "c-json.log", max_file=6)
    assert logged == [f"line {index}\n" for index in range(21)]


def test_follower_reads_kept_files_after_drop(tmp_path):
    path = tmp_path / "c-json.log"
    logged = follow_twenty_lines_in_one_read(path, max_file=2)
    # The follower's own file stays open, so it is read to its end. The
    # files dropped after it are lost, and the two kept files are read whole.
    kept_lines = [entry["log"] for entry in logs.read_entries(str(path))]
    own = logged[: len(logged) - len(kept_lines)]
    assert len(own) > 1
    assert own == [f"line {index}\n" for index in range(len(own))]
    assert logged[len(own):] == kept_lines


def test_follower_from_the_oldest_entry_reads_each_once(tmp_path):
    path = tmp_path / "c-json.log"
    writer = logs.JsonFileWriter(str(path), max_size=300, max_file=6)
    for index in range(10):
        writer.write("stdout", f"line {index}\n".encode())
    follower = logs.Follower(str(path))
    follower.start_at_oldest()
    seen = follower.read_new()
    for index in range(10, 15):
        writer.write("stdout", f"line {index}\n".encode())
    seen += follower.read_new()
    writer.close()
    assert [entry["log"] for entry in seen] == [f"line {index}\n" for index in range(15)]
