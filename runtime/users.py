"""Resolve `--user` against the image's own /etc/passwd and /etc/group.

The rules are Docker's (they come from runc's libcontainer/user package):

- `name` or `uid`: the passwd entry gives the uid, the primary gid and the
  home directory. The supplementary groups are every /etc/group entry that
  lists the user's name as a member.
- `user:group`: the group part (a name or a gid) sets the primary gid, and
  no /etc/group memberships are added.
- The primary gid is also listed first among the supplementary groups, as
  containerd does since 1.6.18, its fix for CVE-2023-25173 ("supplementary
  groups are not set up properly").

The files are read from the container's root filesystem, never the host's.
"""

from __future__ import annotations

from runtime.errors import PyrunError
from runtime.records import factory, record

# Linux uids and gids are 32-bit, and (uid_t)-1 means "unchanged" to setresuid(2).
MAX_ID = 2**31 - 1


class UserError(PyrunError):
    """A --user value that does not match the image's passwd or group file."""


@record
class User:
    """The numeric identity a container process runs with."""

    uid: int = 0
    gid: int = 0
    additional_gids: list[int] = factory(list)
    name: str = ""
    home: str = "/"


@record
class PasswdEntry:
    name: str
    uid: int
    gid: int
    home: str


@record
class GroupEntry:
    name: str
    gid: int
    members: list[str]


def parse_passwd(text: str) -> list[PasswdEntry]:
    """Parse passwd(5) lines, skipping comments and malformed lines as libc does."""
    entries = []
    for line in text.splitlines():
        fields = line.split(":")
        if line.startswith("#") or len(fields) < 7:
            continue
        try:
            entries.append(PasswdEntry(fields[0], int(fields[2]), int(fields[3]), fields[5]))
        except ValueError:
            continue
    return entries


def parse_group(text: str) -> list[GroupEntry]:
    """Parse group(5) lines, skipping comments and malformed lines as libc does."""
    entries = []
    for line in text.splitlines():
        fields = line.split(":")
        if line.startswith("#") or len(fields) < 4:
            continue
        try:
            gid = int(fields[2])
        except ValueError:
            continue
        members = [name for name in fields[3].split(",") if name]
        entries.append(GroupEntry(fields[0], gid, members))
    return entries


def resolve_user(spec: str, passwd_text: str, group_text: str) -> User:
    """Turn a `--user` value (name, uid, user:group) into numeric ids.

    An empty `spec` means the image's default, root. Raises `UserError`
    naming the value when a name has no entry.
    """
    user_part, _, group_part = spec.partition(":")
    user_part = user_part or "0"
    user = User()

    entry = _find_passwd(parse_passwd(passwd_text), user_part)
    if entry is not None:
        user = User(entry.uid, entry.gid, [], entry.name, entry.home or "/")
    elif user_part.isdigit():
        user.uid = _parse_id(user_part, "uid", spec)
    else:
        raise UserError(
            f"unable to find user {user_part!r}: no matching entry in the image's /etc/passwd",
            hint="use a numeric uid or a user the image defines",
        )

    groups = parse_group(group_text)
    if group_part:
        group = _find_group(groups, group_part)
        if group is not None:
            user.gid = group.gid
        elif group_part.isdigit():
            user.gid = _parse_id(group_part, "gid", spec)
        else:
            raise UserError(
                f"unable to find group {group_part!r}: no matching entry in the image's /etc/group",
                hint="use a numeric gid or a group the image defines",
            )
    elif user.name:
        # /etc/group memberships apply only when no group was named.
        user.additional_gids = [group.gid for group in groups if user.name in group.members]
    user.additional_gids = [user.gid] + [gid for gid in user.additional_gids if gid != user.gid]
    return user


def _find_passwd(entries: list[PasswdEntry], value: str) -> PasswdEntry | None:
    for entry in entries:
        if entry.name == value or str(entry.uid) == value:
            return entry
    return None


def _find_group(entries: list[GroupEntry], value: str) -> GroupEntry | None:
    for entry in entries:
        if entry.name == value or str(entry.gid) == value:
            return entry
    return None


def _parse_id(text: str, kind: str, spec: str) -> int:
    number = int(text)
    if number > MAX_ID:
        raise UserError(f"invalid {kind} {number} in --user {spec!r}: the maximum is {MAX_ID}")
    return number
