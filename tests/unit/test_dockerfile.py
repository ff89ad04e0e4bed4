"""Golden tests for the Dockerfile parser: words, syntax, instructions, stages, errors."""

from __future__ import annotations

import pytest

from minidocker import dockerfile as df
from minidocker.cli import main
from minidocker.dockerfile_syntax import parse_syntax
from minidocker.errors import DockerfileError
from minidocker.shellwords import Lex, ShellWordError

ENV = {"A": "a b", "E": "", "P": "/usr/local/bin"}


@pytest.mark.parametrize(("word", "expected"), [
    ("$A", "a b"), ("${A}x", "a bx"), ("$U", ""), ("${U:-d}", "d"), ("${E:-d}", "d"),
    ("${E-d}", ""), ("${U-d}", "d"), ("${A:+y}", "y"), ("${E:+y}", ""), ("${E+y}", "y"),
    ("${U+y}", ""), ('"$A c"', "a b c"), ("'$A'", "$A"), ("a\\ b", "a b"), ("\\$A", "$A"),
    ('"a\\"b"', 'a"b'), ('"a\\b"', "a\\b"), ("${P#*/}", "usr/local/bin"),
    ("${P##*/}", "bin"), ("${P%/*}", "/usr/local"), ("${P/local/opt}", "/usr/opt/bin"),
    ("$", "$"), ("$1x", "x"), ("${U:-$A}", "a b"),
])
def test_word_expansion(word: str, expected: str) -> None:
    assert Lex().process_word(word, ENV) == expected


def test_words_split_only_where_unquoted() -> None:
    assert Lex().process_words('$A "c d" e\\ f', ENV) == ["a", "b", "c d", "e f"]
    assert Lex("`").process_word("a`$A", ENV) == "a$A"


@pytest.mark.parametrize(("word", "message"), [
    ("${E:?must be set}", "E: must be set"), ("${U?}", "U: is not allowed to be unset"),
    ("${E:?}", "E: is not allowed to be empty"), ('"abc', "matching double-quote"),
    ("'abc", "matching single-quote"), ("${A", "missing '}'"), ("${:}", "bad substitution"),
])
def test_word_errors(word: str, message: str) -> None:
    with pytest.raises(ShellWordError, match=message):
        Lex().process_word(word, ENV)


def test_directives_only_at_the_top() -> None:
    s = parse_syntax("# syntax=docker/dockerfile:1\n#escape=`\nFROM a\nRUN x `\n  y\n")
    assert s.directives == {"syntax": "docker/dockerfile:1", "escape": "`"}
    assert s.escape == "`" and s.nodes[1].args == ["x   y"]
    late = parse_syntax("\n# escape=`\nFROM a\nRUN x `\n")
    assert late.escape == "\\" and late.nodes[1].args == ["x `"]
    with pytest.raises(DockerfileError, match="only one escape parser directive"):
        parse_syntax("# escape=`\n# escape=\\\nFROM a\n")
    with pytest.raises(DockerfileError, match="invalid escape token"):
        parse_syntax("# escape=x\nFROM a\n")


def test_continuations_comments_and_lines() -> None:
    s = parse_syntax("FROM a\nRUN one \\\n# comment\n\n  two \\\\\nCMD x\n")
    run = s.nodes[1]
    assert (run.args, run.start_line, run.end_line) == (["one   two \\\\"], 2, 5)
    assert s.nodes[2].start_line == 6 and s.warnings  # the empty continuation line


def test_flags_json_and_shell_forms() -> None:
    s = parse_syntax('FROM a\nCOPY --from=b --chown="x y" ["s 1", "d"]\nRUN --network=none ls\n'
                     "CMD ['a']\nRUN --security=insecure -- --x\n")
    copy, run, cmd, run2 = s.nodes[1:]
    assert (copy.flags, copy.args, copy.json) == (["--from=b", "--chown=x y"], ["s 1", "d"],
                                                  True)
    assert (run.flags, run.args, run.json) == (["--network=none"], ["ls"], False)
    assert (cmd.args, cmd.json) == (["['a']"], False)
    assert (run2.flags, run2.args) == (["--security=insecure"], ["--x"])
    with pytest.raises(DockerfileError, match="Dockerfile:2: CMD: .*strings only"):
        parse_syntax('FROM a\nCMD ["a", 1]\n')


