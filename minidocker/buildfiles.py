"""COPY and ADD: files from the context, another stage or image, or a heredoc, as one layer.

A COPY runs no container. The builder knows what the image has (its layers, read as one tree
by :class:`minidocker.layers.Stack`) and what to add, so it writes the new layer's tar itself:

1. **sources**: each source names a file or directory (globs expand to several); a directory
   copies its *contents*, not itself; ADD unpacks a local tar archive (plain, gzip, bzip2, xz)
   into the destination;
2. **destination**: relative to WORKDIR; with several sources it must be a directory, written
   with a trailing ``/``; a file goes *into* a destination that ends in ``/`` or is a directory
   in the image, else it *is* the destination; symlinks in the image's path are followed
   inside the image (never out of it);
3. **metadata**: files from the context belong to 0:0 (``--chown`` says otherwise), from
   another stage or an archive they keep their owners; ``--chmod`` sets every mode (octal)
   or changes each one (symbolic, ``u+x``: :class:`Chmod`); missing directories on the way
   are made (0755); directories already in the image are written with their own metadata,
   as the diff of a container would show them.

The layer is an ordinary OCI layer tar (:class:`minidocker.diff.LayerWriter`).

Notebook: ``07_dockerfiles``.
"""

from __future__ import annotations

import os
import posixpath
import stat
import time

from minidocker.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import BinaryIO

    from minidocker.buildcontext import Context
    from minidocker.layers import Stack

Entry = tuple[str, str, os.stat_result]  # (path below the source, host path, lstat)


class CopyError(UsageError):
    """A COPY or ADD that cannot be done: a missing source, a bad destination."""


class Source:
    """One thing to copy: a file, a directory's entries, or a heredoc's bytes."""

    __slots__ = ("name", "entries", "is_dir", "owner", "data")

    def __init__(self, name: str, entries: list[Entry], is_dir: bool,
                 owner: tuple[int, int] | None, data: bytes | None = None) -> None:
        self.name = name  # the name a file gets inside a destination directory
        self.entries = entries  # "" (the source itself) first, then what is under it
        self.is_dir = is_dir
        self.owner = owner  # None: keep each file's own owner
        self.data = data  # a heredoc's content (then entries is empty)


def context_sources(ctx: Context, srcs: list[str], what: str) -> list[Source]:
    """The sources ``srcs`` name in the build context (globs expanded)."""
    found = []
    for src in srcs:
        for rel in ctx.resolve(src, what):
            entries = list(ctx.entries(rel))
            is_dir = stat.S_ISDIR(entries[0][2].st_mode)
            found.append(Source(posixpath.basename(rel) or ".", entries, is_dir, (0, 0)))
    return found


def stack_sources(stack: Stack, srcs: list[str], what: str, where: str) -> list[Source]:
    """The sources ``srcs`` name in an image's tree (``COPY --from``); globs expanded."""
    from minidocker.buildcontext import GLOB_CHARS, _glob_regex, clean_source

    found = []
    for src in srcs:
        rel = resolve_in(stack, clean_source(src))
        if any(c in rel for c in GLOB_CHARS):
            regex, depth = _glob_regex(rel), rel.count("/") + 1
            names = [p for p, _ in stack.walk() if p.count("/") + 1 == depth and regex.match(p)]
        else:
            names = [rel]
        for name in names:
            node = stack.lookup(name) if name else None
            if name and node is None:
                raise CopyError(f"{what} failed: {src} not found in {where}")
            if node is None or node.is_dir:
                sources = node.sources if node is not None else stack.root()
                entries: list[Entry] = [("", node.path if node else stack.dirs[-1],
                                         node.st if node else os.lstat(stack.dirs[-1]))]
                entries += [(p, n.path, n.st) for p, n in stack.walk("", sources)]
                found.append(Source(posixpath.basename(name) or ".", entries, True, None))
            else:
                found.append(Source(posixpath.basename(name), [("", node.path, node.st)],
                                    False, None))
    return found


