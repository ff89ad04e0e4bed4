"""A Dockerfile as typed instructions in stages: what the builder (and ``commit -c``) reads.

Two levels, as in BuildKit. :mod:`minidocker.dockerfile_syntax` turns text into nodes (lines,
continuations, flags, JSON, heredocs). This module turns each node into an instruction record
(:class:`From`, :class:`Run`, :class:`Copy`...), checking its flags and arguments with
BuildKit's messages, and groups them into stages at each FROM. Errors are one line naming the
line and the instruction: ``Dockerfile:7: unknown instruction: RUNN``.

Variables are *not* expanded here, because their values are only known while building (the
base image's ``Env``, ``--build-arg``). :func:`expand` does it for one instruction, and only
for those BuildKit expands (:data:`EXPANDS`); :class:`StageEnv` keeps the ARG and ENV rules:

- an ARG before the first FROM (a "meta" ARG) is visible only in FROM lines; a stage sees it
  only if it declares ``ARG NAME`` again (without a value);
- ``--build-arg NAME=v`` overrides an ARG's default, and is used only for declared ARGs;
- ARG and ENV are visible from the next instruction on; ENV wins over an ARG of the same name.

CMD, ENTRYPOINT, RUN's command, SHELL, HEALTHCHECK and ONBUILD are never expanded: the shell
in the container does it (``RUN echo $HOME``), or the child build (ONBUILD).
"""

from __future__ import annotations

import re

from minidocker.dockerfile_syntax import Heredoc, Node, chomp, error, heredoc, parse_syntax
from minidocker.record import Record
from minidocker.shellwords import Lex, ShellWordError
from minidocker.timefmt import go_duration

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any, ClassVar

    from minidocker.dockerfile_syntax import Syntax

# instruction -> its flags: "bool", "string" (once) or "strings" (repeatable); BuildKit's BFlags
FLAGS: dict[str, dict[str, str]] = {
    "FROM": {"platform": "string"},
    "RUN": {"mount": "strings", "network": "string", "security": "string",
            "device": "strings"},
    "COPY": {"from": "string", "chown": "string", "chmod": "string", "link": "bool",
             "parents": "bool", "exclude": "strings"},
    "ADD": {"chown": "string", "chmod": "string", "link": "bool", "keep-git-dir": "bool",
            "checksum": "string", "unpack": "bool", "exclude": "strings"},
    "HEALTHCHECK": {"interval": "string", "timeout": "string", "start-period": "string",
                    "start-interval": "string", "retries": "string"},
}
# the instructions whose words BuildKit expands (FROM with the meta ARGs only; RUN: --mount)
EXPANDS = ("ADD", "ARG", "COPY", "ENV", "EXPOSE", "FROM", "LABEL", "RUN", "STOPSIGNAL",
           "USER", "VOLUME", "WORKDIR")
_STAGE_NAME = re.compile(r"^[a-z][a-z0-9-_.]*$")


class Instruction(Record):
    """What every instruction has: where it is (``line``, ``end_line``), and ``original``."""

    __slots__ = ()
    NAME: ClassVar[str] = ""
    line: int
    end_line: int
    original: str

    def __init__(self, **fields: Any) -> None:
        slots: tuple[str, ...] = self.__slots__
        for key in slots:
            setattr(self, key, fields.get(key))

    def __str__(self) -> str:
        slots: tuple[str, ...] = self.__slots__
        shown = {k: getattr(self, k) for k in slots
                 if k not in ("line", "end_line", "original") and getattr(self, k) not in
                 (None, [], {}, False)}
        return f"{self.NAME:<11} " + " ".join(f"{k}={v!r}" for k, v in shown.items())


_COMMON = ("line", "end_line", "original")


class From(Instruction):
    NAME = "FROM"
    __slots__ = _COMMON + ("base", "stage", "platform")
    base: str
    stage: str | None
    platform: str | None


class Run(Instruction):
    """``command``: the exec form as is, or ``[text]`` with ``shell_form`` (under SHELL)."""
    NAME = "RUN"
    __slots__ = _COMMON + ("command", "shell_form", "heredocs", "mounts", "network",
                           "security", "devices")
    command: list[str]
    shell_form: bool
    heredocs: list[Heredoc]
    mounts: list[str]


