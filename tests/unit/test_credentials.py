"""Credential lookup in Docker's config.json and through credential helpers.

The helpers are real programs: small shell scripts that the tests write
into a directory put first on PATH.
"""

import base64
import json
import os
import stat

import pytest

from registry_client import credentials
from registry_client.credentials import (CredentialsError, erase_credentials,
                                         lookup_credentials, store_credentials)
from registry_client.auth import Credentials


@pytest.fixture
def docker_home(tmp_path, monkeypatch):
    """A fake HOME with an empty ~/.docker, and no SUDO_USER or DOCKER_CONFIG."""
    home = tmp_path / "home"
    (home / ".docker").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("DOCKER_CONFIG", raising=False)
    monkeypatch.delenv("SUDO_USER", raising=False)
    return home


def write_config(home, data):
    (home / ".docker" / "config.json").write_text(json.dumps(data))


def basic(user, password):
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def install_helper(tmp_path, monkeypatch, name, script):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    helper = bin_dir / f"docker-credential-{name}"
    helper.write_text("#!/bin/sh\n" + script)
    helper.chmod(helper.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return bin_dir


def test_docker_hub_key_from_auths(docker_home):
    write_config(docker_home, {"auths": {"https://index.docker.io/v1/":
                                         {"auth": basic("alice", "pw:with:colons")}}})
    found = lookup_credentials("docker.io")
    assert (found.username, found.password) == ("alice", "pw:with:colons")


def test_registry_host_from_auths(docker_home):
    write_config(docker_home, {"auths": {"https://reg.example:5000": {"auth": basic("b", "c")}}})
    assert lookup_credentials("reg.example:5000").username == "b"
    assert lookup_credentials("other.example") is None


def test_missing_file_means_anonymous(docker_home):
    assert lookup_credentials("docker.io") is None


def test_sudo_user_file_read_after_root(docker_home, tmp_path, monkeypatch):
    user_home = tmp_path / "user"
    (user_home / ".docker").mkdir(parents=True)
    write_config(user_home, {"auths": {"reg.example": {"auth": basic("user", "pw")}}})

    class Entry:
        pw_dir = str(user_home)

    monkeypatch.setenv("SUDO_USER", "someone")
    monkeypatch.setattr(credentials.pwd, "getpwnam", lambda name: Entry)
    assert lookup_credentials("reg.example").username == "user"
    write_config(docker_home, {"auths": {"reg.example": {"auth": basic("root", "pw")}}})
    assert lookup_credentials("reg.example").username == "root"


def test_creds_store_helper_get(docker_home, tmp_path, monkeypatch):
    log = tmp_path / "asked"
    install_helper(tmp_path, monkeypatch, "fake", f"""
cat > {log}
echo '{{"ServerURL": "x", "Username": "helperuser", "Secret": "helpersecret"}}'
""")
    write_config(docker_home, {"credsStore": "fake"})
    found = lookup_credentials("docker.io")
    assert (found.username, found.password) == ("helperuser", "helpersecret")
    assert log.read_text() == "https://index.docker.io/v1/"


def test_cred_helpers_override_store(docker_home, tmp_path, monkeypatch):
    install_helper(tmp_path, monkeypatch, "special",
                   'echo \'{"ServerURL": "x", "Username": "special", "Secret": "s"}\'\n')
    install_helper(tmp_path, monkeypatch, "general",
                   'echo \'{"ServerURL": "x", "Username": "general", "Secret": "s"}\'\n')
    write_config(docker_home, {"credsStore": "general",
                               "credHelpers": {"reg.example": "special"}})
    assert lookup_credentials("reg.example").username == "special"
    assert lookup_credentials("docker.io").username == "general"


def test_helper_not_found_answer_means_anonymous(docker_home, tmp_path, monkeypatch):
    install_helper(tmp_path, monkeypatch, "empty",
                   'echo "credentials not found in native keychain"; exit 1\n')
    write_config(docker_home, {"credsStore": "empty"})
    assert lookup_credentials("docker.io") is None


def test_helper_identity_token(docker_home, tmp_path, monkeypatch):
    install_helper(tmp_path, monkeypatch, "tok",
                   'echo \'{"ServerURL": "x", "Username": "<token>", "Secret": "refresh"}\'\n')
    write_config(docker_home, {"credsStore": "tok"})
    assert lookup_credentials("docker.io").identity_token == "refresh"


def test_missing_helper_named(docker_home):
    write_config(docker_home, {"credsStore": "absent-helper-xyz"})
    with pytest.raises(CredentialsError, match="docker-credential-absent-helper-xyz not found"):
        lookup_credentials("docker.io")


def test_failing_helper_error_hides_output(docker_home, tmp_path, monkeypatch):
    install_helper(tmp_path, monkeypatch, "broken", 'echo "secret-ish output"; exit 3\n')
    write_config(docker_home, {"credsStore": "broken"})
    with pytest.raises(CredentialsError) as caught:
        lookup_credentials("docker.io")
    assert "exit status 3" in str(caught.value)
    assert "secret-ish" not in str(caught.value)


def test_store_and_erase_in_file(docker_home):
    write_config(docker_home, {"auths": {}, "currentContext": "keep-me"})
    store_credentials("docker.io", Credentials("alice", "pw"))
    path = docker_home / ".docker" / "config.json"
    data = json.loads(path.read_text())
    assert data["auths"]["https://index.docker.io/v1/"] == {"auth": basic("alice", "pw")}
    assert data["currentContext"] == "keep-me"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert erase_credentials("docker.io")
    assert json.loads(path.read_text())["auths"] == {}
    assert not erase_credentials("docker.io")


def test_store_through_helper(docker_home, tmp_path, monkeypatch):
    stored = tmp_path / "stored"
    install_helper(tmp_path, monkeypatch, "keep", f'cat > {stored}\n')
    write_config(docker_home, {"credsStore": "keep"})
    assert store_credentials("reg.example", Credentials("u", "p")) == "docker-credential-keep"
    assert json.loads(stored.read_text()) == {"ServerURL": "reg.example", "Username": "u",
                                              "Secret": "p"}
    assert "auths" not in json.loads((docker_home / ".docker" / "config.json").read_text())
