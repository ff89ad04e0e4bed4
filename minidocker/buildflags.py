"""BuildKit's instruction flags: which ones the builder does, which it refuses, and why.

The parser (:mod:`minidocker.dockerfile`) accepts every flag BuildKit's Dockerfile frontend
knows. A flag the builder then ignored would build something else than the Dockerfile says
(``COPY --exclude=*.log`` copying the logs), so each one is either done or refused, before
anything is built, in one line naming the Dockerfile's line:

======================== =============================================================
``RUN --mount``          bind, cache and tmpfs done (:mod:`minidocker.buildmounts`);
                         ``type=secret`` and ``type=ssh`` refused: minidocker has no
                         build secrets and no SSH agent forwarding
``RUN --network``        done (``none``, ``host``, ``default``)
``RUN --security``       ``sandbox`` (the default) done; ``insecure`` refused: it needs the
                         ``security.insecure`` entitlement, which minidocker never grants
``RUN --device``         refused: no devices are given to build steps
``FROM --platform``      passed to the pull; a RUN in a stage of another platform than the
                         host's is refused (minidocker runs no emulator)
``COPY --exclude``       done, with the ``.dockerignore`` pattern rules (:func:`excluded`)
``COPY --parents``       done: each source keeps its parent directories, from the ``./``
                         pivot if the path has one (:func:`parents_source`); not with
                         ``--from`` yet (refused)
``COPY --link``          accepted: the layer has the same files; minidocker does not rebase
                         such a layer when the one below it changes, as BuildKit can
``ADD --unpack``         done: ``false`` keeps a local archive a file, ``true`` unpacks a
                         downloaded one
``ADD --keep-git-dir``   refused, as is any git source: minidocker does not clone
======================== =============================================================

:func:`platform_args` are BuildKit's automatic platform ARGs (``BUILDPLATFORM``,
``TARGETARCH``...): defined in the global scope, so FROM lines may use them, and a stage sees
one after ``ARG NAME`` without a value. minidocker builds for its host only, so the target
platform is the build platform.

Notebook: ``07_dockerfiles``. Reference: the Dockerfile reference's RUN, COPY, ADD and FROM
sections (https://docs.docker.com/reference/dockerfile/).
"""

from __future__ import annotations

import re

from minidocker import dockerfile as df

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from minidocker.buildcontext import Context
    from minidocker.buildfiles import Source

PLATFORM_ARGS = ("BUILDPLATFORM", "BUILDOS", "BUILDARCH", "BUILDVARIANT",
                 "TARGETPLATFORM", "TARGETOS", "TARGETARCH", "TARGETVARIANT")
SECURITY_MODES = ("sandbox", "insecure")
# BuildKit's isGitURL: a scheme git speaks, scp-like user@host:path, or a path ending in .git
_GIT_URL = re.compile(r"^(git://|git@|ssh://|git\+|github\.com/)|\.git(#.*)?$|\.git/?#")


def platform_args() -> dict[str, str]:
    """BuildKit's automatic platform ARGs, all the host's (no ``--platform`` for a build)."""
    from minidocker.registry.platforms import host_platform

    host = host_platform()
    values: dict[str, str] = {}
    for prefix in ("BUILD", "TARGET"):
        values[f"{prefix}PLATFORM"] = str(host)
        values[f"{prefix}OS"] = host.os
        values[f"{prefix}ARCH"] = host.architecture
        values[f"{prefix}VARIANT"] = host.variant or ""
    return values


def is_host_platform(text: str) -> bool:
    """Does ``text`` (``linux/amd64``...) name this machine's platform? A variant left out
    is any variant, as containerd's matcher reads it."""
    from minidocker.registry.platforms import host_platform, parse_platform

    want, host = parse_platform(text), host_platform()
    return (want.os, want.architecture) == (host.os, host.architecture) and \
        want.variant in (None, host.variant)


def is_git_source(src: str) -> bool:
    return bool(_GIT_URL.search(src))


