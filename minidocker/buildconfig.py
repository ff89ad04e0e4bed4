"""What each Dockerfile instruction does to the image config, and how a build step is named.

The builder (:mod:`minidocker.builder`) makes one image per instruction. Instructions that run
nothing (CMD, ENV, LABEL...) only change the image config's ``config`` object
(image-spec ``config.md``) and add a history entry with ``empty_layer: true``; this module says
how, as pure functions a test (or lesson 07) can try on any dict:

============== ===================================================================
CMD            ``Cmd``; the shell form is ``SHELL + [text]`` (``["/bin/sh", "-c", text]``)
ENTRYPOINT     ``Entrypoint``, same forms; an ENTRYPOINT also clears a ``Cmd`` the stage
               inherited from its base image (one set by a CMD earlier in the stage stays)
ENV, LABEL     ``Env`` (merged by name), ``Labels``
MAINTAINER     ``author`` of the image, and the label ``maintainer`` (deprecated: warned)
USER, EXPOSE   ``User``; ``ExposedPorts`` (``80`` is ``80/tcp``)
VOLUME         ``Volumes``: a new volume at that path is seeded with the image's files there
WORKDIR        ``WorkingDir``, a relative one joined to the previous one
SHELL          ``Shell``: the shell of later shell forms (RUN, CMD, ENTRYPOINT)
STOPSIGNAL     ``StopSignal``
HEALTHCHECK    ``Healthcheck``: ``Test``, durations in nanoseconds, ``Retries``
ONBUILD        ``OnBuild``: triggers a child build runs first, right after its FROM
============== ===================================================================

At run time the command is ``Entrypoint + Cmd`` (:func:`minidocker.spec.command`), which gives
Docker's table of the CMD/ENTRYPOINT interplay: a shell-form ENTRYPOINT ignores any CMD (it
becomes ``$0``... of ``sh -c``), an exec-form ENTRYPOINT takes CMD as its arguments.

:func:`cache_key` is a step's identity in the build cache: the parent image's ID (which fixes
every layer and the config below), the instruction as expanded, and what it reads from outside
(the content hash of copied files, the build args a RUN sees).

Notebook: ``07_dockerfiles``.
"""

from __future__ import annotations

import hashlib
import json
import posixpath

from minidocker import dockerfile as df
from minidocker.errors import DockerfileError, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping
    from typing import Any

DEFAULT_SHELL = ["/bin/sh", "-c"]
PIPES = "/dev/pipes"  # where a RUN's heredoc script is mounted (BuildKit's path)
NOP = "/bin/sh -c #(nop) "  # how the classic builder's history marks a step that ran nothing
CONFIG_ONLY = (df.Cmd, df.Entrypoint, df.Env, df.Label, df.Maintainer, df.User, df.Expose,
               df.Volume, df.Shell, df.StopSignal, df.Healthcheck, df.Onbuild, df.Arg)


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


def shell(config: dict[str, Any]) -> list[str]:
    return list(config.get("Shell") or DEFAULT_SHELL)


def command(ins: df.Cmd | df.Run, config: dict[str, Any]) -> list[str]:
    """A CMD, ENTRYPOINT or RUN as argv: the exec form as is, the shell form under SHELL."""
    if not ins.command:
        return []
    return shell(config) + [ins.command[0]] if ins.shell_form else list(ins.command)


def run_argv(ins: df.Run, config: dict[str, Any]) -> list[str]:
    """RUN's argv. With heredocs (BuildKit's rules): ``RUN <<EOF`` alone runs the heredoc as
    the script, or, when it starts with ``#!``, as a file of its own that the shell starts, so
    that the kernel runs its ``#!`` interpreter (:func:`heredoc_script`); otherwise the line
    and its heredocs go to the shell together, as written."""
    if not ins.heredocs or not ins.shell_form:
        return command(ins, config)
    doc = _heredoc_alone(ins)
    if doc is None:
        return shell(config) + [
            ins.command[0] + "".join(f"\n{d.content}{d.name}" for d in ins.heredocs)]
    script = heredoc_script(ins)
    return shell(config) + [f"{PIPES}/{script[0]}" if script else _body(doc)]