def tree_source(directory: str, name: str) -> Source:
    """A directory on disk (an unpacked ADD archive) as a source whose owners are kept."""
    entries: list[Entry] = [("", directory, os.lstat(directory))]
    for top, dirs, files in os.walk(directory):
        dirs.sort()
        for n in sorted(dirs + files):
            path = os.path.join(top, n)
            entries.append((os.path.relpath(path, directory), path, os.lstat(path)))
    entries[1:] = sorted(entries[1:], key=lambda e: e[0].split("/"))
    return Source(name, entries, True, None)


def resolve_in(stack: Stack, rel: str, follow_last: bool = True) -> str:
    """``rel`` with the image's symlinks on the way followed, inside the image only."""
    parts = [p for p in rel.split("/") if p]
    done: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if done:
                done.pop()
            continue
        if not parts and not follow_last:
            done.append(part)
            break
        node = stack.lookup("/".join([*done, part]))
        if node is not None and stat.S_ISLNK(node.st.st_mode):
            hops += 1
            if hops > 40:
                raise CopyError(f"too many levels of symbolic links: /{rel}")
            target = os.readlink(node.path)
            if target.startswith("/"):
                done = []
            parts = [p for p in target.split("/") if p] + parts
            continue
        done.append(part)
    return "/".join(done)


def write_layer(out: BinaryIO, stack: Stack, sources: Iterable[Source], dest: str,
                workdir: str, *, owner: tuple[int, int] | None, mode: Chmod | None,
                mtime: int, what: str = "COPY") -> int:
    """The layer that copies ``sources`` to ``dest``; its entry count."""
    from minidocker.diff import LayerWriter

    sources = list(sources)
    dir_dest = dest.endswith("/") or dest in (".", "") or dest.endswith("/.")
    if len(sources) > 1 and not dir_dest:
        raise CopyError(f"When using {what} with more than one source file, the destination "
                        "must be a directory and end with a /")
    dest_rel = resolve_in(stack, posixpath.join(workdir, dest).lstrip("/"))
    node = stack.lookup(dest_rel) if dest_rel else None
    dest_is_dir = not dest_rel or (node is not None and node.is_dir)
    writer = LayerWriter(out)
    emitted: set[str] = set()

    def directory(rel: str, made_owner: tuple[int, int], made_mode: int | None = None) -> None:
        if not rel or rel in emitted:
            return
        directory(posixpath.dirname(rel), (0, 0))
        found = stack.lookup(rel)
        if found is None:
            if made_mode is None:
                made_mode = 0o755 if mode is None else mode.made_dir()
            writer.made(rel, None, made_mode, made_owner, mtime)
        elif found.is_dir:
            writer.add(rel, found.path, found.st)
        else:
            raise CopyError(f"{what} failed: /{rel} is not a directory")
        emitted.add(rel)

    for source in sources:
        if source.is_dir:
            # BuildKit makes the parents of ``dest`` first; ``dest`` itself, unless written
            # ``dest/``, is the copied directory: --chmod applies to the source's mode
            made = None if mode is None or dest.endswith("/") else \
                _mode(source.entries[0][2], mode)
            directory(dest_rel, owner or (0, 0), made)
            for below, path, st in source.entries[1:]:
                rel = f"{dest_rel}/{below}" if dest_rel else below
                writer.add(rel, path, st, owner=owner or source.owner,
                           mode=_mode(st, mode))
                if stat.S_ISDIR(st.st_mode):
                    emitted.add(rel)
            continue
        if dir_dest or dest_is_dir:
            directory(dest_rel, owner or (0, 0))
            target = f"{dest_rel}/{source.name}" if dest_rel else source.name
        else:
            target = dest_rel
            directory(posixpath.dirname(target), owner or (0, 0))
        if not target:
            raise CopyError(f"{what} failed: cannot copy a file to /")
        if source.data is not None:
            writer.made(target, source.data, 0o644 if mode is None else mode.apply(0o644, False),
                        owner or (0, 0), mtime)
        else:
            _, path, st = source.entries[0]
            writer.add(target, path, st, owner=owner or source.owner,
                       mode=_mode(st, mode))
    writer.close()
    return writer.count


