"""pyrun's registry settings, read from a file shaped like Docker's daemon.json.

    {
      "registry-mirrors": ["http://127.0.0.1:5000"],
      "insecure-registries": ["myregistry:5000", "10.0.0.0/8"],
      "docker-hub-endpoint": "https://registry-1.docker.io",
      "max-concurrent-downloads": 3
    }

The file is `/etc/pyrun/config.json`, or the one that `PYRUN_CONFIG` names.
A missing file means the defaults. `docker-hub-endpoint` is pyrun's own key:
it moves Docker Hub's API host, so tests can point it at 127.0.0.1.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from runtime.errors import PyrunError

log = logging.getLogger(__name__)

DEFAULT_CONFIG_PATH = "/etc/pyrun/config.json"
DEFAULT_DOCKER_HUB_ENDPOINT = "https://registry-1.docker.io"
# Docker's daemon uses 3 parallel layer downloads by default.
DEFAULT_MAX_CONCURRENT_DOWNLOADS = 3

KNOWN_KEYS = {
    "registry-mirrors", "insecure-registries", "docker-hub-endpoint",
    "max-concurrent-downloads",
}


class ConfigError(PyrunError):
    """The config file is not valid JSON or has a value of the wrong type."""


@dataclass
class RegistryConfig:
    registry_mirrors: list[str] = field(default_factory=list)
    insecure_registries: list[str] = field(default_factory=list)
    docker_hub_endpoint: str = DEFAULT_DOCKER_HUB_ENDPOINT
    max_concurrent_downloads: int = DEFAULT_MAX_CONCURRENT_DOWNLOADS
    path: str = ""

    def add_mirror(self, url: str) -> None:
        """Put a mirror from the command line ahead of the configured ones."""
        url = _check_endpoint_url("--registry-mirror", url, self.path or "the command line")
        self.registry_mirrors.insert(0, url)

    def is_insecure(self, host: str) -> bool:
        """Tell whether plain HTTP is allowed for `host` (`name[:port]`).

        Loopback hosts always are, as in Docker. Other hosts must be listed
        in `insecure-registries`, by name or by an IP network (CIDR).
        """
        hostname = _hostname(host)
        if hostname == "localhost" or _is_loopback(hostname):
            return True
        for entry in self.insecure_registries:
            if entry == host or entry == hostname:
                return True
            if "/" in entry and _in_network(hostname, entry):
                return True
        return False


def config_path() -> str:
    return os.environ.get("PYRUN_CONFIG") or DEFAULT_CONFIG_PATH


def load_config(path: str | None = None) -> RegistryConfig:
    """Read the registry settings; a missing file gives the defaults."""
    path = path or config_path()
    try:
        with open(path, encoding="utf-8") as file:
            data = json.load(file)
    except FileNotFoundError:
        log.debug("no config file at %s, using the defaults", path)
        return RegistryConfig(path=path)
    except json.JSONDecodeError as err:
        raise ConfigError(f"invalid JSON in config file {path}: {err}") from err
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"invalid config file {path}: expected a JSON object at the top")

    for key in data:
        if key not in KNOWN_KEYS:
            log.debug("config file %s: ignoring key %r", path, key)

    config = RegistryConfig(path=path)
    config.registry_mirrors = [
        _check_endpoint_url("registry-mirrors", url, path)
        for url in _string_list(data, "registry-mirrors", path)]
    config.insecure_registries = _string_list(data, "insecure-registries", path)
    endpoint = data.get("docker-hub-endpoint", DEFAULT_DOCKER_HUB_ENDPOINT)
    config.docker_hub_endpoint = _check_endpoint_url("docker-hub-endpoint", endpoint, path)
    downloads = data.get("max-concurrent-downloads", DEFAULT_MAX_CONCURRENT_DOWNLOADS)
    if not isinstance(downloads, int) or isinstance(downloads, bool) or downloads < 1:
        raise ConfigError(
            f"invalid config file {path}: max-concurrent-downloads must be a "
            f"positive integer, not {downloads!r}")
    config.max_concurrent_downloads = downloads
    return config


def _string_list(data: dict, key: str, path: str) -> list[str]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigError(f"invalid config file {path}: {key} must be a list of strings")
    return list(value)


def _check_endpoint_url(key: str, url: object, path: str) -> str:
    """Check that `url` is an http(s) URL with a host, and drop a trailing slash."""
    if not isinstance(url, str):
        raise ConfigError(f"invalid config file {path}: {key} must be a string, not {url!r}")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            f"invalid {key} {url!r} in {path}: expected a URL such as "
            "https://mirror.example.com or http://127.0.0.1:5000")
    return url.rstrip("/")


def _hostname(host: str) -> str:
    """Strip the port from `host`, including from `[v6]:port`."""
    if host.startswith("["):
        return host[1:host.index("]")]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _is_loopback(hostname: str) -> bool:
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def _in_network(hostname: str, cidr: str) -> bool:
    try:
        return ipaddress.ip_address(hostname) in ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False