class Cmd(Instruction):
    NAME = "CMD"
    __slots__ = _COMMON + ("command", "shell_form")
    command: list[str]
    shell_form: bool


class Entrypoint(Cmd):
    NAME = "ENTRYPOINT"


class Shell(Instruction):
    NAME = "SHELL"
    __slots__ = _COMMON + ("command",)
    command: list[str]


class Copy(Instruction):
    """``sources`` paths; ``heredocs``: inline files (``COPY <<EOF /dest``)."""
    NAME = "COPY"
    __slots__ = _COMMON + ("sources", "dest", "heredocs", "from_stage", "chown", "chmod",
                           "link", "parents", "exclude")
    sources: list[str]
    dest: str
    heredocs: list[Heredoc]
    from_stage: str | None
    chown: str | None
    chmod: str | None
    link: bool | None
    parents: bool | None
    exclude: list[str]


class Add(Instruction):
    NAME = "ADD"
    __slots__ = _COMMON + ("sources", "dest", "heredocs", "chown", "chmod", "link",
                           "keep_git_dir", "checksum", "unpack", "exclude")
    sources: list[str]
    dest: str
    heredocs: list[Heredoc]
    chown: str | None
    chmod: str | None
    checksum: str | None
    link: bool | None
    keep_git_dir: bool | None
    unpack: bool | None
    exclude: list[str]


class Env(Instruction):
    NAME = "ENV"
    __slots__ = _COMMON + ("pairs",)
    pairs: list[tuple[str, str]]


class Label(Env):
    NAME = "LABEL"


class Arg(Instruction):
    """``pairs``: (name, default or None)."""
    NAME = "ARG"
    __slots__ = _COMMON + ("pairs",)
    pairs: list[tuple[str, str | None]]


class Expose(Instruction):
    NAME = "EXPOSE"
    __slots__ = _COMMON + ("ports",)
    ports: list[str]


class Volume(Instruction):
    NAME = "VOLUME"
    __slots__ = _COMMON + ("paths",)
    paths: list[str]


class Workdir(Instruction):
    NAME = "WORKDIR"
    __slots__ = _COMMON + ("path",)
    path: str


class User(Instruction):
    NAME = "USER"
    __slots__ = _COMMON + ("user",)
    user: str


class StopSignal(Instruction):
    NAME = "STOPSIGNAL"
    __slots__ = _COMMON + ("signal",)
    signal: str


class Maintainer(Instruction):
    """Deprecated (use ``LABEL maintainer=...``): parsed, and flagged in ``warnings``."""
    NAME = "MAINTAINER"
    __slots__ = _COMMON + ("name",)
    name: str


class Healthcheck(Instruction):
    """``test`` as the image config has it: ``["NONE"]``, ``["CMD", ...]`` or
    ``["CMD-SHELL", "text"]``; durations in seconds (None: the default)."""
    NAME = "HEALTHCHECK"
    __slots__ = _COMMON + ("test", "interval", "timeout", "start_period", "start_interval",
                           "retries")
    test: list[str]


class Onbuild(Instruction):
    """``expression``: the trigger as written (with its heredocs), run by a child build."""
    NAME = "ONBUILD"
    __slots__ = _COMMON + ("expression",)
    expression: str


KINDS: dict[str, type[Instruction]] = {k.NAME: k for k in (
    From, Run, Cmd, Entrypoint, Shell, Copy, Add, Env, Label, Arg, Expose, Volume, Workdir,
    User, StopSignal, Maintainer, Healthcheck, Onbuild)}


class Stage(Record):
    """Instructions from one FROM to the next; ``name`` from ``FROM base AS name``."""

    __slots__ = ("index", "name", "base", "platform", "line", "instructions")

    def __init__(self, index: int, name: str | None, base: str, platform: str | None,
                 line: int, instructions: list[Instruction]) -> None:
        self.index = index
        self.name = name
        self.base = base
        self.platform = platform
        self.line = line
        self.instructions = instructions


