"""The builder's check before anything runs (:meth:`minidocker.builder.Builder.preflight`),
against a store in a temp dir: no root, no container.

COPY sources are expanded with the ENV their stage inherits, from a base stage or a local base
image (its ONBUILD triggers included); a base image that is not here (to be pulled) postpones
only the sources with a ``$``. Every ``--chmod`` is parsed, naming the line.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from minidocker import buildconfig
from minidocker import dockerfile as df
from minidocker.builder import Builder, BuildOptions
from minidocker.errors import DockerfileError
from minidocker.state import Layout
from minidocker.store import ImageStore

pytestmark = pytest.mark.nb07


@pytest.fixture
def ctx(tmp_path: Path) -> Path:
    context = tmp_path / "ctx"
    (context / "appdir").mkdir(parents=True)
    (context / "appdir" / "x").write_text("x\n")
    return context


def preflight(root: Path, context: Path | None, dockerfile: str,
              build_args: dict[str, str] | None = None) -> None:
    """What :meth:`Builder.build` checks before its first step, alone."""
    from minidocker.buildcontext import Context

    options = BuildOptions(context=str(context) if context else None, build_args=build_args)
    builder = Builder(Layout(str(root)), options, out=io.StringIO(), err=io.StringIO())
    parsed = df.parse(dockerfile)
    stages = buildconfig.needed_stages(parsed, df.resolve_stages(parsed, options.build_args),
                                       None)
    builder.context = Context(str(context)) if context else None
    builder.preflight(parsed, stages)


def local_image(root: Path, ref: str, **config: object) -> None:
    ImageStore(str(root)).write_image({"architecture": "amd64", "os": "linux",
                                       "config": config, "history": []}, [], ref)


def test_env_of_a_base_stage(tmp_path: Path, ctx: Path) -> None:
    """The issue's case: docker build accepts it; the check refused it ("stat /x")."""
    preflight(tmp_path, ctx, "FROM scratch AS base\nENV APPDIR=appdir\nFROM base\n"
                             "COPY $APPDIR/x /y\n")
    # two stages down, by index too, and an ENV that uses the inherited one
    preflight(tmp_path, ctx, "FROM scratch\nENV TOP=app\nFROM 0 AS mid\nENV APPDIR=${TOP}dir\n"
                             "FROM mid\nCOPY ${APPDIR}/x /y\n")
    with pytest.raises(DockerfileError, match=r"^Dockerfile:4: COPY failed: .*appdir/nothere"):
        preflight(tmp_path, ctx, "FROM scratch AS base\nENV APPDIR=appdir\nFROM base\n"
                                 "COPY $APPDIR/nothere /y\n")


def test_env_of_a_local_base_image(tmp_path: Path, ctx: Path) -> None:
    local_image(tmp_path, "envbase:1", Env=["PATH=/bin", "APPDIR=appdir"])
    preflight(tmp_path, ctx, "FROM envbase:1\nCOPY $APPDIR/x /y\n")
    # ENV wins over an ARG of the same name, and the image's ENV is an ENV
    preflight(tmp_path, ctx, "FROM envbase:1\nARG APPDIR=wrong\nCOPY $APPDIR/x /y\n",
              {"APPDIR": "wrong"})
    with pytest.raises(DockerfileError, match="^Dockerfile:2: COPY failed"):
        preflight(tmp_path, ctx, "FROM envbase:1\nCOPY $APPDIR/missing /y\n")


def test_onbuild_triggers_of_the_base(tmp_path: Path, ctx: Path) -> None:
    """A base's triggers run first: their ENV counts, their COPY sources are checked."""
    local_image(tmp_path, "trigger:1", OnBuild=["ENV APPDIR=appdir"])
    preflight(tmp_path, ctx, "FROM trigger:1\nCOPY $APPDIR/x /y\n")
    preflight(tmp_path, ctx, "FROM scratch AS base\nONBUILD ENV APPDIR=appdir\n"
                             "FROM base\nCOPY $APPDIR/x /y\n")
    local_image(tmp_path, "trigger:2", OnBuild=["COPY missing /m"])
    with pytest.raises(DockerfileError, match="missing"):
        preflight(tmp_path, ctx, "FROM trigger:2\n")
    # a stage's own ONBUILDs do not run in that stage
    preflight(tmp_path, ctx, "FROM scratch\nONBUILD COPY missing /m\n")


def test_a_base_image_to_pull_postpones_only_sources_with_variables(tmp_path: Path,
                                                                     ctx: Path) -> None:
    dockerfile = "FROM notpulledyet:1 AS base\nFROM base\nCOPY $APPDIR/x /y\n"
    preflight(tmp_path, ctx, dockerfile)  # checked at the step, with the pulled image's Env
    with pytest.raises(DockerfileError, match="^Dockerfile:3: COPY failed"):
        preflight(tmp_path, ctx, "FROM notpulledyet:1\nCOPY appdir/x /y\nCOPY plain /p\n")
    # nothing was stored: not even the built-in busybox, made only when a build needs it
    assert ImageStore(str(tmp_path)).list_images() == []
    preflight(tmp_path, ctx, "FROM busybox\nCOPY $ANY/x /y\n")
    assert ImageStore(str(tmp_path)).list_images() == []


def test_expansion_errors_are_raised_when_the_env_is_known(tmp_path: Path, ctx: Path) -> None:
    with pytest.raises(DockerfileError, match="^Dockerfile:3: .*APPDIR: needed"):
        preflight(tmp_path, ctx, "FROM scratch\nRUN true\nCOPY ${APPDIR:?needed} /y\n")
    preflight(tmp_path, ctx, "FROM elsewhere:1\nCOPY ${APPDIR:?needed} /y\n")  # maybe set


@pytest.mark.parametrize("chmod", ["u+q", "9", "0o755", "10000", "a+rx,"])
def test_every_chmod_is_checked(tmp_path: Path, ctx: Path, chmod: str) -> None:
    with pytest.raises(DockerfileError, match=f"^Dockerfile:3: COPY: invalid chmod parameter: "
                                              f"'{chmod.replace('+', '[+]')}'"):
        preflight(tmp_path, ctx, f"FROM scratch\nRUN true\nCOPY --chmod={chmod} appdir/x /y\n")
    with pytest.raises(DockerfileError, match="^Dockerfile:2: ADD: invalid chmod"):
        preflight(tmp_path, ctx, f"FROM notpulledyet:1\nADD --chmod={chmod} appdir/x /y\n")


def test_good_and_variable_chmods(tmp_path: Path, ctx: Path) -> None:
    for chmod in ("0755", "755", "u+x", "go-w", "a=rX", "u=rwx,go=u-w", "$MODE"):
        preflight(tmp_path, ctx, f"FROM scratch\nARG MODE=g+w\n"
                                 f"COPY --chmod={chmod} appdir/x /y\n")
    with pytest.raises(DockerfileError, match="^Dockerfile:3: COPY: invalid chmod parameter: 'gg'"):
        preflight(tmp_path, ctx, "FROM scratch\nARG MODE=gg\nCOPY --chmod=$MODE appdir/x /y\n")
    preflight(tmp_path, ctx, "FROM notpulledyet:1\nCOPY --chmod=$MODE appdir/x /y\n")  # later
    # a heredoc is checked too: it has no source, only the chmod
    with pytest.raises(DockerfileError, match="^Dockerfile:2: COPY: invalid chmod"):
        preflight(tmp_path, None, "FROM scratch\nCOPY --chmod=x+y <<EOF /f\nhi\nEOF\n")
