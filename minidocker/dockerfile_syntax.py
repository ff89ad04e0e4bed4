"""A Dockerfile's text as a list of nodes, the way BuildKit's parser reads it.

This is the syntax level of a Dockerfile (BuildKit's ``frontend/dockerfile/parser``): which
lines make one instruction, which words are its flags and arguments, which are JSON. It checks
nothing about what an instruction means; :mod:`minidocker.dockerfile` does that next. The
steps, for each line of the file:

1. **Directives**: ``# syntax=...``, ``# escape=...`` and ``# check=...`` count only in the
   comment lines at the very top (the first other line, even an empty one, ends them); each
   at most once. ``# escape=`` makes the backtick the escape and continuation character.
2. **Comments**: a line whose first non-blank character is ``#`` is dropped, also inside a
   continued instruction; so is an empty line there (with a warning, as BuildKit gives).
3. **Continuations**: a line ending in the escape character (spaces after it allowed, but not
   two of them: ``\\\\`` at the end is a literal backslash) continues on the next line.
4. **Split**: the first word is the instruction, then ``--flag`` words until the first word
   that is not one, then the arguments, split by the instruction's rule (:data:`SPLIT_RULES`):
   a JSON array of strings (exec form) or the text as is (shell form), white space, or
   ``key=value`` words.
5. **Heredocs**: for RUN, COPY and ADD in shell form (also under ONBUILD), each ``<<NAME``
   word (``<<-NAME`` strips leading tabs, ``<<"NAME"`` or ``<<'NAME'`` means no expansion,
   ``3<<NAME`` a file descriptor) takes the lines after the instruction up to ``NAME``.

The differential test (tests/unit/test_dockerfile_buildkit.py) checks these nodes against
BuildKit's own parser. Lesson 07 (Dockerfiles) prints them.
"""

from __future__ import annotations

import json
import re

from minidocker.errors import DockerfileError
from minidocker.record import Record
from minidocker.shellwords import Lex, ShellWordError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

# Go's regexp \s is ASCII: these are the characters BuildKit splits and trims on
_WHITESPACE = re.compile(r"[\t\v\f\r ]+")
_DIRECTIVE = re.compile(r"^([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*(.+?)[\t\n\f\r ]*$")
_HEREDOC = re.compile(r"^(\d*)<<(-?)[\t\n\f\r ]*([^<]*)$")
DIRECTIVES = ("syntax", "escape", "check")

# instruction (lowercase) -> how its arguments are split (BuildKit's line_parsers.go)
SPLIT_RULES = {
    "add": "json-or-list", "copy": "json-or-list", "volume": "json-or-list",
    "cmd": "json-or-string", "entrypoint": "json-or-string", "run": "json-or-string",
    "shell": "json-or-string",
    "env": "key-value", "label": "key-value", "arg": "words",
    "expose": "list", "from": "list",
    "maintainer": "string", "stopsignal": "string", "user": "string", "workdir": "string",
    "healthcheck": "healthcheck", "onbuild": "instruction",
}
HEREDOC_INSTRUCTIONS = ("run", "copy", "add")


class Heredoc(Record):
    """``<<NAME``: the lines up to NAME. ``expand`` is false when the name was quoted;
    ``chomp`` (``<<-``) strips leading tabs (the content here is still as written)."""

    __slots__ = ("name", "fd", "expand", "chomp", "content")

    def __init__(self, name: str, fd: int = 0, expand: bool = True, chomp: bool = False,
                 content: str = "") -> None:
        self.name = name
        self.fd = fd
        self.expand = expand
        self.chomp = chomp
        self.content = content


