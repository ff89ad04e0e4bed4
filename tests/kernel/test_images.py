"""Images against the real kernel: overlay's merge, diff/commit/export of live containers, many
layers, the vfs driver, kill -9 during load and commit, rmi of images in use, and bad input.

Every case runs ``minidocker`` as a user does, against its own state root.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from minidocker import layers
from minidocker.store import ImageStore
from tests.conftest import CLI, TEST_ROOT_MARK, needs_root, stop_minidocker
from tests.kernel.test_bad_input import assert_one_line_error, assert_unchanged, snapshot
from tests.tarfiles import make_tar

pytestmark = [needs_root, pytest.mark.kernel, pytest.mark.nb04, pytest.mark.nb05]

needs_tools = pytest.mark.skipif(not (shutil.which("skopeo") and shutil.which("umoci")),
                                 reason="needs skopeo and umoci (apt-get install skopeo umoci)")


def in_mount_namespace(script: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run a bash script as root in a private mount namespace: its mounts die with it."""
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "bash", "-euc",
                           script], capture_output=True, text=True, timeout=timeout)


def busybox_image(cli: CLI, *files: tuple[str, bytes | None], ref: str) -> None:
    """busybox's own layer plus one more with ``files``, named ``ref`` (made with the API)."""
    cli("run", "--rm", "busybox", "true", check=True)
    store = ImageStore(cli.root)
    base = store.resolve("busybox")
    top = store.add_layer(io.BytesIO(make_tar(*files)), parent=base.chain_ids()[-1])
    config = {**base.config, "history": [*base.history, {"created_by": "test"}]}
    store.write_image(config, [*base.layers(), top], ref)


# -- the kernel's merge is the Stack's ------------------------------------------------------

def test_stack_matches_the_kernels_merge(tmp_path: Path) -> None:
    tars = [
        make_tar(("a", None), ("a/x", b"1"), ("a/y", b"2"), ("b", None), ("b/z", b"3"),
               ("f", b"f"), ("d2f", None), ("d2f/k", b"k"), ("o", None), ("o/old", b"o")),
        make_tar(("a/.wh.x", b""), ("b/.wh..wh..opq", b""), ("b/new", b"n"), ("d2f", b"file"),
               ("f", b"f2")),
        make_tar(("o/.wh..wh..opq", b""), ("o/fresh", b"fr"), ("f", None), ("f/in", b"in"),
               ("a/.wh.y", b""), ("a/y", b"kept: the same layer")),
    ]
    dirs = []
    for i, data in enumerate(tars):
        d = tmp_path / f"{TEST_ROOT_MARK}layer{i}"
        d.mkdir()
        layers.unpack(io.BytesIO(data), d)
        dirs.insert(0, str(d))  # topmost first
    mine = sorted((rel, node.st.st_mode) for rel, node in layers.Stack(dirs).walk())
    merged = tmp_path / "merged"
    merged.mkdir()
    listing = ("import os, json; m = os.sys.argv[1]; print(json.dumps(sorted("
               "[os.path.relpath(os.path.join(d, n), m), os.lstat(os.path.join(d, n)).st_mode]"
               " for d, ds, fs in os.walk(m) for n in ds + fs)))")
    result = in_mount_namespace(f"mount -t overlay overlay -o lowerdir={':'.join(dirs)} "
                                f"{merged}; {sys.executable} -c '{listing}' {merged}")
    assert result.returncode == 0, result.stderr
    assert [tuple(x) for x in json.loads(result.stdout)] == mine


# -- diff, commit, export of a live container ---------------------------------------------

