"""Each lab in docs/labs/ runs as written and prints what it shows the student.

The runner is tests/labs.py (its format is described there and in
docs/labs/README.md). pyrun is pointed at the fixture registry as Docker
Hub and at a scratch store, through PYRUN_CONFIG and PYRUN_ROOT. Every
command runs inside the session's test network namespace, with the
registry served there too, because the labs use pyrun's default bridge
network and the host's own network must not change.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from runtime.cli import build_parser
from tests import labs

REPO = Path(__file__).resolve().parents[2]
LABS = sorted(path for path in (REPO / "docs" / "labs").glob("*.md") if path.name != "README.md")


def lab_param(path: Path):
    """A lab with cgroup v2 blocks is also marked cgroupv2, so `make vm-test` runs it on a v2 guest."""
    marks = [pytest.mark.cgroupv2] if "```console cgroup-v2" in path.read_text() else []
    return pytest.param(path, marks=marks, id=path.stem)

pytestmark = [pytest.mark.root, pytest.mark.registry, pytest.mark.network, pytest.mark.slow]


def pyrun_subcommands() -> set[str]:
    """Return the sub-commands this tree's pyrun has."""
    return set(build_parser().subcommands.help)


@pytest.mark.parametrize("lab", [lab_param(path) for path in LABS])
def test_lab(lab, pyrun_env, test_network, namespace_registry):
    env = test_network.env(pyrun_env)
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', os.defpath)}"
    prefix = tuple(test_network.command())
    result = labs.run_lab(lab, env, available=pyrun_subcommands(), prefix=prefix)

    assert not result.failures, "\n\n".join(result.failures)
    if result.skipped:
        # NOTE: the lab reached a sub-command or option this tree does not
        # have yet. The commands before it ran and matched; the rest did not run.
        pytest.skip(f"ran {result.ran} commands; stopped at {result.skipped[0]}")
