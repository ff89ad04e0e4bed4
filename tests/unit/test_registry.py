"""The registry client's pure parts, and its checks against a tiny fake registry in a thread.

Against the real ``docker-registry``: tests/kernel/test_registry.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from minidocker.errors import CorruptBlob, ImageError, RegistryError, Unauthorized, UsageError
from minidocker.registry import auth, platforms
from minidocker.registry.client import MEDIA_OCI_INDEX, MEDIA_OCI_MANIFEST, Registry, is_insecure
from minidocker.registry.download import fetch_blob


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# -- auth challenges --------------------------------------------------------------------------

def test_bearer_challenge_keeps_commas_inside_quotes() -> None:
    scheme, params = auth.parse_challenge(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/busybox:pull,push"')
    assert scheme == "bearer"
    assert params == {"realm": "https://auth.docker.io/token", "service": "registry.docker.io",
                      "scope": "repository:library/busybox:pull,push"}


def test_basic_challenge_spaces_escapes_and_bare_values() -> None:
    assert auth.parse_challenge('Basic realm="basic-realm"') == ("basic", {"realm": "basic-realm"})
    assert auth.parse_challenge('BEARER Realm = "a\\"b" , error=insufficient_scope') == (
        "bearer", {"realm": 'a"b', "error": "insufficient_scope"})


@pytest.mark.parametrize("header", ["", 'Bearer realm="unterminated', "Bearer =x"])
def test_malformed_challenge_is_one_line_naming_it(header: str) -> None:
    with pytest.raises(RegistryError) as caught:
        auth.parse_challenge(header)
    assert "challenge" in str(caught.value) and "\n" not in str(caught.value)


# -- credentials --------------------------------------------------------------------------------

@pytest.fixture
def docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "dockercfg"))
    return tmp_path / "dockercfg" / "config.json"


def test_credentials_are_stored_as_docker_stores_them(docker_config: Path) -> None:
    docker_config.parent.mkdir()
    docker_config.write_text(json.dumps({"credsStore": "desktop", "auths": {
        "other:5000": {"auth": base64.b64encode(b"o:p").decode()}}}))
    assert auth.config_path() == docker_config
    auth.store_credentials("localhost:5000", "alice", "s3cret:with:colons")
    auth.store_credentials("docker.io", "bob", "pw")
    config = json.loads(docker_config.read_text())
    assert config["credsStore"] == "desktop"  # other keys are kept as they were
    assert config["auths"]["localhost:5000"] == {
        "auth": base64.b64encode(b"alice:s3cret:with:colons").decode()}
    assert "https://index.docker.io/v1/" in config["auths"]
    assert stat.S_IMODE(docker_config.stat().st_mode) == 0o600
    assert auth.load_credentials("localhost:5000") == ("alice", "s3cret:with:colons")
    assert auth.load_credentials("docker.io") == ("bob", "pw")
    assert auth.load_credentials("other:5000") == ("o", "p")
    assert auth.load_credentials("nowhere:1") is None
    assert [p.name for p in docker_config.parent.iterdir()] == ["config.json"]  # no temp left


def test_logout_forgets_only_that_server(docker_config: Path) -> None:
    auth.store_credentials("a:1", "u", "p")
    auth.store_credentials("b:2", "u", "q")
    assert auth.erase_credentials("a:1") is True
    assert auth.erase_credentials("a:1") is False
    assert auth.load_credentials("a:1") is None
    assert auth.load_credentials("b:2") == ("u", "q")


def test_keys_written_as_urls_by_old_clients_are_found(docker_config: Path) -> None:
    docker_config.parent.mkdir()
    docker_config.write_text(json.dumps({"auths": {
        "https://reg.example:5000/v1/": {"auth": base64.b64encode(b"u:p").decode()}}}))
    assert auth.load_credentials("reg.example:5000") == ("u", "p")


def test_a_broken_config_is_named(docker_config: Path) -> None:
    docker_config.parent.mkdir()
    docker_config.write_text("{not json")
    with pytest.raises(RegistryError, match=f"{docker_config} is not valid JSON"):
        auth.load_credentials("x:1")


def test_config_goes_to_home_without_docker_config(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCKER_CONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert auth.config_path() == tmp_path / ".docker" / "config.json"


# -- platforms ----------------------------------------------------------------------------------

INDEX = {"manifests": [
    {"digest": "sha256:" + "1" * 64, "platform": {"os": "linux", "architecture": "arm",
                                                  "variant": "v6"}},
    {"digest": "sha256:" + "2" * 64, "platform": {"os": "linux", "architecture": "arm",
                                                  "variant": "v7"}},
    {"digest": "sha256:" + "3" * 64, "platform": {"os": "linux", "architecture": "amd64"}},
    {"digest": "sha256:" + "4" * 64, "platform": {"os": "linux", "architecture": "arm64",
                                                  "variant": "v8"}},
    {"digest": "sha256:" + "5" * 64, "platform": {"os": "unknown", "architecture": "unknown"}},
    {"digest": "sha256:" + "6" * 64, "platform": {"os": "windows", "architecture": "amd64"}},
]}


@pytest.mark.parametrize(("want", "digit"), [
    ("linux/amd64", "3"), ("linux/arm/v7", "2"), ("linux/arm/v6", "1"), ("linux/arm64", "4"),
    ("linux/arm64/v8", "4"), ("windows/amd64", "6"), ("linux/arm", "1"),
])
def test_platform_choice(want: str, digit: str) -> None:
    assert platforms.choose(INDEX, platforms.parse_platform(want), "x")["digest"] == \
        "sha256:" + digit * 64


def test_arm64_without_variant_in_the_index_is_v8() -> None:
    index = {"manifests": [{"digest": "d", "platform": {"os": "linux",
                                                        "architecture": "arm64"}}]}
    assert platforms.choose(index, platforms.parse_platform("linux/arm64/v8"), "x")["digest"] == "d"


def test_no_matching_platform_names_it() -> None:
    with pytest.raises(ImageError, match="no matching manifest for linux/s390x in the manifest "
                                         "list entries of busybox:latest"):
        platforms.choose(INDEX, platforms.parse_platform("linux/s390x"), "busybox:latest")
    with pytest.raises(UsageError, match="invalid platform 'linux//v7'"):
        platforms.parse_platform("linux//v7")


def test_host_platform_is_chosen_by_default() -> None:
    host = platforms.host_platform()
    assert host.os == "linux"
    if host.architecture == "amd64":
        assert platforms.choose(INDEX, host, "x")["digest"] == "sha256:" + "3" * 64


# -- plain HTTP only where no one can listen ------------------------------------------------------

def test_insecure_registries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MINIDOCKER_INSECURE_REGISTRIES", raising=False)
    for domain in ("localhost", "localhost:5000", "127.0.0.1:5000", "127.1.2.3", "[::1]:5000"):
        assert is_insecure(domain), domain
    for domain in ("docker.io", "reg.example:5000", "10.0.0.1:5000", "[2001:db8::1]:5000"):
        assert not is_insecure(domain), domain
    monkeypatch.setenv("MINIDOCKER_INSECURE_REGISTRIES", "reg.example:5000, lab.local")
    assert is_insecure("reg.example:5000") and is_insecure("lab.local:443")
    assert not is_insecure("reg.example:6000")
    assert Registry("lab.local").base == "http://lab.local"
    assert Registry("docker.io").base == "https://registry-1.docker.io"


# -- digests and auth against a fake registry -----------------------------------------------------

class Fake:
    """What the fake registry serves: path -> (status, headers, body); and what it saw."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, dict[str, str], bytes]] = {}
        self.seen: list[tuple[str, str, str | None]] = []  # method, path, Authorization
        self.token_for: str | None = None  # require this bearer token on /v2/ paths