def test_heredocs() -> None:
    text = ("FROM a\nRUN <<A cat && <<-'B' cat && 3<<\"C\" cat\none $X\nA\n\ttwo\n\tB\n"
            "three\nC\nCOPY <<-EOF /x\n\tbody\n\tEOF\nCMD <<EOF\n")
    run, copy, cmd = parse_syntax(text).nodes[1:]
    docs = [(d.name, d.fd, d.expand, d.chomp, d.content) for d in run.heredocs]
    assert docs == [("A", 0, True, False, "one $X\n"), ("B", 0, False, True, "\ttwo\n"),
                    ("C", 3, False, False, "three\n")]
    assert (run.start_line, run.end_line) == (2, 8)
    assert copy.heredocs[0].content == "\tbody\n" and cmd.heredocs == []  # CMD: none
    parsed = df.parse(text)
    assert parsed.stages[0].instructions[1].heredocs[0].content == "body\n"  # type: ignore
    with pytest.raises(DockerfileError, match="Dockerfile:2: RUN: unterminated heredoc"):
        parse_syntax("FROM a\nRUN <<EOF\nno end\n")


def test_instructions_and_stages() -> None:
    text = ("ARG V=1\nFROM --platform=linux/amd64 base:$V AS Build\nENV a=1 b=\"2 3\"\n"
            "ENV old form value\nLABEL k=v\nEXPOSE 80 53/udp\nVOLUME [\"/d\"]\n"
            "WORKDIR /w\nUSER u\nSTOPSIGNAL SIGINT\nSHELL [\"/bin/bash\", \"-c\"]\n"
            "HEALTHCHECK --interval=1m30s --retries=3 CMD [\"true\"]\nONBUILD RUN make\n"
            "MAINTAINER me\nENTRYPOINT run me\nFROM build\nADD --link a.tar /\n")
    parsed = df.parse(text)
    assert [a.pairs for a in parsed.meta_args] == [[("V", "1")]]
    first, second = parsed.stages
    assert (first.name, first.base, first.platform) == ("build", "base:$V", "linux/amd64")
    kinds = [type(i).__name__ for i in first.instructions]
    assert kinds == ["Env", "Env", "Label", "Expose", "Volume", "Workdir", "User",
                     "StopSignal", "Shell", "Healthcheck", "Onbuild", "Maintainer",
                     "Entrypoint"]
    env, old = first.instructions[:2]
    assert env.pairs == [("a", "1"), ("b", '"2 3"')] and old.pairs == [("old", "form value")]
    health = first.instructions[9]
    assert (health.test, health.interval, health.retries) == (["CMD", "true"], 90.0, 3)
    assert first.instructions[10].expression == "RUN make"  # type: ignore[attr-defined]
    assert first.instructions[12].command == ["run me"]  # type: ignore[attr-defined]
    assert any("MAINTAINER is deprecated" in w for w in parsed.warnings)
    add = second.instructions[0]
    assert isinstance(add, df.Add) and (add.sources, add.dest, add.link) == (["a.tar"], "/",
                                                                             True)
    assert [s.base for s in df.resolve_stages(parsed, {"V": "2"})] == ["base:2", "build"]
    assert "stage 0 'build': FROM base:$V" in parsed.tree()


