"""Platform names, --platform parsing and choosing an index entry."""

import pytest

from registry_client import platform as platforms
from registry_client.platform import Platform, choose_manifest, parse_platform
from runtime.errors import UsageError


def entry(digest, os_name, architecture, variant="", annotations=None):
    descriptor = {"digest": digest, "platform": {"os": os_name, "architecture": architecture}}
    if variant:
        descriptor["platform"]["variant"] = variant
    if annotations:
        descriptor["annotations"] = annotations
    return descriptor


ATTESTATION = entry("att", "unknown", "unknown",
                    annotations={"vnd.docker.reference.type": "attestation-manifest"})
INDEX = [
    ATTESTATION,
    entry("amd", "linux", "amd64"),
    entry("arm64", "linux", "arm64", "v8"),
    entry("armv6", "linux", "arm", "v6"),
    entry("armv7", "linux", "arm", "v7"),
    entry("win", "windows", "amd64"),
]


@pytest.mark.parametrize("machine, expected", [
    ("x86_64", "linux/amd64"),
    ("aarch64", "linux/arm64/v8"),
    ("armv7l", "linux/arm/v7"),
    ("armv6l", "linux/arm/v6"),
    ("i686", "linux/386"),
    ("ppc64le", "linux/ppc64le"),
])
def test_host_platform_from_uname(monkeypatch, machine, expected):
    real = platforms.os.uname()
    fake = type(real)((real.sysname, real.nodename, real.release, real.version, machine))
    monkeypatch.setattr(platforms.os, "uname", lambda: fake)
    assert str(platforms.host_platform()) == expected


@pytest.mark.parametrize("wanted, digest", [
    (Platform("linux", "amd64"), "amd"),
    (Platform("linux", "arm64"), "arm64"),
    (Platform("linux", "arm64", "v8"), "arm64"),
    (Platform("linux", "arm", "v7"), "armv7"),
    (Platform("linux", "arm", "v6"), "armv6"),
    (Platform("windows", "amd64"), "win"),
])
def test_choose_manifest_by_platform(wanted, digest):
    assert choose_manifest(INDEX, wanted)["digest"] == digest


def test_arm64_entry_without_variant_matches_v8():
    index = [ATTESTATION, entry("plain", "linux", "arm64")]
    assert choose_manifest(index, Platform("linux", "arm64", "v8"))["digest"] == "plain"


def test_arm_v7_host_falls_back_to_v6():
    index = [entry("armv5", "linux", "arm", "v5"), entry("armv6", "linux", "arm", "v6")]
    assert choose_manifest(index, Platform("linux", "arm", "v7"))["digest"] == "armv6"


def test_arm_v6_host_rejects_v7():
    index = [entry("armv7", "linux", "arm", "v7")]
    assert choose_manifest(index, Platform("linux", "arm", "v6")) is None


def test_attestation_never_chosen():
    assert choose_manifest([ATTESTATION], Platform("unknown", "unknown")) is None


def test_no_match_returns_none():
    assert choose_manifest(INDEX, Platform("linux", "s390x")) is None


def test_available_platforms_skip_attestations():
    assert platforms.available_platforms(INDEX) == [
        "linux/amd64", "linux/arm64/v8", "linux/arm/v6", "linux/arm/v7", "windows/amd64"]


@pytest.mark.parametrize("text, expected", [
    ("linux/amd64", "linux/amd64"),
    ("linux/x86_64", "linux/amd64"),
    ("linux/arm64", "linux/arm64/v8"),
    ("linux/aarch64", "linux/arm64/v8"),
    ("linux/arm", "linux/arm/v7"),
    ("linux/arm/v6", "linux/arm/v6"),
    ("Linux/AMD64", "linux/amd64"),
])
def test_parse_platform(text, expected):
    assert str(parse_platform(text)) == expected


@pytest.mark.parametrize("text", ["amd64", "linux/", "/amd64", "a/b/c/d"])
def test_parse_platform_rejects(text):
    with pytest.raises(UsageError, match="invalid --platform"):
        parse_platform(text)
