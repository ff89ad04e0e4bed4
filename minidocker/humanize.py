"""How Docker's CLI prints sizes, ages and ``--format`` templates, for the listing commands.

- :func:`size` is go-units' ``HumanSizeWithPrecision(n, 3)``: decimal units, three significant
  digits (``4.26MB``, ``12B``), as ``docker images`` prints SIZE.
- :func:`ago` is go-units' ``HumanDuration`` plus " ago" (``About an hour ago``).
- :func:`render` runs the small part of Go's ``text/template`` that ``--format`` is used for
  in practice: ``{{.Field.Sub}}``, ``{{json .Field}}`` and ``{{index .List 0}}`` between
  literal text, printing values as Go does (``[a b]``, ``map[k:v]``, ``<no value>``).
"""

from __future__ import annotations

import json
import re
import time

from minidocker.lifecycle import human_duration as duration  # Docker's HumanDuration

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
_ACTION = re.compile(r"{{-?\s*(.*?)\s*-?}}")


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


def go_value(value: Any) -> str:
    """A value as Go's ``fmt`` prints it in a template."""
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + " ".join(go_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_value(value[k])}" for k in sorted(value)) + "]"
    return str(value)


def render(template: str, data: Any) -> str:
    """``--format``: Go template actions over ``data`` (see the module docstring)."""
    def action(m: re.Match[str]) -> str:
        words = m.group(1).split()
        if not words:
            return ""
        if words[0] == "json" and len(words) == 2:
            return json.dumps(_field(data, words[1]), separators=(",", ":"))
        if words[0] == "index" and len(words) == 3:
            container = _field(data, words[1])
            key: Any = words[2].strip('"')
            if isinstance(container, list):
                key = int(key)
            try:
                return go_value(container[key])
            except (IndexError, KeyError, TypeError):
                from minidocker.errors import UsageError

                raise UsageError(f"template: error calling index with {words[2]}") from None
        if len(words) == 1 and words[0].startswith("."):
            return go_value(_field(data, words[0]))
        from minidocker.errors import UsageError

        raise UsageError(f"template: unsupported action {{{{{m.group(1)}}}}}: minidocker "
                         "knows {{.Field}}, {{json .Field}} and {{index .Field N}}")

    # Docker's CLI turns the two characters \t and \n typed in a shell into real ones.
    return _ACTION.sub(action, template.replace("\\t", "\t").replace("\\n", "\n"))


def _field(data: Any, path: str) -> Any:
    if path == ".":
        return data
    value = data
    for part in path.strip(".").split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value
