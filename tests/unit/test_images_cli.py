"""Docker-style formatting of the image commands and of pull progress."""

import io

import pytest

from runtime.cli.images import human_duration, human_size, parse_rfc3339, print_table
from runtime.cli.progress import PullProgress

NOW = parse_rfc3339("2024-06-01T12:00:00Z").timestamp()


@pytest.mark.parametrize("size, text", [
    (0, "0B"),
    (999, "999B"),
    (1_000, "1kB"),
    (4_262_000, "4.26MB"),
    (148_000_000, "148MB"),
    (1_230_000_000, "1.23GB"),
])
def test_human_size_like_docker(size, text):
    assert human_size(size) == text


@pytest.mark.parametrize("created, text", [
    ("2024-06-01T12:00:00.999999999Z", "Less than a second ago"),
    ("2024-06-01T11:59:30Z", "30 seconds ago"),
    ("2024-06-01T11:59:00Z", "About a minute ago"),
    ("2024-06-01T11:00:00Z", "About an hour ago"),
    ("2024-06-01T02:00:00Z", "10 hours ago"),
    ("2024-05-25T12:00:00Z", "7 days ago"),
    ("2024-05-01T12:00:00Z", "4 weeks ago"),
    ("2023-12-01T12:00:00Z", "6 months ago"),
    ("2020-06-01T12:00:00+02:00", "4 years ago"),
    ("", "N/A"),
    ("yesterday", "N/A"),
])
def test_human_duration_like_docker(created, text):
    assert human_duration(created, now=NOW) == text


def test_print_table_pads_columns(capsys):
    print_table([["REPOSITORY", "TAG", "IMAGE ID"], ["busybox", "latest", "a416a98b71e2"],
                 ["a", "b", "c"]])
    assert capsys.readouterr().out == (
        "REPOSITORY   TAG       IMAGE ID\n"
        "busybox      latest    a416a98b71e2\n"
        "a            b         c\n")


def test_progress_lines_without_terminal():
    stream = io.StringIO()
    progress = PullProgress(stream)
    digest = "sha256:" + "ab" * 32
    progress.using_default_tag("latest")
    progress.pulling_from("latest", "library/busybox")
    progress.layer_waiting(digest, 100)
    progress.layer_progress(digest, 50, 100)
    progress.layer_downloaded(digest)
    progress.layer_complete(digest)
    progress.digest("sha256:" + "cd" * 32)
    progress.status("Downloaded newer image for busybox:latest")
    assert stream.getvalue().splitlines() == [
        "Using default tag: latest",
        "latest: Pulling from library/busybox",
        "abababababab: Pulling fs layer",
        "abababababab: Download complete",
        "abababababab: Pull complete",
        "Digest: sha256:" + "cd" * 32,
        "Status: Downloaded newer image for busybox:latest",
    ]
