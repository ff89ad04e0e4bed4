"""BuildKit's flags on the builder's side, without root: ``RUN --mount`` read as BuildKit reads
it, the refusals (one line, naming the Dockerfile line), the platform ARGs, ``COPY --exclude``
and ``--parents`` on a context in ``tmp_path``, the cache key of a RUN with mounts, and the
mount points taken back out of a step's files.

Expectations come from the Dockerfile reference (RUN --mount's option tables, COPY --parents'
example with its ``./`` pivot), not from the code.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from minidocker import buildflags, buildmounts
from minidocker import dockerfile as df
from minidocker.buildcontext import Context
from minidocker.buildfiles import context_sources
from minidocker.errors import DockerfileError
from minidocker.layers import Stack
from minidocker.registry.platforms import host_platform

pytestmark = pytest.mark.nb07


# -- RUN --mount, as written ---------------------------------------------------------------------

def test_bind_is_the_default_type_and_read_only() -> None:
    m = buildmounts.parse_mount("target=/src,source=app")
    assert (m.type, m.target, m.source, m.readonly, m.from_stage) == \
        ("bind", "/src", "app", True, "")
    rw = buildmounts.parse_mount("type=bind,dst=/src,src=app,from=builder,rw")
    assert (rw.target, rw.source, rw.from_stage, rw.readonly) == ("/src", "app", "builder",
                                                                  False)
    assert not buildmounts.parse_mount("target=/x,readwrite=true").readonly


def test_cache_options_and_defaults() -> None:
    m = buildmounts.parse_mount("type=cache,target=/root/.cache/")
    assert (m.id, m.sharing, m.mode, m.uid, m.gid, m.readonly) == \
        ("/root/.cache", "shared", 0o755, 0, 0, False)  # id: the target, cleaned
    m = buildmounts.parse_mount("type=cache,id=go,target=/go,sharing=locked,mode=0700,"
                                "uid=1000,gid=100,ro,from=base,source=/cache")
    assert (m.id, m.sharing, m.mode, m.uid, m.gid, m.readonly, m.from_stage, m.source) == \
        ("go", "locked", 0o700, 1000, 100, True, "base", "/cache")


@pytest.mark.parametrize("size, expected", [("1024", 1024), ("64m", 64 << 20),
                                            ("1g", 1 << 30), ("512k", 512 << 10)])
def test_tmpfs_size(size: str, expected: int) -> None:
    m = buildmounts.parse_mount(f"type=tmpfs,target=/scratch,size={size}")
    assert (m.type, m.target, m.size) == ("tmpfs", "/scratch", expected)


@pytest.mark.parametrize("spec, message", [
    ("type=secret,id=npmrc", "build secrets are not supported"),
    ("type=ssh", "SSH agent forwarding is not supported"),
    ("type=volume,target=/x", "unsupported mount type 'volume'"),
    ("type=cache", "a target is required"),
    ("type=cache,target=/x,sharing=everyone", "unsupported sharing value 'everyone'"),
    ("type=bind,target=/x,size=1m", "unexpected key 'size'"),
    ("type=tmpfs,target=/x,from=base", "unexpected key 'from'"),
    ("type=cache,target=/x,mode=rwx", "invalid mode 'rwx'"),
    ("type=cache,target=/x,uid=root", "invalid uid 'root'"),
    ("target=/x,rw=maybe", "invalid value for rw"),
    ("target=/x,source", "'source' needs a value"),
])
def test_bad_mounts_are_refused(spec: str, message: str) -> None:
    with pytest.raises(buildmounts.MountError, match=message):
        buildmounts.parse_mount(spec)


def test_a_relative_target_is_under_workdir() -> None:
    m = buildmounts.parse_mount("target=cache")
    assert buildmounts.target_in(m, "/app") == "/app/cache"
    assert buildmounts.target_in(buildmounts.parse_mount("target=/abs"), "/app") == "/abs"


# -- refusals: one line, naming the Dockerfile's line ----------------------------------------------

@pytest.mark.parametrize("line, message", [
    ("RUN --mount=type=secret,id=x cat /run/secrets/x", "build secrets are not supported"),
    ("RUN --security=insecure true", "security.insecure entitlement"),
    ("RUN --security=root true", "unsupported security mode 'root'"),
    ("RUN --device=/dev/fuse true", "--device is not supported"),
    ("RUN --mount=target=/a --mount=type=tmpfs,target=/a true", "duplicate mount target /a"),
    ("ADD --keep-git-dir https://example.com/r.git /r", "--keep-git-dir"),
    ("ADD git@github.com:moby/buildkit.git /r", "does not clone git repositories"),
    ("ADD https://github.com/moby/buildkit.git#v0.12 /r", "does not clone git"),
    ("COPY --from=base --parents a/b /c/", "--parents with --from"),
])
def test_refused_before_anything_runs(line: str, message: str) -> None:
    parsed = df.parse(f"FROM busybox\n\n{line}\n")
    with pytest.raises(DockerfileError, match=message) as caught:
        buildflags.preflight(parsed.stages, None)
    assert str(caught.value).startswith("Dockerfile:3: ")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("line", [
    "RUN --security=sandbox true", "RUN --network=none true", "COPY --link a /a",
    "ADD --unpack=false a.tar /x/", "ADD https://example.com/app.tar.gz /x/",
    "RUN --mount=type=cache,target=/c --mount=type=tmpfs,target=/t true",
    "RUN --mount=type=$KIND,target=/c true",  # checked once expanded, when it runs
])
def test_accepted(line: str) -> None:
    buildflags.preflight(df.parse(f"FROM busybox\n{line}\n").stages, None)


def test_an_expanded_mount_is_checked_when_it_runs() -> None:
    arg, run = df.parse("FROM busybox\nARG KIND=secret\nRUN --mount=type=$KIND,target=/c "
                        "true\n").stages[0].instructions
    env = df.StageEnv([], {}, {})
    env.step(arg)
    with pytest.raises(DockerfileError, match="Dockerfile:3: RUN: --mount=type=secret"):
        buildflags.check(env.step(run))


# -- FROM --platform and the platform ARGs -------------------------------------------------------

def test_platform_args_are_the_hosts() -> None:
    args = buildflags.platform_args()
    host = host_platform()
    assert set(args) == set(buildflags.PLATFORM_ARGS)
    assert args["BUILDPLATFORM"] == args["TARGETPLATFORM"] == str(host)
    assert args["TARGETARCH"] == host.architecture and args["TARGETOS"] == "linux"
    assert args["TARGETVARIANT"] == (host.variant or "")


def test_platform_args_expand_in_from_and_after_arg_in_a_stage() -> None:
    text = ("FROM --platform=$BUILDPLATFORM busybox AS build\nARG TARGETARCH\n"
            "RUN echo $TARGETARCH\n")
    parsed = df.parse(text)
    stages = df.resolve_stages(parsed, {}, buildflags.platform_args())
    assert stages[0].platform == str(host_platform())
    buildflags.preflight(stages, None)  # the host's platform: RUN is fine
    env = df.StageEnv([], df.meta_args(parsed, {}, buildflags.platform_args()), {})
    env.step(stages[0].instructions[0])
    assert env.env["TARGETARCH"] == host_platform().architecture
    # not declared in the stage: not seen (BuildKit's rule for global-scope ARGs)
    assert "TARGETOS" not in env.env


def test_a_run_on_a_foreign_platform_is_refused_naming_the_run() -> None:
    foreign = "linux/s390x" if host_platform().architecture != "s390x" else "linux/amd64"
    text = (f"FROM --platform={foreign} busybox AS a\nCOPY x /x\nFROM a\n\nRUN true\n")
    stages = df.resolve_stages(df.parse(text), {}, buildflags.platform_args())
    with pytest.raises(DockerfileError, match=f"Dockerfile:5: RUN: .*{foreign}.*no emulator"):
        buildflags.preflight(stages, None)  # the second stage inherits its base's platform
    # no RUN: nothing to emulate, a foreign stage can still be copied from
    buildflags.preflight(df.resolve_stages(df.parse(f"FROM --platform={foreign} b\n"
                                                    "COPY x /x\n"), {}), None)


def test_a_bad_platform_is_refused() -> None:
    with pytest.raises(DockerfileError, match="Dockerfile:1: FROM: invalid platform"):
        buildflags.preflight(df.parse("FROM --platform=linux//x busybox\n").stages, None)


def test_a_local_image_of_another_platform_is_refused() -> None:
    config = {"os": "linux", "architecture": "arm64"}
    buildflags.check_image_platform(config, "linux/arm64", "base", 1)
    buildflags.check_image_platform(config, "linux/arm64/v8", "base", 1)  # arm64 is v8
    with pytest.raises(DockerfileError, match="Dockerfile:4: FROM: image base is for "
                                              "linux/arm64, not linux/amd64"):
        buildflags.check_image_platform(config, "linux/amd64", "base", 4)


# -- COPY --exclude and --parents --------------------------------------------------------------

@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    for rel in ("x/a.txt", "x/y/b.txt", "x/y/c.log", "y/a.txt", "homework.txt", "home.md",
                "app.log", "src/keep.py", "src/drop.log", "src/deep/also.log"):
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rel)
    return Context(str(tmp_path))


def names(sources: list) -> list[str]:
    return sorted(e[0] for s in sources for e in s.entries[1:]) if sources and \
        sources[0].is_dir else sorted(s.name for s in sources)


def test_exclude_with_the_dockerignore_rules(ctx: Context) -> None:
    src = context_sources(ctx, ["src"], "COPY")
    assert names(buildflags.excluded(src, ["*.log"])) == ["deep", "deep/also.log", "keep.py"]
    assert names(buildflags.excluded(src, ["**/*.log"])) == ["deep", "keep.py"]
    assert names(buildflags.excluded(src, ["deep"])) == ["drop.log", "keep.py"]
    assert names(buildflags.excluded(src, ["*.log", "!drop.log"])) == \
        ["deep", "deep/also.log", "drop.log", "keep.py"]
    # the reference's example: COPY --exclude=*.txt hom* /mydir/
    globbed = context_sources(ctx, ["hom*"], "COPY")
    assert names(buildflags.excluded(globbed, ["*.txt"])) == ["home.md"]


@pytest.mark.parametrize("src, whole, dropped", [
    ("x/a.txt", "x/a.txt", 0), ("./x/a.txt", "x/a.txt", 0), ("x/./y/*.txt", "x/y/*.txt", 1),
    ("./a/b/./c/d", "a/b/c/d", 2), ("a", "a", 0),
])
def test_pivot(src: str, whole: str, dropped: int) -> None:
    assert buildflags.pivot(src) == (whole, dropped)


def layer_paths(sources: list) -> list[str]:
    [source] = sources
    return [e[0] for e in source.entries[1:]]


def test_parents_as_the_reference_shows_them(ctx: Context) -> None:
    # COPY --parents ./x/a.txt ./y/a.txt /no_pivot/  ->  /no_pivot/x/a.txt, /no_pivot/y/a.txt
    assert layer_paths(buildflags.parents_source(ctx, ["./x/a.txt", "./y/a.txt"], [],
                                                 "COPY")) == ["x", "x/a.txt", "y", "y/a.txt"]
    # COPY --parents ./x/./y/*.txt /pivot/  ->  /pivot/y/b.txt
    assert layer_paths(buildflags.parents_source(ctx, ["./x/./y/*.txt"], [], "COPY")) == \
        ["y", "y/b.txt"]
    # a directory keeps its own name and parents; --exclude applies inside it
    assert layer_paths(buildflags.parents_source(ctx, ["x/y"], ["*.log"], "COPY")) == \
        ["x", "x/y", "x/y/b.txt"]
    kept = buildflags.parents_source(ctx, ["x/y/b.txt"], [], "COPY")[0].entries
    assert kept[1][1] == os.path.join(ctx.root, "x")  # a kept directory is the context's


# -- the cache key of a RUN with mounts ---------------------------------------------------------

def test_cache_key_follows_bound_content_not_mtime(ctx: Context) -> None:
    def key(texts: list[str]) -> list:
        return buildmounts.digests(texts, ctx, lambda name: f"id-of-{name}")

    bind = ["type=bind,source=x,target=/x"]
    before = key(bind)
    os.utime(os.path.join(ctx.root, "x/a.txt"), (1, 1))
    assert key(bind) == before  # touched: the same content
    Path(ctx.root, "x/a.txt").write_text("changed")
    assert key(bind) != before
    assert key(["type=bind,source=x,target=/y"]) != key(bind)  # the spec is in the key
    cache = key(["type=cache,target=/c"])
    Path(ctx.root, "x/a.txt").write_text("changed again")
    assert key(["type=cache,target=/c"]) == cache  # a cache's contents are never in it
    assert key(["type=bind,from=builder,target=/b"])[0]["content"] == "id-of-builder"


# -- mount points are not the step's changes -----------------------------------------------------

def test_stubs_are_taken_out_unless_written_to(tmp_path: Path) -> None:
    image = tmp_path / "layer"
    (image / "usr").mkdir(parents=True)
    stack = Stack([str(image)])
    assert buildmounts._first_missing(stack, "usr/cache/go") == "usr/cache"
    assert buildmounts._first_missing(stack, "usr") is None
    top = tmp_path / "upper"
    (top / "usr/cache/go").mkdir(parents=True)
    (top / "etc").mkdir()
    (top / "etc/conf").touch()  # a file bind's mount point
    (top / "run/made").mkdir(parents=True)
    (top / "run/made/by-the-step").write_text("kept")
    taken = buildmounts.Prepared()
    taken.stubs = [("usr/cache/go", "usr/cache"), ("etc/conf", "etc/conf"),
                   ("run/made/m", "run")]
    taken.remove_stubs(str(top))
    assert sorted(p.relative_to(top).as_posix() for p in top.rglob("*")) == \
        ["etc", "run", "run/made", "run/made/by-the-step", "usr"]