def _mode(st: os.stat_result, mode: Chmod | None) -> int | None:
    """``--chmod`` applies to files and directories, not to symlinks (their mode is fixed)."""
    if mode is None or stat.S_ISLNK(st.st_mode):
        return None
    return mode.apply(stat.S_IMODE(st.st_mode), stat.S_ISDIR(st.st_mode))


# chmod(1)'s letters: who (its set-id bit with it), the permissions, a class's rwx position
_WHO = {"u": 0o4700, "g": 0o2070, "o": 0o0007, "a": 0o6777}
_PERM = {"r": 0o444, "w": 0o222, "x": 0o111}
_SHIFT = {"u": 6, "g": 3, "o": 0}
_BAD_OCTAL = "invalid chmod parameter: '{}'. it should be octal string and between 0 and 07777"


class Chmod:
    """A ``--chmod``: octal (``0755``: every copied file and directory gets that mode), or
    symbolic as chmod(1) writes it (``u+x``, ``go-w``, ``a=rX``, ``u=rwx,go=u-w``), applied
    to each file's own mode. BuildKit takes symbolic modes since Dockerfile 1.10 and reads
    them by BSD's ``setmode(3)`` with a umask of 0:

    - a clause is ``[ugoa]*`` (none: all) then actions, each ``+``, ``-`` or ``=`` and the
      letters ``rwxXst``, or a class to copy (``g=u``, ``o+g``); clauses are joined by ``,``;
    - ``X`` is ``x`` if the file is a directory or had an ``x`` bit *before* the mode;
      ``-X`` is ``-x``; ``s`` and ``t`` are ignored for ``o`` alone;
    - ``=`` first clears what ``who`` names (the sticky bit only with ``t``).

    The clauses become commands (``-`` bits, ``+`` bits, ``X`` bits, or a copy of a class)
    that :meth:`apply` runs in order. A directory the copy has to make gets the octal mode,
    or 0755 with a symbolic one, as BuildKit's copier does.
    """

    __slots__ = ("text", "octal", "commands")

    def __init__(self, text: str) -> None:
        self.text = text
        self.octal: int | None = None
        self.commands: list[tuple[str, int, str]] = []  # (op, bits or who, class copied)
        if text[:1].isdigit():  # BuildKit: a number is octal, up to 07777, or an error
            if text.strip("01234567") or int(text, 8) > 0o7777:
                raise CopyError(_BAD_OCTAL.format(text))
            self.octal = int(text, 8)
            return
        for clause in text.split(","):
            self._clause(clause)

    def _bad(self) -> CopyError:
        return CopyError(f"invalid chmod parameter: '{self.text}': invalid syntax (an octal "
                         "mode, or chmod(1)'s symbolic one: u+x, go-w, a=rX)")

    def _clause(self, clause: str) -> None:
        rest = clause.lstrip("ugoa")
        who = 0
        for letter in clause[:len(clause) - len(rest)]:
            who |= _WHO[letter]
        if not rest:
            raise self._bad()
        cleared = False  # an "=" clears once, even when a class copy follows
        while rest:
            op, rest = rest[0], rest[1:]
            if op not in "+-=":
                raise self._bad()
            cleared = cleared and op != "="
            letters = rest[:len(rest) - len(rest.lstrip("rwxXstugo"))]
            rest = rest[len(letters):]
            cleared = self._action(who, op, letters, cleared)

    def _action(self, who: int, op: str, letters: str, cleared: bool) -> bool:
        perm = x_if = 0
        for letter in letters:
            if letter in _PERM:
                perm |= _PERM[letter]
            elif letter == "X":
                if op == "-":
                    perm |= 0o111
                else:
                    x_if = 0o111
            elif letter in "st":
                if who == 0 or who & ~0o007:  # not for "other" alone
                    perm |= 0o6000 if letter == "s" else 0o1000
                    who |= 0o1000 if letter == "t" else 0
            else:  # u, g, o: copy that class's bits
                if perm:
                    self._add(op, who, perm)
                    perm = 0
                cleared = cleared or op == "="
                if x_if:
                    self._add("X", who, x_if)
                    x_if = 0
                self.commands.append((op, who, letter))
        if perm or (op == "=" and not cleared):
            cleared = cleared or op == "="
            self._add(op, who, perm)
        if x_if:
            self._add("X", who, x_if)
        return cleared

    def _add(self, op: str, who: int, perm: int) -> None:
        if op == "=":
            self.commands.append(("-", who or 0o6777, ""))
            op = "+"
        self.commands.append((op, (who & perm) if who else perm, ""))

    def apply(self, mode: int, is_dir: bool) -> int:
        """The mode that a file (or directory) whose mode is ``mode`` gets."""
        if self.octal is not None:
            return self.octal
        before = mode
        for op, bits, source in self.commands:
            if source:
                mode = _copy_class(mode, op, bits, source)
            elif op == "-":
                mode &= ~bits
            elif op == "+" or before & 0o111 or is_dir:  # X: only if "executable" before
                mode |= bits
        return mode & 0o7777

    def made_dir(self) -> int:
        """The mode of a directory the copy makes on the way to its destination."""
        return 0o755 if self.octal is None else self.octal


