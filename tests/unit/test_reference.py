"""Image reference parsing and Docker's normalisation."""

import pytest

from registry_client.errors import InvalidReferenceError
from registry_client.reference import parse_reference

DIGEST = "sha256:" + "0123456789abcdef" * 4


@pytest.mark.parametrize("text, registry, repository, tag, digest", [
    ("httpd", "docker.io", "library/httpd", "latest", None),
    ("httpd:2.4", "docker.io", "library/httpd", "2.4", None),
    ("user/app", "docker.io", "user/app", "latest", None),
    ("docker.io/httpd", "docker.io", "library/httpd", "latest", None),
    ("index.docker.io/user/app:v1", "docker.io", "user/app", "v1", None),
    ("host:5000/a/b:tag", "host:5000", "a/b", "tag", None),
    ("localhost/app", "localhost", "app", "latest", None),
    ("localhost:5000/app", "localhost:5000", "app", "latest", None),
    ("quay.io/org/app", "quay.io", "org/app", "latest", None),
    ("127.0.0.1:5000/library/busybox", "127.0.0.1:5000", "library/busybox", "latest", None),
    ("[::1]:5000/app", "[::1]:5000", "app", "latest", None),
    ("Registry/app", "Registry", "app", "latest", None),
    (f"busybox@{DIGEST}", "docker.io", "library/busybox", None, DIGEST),
    (f"busybox:1.36@{DIGEST}", "docker.io", "library/busybox", "1.36", DIGEST),
    ("a/b/c/d", "docker.io", "a/b/c/d", "latest", None),
    ("my_app.v2-x__y", "docker.io", "library/my_app.v2-x__y", "latest", None),
])
def test_parse_reference_normalises(text, registry, repository, tag, digest):
    reference = parse_reference(text)
    assert reference.registry == registry
    assert reference.repository == repository
    assert reference.tag == tag
    assert reference.digest == digest


@pytest.mark.parametrize("text, familiar", [
    ("httpd", "httpd:latest"),
    ("user/app:v1", "user/app:v1"),
    ("docker.io/library/a/b", "library/a/b:latest"),
    ("localhost:5000/app", "localhost:5000/app:latest"),
])
def test_familiar_form_like_docker(text, familiar):
    assert parse_reference(text).familiar() == familiar


def test_full_form_string():
    assert str(parse_reference("httpd")) == "docker.io/library/httpd:latest"


def test_without_default_tag():
    assert parse_reference("httpd", default_tag=False).tag is None


@pytest.mark.parametrize("text, reason", [
    ("", "empty"),
    ("HTTPD", "must be lowercase"),
    ("user/App", "must be lowercase"),
    ("0123456789abcdef" * 4, "image ID"),
    ("httpd:bad tag", "invalid tag 'bad tag'"),
    ("httpd:.hidden", "invalid tag"),
    ("httpd:" + "a" * 129, "invalid tag"),
    ("httpd@md5:abcd", "unsupported digest algorithm 'md5'"),
    ("httpd@sha256:abc", "invalid digest"),
    ("a//b", "invalid repository name component ''"),
    ("-app", "invalid repository name component '-app'"),
    ("app-", "invalid repository name component 'app-'"),
    ("a..b", "invalid repository name component"),
    ("host:port:5000/app", "invalid registry host"),
    ("bad_host.io/app", "invalid registry host"),
    ("localhost:5000/", "repository name is empty"),
    ("x" * 256, "longer than 255"),
])
def test_invalid_reference_quotes_input(text, reason):
    with pytest.raises(InvalidReferenceError) as caught:
        parse_reference(text)
    message = str(caught.value)
    assert reason in message
    if text:
        assert repr(text) in message


def test_manifest_reference_prefers_digest():
    reference = parse_reference(f"busybox:1.36@{DIGEST}")
    assert reference.manifest_reference() == DIGEST
    assert parse_reference("busybox:1.36").manifest_reference() == "1.36"


@pytest.mark.parametrize("text, registry, repository, tag", [
    ("a--b", "docker.io", "library/a--b", "latest"),
    ("a.b_c__d-e", "docker.io", "library/a.b_c__d-e", "latest"),
    ("0/1", "docker.io", "0/1", "latest"),
    ("busybox:" + "a" * 128, "docker.io", "library/busybox", "a" * 128),
    ("busybox:_private", "docker.io", "library/busybox", "_private"),
    ("busybox:V1.0-rc_2", "docker.io", "library/busybox", "V1.0-rc_2"),
    ("a.b.c:1/app", "a.b.c:1", "app", "latest"),
    ("my-registry.example:443/app", "my-registry.example:443", "app", "latest"),
    ("x.io/a/b:1", "x.io", "a/b", "1"),
    ("[fe80::1]/app", "[fe80::1]", "app", "latest"),
    ("[::ffff:10.0.0.1]:5000/app", "[::ffff:10.0.0.1]:5000", "app", "latest"),
    ("REGISTRY-1/app", "REGISTRY-1", "app", "latest"),
])
def test_grammar_edges_accepted(text, registry, repository, tag):
    reference = parse_reference(text)
    assert reference.registry == registry
    assert reference.repository == repository
    assert reference.tag == tag


@pytest.mark.parametrize("text, reason", [
    ("a___b", "invalid repository name component"),
    ("a_-b", "invalid repository name component"),
    ("a.-b", "invalid repository name component"),
    ("a._b", "invalid repository name component"),
    ("_a", "invalid repository name component"),
    ("a_", "invalid repository name component"),
    ("café", "invalid repository name component"),
    ("busybox:-tag", "invalid tag"),
    ("busybox:", "invalid tag"),
    ("busybox:tag+1", "invalid tag"),
    ("busybox:ü", "invalid tag"),
    ("busybox\n", "invalid repository name component"),
    ("busybox:v1\n", "invalid tag"),
    ("host:/app", "invalid registry host"),
    ("host:50a0/app", "invalid registry host"),
    ("host:١٢/app", "invalid registry host"),
    ("-a.io/app", "invalid registry host"),
    ("a-.io/app", "invalid registry host"),
    ("a..io/app", "invalid registry host"),
    (".io/app", "invalid registry host"),
    ("[]/app", "invalid repository name component"),
    ("[]:5000/app", "invalid registry host"),
    ("[::1]x/app", "invalid registry host"),
    ("[::1/app", "invalid registry host"),
    ("[::g]/app", "invalid registry host"),
    ("[::1]:/app", "invalid registry host"),
    ("busybox@sha256:" + "A" * 64, "invalid digest"),
    ("busybox@sha256:" + "a" * 65, "invalid digest"),
    ("busybox@" + "a" * 64, "invalid digest"),
])
def test_grammar_edges_rejected(text, reason):
    with pytest.raises(InvalidReferenceError) as caught:
        parse_reference(text)
    assert reason in str(caught.value)


def test_reference_copies_and_pickles():
    import copy
    import pickle

    from registry_client.reference import parse_reference

    reference = parse_reference("localhost:5000/a/b:1")
    assert copy.copy(reference) == reference
    assert copy.deepcopy(reference) == reference
    assert pickle.loads(pickle.dumps(reference)) == reference
