"""RFC 3339 times as minidocker writes and reads them, one formatter for every record."""

from __future__ import annotations

import time

import pytest

from minidocker import humanize, lifecycle, timefmt

NS = 1_700_000_000_123_456_789


def test_every_record_keeps_the_shape_it_always_had() -> None:
    """Containers (9 digits), networks and the busybox image (whole seconds), logs (trimmed):
    each as the strftime formula its module used before it shared this one."""
    seconds = NS // 1_000_000_000
    nine = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{NS % 10**9:09d}Z"
    assert timefmt.format_time(NS, fixed=True) == nine == "2023-11-14T22:13:20.123456789Z"
    whole = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))
    assert timefmt.format_time(seconds * 1_000_000_000) == whole == "2023-11-14T22:13:20Z"
    assert timefmt.format_time(seconds * 1_000_000_000 + 100_000_000) == \
        "2023-11-14T22:13:20.1Z"  # Go's RFC3339Nano drops trailing zeros
    assert timefmt.parse_time(timefmt.now()) <= time.time_ns()


@pytest.mark.parametrize("text", [
    "2023-11-14T22:13:20.123456789Z", "2023-11-14T23:13:20.123456789+01:00",
    "2023-11-14T23:13:20.123456789+0100", "2023-11-14 22:13:20.123456789Z",
    "2023-11-14T21:13:20.123456789-01:00", "2023-11-14T22:13:20.123456789"])
def test_what_other_builders_write_parses_to_the_same_instant(text: str) -> None:
    assert timefmt.parse_time(text) == NS


@pytest.mark.parametrize("text", ["", "2023-11-14", "2023-13-14T22:13:20Z",
                                  "2023-11-14T22:13:20.x1Z", "yesterday"])
def test_what_is_not_a_time_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not an RFC 3339 time"):
        timefmt.parse_time(text)


def test_go_zero_time_is_a_date_but_a_record_reads_it_as_never() -> None:
    assert timefmt.parse_time(timefmt.ZERO_TIME) == -62_135_596_800 * 1_000_000_000
    assert lifecycle.parse_time(timefmt.ZERO_TIME) == lifecycle.parse_time("") == 0
    assert lifecycle.format_time is timefmt.format_time  # one formatter, under its old name too


def test_an_image_age_reads_the_same_times() -> None:
    created = "2024-01-02T03:04:05.123456789Z"
    assert humanize.ago(created, now=1704164645 + 7200) == "2 hours ago"
    assert humanize.ago("2024-01-02T04:04:05+01:00", now=1704164645 + 59) == "59 seconds ago"
    assert humanize.ago("", now=0) == humanize.ago("not a time", now=0) == "N/A"
