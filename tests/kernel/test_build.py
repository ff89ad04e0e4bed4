"""``minidocker build`` against the real kernel: images built from busybox, then run.

Multi-stage builds and ``--target``, ONBUILD across two builds, the cache (a touched file hits,
a changed one misses, a rebuild starts no container), ADD's archives and URLs, VOLUME, WORKDIR,
USER, heredocs (a ``#!`` one run by its interpreter), symbolic ``--chmod``, COPY sources that
use a base stage's ENV, a Dockerfile from STDIN or outside the context (``-f``), RUN's exec
form, a RUN that deletes (OCI whiteouts), the history's ``empty_layer`` entries,
``.dockerignore``, and the failures: nothing tagged, no container left (the session's leak
check covers mounts, cgroups and processes). Every image built here passes skopeo and umoci.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import json
import lzma
import os
import signal
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CLI, QuietHandler, needs_root, serve_http
from tests.kernel.test_bad_input import assert_one_line_error

pytestmark = [needs_root, pytest.mark.kernel, pytest.mark.nb07]

# skopeo and umoci are in scripts/setup.sh's APT_PACKAGES: every built image is checked with
# them, and a missing tool fails the test rather than skipping what else it checks.


def write(ctx: Path, files: dict[str, str | bytes]) -> Path:
    for rel, data in files.items():
        path = ctx / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data)
    return ctx


def build(cli: CLI, ctx: Path, *args: str, check: bool = True
          ) -> subprocess.CompletedProcess[str]:
    return cli("build", *args, str(ctx), check=check, timeout=180)


def run(cli: CLI, *args: str) -> str:
    return cli("run", "--rm", *args, check=True).stdout


def containers(cli: CLI) -> list[str]:
    try:
        return [n for n in os.listdir(cli.root / "containers") if not n.startswith(".")]
    except FileNotFoundError:
        return []


def oci_check(cli: CLI, ref: str, tmp_path: Path) -> Path:
    """skopeo reads and copies the image; umoci unpacks it: the unpacked root filesystem."""
    layout = cli.root / "images"
    ref = ref if ":" in ref else f"{ref}:latest"  # the layout's ref.name is the familiar name
    subprocess.run(["skopeo", "inspect", f"oci:{layout}:{ref}"], capture_output=True,
                   check=True)
    subprocess.run(["skopeo", "--insecure-policy", "copy", f"oci:{layout}:{ref}",
                    f"oci:{tmp_path / 'copy'}:c"], capture_output=True, check=True)
    bundle = tmp_path / "bundle"
    subprocess.run(["umoci", "unpack", "--image", f"{layout}:{ref}", str(bundle)],
                   capture_output=True, check=True)
    return bundle / "rootfs"


MULTI = """\
FROM busybox AS compile
WORKDIR /src
COPY app.sh .
RUN sed 's/VERSION/1.0/' app.sh > /app && chmod 755 /app
RUN dd if=/dev/zero of=/big bs=1024 count=512