def test_diff_commit_export_of_a_container(cli: CLI, tmp_path: Path) -> None:
    script = ("echo hi > /root/hello; ln /root/hello /root/link; rm /etc/group; "
              "rm -rf /var/spool; mkdir -p /var/spool/new; echo x >> /etc/passwd; "
              "mkdir -p /opt/app; chmod 4755 /bin/busybox")
    cli("run", "--name", "work", "busybox", "sh", "-c", script, check=True)
    diff = cli("diff", "work", check=True).stdout.splitlines()
    assert diff == ["C /bin", "C /bin/busybox", "C /etc", "D /etc/group", "C /etc/passwd",
                    "A /opt", "A /opt/app", "C /root", "A /root/hello", "A /root/link",
                    "C /var", "C /var/spool", "D /var/spool/mail", "A /var/spool/new"]

    image_id = cli("commit", "-a", "Ada", "-m", "a message", "-c", 'CMD ["cat", "/root/hello"]',
                   "-c", "ENV GREETING=hi", "work", "mine:1", check=True).stdout.strip()
    assert image_id.startswith("sha256:")
    assert cli("run", "--rm", "mine:1", check=True).stdout == "hi\n"
    seen = cli("run", "--rm", "mine:1", "sh", "-c",
               "ls /var/spool; test -e /etc/group || echo no-group; echo $GREETING; "
               "stat -c '%h %a' /root/hello /bin/busybox", check=True).stdout.split()
    assert seen == ["new", "no-group", "hi", "2", "644", "1", "4755"]
    inspect = json.loads(cli("image", "inspect", "mine:1", check=True).stdout)[0]
    assert inspect["Id"] == image_id and inspect["Author"] == "Ada"
    assert inspect["Config"]["Cmd"] == ["cat", "/root/hello"]
    assert "GREETING=hi" in inspect["Config"]["Env"] and len(inspect["RootFS"]["Layers"]) == 2
    history = cli("history", "mine:1", check=True).stdout.splitlines()
    assert history[1].startswith(image_id[7:19]) and history[1].rstrip().endswith("a message")
    assert len(history) == 3

    out = tmp_path / "export.tar"
    cli("export", "-o", str(out), "work", check=True)
    with tarfile.open(out) as tar:
        exported = {m.name.rstrip("/") for m in tar}
    inside = cli("run", "--rm", "mine:1", "find", "/", "-xdev", check=True).stdout.split()
    inside = {p.lstrip("/") for p in inside if p != "/"}
    assert {"root/hello", "var/spool/new", "opt/app", "bin/sh"} <= exported
    assert "etc/group" not in exported and "var/spool/mail" not in exported
    # The container's tree as the kernel shows it (its own mounts aside) is what export wrote.
    assert inside - {"etc/hostname", "etc/hosts", "etc/resolv.conf"} <= exported


def test_a_container_that_changed_nothing_has_no_diff(cli: CLI) -> None:
    # The init layer's mount points (/proc, /sys, /dev, /etc/hostname...) are not changes.
    cli("run", "--name", "idle", "busybox", "true", check=True)
    assert cli("diff", "idle", check=True).stdout == ""
    cli("commit", "idle", "same", check=True)
    store = ImageStore(cli.root)
    top = store.layer_dirs(store.resolve("same"))[0]
    assert os.listdir(top) == []  # an empty layer: Docker's commit makes one too


# -- many layers, in order --------------------------------------------------------------------

def test_many_layers_fit_the_mount_options_and_stack_in_order(cli: CLI) -> None:
    cli("run", "--rm", "busybox", "true", check=True)
    store = ImageStore(cli.root)
    base = store.resolve("busybox")
    stack = base.layers()
    for i in range(80):  # 80 paths of ~120 bytes: twice what one page of options holds
        chain = layers.chain_ids([x.diff_id for x in stack])[-1]
        stack.append(store.add_layer(io.BytesIO(make_tar((f"layers/{i:03}", b"x"),
                                                       ("top", str(i).encode()))),
                                     parent=chain))
    store.write_image({**base.config, "history": []}, stack, "tall:1")
    trace = cli.root / f"{TEST_ROOT_MARK}trace.jsonl"
    result = cli("run", "--rm", "--trace-json", str(trace), "tall:1", "sh", "-c",
                 "cat /top; echo; ls /layers | wc -l", check=True)
    assert result.stdout.split() == ["79", "80"]  # the leftmost lower dir is the top layer
    mounts = [e for e in map(json.loads, trace.read_text().splitlines())
              if e.get("call") == "mount" and '"overlay"' in e["args"][2]]
    assert len(mounts) == 1 and "lowerdir=/proc/self/fd/" in mounts[0]["args"][4]


# -- the vfs driver where overlay can't be used ---------------------------------------------

