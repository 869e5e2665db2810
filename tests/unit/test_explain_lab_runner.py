"""The lab runner (tests/labs.py): parsing, output matching, running, cleanup."""

from pathlib import Path

import pytest

from tests import labs

REPO = Path(__file__).resolve().parents[2]

LAB = """\
# A lab

Text that is not run.

```console
$ echo one
one
$ printf 'a\\nb\\n' \\
  | wc -l
2
```

```sh
$ not run
```

```console cgroup-v2
$ cat /sys/fs/cgroup/memory.max
max
```

```console cleanup
$ rm -f marker
```
"""


def test_parse_lab_blocks_and_markers():
    blocks = labs.parse_lab(LAB)
    assert [b.markers for b in blocks] == [set(), {"cgroup-v2"}, {"cleanup"}]
    assert [c.text for c in blocks[0].commands] == ["echo one", "printf 'a\\nb\\n' \\\n  | wc -l"]
    assert blocks[0].commands[0].expected == ["one"]
    assert blocks[0].commands[1].expected == ["2"]
    assert blocks[0].commands[1].line == 8


def test_parse_lab_rejects_unknown_marker():
    with pytest.raises(ValueError, match="unknown marker"):
        labs.parse_lab("```console v3\n$ true\n```\n")


def test_parse_lab_rejects_unclosed_block():
    with pytest.raises(ValueError, match="not closed"):
        labs.parse_lab("```console\n$ true\n")


@pytest.mark.parametrize(
    "expected, actual",
    [
        (["container <ID> started"], "container 0123456789ab started\n"),
        (["PID USER TIME COMMAND", "1 root <TIME> sh"], "PID   USER     TIME  COMMAND\n    1 root      0:00 sh\n"),
        (["first", "...", "last"], "first\nx\ny\nlast\n"),
        (["first", "...", "last"], "first\nlast\n"),
        (["inet <ADDRESS>/<NUMBER> scope global eth0"], "inet 172.17.0.2/16 scope global eth0\n"),
        (["<DIGEST>"], "sha256:" + "ab" * 32 + "\n"),
        ([], ""),
        (["done", ""], "done\n\n"),
    ],
)
def test_output_matches(expected, actual):
    assert labs.output_matches(expected, actual)


@pytest.mark.parametrize(
    "expected, actual",
    [
        (["one"], "two\n"),
        (["one"], "one\nextra\n"),
        (["<ID>"], "xyz\n"),
        (["<PID>"], "12a\n"),
        ([], "unexpected\n"),
        (["a.b"], "axb\n"),
    ],
)
def test_output_mismatch(expected, actual):
    assert not labs.output_matches(expected, actual)


@pytest.mark.parametrize(
    "command, subcommands",
    [
        ("sudo pyrun --explain run --rm busybox true", ["run"]),
        ("pyrun --root /x --log-level trace images | grep busybox", ["images"]),
        ("pyrun pull busybox && pyrun explain image busybox", ["pull", "explain"]),
        ("echo pyrun", []),
    ],
)
def test_pyrun_subcommands_found(command, subcommands):
    assert labs.pyrun_subcommands(command) == subcommands


def test_sudo_runs_command_with_environment(tmp_path):
    text = "```console\n$ for i in 1; do sudo sh -c 'echo $LAB_VALUE'; done\nkept\n```\n"
    result = labs.run_lab(write_lab(tmp_path, text), {"PATH": "/usr/bin:/bin", "LAB_VALUE": "kept"})
    assert result.failures == []


def write_lab(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "lab.md"
    path.write_text(text)
    return path


def test_run_lab_passes_and_skips_other_cgroup_version(tmp_path):
    result = labs.run_lab(write_lab(tmp_path, LAB), {"PATH": "/usr/bin:/bin"}, cgroup_version="v1")
    assert result.failures == []
    assert result.ran == 2


def test_run_lab_reports_diff_and_still_cleans_up(tmp_path):
    marker = tmp_path / "cleaned"
    text = f"""\
```console
$ echo actual
expected
$ echo never run
never run
```

```console cleanup
$ touch {marker}
```
"""
    result = labs.run_lab(write_lab(tmp_path, text), {"PATH": "/usr/bin:/bin"})
    assert result.ran == 1
    assert len(result.failures) == 1
    assert "-expected" in result.failures[0]
    assert "+actual" in result.failures[0]
    assert marker.exists()


def test_run_lab_stops_before_missing_subcommand(tmp_path):
    text = "```console\n$ echo ok\nok\n$ pyrun frobnicate\n$ echo after\nafter\n```\n"
    result = labs.run_lab(write_lab(tmp_path, text), {"PATH": "/usr/bin:/bin"}, available={"images"})
    assert result.ran == 1
    assert result.failures == []
    assert result.skipped == ["lab.md:4: needs pyrun frobnicate"]


def test_commands_share_scratch_directory(tmp_path):
    text = "```console\n$ echo hi > note\n$ cat note\nhi\n```\n"
    result = labs.run_lab(write_lab(tmp_path, text), {"PATH": "/usr/bin:/bin"})
    assert result.failures == []


@pytest.mark.parametrize("path", sorted((REPO / "docs" / "labs").glob("*.md")), ids=lambda p: p.name)
def test_docs_labs_parse(path):
    blocks = labs.parse_lab(path.read_text())
    if path.name == "README.md":
        return
    assert blocks, f"{path} has no console block"
    for block in blocks:
        assert block.commands, f"{path}:{block.line}: a console block without a command"


def test_open_quote_continues_command():
    blocks = labs.parse_lab("```console\n$ sh -c '\n  echo a\n  echo b'\na\nb\n```\n")
    command = blocks[0].commands[0]
    assert command.text == "sh -c '\n  echo a\n  echo b'"
    assert command.expected == ["a", "b"]


def test_run_lab_skips_unsupported_option(tmp_path):
    text = ("```console\n$ echo 'pyrun: pyrun run -d is not supported yet (run it in the foreground)'\n<ID>\n"
            "$ echo after\nafter\n```\n")
    result = labs.run_lab(write_lab(tmp_path, text), {"PATH": "/usr/bin:/bin"})
    assert result.failures == []
    assert result.ran == 1
    assert result.skipped == ["lab.md:2: pyrun run -d is not supported yet"]