@pytest.fixture
def fake() -> Iterator[tuple[Fake, str]]:
    state = Fake()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 -- http.server's name
            authz = self.headers.get("Authorization")
            state.seen.append(("GET", self.path, authz))
            path = self.path.split("?")[0]
            if (state.token_for and path.startswith("/v2/")
                    and authz != f"Bearer {state.token_for}"):
                realm = f"http://127.0.0.1:{self.server.server_address[1]}/token"
                status, headers, body = 401, {"WWW-Authenticate": f'Bearer realm="{realm}",'
                                              'service="fake"'}, b'{"errors":[]}'
            else:
                status, headers, body = state.routes.get(path, (404, {}, b"{}"))
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_blob_is_checked_against_its_digest_and_size(fake: tuple[Fake, str],
                                                       tmp_path: Path) -> None:
    state, domain = fake
    good, bad = b"layer bytes", b"layer bytEs"
    state.routes[f"/v2/r/blobs/{sha(good)}"] = (200, {}, good)
    reg = Registry(domain)
    with open(tmp_path / "ok", "wb") as out:
        fetch_blob(reg, "r", {"digest": sha(good), "size": len(good)}, out)
    assert (tmp_path / "ok").read_bytes() == good
    state.routes[f"/v2/r/blobs/{sha(good)}"] = (200, {}, bad)
    with open(tmp_path / "bad", "wb") as out, pytest.raises(CorruptBlob) as caught:
        fetch_blob(reg, "r", {"digest": sha(good), "size": len(good)}, out)
    assert str(caught.value) == (f"blob {sha(good)} from http://{domain}/v2/r/blobs/{sha(good)} "
                                 f"does not match its digest ({sha(bad)})")
    state.routes[f"/v2/r/blobs/{sha(good)}"] = (200, {}, good + b"x")
    with open(tmp_path / "long", "wb") as out, pytest.raises(CorruptBlob, match="larger than"):
        fetch_blob(reg, "r", {"digest": sha(good), "size": len(good)}, out)