def _copy_class(mode: int, op: str, who: int, source: str) -> int:
    """``g=u``, ``o+g``, ``u-o``: the rwx bits of class ``source`` applied to the classes
    ``who`` names (all if none)."""
    value = (mode >> _SHIFT[source]) & 0o7
    for name, shift in _SHIFT.items():
        if who and not who & _WHO[name] & 0o777:
            continue
        if op == "=":
            mode &= ~(0o7 << shift)
        mode = mode & ~(value << shift) if op == "-" else mode | (value << shift)
    return mode


def parse_chmod(text: str | None) -> Chmod | None:
    """``--chmod=0755`` or ``--chmod=u+x,go-w``: a :class:`Chmod`, or a :class:`CopyError`
    in BuildKit's words."""
    return None if text is None else Chmod(text)


def parse_chown(text: str | None, stack: Stack) -> tuple[int, int] | None:
    """``--chown=user[:group]`` against the image's ``/etc/passwd`` and ``/etc/group``.
    Docker: a user without a group (or a UID without a GID) gives the GID the UID's number."""
    if text is None:
        return None
    from minidocker import users

    user, group = users.parse_spec(text)
    if user.isdigit() and (group is None or group.isdigit()):
        return int(user), int(group if group is not None else user)
    passwd = stack.lookup(resolve_in(stack, "etc/passwd"))
    groups = stack.lookup(resolve_in(stack, "etc/group"))
    found = users.lookup(text, passwd.path if passwd else "/nonexistent",
                         groups.path if groups else "/nonexistent")
    return found.uid, (found.gid if group is not None else found.uid)


def mkdirs(out: BinaryIO, stack: Stack, rel: str) -> None:
    """A layer holding ``rel``'s directories: the image's own where it has them (WORKDIR)."""
    from minidocker.diff import LayerWriter

    writer = LayerWriter(out)
    parts = rel.split("/")
    now = int(time.time())
    for i in range(1, len(parts) + 1):
        here = "/".join(parts[:i])
        node = stack.lookup(here)
        if node is None:
            writer.made(here, None, 0o755, (0, 0), now)
        else:
            writer.add(here, node.path, node.st)
    writer.close()