def test_vfs_is_chosen_on_an_overlay_root_and_works(tmp_path: Path) -> None:
    base = tmp_path / f"{TEST_ROOT_MARK}ovl"
    for d in ("lower", "upper", "work", "merged"):
        (base / d).mkdir(parents=True)
    root = base / "merged" / "state"
    m = f"MINIDOCKER_ROOT={root} {sys.executable} -m minidocker"
    script = f"""
mount -t overlay overlay -o lowerdir={base}/lower,upperdir={base}/upper,workdir={base}/work \\
    {base}/merged
{m} run --name vc busybox sh -c 'echo hi > /root/hello; rm /etc/group'
cat {root}/storage-driver
{m} diff vc
{m} commit vc vimage >/dev/null
{m} run --rm vimage sh -c 'cat /root/hello; test -e /etc/group || echo no-group'
{m} doctor --json | grep -A1 '"storage driver"' | tail -1
"""
    result = in_mount_namespace(script)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "vfs" and "overlay" in lines[1]
    assert lines[2:8] == ["C /etc", "D /etc/group", "C /root", "A /root/hello", "hi", "no-group"]
    assert '"ok": null' in lines[8]  # doctor warns: vfs copies every layer


# -- a store on a filesystem without xattrs ---------------------------------------------------

def _tarball_with_xattr(path: Path, attr: str, value: bytes) -> Path:
    info = tarfile.TarInfo("bin/tool")
    info.size, info.mode = 1, 0o755
    info.pax_headers = {f"SCHILY.xattr.{attr}": value.decode("utf-8", "surrogateescape")}
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(info, io.BytesIO(b"x"))
    return path


def test_import_into_a_store_without_xattrs(tmp_path: Path) -> None:
    # ramfs holds no xattrs at all: the real kernel's EOPNOTSUPP, as Debian 12's tmpfs gives
    # for user.*. A user.* xattr is dropped with a warning; a file capability stops the import.
    user = _tarball_with_xattr(tmp_path / "user.tar", "user.note", b"hello")
    cap = _tarball_with_xattr(tmp_path / "cap.tar", "security.capability",
                              bytes.fromhex("0100000200200000000000000000000000000000"))
    root = tmp_path / f"{TEST_ROOT_MARK}ramfs"
    root.mkdir()
    m = f"MINIDOCKER_ROOT={root} {sys.executable} -m minidocker"
    script = f"""
mount -t ramfs ramfs {root}
{m} import {user} with-note >/dev/null 2>{tmp_path}/user.err
find {root}/layers -path '*/bin/tool' | wc -l
rc=0; {m} import {cap} with-cap >/dev/null 2>{tmp_path}/cap.err || rc=$?
echo "$rc"
{m} images --format '{{{{.Repository}}}}'
"""
    result = in_mount_namespace(script)
    assert result.returncode == 0, result.stderr
    found, rc, *images = result.stdout.split()
    assert found == "1" and images == ["with-note"] and rc != "0"
    [warning] = (tmp_path / "user.err").read_text().splitlines()
    assert warning.startswith("minidocker: warning: ")
    assert warning.endswith("does not support user.* xattrs: dropped user.note on /bin/tool")
    [error] = (tmp_path / "cap.err").read_text().splitlines()
    assert error.startswith("minidocker: cannot unpack ") and error.endswith(
        "does not support the xattr security.capability that 'bin/tool' carries (without it "
        "the file would behave differently)")


# -- kill -9 during load and commit: the store stays consistent -----------------------------

def check_consistent(root: Path, expected_layers: dict[str, set[Any]]) -> None:
    """Every name resolves to complete blobs; every blob matches its name; every layer
    directory is complete (as a clean load made it)."""
    images = root / "images"
    if not (images / "index.json").exists():
        return
    index = json.loads((images / "index.json").read_text())
    blobs = images / "blobs" / "sha256"
    for path in blobs.iterdir():
        assert hashlib.sha256(path.read_bytes()).hexdigest() == path.name, f"half blob {path}"
    store = ImageStore(root)
    for entry in index["manifests"]:
        manifest = json.loads((blobs / entry["digest"][7:]).read_bytes())
        for d in [manifest["config"], *manifest["layers"]]:
            assert (blobs / d["digest"][7:]).exists(), f"{entry['digest']} -> missing {d}"
    for layer in (root / "layers").iterdir():
        assert layer.name in expected_layers, f"unknown layer {layer.name}"
        got = {(rel, node.st.st_size) for rel, node in layers.Stack([layer]).walk()}
        assert got == expected_layers[layer.name], f"half-unpacked layer {layer.name}"
    store.list_images()


