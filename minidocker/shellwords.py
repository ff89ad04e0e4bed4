"""BuildKit's shell words: how a Dockerfile splits, unquotes and expands ``$VARIABLES``.

A Dockerfile is not a shell script, but its words follow a small shell: BuildKit's
``frontend/dockerfile/shell/lex.go``. This module is that lexer, rule for rule, so that
``COPY "$SRC dir" /x`` and ``ENV A=${B:-default}`` mean here what they mean to ``docker build``:

==================== ============================================================
``$V``, ``${V}``     the value, or "" when V is unset
``${V:-x}``          x when V is unset *or empty*; ``${V-x}``: only when unset
``${V:+x}``          x when V is set and not empty; ``${V+x}``: when set
``${V:?msg}``        an error ``V: msg`` when unset or empty; ``${V?msg}``: when unset
``${V#pat}``         V without its shortest matching prefix (``##``: longest);
                     ``%``/``%%`` the same for a suffix; ``${V/a/b}``, ``${V//a/b}`` replace
``'single'``         nothing inside is special, not even the escape character
``"double"``         ``$`` expands; the escape character escapes only ``"``, ``$`` and itself
``\\x`` (or `` `x``) x, literally: the escape character is ``\\`` unless ``# escape=``
==================== ============================================================

Two results come out of one scan: the word (:func:`Lex.process_word`: one string, spaces
kept) and the words (:func:`Lex.process_words`: split on unquoted white space, as EXPOSE and
the heredoc finder want). The parser also uses the lexer "raw" (quotes and escapes kept) and
with ``skip_unset`` (an unknown ``$NAME`` is left as written) to find heredoc names.
Lesson 07 (Dockerfiles) prints words before and after.
"""

from __future__ import annotations

import re

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

EOF = ""
_SPECIAL_PARAMS = "@*#?-$!0"


class ShellWordError(ValueError):
    """A word that does not lex: an unmatched quote or brace, a bad ``${...}``, ``${V:?msg}``."""


class Lex:
    """One way of reading words; the flags are BuildKit's ``Lex`` fields."""

    def __init__(self, escape: str = "\\", raw_quotes: bool = False,
                 raw_escapes: bool = False, skip_quotes: bool = False,
                 skip_unset: bool = False) -> None:
        self.escape = escape
        self.raw_quotes = raw_quotes  # keep the quote characters in the result
        self.raw_escapes = raw_escapes  # keep the escape characters in the result
        self.skip_quotes = skip_quotes  # quotes are plain characters (heredoc bodies)
        self.skip_unset = skip_unset  # leave an unset $NAME as written

    def process_word(self, word: str, env: Mapping[str, str]) -> str:
        """``word`` unquoted and expanded into one string."""
        return _Scan(self, word, env).run(EOF, self.raw_escapes)[0]

    def process_words(self, word: str, env: Mapping[str, str]) -> list[str]:
        """``word`` split on unquoted white space, each piece unquoted and expanded."""
        return _Scan(self, word, env).run(EOF, self.raw_escapes)[1]


class _Words:
    """Splits as it goes: quoted text and escaped characters never split a word."""

    def __init__(self) -> None:
        self.words: list[str] = []
        self.buf = ""
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if ch.isspace():
            if self.in_word and self.buf:
                self.words.append(self.buf)
                self.buf, self.in_word = "", False
        else:
            self.add_raw(ch)

    def add_raw(self, text: str) -> None:
        self.buf += text
        self.in_word = True

    def add_string(self, text: str) -> None:
        for ch in text:
            self.add_char(ch)

    def result(self) -> list[str]:
        if self.buf:
            self.words.append(self.buf)
            self.buf, self.in_word = "", False
        return self.words


