"""Resolving --user against an image's /etc/passwd and /etc/group."""

import pytest

from runtime.users import UserError, parse_group, parse_passwd, resolve_user

PASSWD = """\
root:x:0:0:root:/root:/bin/sh
# a comment line
broken line
daemon:x:1:1:daemon:/usr/sbin:/bin/false
tester:x:1000:1000:tester:/home/tester:/bin/sh
nobody:x:65534:65534:nobody:/home:/bin/false
"""

GROUP = """\
root:x:0:
wheel:x:10:root
video:x:28:tester
audio:x:29:tester,other
staff:x:50:
tester:x:1000:
"""


def test_parse_passwd_skips_bad_lines():
    names = [entry.name for entry in parse_passwd(PASSWD)]
    assert names == ["root", "daemon", "tester", "nobody"]


def test_parse_group_members():
    audio = [entry for entry in parse_group(GROUP) if entry.name == "audio"][0]
    assert audio.members == ["tester", "other"]


def test_default_is_root():
    user = resolve_user("", PASSWD, GROUP)
    assert (user.uid, user.gid, user.home) == (0, 0, "/root")
    assert user.additional_gids == [0, 10]


def test_name_gives_ids_home_and_groups():
    user = resolve_user("tester", PASSWD, GROUP)
    assert (user.uid, user.gid) == (1000, 1000)
    assert user.home == "/home/tester"
    assert user.additional_gids == [1000, 28, 29]


def test_uid_known_to_passwd():
    user = resolve_user("1000", PASSWD, GROUP)
    assert (user.uid, user.gid, user.name) == (1000, 1000, "tester")
    assert user.additional_gids == [1000, 28, 29]


def test_uid_unknown_gets_gid_zero():
    user = resolve_user("4242", PASSWD, GROUP)
    assert (user.uid, user.gid, user.home) == (4242, 0, "/")
    assert user.additional_gids == [0]


def test_uid_and_gid_numbers():
    user = resolve_user("4242:4343", PASSWD, GROUP)
    assert (user.uid, user.gid) == (4242, 4343)


def test_name_and_group_name_drop_supplementary():
    user = resolve_user("tester:staff", PASSWD, GROUP)
    assert (user.uid, user.gid) == (1000, 50)
    assert user.additional_gids == [50]


def test_unknown_name_is_error():
    with pytest.raises(UserError, match="'ghost'"):
        resolve_user("ghost", PASSWD, GROUP)


def test_unknown_group_name_is_error():
    with pytest.raises(UserError, match="'ghosts'"):
        resolve_user("tester:ghosts", PASSWD, GROUP)


def test_empty_files_allow_numbers():
    user = resolve_user("7:8", "", "")
    assert (user.uid, user.gid, user.home) == (7, 8, "/")


def test_id_too_large_is_error():
    with pytest.raises(UserError, match="maximum"):
        resolve_user("4294967296", "", "")
