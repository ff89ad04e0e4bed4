"""A small subset of Go's ``text/template``, for ``--format`` (``ps``, ``inspect``).

Docker's ``--format`` takes a Go template: text with *actions* between ``{{`` and ``}}``
evaluated against a value (a container, as ``ps`` or ``inspect`` sees it). This module
implements the part people use:

=============================== =============================================================
``{{.ID}}`` ``{{.State.Pid}}``  a field of the value (nested with dots); ``{{.}}`` the value
``{{json .Config}}``            a function: ``json``, ``upper``, ``lower``, ``title``, ``len``,
                                ``index X KEY``, ``join LIST SEP``, ``split STR SEP``,
                                ``printf FMT ARGS...``, ``print``, ``println``, ``not``,
                                ``eq``, ``ne``, ``and``, ``or``, ``truncate STR N``,
                                ``pad STR LEFT RIGHT``
``{{.Names | upper}}``          a pipeline: the left value becomes the last argument
``{{if X}}..{{else}}..{{end}}`` also ``{{else if Y}}``; ``{{range X}}..{{end}}`` and
                                ``{{with X}}..{{end}}`` rebind ``.``
``{{- ... -}}``                 trim the white space before / after the action
``"text"``, ```raw```, ``3``    literals, and ``true``, ``false``, ``nil``
=============================== =============================================================

Values print as Go's ``fmt`` prints them (``true``, ``[a b]``, ``map[k:v]``; a missing map key
prints ``<no value>``). A value marked :class:`Strict` (``ps``'s row, like Docker's typed
``ContainerContext``) refuses unknown fields instead. Errors are one line, worded as Go words
them: ``template: :1: unclosed action``, ``template: :1:2: executing "" at <.Foo>: ...``.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


class TemplateError(ValueError):
    """A template that does not parse, or fails when run; the text is Go's wording."""


class Strict(dict):  # type: ignore[type-arg,unused-ignore]
    """A value whose fields are fixed: asking for another one is an error, not ``<no value>``.

    ``type_name`` is what the error calls it (Docker's ``*formatter.ContainerContext``)."""

    type_name = "value"

    def __init__(self, fields: dict[str, Any], type_name: str = "value") -> None:
        super().__init__(fields)
        self.type_name = type_name


class _Missing:
    def __repr__(self) -> str:
        return "<no value>"


MISSING = _Missing()


# -- lexing: text and actions ----------------------------------------------------------------

def _split(source: str) -> list[tuple[str, str, int]]:
    """``[("text", s, line) | ("action", s, line)]`` with ``{{-``/``-}}`` trimming applied."""
    parts: list[tuple[str, str, int]] = []
    pos = 0
    trim_next = False
    while True:
        start = source.find("{{", pos)
        text = source[pos:] if start < 0 else source[pos:start]
        if trim_next:
            text = text.lstrip(" \t\r\n")
        line = source.count("\n", 0, pos) + 1
        if start < 0:
            if text:
                parts.append(("text", text, line))
            return parts
        inner_start = start + 2
        if source.startswith("- ", inner_start) or source.startswith("-\t", inner_start) \
                or source.startswith("-\n", inner_start):
            text = text.rstrip(" \t\r\n")
            inner_start += 2
        if text:
            parts.append(("text", text, line))
        end = _find_close(source, inner_start)
        if end < 0:
            raise TemplateError(f"template: :{source.count(chr(10), 0, start) + 1}: "
                                "unclosed action")
        inner = source[inner_start:end]
        trim_next = False
        if inner.endswith(" -") or inner.endswith("\t-") or inner.endswith("\n-"):
            inner = inner[:-2]
            trim_next = True
        parts.append(("action", inner.strip(), source.count("\n", 0, start) + 1))
        pos = end + 2


def _find_close(source: str, pos: int) -> int:
    """The ``}}`` closing an action, skipping over string literals inside it."""
    i = pos
    while i < len(source):
        c = source[i]
        if c == '"':
            i += 1
            while i < len(source) and source[i] != '"':
                i += 2 if source[i] == "\\" else 1
        elif c == "`":
            i = source.find("`", i + 1)
            if i < 0:
                return -1
        elif source.startswith("}}", i):
            return i
        i += 1
    return -1