FROM scratch AS final
COPY --from=compile /app /app
COPY --from=busybox /bin/busybox /bin/sh
ENTRYPOINT ["/bin/sh", "/app"]
"""


def test_multi_stage_and_target(cli: CLI, tmp_path: Path) -> None:
    ctx = write(tmp_path / "ctx", {"Dockerfile": MULTI, "app.sh": "echo app VERSION\n"})
    out = build(cli, ctx, "-t", "multi:1", "-t", "multi:latest").stdout
    assert "Step 1/9 : FROM busybox AS compile" in out and "Successfully tagged multi:1" in out
    assert run(cli, "multi:1") == "app 1.0\n"
    assert run(cli, "multi") == "app 1.0\n"
    final = json.loads(cli("image", "inspect", "multi:1", check=True).stdout)[0]
    assert len(final["RootFS"]["Layers"]) == 2  # the stage's two COPYs: nothing of stage 0
    rootfs = oci_check(cli, "multi:1", tmp_path)
    assert sorted(os.listdir(rootfs)) == ["app", "bin"]
    # --target stops at the first stage: it has the compiler's files and workdir
    build(cli, ctx, "--target", "compile", "-t", "compile")
    assert run(cli, "compile", "pwd") == "/src\n"
    assert run(cli, "compile", "stat", "-c", "%s", "/big") == f"{512 * 1024}\n"


def test_onbuild_across_two_builds(cli: CLI, tmp_path: Path) -> None:
    parent = write(tmp_path / "parent", {"Dockerfile": (
        "FROM busybox\nONBUILD COPY marker /marker\n"
        "ONBUILD RUN echo triggered > /triggered\n")})
    build(cli, parent, "-t", "onbuild-parent")
    assert run(cli, "onbuild-parent", "ls", "/") .count("triggered") == 0  # stored, not run
    inspect = json.loads(cli("image", "inspect", "onbuild-parent", check=True).stdout)[0]
    assert inspect["Config"]["OnBuild"] == ["COPY marker /marker",
                                            "RUN echo triggered > /triggered"]
    child = write(tmp_path / "child", {"Dockerfile": "FROM onbuild-parent\nCMD cat /marker "
                                                     "/triggered\n", "marker": "from child\n"})
    out = build(cli, child, "-t", "onbuild-child").stdout
    assert "# Executing 2 build triggers" in out
    assert run(cli, "onbuild-child") == "from child\ntriggered\n"
    inspect = json.loads(cli("image", "inspect", "onbuild-child", check=True).stdout)[0]
    assert not inspect["Config"].get("OnBuild")  # a grandchild does not run them again
    assert (oci_check(cli, "onbuild-child", tmp_path) / "triggered").read_text() == "triggered\n"


def test_onbuild_rejects_chains(cli: CLI, tmp_path: Path) -> None:
    for line in ("ONBUILD ONBUILD RUN x", "ONBUILD FROM busybox", "ONBUILD MAINTAINER me"):
        ctx = write(tmp_path / str(abs(hash(line))), {"Dockerfile": f"FROM busybox\n{line}\n"})
        assert_one_line_error(build(cli, ctx, check=False), 125, "Dockerfile:2", "ONBUILD")


CACHED = """\
FROM busybox
COPY data.txt /data.txt
RUN cat /data.txt > /copy
CMD ["cat", "/copy"]
"""


def test_cache_hits_on_touch_and_misses_on_change(cli: CLI, tmp_path: Path) -> None:
    ctx = write(tmp_path / "ctx", {"Dockerfile": CACHED, "data.txt": "one\n"})
    first = build(cli, ctx, "-q").stdout.strip()
    assert first.startswith("sha256:")
    os.utime(ctx / "data.txt", (1_000_000, 1_000_000))  # touched: the same content
    again = build(cli, ctx)
    assert again.stdout.count(" ---> Using cache") == 3
    assert "Running in" not in again.stdout  # no container started
    assert first.removeprefix("sha256:")[:12] in again.stdout
    (ctx / "data.txt").write_text("two\n")
    changed = build(cli, ctx, "-t", "cached")
    assert changed.stdout.count(" ---> Using cache") == 0
    assert "Running in" in changed.stdout
    assert run(cli, "cached") == "two\n"
    assert (oci_check(cli, "cached", tmp_path) / "copy").read_text() == "two\n"
    nocache = build(cli, ctx, "--no-cache", "-t", "cached")
    assert "Using cache" not in nocache.stdout and "Running in" in nocache.stdout
    assert containers(cli) == []  # every step's container was removed


def _tar(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size, info.uid, info.gid, info.mode = len(data), 1234, 5678, 0o640
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_add_extracts_local_archives(cli: CLI, tmp_path: Path) -> None:
    ctx = write(tmp_path / "ctx", {
        "Dockerfile": ("FROM busybox\nADD plain.tar /plain/\nADD a.tgz /gz/\nADD b.bz /bz/\n"
                       "ADD c.xz /xz/\nCOPY a.tgz /copied.tgz\n"),
        "plain.tar": _tar("p/file", b"plain\n"), "a.tgz": gzip.compress(_tar("g", b"gz\n")),
        "b.bz": bz2.compress(_tar("b", b"bz\n")), "c.xz": lzma.compress(_tar("x", b"xz\n"))})
    build(cli, ctx, "-t", "adds")
    assert run(cli, "adds", "cat", "/plain/p/file", "/gz/g", "/bz/b", "/xz/x") == \
        "plain\ngz\nbz\nxz\n"
    assert run(cli, "adds", "stat", "-c", "%u:%g %a", "/gz/g") == "1234:5678 640\n"
    assert run(cli, "adds", "sh", "-c", "gzip -dc /copied.tgz | tar -tf -") == "g\n"  # COPY
    rootfs = oci_check(cli, "adds", tmp_path)
    assert (rootfs / "xz" / "x").read_text() == "xz\n"


@pytest.fixture
def http_server() -> Iterator[str]:
    class Handler(QuietHandler):
        def do_GET(self) -> None:  # noqa: N802 -- the http.server API
            body = b"fetched over http\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    with serve_http(Handler) as url:
        yield url


def test_add_url_with_checksum(cli: CLI, tmp_path: Path, http_server: str) -> None:
    good = "sha256:" + hashlib.sha256(b"fetched over http\n").hexdigest()
    ctx = write(tmp_path / "ctx", {"Dockerfile": f"FROM busybox\nADD --checksum={good} "
                                                 f"{http_server}/f.txt /srv/\n"})
    build(cli, ctx, "-t", "fetched")
    assert run(cli, "fetched", "cat", "/srv/f.txt") == "fetched over http\n"
    assert run(cli, "fetched", "stat", "-c", "%a", "/srv/f.txt") == "600\n"
    bad = write(tmp_path / "bad", {"Dockerfile": f"FROM busybox\nADD --checksum=sha256:"
                                                 f"{'0' * 64} {http_server}/f.txt /srv/\n"})
    assert_one_line_error(build(cli, bad, check=False), 125, "digest mismatch")
    assert os.listdir(cli.root / "tmp") == []


def test_volume_workdir_user_heredoc(cli: CLI, tmp_path: Path) -> None:
    ctx = write(tmp_path / "ctx", {"Dockerfile": (
        "FROM busybox\n"
        "RUN mkdir /data && echo seeded > /data/seed\n"
        "VOLUME /data\n"
        "RUN echo lost > /data/after\n"  # Docker: a change under a declared VOLUME is discarded
        "WORKDIR /srv\nWORKDIR app\n"
        "RUN <<EOF\necho \"in $(pwd)\" > here\nchown nobody here\nEOF\n"
        "USER nobody\n"
        "CMD cat /data/seed here; id -un\n")})
    build(cli, ctx, "-t", "features")
    assert run(cli, "features") == "seeded\nin /srv/app\nnobody\n"
    # /data is an anonymous volume, seeded from the image; --rm removed it
    assert run(cli, "features", "sh", "-c", "grep -c ' /data ' /proc/mounts; ls /data") == \
        "1\nseed\n"
    assert cli("volume", "ls", "-q", check=True).stdout == ""
    assert run(cli, "features", "stat", "-c", "%U", "here") == "nobody\n"
    config = json.loads(cli("image", "inspect", "features", check=True).stdout)[0]["Config"]
    assert config["Volumes"] == {"/data": {}} and config["WorkingDir"] == "/srv/app"
    assert config["User"] == "nobody"
    rootfs = oci_check(cli, "features", tmp_path)
    assert (rootfs / "srv" / "app" / "here").read_text() == "in /srv/app\n"
    assert not (rootfs / "data" / "after").exists()


def test_dockerfile_from_stdin(cli: CLI, tmp_path: Path) -> None:
    result = cli("build", "-t", "stdin", "-", input="FROM busybox\nRUN echo built > /b\n",
                 check=True)
    assert "Successfully tagged stdin:latest" in result.stdout
    assert run(cli, "stdin", "cat", "/b") == "built\n"
    assert (oci_check(cli, "stdin", tmp_path) / "b").read_text() == "built\n"
    refused = cli("build", "-", input="FROM busybox\nCOPY x /x\n")
    assert_one_line_error(refused, 125, "Dockerfile:2", "no build context")


def test_dockerignore_keeps_files_out(cli: CLI, tmp_path: Path) -> None:
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nCOPY . /ctx/\n",
                                   ".dockerignore": "*.key\nlogs\n!logs/keep\n",
                                   "app.txt": "a", "secret.key": "s", "logs/old": "o",
                                   "logs/keep": "k"})
    build(cli, ctx, "-t", "ignored")
    listing = run(cli, "ignored", "find", "/ctx", "-type", "f").split()
    assert sorted(listing) == ["/ctx/.dockerignore", "/ctx/Dockerfile", "/ctx/app.txt",
                               "/ctx/logs/keep"]


# -- failures ---------------------------------------------------------------------------------

def test_failing_run_tags_nothing_and_leaves_nothing(cli: CLI, tmp_path: Path) -> None:
    good = write(tmp_path / "good", {"Dockerfile": "FROM busybox\nRUN echo v1 > /v\n"})
    build(cli, good, "-t", "keep")
    before = cli("image", "inspect", "keep", check=True).stdout
    bad = write(tmp_path / "bad", {"Dockerfile": "FROM busybox\nRUN echo v2 > /v\n"
                                                 "RUN echo oops; exit 3\n"})
    result = build(cli, bad, "-t", "keep", check=False)
    assert result.returncode == 1
    assert "minidocker: The command '/bin/sh -c echo oops; exit 3' returned a non-zero " \
           "code: 3" in result.stderr
    assert "Step 3/3 : RUN echo oops; exit 3" in result.stdout
    assert "oops" in result.stdout
    assert cli("image", "inspect", "keep", check=True).stdout == before  # the tag did not move
    assert containers(cli) == []
    quiet = build(cli, bad, "-q", check=False)
    assert quiet.returncode == 1 and quiet.stdout == ""
    assert "oops" in quiet.stderr and "Step 3/3" in quiet.stderr  # the output, and the step


@pytest.mark.parametrize(("dockerfile", "words"), [
    ("FROM busybox\nRUN touch /x\nCOPY missing /m\n", ["Dockerfile:3", "missing"]),
    ("FROM busybox\nRUN touch /x\nRUNN x\n", ["Dockerfile:3", "unknown instruction"]),
    ("FROM busybox\nRUN touch /x\nCOPY ../outside /m\n", ["Dockerfile:3", "outside"]),
    ("FROM busybox\nRUN [\"unterminated\n", ["Dockerfile"]),
], ids=["missing COPY source", "unknown instruction", "outside the context", "bad JSON"])
def test_bad_dockerfiles_stop_before_anything_runs(cli: CLI, tmp_path: Path, dockerfile: str,
                                                   words: list[str]) -> None:
    ctx = write(tmp_path / "ctx", {"Dockerfile": dockerfile})
    result = build(cli, ctx, check=False)
    if "unterminated" in dockerfile:  # BuildKit takes a bad JSON array as the shell form
        assert result.returncode == 1 and "returned a non-zero code" in result.stderr
        return
    assert_one_line_error(result, 125, *words)
    assert "Running in" not in result.stdout and result.stdout == ""
    assert containers(cli) == []


def test_bad_tag_is_refused_first(cli: CLI, tmp_path: Path) -> None:
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nRUN touch /x\n"})
    result = build(cli, ctx, "-t", "ok", "-t", "Bad:Tag", check=False)
    assert_one_line_error(result, 125, "invalid reference format", "library/Bad")
    assert result.stdout == ""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_build_leaves_nothing(cli: CLI, tmp_path: Path, sig: int) -> None:
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nRUN sleep 60\n"})
    build_ = cli.popen("build", "-t", "never", str(ctx), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    assert build_.stdout is not None
    for line in build_.stdout:  # wait until the RUN's container runs
        if "Running in" in line:
            break
    time.sleep(0.3)
    build_.send_signal(sig)
    build_.communicate(timeout=30)
    assert build_.returncode == 128 + sig
    assert containers(cli) == []
    assert cli("image", "inspect", "never").returncode != 0  # nothing tagged


def test_build_args(cli: CLI, tmp_path: Path) -> None:
    ctx = write(tmp_path / "ctx", {"Dockerfile": (
        "ARG BASE=nothere\nFROM $BASE\nARG WHO=default\nENV KEPT=env\n"
        "RUN echo \"$WHO $KEPT\" > /who\n")})
    build(cli, ctx, "--build-arg", "BASE=busybox", "--build-arg", "WHO=builder", "-t", "args")
    assert run(cli, "args", "cat", "/who") == "builder env\n"
    env = json.loads(cli("image", "inspect", "args", check=True).stdout)[0]["Config"]["Env"]
    assert "KEPT=env" in env and not any(e.startswith("WHO=") for e in env)  # not kept
    again = build(cli, ctx, "--build-arg", "BASE=busybox", "--build-arg", "WHO=other")
    assert again.stdout.count("Using cache") == 2  # ARG and ENV; the RUN sees another value
    assert "Running in" in again.stdout


def test_copy_heredocs(cli: CLI) -> None:
    dockerfile = ("FROM busybox\nARG WHO=builder\nCOPY <<EOF /etc/motd\nhello $WHO\nEOF\n"
                  "COPY <<'RAW' <<B /multi/\n$WHO\nRAW\nb\nB\n")
    cli("build", "-t", "heredocs", "-", input=dockerfile, check=True)
    assert run(cli, "heredocs", "cat", "/etc/motd", "/multi/RAW", "/multi/B") == \
        "hello builder\n$WHO\nb\n"  # a quoted delimiter: no expansion


# -- the ENV a stage inherits, symbolic --chmod, #! heredocs ----------------------------------

def test_copy_sources_see_the_env_a_stage_inherits(cli: CLI, tmp_path: Path) -> None:
    """The pre-build check expands COPY sources with the base stage's ENV, as docker build
    does (it used to refuse this with "stat /x")."""
    cli("run", "--rm", "--network", "none", "busybox", "true", check=True)  # busybox is here
    files: dict[str, str | bytes] = {
        "Dockerfile": "FROM busybox AS base\nENV APPDIR=appdir\nFROM base\nCOPY $APPDIR/x /y\n",
        "appdir/x": "from appdir\n"}
    build(cli, write(tmp_path / "ctx", files), "-t", "inherits")
    assert run(cli, "inherits", "cat", "/y") == "from appdir\n"
    files["Dockerfile"] = ("FROM busybox AS base\nENV APPDIR=appdir\nRUN touch /ran\n"
                           "FROM base\nCOPY $APPDIR/nothere /y\n")
    result = build(cli, write(tmp_path / "bad", files), check=False)
    assert_one_line_error(result, 125, "Dockerfile:5", "appdir/nothere")
    assert result.stdout == "" and containers(cli) == []  # refused before the RUN


def test_symbolic_chmod(cli: CLI, tmp_path: Path) -> None:
    ctx = write(tmp_path / "ctx", {"Dockerfile": (
        "FROM busybox\nCOPY --chmod=u+x,go-w tool /bin/tool\n"
        "COPY --chmod=a=rX dir /dir\nCOPY --chmod=0640 tool /octal\n"),
        "tool": "#!/bin/sh\necho tool ran\n", "dir/sub/f": "f\n"})
    os.chmod(ctx / "tool", 0o666)
    os.chmod(ctx / "dir" / "sub" / "f", 0o600)
    build(cli, ctx, "-t", "chmods")
    assert run(cli, "chmods", "tool") == "tool ran\n"
    assert run(cli, "chmods", "stat", "-c", "%a %n", "/bin/tool", "/dir", "/dir/sub",
               "/dir/sub/f", "/octal") == \
        "744 /bin/tool\n555 /dir\n555 /dir/sub\n444 /dir/sub/f\n640 /octal\n"
    rootfs = oci_check(cli, "chmods", tmp_path)
    assert oct((rootfs / "bin" / "tool").stat().st_mode & 0o7777) == "0o744"
    bad = write(tmp_path / "bad", {"Dockerfile": "FROM busybox\nRUN touch /ran\n"
                                                 "COPY --chmod=u+q tool /t\n", "tool": "t"})
    result = build(cli, bad, check=False)
    assert_one_line_error(result, 125, "Dockerfile:3", "invalid chmod parameter: 'u+q'")
    assert result.stdout == "" and containers(cli) == []


def test_heredoc_with_an_interpreter_runs_as_a_file(cli: CLI, tmp_path: Path) -> None:
    """BuildKit writes ``RUN <<EOF`` starting with ``#!`` to a file and execs it: ``$0`` is
    the file, and a non-shell interpreter (busybox's awk) runs it. The file is mounted on
    /dev (a tmpfs), so no layer has it."""
    dockerfile = ("FROM busybox\n"
                  "RUN <<EOF\n#!/bin/sh\necho \"$0\" > /sh-zero\nEOF\n"
                  "RUN <<-AWK\n\t#!/usr/bin/awk -f\n\tBEGIN { print \"awk ran\" > \"/awk-out\" }\n"
                  "\tAWK\n"
                  "RUN <<EOF\necho \"$0\" > /plain-zero\nEOF\n"
                  "USER nobody\n"
                  "RUN <<EOF\n#!/bin/sh\nid -un > /tmp/as-nobody\nEOF\n")
    cli("build", "-t", "shebang", "-", input=dockerfile, check=True)
    assert run(cli, "shebang", "cat", "/sh-zero", "/awk-out", "/plain-zero",
               "/tmp/as-nobody") == "/dev/pipes/EOF\nawk ran\n/bin/sh\nnobody\n"
    rootfs = oci_check(cli, "shebang", tmp_path)
    assert not (rootfs / "dev" / "pipes").exists()
    history = image_config(cli, "shebang")["history"]
    assert history[-4]["created_by"] == "/bin/sh -c /dev/pipes/AWK"
    assert os.listdir(cli.root / "tmp") == []  # the script's dir is gone


# -- -f, RUN's exec form, deletions, history --------------------------------------------------

def image_config(cli: CLI, ref: str) -> dict[str, Any]:
    return json.loads(blob(cli, manifest(cli, ref)["config"]["digest"]))


def manifest(cli: CLI, ref: str) -> dict[str, Any]:
    index = json.loads((cli.root / "images" / "index.json").read_text())
    ref = ref if ":" in ref else f"{ref}:latest"
    entry = next(m for m in index["manifests"]
                 if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == ref)
    return json.loads(blob(cli, entry["digest"]))


def blob(cli: CLI, digest: str) -> bytes:
    return (cli.root / "images" / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()


def test_dockerfile_outside_the_context_and_from_stdin_with_one(cli: CLI,
                                                                 tmp_path: Path) -> None:
    ctx = write(tmp_path / "ctx", {"data.txt": "in the context\n"})
    outside = write(tmp_path / "elsewhere", {"build.Dockerfile": (
        "FROM busybox\nCOPY data.txt /data.txt\nCOPY . /ctx/\n")}) / "build.Dockerfile"
    build(cli, ctx, "-f", str(outside), "-t", "outside")
    assert run(cli, "outside", "cat", "/data.txt") == "in the context\n"
    assert run(cli, "outside", "ls", "-A", "/ctx") == "data.txt\n"  # no Dockerfile in it
    cli("build", "-f", "-", "-t", "stdin-ctx", str(ctx), input="FROM busybox\nCOPY data.txt /d\n",
        check=True)
    assert run(cli, "stdin-ctx", "cat", "/d") == "in the context\n"
    missing = build(cli, ctx, "-f", str(tmp_path / "nothere"), check=False)
    assert_one_line_error(missing, 125, "cannot read Dockerfile", "nothere")


def test_run_exec_form(cli: CLI, tmp_path: Path) -> None:
    """The exec form runs its argv as it is: no shell splits or expands it."""
    dockerfile = ('FROM busybox\nENV WHO=builder\nRUN ["/bin/mkdir", "/two words"]\n'
                  'RUN ["/bin/sh", "-c", "echo \\"$0 $WHO\\" > \'/two words/f\'", "$WHO"]\n')
    cli("build", "-t", "execform", "-", input=dockerfile, check=True)
    assert run(cli, "execform", "cat", "/two words/f") == "$WHO builder\n"
    history = image_config(cli, "execform")["history"]
    assert history[-2]["created_by"] == "/bin/mkdir /two words"
    assert (oci_check(cli, "execform", tmp_path) / "two words" / "f").exists()


def test_run_that_deletes_writes_whiteouts(cli: CLI, tmp_path: Path) -> None:
    cli("build", "-t", "deleted", "-", input="FROM busybox\nRUN rm /etc/group && rm -r /home\n",
        check=True)
    last = manifest(cli, "deleted")["layers"][-1]["digest"]
    with tarfile.open(fileobj=io.BytesIO(blob(cli, last))) as tar:
        names = sorted(m.name.rstrip("/") for m in tar.getmembers())
    assert names == [".wh.home", "etc", "etc/.wh.group"]
    assert run(cli, "deleted", "sh", "-c", "ls /etc/group /home 2>&1; echo $?") == \
        "ls: /etc/group: No such file or directory\nls: /home: No such file or directory\n1\n"
    rootfs = oci_check(cli, "deleted", tmp_path)
    assert (rootfs / "etc" / "passwd").exists()
    assert not (rootfs / "etc" / "group").exists() and not (rootfs / "home").exists()


def test_history_marks_config_only_steps_empty(cli: CLI, tmp_path: Path) -> None:
    dockerfile = ("FROM busybox\nENV A=1\nLABEL l=v\nRUN touch /f\nEXPOSE 80\nWORKDIR /tmp\n"
                  "WORKDIR /made\nCOPY <<EOF /made/g\ng\nEOF\nCMD [\"sh\"]\nUSER nobody\n")
    cli("build", "-t", "hist", "-", input=dockerfile, check=True)
    config = image_config(cli, "hist")
    base = len(image_config(cli, "busybox")["history"])
    steps = [(h["created_by"].split("#(nop) ")[-1].strip(), h.get("empty_layer", False))
             for h in config["history"][base:]]
    assert steps == [("ENV A=1", True), ("LABEL l=v", True), ("/bin/sh -c touch /f", False),
                     ("EXPOSE 80", True), ("WORKDIR /tmp", True), ("WORKDIR /made", False),
                     (steps[6][0], False), ('CMD ["sh"]', True), ("USER nobody", True)]
    assert steps[6][0].startswith("COPY multi:")
    # one layer per step that changed files, in order: the image-spec's rule
    assert len(config["rootfs"]["diff_ids"]) == \
        len([h for h in config["history"] if not h.get("empty_layer")])
    oci_check(cli, "hist", tmp_path)
