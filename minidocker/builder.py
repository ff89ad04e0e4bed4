"""The Dockerfile builder: each instruction a step, each step an image, RUN in a container.

``minidocker build`` is the classic ``docker build``: it walks the stages of a parsed
Dockerfile (:mod:`minidocker.dockerfile`) and makes one image per instruction, each on top of
the one before:

- **FROM** starts a stage from an image (pulled if missing, as ``run`` does:
  :func:`minidocker.engine.resolve_image`), an earlier stage, or ``scratch``; the base image's
  ONBUILD triggers run first;
- **RUN** is a real container started through the engine (:func:`minidocker.engine.run`) from
  the image so far, with the stage's env, user and workdir; when it exits 0 its upper dir
  becomes a layer, exactly as ``commit`` makes one (:mod:`minidocker.commit`); the container
  is always removed;
- **COPY/ADD** write their layer directly (:mod:`minidocker.buildfiles`) from the build
  context (:mod:`minidocker.buildcontext`), another stage, an image, or a URL;
- **WORKDIR** makes its directory (a layer) when the image lacks it;
- every other instruction changes only the config (:mod:`minidocker.buildconfig`): a history
  entry with ``empty_layer: true``.

**The cache**: before a step runs, its key (:func:`minidocker.buildconfig.cache_key`: parent
image, instruction as expanded, content hash of copied files) is looked up in
``images/.build-cache.json``; a hit reuses the image and starts nothing. ``--no-cache``
skips lookups. Intermediate images are untagged images in the store; ``images`` hides them.

**Failures**: the Dockerfile is parsed, every COPY source and ``--chmod`` checked, before
anything runs; a failing RUN reports ``The command '/bin/sh -c X' returned a non-zero code:
N``; tags move only when every step succeeded.

Notebook: ``07_dockerfiles``.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time

from minidocker import buildcache, buildconfig, buildfiles, buildflags, buildmounts, dockerfile
from minidocker import dockerfile as df
from minidocker.errors import ImageNotFound, MinidockerError, UsageError
from minidocker.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TextIO

    from minidocker.buildcontext import Context
    from minidocker.buildfiles import Source
    from minidocker.layers import Stack
    from minidocker.state import Layout
    from minidocker.store import Image, Layer

class BuildError(MinidockerError):
    """A build step failed (a RUN's command, a COPY): Docker's build exits 1."""

    exit_code = 1


class BuildOptions(Record):
    """What ``minidocker build`` was asked: the context directory (None: the Dockerfile came
    from STDIN), tags, ``--build-arg``s, ``--target``, ``--no-cache``, ``-q``, and the network
    RUN steps use (None: the default, bridge, as Docker's)."""

    __slots__ = ("context", "tags", "build_args", "target", "no_cache", "quiet", "network")

    def __init__(self, context: str | None = None, tags: list[str] | None = None,
                 build_args: dict[str, str] | None = None, target: str | None = None,
                 no_cache: bool = False, quiet: bool = False,
                 network: str | None = None) -> None:
        self.context = context
        self.tags = list(tags or [])
        self.build_args = dict(build_args or {})
        self.target = target
        self.no_cache = no_cache
        self.quiet = quiet
        self.network = network


class _Stage:
    """One stage while it is built: the image so far and what the next step sees."""

    __slots__ = ("index", "name", "image", "env", "cmd_set")

    def __init__(self, index: int, name: str | None, image: Image, env: df.StageEnv) -> None:
        self.index, self.name, self.image, self.env = index, name, image, env
        self.cmd_set = False  # a CMD in this stage: a later ENTRYPOINT keeps it

    @property
    def config(self) -> dict[str, Any]:
        return dict(self.image.config.get("config") or {})


class Builder:
    """Builds one Dockerfile; progress lines go to ``out``, warnings to ``err``."""

    def __init__(self, layout: Layout, options: BuildOptions, out: TextIO = sys.stdout,
                 err: TextIO = sys.stderr) -> None:
        from minidocker.store import ImageStore

        self.layout, self.options = layout, options
        self.store = ImageStore(layout.root)
        self.out, self.err = out, err
        self.cache: buildcache.BuildCache | None = None
        self.context: Context | None = None
        self.stages: dict[str, _Stage] = {}  # by name and by index
        self.step_no, self.steps = 0, 0
        self.escape = "\\"
        self.started = 0.0

    # -- output ---------------------------------------------------------------------------------

    def say(self, line: str) -> None:
        if not self.options.quiet:
            print(line, file=self.out, flush=True)

    def warn(self, line: str) -> None:
        print(line, file=self.err, flush=True)

    # -- the build ------------------------------------------------------------------------------

    def build(self, text: str) -> Image:
        """Parse, check, run every step of the stages the target needs; tag the result."""
        from minidocker.reference import parse as parse_ref

        refs = [parse_ref(t) for t in self.options.tags]  # a bad tag: refused before anything
        for ref in refs:
            if ref.digest:
                raise UsageError(f"invalid tag {ref.familiar!r}: a tag cannot be a digest")
        parsed = dockerfile.parse(text)
        self.escape = parsed.escape
        if not parsed.stages:
            raise UsageError("the Dockerfile has no FROM: no build stage")
        platform_args = buildflags.platform_args()  # BUILDPLATFORM...: for FROM, and ARG
        resolved = dockerfile.resolve_stages(parsed, self.options.build_args, platform_args)
        stages = buildconfig.needed_stages(parsed, resolved, self.options.target)
        if self.options.context is not None:
            from minidocker.buildcontext import Context

            self.context = Context(self.options.context)
        self.preflight(parsed, stages)
        buildflags.preflight(stages, self.context)  # flags refused, mounts' sources there
        for warning in parsed.warnings:
            self.warn(f"WARNING: {warning}")
        self.cache = buildcache.BuildCache(self.store)
        self.steps = sum(1 + len(s.instructions) for s in stages)
        self.started = time.monotonic()
        meta = df.meta_args(parsed, self.options.build_args, platform_args)
        stage: _Stage | None = None
        for spec in stages:
            stage = self.from_step(spec, meta)
            for ins in spec.instructions:
                self.step(stage, ins)
            self.stages[str(spec.index)] = stage
            if spec.name:
                self.stages[spec.name] = stage
        assert stage is not None
        image = stage.image
        if refs:
            self.store.name_images([(self.store_entry(image), refs)])
        self.say(f"Successfully built {image.short_id}  "
                 f"({time.monotonic() - self.started:.2f}s)")
        for ref in refs:
            self.say(f"Successfully tagged {ref.familiar}")
        return image

    def preflight(self, parsed: df.Dockerfile, stages: list[df.Stage]) -> None:
        """Before anything runs: every COPY/ADD source from the context is there, every
        ``--chmod`` parses, every ``--from`` names something. Errors name the line. Words
        are expanded with the ENV each stage inherits (:func:`buildconfig.preflight_steps`);
        where it is not known yet (a base image to pull), a word with a ``$`` waits."""
        from minidocker.buildfiles import CopyError, parse_chmod

        names = {s.name for s in stages if s.name} | {str(s.index) for s in stages}
        for spec, ins, done, known in buildconfig.preflight_steps(
                parsed, stages, self.options.build_args, self.local_config):
            if not isinstance(done, df.Copy | df.Add):
                continue
            assert isinstance(ins, df.Copy | df.Add)
            try:
                parse_chmod(done.chmod if known or "$" not in (ins.chmod or "") else None)
            except CopyError as exc:
                raise df.error(ins.line, str(exc), ins.NAME) from None
            if not known and any("$" in s for s in ins.sources):
                continue
            if isinstance(done, df.Copy) and done.from_stage:
                if done.from_stage in names and done.from_stage in (spec.name,
                                                                     str(spec.index)):
                    raise df.error(ins.line, f"circular dependency detected on stage: "
                                             f"{done.from_stage}", ins.NAME)
                continue
            self.check_sources(done)

    def local_config(self, base: str) -> dict[str, Any] | None:
        """The config of the image ``base`` if it is here (nothing made, not even busybox)."""
        try:
            return dict(self.store.lookup(base).config.get("config") or {})
        except ImageNotFound:
            return None  # pulled at its FROM

    def check_sources(self, ins: df.Copy | df.Add) -> None:
        from minidocker.buildcontext import BuildContextError, is_url

        local = [s for s in ins.sources if not (isinstance(ins, df.Add) and is_url(s))]
        if local and self.context is None:
            raise df.error(ins.line, f"{ins.NAME} failed: no build context (the Dockerfile "
                                     "came from STDIN)", ins.NAME)
        for src in local:
            try:
                assert self.context is not None
                self.context.resolve(src, ins.NAME)
            except BuildContextError as exc:
                raise df.error(ins.line, str(exc), ins.NAME) from None

    # -- FROM -----------------------------------------------------------------------------------

    def from_step(self, spec: df.Stage, meta: dict[str, str]) -> _Stage:
        self.begin(f"FROM {spec.base}" + (f" AS {spec.name}" if spec.name else ""))
        t0 = time.monotonic()
        image = self.base_image(spec.base, spec.platform, spec.line)
        env = df.StageEnv(list(image.config.get("config", {}).get("Env") or []), meta,
                          self.options.build_args, self.escape)
        stage = _Stage(spec.index, spec.name, image, env)
        triggers = list(stage.config.get("OnBuild") or [])
        if triggers:
            self.say(f"# Executing {len(triggers)} build trigger"
                     + ("s" if len(triggers) > 1 else ""))
            for expression in triggers:
                self.run_step(stage, dockerfile.parse_one(expression, self.escape), t0,
                              trigger=True)
            config = stage.config
            config.pop("OnBuild", None)  # a child's child does not run them again
            stage.image = self.new_image(stage, config, None, {
                "created_by": f"{buildconfig.NOP} ONBUILD triggers ran", "empty_layer": True})
        self.say(f" ---> {stage.image.short_id}")
        return stage

    def base_image(self, base: str, platform: str | None = None, line: int = 0) -> Image:
        if base.lower() == "scratch":
            return self.scratch()
        stage = self.stages.get(base.lower())
        if stage is not None:
            return stage.image
        try:
            image = self.store.resolve(base)  # by name: the index alone, no image loaded
        except ImageNotFound as missing:  # pulled, as run pulls (FROM --platform's entry)
            buildflags.pull(self.layout.root, base, platform, missing, self.warn)
            image = self.store.resolve(base)
        if platform:
            buildflags.check_image_platform(image.config, platform, base, line)
        return image

    def scratch(self) -> Image:
        from minidocker.ocispec import host_architecture

        # No time in it: the same config, the same ID, so the steps after it can hit the cache.
        config = {"architecture": host_architecture(), "os": "linux", "config": {},
                  "history": []}
        return self.store.write_image(config, [], None)

    # -- one step -------------------------------------------------------------------------------

    def begin(self, text: str) -> None:
        self.step_no += 1
        self.say(f"Step {self.step_no}/{self.steps} : {text}")

    def step(self, stage: _Stage, ins: df.Instruction) -> None:
        text = ins.original.strip() if ins.original else ins.NAME
        self.begin(text)
        try:
            self.run_step(stage, ins, time.monotonic())
        except MinidockerError:
            if self.options.quiet:  # the progress lines were not shown: say which step
                self.warn(f"Step {self.step_no}/{self.steps} : {text} (Dockerfile:{ins.line})")
            raise

    def run_step(self, stage: _Stage, ins: df.Instruction, t0: float,
                 trigger: bool = False) -> None:
        if isinstance(ins, df.From | df.Onbuild) and trigger:
            raise df.error(ins.line, f"{ins.NAME} isn't allowed as an ONBUILD trigger", ins.NAME)
        done = stage.env.step(ins)
        buildflags.check(done)  # as expanded; an ONBUILD trigger is first seen here
        if isinstance(done, df.Copy | df.Add):
            sources, extra = self.copy_sources(stage, done)
        else:
            sources, extra = [], self.run_args(stage) if isinstance(done, df.Run) else None
            if isinstance(done, df.Run) and done.mounts:  # what the mounts show, by content
                from minidocker.buildmounts import digests

                extra = [extra, digests(done.mounts, self.context,
                                        lambda name: self.source_image(name).id)]
        # An ARG's value is not part of its own step (it is part of the RUNs that see it).
        key = buildconfig.cache_key(stage.image.id, ins if isinstance(ins, df.Arg) else done,
                                    extra)
        assert self.cache is not None
        hit = None if self.options.no_cache else self.cache.get(key)
        if hit is not None:
            self.say(" ---> Using cache")
            stage.image = hit
        else:
            stage.image = self.execute(stage, done, sources, extra)
            self.cache.put(key, stage.image)
        if isinstance(done, df.Cmd) and not isinstance(done, df.Entrypoint):
            stage.cmd_set = True
        if not trigger:
            self.say(f" ---> {stage.image.short_id}  {time.monotonic() - t0:.2f}s")

    def execute(self, stage: _Stage, ins: df.Instruction, sources: list[Source],
                extra: Any) -> Image:
        config = stage.config
        if isinstance(ins, df.Run):
            return self.run(stage, ins, self.run_args(stage))
        if isinstance(ins, df.Copy | df.Add):
            return self.copy(stage, ins, sources, extra)
        if isinstance(ins, df.Workdir):
            config["WorkingDir"] = buildconfig.workdir(config, ins.path)
            layer = self.workdir_layer(stage, config["WorkingDir"])
            entry: dict[str, Any] = {"created_by": buildconfig.created_by(ins, config)}
            if layer is None:
                entry["empty_layer"] = True
            return self.new_image(stage, config, layer, entry)
        if isinstance(ins, df.Maintainer):
            image = self.new_image(stage, buildconfig.apply(ins, config, cmd_set=stage.cmd_set),
                                   None, {"created_by": buildconfig.created_by(ins, config),
                                          "empty_layer": True}, author=ins.name)
            return image
        new = buildconfig.apply(ins, config, cmd_set=stage.cmd_set)
        return self.new_image(stage, new, None, {
            "created_by": buildconfig.created_by(ins, config), "empty_layer": True})

    def new_image(self, stage: _Stage, run_config: dict[str, Any], layer: Layer | None,
                  entry: dict[str, Any], author: str | None = None) -> Image:
        """The image after a step: the stage's image, its ``config`` replaced, one more
        history entry and maybe one more layer. Untagged: an intermediate image."""
        from minidocker.store import timestamp

        base = stage.image
        created = timestamp()
        config = {k: v for k, v in base.config.items() if k not in ("rootfs", "history")}
        config.update(created=created, config={k: v for k, v in run_config.items()
                                               if v is not None},
                      history=[*base.history, {"created": created, **entry}])
        if author:
            config["author"] = author
        return self.store.write_image(config, [*base.layers(), *([layer] if layer else [])],
                                      None)

    def store_entry(self, image: Image) -> dict[str, Any]:
        for entry in self.store._read_index()["manifests"]:
            if entry["digest"] == image.manifest_digest:
                return {k: v for k, v in entry.items() if k != "annotations"}
        raise ImageNotFound(f"image {image.id} was removed while it was being built")

    # -- RUN ------------------------------------------------------------------------------------

    def run_args(self, stage: _Stage) -> dict[str, str]:
        """The build args a RUN sees as environment (not ENV's: those are in the image)."""
        env = stage.env
        return {k: v for k, v in env.env.items() if k not in env.from_env}

    def run(self, stage: _Stage, ins: df.Run, args: dict[str, str]) -> Image:
        from minidocker import commit, container, engine, state
        from minidocker.config import ContainerConfig, NetworkConfig, Process

        config = stage.config
        argv = buildconfig.run_argv(ins, config)
        asked = getattr(ins, "network", None)  # RUN --network=none|host|default
        network = asked if asked not in (None, "default") else self.options.network
        cid = state.new_id()
        self.say(f" ---> Running in {cid[:12]}")
        with self.output() as stdio, self.run_mounts(stage, ins) as taken:
            cfg = ContainerConfig(image=stage.image.id,
                                  process=Process(args=argv, entrypoint="",
                                                  env=[f"{k}={v}" for k, v in args.items()]),
                                  network=NetworkConfig(name=network), mounts=[
                                      *taken.mounts, *buildmounts.script_mounts(
                                          buildconfig.heredoc_script(ins), buildconfig.PIPES,
                                          self.tmpdir)])
            try:
                code = engine.run(cfg, self.layout, cid=cid, stdio=stdio, say=self.warn)
                if code != 0:
                    raise BuildError(f"The command '{' '.join(argv)}' returned a non-zero "
                                     f"code: {code}")
                files = commit.Files(cid, self.layout.container(cid), stage.image.id,
                                     self.store)
                taken.remove_stubs(files.top)  # mount points are not the step's changes
                layer = commit.changes_layer(files, self.store, stage.image)
            except BaseException:
                self.show_captured(stdio)
                raise
            finally:
                container.teardown(self.layout, cid, volumes=True)  # VOLUME paths: anonymous
                self.say(f"Removing intermediate container {cid[:12]}")
        return self.new_image(stage, config, layer,
                              {"created_by": buildconfig.created_by(ins, config)})

    def run_mounts(self, stage: _Stage, ins: df.Run) -> Any:
        """``RUN --mount``'s mounts, taken for the step (:mod:`minidocker.buildmounts`)."""
        from minidocker import buildmounts

        self.store._ensure_layout()
        return buildmounts.prepared(
            list(ins.mounts or []), workdir=stage.config.get("WorkingDir") or "/",
            root=self.layout.root, tmp_dir=str(self.store.tmp_dir),
            image=self.stack(stage.image), context=self.context,
            stack_of=lambda name: self.stack(self.source_image(name)))

    def source_image(self, where: str) -> Image:
        """A stage by name or index, else an image (``--from``, ``--mount from=``)."""
        stage = self.stages.get(where.lower())
        return stage.image if stage is not None else self.base_image(where)

    def tmpdir(self) -> str:
        """The build's own temp dir in the store's ``tmp/``, removed by :meth:`close`."""
        if not hasattr(self, "_tmp"):
            import tempfile

            self.store._ensure_layout()
            self._tmp = tempfile.TemporaryDirectory(prefix=f"build-{os.getpid()}-",
                                                    dir=self.store.tmp_dir)
        return self._tmp.name

    @contextlib.contextmanager
    def output(self) -> Any:
        """The RUN's stdin (/dev/null), stdout and stderr: ours, or with ``-q`` a file that
        is shown only if the step fails."""
        devnull = os.open(os.devnull, os.O_RDONLY)
        try:
            if not self.options.quiet:
                self.out.flush()
                yield (devnull, _fd(self.out, 1), _fd(self.err, 2))
                return
            import tempfile

            with tempfile.TemporaryFile() as log:
                yield (devnull, log.fileno(), log.fileno())
        finally:
            os.close(devnull)

    def show_captured(self, stdio: tuple[int, int, int]) -> None:
        if not self.options.quiet:
            return
        os.lseek(stdio[1], 0, os.SEEK_SET)
        with os.fdopen(os.dup(stdio[1]), "rb") as f:
            self.err.write(f.read().decode(errors="replace"))

    # -- WORKDIR --------------------------------------------------------------------------------

    def stack(self, image: Image) -> Stack:
        from minidocker.layers import Stack

        return Stack(image.layer_dirs(), whiteouts=self.store.whiteouts)

    def workdir_layer(self, stage: _Stage, path: str) -> Layer | None:
        """A layer that makes ``path``, if the image lacks it (Docker creates WORKDIR)."""
        from minidocker.buildfiles import resolve_in

        stack = self.stack(stage.image)
        rel = resolve_in(stack, path.lstrip("/"))
        if not rel or stack.lookup(rel) is not None:
            return None
        return self.layer(stage, lambda out: buildfiles.mkdirs(out, stack, rel), f"WORKDIR {path}")

    def layer(self, stage: _Stage, write: Callable[[Any], object], label: str) -> Layer:
        """A layer written by ``write(out)`` into the store's ``tmp/``, then published."""
        import tempfile
        from pathlib import Path

        with self.store.writing():
            self.store._ensure_layout()
            fd, name = tempfile.mkstemp(prefix=f"build-{os.getpid()}-", suffix=".tar",
                                        dir=self.store.tmp_dir)
            staged = Path(name)
            try:
                with open(fd, "wb") as out:
                    write(out)
            except BaseException:
                staged.unlink(missing_ok=True)
                raise
            chains = stage.image.chain_ids()
            return self.store.add_staged_layer(staged, parent=chains[-1] if chains else None,
                                               label=label)

    # -- COPY and ADD ---------------------------------------------------------------------------

    def copy_sources(self, stage: _Stage, ins: df.Copy | df.Add) -> tuple[list[Source], Any]:
        """What ``ins`` copies, and its content hash (part of the cache key)."""
        from minidocker import buildfiles
        from minidocker.buildcontext import content_hash

        sources: list[Source] = []
        if isinstance(ins, df.Copy) and ins.from_stage:
            where = ins.from_stage
            sources = buildfiles.stack_sources(self.stack(self.source_image(where)),
                                               ins.sources, ins.NAME, f"stage or image {where}")
        elif isinstance(ins, df.Copy) and ins.parents:
            self.check_sources(ins)
            assert self.context is not None
            sources = buildflags.parents_source(self.context, ins.sources, ins.exclude,
                                                ins.NAME)
        else:
            from minidocker.buildcontext import is_url

            local = [s for s in ins.sources if not (isinstance(ins, df.Add) and is_url(s))]
            if local:
                self.check_sources(ins)
                assert self.context is not None
                sources = buildfiles.context_sources(self.context, local, ins.NAME)
            if isinstance(ins, df.Add):
                sources += [self.fetch(ins, s) for s in ins.sources if is_url(s)]
        sources = buildflags.excluded(sources, ins.exclude or [])
        sources += [buildfiles.Source(d.name, [], False, None, d.content.encode())
                    for d in ins.heredocs]
        digests = [content_hash(s.entries) if s.data is None else
                   "sha256:" + __import__("hashlib").sha256(s.data).hexdigest()
                   for s in sources]
        return sources, digests

    def fetch(self, ins: df.Add, url: str) -> Source:
        """ADD of a URL: downloaded (checked against ``--checksum``) to a build temp dir."""
        import tempfile

        from minidocker.buildcontext import fetch_url
        from minidocker.buildfiles import Source

        where = tempfile.mkdtemp(dir=self.tmpdir())
        path = fetch_url(url, where, ins.checksum)
        return Source(os.path.basename(path), [("", path, os.lstat(path))], False, (0, 0))

    def copy(self, stage: _Stage, ins: df.Copy | df.Add, sources: list[Source],
             digests: list[str]) -> Image:
        import tempfile

        from minidocker import buildfiles
        from minidocker.buildcontext import archive_kind, unpack_archive

        config = stage.config
        stack = self.stack(stage.image)
        owner = buildfiles.parse_chown(ins.chown, stack)
        mode = buildfiles.parse_chmod(ins.chmod)
        with contextlib.ExitStack() as cleanup:
            if isinstance(ins, df.Add):
                unpacked = []
                for source in sources:
                    kind = None if source.is_dir or source.data is not None or \
                        source.owner is None or not source.entries else \
                        archive_kind(source.entries[0][1])
                    # --unpack: a local archive unless false, a downloaded one if true
                    if kind is None or ins.unpack is False or \
                            (self.is_fetched(source) and not ins.unpack):
                        unpacked.append(source)
                        continue
                    self.store._ensure_layout()
                    tmp = cleanup.enter_context(tempfile.TemporaryDirectory(
                        prefix=f"build-{os.getpid()}-", dir=self.store.tmp_dir))
                    unpack_archive(source.entries[0][1], tmp, kind)
                    unpacked.append(buildfiles.tree_source(tmp, source.name))
                sources = unpacked
            mtime = int(time.time())
            layer = self.layer(stage, lambda out: buildfiles.write_layer(
                out, stack, sources, ins.dest, config.get("WorkingDir") or "/", owner=owner,
                mode=mode, mtime=mtime, what=ins.NAME), f"{ins.NAME} to {ins.dest}")
        detail = ",".join(d.removeprefix("sha256:")[:12] for d in digests)
        return self.new_image(stage, config, layer,
                              {"created_by": buildconfig.created_by(ins, config,
                                                                    f"multi:{detail}")})

    def is_fetched(self, source: Source) -> bool:
        tmp = getattr(self, "_tmp", None)
        return tmp is not None and bool(source.entries) and \
            source.entries[0][1].startswith(tmp.name + os.sep)

    def close(self) -> None:
        tmp = getattr(self, "_tmp", None)
        if tmp is not None:
            tmp.cleanup()


def _fd(stream: TextIO, default: int) -> int:
    """The fd under ``stream``; a stream with none (a test's StringIO): ours."""
    try:
        return stream.fileno()
    except (OSError, ValueError, AttributeError):
        return default


def build(text: str, options: BuildOptions, layout: Layout | None = None,
          out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> Image:
    """Build the Dockerfile ``text``; the image (tagged with ``options.tags``)."""
    from minidocker.state import Layout

    builder = Builder(layout or Layout(), options, out, err)
    try:
        return builder.build(text)
    finally:
        builder.close()
