"""Run the labs in docs/labs/ and check that each command prints what the lab shows.

A lab is Markdown. Only fenced blocks whose info string starts with
``console`` are run; the words after it are markers:

    ```console              run on every host
    ```console cgroup-v1    run only where the cgroup controllers are v1
                            (v1 or hybrid layout)
    ```console cgroup-v2    run only on a pure cgroup v2 host
    ```console cleanup      always run at the end of the lab, even after a
                            failure, so nothing is left behind

Inside a block, a line starting with ``$ `` is a command, which goes on
over the next lines while it ends in a backslash or has a quote open, as in
the shell. The lines after it, up to the next command, are the output the
student should see (stdout and stderr together). In the expected output:

    <ID>       a container or image ID: 12 or 64 hexadecimal digits
    <DIGEST>   sha256: and 64 hexadecimal digits
    <PID> <PORT> <NUMBER> <SIZE>   a decimal number
    <ADDRESS>  an IPv4 address
    <PATH>     text without spaces
    <TIME> <ANY>                   any text within the line
    ...        on a line of its own: any number of lines, none included

Runs of spaces and tabs compare as one space, and trailing spaces are
ignored, so column alignment may differ.

Each command runs in its own ``bash -c`` (so shell variables do not carry
over to the next command), in one scratch directory per lab, as root.
``sudo`` is replaced by a script that runs its arguments, because the real
sudo would reset PYRUN_CONFIG and PYRUN_ROOT, which point pyrun at the test
registry and a scratch store.

Usage, as root: python tests/labs.py docs/labs/01-pid-namespace.md ...
(with PYRUN_CONFIG set when a lab pulls images).
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

COMMAND_TIMEOUT_SECONDS = 120

PLACEHOLDERS = {
    "<ID>": r"[0-9a-f]{12}(?:[0-9a-f]{52})?",
    "<DIGEST>": r"sha256:[0-9a-f]{64}",
    "<PID>": r"[0-9]+",
    "<PORT>": r"[0-9]+",
    "<NUMBER>": r"[0-9]+",
    "<SIZE>": r"[0-9]+",
    "<ADDRESS>": r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}",
    "<PATH>": r"\S+",
    "<TIME>": r".+?",
    "<ANY>": r".*?",
}
PLACEHOLDER_PATTERN = re.compile("|".join(re.escape(name) for name in PLACEHOLDERS))
ANY_LINES = "..."

# pyrun's message for an option it rejects because it is still to be built.
# A lab stops there and reports the rest as skipped, not failed.
NOT_SUPPORTED_YET = re.compile(r"^pyrun: (.*) is not supported yet", re.MULTILINE)
MARKERS = {"cgroup-v1", "cgroup-v2", "cleanup"}

# Global options of `pyrun` that take a value, to find the sub-command after them.
PYRUN_OPTIONS_WITH_VALUE = {"--root", "--log-level"}


@dataclass
class Command:
    """One ``$ `` line of a lab and the output shown after it."""

    text: str
    expected: list[str]
    line: int


@dataclass
class Block:
    """One ```console block: its commands and its markers."""

    commands: list[Command]
    markers: set[str]
    line: int


@dataclass
class LabResult:
    """What running one lab found."""

    path: Path
    failures: list[str] = field(default_factory=list)
    ran: int = 0
    skipped: list[str] = field(default_factory=list)


def parse_lab(text: str) -> list[Block]:
    """Return the console blocks of a lab, in order; raise ValueError on an unknown marker."""
    blocks: list[Block] = []
    current: Block | None = None
    continuing = False
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if current is None:
            if stripped.startswith("```console"):
                markers = set(stripped[len("```console"):].split())
                unknown = markers - MARKERS
                if unknown:
                    raise ValueError(f"line {number}: unknown marker {sorted(unknown)}; use one of {sorted(MARKERS)}")
                current = Block([], markers, number)
            continue
        if stripped == "```":
            blocks.append(current)
            current = None
            continuing = False
            continue
        if continuing:
            current.commands[-1].text += "\n" + line
            continuing = not command_complete(current.commands[-1].text)
        elif line.startswith("$ "):
            current.commands.append(Command(line[2:], [], number))
            continuing = not command_complete(line[2:])
        elif current.commands:
            current.commands[-1].expected.append(line)
        elif stripped:
            raise ValueError(f"line {number}: output before the first command of the block")
    if current is not None:
        raise ValueError(f"line {current.line}: the console block is not closed")
    return blocks


def command_complete(text: str) -> bool:
    """Return False while a command goes on: a trailing backslash or an open quote."""
    if text.endswith("\\"):
        return False
    try:
        shlex.split(text)
    except ValueError:
        return False
    return True


def normalize(line: str) -> str:
    return " ".join(line.split())


def line_pattern(expected: str) -> str:
    """Turn one expected line into a regular expression, placeholders included."""
    parts = []
    position = 0
    text = normalize(expected)
    for match in PLACEHOLDER_PATTERN.finditer(text):
        parts.append(re.escape(text[position:match.start()]))
        parts.append(PLACEHOLDERS[match.group()])
        position = match.end()
    parts.append(re.escape(text[position:]))
    return "".join(parts)


