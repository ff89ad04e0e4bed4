"""A pull whose network breaks: a corrupt blob, a dropped connection (resumed with a Range
request, or restarted where the registry will not resume), a ``kill -9`` in the middle.

A loopback proxy stands between minidocker and a real ``docker-registry`` and breaks one blob
on its way through. Whatever happens, nothing partial is ever visible in the store, and the
next pull succeeds. Nothing here needs root or the kernel's container features: a pull only
writes files, so these run in the unit lane, as any user.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import signal
import socket
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from minidocker.registry.download import ATTEMPTS
from tests.conftest import CLI, QuietHandler
from tests.kernel.test_bad_input import assert_one_line_error
from tests.kernel.test_registry import inspect_id, manifest_digest, push_busybox
from tests.registry_server import LoopbackHTTP, RegistryServer

pytestmark = [pytest.mark.nb05b, pytest.mark.usefixtures("own_docker_config")]


class BreakingProxy:
    """A loopback HTTP proxy in front of a registry that breaks the blob ``digest``:

    - ``flip``: a byte in its middle changed, every time;
    - ``drop``: the connection closed half way through the body, the first ``drops`` times
      (``-1``: always);
    - ``strip_range``: ``Range`` headers are not passed on, as a registry that ignores them;
    - ``stall``: half the body sent, then nothing until the event is set.

    ``seen`` lists each GET of the blob: its ``Range`` header and the status relayed.
    """

    def __init__(self, upstream: str, digest: str, *, flip: bool = False, drops: int = 0,
                 strip_range: bool = False, stall: threading.Event | None = None) -> None:
        self.seen: list[tuple[str | None, int]] = []
        self.sent_half = threading.Event()
        proxy = self

        class Handler(QuietHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 -- http.server's name
                self._relay()

            def do_HEAD(self) -> None:  # noqa: N802
                self._relay()

            def _relay(self) -> None:
                nonlocal drops
                target = self.path.endswith(f"/blobs/{digest}") and self.command == "GET"
                skip = {"host"} | ({"range"} if strip_range else set())
                headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
                conn = http.client.HTTPConnection(upstream, timeout=30)
                conn.request(self.command, self.path, headers=headers)
                response = conn.getresponse()
                body = response.read()
                conn.close()
                if target:
                    proxy.seen.append((headers.get("Range"), response.status))
                if target and body and flip:
                    middle = len(body) // 2
                    body = body[:middle] + bytes([body[middle] ^ 0x01]) + body[middle + 1:]
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if target and body and (drops != 0 or stall is not None):
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    proxy.sent_half.set()
                    if stall is not None:
                        stall.wait(60)
                    drops -= 1
                    self.close_connection = True
                    with contextlib.suppress(OSError):  # a killed client is gone already
                        self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if self.command != "HEAD":
                    self.wfile.write(body)

        self.http = LoopbackHTTP(Handler)
        self.domain = self.http.address

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def pushed(cli: CLI, registry: RegistryServer, request: pytest.FixtureRequest
           ) -> tuple[str, str]:
    """A busybox pushed under a name of the test's own: its reference's path and its layer."""
    name = f"interrupted/{request.node.name.split('[')[0].removeprefix('test_')[:40]}:1"
    push_busybox(cli, f"{registry.domain}/{name}")
    manifest = json.loads(cli.root.joinpath(
        "images", "blobs", "sha256",
        manifest_digest(cli, f"{registry.domain}/{name}").removeprefix("sha256:")).read_bytes())
    [layer] = [d["digest"] for d in manifest["layers"]]
    return name, layer


@pytest.fixture
def store_with_an_image(other_cli: CLI, tmp_path: Path) -> CLI:
    """``other_cli``'s store, holding one image already (and so its layout, locks and tmp/):
    a failed pull must change none of it."""
    (tmp_path / "rootfs").mkdir()
    (tmp_path / "rootfs" / "hello").write_text("hi\n")
    subprocess.run(["tar", "-C", str(tmp_path / "rootfs"), "-cf", str(tmp_path / "r.tar"), "."],
                   check=True)
    other_cli("import", str(tmp_path / "r.tar"), "present:1", check=True)
    return other_cli


def every_byte(root: Path, skip: str | None = None) -> dict[str, str]:
    """Every path under ``root`` (but ``skip``) with its type, mode, and a regular file's
    sha256."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        if skip is not None:
            dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) != skip]
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            value = f"{stat.filemode(st.st_mode)} {st.st_uid}:{st.st_gid}"
            if stat.S_ISREG(st.st_mode):
                value += " " + hashlib.sha256(Path(path).read_bytes()).hexdigest()
            found[os.path.relpath(path, root)] = value
    return found


@pytest.fixture
def breaking(registry: RegistryServer) -> Iterator[list[BreakingProxy]]:
    made: list[BreakingProxy] = []
    yield made
    for proxy in made:
        proxy.close()


def proxy_to(made: list[BreakingProxy], registry: RegistryServer, layer: str,
             **kw: object) -> BreakingProxy:
    proxy = BreakingProxy(registry.domain, layer, **kw)  # type: ignore[arg-type]
    made.append(proxy)
    return proxy