class Dockerfile(Record):
    """The parse: ``meta_args`` (ARGs before the first FROM), ``stages``, the escape
    character and directives, and warnings (MAINTAINER, empty continuation lines)."""

    __slots__ = ("meta_args", "stages", "escape", "directives", "warnings")

    def __init__(self, meta_args: list[Arg], stages: list[Stage], escape: str = "\\",
                 directives: dict[str, str] | None = None,
                 warnings: list[str] | None = None) -> None:
        self.meta_args = meta_args
        self.stages = stages
        self.escape = escape
        self.directives = directives or {}
        self.warnings = warnings or []

    def tree(self) -> str:
        """The parse as an indented tree, one instruction a line (``build --print``)."""
        out = [f"Dockerfile (escape {self.escape!r}"
               + "".join(f", {k}={v}" for k, v in self.directives.items()) + ")"]
        out += [f"  {a.line:>3}  {a}" for a in self.meta_args]
        for stage in self.stages:
            out.append(f"  stage {stage.index}" + (f" {stage.name!r}" if stage.name else "")
                       + f": FROM {stage.base}"
                       + (f" (platform {stage.platform})" if stage.platform else ""))
            for ins in stage.instructions:
                out.append(f"    {ins.line:>3}  {ins}")
                for doc in getattr(ins, "heredocs", None) or []:
                    out += [f"           <<{doc.name}: {line}"
                            for line in doc.content.splitlines()]
        out += [f"warning: {w}" for w in self.warnings]
        return "\n".join(out)


def parse(text: str) -> Dockerfile:
    """Text to stages; raises :class:`~minidocker.errors.DockerfileError` naming the line."""
    syntax = parse_syntax(text)
    warnings = list(syntax.warnings)
    meta: list[Arg] = []
    stages: list[Stage] = []
    for node in syntax.nodes:
        ins = instruction(node, syntax.escape)
        if isinstance(ins, Maintainer):
            warnings.append(f"Dockerfile:{ins.line}: MAINTAINER is deprecated, use "
                            "LABEL maintainer=... instead")
        if isinstance(ins, From):
            stages.append(Stage(len(stages), ins.stage, ins.base, ins.platform, ins.line, []))
        elif not stages and isinstance(ins, Arg):
            meta.append(ins)
        elif not stages:
            raise error(ins.line, "no build stage in current context", ins.NAME)
        else:
            stages[-1].instructions.append(ins)
    return Dockerfile(meta, stages, syntax.escape, syntax.directives, warnings)


def parse_one(text: str, escape: str = "\\") -> Instruction:
    """One instruction (``commit --change 'ENV A=1'``), with the same rules."""
    syntax: Syntax = parse_syntax(text)
    if len(syntax.nodes) != 1:
        raise error(1, "expected one instruction")
    return instruction(syntax.nodes[0], escape)


def instruction(node: Node, escape: str) -> Instruction:
    name = node.keyword.upper()
    kind = KINDS.get(name)
    if kind is None:
        raise error(node.start_line, f"unknown instruction: {node.keyword}")
    where = {"line": node.start_line, "end_line": node.end_line, "original": node.original}
    try:
        flags = parse_flags(node.flags, FLAGS.get(name, {}))
        return _BUILDERS[name](kind, node, flags, where)
    except ValueError as exc:
        raise error(node.start_line, str(exc), name) from None


def parse_flags(words: list[str], known: dict[str, str]) -> dict[str, Any]:
    """``--name=value`` words checked against the instruction's flags (BuildKit's BFlags)."""
    found: dict[str, Any] = {}
    for word in words:
        if word == "--":
            break
        if not word.startswith("--"):
            raise ValueError(f"arg should start with -- : {word}")
        flag, has_value, value = word.partition("=")
        name = flag[2:]
        kind = known.get(name)
        if kind is None:
            raise ValueError(f"unknown flag: {flag}")
        if name in found and kind != "strings":
            raise ValueError(f"duplicate flag specified: {flag}")
        if kind == "bool":
            if has_value and not value:
                raise ValueError(f"missing a value on flag: {flag}")
            if value.lower() not in ("", "true", "false"):
                raise ValueError(f"expecting boolean value for flag {flag}, not: {value}")
            found[name] = value.lower() != "false"
        elif not has_value:
            raise ValueError(f"missing a value on flag: {flag}")
        elif kind == "strings":
            found.setdefault(name, []).append(value)
        else:
            found[name] = value
    return found


