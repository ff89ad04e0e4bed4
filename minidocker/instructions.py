"""Dockerfile instructions applied to an image config: ``commit -c`` and ``import -c``.

``docker commit --change 'CMD ["nginx"]'`` and ``docker import --change`` accept a subset of
the Dockerfile's instructions, each changing one field of the image config's ``config`` object
(image-spec ``config.md``):

============== ==================================================================
CMD            ``Cmd``: ``["exec", "form"]`` as is, ``shell form`` as
               ``["/bin/sh", "-c", "shell form"]``
ENTRYPOINT     ``Entrypoint``, same two forms; also clears an inherited ``Cmd``
               unless a CMD comes with it (as a Dockerfile build does)
ENV            ``Env``: ``ENV A=1 B="two words"``, or the old ``ENV A value``
LABEL          ``Labels``: ``LABEL a=b "c d"=e``
EXPOSE         ``ExposedPorts``: ``EXPOSE 80 53/udp`` (tcp when no protocol is given)
VOLUME         ``Volumes``: ``VOLUME /data`` or ``VOLUME ["/data", "/logs"]``
USER           ``User``
WORKDIR        ``WorkingDir``; a relative one is taken from the previous one
STOPSIGNAL     ``StopSignal``
============== ==================================================================

Anything else (``RUN``, ``COPY``, ``FROM``...) needs a build, and is refused, with Docker's
message. Parsing is pure: the notebook and tests try any string.
"""

from __future__ import annotations

import json
import posixpath
import shlex

from minidocker.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SUPPORTED = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "STOPSIGNAL", "USER", "VOLUME",
             "WORKDIR")


def apply(config: dict[str, Any], changes: list[str]) -> dict[str, Any]:
    """A copy of ``config`` (the ``config`` object of an image config) with ``changes`` made."""
    result = json.loads(json.dumps(config))  # a deep copy: lists and dicts inside change
    cmd_set = any(c.split(None, 1)[:1] and c.split(None, 1)[0].upper() == "CMD" for c in changes)
    for change in changes:
        keyword, _, rest = change.strip().partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword not in SUPPORTED:
            raise UsageError(f"{keyword or repr(change)} is not a valid change command: use "
                             f"{', '.join(SUPPORTED)}")
        if not rest:
            raise UsageError(f"{keyword} requires at least one argument")
        if keyword == "CMD":
            result["Cmd"] = command(rest)
        elif keyword == "ENTRYPOINT":
            result["Entrypoint"] = command(rest)
            if not cmd_set:
                result["Cmd"] = None
        elif keyword == "ENV":
            env = list(result.get("Env") or [])
            result["Env"] = merge_env(env, [f"{k}={v}" for k, v in pairs(rest, "ENV")])
        elif keyword == "LABEL":
            result["Labels"] = {**(result.get("Labels") or {}), **dict(pairs(rest, "LABEL"))}
        elif keyword == "EXPOSE":
            ports = dict(result.get("ExposedPorts") or {})
            for port in rest.split():
                ports[exposed_port(port)] = {}
            result["ExposedPorts"] = ports
        elif keyword == "VOLUME":
            volumes = dict(result.get("Volumes") or {})
            for path in _json_list(rest) or rest.split():
                volumes[path] = {}
            result["Volumes"] = volumes
        elif keyword == "USER":
            result["User"] = rest
        elif keyword == "WORKDIR":
            result["WorkingDir"] = posixpath.normpath(
                posixpath.join(result.get("WorkingDir") or "/", rest))
        elif keyword == "STOPSIGNAL":
            result["StopSignal"] = rest
    return {k: v for k, v in result.items() if v is not None}


def command(text: str) -> list[str]:
    """The exec form (a JSON array of strings) as is; the shell form under ``/bin/sh -c``."""
    exec_form = _json_list(text)
    return exec_form if exec_form is not None else ["/bin/sh", "-c", text]


def _json_list(text: str) -> list[str] | None:
    if not text.startswith("["):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None  # Docker too falls back to the shell form for a bad JSON array
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def pairs(text: str, keyword: str) -> list[tuple[str, str]]:
    """``A=1 B="two words"`` as pairs; ENV's old form ``A some value`` is one pair."""
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise UsageError(f"{keyword} {text}: {exc}") from None
    if keyword == "ENV" and words and "=" not in words[0]:
        name, _, value = text.partition(" ")
        if not value.strip():
            raise UsageError(f"ENV {text}: needs a value (ENV NAME=value or ENV NAME value)")
        return [(name, value.strip())]
    found = []
    for word in words:
        key, eq, value = word.partition("=")
        if not eq or not key:
            raise UsageError(f"{keyword} {text}: '{word}' is not NAME=value")
        found.append((key, value))
    return found


def exposed_port(text: str) -> str:
    """``80`` -> ``80/tcp``; ``53/udp`` stays. Ranges (``8000-8010``) are kept as one key."""
    port, _, proto = text.partition("/")
    proto = proto.lower() or "tcp"
    if proto not in ("tcp", "udp", "sctp") or not all(p.isdigit() for p in port.split("-")):
        raise UsageError(f"invalid port to EXPOSE: {text}")
    return f"{port}/{proto}"


def merge_env(base: list[str], extra: list[str]) -> list[str]:
    """``KEY=value`` lists merged by key, later values winning, first positions kept."""
    merged = {item.partition("=")[0]: item for item in base}
    merged.update((item.partition("=")[0], item) for item in extra)
    return list(merged.values())