def heredoc_script(ins: df.Run) -> tuple[str, str] | None:
    """``RUN <<EOF`` alone, its body starting with ``#!``: the file (name, content) BuildKit
    writes, mode 0755, into a read-only mount at :data:`PIPES`, for the RUN to exec."""
    doc = _heredoc_alone(ins)
    if doc is None or not _body(doc).startswith("#!"):
        return None
    return doc.name.replace("/", "_"), _body(doc)


def _heredoc_alone(ins: df.Run) -> df.Heredoc | None:
    if len(ins.heredocs) != 1 or not ins.shell_form:
        return None
    doc = ins.heredocs[0]
    alone = {f"<<{dash}{q}{doc.name}{q}" for dash in ("", "-") for q in ("", '"', "'")}
    return doc if ins.command[0].strip() in alone else None


def _body(doc: df.Heredoc) -> str:
    return df.chomp(doc.content) if doc.chomp else doc.content


def apply(ins: df.Instruction, config: dict[str, Any], *, cmd_set: bool) -> dict[str, Any]:
    """A copy of ``config`` (the image config's ``config`` object) with a config-only
    instruction applied (``ins`` already expanded). ``cmd_set``: a CMD came earlier in this
    stage (then an ENTRYPOINT keeps it)."""
    result: dict[str, Any] = json.loads(json.dumps(config))
    if isinstance(ins, df.Entrypoint):
        result["Entrypoint"] = command(ins, result)
        if not cmd_set:
            result.pop("Cmd", None)
    elif isinstance(ins, df.Cmd):
        result["Cmd"] = command(ins, result)
    elif isinstance(ins, df.Label):
        result["Labels"] = {**(result.get("Labels") or {}), **dict(ins.pairs)}
    elif isinstance(ins, df.Env):
        result["Env"] = merge_env(list(result.get("Env") or []),
                                  [f"{k}={v}" for k, v in ins.pairs])
    elif isinstance(ins, df.Maintainer):
        result["Labels"] = {**(result.get("Labels") or {}), "maintainer": ins.name}
    elif isinstance(ins, df.User):
        result["User"] = ins.user
    elif isinstance(ins, df.Expose):
        result["ExposedPorts"] = {**(result.get("ExposedPorts") or {}),
                                  **{exposed_port(p): {} for p in ins.ports}}
    elif isinstance(ins, df.Volume):
        result["Volumes"] = {**(result.get("Volumes") or {}), **{p: {} for p in ins.paths}}
    elif isinstance(ins, df.Workdir):
        result["WorkingDir"] = workdir(result, ins.path)
    elif isinstance(ins, df.Shell):
        result["Shell"] = list(ins.command)
    elif isinstance(ins, df.StopSignal):
        result["StopSignal"] = ins.signal
    elif isinstance(ins, df.Healthcheck):
        result["Healthcheck"] = healthcheck(ins)
    elif isinstance(ins, df.Onbuild):
        result["OnBuild"] = [*(result.get("OnBuild") or []), ins.expression]
    return result


def workdir(config: dict[str, Any], path: str) -> str:
    """WORKDIR ``path`` joined to the current one (``/`` if none), cleaned."""
    return posixpath.normpath(posixpath.join(config.get("WorkingDir") or "/", path))


def healthcheck(ins: df.Healthcheck) -> dict[str, Any]:
    """The image config's ``Healthcheck``: durations as Go's time.Duration (nanoseconds)."""
    found: dict[str, Any] = {"Test": list(ins.test)}
    for field, key in (("interval", "Interval"), ("timeout", "Timeout"),
                       ("start_period", "StartPeriod"), ("start_interval", "StartInterval")):
        value = getattr(ins, field)
        if value:
            found[key] = int(round(value * 1e9))
    retries = getattr(ins, "retries", None)
    if retries:
        found["Retries"] = retries
    return found


def created_by(ins: df.Instruction, config: dict[str, Any], detail: str = "") -> str:
    """The history entry's ``created_by``, as the classic builder writes it."""
    if isinstance(ins, df.Run):
        return " ".join(run_argv(ins, config))
    if isinstance(ins, df.Copy | df.Add):
        return f"{NOP}{ins.NAME} {detail} in {ins.dest} "
    text = ins.original.strip() if ins.original else ins.NAME
    return f"{NOP} {text}"


