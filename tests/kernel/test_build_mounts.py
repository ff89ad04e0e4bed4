"""BuildKit's flags against the real kernel: ``RUN --mount`` (cache, bind, rw bind, tmpfs),
the refusals (nothing run), ``COPY --exclude``/``--parents`` and ``ADD --unpack``, each image
checked by running it. Nothing is left behind: no container, nothing in the store's ``tmp/``
(the session's leak check covers mounts, cgroups and processes).
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from tests.conftest import CLI, QuietHandler, needs_root, serve_http
from tests.kernel.test_bad_input import assert_one_line_error
from tests.kernel.test_build import build, containers, oci_check, run, write

pytestmark = [needs_root, pytest.mark.kernel, pytest.mark.nb07]


def left_behind(cli: CLI) -> list[str]:
    """Containers, and files in the store's tmp/ (throwaway copies of binds, private caches)."""
    tmp = cli.root / "tmp"
    return containers(cli) + (sorted(os.listdir(tmp)) if tmp.is_dir() else [])


def image_files(cli: CLI, ref: str, *paths: str) -> str:
    return run(cli, ref, "sh", "-c", " ".join(f"ls -d {p} 2>/dev/null;" for p in paths)
               + " true")


CACHE = """\
FROM busybox
RUN --mount=type=cache,id=counter,target=/var/cache/counter \\
    sh -c 'echo run >> /var/cache/counter/runs; wc -l < /var/cache/counter/runs'
"""


def test_cache_mount_persists_between_builds_and_is_not_in_the_image(cli: CLI,
                                                                     tmp_path: Path) -> None:
    ctx = write(tmp_path / "ctx", {"Dockerfile": CACHE})
    first = build(cli, ctx, "-t", "cached").stdout
    assert "\n1\n" in first
    second = build(cli, ctx, "--no-cache", "-t", "cached").stdout
    assert "\n2\n" in second  # the same directory, kept by minidocker between builds
    # a different id is a different cache
    other = write(tmp_path / "other", {"Dockerfile": CACHE.replace("id=counter", "id=else")})
    assert "\n1\n" in build(cli, other).stdout
    # the image has neither the cache's files nor the mount point the start made for it
    assert image_files(cli, "cached", "/var/cache/counter", "/var/cache") == ""
    rootfs = oci_check(cli, "cached", tmp_path)
    assert not (rootfs / "var/cache").exists()
    assert left_behind(cli) == []


BIND = """\
FROM busybox
WORKDIR /work
RUN --mount=type=bind,source=config.txt,target=/etc/app.conf cp /etc/app.conf /copied
RUN --mount=target=ctx sh -c 'cat ctx/sub/data; touch ctx/x' || echo read-only
RUN --mount=target=/rw,rw sh -c 'echo scribble > /rw/sub/data; echo new > /rw/new; cat /rw/sub/data'
"""


def test_bind_mounts_read_the_context_and_rw_writes_go_nowhere(cli: CLI,
                                                               tmp_path: Path) -> None:
    ctx = write(tmp_path / "ctx", {"Dockerfile": BIND, "config.txt": "setting=1\n",
                                   "sub/data": "from the context\n"})
    out = build(cli, ctx, "-t", "bound").stdout
    assert "from the context\n" in out and "read-only\n" in out  # ro by default
    assert "scribble\n" in out  # rw: the step could write...
    assert (ctx / "sub/data").read_text() == "from the context\n"  # ...not to the context
    assert not (ctx / "new").exists()
    assert run(cli, "bound", "cat", "/copied") == "setting=1\n"
    # ...nor to the image: no mount points, no files written under them
    assert image_files(cli, "bound", "/etc/app.conf", "/work/ctx", "/rw") == ""
    assert left_behind(cli) == []
    # the key of a step with a bind holds what it binds: a changed file runs it again
    (ctx / "config.txt").write_text("setting=2\n")
    again = build(cli, ctx, "-t", "bound").stdout
    assert again.count("Using cache") == 1  # WORKDIR only
    assert run(cli, "bound", "cat", "/copied") == "setting=2\n"
    os.utime(ctx / "config.txt", (1, 1))  # touched: the same content, all cached
    assert "Running in" not in build(cli, ctx, "-t", "bound").stdout


def test_bind_from_a_stage(cli: CLI, tmp_path: Path) -> None:
    ctx = write(tmp_path / "ctx", {"Dockerfile": (
        "FROM busybox AS tools\nRUN echo 'echo tool ran' > /tool.sh\n"
        "FROM busybox\nRUN --mount=from=tools,source=/tool.sh,target=/t.sh sh /t.sh > /out\n")})
    build(cli, ctx, "-t", "fromstage")
    assert run(cli, "fromstage", "cat", "/out") == "tool ran\n"
    assert image_files(cli, "fromstage", "/t.sh") == ""
    assert left_behind(cli) == []