def assert_no_garbage(root: Path) -> None:
    """After a collection: tmp/ is empty, and every blob is reached from index.json.

    A load killed before it wrote anything leaves no index.json (the store makes its layout on
    the first write; readers take a missing index as an empty one), so none means no names."""
    assert os.listdir(root / "tmp") == []
    blobs = root / "images" / "blobs" / "sha256"
    index = root / "images" / "index.json"
    manifests = json.loads(index.read_text())["manifests"] if index.exists() else []
    reached = set()
    for entry in manifests:
        manifest = json.loads((blobs / entry["digest"][7:]).read_bytes())
        reached |= {d["digest"][7:] for d in [entry, manifest["config"], *manifest["layers"]]}
    assert set(os.listdir(blobs)) == reached


def layer_listings(root: Path) -> dict[str, set[Any]]:
    return {d.name: {(rel, node.st.st_size) for rel, node in layers.Stack([d]).walk()}
            for d in (root / "layers").iterdir()}


def kill_at_intervals(cli: CLI, args: list[str], duration: float, expected: dict[str, set[Any]],
                      rounds: int = 8) -> None:
    for i in range(rounds):
        proc = cli.popen(*args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(duration * (i + 0.5) / rounds)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        check_consistent(cli.root, expected)
        assert cli("images", check=True).returncode == 0


def big_archive(cli: CLI, tmp_path: Path) -> Path:
    """An archive with three ~32 MB layers (random, so nothing compresses them away)."""
    source = CLI(tmp_path / f"{TEST_ROOT_MARK}source")
    chunk = os.urandom(32 << 20)
    busybox_image(source, ("big/a", chunk), ref="big:1")
    store = ImageStore(source.root)
    image = store.resolve("big:1")
    stack = image.layers()
    for name in ("b", "c"):
        tar = make_tar((f"big/{name}", chunk[::-1] + name.encode()), ("big/.wh.a", b""))
        stack.append(store.add_layer(io.BytesIO(tar),
                                     parent=layers.chain_ids([x.diff_id for x in stack])[-1]))
    store.write_image({**image.config, "history": []}, stack, "big:1")
    path = tmp_path / "big.tar"
    source("save", "-o", str(path), "big:1", check=True)
    return path


def test_kill_9_during_load_leaves_the_store_consistent(cli: CLI, tmp_path: Path) -> None:
    path = big_archive(cli, tmp_path)
    reference = CLI(tmp_path / f"{TEST_ROOT_MARK}reference")
    t0 = time.monotonic()
    reference("load", "-i", str(path), check=True)
    duration = time.monotonic() - t0
    expected = layer_listings(reference.root)
    kill_at_intervals(cli, ["load", "-i", str(path)], duration, expected)
    cli("image", "prune", "-f", check=True)
    assert_no_garbage(cli.root)  # what the killed loads left is swept
    cli("load", "-i", str(path), check=True)
    check_consistent(cli.root, expected)
    assert cli("run", "--rm", "big:1", "ls", "/big", check=True).stdout.split() == ["b", "c"]


def test_kill_9_during_commit_leaves_the_store_consistent(cli: CLI) -> None:
    cli("run", "--name", "fat", "busybox", "sh", "-c",
        "head -c 100000000 /dev/urandom > /big; mkdir /d; echo x > /d/x", check=True)
    expected_before = layer_listings(cli.root)
    t0 = time.monotonic()
    reference = cli("commit", "fat", "fat:ref", check=True).stdout.strip()
    duration = time.monotonic() - t0
    expected = {**expected_before, **layer_listings(cli.root)}
    cli("rmi", "fat:ref", check=True)
    kill_at_intervals(cli, ["commit", "fat", "fat:1"], duration, expected)
    cli("image", "prune", "-f", check=True)
    assert_no_garbage(cli.root)
    assert cli("commit", "fat", "fat:1", check=True).stdout.strip() != ""
    check_consistent(cli.root, expected)
    assert reference.startswith("sha256:")
    assert cli("run", "--rm", "fat:1", "cat", "/d/x", check=True).stdout == "x\n"


def test_commit_freezes_a_running_container_with_a_cgroup_and_thaws_it(cli: CLI) -> None:
    proc = cli.popen("run", "--init", "--name", "busy", "--memory", "64m", "busybox", "sh", "-c",
                     "echo ready; i=0; while true; do i=$((i+1)); echo $i > /count; done",
                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        link = cli.root / "names" / "busy"
        state_file = cli.root / "containers" / os.readlink(link) / "state.json"
        deadline = time.monotonic() + 10
        while not (state_file.exists() and "Cgroup" in state_file.read_text()):
            assert time.monotonic() < deadline, "the container never recorded its cgroup"
            time.sleep(0.05)
        cgroup = json.loads(state_file.read_text())["Cgroup"]
        freezer = Path(cgroup["Paths"]["freezer"]) / "freezer.state" if cgroup["Version"] == 1 \
            else Path(cgroup["Paths"]["unified"]) / "cgroup.freeze"
        cli("commit", "busy", "snap:1", check=True)
        assert freezer.read_text().strip() in ("THAWED", "0"), "commit must thaw what it froze"
        counted = cli("run", "--rm", "snap:1", "cat", "/count", check=True).stdout
        assert counted == "" or counted.strip().isdigit()
        cli("commit", "--pause=false", "busy", "snap:2", check=True)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# -- rmi: images in use -----------------------------------------------------------------------

def test_rmi_refuses_images_in_use(cli: CLI) -> None:
    busybox_image(cli, ("marker", b"m"), ref="used:1")
    cli("run", "--name", "stopped", "used:1", "true", check=True)
    before = snapshot(cli.root)
    result = cli("rmi", "used:1")
    assert_one_line_error(result, 125, 'unable to remove repository reference "used:1"',
                          "must force", "is using its referenced image")
    assert_unchanged(before, cli.root)
    # --init, so that SIGTERM ends it cleanly (a bare sleep as PID 1 ignores it).
    sleeper = cli.popen("run", "--init", "--name", "running", "busybox", "sleep", "60",
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        image_id = json.loads(cli("image", "inspect", "busybox", check=True).stdout)[0]["Id"]
        deadline = time.monotonic() + 10
        link = cli.root / "names" / "running"
        while time.monotonic() < deadline:  # until the container's command runs
            state = cli.root / "containers" / os.readlink(link) / "state.json" \
                if link.is_symlink() else None
            if state is not None and state.exists() and '"running"' in state.read_text():
                break
            time.sleep(0.05)
        before = snapshot(cli.root)
        result = cli("rmi", "-f", image_id)
        assert_one_line_error(result, 125, "cannot be forced", "running container")
        assert_unchanged(before, cli.root)
    finally:
        sleeper.terminate()
        try:
            sleeper.wait(timeout=10)
        except subprocess.TimeoutExpired:
            sleeper.kill()
            sleeper.wait()
    result = cli("rmi", "-f", "used:1", check=True)
    assert "Untagged: used:1" in result.stdout and "Deleted: sha256:" in result.stdout
    # The stopped container still stands on its layers: they are kept.
    assert cli("diff", "stopped", check=True).returncode == 0


# -- bad input: one line, nothing changed -------------------------------------------------------

@pytest.fixture(scope="module")
def populated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[CLI, Path]]:
    cli = CLI(tmp_path_factory.mktemp(TEST_ROOT_MARK + "imgbad"))
    cli("run", "--name", "c1", "busybox", "true", check=True)
    archive = cli.root.parent / "good.tar"
    cli("save", "-o", str(archive), "busybox", check=True)
    yield cli, archive
    stop_minidocker(cli.root)


def _damaged(archive: Path, how: str) -> bytes:
    data = archive.read_bytes()
    if how == "truncated":
        return data[: len(data) // 2]
    if how == "corrupt":
        return data[:1024] + b"\x00garbage" * 4096
    out = io.BytesIO()
    with tarfile.open(archive) as src, tarfile.open(fileobj=out, mode="w") as dst:
        manifest = json.loads(src.extractfile("manifest.json").read())  # type: ignore[union-attr]
        for member in src:
            body = src.extractfile(member).read() if member.isreg() else None  # type: ignore[union-attr]
            if how == "missing-blob" and member.name == manifest[0]["Layers"][0]:
                continue
            if how == "invalid-tag" and member.name == "manifest.json":
                manifest[0]["RepoTags"] = ["busy box:la$t"]
                body = json.dumps(manifest).encode()
            if how == "unknown-media-type" and member.name in ("manifest.json", "index.json"):
                if member.name == "manifest.json":
                    continue  # an OCI archive then, whose index names an unknown type
                index = json.loads(body or b"{}")
                index["manifests"][0]["mediaType"] = "application/vnd.example.unknown+json"
                body = json.dumps(index).encode()
            if body is not None:
                member.size = len(body)
                dst.addfile(member, io.BytesIO(body))
            else:
                dst.addfile(member)
    return out.getvalue()


LOAD_CASES = [("truncated", ["truncated or corrupt"]), ("corrupt", ["invalid archive"]),
              ("missing-blob", ["missing"]), ("invalid-tag", ["invalid reference format"]),
              ("unknown-media-type", ["unsupported media type",
                                      "application/vnd.example.unknown+json"])]


@pytest.mark.parametrize(("how", "words"), LOAD_CASES, ids=[c[0] for c in LOAD_CASES])
def test_load_of_a_bad_archive(populated: tuple[CLI, Path], tmp_path: Path, how: str,
                               words: list[str]) -> None:
    cli, archive = populated
    bad = tmp_path / f"{how}.tar"
    bad.write_bytes(_damaged(archive, how))
    before = snapshot(cli.root)
    result = cli("load", "-i", str(bad))
    assert_one_line_error(result, 125, *words)
    assert result.stdout == ""
    assert_unchanged(before, cli.root)


BAD_COMMANDS = [
    ("tag-invalid-characters", ["tag", "busybox", "busy box:l@test!"],
     ["invalid reference format"]),
    ("tag-uppercase", ["tag", "busybox", "Busybox:1"], ["invalid reference format"]),
    ("rmi-unknown", ["rmi", "no-such-image:1"], ["no such image: no-such-image:1"]),
    ("rmi-unknown-id", ["rmi", "0123456789ab"], ["no such image: 0123456789ab"]),
    ("commit-invalid-name", ["commit", "c1", "Bad:Name"], ["invalid reference format"]),
    ("commit-unknown-container", ["commit", "nope", "x:1"], ["no such container: nope"]),
    ("commit-bad-change", ["commit", "-c", "RUN rm -rf /", "c1", "x:1"],
     ["RUN is not a valid change command"]),
    ("diff-unknown-container", ["diff", "nope"], ["no such container: nope"]),
    ("export-unknown-container", ["export", "-o", "/dev/null", "nope"], ["no such container"]),
    ("save-unknown-image", ["save", "-o", "/dev/null", "no-such:1"], ["no-such:1"]),
    ("load-missing-file", ["load", "-i", "/no/such/archive.tar"], ["/no/such/archive.tar"]),
    ("history-unknown", ["history", "no-such:1"], ["no-such:1"]),
    ("inspect-unknown", ["image", "inspect", "no-such:1"], ["no-such:1"]),
    ("images-bad-filter", ["images", "--filter", "color=red"], ["invalid filter"]),
]


@pytest.mark.parametrize(("args", "words"), [c[1:] for c in BAD_COMMANDS],
                         ids=[c[0] for c in BAD_COMMANDS])
def test_bad_image_commands(populated: tuple[CLI, Path], args: list[str],
                            words: list[str]) -> None:
    cli, _ = populated
    before = snapshot(cli.root)
    result = cli(*args)
    assert_one_line_error(result, 125, *words)
    assert_unchanged(before, cli.root)


# -- what we write, other tools read ----------------------------------------------------------

@needs_tools
def test_committed_images_pass_skopeo_and_umoci(cli: CLI, tmp_path: Path) -> None:
    cli("run", "--name", "wk", "busybox", "sh", "-c", "rm -rf /var; mkdir /var; echo v > /var/v",
        check=True)
    cli("commit", "wk", "committed:1", check=True)
    layout = cli.root / "images"
    info = json.loads(subprocess.run(["skopeo", "inspect", f"oci:{layout}:committed:1"],
                                     capture_output=True, text=True, check=True).stdout)
    assert len(info["Layers"]) == 2
    subprocess.run(["skopeo", "--insecure-policy", "copy", f"oci:{layout}:committed:1",
                    f"oci:{tmp_path / 'copy'}:c"], capture_output=True, check=True)
    subprocess.run(["umoci", "unpack", "--image", f"{layout}:committed:1",
                    str(tmp_path / "bundle")], capture_output=True, check=True)
    rootfs = tmp_path / "bundle" / "rootfs"
    assert os.listdir(rootfs / "var") == ["v"]  # the opaque dir hid busybox's /var/spool
    assert (rootfs / "bin" / "busybox").exists()