class Node(Record):
    """One instruction as written: ``keyword`` in its original case, ``flags`` as
    ``--name=value`` words, ``args`` split by the instruction's rule (ENV and LABEL as
    key, value, separator triples; separator ``=`` or "" for ``ENV key value``),
    ``trigger`` the node after ONBUILD, lines counted from 1."""

    __slots__ = ("keyword", "flags", "args", "json", "original", "start_line", "end_line",
                 "heredocs", "trigger")
    NESTED = {"heredocs": Heredoc}

    def __init__(self, keyword: str, flags: list[str] | None = None,
                 args: list[str] | None = None, json: bool = False, original: str = "",
                 start_line: int = 0, end_line: int = 0, heredocs: list[Heredoc] | None = None,
                 trigger: Node | None = None) -> None:
        self.keyword = keyword
        self.flags = flags or []
        self.args = args or []
        self.json = json
        self.original = original
        self.start_line = start_line
        self.end_line = end_line
        self.heredocs = heredocs or []
        self.trigger = trigger

    @property
    def command(self) -> str:
        return self.keyword.lower()


class Syntax(Record):
    """What the syntax level found: the nodes, the directives, and warnings."""

    __slots__ = ("nodes", "escape", "directives", "warnings")
    NESTED = {"nodes": Node}

    def __init__(self, nodes: list[Node], escape: str = "\\",
                 directives: dict[str, str] | None = None,
                 warnings: list[str] | None = None) -> None:
        self.nodes = nodes
        self.escape = escape
        self.directives = directives or {}
        self.warnings = warnings or []


def error(line: int, message: str, instruction: str = "") -> DockerfileError:
    # BuildKit's messages often start with the instruction already ("ARG requires ...")
    where = f"{instruction}: " if instruction and not message.startswith(instruction) else ""
    return DockerfileError(f"Dockerfile:{line}: {where}{message}")


def _lines(text: str) -> Iterator[str]:
    """Lines with their ``\\n``: Go's scanner splits on ``\\n`` only (not ``\\r``, ``\\f``...)."""
    start = 0
    while start < len(text):
        end = text.find("\n", start)
        end = len(text) if end < 0 else end + 1
        yield text[start:end]
        start = end


class _Directives:
    def __init__(self) -> None:
        self.escape = "\\"
        self.found: dict[str, str] = {}
        self.done = False
        self.continuation = self._continuation("\\")

    @staticmethod
    def _continuation(escape: str) -> re.Pattern[str]:
        e = re.escape(escape)
        return re.compile(rf"([^{e}]){e}[ \t]*$|^{e}[ \t]*$")

    def check(self, line: str, number: int) -> None:
        if self.done:
            return
        match = _DIRECTIVE.match(line[1:].lstrip()) if line.startswith("#") else None
        key = match.group(1).lower() if match else ""
        if key not in DIRECTIVES:
            self.done = True
            return
        assert match is not None
        if key in self.found:
            raise error(number, f"only one {key} parser directive can be used")
        self.found[key] = match.group(2)
        if key == "escape":
            if match.group(2) not in ("`", "\\"):
                raise error(number, f"invalid escape token '{match.group(2)}' does not match "
                                    "` or \\")
            self.escape = match.group(2)
            self.continuation = self._continuation(self.escape)

    def trim_continuation(self, line: str) -> tuple[str, bool]:
        """The line without its continuation character, and whether the instruction ends."""
        if self.continuation.search(line):
            return self.continuation.sub(r"\1", line, count=1), False
        return line, True


def _is_comment(line: str) -> bool:
    return line.lstrip().startswith("#")


