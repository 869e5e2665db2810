"""attach and detach with the syscall recorder: the order of steps and the rollback.

The recorder performs nothing and returns None for every call, so each read
(links, routes, nft listings) comes back empty: the bridge is missing and
gets created, and no listed rule exists.
"""

import errno
import json
import os

import pytest

import runtime.network as network
from runtime import syscalls
from runtime.errors import PyrunError
from runtime.network import ports

ID = "ab" * 32
PLAN = {"mode": "bridge", "exposed": ["80/tcp"],
        "ports": [{"container_port": 80, "protocol": "tcp", "host_ip": "127.0.0.1", "host_port": 0}]}


@pytest.fixture
def state_dir(tmp_path, monkeypatch):
    directory = tmp_path / "network"
    monkeypatch.setenv("PYRUN_NETWORK_DIR", str(directory))
    return directory


def test_attach_steps_in_order(state_dir, tmp_path):
    with syscalls.recording() as recorder:
        settings = network.attach(ID, os.getpid(), PLAN, str(tmp_path))
    ports.release_sockets(ID)
    names = recorder.names()
    bridge = names.index("netlink RTM_NEWLINK")
    assert recorder.calls[bridge].args["kind"] == "bridge"
    assert names.index("nft -f -") > bridge
    assert names[-1] == "nft add rule"
    assert recorder.calls[-1].args["commands"][0].startswith("add rule ip pyrun published ip daddr 127.0.0.1 tcp")
    assert settings["IPAddress"] == "172.17.0.2"
    assert settings["Ports"]["80/tcp"][0]["HostIp"] == "127.0.0.1"
    saved = json.loads((tmp_path / "network.json").read_text())
    assert saved["container_id"] == ID
    assert saved["state_dir"] == str(state_dir)


def test_attach_failure_rolls_back(state_dir, tmp_path):
    with syscalls.recording() as recorder:
        recorder.fail["netlink RTM_NEWROUTE"] = errno.ENETUNREACH
        with pytest.raises(PyrunError) as info:
            network.attach(ID, os.getpid(), PLAN, str(tmp_path))
    assert "connect container abababababab to bridge pyrun0" in str(info.value)
    assert ports.held_sockets(ID) == []
    state = json.loads((state_dir / "network.json").read_text())
    assert state["containers"] == {}
    assert state["subnet"] is None
    names = recorder.names()
    failed = names.index("netlink RTM_NEWROUTE")
    assert "nft list ruleset" in names[failed:]
    assert not (tmp_path / "network.json").exists()


def test_detach_unknown_container_does_nothing(state_dir):
    with syscalls.recording() as recorder:
        network.detach("cd" * 32, {})
    assert recorder.calls == []


def test_cleanup_dead_skips_live_records(state_dir):
    state_dir.mkdir()
    live = {"ip": "172.17.0.2", "pid": os.getpid(),
            "start_time": network.ipam.process_start_time(os.getpid())}
    (state_dir / "network.json").write_text(json.dumps({"subnet": "172.17.0.0/16", "containers": {ID: live}}))
    with syscalls.recording() as recorder:
        assert network.cleanup_dead() == []
    assert recorder.calls == []


def test_attach_interrupted_rolls_back(state_dir, tmp_path, monkeypatch):
    def interrupt(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(network.nat, "add_container_rules", interrupt)
    with syscalls.recording():
        with pytest.raises(KeyboardInterrupt):
            network.attach(ID, os.getpid(), PLAN, str(tmp_path))
    assert ports.held_sockets(ID) == []
    state = json.loads((state_dir / "network.json").read_text())
    assert state["containers"] == {}
