"""`pyrun run --pull missing|always|never`: when run pulls the image first."""

from __future__ import annotations

import os

import pytest

from tests.integration.run_support import pyrun_run, run_env  # noqa: F401

pytestmark = [pytest.mark.root, pytest.mark.registry]


def test_pull_always_pulls_a_present_image(run_env):
    result = pyrun_run(run_env, "--pull", "always", "busybox", "echo", "ran")
    assert result.returncode == 0, result.stderr
    assert "Unable to find image" not in result.stderr
    assert "latest: Pulling from library/busybox" in result.stderr
    assert "Status: Image is up to date for busybox:latest" in result.stderr
    assert result.stdout == "ran\n"


def test_pull_never_runs_a_present_image(run_env):
    result = pyrun_run(run_env, "--pull", "never", "busybox", "echo", "ran")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout == "ran\n"


def test_pull_never_rejects_a_missing_image(run_env):
    before = set(os.listdir(run_env.root / "containers"))
    result = pyrun_run(run_env, "--pull", "never", "httpd", "true")
    assert result.returncode == 125
    assert "no such image: httpd:latest" in result.stderr
    assert "Pulling from" not in result.stderr
    assert set(os.listdir(run_env.root / "containers")) == before


def test_pull_rejects_an_unknown_policy(run_env):
    result = pyrun_run(run_env, "--pull", "sometimes", "busybox", "true")
    assert result.returncode == 125
    assert "invalid choice: 'sometimes'" in result.stderr