def test_a_corrupt_blob_is_not_retried_and_leaves_the_store_byte_for_byte(
        cli: CLI, store_with_an_image: CLI, registry: RegistryServer,
        pushed: tuple[str, str], breaking: list[BreakingProxy]) -> None:
    name, layer = pushed
    other = store_with_an_image
    before = every_byte(other.root)
    proxy = proxy_to(breaking, registry, layer, flip=True)
    result = other("pull", f"{proxy.domain}/{name}")
    assert proxy.seen == [(None, 200)]  # the registry served what it has: asking again is moot
    assert_one_line_error(result, 125, f"blob {layer}", proxy.domain, "does not match its digest")
    assert every_byte(other.root) == before
    ref = f"{registry.domain}/{name}"
    assert other("pull", ref, check=True).returncode == 0  # and the store still works
    assert inspect_id(other, ref) == inspect_id(cli, ref)


def test_a_connection_that_always_drops_fails_clean_after_resuming(
        store_with_an_image: CLI, registry: RegistryServer,
        pushed: tuple[str, str], breaking: list[BreakingProxy]) -> None:
    name, layer = pushed
    other = store_with_an_image
    before = every_byte(other.root)
    proxy = proxy_to(breaking, registry, layer, drops=-1)
    result = other("pull", f"{proxy.domain}/{name}")
    assert_one_line_error(result, 125, f"blob {layer}", proxy.domain, f"({ATTEMPTS} attempts)")
    assert "connection broken" in result.stderr.lower()
    # Each attempt after the first asked for the rest only, from further on each time.
    assert len(proxy.seen) == ATTEMPTS
    offsets = [int(r.removeprefix("bytes=").rstrip("-")) for r, _ in proxy.seen[1:] if r]
    assert proxy.seen[0] == (None, 200) and [s for _, s in proxy.seen[1:]] == [206] * (ATTEMPTS - 1)
    assert len(offsets) == ATTEMPTS - 1 and offsets == sorted(set(offsets)) and offsets[0] > 0
    assert every_byte(other.root) == before


def test_a_dropped_connection_resumes_with_a_range_request(
        cli: CLI, other_cli: CLI, registry: RegistryServer,
        pushed: tuple[str, str], breaking: list[BreakingProxy]) -> None:
    name, layer = pushed
    size = json.loads(cli("image", "inspect", f"{registry.domain}/{name}", check=True).stdout)
    proxy = proxy_to(breaking, registry, layer, drops=1)
    other_cli("pull", f"{proxy.domain}/{name}", check=True)
    [(first, status), (second, resumed)] = proxy.seen
    assert (first, status, resumed) == (None, 200, 206)
    assert second is not None and second.startswith("bytes=") and second.endswith("-")
    assert 0 < int(second[6:-1]) < os.path.getsize(cli.root / "images" / "blobs" / "sha256"
                                                    / layer.removeprefix("sha256:"))
    assert inspect_id(other_cli, f"{proxy.domain}/{name}") == size[0]["Id"]
    # The layer unpacked from the spliced stream is the one unpacked from the whole blob.
    [layer_dir] = (cli.root / "layers").glob(layer.removeprefix("sha256:"))
    assert every_byte(other_cli.root / "layers" / layer_dir.name) == every_byte(layer_dir)


def test_a_registry_that_will_not_resume_gets_the_blob_restarted(
        cli: CLI, other_cli: CLI, registry: RegistryServer,
        pushed: tuple[str, str], breaking: list[BreakingProxy]) -> None:
    name, layer = pushed
    proxy = proxy_to(breaking, registry, layer, drops=1, strip_range=True)
    other_cli("pull", f"{proxy.domain}/{name}", check=True)
    # Asked to resume, it sent the whole blob again (200): that one is not spliced on, the
    # layer starts over from a clean temp file and directory.
    assert [s for _, s in proxy.seen] == [200, 200, 200]
    assert inspect_id(other_cli, f"{proxy.domain}/{name}") == \
        inspect_id(cli, f"{registry.domain}/{name}")
    assert list((other_cli.root / "tmp").iterdir()) == []


def test_a_killed_pull_leaves_nothing_visible_and_the_next_one_succeeds(
        cli: CLI, store_with_an_image: CLI, registry: RegistryServer,
        pushed: tuple[str, str], breaking: list[BreakingProxy]) -> None:
    name, layer = pushed
    other = store_with_an_image
    tmp = other.root / "tmp"
    before = every_byte(other.root, skip=str(tmp))
    stall = threading.Event()
    proxy = proxy_to(breaking, registry, layer, stall=stall)
    process = other.popen("pull", f"{proxy.domain}/{name}", stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    try:
        assert proxy.sent_half.wait(30), "the pull never reached the layer"
        # The pull has half the layer: its temp blob and its half-made directory are in tmp/.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(
                p.name.startswith(f"layer-{process.pid}-") for p in tmp.iterdir()):
            time.sleep(0.05)
        left = sorted(p.name for p in tmp.iterdir())
        assert any(n.startswith(f"layer-{process.pid}-") for n in left), left
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        stall.set()
    assert every_byte(other.root, skip=str(tmp)) == before  # nothing outside tmp/ changed
    assert f"{proxy.domain}/{name}" not in other("images", check=True).stdout
    other("pull", f"{registry.domain}/{name}", check=True)
    assert list(tmp.iterdir()) == []  # the next pull swept what the killed one left
    assert inspect_id(other, f"{registry.domain}/{name}") == \
        inspect_id(cli, f"{registry.domain}/{name}")
