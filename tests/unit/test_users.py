"""``-u`` resolved against an image's own passwd and group files."""

from __future__ import annotations

import pytest

from minidocker import users
from minidocker.errors import UsageError

PASSWD = """root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
# a comment
nobody:x:65534:65534:nobody:/home:/bin/false
"""
GROUP = """root:x:0:
daemon:x:1:
wheel:x:10:root
staff:x:50:root,daemon
nogroup:x:65534:
"""


@pytest.fixture
def files(tmp_path):
    (tmp_path / "passwd").write_text(PASSWD)
    (tmp_path / "group").write_text(GROUP)
    return str(tmp_path / "passwd"), str(tmp_path / "group")


def test_root_gets_its_supplementary_groups(files):
    u = users.lookup("0", *files)
    assert (u.uid, u.gid, u.groups, u.home) == (0, 0, [0, 10, 50], "/root")


def test_by_name(files):
    u = users.lookup("daemon", *files)
    assert (u.uid, u.gid, u.groups, u.home) == (1, 1, [1, 50], "/usr/sbin")


def test_numbers_need_no_entry(files):
    u = users.lookup("1234:5678", *files)
    assert (u.uid, u.gid, u.groups, u.home) == (1234, 5678, [5678], "/")


def test_group_by_name(files):
    assert users.lookup("nobody:staff", *files).gid == 50


def test_unknown_user_and_group(files):
    with pytest.raises(UsageError, match="unable to find user ghost: no matching entries"):
        users.lookup("ghost", *files)
    with pytest.raises(UsageError, match="unable to find group ghosts"):
        users.lookup("root:ghosts", *files)


def test_missing_files_still_allow_numbers(tmp_path):
    u = users.lookup("7", str(tmp_path / "none"), str(tmp_path / "none"))
    assert (u.uid, u.gid, u.home) == (7, 0, "/")
