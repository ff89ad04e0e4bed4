"""The builder's pure parts: the config each instruction makes (Docker's CMD/ENTRYPOINT table),
RUN's argv with heredocs, cache keys, which stages a target needs, and COPY's layer."""

from __future__ import annotations

import io
import os
import re
import tarfile
from pathlib import Path
from typing import Any

import pytest

from minidocker import buildconfig, buildfiles
from minidocker import dockerfile as df
from minidocker.buildcontext import Context
from minidocker.errors import UsageError
from minidocker.layers import Stack
from minidocker.spec import command

pytestmark = pytest.mark.nb07


def configure(text: str, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``config`` object after the instructions of one stage (FROM omitted)."""
    config = dict(base or {})
    cmd_set = False
    stage = df.parse("FROM x\n" + text).stages[0]
    env = df.StageEnv(list(config.get("Env") or []), {}, {})
    for ins in stage.instructions:
        done = env.step(ins)
        if isinstance(done, df.Workdir):
            config["WorkingDir"] = buildconfig.workdir(config, done.path)
        else:
            config = buildconfig.apply(done, config, cmd_set=cmd_set)
        cmd_set = cmd_set or (isinstance(done, df.Cmd) and not isinstance(done, df.Entrypoint))
    return config


# Docker's table ("Understand how CMD and ENTRYPOINT interact"), row by column: what runs.
NO_CMD, CMD_EXEC, CMD_SHELL = "", 'CMD ["exec_cmd", "p1_cmd"]', "CMD exec_cmd p1_cmd"
EP_SHELL, EP_EXEC = "ENTRYPOINT exec_entry p1_entry", 'ENTRYPOINT ["exec_entry", "p1_entry"]'
TABLE = [
    (CMD_EXEC, "", ["exec_cmd", "p1_cmd"]),
    (CMD_SHELL, "", ["/bin/sh", "-c", "exec_cmd p1_cmd"]),
    (NO_CMD, EP_SHELL, ["/bin/sh", "-c", "exec_entry p1_entry"]),
    (CMD_EXEC, EP_SHELL, ["/bin/sh", "-c", "exec_entry p1_entry", "exec_cmd", "p1_cmd"]),
    (CMD_SHELL, EP_SHELL, ["/bin/sh", "-c", "exec_entry p1_entry", "/bin/sh", "-c",
                           "exec_cmd p1_cmd"]),
    (NO_CMD, EP_EXEC, ["exec_entry", "p1_entry"]),
    (CMD_EXEC, EP_EXEC, ["exec_entry", "p1_entry", "exec_cmd", "p1_cmd"]),
    (CMD_SHELL, EP_EXEC, ["exec_entry", "p1_entry", "/bin/sh", "-c", "exec_cmd p1_cmd"]),
]


@pytest.mark.parametrize(("cmd", "entrypoint", "argv"), TABLE)
def test_cmd_and_entrypoint_as_dockers_table(cmd: str, entrypoint: str, argv: list[str]
                                             ) -> None:
    # Docker's table is of one Dockerfile; the order of the two lines does not matter in it.
    for text in (f"{cmd}\n{entrypoint}\n", f"{entrypoint}\n{cmd}\n"):
        assert command(configure(text), [], None) == argv


def test_no_cmd_no_entrypoint_is_an_error() -> None:
    with pytest.raises(UsageError, match="no command"):
        command(configure("ENV A=1\n"), [], None)


def test_entrypoint_resets_an_inherited_cmd_only() -> None:
    base = {"Cmd": ["from-base"]}
    assert "Cmd" not in configure('ENTRYPOINT ["e"]\n', base)
    assert configure('CMD ["mine"]\nENTRYPOINT ["e"]\n', base)["Cmd"] == ["mine"]
    assert configure('ENTRYPOINT ["e"]\nCMD ["mine"]\n', base)["Cmd"] == ["mine"]


def test_shell_changes_later_shell_forms() -> None:
    config = configure('SHELL ["/bin/bash", "-xc"]\nCMD echo $HOME\n')
    assert config["Cmd"] == ["/bin/bash", "-xc", "echo $HOME"]
    assert config["Shell"] == ["/bin/bash", "-xc"]


def test_config_only_instructions() -> None:
    config = configure("ENV A=1 B=2\nENV A=3\nLABEL l=v\nMAINTAINER me\nUSER nobody\n"
                       "EXPOSE 80 53/udp\nVOLUME /data /x\nVOLUME [\"/logs\"]\n"
                       "WORKDIR /a\nWORKDIR b/../c\nSTOPSIGNAL SIGINT\n"
                       "HEALTHCHECK --interval=5s --retries=3 CMD true\n"
                       "ONBUILD RUN echo child\n", {"Env": ["PATH=/bin"]})
    assert config["Env"] == ["PATH=/bin", "A=3", "B=2"]
    assert config["Labels"] == {"l": "v", "maintainer": "me"}
    assert config["User"] == "nobody"
    assert config["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert set(config["Volumes"]) == {"/data", "/x", "/logs"}
    assert config["WorkingDir"] == "/a/c"
    assert config["StopSignal"] == "SIGINT"
    assert config["Healthcheck"] == {"Test": ["CMD-SHELL", "true"], "Interval": 5 * 10**9,
                                     "Retries": 3}
    assert config["OnBuild"] == ["RUN echo child"]


def run_of(text: str) -> df.Run:
    ins = df.parse("FROM x\n" + text).stages[0].instructions[0]
    assert isinstance(ins, df.Run)
    return ins


def test_run_argv_and_heredocs() -> None:
    assert buildconfig.run_argv(run_of("RUN echo hi\n"), {}) == ["/bin/sh", "-c", "echo hi"]
    assert buildconfig.run_argv(run_of('RUN ["echo", "hi"]\n'), {}) == ["echo", "hi"]
    # a heredoc alone is the script
    assert buildconfig.run_argv(run_of("RUN <<EOF\necho a\necho b\nEOF\n"), {}) == [
        "/bin/sh", "-c", "echo a\necho b\n"]
    assert buildconfig.run_argv(run_of("RUN <<-EOF\n\techo a\nEOF\n"), {}) == [
        "/bin/sh", "-c", "echo a\n"]
    # with a command, the shell gets the line and its heredoc as written
    assert buildconfig.run_argv(run_of("RUN cat <<A > /f\nx\nA\n"), {}) == [
        "/bin/sh", "-c", "cat <<A > /f\nx\nA"]
    assert buildconfig.heredoc_script(run_of("RUN <<EOF\necho a\nEOF\n")) is None


def test_heredoc_scripts_with_an_interpreter() -> None:
    """BuildKit: ``RUN <<EOF`` alone whose body starts with ``#!`` is written to a file
    and run as a program (its ``#!`` line picks the interpreter), under SHELL still."""
    ins = run_of("RUN <<EOF\n#!/bin/awk -f\nBEGIN { print 1 }\nEOF\n")
    assert buildconfig.heredoc_script(ins) == ("EOF", "#!/bin/awk -f\nBEGIN { print 1 }\n")
    assert buildconfig.run_argv(ins, {}) == ["/bin/sh", "-c", "/dev/pipes/EOF"]
    assert buildconfig.run_argv(ins, {"Shell": ["/bin/ash", "-eo", "pipefail", "-c"]}) == [
        "/bin/ash", "-eo", "pipefail", "-c", "/dev/pipes/EOF"]
    assert buildconfig.created_by(ins, {}) == "/bin/sh -c /dev/pipes/EOF"
    # <<- strips the tabs first; a quoted name is the same file name
    chomped = run_of("RUN <<-'SCRIPT'\n\t#!/bin/sh\n\techo $0\nSCRIPT\n")
    assert buildconfig.heredoc_script(chomped) == ("SCRIPT", "#!/bin/sh\necho $0\n")
    # not alone, not first, or not at the very start: the shell runs it as before
    for text in ("RUN cat <<EOF\n#!/bin/sh\nEOF\n", "RUN <<A <<B\n#!/bin/sh\nA\nb\nB\n",
                 "RUN <<EOF\n #!/bin/sh\nEOF\n", "RUN <<EOF\necho '#!'\nEOF\n"):
        assert buildconfig.heredoc_script(run_of(text)) is None, text
        assert buildconfig.run_argv(run_of(text), {})[-1] != "/dev/pipes/EOF"


def test_cache_keys() -> None:
    one, two = run_of("RUN echo 1\n"), run_of("RUN echo 2\n")
    key = buildconfig.cache_key("sha256:p", one)
    assert key == buildconfig.cache_key("sha256:p", run_of("RUN echo 1\n"))
    assert key != buildconfig.cache_key("sha256:p", two)  # the instruction
    assert key != buildconfig.cache_key("sha256:q", one)  # the parent
    assert key != buildconfig.cache_key("sha256:p", one, {"ARG": "x"})  # what it reads
    moved = df.parse("FROM x\n\n\nRUN echo 1\n").stages[0].instructions[0]
    assert buildconfig.cache_key("sha256:p", moved) == key  # not where it is in the file


def test_needed_stages() -> None:
    parsed = df.parse("FROM busybox AS a\nFROM busybox AS b\nFROM a AS c\n"
                      "COPY --from=b /x /x\nFROM busybox AS d\n")
    stages = df.resolve_stages(parsed, {})
    assert [s.name for s in buildconfig.needed_stages(parsed, stages, "c")] == ["a", "b", "c"]
    assert [s.name for s in buildconfig.needed_stages(parsed, stages, None)] == ["d"]
    assert [s.name for s in buildconfig.needed_stages(parsed, stages, "B")] == ["b"]
    with pytest.raises(UsageError, match="failed to reach build target x"):
        buildconfig.needed_stages(parsed, stages, "x")


# -- COPY's layer, written from plain directories (no root needed) ------------------------------

def layer_of(image: Path, context: Path, srcs: list[str], dest: str, workdir: str = "/",
             **kw: Any) -> dict[str, tarfile.TarInfo]:
    out = io.BytesIO()
    stack = Stack([str(image)], whiteouts=None)
    sources = buildfiles.context_sources(Context(str(context)), srcs, "COPY")
    buildfiles.write_layer(out, stack, sources, dest, workdir, owner=kw.get("owner"),
                           mode=kw.get("mode"), mtime=0)
    out.seek(0)
    with tarfile.open(fileobj=out) as tar:
        return {m.name: m for m in tar.getmembers()}


@pytest.fixture
def trees(tmp_path: Path) -> tuple[Path, Path]:
    image, context = tmp_path / "image", tmp_path / "context"
    (image / "etc").mkdir(parents=True)
    (image / "usr" / "lib").mkdir(parents=True)
    (image / "lib").symlink_to("usr/lib")
    (image / "existing").mkdir()
    (context / "dir" / "sub").mkdir(parents=True)
    (context / "dir" / "sub" / "f").write_text("f")
    (context / "one.txt").write_text("1")
    (context / "two.txt").write_text("2")
    os.chmod(context / "one.txt", 0o640)
    return image, context


def test_copy_a_file_to_a_new_path(trees: tuple[Path, Path]) -> None:
    got = layer_of(*trees, ["one.txt"], "/new/name")
    assert set(got) == {"new", "new/name"}
    assert got["new/name"].mode == 0o640 and (got["new/name"].uid, got["new/name"].gid) == (0, 0)
    assert got["new"].isdir() and got["new"].mode == 0o755


def test_copy_into_a_directory(trees: tuple[Path, Path]) -> None:
    assert "existing/one.txt" in layer_of(*trees, ["one.txt"], "/existing")
    assert "made/one.txt" in layer_of(*trees, ["one.txt"], "made/", workdir="/")
    assert "w/made/one.txt" in layer_of(*trees, ["one.txt"], "made/", workdir="/w")


def test_copy_a_directory_copies_its_contents(trees: tuple[Path, Path]) -> None:
    got = layer_of(*trees, ["dir"], "/dst")
    assert set(got) == {"dst", "dst/sub", "dst/sub/f"}


def test_copy_follows_the_images_symlinks(trees: tuple[Path, Path]) -> None:
    assert "usr/lib/one.txt" in layer_of(*trees, ["one.txt"], "/lib/")


def test_copy_chown_chmod(trees: tuple[Path, Path]) -> None:
    got = layer_of(*trees, ["dir"], "/dst", owner=(7, 8), mode=buildfiles.Chmod("700"))
    assert all((m.uid, m.gid, m.mode) == (7, 8, 0o700) for m in got.values())


def test_copy_symbolic_chmod(trees: tuple[Path, Path]) -> None:
    """A symbolic --chmod changes each file's own mode; directories the copy makes on the
    way get 0755, the copied directory itself its own mode changed (BuildKit's copier)."""
    image, context = trees
    os.chmod(context / "dir", 0o750)
    os.chmod(context / "dir" / "sub" / "f", 0o600)
    got = layer_of(image, context, ["dir"], "/made/dst", mode=buildfiles.Chmod("go+rX"))
    assert {name: oct(m.mode) for name, m in got.items()} == {
        "made": "0o755", "made/dst": "0o755", "made/dst/sub": "0o755",
        "made/dst/sub/f": "0o644"}
    got = layer_of(image, context, ["dir"], "/dst/", mode=buildfiles.Chmod("u-w"))
    assert got["dst"].mode == 0o755 and got["dst/sub/f"].mode == 0o400  # dst/: made first
    got = layer_of(image, context, ["one.txt", "two.txt"], "/d/", mode=buildfiles.Chmod("a+x"))
    assert (got["d/one.txt"].mode, got["d/two.txt"].mode) == (0o751, 0o755)  # 640, 644 before


def test_several_sources_need_a_directory(trees: tuple[Path, Path]) -> None:
    with pytest.raises(buildfiles.CopyError, match="must be a directory and end with a /"):
        layer_of(*trees, ["*.txt"], "/dst")
    assert {"dst/one.txt", "dst/two.txt"} <= set(layer_of(*trees, ["*.txt"], "/dst/"))


def test_chmod_and_chown_parsing(trees: tuple[Path, Path]) -> None:
    image, _ = trees
    (image / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/:/bin/sh\n")
    (image / "etc" / "group").write_text("root:x:0:\nstaff:x:50:\n")
    stack = Stack([str(image)], whiteouts=None)
    assert buildfiles.parse_chown("app", stack) == (1000, 1000)  # Docker: the UID's number
    assert buildfiles.parse_chown("app:staff", stack) == (1000, 50)
    assert buildfiles.parse_chown("5:6", stack) == (5, 6)
    assert buildfiles.parse_chown("5", stack) == (5, 5)
    with pytest.raises(UsageError):
        buildfiles.parse_chown("nobody", stack)
    chmod = buildfiles.parse_chmod("0755")
    assert chmod is not None and chmod.apply(0o600, False) == 0o755 and chmod.made_dir() == 0o755
    assert buildfiles.parse_chmod(None) is None


# (mode, before, is a directory, after): BSD setmode(3) with umask 0, as BuildKit applies it.
# Where GNU chmod differs, the comment says how: X looks at the mode *before* the whole
# --chmod, "=" keeps the sticky bit unless it names t, "o+t" and "o+s" do nothing.
SYMBOLIC = [
    ("u+x", 0o644, False, 0o744),
    ("go-w", 0o666, False, 0o644),
    ("a=rX", 0o644, False, 0o444),
    ("a=rX", 0o700, False, 0o555),
    ("a=rX", 0o600, True, 0o555),  # a directory always gets X
    ("=rw,+X", 0o755, False, 0o777),  # GNU: 0666 (its X sees the "=rw" before it)
    ("+X", 0o644, False, 0o644),
    ("-X", 0o755, False, 0o644),  # -X is -x
    ("u=rwx,go=rx", 0o4600, False, 0o755),  # u= clears the setuid bit too
    ("u=rwx,go=u-w", 0o600, False, 0o755),
    ("go=", 0o777, False, 0o700),
    ("g=u", 0o640, False, 0o660),
    ("o+g", 0o650, False, 0o655),
    ("u-o", 0o777, False, 0o077),
    ("g=u", 0o2750, False, 0o2770),  # GNU: 0770 (a class copy leaves set-id bits alone)
    ("ug+s", 0o755, False, 0o6755),
    ("o+s", 0o755, False, 0o755),
    ("o+t", 0o755, False, 0o755),  # GNU: 1755
    ("+t", 0o755, False, 0o1755),
    ("a=", 0o1777, False, 0o1000),  # GNU: 0 ("=" keeps the sticky bit here)
    ("a=t", 0o1777, False, 0o1000),
    ("u+x-w", 0o644, False, 0o544),
    ("u=r,g=w,o=x", 0o777, False, 0o421),
    ("u+rw,g-w,o=", 0o666, False, 0o640),
    ("g-s", 0o2755, False, 0o755),
    ("+", 0o640, False, 0o640),
]


@pytest.mark.parametrize(("text", "before", "is_dir", "after"), SYMBOLIC,
                         ids=[f"{t}-{b:o}{'d' if d else ''}" for t, b, d, _ in SYMBOLIC])
def test_symbolic_chmod(text: str, before: int, is_dir: bool, after: int) -> None:
    chmod = buildfiles.parse_chmod(text)
    assert chmod is not None and chmod.made_dir() == 0o755
    assert oct(chmod.apply(before, is_dir)) == oct(after)


@pytest.mark.parametrize(("text", "words"), [
    ("", "invalid syntax"), ("u", "invalid syntax"), ("u+q", "invalid syntax"),
    ("u+x,", "invalid syntax"), (",u+x", "invalid syntax"), ("z+x", "invalid syntax"),
    ("u+x,755", "invalid syntax"), ("a+r w", "invalid syntax"),
    ("9", "it should be octal string and between 0 and 07777"),
    ("10000", "between 0 and 07777"), ("0o755", "between 0 and 07777"),
    ("755a", "between 0 and 07777"), ("7_55", "between 0 and 07777"),
])
def test_bad_chmod_is_refused(text: str, words: str) -> None:
    expected = re.escape(f"invalid chmod parameter: '{text}'") + ".*" + words
    with pytest.raises(buildfiles.CopyError, match=expected):
        buildfiles.parse_chmod(text)
