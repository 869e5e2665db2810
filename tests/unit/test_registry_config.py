"""Loading /etc/pyrun/config.json (Docker daemon.json keys)."""

import json

import pytest

from registry_client.config import (DEFAULT_DOCKER_HUB_ENDPOINT, ConfigError, RegistryConfig,
                                    load_config)


def write(tmp_path, data):
    path = tmp_path / "config.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


def test_missing_file_gives_defaults(tmp_path):
    config = load_config(str(tmp_path / "absent.json"))
    assert config.registry_mirrors == []
    assert config.docker_hub_endpoint == DEFAULT_DOCKER_HUB_ENDPOINT
    assert config.max_concurrent_downloads == 3


def test_pyrun_config_variable_names_the_file(tmp_path, monkeypatch):
    path = write(tmp_path, {"docker-hub-endpoint": "http://127.0.0.1:9/"})
    monkeypatch.setenv("PYRUN_CONFIG", path)
    config = load_config()
    assert config.docker_hub_endpoint == "http://127.0.0.1:9"
    assert config.path == path


def test_all_keys_read(tmp_path):
    config = load_config(write(tmp_path, {
        "registry-mirrors": ["http://127.0.0.1:5000/", "https://mirror.example"],
        "insecure-registries": ["reg.local:5000", "10.0.0.0/8"],
        "docker-hub-endpoint": "http://127.0.0.1:9",
        "max-concurrent-downloads": 5,
    }))
    assert config.registry_mirrors == ["http://127.0.0.1:5000", "https://mirror.example"]
    assert config.insecure_registries == ["reg.local:5000", "10.0.0.0/8"]
    assert config.max_concurrent_downloads == 5


def test_invalid_json_names_file(tmp_path):
    path = write(tmp_path, "{not json")
    with pytest.raises(ConfigError, match="invalid JSON in config file .*config.json"):
        load_config(path)


@pytest.mark.parametrize("data, message", [
    ({"registry-mirrors": "http://x"}, "registry-mirrors must be a list"),
    ({"registry-mirrors": ["ftp://x"]}, "invalid registry-mirrors 'ftp://x'"),
    ({"docker-hub-endpoint": "registry-1.docker.io"}, "invalid docker-hub-endpoint"),
    ({"max-concurrent-downloads": 0}, "max-concurrent-downloads must be a positive"),
    ([1, 2], "JSON object"),
])
def test_invalid_values_rejected(tmp_path, data, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, data))


def test_command_line_mirror_goes_first():
    config = RegistryConfig(registry_mirrors=["http://127.0.0.1:1"])
    config.add_mirror("http://127.0.0.1:2/")
    assert config.registry_mirrors == ["http://127.0.0.1:2", "http://127.0.0.1:1"]


@pytest.mark.parametrize("host, insecure", [
    ("localhost:5000", True),
    ("127.0.0.1:5000", True),
    ("127.1.2.3", True),
    ("[::1]:5000", True),
    ("reg.local:5000", True),
    ("reg.local:6000", False),
    ("10.1.2.3:5000", True),
    ("11.1.2.3:5000", False),
    ("registry-1.docker.io", False),
])
def test_insecure_registries(host, insecure):
    config = RegistryConfig(insecure_registries=["reg.local:5000", "10.0.0.0/8"])
    assert config.is_insecure(host) is insecure
