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
message. Each change is read by the Dockerfile parser (:func:`minidocker.dockerfile.parse_one`),
its words expanded in the image's Env as a build would, and applied by the builder's own rules
(:func:`minidocker.buildconfig.apply`): ``commit -c`` and ``build`` are one set of rules.
Parsing is pure: the notebook and tests try any string.
"""

from __future__ import annotations

from minidocker.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SUPPORTED = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "STOPSIGNAL", "USER", "VOLUME",
             "WORKDIR")


def apply(config: dict[str, Any], changes: list[str]) -> dict[str, Any]:
    """A copy of ``config`` (the ``config`` object of an image config) with ``changes`` made."""
    from minidocker import buildconfig
    from minidocker import dockerfile as df

    result = dict(config)
    cmd_set = False
    for change in changes:
        keyword = change.strip().partition(" ")[0].upper()
        if keyword not in SUPPORTED:
            raise UsageError(f"{keyword or repr(change)} is not a valid change command: use "
                             f"{', '.join(SUPPORTED)}")
        ins = df.parse_one(change.strip())
        if isinstance(ins, df.Cmd) and not ins.command:
            raise UsageError(f"{keyword} requires at least one argument")
        env = dict(item.partition("=")[::2] for item in result.get("Env") or [])
        done = df.expand(ins, env)
        if isinstance(done, df.Workdir):
            result["WorkingDir"] = buildconfig.workdir(result, done.path)
        else:
            result = buildconfig.apply(done, result, cmd_set=cmd_set)
        cmd_set = cmd_set or (isinstance(done, df.Cmd) and not isinstance(done, df.Entrypoint))
    return {k: v for k, v in result.items() if v is not None}
