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
   another stage or an archive they keep their owners; ``--chmod`` sets every mode; missing
   directories on the way are made (0755); directories already in the image are written with
   their own metadata, as the diff of a container would show them.

The layer is an ordinary OCI layer tar (:class:`minidocker.diff.LayerWriter`).

Notebook: ``07_dockerfiles``.
"""

from __future__ import annotations

import os
import posixpath
import stat

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
                workdir: str, *, owner: tuple[int, int] | None, mode: int | None,
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

    def directory(rel: str, made_owner: tuple[int, int]) -> None:
        if not rel or rel in emitted:
            return
        directory(posixpath.dirname(rel), (0, 0))
        found = stack.lookup(rel)
        if found is None:
            writer.made(rel, None, 0o755 if mode is None else mode, made_owner, mtime)
        elif found.is_dir:
            writer.add(rel, found.path, found.st)
        else:
            raise CopyError(f"{what} failed: /{rel} is not a directory")
        emitted.add(rel)

    for source in sources:
        if source.is_dir:
            directory(dest_rel, owner or (0, 0))
            for below, path, st in source.entries[1:]:
                rel = f"{dest_rel}/{below}" if dest_rel else below
                writer.add(rel, path, st, owner=owner or source.owner,
                           mode=None if mode is None else _mode(st, mode))
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
            writer.made(target, source.data, 0o644 if mode is None else mode,
                        owner or (0, 0), mtime)
        else:
            _, path, st = source.entries[0]
            writer.add(target, path, st, owner=owner or source.owner,
                       mode=None if mode is None else _mode(st, mode))
    writer.close()
    return writer.count


def _mode(st: os.stat_result, mode: int) -> int | None:
    """``--chmod`` applies to files and directories, not to symlinks (their mode is fixed)."""
    return None if stat.S_ISLNK(st.st_mode) else mode


def parse_chmod(text: str | None) -> int | None:
    """``--chmod=755`` (octal; BuildKit also takes symbolic modes: not here)."""
    if text is None:
        return None
    try:
        value = int(text, 8)
    except ValueError:
        raise CopyError(f"invalid chmod parameter {text!r}: an octal mode such as 0755 "
                        "(symbolic modes are not supported yet)") from None
    if not 0 <= value <= 0o7777:
        raise CopyError(f"invalid chmod parameter {text!r}: out of range")
    return value


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