def _from(kind: type[Instruction], node: Node, flags: dict[str, Any],
          where: dict[str, Any]) -> Instruction:
    args = node.args
    stage = None
    if len(args) == 3 and args[1].lower() == "as":
        stage = args[2].lower()
        if not _STAGE_NAME.match(stage):
            raise ValueError(f'invalid name for build stage: "{args[2]}", name can\'t start '
                             "with a number or contain symbols")
    elif len(args) != 1:
        raise ValueError("FROM requires either one or three arguments")
    return kind(base=args[0], stage=stage, platform=flags.get("platform"), **where)


def _command(kind: type[Instruction], node: Node, flags: dict[str, Any],
             where: dict[str, Any]) -> Instruction:
    fields: dict[str, Any] = {"command": list(node.args), "shell_form": not node.json}
    if kind is Shell:
        if not node.args:
            raise ValueError("SHELL requires at least one argument")
        if not node.json:
            raise ValueError(f"SHELL requires the arguments to be in JSON form: "
                             f"{node.original.strip()}")
        fields = {"command": list(node.args)}
    if kind is Run:
        fields.update(heredocs=node.heredocs, mounts=flags.get("mount", []),
                      network=flags.get("network"), security=flags.get("security"),
                      devices=flags.get("device", []))
    return kind(**fields, **where)


def _files(kind: type[Instruction], node: Node, flags: dict[str, Any],
           where: dict[str, Any]) -> Instruction:
    if len(node.args) < 2:
        raise ValueError(f"{kind.NAME} requires at least two arguments, but only one was "
                         "provided. Destination could not be determined")
    *sources, dest = node.args
    if heredoc(dest) is not None:
        raise ValueError(f"{kind.NAME} cannot accept a heredoc as a destination")
    docs = {d.name: d for d in node.heredocs}
    paths, inline = [], []
    for src in sources:
        doc = heredoc(src)
        if doc is None:
            paths.append(src)
            continue
        content = docs[doc.name].content if doc.name in docs else ""
        inline.append(Heredoc(doc.name, doc.fd, doc.expand, doc.chomp,
                              chomp(content) if doc.chomp else content))
    fields = {k.replace("-", "_"): v for k, v in flags.items()}
    if "from" in fields:
        fields["from_stage"] = fields.pop("from")
    fields.setdefault("exclude", [])
    return kind(sources=paths, dest=dest, heredocs=inline, **fields, **where)


def _pairs(kind: type[Instruction], node: Node, flags: dict[str, Any],
           where: dict[str, Any]) -> Instruction:
    if not node.args:
        raise ValueError(f"{kind.NAME} requires at least one argument")
    triples = [node.args[i:i + 3] for i in range(0, len(node.args), 3)]
    if any(not key for key, _, _ in triples):
        raise ValueError(f"{kind.NAME} names can not be blank")
    return kind(pairs=[(key, value) for key, value, _ in triples], **where)


def _arg(kind: type[Instruction], node: Node, flags: dict[str, Any],
         where: dict[str, Any]) -> Instruction:
    if not node.args:
        raise ValueError("ARG requires at least one argument")
    pairs: list[tuple[str, str | None]] = []
    for word in node.args:
        key, eq, value = word.partition("=")
        if eq and not key:
            raise ValueError("ARG names can not be blank")
        pairs.append((key, value if eq else None))
    return kind(pairs=pairs, **where)


def _one(field: str) -> Any:
    def build(kind: type[Instruction], node: Node, flags: dict[str, Any],
              where: dict[str, Any]) -> Instruction:
        if len(node.args) != 1:
            raise ValueError(f"{kind.NAME} requires exactly one argument")
        return kind(**{field: node.args[0]}, **where)
    return build