def _tokens(action: str, line: int) -> list[str]:
    """The words of an action: fields, identifiers, literals, ``|``, parentheses."""
    out: list[str] = []
    i = 0
    while i < len(action):
        c = action[i]
        if c.isspace():
            i += 1
        elif c in "|()":
            out.append(c)
            i += 1
        elif c == '"':
            j = i + 1
            while j < len(action) and action[j] != '"':
                j += 2 if action[j] == "\\" else 1
            if j >= len(action):
                raise TemplateError(f"template: :{line}: unterminated quoted string")
            out.append(action[i:j + 1])
            i = j + 1
        elif c == "`":
            j = action.find("`", i + 1)
            if j < 0:
                raise TemplateError(f"template: :{line}: unterminated raw quoted string")
            out.append(action[i:j + 1])
            i = j + 1
        else:
            j = i
            while j < len(action) and not action[j].isspace() and action[j] not in "|()\"`":
                j += 1
            out.append(action[i:j])
            i = j
    return out


# -- parsing into a tree ------------------------------------------------------------------------

class _Node:
    """A parsed piece: ``kind`` is text, pipe, if, range or with."""

    __slots__ = ("kind", "text", "pipe", "body", "orelse", "line")

    def __init__(self, kind: str, line: int, text: str = "", pipe: list[Any] | None = None,
                 body: list[_Node] | None = None, orelse: list[_Node] | None = None) -> None:
        self.kind, self.line, self.text = kind, line, text
        self.pipe = pipe or []
        self.body = body or []
        self.orelse = orelse or []


class Template:
    """A parsed template; :meth:`render` runs it against a value.

    ``functions`` adds to or replaces :data:`FUNCTIONS` for this template, as Go's
    ``Template.Funcs`` does (Docker's CLI gives its formatters their own ``json``)."""

    def __init__(self, source: str, functions: dict[str, Callable[..., Any]] | None = None
                 ) -> None:
        self.source = source
        self.functions = FUNCTIONS if functions is None else {**FUNCTIONS, **functions}
        parts = _split(source)
        self.nodes, rest, ending = self._block(parts, 0, top=True)
        if ending is not None:
            raise TemplateError(f"template: :{parts[rest - 1][2]}: unexpected {{{{{ending}}}}}")

    def _block(self, parts: list[tuple[str, str, int]], i: int,
               top: bool = False) -> tuple[list[_Node], int, str | None]:
        """Nodes until ``{{end}}``/``{{else...}}`` (returned as the ending) or the source's end."""
        nodes: list[_Node] = []
        while i < len(parts):
            kind, text, line = parts[i]
            i += 1
            if kind == "text":
                nodes.append(_Node("text", line, text=text))
                continue
            words = _tokens(text, line)
            if not words:
                raise TemplateError(f"template: :{line}: missing value for command")
            head = words[0]
            if head in ("end", "else"):
                if top:
                    raise TemplateError(f"template: :{line}: unexpected {{{{{head}}}}}")
                return nodes, i, " ".join(words)
            if head in ("if", "range", "with"):
                node, i = self._control(head, words[1:], parts, i, line)
                nodes.append(node)
                continue
            if head in ("define", "template", "block", "break", "continue"):
                raise TemplateError(f"template: :{line}: {{{{{head}}}}} is not supported here")
            nodes.append(_Node("pipe", line, pipe=_parse_pipe(words, line, self.functions)))
        if not top:
            raise TemplateError(f"template: :{parts[-1][2] if parts else 1}: unexpected EOF")
        return nodes, i, None

    def _control(self, head: str, words: list[str], parts: list[tuple[str, str, int]], i: int,
                 line: int) -> tuple[_Node, int]:
        if not words:
            raise TemplateError(f"template: :{line}: missing value for {head}")
        body, i, ending = self._block(parts, i)
        node = _Node(head, line, pipe=_parse_pipe(words, line, self.functions), body=body)
        if ending == "else":
            node.orelse, i, ending = self._block(parts, i)
        elif ending is not None and ending.startswith("else if ") and head == "if":
            # {{else if X}} is {{else}}{{if X}}...{{end}} sharing the one {{end}}
            inner, i = self._control("if", ending.split()[2:], parts, i, line)
            node.orelse = [inner]
            return node, i
        if ending != "end":
            raise TemplateError(f"template: :{line}: unexpected {{{{{ending}}}}} in {head}")
        return node, i

    def render(self, value: Any) -> str:
        out: list[str] = []
        _run(self.nodes, value, value, out)
        return "".join(out)


