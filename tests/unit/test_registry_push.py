"""push's two ways of saving bytes and requests: a chunked upload (PATCHes with
``Content-Range``, then an empty PUT) and a cross-repository mount (``POST
...?mount=<digest>&from=<repo>``), against Debian's real ``docker-registry`` on 127.0.0.1.

A recording proxy in front of the registry lists the requests push made, so each test checks
the protocol, and a pull of what was pushed (by minidocker and by skopeo) checks the result.
Nothing here needs root.
"""

from __future__ import annotations

import http.client
import json
import math
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import CLI, TEST_ROOT_MARK, QuietHandler
from tests.kernel.test_registry import inspect_id, manifest_digest, skopeo
from tests.registry_server import LoopbackHTTP, RegistryServer, TokenIssuer

pytestmark = [pytest.mark.nb05b, pytest.mark.usefixtures("own_docker_config")]


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    path = tmp_path / "policy.json"
    path.write_text('{"default": [{"type": "insecureAcceptAnything"}]}')
    return path


class RecordingProxy:
    """Relays every request to ``upstream`` and notes (method, path, query, Content-Range,
    status)."""

    def __init__(self, upstream: str) -> None:
        self.seen: list[tuple[str, str, dict[str, list[str]], str | None, int]] = []
        proxy = self

        class Handler(QuietHandler):
            protocol_version = "HTTP/1.1"

            def _relay(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                # The Host header stays the proxy's: the registry builds absolute Location
                # URLs from it, and the upload's PATCHes and PUT must come through here too.
                headers = dict(self.headers.items())
                conn = http.client.HTTPConnection(upstream, timeout=30)
                conn.request(self.command, self.path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                conn.close()
                url = urllib.parse.urlsplit(self.path)
                proxy.seen.append((self.command, url.path, urllib.parse.parse_qs(url.query),
                                   self.headers.get("Content-Range"), response.status))
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = _relay  # noqa: N815

        self.http = LoopbackHTTP(Handler)
        self.domain = self.http.address

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def proxy(registry: RegistryServer) -> Iterator[RecordingProxy]:
    recording = RecordingProxy(registry.domain)
    yield recording
    recording.close()


def layer_of(cli: CLI, ref: str) -> tuple[str, int]:
    blob = cli.root / "images" / "blobs" / "sha256" / manifest_digest(cli, ref)[7:]
    [layer] = json.loads(blob.read_bytes())["layers"]
    return layer["digest"], layer["size"]


def test_a_chunked_push_sends_patches_with_content_ranges(
        cli: CLI, other_cli: CLI, proxy: RecordingProxy, registry: RegistryServer,
        policy: Path, tmp_path: Path) -> None:
    ref = f"{proxy.domain}/chunked/busybox:1"
    cli("tag", "busybox", ref, check=True)
    out = cli("push", "--chunk-size", "256k", ref, check=True).stdout
    digest, size = layer_of(cli, ref)
    assert f"{digest[7:19]}: Pushed" in out
    patches = [(path, rng, status) for method, path, _, rng, status in proxy.seen
               if method == "PATCH"]
    chunks = math.ceil(size / (256 << 10))
    assert chunks >= 2, f"busybox's layer is only {size} bytes"
    # The layer in 256 KiB chunks, each range following the last, then the (small) config
    # monolithically; each PATCH to the Location the one before answered.
    ranges = [rng for _, rng, _ in patches]
    assert ranges == [f"{i << 18}-{min((i + 1) << 18, size) - 1}" for i in range(chunks)]
    assert all(status == 202 for _, _, status in patches)
    puts = [(query, status) for method, path, query, _, status in proxy.seen
            if method == "PUT" and "/blobs/uploads/" in path]
    assert [q["digest"] for q, _ in puts][0] == [digest] and all(s == 201 for _, s in puts)
    # What arrived is the image: minidocker and skopeo pull it from the registry itself.
    direct = f"{registry.domain}/chunked/busybox:1"
    other_cli("pull", direct, check=True)
    assert inspect_id(other_cli, direct) == inspect_id(cli, ref)
    info = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{direct}",
                             policy=policy).stdout)
    assert info["Digest"] == manifest_digest(cli, ref)
    # skopeo reads every byte of the chunked blob back, checking it against its digest.
    skopeo("copy", "--src-tls-verify=false", f"docker://{direct}", f"oci:{tmp_path / 'oci'}:x",
           policy=policy)


def test_a_push_to_another_repository_mounts_the_blobs_it_has(
        cli: CLI, other_cli: CLI, proxy: RecordingProxy, registry: RegistryServer) -> None:
    first, second = f"{proxy.domain}/team-a/busybox:1", f"{proxy.domain}/team-b/busybox:1"
    cli("tag", "busybox", first, check=True)
    cli("push", first, check=True)
    cli("tag", first, second, check=True)
    proxy.seen.clear()
    out = cli("push", second, check=True).stdout
    digest, _ = layer_of(cli, second)
    assert f"{digest[7:19]}: Mounted from team-a/busybox" in out
    mounts = [(query, status) for method, path, query, _, status in proxy.seen
              if method == "POST"]
    assert mounts and all(q.get("from") == ["team-a/busybox"] and s == 201 for q, s in mounts)
    assert {q["mount"][0] for q, _ in mounts} == {digest, inspect_id(cli, second)}
    # Not a byte of a blob was sent: no PATCH, and the only PUT is the manifest's.
    assert [(m, p) for m, p, *_ in proxy.seen if m in ("PATCH", "PUT")] == \
        [("PUT", "/v2/team-b/busybox/manifests/1")]
    direct = f"{registry.domain}/team-b/busybox:1"
    other_cli("pull", direct, check=True)
    assert inspect_id(other_cli, direct) == inspect_id(cli, second)


def test_a_refused_mount_falls_back_to_an_upload(
        cli: CLI, proxy: RecordingProxy, registry: RegistryServer) -> None:
    # The store believes team-c has the blobs (an image is named so), the registry does not.
    ghost, real = f"{proxy.domain}/team-c/busybox:1", f"{proxy.domain}/team-d/busybox:1"
    cli("tag", "busybox", ghost, check=True)
    cli("tag", "busybox", real, check=True)
    out = cli("push", real, check=True).stdout
    digest, _ = layer_of(cli, real)
    assert f"{digest[7:19]}: Pushed" in out
    posts = [(q.get("from"), s) for m, _, q, _, s in proxy.seen if m == "POST"]
    assert posts and all(f == ["team-c/busybox"] and s == 202 for f, s in posts)


def test_a_mount_under_tokens_asks_for_both_repositories(
        cli: CLI, tmp_path_factory: pytest.TempPathFactory) -> None:
    home = tmp_path_factory.mktemp(TEST_ROOT_MARK + "registry")
    issuer = TokenIssuer(home, {"alice": ("right horse", ["pull", "push"])})
    try:
        server = RegistryServer(home, token=issuer)
        try:
            login = cli("login", "-u", "alice", "--password-stdin", server.domain,
                        input="right horse\n")
            assert login.returncode == 0, login.stderr
            first, second = f"{server.domain}/tok-a/busybox:1", f"{server.domain}/tok-b/bb:1"
            cli("tag", "busybox", first, check=True)
            cli("push", first, check=True)
            cli("tag", first, second, check=True)
            out = cli("push", second, check=True).stdout
            assert "Mounted from tok-a/busybox" in out
            assert ("alice", ["repository:tok-b/bb:pull,push", "repository:tok-a/busybox:pull"]) \
                in issuer.asked
        finally:
            server.stop()
    finally:
        issuer.close()
