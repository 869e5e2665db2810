"""Registry credentials from Docker's `~/.docker/config.json`, and `login`/`logout`.

The file Docker's CLI writes (`cli/config/configfile/file.go` in docker/cli):

    {
      "auths": {"https://index.docker.io/v1/": {"auth": "<base64 user:password>"},
                "registry.example.com": {"auth": "..."}},
      "credsStore": "pass",                          # helper for every registry
      "credHelpers": {"registry.example.com": "ecr-login"}   # helper per registry
    }

A credential helper is the program `docker-credential-NAME`: `get` reads
the server URL on stdin and prints `{"ServerURL", "Username", "Secret"}`,
`store` reads that JSON, `erase` reads the server URL. A Username of
`<token>` means the Secret is an identity (refresh) token.

pyrun runs as root, often through sudo, so `~` is root's home while the
user logged in as themselves: the invoking user's file (`$SUDO_USER`) is
read too, after root's. `$DOCKER_CONFIG` names another directory, as for
Docker.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import pwd
import subprocess
import tempfile

from registry_client.auth import Credentials
from registry_client.reference import DOCKER_HUB, normalize_registry_host
from runtime.errors import PyrunError

log = logging.getLogger(__name__)

# The key under which Docker stores Docker Hub's credentials.
DOCKER_HUB_AUTH_KEY = "https://index.docker.io/v1/"
HELPER_TIMEOUT = 30
IDENTITY_TOKEN_USERNAME = "<token>"


class CredentialsError(PyrunError):
    """The Docker config file or a credential helper failed."""


def server_key(registry: str) -> str:
    """Return the key Docker uses for `registry` in `auths` and with helpers."""
    return DOCKER_HUB_AUTH_KEY if normalize_registry_host(registry) == DOCKER_HUB else registry


def host_of_key(key: str) -> str:
    """Reduce an `auths` key (`https://host/v1/`, `host`) to a registry host."""
    host = key
    for prefix in ("https://", "http://"):
        if host.startswith(prefix):
            host = host[len(prefix):]
    host = host.split("/", 1)[0]
    return normalize_registry_host(host)


def config_files() -> list[str]:
    """Return the Docker config files to read, in order: the first match wins."""
    if os.environ.get("DOCKER_CONFIG"):
        return [os.path.join(os.environ["DOCKER_CONFIG"], "config.json")]
    files = [os.path.join(os.path.expanduser("~"), ".docker", "config.json")]
    sudo_user = os.environ.get("SUDO_USER")
    if sudo_user and sudo_user != "root":
        try:
            home = pwd.getpwnam(sudo_user).pw_dir
        except KeyError:
            log.debug("SUDO_USER %s has no passwd entry", sudo_user)
        else:
            files.append(os.path.join(home, ".docker", "config.json"))
    return files


def read_config_file(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as file:
            data = json.load(file)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        raise CredentialsError(f"cannot read Docker config file {path}: {err}") from err
    if not isinstance(data, dict):
        raise CredentialsError(f"invalid Docker config file {path}: not a JSON object")
    return data


def lookup_credentials(registry: str) -> Credentials | None:
    """Find credentials for `registry` in the config files, or None for anonymous."""
    for path in config_files():
        data = read_config_file(path)
        helper = helper_for(data, registry)
        if helper:
            credentials = helper_get(helper, server_key(registry))
        else:
            credentials = credentials_from_auths(data.get("auths") or {}, registry)
        if credentials is not None:
            log.debug("using credentials for %s from %s", registry,
                      f"docker-credential-{helper}" if helper else path)
            return credentials
    return None


def helper_for(data: dict, registry: str) -> str:
    """The credential helper name for `registry`: `credHelpers` first, then `credsStore`."""
    for key, name in (data.get("credHelpers") or {}).items():
        if host_of_key(key) == normalize_registry_host(registry):
            return name
    return data.get("credsStore") or ""


def credentials_from_auths(auths: dict, registry: str) -> Credentials | None:
    for key, entry in auths.items():
        if host_of_key(key) != normalize_registry_host(registry) or not isinstance(entry, dict):
            continue
        if entry.get("identitytoken"):
            return Credentials(entry.get("username", ""), "", entry["identitytoken"])
        encoded = entry.get("auth")
        if encoded:
            try:
                username, _, password = base64.b64decode(encoded).decode().partition(":")
            except ValueError as err:
                raise CredentialsError(
                    f"invalid 'auth' value for {key} in the Docker config file "
                    "(expected base64 of user:password)") from err
            return Credentials(username, password)
        if entry.get("username"):
            return Credentials(entry["username"], entry.get("password", ""))
    return None


def run_helper(helper: str, action: str, stdin: str) -> subprocess.CompletedProcess:
    program = f"docker-credential-{helper}"
    try:
        return subprocess.run([program, action], input=stdin, capture_output=True,
                              text=True, timeout=HELPER_TIMEOUT)
    except FileNotFoundError as err:
        raise CredentialsError(
            f"credential helper {program} not found",
            hint=f"install {program} or remove it from the Docker config file") from err
    except subprocess.TimeoutExpired as err:
        raise CredentialsError(f"credential helper {program} {action} timed out "
                               f"after {HELPER_TIMEOUT} s") from err


def helper_get(helper: str, server: str) -> Credentials | None:
    result = run_helper(helper, "get", server)
    if result.returncode != 0:
        # Helpers print this message when they hold nothing for the server.
        if "credentials not found" in (result.stdout + result.stderr).lower():
            return None
        raise CredentialsError(
            f"credential helper docker-credential-{helper} get failed for {server} "
            f"with exit status {result.returncode}")
    try:
        data = json.loads(result.stdout)
        username, secret = data["Username"], data["Secret"]
    except (ValueError, KeyError, TypeError) as err:
        raise CredentialsError(
            f"credential helper docker-credential-{helper} printed invalid JSON "
            f"for {server}") from err
    if username == IDENTITY_TOKEN_USERNAME:
        return Credentials("", "", secret)
    return Credentials(username, secret)


def store_credentials(registry: str, credentials: Credentials) -> str:
    """Save credentials as `docker login` does; return where they went."""
    path = config_files()[0]
    data = read_config_file(path)
    key = server_key(registry)
    helper = helper_for(data, registry)
    if helper:
        message = json.dumps({"ServerURL": key, "Username": credentials.username,
                              "Secret": credentials.password})
        result = run_helper(helper, "store", message)
        if result.returncode != 0:
            raise CredentialsError(
                f"credential helper docker-credential-{helper} store failed for {key} "
                f"with exit status {result.returncode}")
        return f"docker-credential-{helper}"
    raw = f"{credentials.username}:{credentials.password}".encode()
    auths = data.setdefault("auths", {})
    auths[key] = {"auth": base64.b64encode(raw).decode("ascii")}
    write_config_file(path, data)
    return path


def erase_credentials(registry: str) -> bool:
    """Remove the credentials for `registry`; return False when there were none."""
    path = config_files()[0]
    data = read_config_file(path)
    key = server_key(registry)
    removed = False
    auths = data.get("auths") or {}
    for existing in list(auths):
        if host_of_key(existing) == normalize_registry_host(registry):
            del auths[existing]
            removed = True
    if removed:
        write_config_file(path, data)
    helper = helper_for(data, registry)
    if helper:
        result = run_helper(helper, "erase", key)
        removed = removed or result.returncode == 0
    return removed


def write_config_file(path: str, data: dict) -> None:
    """Write the Docker config atomically, readable only by its owner."""
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=".config.json.", dir=directory)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            json.dump(data, file, indent="\t")
            file.write("\n")
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