def test_a_manifest_is_checked_against_the_digest_asked_for_and_served(
        fake: tuple[Fake, str]) -> None:
    state, domain = fake
    manifest = json.dumps({"schemaVersion": 2, "mediaType": MEDIA_OCI_MANIFEST,
                           "config": {}, "layers": []}).encode()
    state.routes["/v2/r/manifests/1"] = (200, {"Docker-Content-Digest": sha(manifest)}, manifest)
    state.routes[f"/v2/r/manifests/{sha(manifest)}"] = (200, {}, manifest)
    reg = Registry(domain)
    got = reg.get_manifest("r", "1")
    assert (got.digest, got.media_type, got.data) == (sha(manifest), MEDIA_OCI_MANIFEST, manifest)
    assert reg.get_manifest("r", sha(manifest)).digest == sha(manifest)
    tampered = manifest.replace(b"[]", b"[ ]")
    state.routes["/v2/r/manifests/1"] = (200, {"Docker-Content-Digest": sha(manifest)}, tampered)
    with pytest.raises(CorruptBlob, match=f"manifest {sha(manifest)} from .* does not match"):
        reg.get_manifest("r", "1")
    state.routes[f"/v2/r/manifests/{sha(manifest)}"] = (200, {}, tampered)
    with pytest.raises(CorruptBlob, match=f"manifest {sha(manifest)} from "):
        reg.get_manifest("r", sha(manifest))
    with pytest.raises(RegistryError, match=f"manifest for {domain}/r:nope not found"):
        reg.get_manifest("r", "nope")


def test_schema1_is_refused_by_name(fake: tuple[Fake, str]) -> None:
    state, domain = fake
    state.routes["/v2/r/manifests/old"] = (200, {}, b'{"schemaVersion": 1, "fsLayers": []}')
    with pytest.raises(RegistryError, match="Docker schema 1"):
        Registry(domain).get_manifest("r", "old")


def test_anonymous_token_dance(fake: tuple[Fake, str]) -> None:
    state, domain = fake
    index = json.dumps({"schemaVersion": 2, "mediaType": MEDIA_OCI_INDEX,
                        "manifests": []}).encode()
    state.routes["/v2/library/busybox/manifests/latest"] = (200, {}, index)
    state.routes["/token"] = (200, {}, b'{"token": "t0k"}')
    state.token_for = "t0k"
    Registry(domain).get_manifest("library/busybox", "latest")
    assert [(m, p.split("?")[0], a) for m, p, a in state.seen] == [
        ("GET", "/v2/library/busybox/manifests/latest", None),
        ("GET", "/token", None),
        ("GET", "/v2/library/busybox/manifests/latest", "Bearer t0k")]
    assert "scope=repository%3Alibrary%2Fbusybox%3Apull" in state.seen[1][1]
    assert "service=fake" in state.seen[1][1]


