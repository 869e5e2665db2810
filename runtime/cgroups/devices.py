"""Device cgroup rules: parse the OCI list and write it to cgroup v1.

The OCI runtime spec lists the rules in "linux.resources.devices" (see
config-linux.md, "Allowed Device List"). Each rule allows or denies some
access to some devices:

    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"}

`type` is "c" (character), "b" (block) or "a" (both), and a missing `type`
means "a". A missing `major` or `minor`, or -1, matches every number. The
access letters are r (open for reading), w (open for writing) and m
(mknod(2)), and a missing `access` means all three. The list is ordered:
for each device and access letter, the last rule that matches decides, and
a device no rule allows is denied.

On cgroup v1 the devices controller takes the rules as lines written to
devices.allow and devices.deny (Documentation/admin-guide/cgroup-v1/
devices.rst). cgroup v2 has no such files, so runtime.cgroups.bpf turns
the same rules into an eBPF program.
"""

from __future__ import annotations


from runtime.cgroups import files
from runtime.cgroups.detect import CgroupError
from runtime.records import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# The access letters in the order the kernel prints them.
ACCESS_LETTERS = "rwm"
DEVICE_TYPES = ("a", "b", "c")

# The devices.allow and devices.deny line for every device with every access.
ALL_DEVICES_LINE = "a"


@record(frozen=True)
class DeviceRule:
    """One entry of "linux.resources.devices"; None for major or minor is a wildcard."""

    allow: bool
    type: str = "a"
    major: int | None = None
    minor: int | None = None
    access: str = ACCESS_LETTERS

    def is_all_devices(self) -> bool:
        """Return True when the rule covers every device with every access."""
        return (self.type == "a" and self.major is None and self.minor is None
                and set(self.access) == set(ACCESS_LETTERS))


def rules_from_resources(resources: dict[str, Any]) -> list[DeviceRule] | None:
    """Return the device rules of a "linux.resources" dict, or None when it has none.

    Without a "devices" key the cgroup keeps the devices it inherits. With
    one, even an empty list, every device the rules do not allow is denied.
    """
    entries = resources.get("devices")
    if entries is None:
        return None
    if not isinstance(entries, list):
        raise CgroupError(f"invalid device rules {entries!r}: expected a list of rules")
    return parse_rules(entries)


def parse_rules(entries: list[dict[str, Any]]) -> list[DeviceRule]:
    """Check the OCI device rules and turn them into DeviceRule values, in order."""
    return [parse_rule(entry) for entry in entries]


def parse_rule(entry: dict[str, Any]) -> DeviceRule:
    """Check one OCI device rule; an invalid field raises CgroupError naming the rule."""
    if not isinstance(entry, dict):
        raise CgroupError(f"invalid device rule {entry!r}: expected an object with \"allow\" and \"access\"")
    if not isinstance(entry.get("allow"), bool):
        raise CgroupError(f"invalid device rule {entry}: \"allow\" must be true or false")
    kind = entry.get("type") or "a"
    if kind not in DEVICE_TYPES:
        raise CgroupError(f"invalid device rule {entry}: type {kind!r} is not a, b or c")
    access = entry.get("access") or ACCESS_LETTERS
    if not isinstance(access, str) or not set(access) <= set(ACCESS_LETTERS):
        raise CgroupError(f"invalid device rule {entry}: access {access!r} may contain only r, w and m")
    return DeviceRule(
        allow=entry["allow"],
        type=kind,
        major=parse_number(entry, "major"),
        minor=parse_number(entry, "minor"),
        # Sorted into "rwm" order, so equal rules print alike.
        access="".join(letter for letter in ACCESS_LETTERS if letter in access),
    )


def parse_number(entry: dict[str, Any], key: str) -> int | None:
    """Return the rule's major or minor number, or None for a wildcard (missing or -1)."""
    value = entry.get(key)
    if value is None or value == -1:
        return None
    # Linux device numbers are far below 2**31 (12 bits of major, 20 of
    # minor), and the eBPF program compares them with signed 32-bit values.
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << 31:
        raise CgroupError(f"invalid device rule {entry}: {key} {value!r} is not a device number")
    return value


# -- cgroup v1: devices.allow and devices.deny -----------------------------------


def v1_lines(rule: DeviceRule) -> list[str]:
    """Render a rule as the lines the v1 devices controller reads, e.g. "c 1:3 rwm".

    A rule for every device with every access is the single line "a". The
    kernel reads no numbers after an "a", so a narrower rule of type "a"
    becomes one line for character and one for block devices.
    """
    if rule.is_all_devices():
        return [ALL_DEVICES_LINE]
    major = "*" if rule.major is None else str(rule.major)
    minor = "*" if rule.minor is None else str(rule.minor)
    kinds = ["c", "b"] if rule.type == "a" else [rule.type]
    return [f"{kind} {major}:{minor} {rule.access}" for kind in kinds]


def v1_writes(rules: list[DeviceRule]) -> list[tuple[str, str]]:
    """List the (control file, line) writes that set up `rules` on cgroup v1, in order.

    A new cgroup inherits its parent's devices, which is usually every
    device, so the writes start by denying all of them. The OCI rules
    usually start with that same deny, which is then not written twice.
    """
    writes = [("devices.deny", ALL_DEVICES_LINE)]
    for index, rule in enumerate(rules):
        if index == 0 and not rule.allow and rule.is_all_devices():
            continue
        name = "devices.allow" if rule.allow else "devices.deny"
        writes.extend((name, line) for line in v1_lines(rule))
    return writes


def apply_v1(directory: str, rules: list[DeviceRule]) -> None:
    """Write the rules into the devices.allow and devices.deny files of a v1 cgroup.

    NOTE: the v1 kernel removes a deny rule's access only from rules with the
    same type and numbers. So a "c 1:3 w" deny takes nothing from an earlier
    "c *:* rwm" allow, while the v2 program of runtime.cgroups.bpf does deny
    that write. The rules pyrun itself generates never combine rules this way.
    """
    for name, line in v1_writes(rules):
        files.write_file(directory, name, line)
