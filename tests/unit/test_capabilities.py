"""Capabilities as plans: names, Docker's add/drop rules, and the five sets (no root needed)."""

from __future__ import annotations

import pytest

from minidocker import capabilities as caps
from minidocker.errors import UsageError

pytestmark = pytest.mark.nb03

EVERYTHING = (1 << 41) - 1
NO_SYS_RESOURCE = EVERYTHING & ~(1 << 24)  # this development host's own bounding set


def names(mask: int) -> set[str]:
    return set(caps.to_names(mask))


def test_the_table_matches_the_kernel_numbers():
    assert caps.NUMBERS["CAP_CHOWN"] == 0
    assert caps.NUMBERS["CAP_SYS_ADMIN"] == 21
    assert caps.NUMBERS["CAP_CHECKPOINT_RESTORE"] == 40
    assert len(caps.CAPABILITIES) == 41


def test_dockers_default_fourteen_is_the_well_known_mask():
    assert len(caps.DEFAULT_CAPABILITIES) == 14
    assert caps.default_mask() == 0xA80425FB  # CapEff of a default `docker run`


def test_decode_capeff():
    assert caps.decode("00000000a80425fb") == sorted(
        (n for n, _ in caps.DEFAULT_CAPABILITIES), key=caps.NUMBERS.__getitem__)
    assert caps.decode("0") == []


@pytest.mark.parametrize("given", ["net_admin", "NET_ADMIN", "cap_net_admin", "CAP_NET_ADMIN",
                                   " Net_Admin "])
def test_names_with_or_without_prefix(given):
    assert caps.normalize(given) == "CAP_NET_ADMIN"


def test_unknown_capability_is_a_usage_error():
    with pytest.raises(UsageError, match="unknown capability: 'FOO'"):
        caps.normalize("FOO")


def test_add_and_drop():
    got = names(caps.grant(["NET_ADMIN"], ["MKNOD", "cap_net_raw"], False, EVERYTHING))
    assert "CAP_NET_ADMIN" in got
    assert not {"CAP_MKNOD", "CAP_NET_RAW"} & got
    assert len(got) == 13


def test_drop_all_keeps_only_the_adds():
    assert names(caps.grant(["CHOWN"], ["ALL"], False, EVERYTHING)) == {"CAP_CHOWN"}
    assert caps.grant([], ["all"], False, EVERYTHING) == 0


def test_add_all_gives_everything_we_have_but_the_drops():
    got = caps.grant(["ALL"], ["SYS_ADMIN"], False, NO_SYS_RESOURCE)
    assert got == NO_SYS_RESOURCE & ~(1 << 21)


def test_privileged_is_everything_we_have():
    assert caps.grant([], [], True, NO_SYS_RESOURCE) == NO_SYS_RESOURCE


def test_a_capability_the_host_withholds_is_refused_by_name():
    with pytest.raises(UsageError, match="CAP_SYS_RESOURCE.*withholds"):
        caps.grant(["SYS_RESOURCE"], [], False, NO_SYS_RESOURCE)


def test_root_gets_the_grant_in_bounding_permitted_and_effective():
    granted = caps.default_mask()
    sets = caps.sets_for(granted, 0)
    assert sets == caps.CapSets(granted, granted, granted, 0, 0)


def test_a_user_gets_nothing_effective_without_ambient():
    granted = caps.default_mask() | 1 << caps.NUMBERS["CAP_NET_ADMIN"]
    sets = caps.sets_for(granted, 1000)
    assert sets.bounding == granted
    assert sets.permitted == sets.effective == sets.inheritable == sets.ambient == 0


def test_ambient_makes_a_users_capability_effective():
    bind = 1 << caps.NUMBERS["CAP_NET_BIND_SERVICE"]
    sets = caps.sets_for(caps.default_mask(), 1000, bind)
    assert sets.permitted == sets.effective == sets.inheritable == sets.ambient == bind


def test_ambient_must_be_granted():
    with pytest.raises(UsageError, match="not granted"):
        caps.sets_for(caps.default_mask(), 1000, 1 << caps.NUMBERS["CAP_SYS_ADMIN"])


def test_sets_print_as_names():
    shown = caps.sets_for(0b11, 0).as_dict()
    assert shown["effective"] == ["CAP_CHOWN", "CAP_DAC_OVERRIDE"]
    assert shown["ambient"] == []
