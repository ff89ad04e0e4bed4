"""How Docker's CLI prints sizes and ages, for the listing commands.

- :func:`size` is go-units' ``HumanSizeWithPrecision(n, 3)``: decimal units, three significant
  digits (``4.26MB``, ``12B``), as ``docker images`` prints SIZE.
- :func:`ago` is go-units' ``HumanDuration`` plus " ago" (``About an hour ago``).

``--format`` templates are :mod:`minidocker.gotemplate`'s, for every command.
"""

from __future__ import annotations

import time

from minidocker.lifecycle import human_duration as duration  # Docker's HumanDuration

_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")


def size(n: float) -> str:
    i = 0
    while n >= 1000 and i < len(_UNITS) - 1:
        n /= 1000
        i += 1
    return f"{n:.3g}{_UNITS[i]}"


def ago(timestamp: str, now: float | None = None) -> str:
    from minidocker.timefmt import parse_time

    try:
        t = parse_time(timestamp or "") / 1e9
    except ValueError:
        return "N/A"
    return duration((time.time() if now is None else now) - t) + " ago"