def _parse_pipe(words: list[str], line: int,
                functions: dict[str, Callable[..., Any]]) -> list[list[Any]]:
    """``a b | c d`` -> ``[[a, b], [c, d]]``, with parenthesised sub-pipelines nested."""
    commands: list[list[Any]] = [[]]
    stack: list[list[list[Any]]] = []
    for word in words:
        if word == "|":
            if not commands[-1]:
                raise TemplateError(f"template: :{line}: missing command before |")
            commands.append([])
        elif word == "(":
            stack.append(commands)
            commands = [[]]
        elif word == ")":
            if not stack:
                raise TemplateError(f"template: :{line}: unexpected right paren")
            inner = commands
            commands = stack.pop()
            commands[-1].append(("pipe", inner))
        else:
            commands[-1].append(_operand(word, line, functions))
    if stack:
        raise TemplateError(f"template: :{line}: unclosed left paren")
    if not commands[-1]:
        raise TemplateError(f"template: :{line}: missing command after |")
    return commands


def _operand(word: str, line: int, functions: dict[str, Callable[..., Any]]) -> Any:
    if word.startswith('"'):
        import ast

        try:
            return ("lit", ast.literal_eval(word))
        except (SyntaxError, ValueError):
            raise TemplateError(f"template: :{line}: bad string syntax: {word}") from None
    if word.startswith("`"):
        return ("lit", word[1:-1])
    if word == ".":
        return ("field", [])
    if word.startswith("."):
        names = word[1:].split(".")
        if not all(n.isidentifier() for n in names):
            raise TemplateError(f"template: :{line}: bad field name: {word}")
        return ("field", names)
    if word in ("true", "false"):
        return ("lit", word == "true")
    if word == "nil":
        return ("lit", None)
    if word.lstrip("-").isdigit():
        return ("lit", int(word))
    if word.startswith("$"):
        raise TemplateError(f"template: :{line}: undefined variable \"{word}\"")
    if word not in functions:
        raise TemplateError(f'template: :{line}: function "{word}" not defined')
    return ("func", word, functions[word])  # resolved now: running needs no function table


# -- running ------------------------------------------------------------------------------------

def _run(nodes: list[_Node], dot: Any, root: Any, out: list[str]) -> None:
    for node in nodes:
        if node.kind == "text":
            out.append(node.text)
        elif node.kind == "pipe":
            out.append(fmt(_pipe(node.pipe, dot, node.line)))
        elif node.kind == "if":
            _run(node.body if truth(_pipe(node.pipe, dot, node.line)) else node.orelse,
                 dot, root, out)
        elif node.kind == "with":
            value = _pipe(node.pipe, dot, node.line)
            if truth(value):
                _run(node.body, value, root, out)
            else:
                _run(node.orelse, dot, root, out)
        elif node.kind == "range":
            value = _pipe(node.pipe, dot, node.line)
            items = list(value.values()) if isinstance(value, dict) else \
                value if isinstance(value, list | tuple) else None
            if items is None and value not in (None, MISSING):
                raise TemplateError(f"template: :{node.line}: range can't iterate over "
                                    f"{fmt(value)}")
            if not items:
                _run(node.orelse, dot, root, out)
            for item in items or ():
                _run(node.body, item, root, out)


def _pipe(commands: list[list[Any]], dot: Any, line: int) -> Any:
    value: Any = MISSING
    for i, command in enumerate(commands):
        extra = [value] if i else []
        value = _command(command, extra, dot, line)
    return value


def _command(command: list[Any], extra: list[Any], dot: Any, line: int) -> Any:
    head = command[0]
    if head[0] == "func":
        args = [_value(arg, dot, line) for arg in command[1:]] + extra
        try:
            return head[2](*args)
        except TemplateError:
            raise
        except (TypeError, ValueError, KeyError, IndexError) as exc:
            raise TemplateError(f'template: :{line}: executing "" at <{head[1]}>: '
                                f"error calling {head[1]}: {exc}") from None
    if len(command) > 1 or extra:
        shown = head[1] if head[0] == "lit" else "." + ".".join(head[1])
        raise TemplateError(f"template: :{line}: can't give argument to non-function {shown}")
    return _value(head, dot, line)


