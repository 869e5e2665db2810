"""`pyrun login` and `logout` against the token registry with required credentials."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest

from tests.conftest import run_pyrun

pytestmark = [pytest.mark.root, pytest.mark.registry]

USER, PASSWORD = "alice", "correct horse"


@pytest.fixture
def login_env(make_pyrun_env, token_registry, tmp_path):
    """pyrun env whose Docker Hub is the token registry, with its own ~/.docker."""
    token_registry.issuer.settings.credentials = (USER, PASSWORD)
    env = make_pyrun_env(docker_hub_endpoint=token_registry.url)
    env["DOCKER_CONFIG"] = str(tmp_path / "docker-config")
    return env


def docker_config(env):
    with open(f"{env['DOCKER_CONFIG']}/config.json") as file:
        return json.load(file)


def login(env, password=PASSWORD, *extra):
    return run_pyrun("login", "-u", USER, "--password-stdin", *extra, env=env,
                     input=password + "\n")


def test_login_writes_docker_config(login_env, token_registry):
    result = login(login_env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Login Succeeded\n"
    # Like docker login: one token request with the credentials and no scope.
    [request] = token_registry.issuer.requests
    assert request.scopes == []
    assert request.basic_user == USER
    auth = docker_config(login_env)["auths"]["https://index.docker.io/v1/"]["auth"]
    assert base64.b64decode(auth).decode() == f"{USER}:{PASSWORD}"
    path = Path(login_env["DOCKER_CONFIG"]) / "config.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_wrong_password_rejected_and_not_saved(login_env):
    result = login(login_env, "wrong")
    assert result.returncode == 125
    assert "rejected the credentials" in result.stderr
    assert "wrong" not in result.stderr
    assert PASSWORD not in result.stderr


def test_pull_uses_saved_credentials(login_env, token_registry):
    assert run_pyrun("pull", "busybox", env=login_env).returncode != 0
    assert login(login_env).returncode == 0
    token_registry.issuer.requests.clear()
    result = run_pyrun("pull", "busybox", env=login_env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert {r.basic_user for r in token_registry.issuer.requests} == {USER}
    assert PASSWORD not in result.stderr + result.stdout


def test_credentials_not_logged(login_env):
    assert login(login_env).returncode == 0
    result = run_pyrun("--log-level", "debug", "pull", "busybox", env=login_env, timeout=300)
    assert result.returncode == 0, result.stderr
    encoded = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    assert PASSWORD not in result.stderr
    assert encoded not in result.stderr
    assert "Bearer ey" not in result.stderr
    # urllib3 logs the token request, with its query string cut off.
    assert '"GET /token?... HTTP/1.1" 200' in result.stderr
    assert "account=" not in result.stderr


def test_logout_removes_entry(login_env):
    assert login(login_env).returncode == 0
    result = run_pyrun("logout", env=login_env)
    assert result.stdout == "Removing login credentials for https://index.docker.io/v1/\n"
    assert docker_config(login_env)["auths"] == {}
    result = run_pyrun("logout", env=login_env)
    assert result.stdout == "Not logged in to https://index.docker.io/v1/\n"


def test_login_to_registry_host(login_env, token_registry):
    result = login(login_env, PASSWORD, token_registry.host)
    assert result.returncode == 0, result.stderr
    assert token_registry.host in docker_config(login_env)["auths"]