def output_matches(expected: list[str], actual: str) -> bool:
    """Return True when `actual` output fits the `expected` lines of a lab."""
    # Trailing blank lines of the lab's block and of the output do not count.
    while expected and not expected[-1].strip():
        expected = expected[:-1]
    pattern = ""
    for line in expected:
        if line.strip() == ANY_LINES:
            pattern += r"(?:[^\n]*\n)*?"
        else:
            pattern += line_pattern(line) + r"\n"
    lines = [normalize(line) for line in actual.rstrip("\n").split("\n")] if actual.strip() else []
    text = "".join(line + "\n" for line in lines)
    return re.fullmatch(pattern, text) is not None


def pyrun_subcommands(command: str) -> list[str]:
    """Return the sub-commands a command line runs pyrun with, e.g. ``["run"]``."""
    try:
        words = shlex.split(command.replace("\\\n", " "), comments=False)
    except ValueError:
        words = command.split()
    found = []
    for index, word in enumerate(words):
        if os.path.basename(word) != "pyrun":
            continue
        rest = words[index + 1:]
        while rest and rest[0].startswith("-"):
            option = rest.pop(0)
            if option in PYRUN_OPTIONS_WITH_VALUE and rest:
                rest.pop(0)
        if rest:
            found.append(rest[0])
    return found


def host_cgroup_version() -> str:
    """Return "v2" on a pure cgroup v2 host, else "v1" (v1 or hybrid: controllers on v1)."""
    return "v2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "v1"


def block_applies(block: Block, cgroup_version: str) -> bool:
    if "cgroup-v1" in block.markers and cgroup_version != "v1":
        return False
    if "cgroup-v2" in block.markers and cgroup_version != "v2":
        return False
    return True


SUDO_SHIM = "#!/bin/sh\n# The lab runner is root already: run the command as it is.\nexec \"$@\"\n"


def install_sudo_shim(directory: Path) -> Path:
    """Write a `sudo` that only runs its arguments, and return its directory."""
    bin_dir = directory / ".lab-bin"
    bin_dir.mkdir()
    shim = bin_dir / "sudo"
    shim.write_text(SUDO_SHIM)
    shim.chmod(0o755)
    return bin_dir


def run_command(command: str, workdir: Path, env: dict[str, str],
                prefix: tuple[str, ...] = ()) -> str:
    """Run one lab command as the student would, stdout and stderr together.

    `prefix` goes in front of the shell, e.g. nsenter into a network namespace.
    """
    result = subprocess.run(
        [*prefix, "bash", "-c", command],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        timeout=COMMAND_TIMEOUT_SECONDS,
    )
    return result.stdout


def describe_mismatch(command: Command, actual: str, path: Path) -> str:
    diff = difflib.unified_diff(
        [line.rstrip() for line in command.expected],
        actual.rstrip("\n").split("\n"),
        fromfile="the lab shows",
        tofile="the command printed",
        lineterm="",
    )
    return f"{path}:{command.line}: $ {command.text}\n" + "\n".join(diff)


def run_lab(path: Path, env: dict[str, str], *, available: set[str] | None = None,
            cgroup_version: str | None = None, prefix: tuple[str, ...] = ()) -> LabResult:
    """Run every block of the lab that applies to this host, cleanup blocks last.

    `available` lists pyrun's sub-commands. The lab stops before the first
    command that needs another one, or at the first that pyrun rejects as
    "not supported yet", and reports that command in `skipped`. It stops
    there because later commands build on the earlier ones. Cleanup blocks always run; their commands
    that need an unavailable sub-command are left out.
    """
    blocks = parse_lab(path.read_text())
    version = cgroup_version or host_cgroup_version()
    result = LabResult(path)
    steps = [b for b in blocks if "cleanup" not in b.markers and block_applies(b, version)]
    cleanups = [b for b in blocks if "cleanup" in b.markers and block_applies(b, version)]

    with tempfile.TemporaryDirectory(prefix="pyrun-lab-") as scratch:
        workdir = Path(scratch) / "lab"
        workdir.mkdir()
        bin_dir = install_sudo_shim(Path(scratch))
        env = dict(env, PATH=f"{bin_dir}:{env.get('PATH', os.defpath)}")
        try:
            for command in (c for block in steps for c in block.commands):
                missing = _missing_subcommands(command, available)
                if missing:
                    result.skipped.append(f"{path.name}:{command.line}: needs pyrun {', '.join(missing)}")
                    break
                actual = run_command(command.text, workdir, env, prefix)
                result.ran += 1
                if output_matches(command.expected, actual):
                    continue
                unsupported = NOT_SUPPORTED_YET.search(actual)
                if unsupported:
                    result.skipped.append(f"{path.name}:{command.line}: {unsupported.group(1)} is not supported yet")
                else:
                    result.failures.append(describe_mismatch(command, actual, path))
                break
        finally:
            for command in (c for block in cleanups for c in block.commands):
                if _missing_subcommands(command, available):
                    continue
                actual = run_command(command.text, workdir, env, prefix)
                if not result.failures and not output_matches(command.expected, actual):
                    result.failures.append(describe_mismatch(command, actual, path))
    return result


def _missing_subcommands(command: Command, available: set[str] | None) -> list[str]:
    if available is None:
        return []
    return [name for name in pyrun_subcommands(command.text) if name not in available]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run pyrun's labs and compare their output.")
    parser.add_argument("labs", nargs="+", type=Path, help="lab Markdown files, e.g. docs/labs/*.md")
    args = parser.parse_args(argv)
    failed = 0
    for path in args.labs:
        result = run_lab(path, dict(os.environ))
        status = "FAIL" if result.failures else "ok"
        print(f"{status:4} {path} ({result.ran} commands)")
        for failure in result.failures:
            print(failure)
        failed += bool(result.failures)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
