"""Pulling from a registry that requires Bearer tokens, as Docker Hub does."""

from __future__ import annotations

import pytest

from runtime.store import ImageStore
from tests.conftest import run_pyrun
from tests.fixtures.pyrunconfig import dead_endpoint

pytestmark = [pytest.mark.root, pytest.mark.registry]

SERVICE = "pyrun-test-registry"


@pytest.fixture
def token_env(make_pyrun_env, token_registry):
    return make_pyrun_env(docker_hub_endpoint=token_registry.url)


def pull(env, *args):
    return run_pyrun("pull", *args, env=env, timeout=300)


@pytest.mark.parametrize("tag", ["library/busybox:latest", "library/httpd:latest",
                                 "library/multiarch:latest"])
def test_pull_with_anonymous_token(token_env, token_registry, store_root, tag):
    result = pull(token_env, tag)
    assert result.returncode == 0, result.stderr
    requests = token_registry.issuer.requests
    assert requests, "no token was requested"
    assert all(r.basic_user is None for r in requests)
    assert all(r.scopes == [f"repository:{tag.split(':')[0]}:pull"] for r in requests)
    assert ImageStore(store_root).lookup(tag) is not None


def test_pull_by_digest_with_token(token_env, token_registry, store_root):
    fixture = token_registry.images["library/busybox:latest"]
    result = pull(token_env, f"busybox@{fixture.digest}")
    assert result.returncode == 0, result.stderr
    assert ImageStore(store_root).lookup(f"busybox@{fixture.digest}").id == fixture.config.digest


def test_one_token_serves_the_whole_pull(token_env, token_registry):
    assert pull(token_env, "httpd").returncode == 0
    assert token_registry.issuer.tokens_issued == 1


def test_token_with_only_token_field(token_env, token_registry):
    token_registry.issuer.settings.send_access_token = False
    assert pull(token_env, "busybox").returncode == 0


def test_short_lived_token_is_renewed(token_env, token_registry):
    # A token that expires within pyrun's renewal margin is fetched anew for each request.
    token_registry.issuer.settings.expires_in = 1
    result = pull(token_env, "busybox")
    assert result.returncode == 0, result.stderr
    assert token_registry.issuer.tokens_issued >= 3


def test_token_rejected_mid_pull_is_fetched_again(make_pyrun_env, token_registry,
                                                  fault_proxy):
    proxy = fault_proxy(token_registry)
    challenge = (f'Bearer realm="{token_registry.issuer.realm}",service="{SERVICE}",'
                 'scope="repository:library/busybox:pull",error="invalid_token"')
    proxy.fail("/blobs/", status=401, times=1, headers={"WWW-Authenticate": challenge})
    env = make_pyrun_env(docker_hub_endpoint=proxy.url)
    result = pull(env, "busybox")
    assert result.returncode == 0, result.stderr
    assert token_registry.issuer.tokens_issued == 2


def test_denied_repository_error(token_env, token_registry):
    token_registry.issuer.settings.denied_repositories = {"library/busybox"}
    result = pull(token_env, "busybox")
    assert result.returncode == 125
    assert "pull access denied for library/busybox" in result.stderr
    assert "pyrun login" in result.stderr


def test_token_mirror_pull(make_pyrun_env, token_registry, store_root):
    env = make_pyrun_env(docker_hub_endpoint=dead_endpoint(), mirrors=[token_registry.url])
    result = pull(env, "httpd")
    assert result.returncode == 0, result.stderr
    assert ImageStore(store_root).lookup("httpd") is not None


def test_redirected_blobs_get_no_authorization(make_pyrun_env, token_registry, fault_proxy):
    proxy = fault_proxy(token_registry)
    proxy.redirect("^/v2/.*/blobs/", host="localhost")
    env = make_pyrun_env(docker_hub_endpoint=proxy.url)
    result = pull(env, "busybox")
    assert result.returncode == 0, result.stderr
    redirected = [r for r in proxy.requests if r.path.startswith("/redirected/")]
    originals = [r for r in proxy.requests
                 if "/blobs/" in r.path and not r.path.startswith("/redirected/")]
    assert redirected, "the client did not follow the redirect"
    assert not any(r.has_authorization for r in redirected)
    assert all(r.has_authorization for r in originals)
