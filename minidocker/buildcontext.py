"""The build context: which files a build may read, by Docker's rules, and what they hash to.

``minidocker build PATH`` reads files from the directory PATH (the *context*) and nothing else:

- **``.dockerignore``** (Docker's CLI and moby/patternmatcher): one pattern a line; ``#`` lines
  are comments; white space around a pattern is trimmed; a leading ``/`` is dropped and the
  pattern is cleaned like Go's ``filepath.Clean``; ``*`` and ``?`` never cross a ``/``, ``**``
  crosses any number of directories; ``!`` makes an exception; **the last pattern that matches
  wins**; a pattern that matches a directory excludes everything under it (unless a later
  ``!`` takes a path back). :class:`Ignore` holds the compiled patterns.
- **COPY/ADD sources** are cleaned paths inside the context, globbed with Go's
  ``filepath.Match`` rules (``*``, ``?``, ``[a-z]``, ``[^a-z]``, ``\\`` escapes; no ``**``), one
  directory level per pattern component. A source naming a path outside the context (``..``)
  is refused, and a symlink met on the way is followed only while it stays inside.
- **The cache key of a COPY** is :func:`content_hash` of what it copies: names, types, modes,
  symlink targets and file contents, never mtimes or owners, so touching a file is no change.
- **ADD** unpacks a local archive that :func:`archive_kind` recognises by its first bytes
  (plain tar, gzip, bzip2, xz), and fetches an ``http(s)`` URL (:func:`fetch_url`), checked
  against ``--checksum sha256:...`` when given.

Notebook: ``07_dockerfiles``. References: https://docs.docker.com/build/concepts/context/
(``.dockerignore``), Go's ``path/filepath.Match``.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import stat

from minidocker.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

GLOB_CHARS = "*?[\\"


class BuildContextError(UsageError):
    """A source the context cannot give: missing, excluded, or outside it."""


# -- .dockerignore ------------------------------------------------------------------------------

def read_dockerignore(text: str) -> list[str]:
    """The patterns of a ``.dockerignore`` file, as the docker CLI reads them (``!`` kept)."""
    patterns = []
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        pattern = line.strip()
        if not pattern:
            continue
        invert = pattern.startswith("!")
        if invert:
            pattern = pattern[1:].strip()
        if pattern:
            pattern = posixpath.normpath(pattern) if pattern not in (".", "/") else pattern
            if len(pattern) > 1 and pattern.startswith("/"):
                pattern = pattern.lstrip("/") or "/"
        patterns.append(("!" if invert else "") + pattern)
    return patterns


def _translate(pattern: str, *, ignore_file: bool) -> str:
    """One pattern as a regular expression, without anchors. Go's ``filepath.Match`` rules:
    ``*`` and ``?`` within one path component, ``[...]`` classes, ``\\`` escapes. In a
    ``.dockerignore`` (moby/patternmatcher, ``ignore_file``) also ``**`` for any number of
    components, ``[!...]`` as ``[^...]``, and an unclosed ``[`` taken literally; in a COPY
    source an unclosed ``[`` is an error, as in Go."""
    out = []
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "*" and ignore_file and i + 1 < n and pattern[i + 1] == "*":
            i += 1
            if i + 1 < n and pattern[i + 1] == "/":
                i += 1  # "**/" is "**"
            out.append(".*" if i + 1 >= n else "(.*/)?")
        elif ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        elif ch == "[":
            end = pattern.find("]", i + (1 if ignore_file else 2))
            if end < 0 and not ignore_file:
                raise BuildContextError(f"syntax error in pattern: {pattern}")
            if end < 0:
                out.append(re.escape(ch))
            else:
                body = pattern[i + 1:end]
                negate = ("^", "!") if ignore_file else ("^",)
                out.append("[" + ("^" + body[1:] if body.startswith(negate) else body) + "]")
                i = end
        else:
            out.append(re.escape(ch))
        i += 1
    return "".join(out)


def _pattern_regex(pattern: str) -> str:
    """moby/patternmatcher's translation of one ``.dockerignore`` pattern."""
    return "^" + _translate(pattern, ignore_file=True) + "$"


class Ignore:
    """Compiled ``.dockerignore`` patterns; :meth:`excludes` answers for one path."""

    def __init__(self, patterns: list[str]) -> None:
        self.rules: list[tuple[bool, re.Pattern[str], int]] = []
        for pattern in patterns:
            exception = pattern.startswith("!")
            body = pattern[1:] if exception else pattern
            if not body:
                continue
            self.rules.append((exception, re.compile(_pattern_regex(body)), body.count("/") + 1))
        self.has_exceptions = any(rule[0] for rule in self.rules)

    def excludes(self, rel: str) -> bool:
        """Is ``rel`` (a cleaned path in the context, ``a/b``) left out? The last match wins;
        a pattern matching a parent directory matches everything in it."""
        if not rel or rel == ".":
            return False
        parts = rel.split("/")
        excluded = False
        for exception, regex, depth in self.rules:
            match = regex.match(rel) is not None
            if not match and len(parts) > 1 and depth < len(parts):
                match = regex.match("/".join(parts[:depth])) is not None
            if match:
                excluded = not exception
        return excluded


# -- sources ------------------------------------------------------------------------------------

def _glob_regex(pattern: str) -> re.Pattern[str]:
    """Go's ``filepath.Match`` for a whole path: each ``*`` within one component."""
    return re.compile(_translate(pattern, ignore_file=False) + r"\Z")


def clean_source(src: str) -> str:
    """``src`` as a path relative to the context root; ``..`` out of it is refused."""
    parts: list[str] = []
    for part in src.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise BuildContextError(f"forbidden path outside the build context: {src}")
            parts.pop()
        else:
            parts.append(part)
    return "/".join(parts)


class Context:
    """The files of a build context directory, seen through its ``.dockerignore``."""

    def __init__(self, root: str, ignore: Ignore | None = None) -> None:
        self.root = os.path.realpath(root)
        if ignore is None:
            try:
                with open(os.path.join(self.root, ".dockerignore"), encoding="utf-8") as f:
                    ignore = Ignore(read_dockerignore(f.read()))
            except FileNotFoundError:
                ignore = Ignore([])
        self.ignore = ignore

    def path(self, rel: str) -> str:
        """The host path of ``rel``, following symlinks only while they stay in the context."""
        current = self.root
        todo = [p for p in rel.split("/") if p]
        hops = 0
        while todo:
            part = todo.pop(0)
            if part == "..":
                current = os.path.dirname(current) if current != self.root else current
                continue
            candidate = os.path.join(current, part)
            if os.path.islink(candidate):
                hops += 1
                if hops > 40:
                    raise BuildContextError(f"too many levels of symbolic links: {rel}")
                target = os.readlink(candidate)
                base = self.root if target.startswith("/") else current
                todo = [p for p in target.split("/") if p] + todo
                current = base
                continue
            current = candidate
        if not (current == self.root or current.startswith(self.root + os.sep)):
            raise BuildContextError(f"forbidden path outside the build context: {rel}")
        return current

    def resolve(self, src: str, what: str = "COPY") -> list[str]:
        """The context paths (relative) a source names: one, or every glob match, sorted."""
        rel = clean_source(src)
        if any(c in rel for c in GLOB_CHARS):
            regex, depth = _glob_regex(rel), rel.count("/") + 1
            found = [p for p in self.walk_names(max_depth=depth)
                     if p.count("/") + 1 == depth and regex.match(p)]
            if not found:
                raise BuildContextError(f"{what} failed: no source files were specified "
                                        f"(no match for {src} in the build context)")
            return found
        if rel and (self.ignore.excludes(rel) or not os.path.lexists(self.path(rel))):
            raise BuildContextError(f"{what} failed: file not found in build context or "
                                    f"excluded by .dockerignore: stat {src}: file does not "
                                    "exist")
        return [rel]

    def walk_names(self, rel: str = "", max_depth: int = 1 << 30) -> Iterator[str]:
        """Every path under ``rel`` the context gives (not excluded), parents first, sorted."""
        directory = self.path(rel) if rel else self.root
        try:
            names = sorted(os.listdir(directory))
        except NotADirectoryError:
            return
        for name in names:
            here = f"{rel}/{name}" if rel else name
            full = os.path.join(directory, name)
            is_dir = stat.S_ISDIR(os.lstat(full).st_mode)
            if not self.ignore.excludes(here):
                yield here
            elif not (is_dir and self.ignore.has_exceptions):
                continue  # nothing under an excluded directory can come back
            if is_dir and here.count("/") + 1 < max_depth:
                yield from self.walk_names(here, max_depth)

    def entries(self, rel: str) -> Iterator[tuple[str, str, os.stat_result]]:
        """``(path below rel, host path, lstat)`` of ``rel`` itself ("") and all under it."""
        top = self.path(rel) if rel else self.root
        st = os.stat(top)  # the source itself is followed (it was resolved in the context)
        yield "", top, st
        if stat.S_ISDIR(st.st_mode):
            for sub in self.walk_names(rel):
                below = sub[len(rel) + 1:] if rel else sub
                full = os.path.join(top, below)
                yield below, full, os.lstat(full)


def content_hash(entries: Iterator[tuple[str, str, os.stat_result]] | list[
        tuple[str, str, os.stat_result]]) -> str:
    """sha256 over names, types, modes, symlink targets and contents (not mtime, not owner)."""
    h = hashlib.sha256()
    for rel, path, st in entries:
        h.update(f"{rel}\0{stat.S_IFMT(st.st_mode):o}\0{stat.S_IMODE(st.st_mode):o}\0".encode())
        if stat.S_ISLNK(st.st_mode):
            h.update(os.readlink(path).encode() + b"\0")
        elif stat.S_ISREG(st.st_mode):
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            h.update(b"\0")
    return "sha256:" + h.hexdigest()


# -- ADD: archives and URLs ---------------------------------------------------------------------

def archive_kind(path: str) -> str | None:
    """``"tar"``, ``"gzip"``, ``"bzip2"`` or ``"xz"`` if ``path`` is a tar archive (plain or
    compressed, told by magic bytes, as Docker's ``archive.DetectCompression``), else None."""
    import tarfile
    from typing import IO, cast

    from minidocker.digests import compression, decompressed

    try:
        with open(path, "rb") as f:
            head = f.read(6)
            kind = compression(head)
            if kind == "zstd":
                return None
            f.seek(0)
            try:
                stream = cast(IO[bytes], decompressed(f, kind))
                with tarfile.open(fileobj=stream, mode="r|") as tar:
                    tar.next()
            except (tarfile.TarError, OSError, EOFError, ValueError):
                return None
    except IsADirectoryError:
        return None
    return kind or "tar"


def unpack_archive(path: str, dest: str, kind: str) -> None:
    """The archive at ``path`` into the empty directory ``dest``, with the store's safe
    unpacker (no ``..``, no absolute names, no writing through a symlink)."""
    from pathlib import Path

    from minidocker import layers
    from minidocker.digests import decompressed

    with open(path, "rb") as f:
        layers.unpack(decompressed(f, None if kind == "tar" else kind), Path(dest),
                      label=os.path.basename(path), whiteouts="oci")


def is_url(src: str) -> bool:
    return src.startswith(("http://", "https://"))


def url_name(url: str) -> str:
    """The file name an ADD of ``url`` gets: the last part of its path (Docker's rule)."""
    from urllib.parse import urlsplit

    name = posixpath.basename(urlsplit(url).path.rstrip("/"))
    return name or "__unnamed__"


def fetch_url(url: str, dest_dir: str, checksum: str | None = None,
              say: Callable[[str], None] | None = None) -> str:
    """Download ``url`` into ``dest_dir`` (a temporary file, renamed when complete and, with
    ``checksum`` (``sha256:<hex>``), verified); nothing is left behind on failure."""
    import tempfile

    import requests  # only for ADD of a URL

    if checksum is not None and not re.fullmatch(r"sha256:[0-9a-f]{64}", checksum):
        raise UsageError(f"invalid checksum {checksum!r}: expected sha256:<64 hex digits>")
    fd, tmp = tempfile.mkstemp(prefix=".fetch-", dir=dest_dir)
    try:
        h = hashlib.sha256()
        with open(fd, "wb") as out:
            try:
                with requests.get(url, stream=True, timeout=60) as response:
                    if response.status_code != 200:
                        raise UsageError(f"ADD failed: {url}: HTTP {response.status_code}")
                    for chunk in response.iter_content(1 << 16):
                        h.update(chunk)
                        out.write(chunk)
            except requests.RequestException as exc:
                raise UsageError(f"ADD failed: cannot fetch {url}: {exc}") from None
        got = "sha256:" + h.hexdigest()
        if checksum is not None and got != checksum:
            raise UsageError(f"ADD failed: {url}: digest mismatch: expected {checksum}, "
                             f"got {got}")
        final = os.path.join(dest_dir, url_name(url))
        os.chmod(tmp, 0o600)  # Docker: a downloaded file is 0600
        os.replace(tmp, final)
        return final
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