class _Scan:
    def __init__(self, lex: Lex, text: str, env: Mapping[str, str]) -> None:
        self.lex, self.text, self.env, self.pos = lex, text, env, 0
        self.raw_escapes = lex.raw_escapes

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else EOF

    def next(self) -> str:
        ch = self.peek()
        self.pos += 1 if ch else 0
        return ch

    def run(self, stop: str, raw_escapes: bool) -> tuple[str, list[str]]:
        """Scan up to ``stop`` (EOF: the end), returning the word and the words."""
        saved, self.raw_escapes = self.raw_escapes, raw_escapes
        try:
            return self._run(stop)
        finally:
            self.raw_escapes = saved

    def _run(self, stop: str) -> tuple[str, list[str]]:
        result: list[str] = []
        words = _Words()
        quotes = {} if self.lex.skip_quotes else {"'": self.single_quote, '"': self.double_quote}
        while self.peek():
            ch = self.peek()
            if stop and ch == stop:
                self.next()
                return "".join(result), words.result()
            if ch == "$":
                text = self.dollar()
                result.append(text)
                words.add_string(text)  # an expanded value splits like the text around it
            elif ch == "<":
                text = self.possible_heredoc()
                result.append(text)
                words.add_raw(text)
            elif ch in quotes:
                text = quotes[ch]()
                result.append(text)
                words.add_raw(text)
            else:
                ch = self.next()
                if ch == self.lex.escape:
                    if self.raw_escapes:
                        words.add_raw(ch)
                        result.append(ch)
                    ch = self.next()
                    if not ch:
                        break
                    words.add_raw(ch)
                else:
                    words.add_char(ch)
                result.append(ch)
        if stop:
            raise ShellWordError(f"unexpected end of statement while looking for matching {stop}")
        return "".join(result), words.result()

    def single_quote(self) -> str:
        opening = self.next()
        out = [opening] if self.lex.raw_quotes else []
        while True:
            ch = self.next()
            if not ch:
                raise ShellWordError(
                    "unexpected end of statement while looking for matching single-quote")
            if ch == "'":
                if self.lex.raw_quotes:
                    out.append(ch)
                return "".join(out)
            out.append(ch)

    def double_quote(self) -> str:
        opening = self.next()
        out = [opening] if self.lex.raw_quotes else []
        while True:
            ch = self.peek()
            if not ch:
                raise ShellWordError(
                    "unexpected end of statement while looking for matching double-quote")
            if ch == '"':
                self.next()
                if self.lex.raw_quotes:
                    out.append(ch)
                return "".join(out)
            if ch == "$":
                out.append(self.dollar())
                continue
            ch = self.next()
            if ch == self.lex.escape:
                if self.raw_escapes:
                    out.append(ch)
                following = self.peek()
                if not following:
                    continue
                if following in ('"', "$", self.lex.escape):
                    ch = self.next()
            out.append(ch)

    def name(self) -> str:
        ch = self.peek()
        if ch.isdigit():  # $1, $12: positional, never set in a Dockerfile
            start = self.pos
            while self.peek().isdigit():
                self.next()
            return self.text[start:self.pos]
        if ch and ch in _SPECIAL_PARAMS:
            return self.next()
        start = self.pos
        while self.peek() and (self.peek().isalnum() or self.peek() == "_"):
            self.next()
        return self.text[start:self.pos]

    def lookup(self, name: str) -> str | None:
        return self.env.get(name)

    def dollar(self) -> str:
        self.next()
        if self.peek() != "{":
            name = self.name()
            if not name:
                return "$"
            value = self.lookup(name)
            if value is None and self.lex.skip_unset:
                return "$" + name
            return value or ""
        self.next()
        if not self.peek():
            raise ShellWordError("syntax error: missing '}'")
        if self.peek() in "{}:":
            raise ShellWordError("syntax error: bad substitution")
        name = self.name()
        op = self.next()
        if not op:
            raise ShellWordError("syntax error: missing '}'")
        if op == "}":
            value = self.lookup(name)
            if value is None and self.lex.skip_unset:
                return "${" + name + "}"
            return value or ""
        if op == "/":
            return self.replace(name)
        null_is_unset = op == ":"
        if null_is_unset:
            op += self.next()
        kind = op[-1:]
        if kind not in ("+", "-", "?", "#", "%") or (null_is_unset and kind in "#%"):
            raise ShellWordError(f"unsupported modifier ({op}) in substitution")
        word = self.operand("}", raw_escapes=kind in "#%")
        value = self.lookup(name)
        if value is None and self.lex.skip_unset:
            return "${" + name + op + word + "}"
        unset = value is None or (null_is_unset and value == "")
        if kind == "-":
            return word if unset else value or ""
        if kind == "+":
            return "" if unset else word
        if kind == "?":
            if value is None:
                raise ShellWordError(f"{name}: {word or 'is not allowed to be unset'}")
            if unset:
                raise ShellWordError(f"{name}: {word or 'is not allowed to be empty'}")
            return value
        greedy = word.startswith(kind)
        pattern = word[1:] if greedy else word
        return _trim(value or "", pattern, greedy, suffix=kind == "%")

    def operand(self, stop: str, raw_escapes: bool) -> str:
        try:
            return self.run(stop, raw_escapes)[0]
        except ShellWordError:
            if not self.peek():
                raise ShellWordError(f"syntax error: missing '{stop}'"
                                     + (" in ${}" if stop == "/" else "")) from None
            raise

    def replace(self, name: str) -> str:
        replace_all = self.peek() == "/"
        if replace_all:
            self.next()
        pattern = self.operand("/", raw_escapes=True)
        replacement = self.operand("}", raw_escapes=True)
        value = self.lookup(name)
        if value is None and self.lex.skip_unset:
            return "${" + name + "/" + pattern + "/" + replacement + "}"
        regex = _pattern(pattern, greedy=True, anchored=False)
        return regex.sub(lambda _: replacement, value or "", count=0 if replace_all else 1)

    def possible_heredoc(self) -> str:
        self.next()
        if self.peek() != "<":
            return "<"
        self.next()
        start = self.pos
        while self.peek() and self.peek() in " \t\r":
            self.next()
        return "<<" + self.text[start:self.pos]


def _pattern(pattern: str, greedy: bool, anchored: bool) -> re.Pattern[str]:
    """A shell pattern (``*``, ``?``, ``\\`` escapes) as a regular expression."""
    out = ["^"] if anchored else []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        i += 1
        if ch == "*":
            out.append(".*" if greedy else ".*?")
        elif ch == "?":
            out.append(".")
        elif ch == "\\":
            if i < len(pattern) and pattern[i] in "}/":
                continue
            if i >= len(pattern) or pattern[i] not in "*?\\":
                raise ShellWordError(f"invalid pattern ({pattern}) in substitution: "
                                     f"invalid escape '\\{pattern[i:i + 1]}'")
            out.append(re.escape(pattern[i]))
            i += 1
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out), re.DOTALL)


def _reverse_pattern(pattern: str) -> str:
    """The pattern read backwards, each ``\\x`` escape kept in front of its character."""
    tokens, i = [], 0
    while i < len(pattern):
        if pattern[i] == "\\" and i + 1 < len(pattern):
            tokens.append(pattern[i:i + 2])
            i += 2
        else:
            tokens.append(pattern[i])
            i += 1
    return "".join(reversed(tokens))


def _trim(value: str, pattern: str, greedy: bool, suffix: bool) -> str:
    if suffix:  # a suffix is a prefix of the reversed string
        return _trim(value[::-1], _reverse_pattern(pattern), greedy, False)[::-1]
    match = _pattern(pattern, greedy, anchored=True).match(value)
    return value[match.end():] if match else value