def refusal(ins: df.Instruction) -> str | None:
    """Why the builder will not do ``ins`` (as written, or expanded), or None. A value still
    holding a ``$`` is checked again once expanded (:func:`check`)."""
    from minidocker import buildmounts

    if isinstance(ins, df.Run):
        security = getattr(ins, "security", None)
        if security == "insecure":
            return ("--security=insecure needs the security.insecure entitlement, which "
                    "minidocker does not grant")
        if security is not None and security not in SECURITY_MODES:
            return f"unsupported security mode {security!r}: sandbox or insecure"
        if getattr(ins, "devices", None):
            return "--device is not supported: minidocker gives build steps no devices"
        targets: set[str] = set()
        for text in ins.mounts or []:
            if "$" in text:
                continue
            try:
                mount = buildmounts.parse_mount(text)
            except ValueError as exc:
                return str(exc)
            if mount.target in targets:
                return f"--mount: duplicate mount target {mount.target}"
            targets.add(mount.target)
    if isinstance(ins, df.Add):
        if getattr(ins, "keep_git_dir", None) is not None:
            return "--keep-git-dir: minidocker does not clone git sources in ADD"
        for src in ins.sources:
            if is_git_source(src):
                return f"git source {src}: minidocker does not clone git repositories in ADD"
    if isinstance(ins, df.Copy) and ins.from_stage and getattr(ins, "parents", None):
        return "--parents with --from is not supported yet: only from the build context"
    if isinstance(ins, df.Copy | df.Add):
        for pattern in ins.exclude or []:
            if not pattern or pattern == "!":
                return "--exclude: an empty pattern"
    if isinstance(ins, df.From) and ins.platform and "$" not in ins.platform:
        from minidocker.errors import UsageError
        from minidocker.registry.platforms import parse_platform

        try:
            parse_platform(ins.platform)
        except UsageError as exc:
            return str(exc)
    return None


def check(ins: df.Instruction) -> None:
    """Refuse ``ins`` (expanded, about to run: an ONBUILD trigger is only seen then)."""
    reason = refusal(ins)
    if reason is not None:
        raise df.error(ins.line, reason, ins.NAME)


def preflight(stages: list[df.Stage], context: Context | None) -> None:
    """Before anything is built: every flag of the stages to build is one the builder does,
    a ``RUN --mount`` bind from the context names something there, and no stage of another
    platform runs a command. Errors name the line."""
    from minidocker import buildmounts

    platforms: dict[str, str | None] = {}
    for spec in stages:
        platform = spec.platform or platforms.get(spec.base.lower())
        for key in (spec.name, str(spec.index)):
            if key:
                platforms[key] = platform
        if platform and "$" not in platform:
            check(df.From(base=spec.base, stage=spec.name, platform=platform, line=spec.line))
        for ins in spec.instructions:
            check(ins)
            if not isinstance(ins, df.Run):
                continue
            if platform and "$" not in platform and not is_host_platform(platform):
                raise df.error(ins.line, f"the stage's platform is {platform}, not this "
                                         "machine's: minidocker runs no emulator", ins.NAME)
            for text in ins.mounts or []:
                if "$" not in text:
                    buildmounts.check_context_source(buildmounts.parse_mount(text), context,
                                                     ins.line)


# -- COPY --exclude and --parents ----------------------------------------------------------------

def excluded(sources: list[Source], patterns: Iterable[str]) -> list[Source]:
    """``sources`` without what ``--exclude`` patterns match (``.dockerignore`` rules: ``*``
    within a directory, ``**`` across them, ``!`` takes a path back, the last match wins),
    each path read relative to the source it is under; a file source is matched by its name.
    A directory excluded takes everything under it."""
    from minidocker.buildcontext import Ignore, read_dockerignore
    from minidocker.buildfiles import Source

    rules = Ignore(read_dockerignore("\n".join(patterns)))
    if not rules.rules:
        return sources
    kept = []
    for source in sources:
        if source.data is not None or not source.is_dir:
            if source.data is not None or not rules.excludes(source.name):
                kept.append(source)
            continue
        entries = [source.entries[0]] + [e for e in source.entries[1:]
                                         if not rules.excludes(e[0])]
        kept.append(Source(source.name, entries, True, source.owner))
    return kept