def cache_key(parent: str, ins: df.Instruction, extra: object = None) -> str:
    """The build cache's key of a step: parent image ID + expanded instruction + ``extra``
    (a COPY's content hash, the build args a RUN sees)."""
    slots: tuple[str, ...] = ins.__slots__
    fields = {k: getattr(ins, k) for k in slots if k not in ("line", "end_line", "original")}
    text = json.dumps([parent, ins.NAME, fields, extra], sort_keys=True, default=repr)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def needed_stages(parsed: df.Dockerfile, stages: list[df.Stage],
                  target: str | None) -> list[df.Stage]:
    """The stages the target (default: the last) needs, in order: its FROM chain and every
    ``COPY --from`` and ``RUN --mount=from=`` stage, as BuildKit builds only those."""
    by_name = {s.name: s for s in stages if s.name}
    if target is None:
        last = stages[-1]
    elif target.lower() in by_name:
        last = by_name[target.lower()]
    else:
        raise UsageError(f"failed to reach build target {target} in Dockerfile")
    from minidocker.buildmounts import mount_stages  # RUN --mount=from=stage

    by_key = {**by_name, **{str(s.index): s for s in stages}}
    needed: set[int] = set()

    def need(stage: df.Stage) -> None:
        if stage.index in needed:
            return
        needed.add(stage.index)
        base = by_key.get(stage.base.lower())
        if base is not None and base.index < stage.index:
            need(base)
        for ins in stage.instructions:
            for source in [getattr(ins, "from_stage", None), *mount_stages(ins)]:
                dep = by_key.get(source.lower()) if isinstance(source, str) else None
                if dep is not None and dep.index < stage.index:
                    need(dep)

    need(last)
    return [s for s in stages if s.index in needed]


def preflight_steps(parsed: df.Dockerfile, stages: list[df.Stage], build_args: Mapping[str, str],
                    local_config: Callable[[str], dict[str, Any] | None]
                    ) -> Iterator[tuple[df.Stage, df.Instruction, df.Instruction | None, bool]]:
    """Each instruction the build will run, before it runs: ``(stage, ins, expanded, known)``.

    The instructions of each stage come after its base's ONBUILD triggers, as they will run,
    and are expanded with the variables they will see: the ``Env`` the stage starts with is its
    base stage's at that stage's end (as this walk found it), or a local base image's
    (``local_config(base)``: its config, None if the image is not here). ``known`` is False
    when that ``Env`` cannot be known yet (the base image will be pulled): a word with a
    ``$`` in it may then expand otherwise at its step, and ``expanded`` is None when it did
    not expand at all. With ``known``, an expansion error is raised here, naming the line.
    """
    meta = df.meta_args(parsed, build_args)
    ends: dict[str, dict[str, Any] | None] = {}  # a stage's Env and OnBuild at its end
    for spec in stages:
        base = spec.base.lower()
        start = {} if base == "scratch" else ends[base] if base in ends else \
            local_config(spec.base)
        known = start is not None
        image_env = list((start or {}).get("Env") or [])
        env = df.StageEnv(image_env, meta, build_args, parsed.escape)
        triggers = [df.parse_one(t, parsed.escape) for t in (start or {}).get("OnBuild") or []]
        onbuild = []
        for ins in [*triggers, *spec.instructions]:
            try:
                done: df.Instruction | None = env.step(ins)
            except DockerfileError:
                if known:
                    raise
                done = None  # it needs the base image's Env: checked when it runs
            if isinstance(done, df.Env) and not isinstance(done, df.Label):
                image_env = merge_env(image_env, [f"{k}={v}" for k, v in done.pairs])
            if isinstance(ins, df.Onbuild):
                onbuild.append(ins.expression)
            yield spec, ins, done, known
        # triggers ran: a child of this stage runs only the stage's own ONBUILDs
        end = {"Env": image_env, "OnBuild": onbuild} if known else None
        ends[str(spec.index)] = end
        if spec.name:
            ends[spec.name.lower()] = end