@pytest.mark.parametrize(("text", "message"), [
    ("FROM a\nRUNN x\n", "Dockerfile:2: unknown instruction: RUNN"),
    ("RUN x\n", "Dockerfile:1: RUN: no build stage in current context"),
    ("FROM a\nONBUILD ONBUILD RUN x\n", "Chaining ONBUILD via `ONBUILD ONBUILD`"),
    ("FROM a\nONBUILD FROM b\n", "ONBUILD: FROM isn't allowed as an ONBUILD trigger"),
    ("FROM a\nONBUILD MAINTAINER me\n", "MAINTAINER isn't allowed as an ONBUILD trigger"),
    ("FROM a\nCOPY --form=x a b\n", "Dockerfile:2: COPY: unknown flag: --form"),
    ("FROM a\nCOPY --link=maybe a b\n", "expecting boolean value for flag --link"),
    ("FROM a\nCOPY --from=x --from=y a b\n", "duplicate flag specified: --from"),
    ("FROM a\nCOPY a\n", "COPY requires at least two arguments"),
    ("FROM a\nCOPY a <<EOF\nEOF\n", "COPY cannot accept a heredoc as a destination"),
    ("FROM a b\n", "FROM requires either one or three arguments"),
    ("FROM a AS 1x\n", "invalid name for build stage"),
    ("FROM a\nENV a=1 b\n", "can't find = in \"b\""),
    ("FROM a\nENV a\n", "ENV must have two arguments"),
    ("FROM a\nUSER\n", "USER requires exactly one argument"),
    ("FROM a\nSHELL /bin/sh\n", "SHELL requires the arguments to be in JSON form"),
    ("FROM a\nHEALTHCHECK NONE x\n", "HEALTHCHECK NONE takes no arguments"),
    ("FROM a\nHEALTHCHECK --interval=1x CMD y\n", "invalid duration"),
    ("FROM a\nHEALTHCHECK CMD\n", "Missing command after HEALTHCHECK CMD"),
    ("FROM a\nRUN --mount type=cache x\n", "missing a value on flag: --mount"),
    ("# just a comment\n", "file with no instructions"),
])
def test_errors_name_the_line_and_instruction(text: str, message: str) -> None:
    with pytest.raises(DockerfileError, match=message.replace("(", r"\(").replace("$", r"\$")):
        df.parse(text)


def test_expansion_in_exactly_the_instructions_that_expand() -> None:
    env = {"D": "/data", "N": "app"}
    parsed = df.parse("FROM a\nWORKDIR $D\nRUN echo $D\nCMD echo $D\nCOPY --chown=$N $D/x "
                      "${D}2\nEXPOSE ${P:-80} 443\nCOPY <<EOF <<'RAW' /t\n$N\nEOF\n$N\nRAW\n")
    done = [df.expand(i, env) for i in parsed.stages[0].instructions]
    assert done[0].path == "/data"  # type: ignore[attr-defined]
    assert done[1].command == ["echo $D"] and done[2].command == ["echo $D"]  # type: ignore
    assert (done[3].chown, done[3].sources, done[3].dest) == ("app", ["/data/x"],  # type: ignore
                                                              "/data2")
    assert done[4].ports == ["80", "443"]  # type: ignore[attr-defined]
    assert [d.content for d in done[5].heredocs] == ["app\n", "$N\n"]  # type: ignore
    with pytest.raises(DockerfileError, match="Dockerfile:2: WORKDIR: X: is not allowed"):
        df.expand(df.parse("FROM a\nWORKDIR ${X?}\n").stages[0].instructions[0], {})


def test_arg_and_env_scopes() -> None:
    parsed = df.parse("ARG G=global\nARG ONLY=meta\nFROM img:$G\nARG G\nARG L=${G}-local\n"
                      "RUN echo\nENV E=$L\nARG E=ignored\nARG NOTSET\n")
    meta = df.meta_args(parsed, {}, defaults={})
    assert meta == {"G": "global", "ONLY": "meta"}
    scope = df.StageEnv(["PATH=/bin"], meta, {"NOTSET": "from-cli"})
    for ins in parsed.stages[0].instructions:
        scope.step(ins)
    assert scope.env == {"PATH": "/bin", "G": "global", "L": "global-local", "E": "global-local",
                         "NOTSET": "from-cli"}  # ONLY: a meta ARG not declared in the stage


def test_build_print_and_a_bad_target(tmp_path: object,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    from pathlib import Path

    path = Path(str(tmp_path))
    (path / "Dockerfile").write_text("ARG T=3\nFROM alpine:$T AS one\nRUN echo hi\n")
    assert main(["build", "--print", "--build-arg", "T=4", str(path)]) == 0
    out = capsys.readouterr().out
    assert "stage 0 'one': FROM alpine:4" in out and "RUN" in out
    # refused before anything is read from the store (or pulled)
    assert main(["build", "--target", "nope", str(path)]) == 125
    assert "failed to reach build target nope" in capsys.readouterr().err
