"""Pulls through a fault-injecting proxy: retries, rate limits, corruption, resume, races."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

from pathlib import Path

import pytest
import requests

from runtime.store import ImageStore
from tests.conftest import PYRUN, run_pyrun

pytestmark = [pytest.mark.root, pytest.mark.registry]


@pytest.fixture
def proxy(fault_proxy):
    return fault_proxy()


@pytest.fixture
def proxy_env(make_pyrun_env, proxy):
    return make_pyrun_env(docker_hub_endpoint=proxy.url)


def pull(env, *args):
    return run_pyrun("pull", *args, env=env, timeout=300)


def blob_path(digest: str) -> str:
    return f"/v2/library/httpd/blobs/{digest}"


def test_5xx_retried(proxy, proxy_env):
    proxy.fail("/manifests/", status=503, times=2, method="GET")
    proxy.fail("/blobs/", status=500, times=1)
    result = pull(proxy_env, "busybox")
    assert result.returncode == 0, result.stderr
    assert proxy.count("GET", "/manifests/latest") == 3
    assert "returned 503; retrying" in result.stderr
    assert "returned 500; retrying" in result.stderr


def test_429_waits_for_retry_after(proxy, proxy_env):
    proxy.rate_limit("/blobs/", retry_after=1, times=1)
    result = pull(proxy_env, "busybox")
    assert result.returncode == 0, result.stderr
    assert "429 Too Many Requests; retrying in 1.0 s" in result.stderr


@pytest.mark.slow
def test_429_until_retries_run_out(proxy, proxy_env):
    proxy.rate_limit("/manifests/", retry_after=1, times=None, limit=100, remaining=0)
    result = pull(proxy_env, "busybox")
    assert result.returncode == 125
    assert "too many requests" in result.stderr
    assert "ratelimit-limit: 100;w=21600" in result.stderr
    assert "ratelimit-remaining: 0;w=21600" in result.stderr
    assert "TOOMANYREQUESTS" in result.stderr


def test_long_retry_after_fails_at_once(proxy, proxy_env):
    proxy.rate_limit("/manifests/", retry_after=3600, times=None)
    started = time.monotonic()
    result = pull(proxy_env, "busybox")
    assert result.returncode == 125
    assert "retry after 3600 s" in result.stderr
    assert time.monotonic() - started < 30


def test_few_remaining_pulls_warned(proxy, proxy_env):
    proxy.hub_rate_limit(limit=100, remaining=5)
    result = pull(proxy_env, "busybox")
    assert result.returncode == 0, result.stderr
    assert "Docker Hub allows 5 more pulls" in result.stderr
    assert proxy.count("HEAD", "/manifests/latest") == 1


def test_many_remaining_pulls_not_warned(proxy, proxy_env):
    proxy.hub_rate_limit(limit=100, remaining=90)
    result = pull(proxy_env, "busybox")
    assert "more pulls" not in result.stderr


def test_tampered_blob_rejected_and_nothing_stored(proxy, proxy_env, registry, store_root):
    layer = registry.images["library/busybox:latest"].layers[0].digest
    proxy.tamper(f"/blobs/{layer}", times=None)
    result = pull(proxy_env, "busybox")
    assert result.returncode == 125
    assert f"blob {layer} failed verification" in result.stderr
    store = ImageStore(store_root)
    assert store.lookup("busybox") is None
    assert not Path(store.layout.blob(layer)).exists()
    assert not Path(store.layout.partial_blob(layer)).exists()
    assert list(Path(store.layout.layers).iterdir()) == []
    assert not Path(store.layout.index).exists()


def test_cut_download_resumed_with_range(proxy, proxy_env, registry, store_root):
    layer = registry.images["library/httpd:latest"].layers[1]
    proxy.cut(f"/blobs/{layer.digest}", after_bytes=100_000, times=1)
    result = pull(proxy_env, "httpd")
    assert result.returncode == 0, result.stderr
    ranged = [r for r in proxy.requests if r.path == blob_path(layer.digest)
              and "range" in r.headers]
    assert len(ranged) == 1
    # The client keeps what it had read before the cut, up to one read step less.
    start = int(ranged[0].headers["range"].removeprefix("bytes=").rstrip("-"))
    assert 0 < start <= 100_000
    assert ImageStore(store_root).lookup("httpd") is not None


def test_range_rejected_restarts_blob(proxy, proxy_env, registry, store_root):
    """A partial file that is not a prefix of the blob, and a 416 to the Range request."""
    store = ImageStore(store_root)
    store.layout.create()
    layer = registry.images["library/busybox:latest"].layers[0].digest
    Path(store.layout.partial_blob(layer)).write_bytes(b"not the start of the blob")
    # The proxy forwards Range, so a 416 stands in for a registry that cannot serve it.
    proxy.fail(f"/blobs/{layer}", status=416, times=1)
    result = pull(proxy_env, "busybox")
    assert result.returncode == 0, result.stderr
    assert store.lookup("busybox") is not None


def test_range_ignored_restarts_blob(proxy, proxy_env, registry, store_root):
    """A registry that sends the whole blob (200) in reply to a Range request."""
    store = ImageStore(store_root)
    store.layout.create()
    layer = registry.images["library/busybox:latest"].layers[0].digest
    whole = requests.get(f"{registry.url}/v2/library/busybox/blobs/{layer}", timeout=30).content
    Path(store.layout.partial_blob(layer)).write_bytes(whole[:1000])
    proxy.fail(f"/blobs/{layer}", status=200, times=1, body=whole,
               headers={"Content-Type": "application/octet-stream"})
    result = pull(proxy_env, "busybox")
    assert result.returncode == 0, result.stderr
    [request] = [r for r in proxy.requests if r.path.endswith(layer)]
    assert request.headers["range"] == "bytes=1000-"
    assert request.status == 200
    assert Path(store.layout.blob(layer)).read_bytes() == whole


@pytest.mark.slow
def test_interrupted_pull_resumes_without_finished_layers(proxy, proxy_env, registry,
                                                          store_root):
    fixture = registry.images["library/httpd:latest"]
    lower, upper = fixture.layers
    # The upper layer breaks after 1 MB, then waits out a long Retry-After,
    # which is when the test presses Ctrl-C.
    proxy.cut(f"/blobs/{upper.digest}", after_bytes=1_000_000, times=1)
    proxy.rate_limit(f"/blobs/{upper.digest}", retry_after=50, times=None)
    process = subprocess.Popen([PYRUN, "pull", "httpd"], env={**os.environ, **proxy_env},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    store = ImageStore(store_root)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        rate_limited = any(r.status == 429 for r in proxy.requests)
        if rate_limited and Path(store.layout.layer(fixture_chain_id(store, fixture))).exists():
            break
        time.sleep(0.2)
    else:
        process.kill()
        pytest.fail("the pull never reached the rate-limited layer")

    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    assert store.lookup("httpd") is None
    assert Path(store.layout.blob(lower.digest)).exists()
    kept = Path(store.layout.partial_blob(upper.digest)).stat().st_size
    assert 0 < kept <= 1_000_000

    proxy.clear()
    result = pull(proxy_env, "httpd")
    assert result.returncode == 0, result.stderr
    assert proxy.count("GET", f"/blobs/{lower.digest}") == 0
    [resumed] = [r for r in proxy.requests if r.path == blob_path(upper.digest)]
    assert resumed.headers.get("range") == f"bytes={kept}-"
    assert store.lookup("httpd").id == fixture.config.digest


def fixture_chain_id(store, fixture):
    """The chain ID of the image's lowest layer: its diff_id, read from the stored config."""
    config = json.loads(Path(store.layout.blob(fixture.config.digest)).read_text())
    return config["rootfs"]["diff_ids"][0]


@pytest.mark.slow
def test_concurrent_pulls_both_succeed(pyrun_env, registry, store_root):
    command = [PYRUN, "pull", "httpd"]
    processes = [subprocess.Popen(command, env={**os.environ, **pyrun_env},
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
    outputs = [process.communicate(timeout=300) for process in processes]
    for process, (stdout, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr
        assert stdout.strip().endswith("docker.io/library/httpd:latest")
    store = ImageStore(store_root)
    [image] = store.list_images()
    assert image.id == registry.images["library/httpd:latest"].config.digest
    assert len(list(Path(store.layout.layers).iterdir())) == 2
    assert list(Path(store.layout.tmp).glob("unpack-*")) == []
    assert list(Path(store.layout.partial).iterdir()) == []