def _value(operand: Any, dot: Any, line: int) -> Any:
    kind, arg = operand[0], operand[1]
    if kind == "func":  # a function as an argument is called with none, as Go does
        return _command([operand], [], dot, line)
    if kind == "lit":
        return arg
    if kind == "pipe":
        return _pipe(arg, dot, line)
    value = dot
    for i, name in enumerate(arg):
        value = _field(value, name, "." + ".".join(arg[:i + 1]), line)
    return value


def _field(value: Any, name: str, shown: str, line: int) -> Any:
    if isinstance(value, Strict):
        if name not in value:
            raise TemplateError(f'template: :{line}: executing "" at <{shown}>: can\'t '
                                f"evaluate field {name} in type {value.type_name}")
        return value[name]
    if isinstance(value, dict):
        return value.get(name, MISSING)
    if value is None or value is MISSING:
        return MISSING
    raise TemplateError(f'template: :{line}: executing "" at <{shown}>: can\'t evaluate field '
                        f"{name} in type {_go_type(value)}")


def _go_type(value: Any) -> str:
    return {bool: "bool", int: "int", float: "float64", str: "string", list: "[]interface {}"}\
        .get(type(value), "interface {}")


def truth(value: Any) -> bool:
    """Go's truth: false, 0, nil and empty strings, lists and maps are false."""
    return value is not MISSING and bool(value)


def fmt(value: Any) -> str:
    """How Go's ``fmt.Sprint`` shows a value decoded from JSON."""
    if value is MISSING:
        return "<no value>"
    if value is None:
        return "<nil>"
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(int(value)) if value.is_integer() and abs(value) < 1e21 else repr(value)
    if isinstance(value, list | tuple):
        return "[" + " ".join(fmt(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{fmt(value[k])}" for k in sorted(value)) + "]"
    return str(value)


# -- functions ----------------------------------------------------------------------------------

def _json(value: Any) -> str:
    import json

    return json.dumps(None if value is MISSING else value, separators=(",", ":"),
                      ensure_ascii=False)


def _printf(form: str, *args: Any) -> str:
    """Go's ``%s``, ``%d``, ``%v``, ``%q`` and ``%%``, with widths (``%-10s``)."""
    import re

    values = iter(args)

    def one(match: re.Match[str]) -> str:
        flags, verb = match.group(1), match.group(2)
        if verb == "%":
            return "%"
        value = next(values, MISSING)
        text = '"' + fmt(value).replace('"', '\\"') + '"' if verb == "q" else fmt(value)
        return ("%" + flags + "s") % text

    return re.sub(r"%([-0-9]*)([sdvq%])", one, form)


def _index(container: Any, *keys: Any) -> Any:
    for key in keys:
        if isinstance(container, dict):
            container = container.get(key, MISSING)
        else:
            container = container[int(key)]
    return container


def _truncate(text: Any, n: int) -> str:
    return fmt(text)[:n]


def _pad(text: Any, left: int, right: int) -> str:
    return " " * left + fmt(text) + " " * right


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "json": _json,
    "upper": lambda s: fmt(s).upper(),
    "lower": lambda s: fmt(s).lower(),
    "title": lambda s: fmt(s).title(),
    "len": lambda v: len(v),
    "index": _index,
    "join": lambda items, sep: sep.join(fmt(i) for i in items),
    "split": lambda s, sep: fmt(s).split(sep),
    "printf": _printf,
    "print": lambda *a: " ".join(fmt(v) for v in a),
    "println": lambda *a: " ".join(fmt(v) for v in a) + "\n",
    "not": lambda v: not truth(v),
    "eq": lambda a, *b: any(a == x for x in b),
    "ne": lambda a, b: a != b,
    "and": lambda *a: next((v for v in a if not truth(v)), a[-1]),
    "or": lambda *a: next((v for v in a if truth(v)), a[-1]),
    "truncate": _truncate,
    "pad": _pad,
}


def parse(source: str, functions: dict[str, Callable[..., Any]] | None = None) -> Template:
    """Parse ``source``; :class:`TemplateError` (one line, Go's words) if it is malformed.
    ``functions``: see :class:`Template`."""
    return Template(source, functions)


def render(source: str, value: Any) -> str:
    return Template(source).render(value)