def _many(field: str) -> Any:
    def build(kind: type[Instruction], node: Node, flags: dict[str, Any],
              where: dict[str, Any]) -> Instruction:
        if not node.args:
            raise ValueError(f"{kind.NAME} requires at least one argument")
        values = [v.strip() for v in node.args] if kind is Volume else list(node.args)
        if kind is Volume and not all(values):
            raise ValueError("VOLUME specified can not be an empty string")
        return kind(**{field: values}, **where)
    return build


def _healthcheck(kind: type[Instruction], node: Node, flags: dict[str, Any],
                 where: dict[str, Any]) -> Instruction:
    if not node.args:
        raise ValueError("HEALTHCHECK requires at least one argument")
    typ, args = node.args[0].upper(), node.args[1:]
    if typ == "NONE":
        if args:
            raise ValueError("HEALTHCHECK NONE takes no arguments")
        return kind(test=["NONE"], **where)
    if typ != "CMD":
        raise ValueError(f'Unknown type "{typ}" in HEALTHCHECK (try CMD)')
    if not args:
        raise ValueError("Missing command after HEALTHCHECK CMD")
    fields: dict[str, Any] = {k.replace("-", "_"): go_duration(v, k) for k, v in flags.items()
                              if k != "retries"}
    if "retries" in flags:
        if not re.fullmatch(r"[+-]?\d+", flags["retries"]):
            raise ValueError(f'strconv.ParseInt: parsing "{flags["retries"]}": invalid syntax')
        fields["retries"] = int(flags["retries"])
        if fields["retries"] < 0:
            raise ValueError(f"--retries cannot be negative ({fields['retries']})")
    test = (["CMD"] if node.json else ["CMD-SHELL"]) + list(args)
    return kind(test=test, **fields, **where)