def test_a_refused_token_is_one_line(fake: tuple[Fake, str]) -> None:
    state, domain = fake
    state.routes["/token"] = (401, {}, b'{"errors":[{"code":"UNAUTHORIZED","message":"no"}]}')
    state.token_for = "never"
    with pytest.raises(Unauthorized) as caught:
        Registry(domain, ("u", "wrong")).get_manifest("r", "1")
    assert "refused the credentials for repository:r:pull" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_run_path_does_not_import_the_http_or_progress_libraries() -> None:
    """What ``run`` of a present image imports: neither requests (nor urllib3) nor rich, nor
    minidocker.registry. ``-X importtime`` lists every module imported, however indirectly."""
    code = ("import sys; import minidocker.cli, minidocker.store, minidocker.imagecache; "
            "print(sorted(m for m in ('requests', 'urllib3', 'rich', 'minidocker.registry') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True,
                         text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])})
    assert out.stdout.strip() == "[]"
    imported = {line.rsplit("|", 1)[-1].strip() for line in out.stderr.splitlines()
                if line.startswith("import time:")}
    assert "minidocker.cli" in imported  # the trace is there
    heavy = {m for m in imported if m.split(".")[0] in ("requests", "urllib3", "rich")
             or m.startswith("minidocker.registry")}
    assert heavy == set()


def test_progress_lines_are_dockers() -> None:
    from minidocker.registry import progress

    digest = "sha256:" + "3f4ca61aafcd" + "0" * 52
    assert progress.human_size(1_234_567) == "1.235MB"
    assert progress.human_size(10_485_760) == "10.49MB"
    assert progress.human_size(999) == "999B"
    assert progress.progress_line(digest, "Pull complete") == "3f4ca61aafcd: Pull complete"
    line = progress.progress_line(digest, "Downloading", 2_500_000, 10_000_000)
    assert line == ("3f4ca61aafcd: Downloading [============>" + " " * 37 + "]    2.5MB/10MB")
    assert progress.bar(10, 10) == "[" + "=" * 50 + "]"
    said: list[str] = []
    lines = progress.Lines(said.append)
    lines.status(digest, "Pulling fs layer")
    lines.advance(digest, "Downloading", 5, 10)  # not a line of its own off a terminal
    lines.status(digest, "Download complete")
    assert said == ["3f4ca61aafcd: Pulling fs layer", "3f4ca61aafcd: Download complete"]


def test_bars_redraw_one_line_per_layer_on_a_terminal() -> None:
    import io

    from rich.console import Console

    from minidocker.registry import progress

    screen = io.StringIO()
    a, b = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    with progress.Bars(Console(file=screen, force_terminal=True, width=120)) as bars:
        bars.status(a, "Pulling fs layer")
        bars.status(b, "Pulling fs layer")
        bars.advance(a, "Downloading", 1000, 4000)
        bars.status(b, "Download complete")
        bars.status(a, "Pull complete")
    text = screen.getvalue()
    assert "\x1b[" in text  # cursor movements: the lines are redrawn in place
    last = text.rsplit("\x1b[2K", 1)[-1]
    assert "aaaaaaaaaaaa: Pull complete" in text and "bbbbbbbbbbbb: Download complete" in last


