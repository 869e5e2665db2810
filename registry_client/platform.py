"""Platforms (`linux/amd64`, `linux/arm64/v8`) and choosing one from an image index.

OCI names architectures as Go does (`amd64`, `arm64`, `arm`), not as
`uname -m` prints them (`x86_64`, `aarch64`, `armv7l`), so the host's
machine name is mapped first. Matching follows containerd's platform
matcher: `os` and `architecture` must be equal, and the variant must be
compatible. An arm64 image without a variant is `v8`, and a `v7` host
also runs `v6` and `v5` images, preferring the newest.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from runtime.errors import UsageError

# `uname -m` -> (OCI architecture, variant)
UNAME_MACHINES = {
    "x86_64": ("amd64", ""),
    "amd64": ("amd64", ""),
    "i386": ("386", ""),
    "i686": ("386", ""),
    "aarch64": ("arm64", "v8"),
    "arm64": ("arm64", "v8"),
    "armv8l": ("arm", "v8"),
    "armv7l": ("arm", "v7"),
    "armv6l": ("arm", "v6"),
    "armv5tel": ("arm", "v5"),
    "ppc64le": ("ppc64le", ""),
    "s390x": ("s390x", ""),
    "riscv64": ("riscv64", ""),
    "mips64": ("mips64", ""),
    "loongarch64": ("loong64", ""),
}

# Architecture names accepted after --platform, mapped to their OCI names.
ARCHITECTURE_ALIASES = {
    "x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64",
    "armhf": "arm", "armel": "arm", "i386": "386", "i686": "386",
}

# Annotation that Docker's build tools put on the attestation manifests of an index.
REFERENCE_TYPE_ANNOTATION = "vnd.docker.reference.type"


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        text = f"{self.os}/{self.architecture}"
        return f"{text}/{self.variant}" if self.variant else text

    def normalized(self) -> "Platform":
        """Fill in the implied variants: arm64 is v8, arm is v7 unless stated."""
        architecture = ARCHITECTURE_ALIASES.get(self.architecture, self.architecture)
        variant = self.variant
        if architecture == "arm64" and variant in ("", "8"):
            variant = "v8"
        elif architecture == "arm" and variant == "":
            variant = "v7"
        elif architecture == "amd64" and variant == "v1":
            variant = ""
        return Platform(self.os, architecture, variant)


def host_platform() -> Platform:
    """Return the platform of the machine pyrun runs on, from `uname -m`."""
    machine = os.uname().machine
    architecture, variant = UNAME_MACHINES.get(machine, (machine, ""))
    return Platform("linux", architecture, variant)


def parse_platform(text: str) -> Platform:
    """Parse `--platform` as `os/arch[/variant]`, e.g. `linux/arm64` or `linux/arm/v7`."""
    parts = text.lower().split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise UsageError(
            f"invalid --platform {text!r}: expected os/architecture[/variant], "
            "such as linux/amd64 or linux/arm/v7")
    variant = parts[2] if len(parts) == 3 else ""
    return Platform(parts[0], parts[1], variant).normalized()


def platform_of(descriptor: dict) -> Platform | None:
    """Return the platform of an index entry, or None for an entry that is not a runnable image.

    Attestation manifests (build provenance, SBOMs) sit in the same index as
    `unknown/unknown` entries with a `vnd.docker.reference.type` annotation.
    """
    annotations = descriptor.get("annotations") or {}
    if REFERENCE_TYPE_ANNOTATION in annotations:
        return None
    platform = descriptor.get("platform") or {}
    os_name = platform.get("os", "")
    architecture = platform.get("architecture", "")
    if not os_name or not architecture or "unknown" in (os_name, architecture):
        return None
    return Platform(os_name, architecture, platform.get("variant", ""))


def compatible_variants(requested: Platform) -> list[str]:
    """Return the variants a machine of `requested` can run, best first."""
    requested = requested.normalized()
    if requested.architecture == "arm" and requested.variant.startswith("v"):
        try:
            level = int(requested.variant[1:])
        except ValueError:
            return [requested.variant]
        return [f"v{n}" for n in range(level, 4, -1)]
    return [requested.variant]


def choose_manifest(manifests: list[dict], requested: Platform) -> dict | None:
    """Pick the index entry for `requested`; None when no entry matches.

    Among compatible entries, the one with the best variant wins; among
    equals, the first in the index, as Docker does.
    """
    variants = compatible_variants(requested)
    best: tuple[int, dict] | None = None
    for descriptor in manifests:
        platform = platform_of(descriptor)
        if platform is None:
            continue
        platform = platform.normalized()
        if platform.os != requested.os or platform.architecture != requested.normalized().architecture:
            continue
        if platform.variant not in variants:
            continue
        rank = variants.index(platform.variant)
        if best is None or rank < best[0]:
            best = (rank, descriptor)
    return best[1] if best else None


def available_platforms(manifests: list[dict]) -> list[str]:
    """Return the runnable platforms an index offers, as `os/arch[/variant]` strings."""
    return [str(platform) for platform in map(platform_of, manifests) if platform]