def pivot(src: str) -> tuple[str, int]:
    """``COPY --parents``: ``(the source as a context path, how many of its leading
    directories are dropped)``. ``x/y/a.txt`` keeps ``x/y``; ``x/./y/a.txt`` (a ``./`` pivot)
    keeps ``y``; a leading ``./`` is the context itself, not a pivot."""
    from minidocker.buildcontext import clean_source

    body = src
    while body.startswith("./"):
        body = body[2:].lstrip("/")
    before, sep, _ = body.partition("/./")
    dropped = clean_source(before) if sep else ""
    return clean_source(body), dropped.count("/") + 1 if dropped else 0


def parents_source(ctx: Context, srcs: list[str], patterns: list[str], what: str
                   ) -> list[Source]:
    """``COPY --parents``: one directory source in which each source of the context sits
    under its parent directories (from the pivot on), so ``COPY --parents x/a.txt y/ /dst/``
    writes ``/dst/x/a.txt`` and ``/dst/y/...``. The kept directories carry the metadata of
    the context's own."""
    import os
    import stat

    from minidocker.buildfiles import Source

    def entry(rel: str) -> tuple[str, str, os.stat_result]:
        host = ctx.path(rel)
        return rel, host, os.stat(host)

    merged: dict[str, tuple[str, str, os.stat_result]] = {}
    for src in srcs:
        whole, dropped = pivot(src)
        for rel in ctx.resolve(whole, what):
            entries = list(ctx.entries(rel))
            source = Source(os.path.basename(rel) or ".", entries,
                            stat.S_ISDIR(entries[0][2].st_mode), (0, 0))
            found = excluded([source], patterns)
            if not found:
                continue
            parts = rel.split("/")[dropped:] if rel else []
            for i in range(1, len(parts)):
                below = "/".join(parts[:i])
                merged.setdefault(below, (below, *entry("/".join(rel.split("/")[
                    :dropped + i]))[1:]))
            path = "/".join(parts)
            if path:
                merged[path] = (path, entries[0][1], entries[0][2])
            for below, host, st in found[0].entries[1:]:
                name = f"{path}/{below}" if path else below
                merged[name] = (name, host, st)
    root = entry("")
    return [Source(".", [root, *sorted(merged.values(), key=lambda e: e[0].split("/"))],
                   True, (0, 0))]


# -- FROM --platform ----------------------------------------------------------------------------

def pull(root: str, ref: str, platform: str | None, missing: Exception,
         say: Callable[[str], None]) -> None:
    """A FROM image the store lacks, pulled as ``run`` pulls it (an ID is never pulled:
    ``missing`` is raised again), for ``platform`` (``FROM --platform``) or the host's."""
    from minidocker.reference import parse
    from minidocker.registry.platforms import parse_platform
    from minidocker.registry.pull import pull as pull_image
    from minidocker.store import ImageStore

    if ref.startswith("sha256:") or re.fullmatch(r"[0-9a-f]{64}", ref):
        raise missing
    reference = parse(ref)
    say(f"Unable to find image '{reference.familiar}' locally")
    result = pull_image(ImageStore(root), reference, out=say,
                        platform=parse_platform(platform) if platform else None)
    say(f"Digest: {result.digest}")
    say(f"Status: Downloaded newer image for {reference.familiar}")


def check_image_platform(config: Mapping[str, object], platform: str, base: str,
                         line: int) -> None:
    """``FROM --platform=P base``: the image the store has under that name is for P."""
    from minidocker.registry.platforms import parse_platform

    want = parse_platform(platform)
    have = (config.get("os"), config.get("architecture"))
    variant = config.get("variant") or ("v8" if want.architecture == "arm64" else None)
    if have != (want.os, want.architecture) or want.variant not in (None, variant):
        shown = "/".join(str(p) for p in (*have, config.get("variant")) if p)
        raise df.error(line, f"image {base} is for {shown}, not {platform} (pull it with "
                             f"--platform {platform} under another name)", "FROM")