def parse_syntax(text: str) -> Syntax:
    """The nodes of a Dockerfile; raises :class:`DockerfileError` naming the line."""
    d = _Directives()
    nodes: list[Node] = []
    warnings: list[str] = []
    lines = _lines(text.removeprefix("\ufeff"))
    number = 0
    for raw in lines:
        line = raw.rstrip("\r\n").lstrip()
        d.check(line, number + 1)
        number += 1
        start = number
        line = "" if _is_comment(line) else line
        line, ended = d.trim_continuation(line)
        if ended and not line:
            continue
        parts, empty_continuation = [line], False
        while not ended:
            following = next(lines, None)
            if following is None:
                break
            raw = following
            number += 1
            body = raw.rstrip("\r\n")
            d.check(body, number)
            if _is_comment(raw):
                continue
            if not body.strip():
                empty_continuation = True
                continue
            body, ended = d.trim_continuation(body)
            parts.append(body)
        logical = "".join(parts)
        if empty_continuation:
            warnings.append(f"Dockerfile:{number}: empty continuation line found in: {logical}")
        node = node_from_line(logical, d.escape, start)
        heredoc_node = node.trigger if node.command == "onbuild" and node.trigger else node
        if heredoc_node.command in HEREDOC_INSTRUCTIONS and not heredoc_node.json \
                and "<<" in logical:
            for doc in heredocs_in(logical, start):
                content, terminated = [], False
                for raw in lines:
                    number += 1
                    candidate = raw.rstrip("\r\n")
                    if (candidate.lstrip("\t") if doc.chomp else candidate) == doc.name:
                        terminated = True
                        break
                    content.append(raw)
                if not terminated:
                    raise error(start, "unterminated heredoc", node.keyword.upper())
                doc.content = "".join(content)
                node.heredocs.append(doc)
        node.start_line, node.end_line = start, number
        nodes.append(node)
    if not nodes:
        raise error(number, "file with no instructions")
    return Syntax(nodes, d.escape, d.found, warnings)


def node_from_line(line: str, escape: str, number: int = 0) -> Node:
    """One logical line (continuations joined) split into a node."""
    keyword, rest = (_WHITESPACE.split(line.strip(), maxsplit=1) + [""])[:2]
    flags, rest = split_flags(rest, escape)
    rest = rest.strip()
    node = Node(keyword, flags, original=line)
    rule = SPLIT_RULES.get(keyword.lower())
    try:
        _split_args(node, rule, rest, escape, number)
    except ValueError as exc:
        raise error(number, str(exc), keyword.upper()) from None
    return node


def _split_args(node: Node, rule: str | None, rest: str, escape: str, number: int) -> None:
    if rule is None or not rest:
        return  # unknown (reported by minidocker.dockerfile), or no arguments
    if rule == "instruction":
        node.trigger = node_from_line(rest, escape, number)
    elif rule == "string":
        node.args = [rest]
    elif rule == "list":
        node.args = _WHITESPACE.split(rest)
    elif rule in ("json-or-list", "json-or-string"):
        exec_form = json_array(rest)
        if exec_form is not None:
            node.args, node.json = exec_form, True
        elif rest:
            node.args = _WHITESPACE.split(rest) if rule == "json-or-list" else [rest]
    elif rule == "words":
        node.args = words(rest, escape)
    elif rule == "key-value":
        node.args = key_values(rest, escape, node.keyword.upper())
    elif rule == "healthcheck":
        kind, command = (_WHITESPACE.split(rest, maxsplit=1) + [""])[:2]
        exec_form = json_array(command)
        node.args = [kind] + (exec_form if exec_form is not None else [command] if command
                              else [])
        node.json = exec_form is not None


def _no_constants(name: str) -> None:
    raise ValueError(name)  # Go's encoding/json has no NaN or Infinity


def json_array(text: str) -> list[str] | None:
    """The exec form: a JSON array of strings; None when the text is not JSON (then it is
    the shell form); an array of anything but strings is an error, as in BuildKit."""
    text = text.lstrip()
    if not text.startswith("["):
        return None
    try:
        value = json.loads(text, parse_constant=_no_constants)
    except ValueError:
        return None
    if not isinstance(value, list):
        return None
    if not all(isinstance(v, str) for v in value):
        raise ValueError("when using JSON array syntax, arrays must be comprised of strings "
                         "only")
    return value


def split_flags(text: str, escape: str) -> tuple[list[str], str]:
    """Leading ``--flag[=value]`` words (quotes and escapes removed), and the rest as is.
    A lone ``--`` ends the flags."""
    flags: list[str] = []
    pos = 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if not text.startswith("--", pos):
            return flags, text[pos:]
        word, quoted, pos = _flag_word(text, pos, escape)
        if word == "--":
            return flags, text[pos:]
        if word or quoted:
            flags.append(word)
        if pos >= len(text):
            return flags, ""