def test_tmpfs_mount(cli: CLI, tmp_path: Path) -> None:
    ctx = write(tmp_path / "ctx", {"Dockerfile": (
        "FROM busybox\nRUN --mount=type=tmpfs,target=/scratch,size=2m "
        "sh -c 'grep \" /scratch \" /proc/mounts > /mounts; echo x > /scratch/file'\n")})
    build(cli, ctx, "-t", "tmpfs")
    line = run(cli, "tmpfs", "cat", "/mounts")
    assert line.startswith("tmpfs /scratch tmpfs ") and "size=2048k" in line
    assert image_files(cli, "tmpfs", "/scratch") == ""
    assert left_behind(cli) == []


@pytest.mark.parametrize("line, message", [
    ("RUN --mount=type=secret,id=token cat /run/secrets/token",
     "Dockerfile:3: RUN: --mount=type=secret: build secrets are not supported"),
    ("RUN --security=insecure true", "Dockerfile:3: RUN: --security=insecure"),
    ("RUN --mount=type=bind,source=missing,target=/m true", "Dockerfile:3: RUN --mount failed"),
])
def test_refused_naming_the_line_with_nothing_run(cli: CLI, tmp_path: Path, line: str,
                                                  message: str) -> None:
    ctx = write(tmp_path / "ctx", {"Dockerfile": f"FROM busybox\nRUN echo first\n{line}\n"})
    result = build(cli, ctx, "-t", "refused", check=False)
    assert_one_line_error(result, 125, message)
    assert "Running in" not in result.stdout and "first" not in result.stdout
    assert cli("image", "inspect", "refused").returncode != 0
    assert left_behind(cli) == []


def test_a_failing_run_with_mounts_leaves_nothing(cli: CLI, tmp_path: Path) -> None:
    ctx = write(tmp_path / "ctx", {"Dockerfile": (
        "FROM busybox\nRUN --mount=target=/c,rw --mount=type=cache,target=/k,sharing=locked "
        "--mount=type=tmpfs,target=/t sh -c 'ls /c /k /t; exit 3'\n"), "f": "x"})
    result = build(cli, ctx, "-t", "failing", check=False)
    assert result.returncode == 1 and "returned a non-zero code: 3" in result.stderr
    assert left_behind(cli) == []


def _tar(name: str, data: bytes) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


COPIES = """\
FROM busybox
COPY --exclude=*.log --exclude=tmp src /app/
COPY --parents ./x/a.txt ./y/a.txt /no_pivot/
COPY --parents ./x/./y/*.txt /pivot/
COPY --link src/keep.py /linked.py
ADD --unpack=false bundle.tar /kept/
ADD bundle.tar /unpacked/
"""


def test_copy_exclude_parents_link_and_add_unpack(cli: CLI, tmp_path: Path) -> None:
    ctx = write(tmp_path / "ctx", {
        "Dockerfile": COPIES, "src/keep.py": "k", "src/drop.log": "d", "src/tmp/t": "t",
        "src/deep/kept.log": "k", "x/a.txt": "xa", "x/y/b.txt": "xyb", "y/a.txt": "ya",
        "bundle.tar": _tar("inside.txt", b"in the tar\n")})
    build(cli, ctx, "-t", "copies")
    listing = run(cli, "copies", "find", "/app", "/no_pivot", "/pivot", "/kept", "/unpacked",
                  "/linked.py")
    assert sorted(listing.split()) == sorted([
        "/app", "/app/keep.py", "/app/deep", "/app/deep/kept.log",  # *.log: this level only
        "/no_pivot", "/no_pivot/x", "/no_pivot/x/a.txt", "/no_pivot/y", "/no_pivot/y/a.txt",
        "/pivot", "/pivot/y", "/pivot/y/b.txt",
        "/kept", "/kept/bundle.tar", "/unpacked", "/unpacked/inside.txt", "/linked.py"])
    assert run(cli, "copies", "cat", "/pivot/y/b.txt") == "xyb"
    config = json.loads(cli("image", "inspect", "copies", check=True).stdout)[0]
    assert len(config["RootFS"]["Layers"]) == 1 + 6
    oci_check(cli, "copies", tmp_path)


def test_add_unpack_true_unpacks_a_downloaded_archive(cli: CLI, tmp_path: Path) -> None:
    body = _tar("remote.txt", b"from the remote tar\n")

    class Handler(QuietHandler):
        def do_GET(self) -> None:  # noqa: N802 -- the http.server API
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    with serve_http(Handler) as url:
        ctx = write(tmp_path / "ctx", {"Dockerfile": (
            f"FROM busybox\nADD --unpack=true {url}/r.tar /unpacked/\n"
            f"ADD {url}/r.tar /as-file/\n")})
        build(cli, ctx, "-t", "remote")
    assert run(cli, "remote", "cat", "/unpacked/remote.txt") == "from the remote tar\n"
    assert run(cli, "remote", "ls", "/as-file") == "r.tar\n"  # the default: kept a file
    assert left_behind(cli) == []