def test_a_pull_into_a_pipe_prints_lines_without_importing_rich(tmp_path: Path) -> None:
    code = ("import sys; from minidocker.registry import progress; "
            "r = progress.for_output(False, print); r.status('sha256:' + 'c' * 64, 'Pulling fs "
            "layer'); print(type(r).__name__, 'rich' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, stdin=subprocess.DEVNULL,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])})
    assert out.stdout.splitlines() == ["cccccccccccc: Pulling fs layer", "Lines False"]


# -- search ------------------------------------------------------------------------------------

# The shape of an answer of https://index.docker.io/v1/search?q=busybox&n=3 (recorded; no
# internet here), with a description long enough to be truncated and one with a newline.
HUB_ANSWER = {
    "num_pages": 334, "num_results": 1000, "page_size": 3, "page": 1, "query": "busybox",
    "results": [
        {"star_count": 3360, "is_official": True, "name": "busybox", "is_automated": False,
         "is_trusted": False, "description": "Busybox base image."},
        {"star_count": 12, "is_official": False, "name": "rancher/busybox",
         "is_automated": False, "is_trusted": False, "description": ""},
        {"star_count": 0, "is_official": False, "name": "example/busybox-with-a-long-one",
         "is_automated": True, "is_trusted": True,
         "description": "A busybox with\nthe tools a classroom needs, and many more besides"},
    ]}


def test_search_term_names_hub_or_a_registry() -> None:
    from minidocker.registry.search import split_term

    assert split_term("busybox") == ("docker.io", "busybox")
    assert split_term("rancher/busybox") == ("docker.io", "rancher/busybox")
    assert split_term("docker.io/busybox") == ("docker.io", "busybox")
    assert split_term("127.0.0.1:5000/bus") == ("127.0.0.1:5000", "bus")
    assert split_term("localhost/") == ("localhost", "")
    assert split_term("reg.example/team/app") == ("reg.example", "team/app")


def test_search_parses_hub_answers_and_names_bad_ones() -> None:
    from minidocker.registry.search import parse_hub

    rows = parse_hub(HUB_ANSWER)
    assert [(r.name, r.star_count, r.is_official, r.is_automated) for r in rows] == [
        ("busybox", 3360, True, False), ("rancher/busybox", 12, False, False),
        ("example/busybox-with-a-long-one", 0, False, True)]
    with pytest.raises(RegistryError, match="https://index.docker.io/v1/search: the answer "
                                            "holds no results list"):
        parse_hub({"errors": []})


@pytest.fixture
def fake_hub(fake: tuple[Fake, str], monkeypatch: pytest.MonkeyPatch) -> Fake:
    """Hub's search endpoint, served by the fake registry on 127.0.0.1."""
    from minidocker.registry import search

    state, domain = fake
    state.routes["/v1/search"] = (200, {"Content-Type": "application/json"},
                                  json.dumps(HUB_ANSWER).encode())
    monkeypatch.setattr(search, "HUB_SEARCH", f"http://{domain}/v1/search")
    return state


def test_search_prints_the_columns_of_docker_search(fake_hub: Fake,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from minidocker.commands.registry import cmd_search

    assert cmd_search(["--limit", "3", "busybox"]) == 0
    # Go's tabwriter(minwidth 10, padding 3): docker search's exact layout, spaces included.
    assert capsys.readouterr().out.splitlines() == [
        "NAME                              DESCRIPTION                                     "
        "STARS     OFFICIAL",
        "busybox                           Busybox base image.                             "
        "3360      [OK]",
        "rancher/busybox                                                                   "
        "12        ",
        "example/busybox-with-a-long-one   A busybox with the tools a classroom needs, …   "
        "0         "]
    [(method, path, _)] = fake_hub.seen
    assert path == "/v1/search?q=busybox&n=3"


def test_search_filters_format_and_limits(fake_hub: Fake,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    from minidocker.commands.registry import cmd_search

    cmd_search(["--filter", "stars=10", "--format", "{{.Name}}: {{.StarCount}}", "busybox"])
    assert capsys.readouterr().out == "busybox: 3360\nrancher/busybox: 12\n"
    cmd_search(["-f", "is-official=false", "--no-trunc", "--format",
                "table {{.Name}}\\t{{.Description}}", "busybox"])
    assert capsys.readouterr().out.splitlines() == [
        "NAME                              DESCRIPTION",
        "rancher/busybox                   ",
        "example/busybox-with-a-long-one   A busybox with the tools a classroom needs, and many "
        "more besides"]
    cmd_search(["--format", "{{.Description}}", "--filter", "is-automated=true", "busybox"])
    assert capsys.readouterr().out == "A busybox with the tools a classroom needs, …\n"
    with pytest.raises(UsageError, match="invalid limit 101"):
        cmd_search(["--limit", "101", "busybox"])
    with pytest.raises(UsageError, match="invalid filter 'stars=many'"):
        cmd_search(["--filter", "stars=many", "busybox"])


def test_registry_mirrors_are_base_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    from minidocker.registry.client import mirrors

    monkeypatch.setenv("MINIDOCKER_REGISTRY_MIRRORS", " http://10.0.0.2:5000/, https://m.lab ,")
    assert mirrors() == ["http://10.0.0.2:5000", "https://m.lab"]
    monkeypatch.setenv("MINIDOCKER_REGISTRY_MIRRORS", "http://m.lab/v2/")
    with pytest.raises(RegistryError, match="'http://m.lab/v2' is not a registry URL"):
        mirrors()
    monkeypatch.delenv("MINIDOCKER_REGISTRY_MIRRORS")
    assert mirrors() == []
