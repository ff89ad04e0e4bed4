"""Parsing and validating the resource flags: Docker's units, rules and messages. No root."""

from __future__ import annotations

import pytest

from minidocker import cgroups
from minidocker.cgroups import CgroupLimits
from minidocker.commands.resources import binary_size, decimal_size, merge_update
from minidocker.errors import UsageError

pytestmark = pytest.mark.nb02


class Args:
    def __init__(self, **kw: str) -> None:
        self.__dict__.update(kw)


def limits(**kw: str) -> CgroupLimits:
    return cgroups.from_flags(Args(**kw), host_cpus=2)


@pytest.mark.parametrize(("text", "size"), [
    ("64m", 64 << 20), ("64M", 64 << 20), ("64mb", 64 << 20), ("64MiB", 64 << 20),
    ("1g", 1 << 30), ("1.5g", 3 << 29), ("1048576", 1 << 20), ("512k", 512 << 10),
    ("100b", 100)])
def test_sizes(text: str, size: int) -> None:
    assert cgroups.parse_bytes(text) == size


@pytest.mark.parametrize(("flags", "message"), [
    ({"memory": "10x"}, "invalid argument \"10x\" for \"--memory\" flag: invalid size: '10x'"),
    ({"memory": "-5m"}, "invalid size: '-5m'"),
    ({"memory": "4m"}, "minimum memory limit allowed is 6MB"),
    ({"memory_swap": "64m"}, "you should always set the memory limit"),
    ({"memory": "64m", "memory_swap": "32m"}, "minimum memoryswap limit should be larger"),
    ({"memory": "64m", "memory_reservation": "128m"}, "can not be less than memory reservation"),
    ({"cpus": "3"}, "range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available"),
    ({"cpus": "-1"}, "must be a positive number"),
    ({"cpus": "one"}, "not a number"),
    ({"cpus": "1", "cpu_period": "50000"}, "Nano CPUs and CPU Period cannot both be set"),
    ({"cpu_shares": "-2"}, "must not be negative"),
    ({"cpu_period": "500"}, "CPU cfs period can not be less than 1ms"),
    ({"cpu_quota": "500"}, "CPU cfs quota can not be less than 1ms"),
    ({"cpu_quota": "-2"}, "must not be negative (or -1)"),
    ({"cpuset_cpus": "0-x"}, "invalid value 0-x for cpuset cpus"),
    ({"cpuset_cpus": "1-0"}, "invalid value 1-0 for cpuset cpus"),
    ({"cpuset_cpus": "0,,1"}, "invalid value 0,,1 for cpuset cpus"),
    ({"cpuset_cpus": "0-63"}, "requested CPUs are not available - requested 0-63"),
    ({"pids_limit": "many"}, "not an integer"),
    ({"blkio_weight": "5"}, "range of blkio weight is from 10 to 1000"),
])
def test_bad_input_is_one_line(flags: dict[str, str], message: str) -> None:
    with pytest.raises(UsageError) as err:
        limits(**flags)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_docker_defaults_and_names() -> None:
    plan = limits(memory="64m", cpus="1.5", pids_limit="-1", cpuset_cpus="0-1")
    assert plan.memory_swap == 128 << 20  # as much swap as memory, as Docker gives
    assert plan.as_dict() == {
        "Memory": 64 << 20, "MemorySwap": 128 << 20, "MemoryReservation": 0,
        "NanoCpus": 1_500_000_000, "CpuShares": 0, "CpuPeriod": 0, "CpuQuota": 0,
        "CpusetCpus": "0-1", "CpusetMems": "", "PidsLimit": -1, "BlkioWeight": 0}
    assert CgroupLimits.from_dict(plan.as_dict()) == plan
    assert repr(CgroupLimits(pids_limit=5)) == "CgroupLimits(pids_limit=5)"
    assert limits(memory="64m", memory_swap="-1").memory_swap == -1


@pytest.mark.parametrize("parent", ["", "/", "a/../b", "a//b"])
def test_bad_parent(parent: str) -> None:
    with pytest.raises(UsageError):
        cgroups.check_parent(parent)


def test_cpuset_lists() -> None:
    assert cgroups.parse_cpuset("0-2,4") == [0, 1, 2, 4]
    assert cgroups.format_cpuset([0, 1, 2, 4, 6, 7]) == "0-2,4,6-7"


def test_update_merges_onto_the_container_limits() -> None:
    stored = limits(memory="64m", cpus="1")
    merged, delta = merge_update(stored, cgroups.parse_flags(Args(memory="100m")))
    assert merged.memory == 100 << 20 and merged.memory_swap == 128 << 20
    assert delta == CgroupLimits(memory=100 << 20, memory_swap=128 << 20)
    with pytest.raises(UsageError, match="update the memoryswap at the same time"):
        merge_update(stored, cgroups.parse_flags(Args(memory="256m")))
    merged, delta = merge_update(stored, cgroups.parse_flags(Args(cpu_quota="20000")))
    assert merged.nano_cpus == 0 and delta.cpu_quota == 20000


def test_docker_size_formats() -> None:
    assert binary_size(64 << 20) == "64MiB" and binary_size(1536) == "1.5KiB"
    assert decimal_size(0) == "0B" and decimal_size(1234) == "1.23kB"
