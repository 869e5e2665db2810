"""The bridge subnet choice and the locked address allocation file."""

import ipaddress
import multiprocessing
import os

import pytest

from runtime.errors import PyrunError
from runtime.network import ipam


def test_choose_subnet_skips_overlapping_routes(caplog):
    subnet = ipam.choose_subnet(["0.0.0.0/0", "172.17.5.0/24", "172.18.0.0/15", "192.0.2.0/24"])
    assert subnet == ipaddress.IPv4Network("172.20.0.0/16")
    assert "172.17.0.0/16 overlaps the host's 172.17.5.0/24" in caplog.text


def test_choose_subnet_ignores_default_route():
    assert ipam.choose_subnet(["0.0.0.0/0"]) == ipaddress.IPv4Network("172.17.0.0/16")


def test_choose_subnet_all_taken():
    with pytest.raises(PyrunError):
        ipam.choose_subnet(["172.16.0.0/12", "192.168.0.0/16"])


def allocate_in(directory, container_id, results):
    with ipam.locked_state(directory) as state:
        address = state.allocate(container_id)
        state.containers[container_id] = {"ip": str(address)}
        state.save()
    results.put(str(address))


def test_allocate_lowest_free_and_requested(tmp_path):
    with ipam.locked_state(str(tmp_path)) as state:
        state.data["subnet"] = "172.17.0.0/16"
        first = state.allocate("a")
        state.containers["a"] = {"ip": str(first)}
        assert str(first) == "172.17.0.2"
        assert str(state.allocate("b")) == "172.17.0.3"
        assert str(state.allocate("b", "172.17.0.9")) == "172.17.0.9"
        with pytest.raises(PyrunError, match="already in use"):
            state.allocate("b", "172.17.0.2")
        with pytest.raises(PyrunError, match="outside the bridge's subnet"):
            state.allocate("b", "10.0.0.1")
        with pytest.raises(PyrunError, match="already in use"):
            state.allocate("b", "172.17.0.1")


def test_concurrent_allocations_differ(tmp_path):
    with ipam.locked_state(str(tmp_path)) as state:
        state.data["subnet"] = "172.17.0.0/16"
        state.save()
    results = multiprocessing.Queue()
    workers = [multiprocessing.Process(target=allocate_in, args=(str(tmp_path), f"c{n}", results))
               for n in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=30)
    addresses = [results.get(timeout=5) for _ in workers]
    assert len(set(addresses)) == 8
    assert len(ipam.read_state_file(str(tmp_path))["containers"]) == 8


def test_is_alive_checks_start_time():
    record = {"pid": os.getpid(), "start_time": ipam.process_start_time(os.getpid())}
    assert ipam.is_alive(record)
    assert not ipam.is_alive({**record, "start_time": "1"})
    assert not ipam.is_alive({"pid": None})


def test_state_dir_defaults_per_namespace(monkeypatch):
    monkeypatch.delenv("PYRUN_NETWORK_DIR", raising=False)
    namespace = os.stat("/proc/self/ns/net").st_ino
    assert ipam.state_dir() == f"/run/pyrun/network/netns-{namespace}"


def test_state_dir_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("PYRUN_NETWORK_DIR", str(tmp_path))
    assert ipam.state_dir() == str(tmp_path)
