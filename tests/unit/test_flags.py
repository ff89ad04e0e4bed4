"""Docker's (pflag's) flag syntax for ``run``: flags stop at the image."""

from __future__ import annotations

import pytest

from minidocker import flags
from minidocker.errors import UsageError

TABLE = (
    flags.Flag("rm"),
    flags.Flag("interactive", "i"),
    flags.Flag("tty", "t"),
    flags.Flag("name", kind="value"),
    flags.Flag("env", "e", "list"),
    flags.Flag("pid", kind="value", choices=("host", "private")),
)


def parse(*argv: str) -> flags.Parsed:
    return flags.parse(TABLE, list(argv), "run")


def test_flags_stop_at_the_image():
    p = parse("--rm", "busybox", "ls", "-l", "--rm")
    assert p.rm is True
    assert p.positional == ["busybox", "ls", "-l", "--rm"]


def test_value_forms():
    p = parse("--name", "a", "--name=b", "-e", "A=1", "-eB=2", "-e=C=3", "img")
    assert p.name == "b"
    assert p.env == ["A=1", "B=2", "C=3"]


def test_combined_short_flags_and_a_value_at_the_end():
    p = parse("-it", "img")
    assert (p.interactive, p.tty) == (True, True)
    p = parse("-ite", "X=1", "img")
    assert (p.interactive, p.tty, p.env) == (True, True, ["X=1"])


def test_booleans_take_explicit_values():
    assert parse("--rm=false", "img").rm is False
    assert parse("-i=true", "img").interactive is True
    with pytest.raises(UsageError, match="want true or false"):
        parse("--rm=maybe", "img")


def test_double_dash_ends_flags():
    assert parse("--", "-img").positional == ["-img"]


@pytest.mark.parametrize("argv, message", [
    (["--nope", "img"], "unknown flag: --nope"),
    (["-x", "img"], "unknown shorthand flag: 'x'"),
    (["--name"], "flag needs an argument: --name"),
    (["-e"], "flag needs an argument"),
    (["--pid", "sideways", "img"], 'invalid argument "sideways" for --pid'),
])
def test_bad_flags_are_one_line_errors(argv, message):
    with pytest.raises(UsageError, match=message) as err:
        parse(*argv)
    assert "\n" not in str(err.value)


def test_usage_lists_every_flag():
    text = flags.usage(TABLE, "minidocker run IMAGE", "Run")
    for flag in TABLE:
        assert f"--{flag.name}" in text


def test_parse_command_prints_help_or_requires_operands(capsys):
    assert flags.parse_command(TABLE, ["--help"], "exec", "Run a command", ("CONTAINER", "COMMAND"),
                               "CONTAINER COMMAND [ARG...]") is None
    assert "Usage:  minidocker exec [OPTIONS] CONTAINER COMMAND [ARG...]" in capsys.readouterr().out
    with pytest.raises(UsageError, match='"minidocker exec" requires at least 2 arguments: '
                                         'CONTAINER COMMAND'):
        flags.parse_command(TABLE, ["web"], "exec", "", ("CONTAINER", "COMMAND"), "")
    with pytest.raises(UsageError, match="requires at least 1 argument: IMAGE"):
        flags.parse_command(TABLE, ["--rm"], "run", "", ("IMAGE",), "")
    assert flags.parse_command(TABLE, ["-it", "web", "sh"], "exec", "",
                               ("CONTAINER", "COMMAND"), "").positional == ["web", "sh"]
