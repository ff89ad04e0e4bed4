"""Times as Docker writes them: RFC 3339 in UTC, to the nanosecond (Go's ``RFC3339Nano``).

Every time minidocker records or prints (``state.json``'s ``StartedAt``, a log line's
``time``, an image config's ``created``, a network's ``Created``) is written by
:func:`format_time` and read back by :func:`parse_time`, so the records of containers, images,
logs and networks agree to the byte. Go trims trailing zeros of the fraction
(``...05.1Z``, none at all for whole seconds); the image store keeps all nine digits
(``fixed``), as ``docker commit`` and ``docker logs -t`` do.

Both are written by hand: ``time.strptime`` or ``datetime`` would import ``_strptime``,
``calendar`` and ``re`` (~8 ms of every ``ps``). This module imports nothing of minidocker's,
so every layer may use it.

Man page: strftime(3); RFC 3339, section 5.6.
"""

from __future__ import annotations

import time

ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time, as Docker shows a time that never was


def now() -> str:
    return format_time(time.time_ns())


def format_time(ns: int, fixed: bool = False) -> str:
    """RFC 3339 with nanoseconds, UTC (Go's RFC3339Nano; ``fixed``: always 9 digits)."""
    seconds, frac = divmod(ns, 1_000_000_000)
    digits = f"{frac:09d}" if fixed else f"{frac:09d}".rstrip("0")
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + \
        (f".{digits}" if digits else "") + "Z"


def parse_time(text: str) -> int:
    """Nanoseconds since the epoch of an RFC 3339 time: what :func:`format_time` writes, or
    another builder's ``created`` (a space for ``T``; an offset ``+01:00`` or ``+0100``, or
    none, for ``Z``). ValueError if it is not one."""
    main, offset = text, 0
    if main.endswith("Z"):
        main = main[:-1]
    elif len(main) > 6 and main[-5] in "+-" and main[-4:].isdigit():  # +hhmm
        offset = int(main[-4:-2]) * 3600 + int(main[-2:]) * 60
        offset, main = (offset if main[-5] == "+" else -offset), main[:-5]
    elif len(main) > 6 and main[-6] in "+-" and main[-3] == ":":  # +hh:mm
        offset = int(main[-5:-3]) * 3600 + int(main[-2:]) * 60
        offset, main = (offset if main[-6] == "+" else -offset), main[:-6]
    main, _, frac = main.partition(".")
    try:
        if len(main) != 19 or main[4] + main[7] + main[13] + main[16] != "--::" \
                or main[10] not in "T ":
            raise ValueError
        year, month, day = int(main[:4]), int(main[5:7]), int(main[8:10])
        hour, minute, second = int(main[11:13]), int(main[14:16]), int(main[17:19])
        if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60
                and second < 61) or (frac and not frac.isdigit()):
            raise ValueError
    except ValueError:
        raise ValueError(f"not an RFC 3339 time: {text!r}") from None
    seconds = _days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second
    return (seconds - offset) * 1_000_000_000 + int((frac + "000000000")[:9] or 0)


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    year -= month <= 2
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def go_duration(text: str, flag: str = "interval") -> float | None:
    """Go's ``time.ParseDuration`` (``1m30s``, ``500ms``) in seconds; "" or 0 is None.
    (HEALTHCHECK's ``--interval`` and friends; ``re`` imported here, off run's path.)"""
    import re

    if not text:
        return None
    sign, body = (-1.0, text[1:]) if text[:1] == "-" else (1.0, text.removeprefix("+"))
    if body == "0":
        return None
    parts = re.findall(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)", body)
    if not body or "".join(n + u for n, u in parts) != body:
        raise ValueError(f'time: invalid duration "{text}"')
    seconds = sign * sum(float(n) * _UNITS[u] for n, u in parts)
    if seconds == 0:
        return None
    if seconds < 0.001:
        raise ValueError(f'Interval "{flag}" cannot be less than 1ms')
    return seconds
