"""`pyrun port`: lookup by name, ID and prefix, and Docker's output format."""

import json

import pytest

from runtime.cli import main

ID = "4f" + "0" * 62
SETTINGS = {
    "Ports": {
        "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "49153"}],
        "53/udp": [{"HostIp": "127.0.0.1", "HostPort": "5353"}],
        "443/tcp": None,
    }
}


@pytest.fixture
def root(tmp_path):
    directory = tmp_path / "containers" / ID
    directory.mkdir(parents=True)
    (directory / "network.json").write_text(json.dumps({"container_id": ID, "settings": SETTINGS}))
    (directory / "state.json").write_text(json.dumps({"id": ID, "name": "web"}))
    (tmp_path / "names").mkdir()
    (tmp_path / "names" / "web").symlink_to(ID)
    return tmp_path


@pytest.mark.parametrize("reference", ["web", ID, "4f00"])
def test_port_lists_published_ports(root, capsys, reference):
    assert main(["--root", str(root), "port", reference]) == 0
    assert capsys.readouterr().out == "53/udp -> 127.0.0.1:5353\n80/tcp -> 0.0.0.0:49153\n"


def test_port_one_private_port(root, capsys):
    assert main(["--root", str(root), "port", "web", "80"]) == 0
    assert capsys.readouterr().out == "0.0.0.0:49153\n"


def test_port_unpublished_port_fails(root, capsys):
    assert main(["--root", str(root), "port", "web", "443/tcp"]) != 0
    assert "no public port '443/tcp'" in capsys.readouterr().err


def test_port_reads_record_settings_first(root, capsys):
    record = {"id": ID, "name": "web", "network_settings": {"Ports": {"8080/tcp": [
        {"HostIp": "0.0.0.0", "HostPort": "18080"}]}}}
    (root / "containers" / ID / "state.json").write_text(json.dumps(record))
    assert main(["--root", str(root), "port", "web"]) == 0
    assert capsys.readouterr().out == "8080/tcp -> 0.0.0.0:18080\n"


def test_port_unknown_container_fails(root, capsys):
    assert main(["--root", str(root), "port", "db"]) != 0
    assert "no such container: db" in capsys.readouterr().err