def _flag_word(text: str, pos: int, escape: str) -> tuple[str, bool, int]:
    out: list[str] = []
    quote, quoted = "", False
    while pos < len(text):
        ch = text[pos]
        if not quote and ch.isspace():
            break
        pos += 1
        if quote and ch == quote:
            quote = ""
        elif not quote and ch in "'\"":
            quote, quoted = ch, True
        elif ch == escape:
            if pos < len(text):
                out.append(text[pos])
                pos += 1
        else:
            out.append(ch)
    return "".join(out), quoted, pos


def words(text: str, escape: str) -> list[str]:
    """White-space separated words; quotes keep spaces in and stay in the word (they are
    removed when the word is expanded). BuildKit's ``parseWords``."""
    found: list[str] = []
    word: list[str] = []
    quote, blank_ok, pos = "", False, 0
    while pos < len(text):
        ch = text[pos]
        pos += 1
        if not quote and ch.isspace():
            if blank_ok or word:
                found.append("".join(word))
            word, blank_ok = [], False
            continue
        if quote:
            if ch == quote:
                quote = ""
            elif ch == escape and quote != "'":
                if pos == len(text):
                    continue
                word.append(ch)
                ch = text[pos]
                pos += 1
        elif ch in "'\"":
            quote, blank_ok = ch, True
        elif ch == escape:
            if pos == len(text):
                continue
            word.append(ch)
            ch = text[pos]
            pos += 1
        word.append(ch)
    if blank_ok or word:
        found.append("".join(word))
    return found


def key_values(text: str, escape: str, keyword: str) -> list[str]:
    """ENV and LABEL: ``k=v k2="v 2"`` as k, v, ``=`` triples; the old ``ENV k some value``
    (no ``=`` in the first word) as one triple k, ``some value``, ""."""
    found = words(text, escape)
    if not found:
        return []
    if "=" not in found[0]:
        parts = _WHITESPACE.split(text, maxsplit=1)
        if len(parts) < 2:
            raise ValueError(f"{keyword} must have two arguments")
        return [parts[0], parts[1], ""]
    triples: list[str] = []
    for word in found:
        if "=" not in word:
            raise ValueError(f"Syntax error - can't find = in {json.dumps(word)}. "
                             "Must be of the form: name=value")
        key, _, value = word.partition("=")
        triples += [key, value, "="]
    return triples


def heredocs_in(line: str, number: int) -> list[Heredoc]:
    """The ``<<NAME`` words of a line, in order (BuildKit's ``heredocsFromLine``)."""
    raw = Lex("\\", raw_quotes=True, raw_escapes=True, skip_unset=True)
    try:
        candidates = raw.process_words(line, {})
    except ShellWordError:
        return []
    found = []
    for word in candidates:
        try:
            doc = heredoc(word)
        except ShellWordError as exc:
            raise error(number, str(exc)) from None
        if doc is not None:
            found.append(doc)
    return found


def heredoc(word: str) -> Heredoc | None:
    """``<<EOF``, ``<<-EOF``, ``<<'EOF'``, ``2<<EOF`` as a Heredoc (content still empty)."""
    match = _HEREDOC.match(word)
    if not match or not match.group(3):
        return None
    fd, chomp, rest = match.groups()
    names = Lex("\\", skip_unset=True).process_words(rest, {})
    if len(names) != 1:
        return None
    raw = Lex("\\", raw_quotes=True, skip_unset=True).process_words(rest, {})
    quotes = sum(names[0].count(q) for q in "'\"")
    raw_quotes = sum(raw[0].count(q) for q in "'\"")
    return Heredoc(names[0], int(fd or 0), expand=quotes == raw_quotes, chomp=chomp == "-")


def chomp(content: str) -> str:
    """``<<-``: leading tabs removed from every line."""
    return re.sub(r"(?m)^\t+", "", content)
