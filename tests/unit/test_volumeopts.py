"""``volume create --opt``: Docker's local driver rules, and ``o`` split into mount(2)'s
arguments, without root (the mount itself is in tests/kernel/test_volume_opts.py)."""

from __future__ import annotations

import pytest

from minidocker import volumeopts
from minidocker.errors import UsageError
from minidocker.syscalls import MS

pytestmark = pytest.mark.nb08


@pytest.mark.parametrize(("options", "message"), [
    ({"colour": "red"}, 'invalid option: "colour"'),
    ({"type": "tmpfs", "mode": "1777"}, 'invalid option: "mode"'),
    ({"type": "tmpfs"}, 'missing required option: "device"'),
    ({"device": "tmpfs"}, 'missing required option: "type"'),
    ({"o": "size=1m"}, 'missing required option: "device"'),
    ({"o": "bind", "device": "/srv"}, 'missing required option: "type"'),
    ({"size": "1g"}, "quota size requested but no quota support"),
    ({"size": "lots"}, "invalid size: 'lots'"),
    ({"type": "nfs", "device": ":/export", "o": "addr=10.0.0.1"},
     "--opt type=nfs: network filesystems are not supported "
     "(Docker resolves their addr= itself; minidocker does not)"),
])
def test_refused_with_dockers_words(options: dict[str, str], message: str) -> None:
    with pytest.raises(UsageError) as refused:
        volumeopts.check(options)
    assert str(refused.value) == message


def test_accepted_options_are_kept_as_given() -> None:
    given = {"type": "tmpfs", "device": "tmpfs", "o": "size=64m,uid=1000"}
    assert volumeopts.check(given) == given
    assert volumeopts.check({"size": "0"}) == {"size": "0"}  # no quota asked: nothing to refuse
    assert volumeopts.check({}) == {}


@pytest.mark.parametrize(("options", "mounts"), [
    ({}, False), ({"size": "0"}, False),
    ({"type": "tmpfs", "device": "tmpfs"}, True),
    ({"type": "none", "device": "/srv", "o": "bind"}, True),
])
def test_needs_mount(options: dict[str, str], mounts: bool) -> None:
    assert volumeopts.needs_mount(options) is mounts


def test_o_is_split_into_flags_and_data() -> None:
    p = volumeopts.plan({"type": "tmpfs", "device": "tmpfs",
                         "o": "size=64m,uid=1000,noexec,nosuid,ro,rw,mode=1777"})
    assert (p.device, p.fstype) == ("tmpfs", "tmpfs")
    assert p.flags == MS.NOEXEC | MS.NOSUID  # rw cleared the ro before it
    assert p.data == "size=64m,uid=1000,mode=1777" and p.propagation == MS(0)


def test_a_bind_with_propagation_and_ro() -> None:
    p = volumeopts.plan({"type": "none", "device": "/srv/data", "o": "rbind,ro,rshared"})
    assert p.flags == MS.BIND | MS.REC | MS.RDONLY and p.data == ""
    assert p.propagation == MS.SHARED | MS.REC
    assert "device='/srv/data'" in repr(p)  # printable: the plan is the trace


def test_no_device_is_refused_at_mount() -> None:
    with pytest.raises(UsageError, match="missing device in volume options"):
        volumeopts.plan({"type": "tmpfs", "device": ""})


@pytest.mark.parametrize(("text", "size"), [
    ("512", 512), ("64m", 64 << 20), ("1g", 1 << 30), ("1.5k", 1536), ("2GiB", 2 << 30),
    ("10 MB", 10 << 20),
])
def test_sizes_in_binary_multiples(text: str, size: int) -> None:
    assert volumeopts.parse_size(text) == size
