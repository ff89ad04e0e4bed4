"""The build context: .dockerignore by Docker's documented examples, COPY globs, content hashes,
archive detection and ADD of a URL from a local http.server.

The .dockerignore expectations are written from Docker's documentation
(https://docs.docker.com/build/concepts/context/#dockerignore-files), not from the code.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from minidocker.buildcontext import (
    BuildContextError,
    Context,
    Ignore,
    archive_kind,
    clean_source,
    content_hash,
    fetch_url,
    read_dockerignore,
    url_name,
)
from minidocker.errors import UsageError
from tests.conftest import QuietHandler, serve_http

pytestmark = pytest.mark.nb07

# (the .dockerignore text, path, excluded?) -- each expectation from the docs' own words.
DOCS_CASES = [
    # "# comment": ignored.  "*/temp*": names starting with temp in any immediate subdirectory
    ("# comment\n*/temp*", "somedir/temporary.txt", True),
    ("# comment\n*/temp*", "somedir/temp", True),
    ("# comment\n*/temp*", "temporary.txt", False),  # the root is not a subdirectory
    ("# comment\n*/temp*", "a/b/temporary.txt", False),  # two levels down: not this pattern
    ("# comment", "# comment", False),
    # "*/*/temp*": two levels below the root
    ("*/*/temp*", "somedir/subdir/temporary.txt", True),
    ("*/*/temp*", "somedir/temporary.txt", False),
    # "temp?": a one-character extension of temp, in the root
    ("temp?", "tempa", True),
    ("temp?", "tempb", True),
    ("temp?", "temp", False),
    ("temp?", "tempab", False),
    ("temp?", "dir/tempa", False),
    # "**/*.go": every .go file, the root included
    ("**/*.go", "main.go", True),
    ("**/*.go", "a/b/c/x.go", True),
    ("**/*.go", "a/b/c/x.gox", False),
    # "*.md, !README.md": markdown right under the context, except README.md
    ("*.md\n!README.md", "CHANGES.md", True),
    ("*.md\n!README.md", "README.md", False),
    ("*.md\n!README.md", "docs/guide.md", False),
    # "*.md, !README*.md, README-secret.md": README files but README-secret.md
    ("*.md\n!README*.md\nREADME-secret.md", "README-secret.md", True),
    ("*.md\n!README*.md\nREADME-secret.md", "README-other.md", False),
    ("*.md\n!README*.md\nREADME-secret.md", "other.md", True),
    # "*.md, README-secret.md, !README*.md": the last line wins: every README is in
    ("*.md\nREADME-secret.md\n!README*.md", "README-secret.md", False),
    ("*.md\nREADME-secret.md\n!README*.md", "README.md", False),
    # "/foo/bar and foo/bar both exclude a file or directory named bar in foo"
    ("/foo/bar", "foo/bar", True),
    ("foo/bar", "foo/bar", True),
    ("/foo/bar", "bar", False),
    # a directory's pattern excludes what is in it
    ("foo/bar", "foo/bar/inside/deep.txt", True),
    ("node_modules", "node_modules/x/index.js", True),
    # filepath.Clean: . and .. elements go; white space around a pattern is trimmed
    ("./foo/../bar  ", "bar", True),
    ("  \n\n", "anything", False),
    # an exception can take back a file inside an excluded directory
    ("docs\n!docs/keep.md", "docs/keep.md", False),
    ("docs\n!docs/keep.md", "docs/drop.md", True),
]


@pytest.mark.parametrize(("text", "path", "excluded"), DOCS_CASES,
                         ids=[f"{t.splitlines()[-1] if t.strip() else 'blank'}:{p}"
                              for t, p, _ in DOCS_CASES])
def test_dockerignore_as_documented(text: str, path: str, excluded: bool) -> None:
    assert Ignore(read_dockerignore(text)).excludes(path) is excluded


def test_dockerignore_preprocessing() -> None:
    assert read_dockerignore("# c\n /a/b/ \n!/c\n\n./d/../e\n") == ["a/b", "!c", "e"]


@pytest.fixture
def context(tmp_path: Path) -> Path:
    for rel, data in {"a.txt": "a", "b.txt": "b", "c.log": "c", "dir/x.txt": "x",
                      "dir/sub/y.txt": "y", "secret/key": "k", "notes.md": "n"}.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(data)
    (tmp_path / ".dockerignore").write_text("secret\n*.md\n")
    (tmp_path / "inside").symlink_to("dir")
    (tmp_path / "outside").symlink_to("/etc")
    return tmp_path


def test_globs_follow_filepath_match(context: Path) -> None:
    ctx = Context(str(context))
    assert ctx.resolve("*.txt") == ["a.txt", "b.txt"]
    assert ctx.resolve("[ab].txt") == ["a.txt", "b.txt"]
    assert ctx.resolve("[^a].txt") == ["b.txt"]
    assert ctx.resolve("?.log") == ["c.log"]
    assert ctx.resolve("dir/*.txt") == ["dir/x.txt"]  # * never crosses a /
    assert ctx.resolve("*/sub") == ["dir/sub"]


def test_excluded_and_missing_sources_are_refused(context: Path) -> None:
    ctx = Context(str(context))
    for src in ("secret/key", "notes.md", "nothere"):
        with pytest.raises(BuildContextError, match="file not found in build context or "
                                                    "excluded by .dockerignore"):
            ctx.resolve(src)
    with pytest.raises(BuildContextError, match="no source files"):
        ctx.resolve("*.none")
    assert "secret" not in ctx.resolve("*")  # a glob never sees an excluded file


def test_sources_never_leave_the_context(context: Path) -> None:
    ctx = Context(str(context))
    with pytest.raises(BuildContextError, match="outside the build context"):
        clean_source("../x")
    assert clean_source("./a/../b/") == "b"
    assert ctx.path("inside/x.txt") == str(context / "dir" / "x.txt")
    # an absolute symlink is taken inside the context, as a container would see it
    assert ctx.path("outside") == str(context / "etc")
    assert ctx.resolve("inside") == ["inside"]


def test_a_directory_walk_skips_what_is_ignored(context: Path) -> None:
    ctx = Context(str(context))
    names = [rel for rel, _, _ in ctx.entries("")]
    assert "secret" not in names and "secret/key" not in names and "notes.md" not in names
    assert {"dir", "dir/sub/y.txt", "a.txt"} <= set(names)


def test_content_hash_sees_content_and_mode_not_time_or_owner(context: Path) -> None:
    ctx = Context(str(context))

    def digest() -> str:
        return content_hash(ctx.entries("dir"))

    first = digest()
    os.utime(context / "dir" / "x.txt", (1, 1))
    assert digest() == first  # touched: the same
    (context / "dir" / "x.txt").chmod(0o600)
    assert digest() != first  # a mode is content
    (context / "dir" / "x.txt").chmod(0o644)
    second = digest()
    (context / "dir" / "x.txt").write_text("X")
    assert digest() != second
    (context / "dir" / "x.txt").write_text("x")
    assert digest() == second


def _tar(compress: str | None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("f")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    data = buf.getvalue()
    return {None: data, "gzip": gzip.compress(data), "bzip2": bz2.compress(data),
            "xz": lzma.compress(data)}[compress]


@pytest.mark.parametrize("kind", [None, "gzip", "bzip2", "xz"])
def test_archive_kind_by_magic_bytes(tmp_path: Path, kind: str | None) -> None:
    path = tmp_path / "archive.bin"  # the name says nothing: the bytes do
    path.write_bytes(_tar(kind))
    assert archive_kind(str(path)) == (kind or "tar")


def test_not_archives(tmp_path: Path) -> None:
    (tmp_path / "text.tar").write_text("not a tar at all\n" * 40)
    (tmp_path / "data.gz").write_bytes(gzip.compress(b"gzip, but no tar inside" * 40))
    assert archive_kind(str(tmp_path / "text.tar")) is None
    assert archive_kind(str(tmp_path / "data.gz")) is None
    assert archive_kind(str(tmp_path)) is None


# -- ADD of a URL, from a server on 127.0.0.1 --------------------------------------------------

PAYLOAD = b"downloaded content\n"


@pytest.fixture
def server() -> Iterator[str]:
    class Handler(QuietHandler):
        def do_GET(self) -> None:  # noqa: N802 -- the http.server API
            if self.path.startswith("/file"):
                self.send_response(200)
                self.send_header("Content-Length", str(len(PAYLOAD)))
                self.end_headers()
                self.wfile.write(PAYLOAD)
            else:
                self.send_response(404)
                self.end_headers()

    with serve_http(Handler) as url:
        yield url


def test_fetch_url_with_a_checksum(server: str, tmp_path: Path) -> None:
    good = "sha256:" + hashlib.sha256(PAYLOAD).hexdigest()
    path = fetch_url(f"{server}/file.txt", str(tmp_path), good)
    assert Path(path).read_bytes() == PAYLOAD and Path(path).name == "file.txt"
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert os.listdir(tmp_path) == ["file.txt"]


@pytest.mark.parametrize("case", ["mismatch", "404", "bad checksum", "refused"])
def test_fetch_url_failures_leave_nothing(server: str, tmp_path: Path, case: str) -> None:
    url, checksum = f"{server}/file.txt", None
    if case == "mismatch":
        checksum = "sha256:" + "0" * 64
    elif case == "404":
        url = f"{server}/missing"
    elif case == "bad checksum":
        checksum = "md5:abc"
    else:
        url = "http://127.0.0.1:9/file.txt"  # nothing listens on the discard port
    with pytest.raises(UsageError):
        fetch_url(url, str(tmp_path), checksum)
    assert os.listdir(tmp_path) == []


def test_url_names() -> None:
    assert url_name("https://example.com/a/b/tool.tar.gz?x=1") == "tool.tar.gz"
    assert url_name("https://example.com/") == "__unnamed__"