def _onbuild(kind: type[Instruction], node: Node, flags: dict[str, Any],
             where: dict[str, Any]) -> Instruction:
    if node.trigger is None:
        raise ValueError("ONBUILD requires at least one argument")
    trigger = node.trigger.keyword.upper()
    if trigger == "ONBUILD":
        raise ValueError("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if trigger in ("MAINTAINER", "FROM"):
        raise ValueError(f"{trigger} isn't allowed as an ONBUILD trigger")
    expression = re.sub(r"(?i)^\s*ONBUILD\s*", "", node.original)
    expression += "".join(f"\n{d.content}{d.name}" for d in node.heredocs)
    return kind(expression=expression, **where)


_BUILDERS = {
    "FROM": _from, "RUN": _command, "CMD": _command, "ENTRYPOINT": _command,
    "SHELL": _command, "COPY": _files, "ADD": _files, "ENV": _pairs, "LABEL": _pairs,
    "ARG": _arg, "EXPOSE": _many("ports"), "VOLUME": _many("paths"),
    "WORKDIR": _one("path"), "USER": _one("user"), "STOPSIGNAL": _one("signal"),
    "MAINTAINER": _one("name"), "HEALTHCHECK": _healthcheck, "ONBUILD": _onbuild,
}


# -- expansion ----------------------------------------------------------------------------------

def expand(ins: Instruction, env: Mapping[str, str], escape: str = "\\") -> Instruction:
    """A copy of ``ins`` with its words expanded in ``env``, for the instructions that
    expand (:data:`EXPANDS`); others come back as they are. Errors name the line."""
    if ins.NAME not in EXPANDS:
        return ins
    lex = Lex(escape)

    def word(text: str | None) -> Any:
        return None if text is None else lex.process_word(text, env)

    slots: tuple[str, ...] = ins.__slots__
    fields: dict[str, Any] = {k: getattr(ins, k) for k in slots}
    try:
        if isinstance(ins, From):
            fields.update(base=word(ins.base), platform=word(ins.platform))
        elif isinstance(ins, Copy | Add):
            fields.update(sources=[word(s) for s in ins.sources], dest=word(ins.dest),
                          chown=word(ins.chown), chmod=word(ins.chmod))
            if isinstance(ins, Add):
                fields["checksum"] = word(ins.checksum)
            raw = Lex("\\", skip_quotes=True)  # a heredoc body: quotes are plain text
            fields["heredocs"] = [Heredoc(d.name, d.fd, d.expand, d.chomp,
                                          raw.process_word(d.content, env) if d.expand
                                          else d.content) for d in ins.heredocs]
        elif isinstance(ins, Env | Arg):  # and Label
            fields["pairs"] = [(word(k), word(v)) for k, v in ins.pairs]
        elif isinstance(ins, Expose):
            fields["ports"] = [p for port in ins.ports for p in lex.process_words(port, env)]
        elif isinstance(ins, Volume):
            fields["paths"] = [word(p) for p in ins.paths]
        elif isinstance(ins, Run):
            fields["mounts"] = [word(m) for m in ins.mounts]
        else:  # WORKDIR, USER, STOPSIGNAL: their one field
            field = next(k for k in slots if k not in _COMMON)
            fields[field] = word(getattr(ins, field))
    except ShellWordError as exc:
        raise error(ins.line, str(exc), ins.NAME) from None
    return type(ins)(**fields)


class StageEnv:
    """The variables one stage sees, instruction after instruction (ARG and ENV rules above).

    ``image_env``: the base image's ``Env`` (``NAME=value`` lines); ``meta``: the values of
    the meta ARGs (from :func:`meta_args`); ``build_args``: ``--build-arg``s.
    """

    def __init__(self, image_env: list[str], meta: Mapping[str, str],
                 build_args: Mapping[str, str], escape: str = "\\") -> None:
        self.env = dict(line.partition("=")[::2] for line in image_env)
        self.meta, self.build_args, self.escape = dict(meta), dict(build_args), escape
        self.from_env: set[str] = set(self.env)  # set by ENV (or the image): ARG cannot win

    def step(self, ins: Instruction) -> Instruction:
        """``ins`` expanded; ARG and ENV also change what the next instructions see."""
        if isinstance(ins, Arg):
            pairs = []
            for key, default in ins.pairs:
                value = self.build_args.get(key)
                if value is None and default is None:
                    value = self.meta.get(key)
                elif value is None and default is not None:
                    value = expand(Arg(pairs=[(key, default)], line=ins.line), self.env,
                                   self.escape).pairs[0][1]  # type: ignore[attr-defined]
                if value is not None and key not in self.from_env:
                    self.env[key] = value
                pairs.append((key, value))
            return Arg(pairs=pairs, line=ins.line, end_line=ins.end_line,
                       original=ins.original)
        done = expand(ins, self.env, self.escape)
        if isinstance(done, Env) and not isinstance(done, Label):
            for key, value in done.pairs:
                self.env[key] = value
                self.from_env.add(key)
        return done


def meta_args(dockerfile: Dockerfile, build_args: Mapping[str, str],
              defaults: Mapping[str, str] | None = None) -> dict[str, str]:
    """The values of the ARGs before the first FROM: what FROM lines may use."""
    scope = dict(defaults or {})
    for ins in dockerfile.meta_args:
        for key, default in ins.pairs:
            if key in build_args:
                scope[key] = build_args[key]
            elif default is not None:
                scope[key] = Lex(dockerfile.escape).process_word(default, scope)
    return scope


def resolve_stages(dockerfile: Dockerfile, build_args: Mapping[str, str],
                   defaults: Mapping[str, str] | None = None) -> list[Stage]:
    """The stages with their FROM base and platform expanded by the meta ARGs."""
    scope = meta_args(dockerfile, build_args, defaults)
    resolved = []
    for stage in dockerfile.stages:
        ins = From(base=stage.base, stage=stage.name, platform=stage.platform,
                   line=stage.line)
        done = expand(ins, scope, dockerfile.escape)
        assert isinstance(done, From)
        if not done.base:
            raise error(stage.line, f"base name ({stage.base}) should not be blank", "FROM")
        resolved.append(Stage(stage.index, stage.name, done.base, done.platform, stage.line,
                              stage.instructions))
    return resolved
