"""Docker's flag syntax, for ``run`` and the commands that take a command line after the image.

Docker parses flags with Go's pflag, interspersed off: flags come first, the first argument that
is not a flag is the image, and everything after it belongs to the container's command, even
``-e`` (so ``minidocker run busybox ls -l`` passes ``-l`` to ``ls``). The forms accepted:

- ``--name web``, ``--name=web``;
- ``-e A=1``, ``-eA=1``, ``-e=A=1``;
- booleans ``--rm``, ``--rm=false``, and short ones combined: ``-it``;
- a value flag may end a combined group: ``-ite A=1``;
- ``--`` ends the flags.

This is hand-written rather than argparse for two reasons: argparse's rules differ (it would
take ``-l`` above as its own), and importing argparse (with the ``re`` module it pulls in) costs
several milliseconds of ``run``'s start-up budget.
"""

from __future__ import annotations

from minidocker.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any


class Flag:
    """One flag: its long name, optional one-letter short name, and what it takes."""

    __slots__ = ("name", "short", "kind", "help", "choices", "metavar")

    def __init__(self, name: str, short: str = "", kind: str = "bool", help: str = "",
                 choices: tuple[str, ...] = (), metavar: str = "") -> None:
        self.name = name
        self.short = short
        self.kind = kind  # "bool", "value" (last one wins) or "list" (repeatable)
        self.help = help
        self.choices = choices
        self.metavar = metavar or ("list" if kind == "list" else "string")

    @property
    def dest(self) -> str:
        return self.name.replace("-", "_")


class Parsed:
    """The flags' values as attributes, plus ``positional`` (image, command...)."""

    def __init__(self, flags: tuple[Flag, ...]) -> None:
        for flag in flags:
            default: object = False if flag.kind == "bool" else [] if flag.kind == "list" else None
            setattr(self, flag.dest, default)
        self.positional: list[str] = []
        self.help = False

    def __getattr__(self, name: str) -> Any:  # only reached for unknown names; typed for mypy
        raise AttributeError(name)

    if TYPE_CHECKING:  # a caller may add attributes of its own (minidocker-runtime's operands)
        def __setattr__(self, name: str, value: Any) -> None: ...


_TRUE = {"true": True, "1": True, "t": True, "false": False, "0": False, "f": False}


def parse(flags: tuple[Flag, ...], argv: list[str], command: str,
          interspersed: bool = False, prog: str = "minidocker") -> Parsed:
    """Parse ``argv`` pflag-style; stop at the first positional argument, or with
    ``interspersed`` (urfave/cli's reordering, which runc's commands other than ``exec`` use)
    collect the positional arguments and go on until ``--``."""
    by_long = {f.name: f for f in flags}
    by_short = {f.short: f for f in flags if f.short}
    out = Parsed(flags)
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            break
        if arg in ("--help",):
            out.help = True
            continue
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            flag = by_long.get(name)
            if flag is None:
                raise UsageError(f"unknown flag: --{name} (see '{prog} {command} --help')")
            if flag.kind == "bool":
                _set(out, flag, _bool(flag, value) if eq else True)
                continue
            if not eq:
                if i >= len(argv):
                    raise UsageError(f"flag needs an argument: --{name}")
                value = argv[i]
                i += 1
            _set(out, flag, value)
            continue
        if arg.startswith("-") and arg != "-":
            letters = arg[1:]
            while letters:
                letter, letters = letters[0], letters[1:]
                flag = by_short.get(letter)
                if flag is None:
                    raise UsageError(f"unknown shorthand flag: '{letter}' in {arg} "
                                     f"(see '{prog} {command} --help')")
                if flag.kind == "bool":
                    if letters.startswith("="):
                        _set(out, flag, _bool(flag, letters[1:]))
                        letters = ""
                    else:
                        _set(out, flag, True)
                    continue
                value = letters.removeprefix("=")
                if not letters:
                    if i >= len(argv):
                        raise UsageError(f"flag needs an argument: '{letter}' in -{letter}")
                    value = argv[i]
                    i += 1
                _set(out, flag, value)
                letters = ""
            continue
        if interspersed:
            out.positional.append(arg)
            continue
        out.positional = [arg, *argv[i:]]
        return out
    out.positional += argv[i:]
    return out


def _bool(flag: Flag, value: str) -> bool:
    try:
        return _TRUE[value.lower()]
    except KeyError:
        raise UsageError(f'invalid argument "{value}" for --{flag.name}: want true or false') \
            from None


def _set(out: Parsed, flag: Flag, value: object) -> None:
    if flag.choices and value not in flag.choices:
        raise UsageError(f'invalid argument "{value}" for --{flag.name}: want one of '
                         + ", ".join(flag.choices))
    if flag.kind == "list":
        getattr(out, flag.dest).append(value)
    else:
        setattr(out, flag.dest, value)


def parse_command(flags: tuple[Flag, ...], argv: list[str], command: str, description: str,
                  operands: tuple[str, ...], synopsis: str) -> Parsed | None:
    """Parse a command's flags as Docker does; None once ``--help`` has printed the usage.

    ``operands`` are the positional arguments it needs at least (``("CONTAINER", "COMMAND")``),
    ``synopsis`` what follows ``[OPTIONS]`` in the usage line.
    """
    args = parse(flags, argv, command)
    if args.help:
        print(usage(flags, f"minidocker {command} [OPTIONS] {synopsis}", description))
        return None
    if len(args.positional) < len(operands):
        n = len(operands)
        raise UsageError(f'"minidocker {command}" requires at least {n} '
                         f'argument{"s" if n > 1 else ""}: {" ".join(operands)}')
    return args


def usage(flags: tuple[Flag, ...], synopsis: str, description: str) -> str:
    lines = [f"Usage:  {synopsis}", "", description, "", "Options:"]
    for flag in flags:
        short = f"-{flag.short}, " if flag.short else "    "
        arg = "" if flag.kind == "bool" else f" {flag.metavar}"
        lines.append(f"  {short}--{flag.name}{arg:<10} {flag.help}")
    return "\n".join(lines)


def argparser(prog: str, description: str, usage: str | None = None) -> argparse.ArgumentParser:
    """argparse for the commands off the start-up path; errors become one-line UsageErrors.
    Here, below the command line, so that ``doctor`` can use it without importing the CLI."""
    import argparse

    class Parser(argparse.ArgumentParser):
        def error(self, message: str) -> None:  # type: ignore[override]
            raise UsageError(f"{self.prog.removeprefix('minidocker ')}: {message}")

    return Parser(prog=prog, description=description, usage=usage)
