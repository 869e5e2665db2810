"""The per-container /etc/hostname, /etc/hosts and /etc/resolv.conf.

pyrun writes them into the container's directory and the spec binds them
over the image's files, as Docker does, so every container has its own.
The text of hosts and resolv.conf comes from `runtime.network.dns`, which
applies Docker's rules and the --dns, --dns-search, --dns-option and
--add-host values kept in the network plan.
"""

from __future__ import annotations

import os

from runtime import fileio
from runtime.network import dns

FILE_NAMES = ("hostname", "hosts", "resolv.conf")


def write_etc_files(directory: str, hostname: str, plan: dict) -> None:
    """Write hostname, hosts and resolv.conf into the container's directory."""
    _write(os.path.join(directory, "hostname"), hostname + "\n")
    _write(os.path.join(directory, "hosts"), dns.hosts_content(plan, hostname))
    _write(os.path.join(directory, "resolv.conf"), dns.resolv_conf_content(plan))


def rewrite_hosts(directory: str, hostname: str, plan: dict, settings: dict) -> None:
    """Add the container's address to its hosts file once the network is attached.

    The file is rewritten in place, not replaced, because the container's
    bind mount refers to this inode.
    """
    _write(os.path.join(directory, "hosts"), dns.hosts_content(plan, hostname, settings))


def _write(path: str, text: str) -> None:
    fileio.write_text(path, text)
