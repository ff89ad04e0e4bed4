"""pull, push and login against Debian's real ``docker-registry`` (distribution v2), on 127.0.0.1.

Each registry is started with a config of the test's own (tests/registry_server.py), in three
modes: no auth, htpasswd, and bearer tokens from a small issuer in the test. skopeo, the
field's own client, checks that what minidocker pushes and pulls is what other tools push and
pull.
"""

from __future__ import annotations

import hashlib
import json
import stat
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import CLI, TEST_ROOT_MARK, needs_root
from tests.kernel.test_bad_input import assert_one_line_error
from tests.registry_server import RegistryServer, TokenIssuer

pytestmark = [needs_root, pytest.mark.kernel, pytest.mark.nb05,
              pytest.mark.usefixtures("own_docker_config")]

def inspect_id(cli: CLI, ref: str) -> str:
    return cli("image", "inspect", "-f", "{{.Id}}", ref, check=True).stdout.strip()


def manifest_digest(cli: CLI, ref: str) -> str:
    index = json.loads((cli.root / "images" / "index.json").read_text())
    [entry] = [e for e in index["manifests"] if e.get("annotations", {}).get(
        "org.opencontainers.image.ref.name") == ref]
    return str(entry["digest"])


def push_busybox(cli: CLI, ref: str) -> str:
    """Push the built-in busybox as ``ref``; the digest push printed."""
    cli("tag", "busybox", ref, check=True)
    out = cli("push", ref, check=True).stdout.splitlines()
    tag = ref.rpartition(":")[2]
    assert out[-1].startswith(f"{tag}: digest: sha256:"), out
    return out[-1].split()[2]


# -- round trips --------------------------------------------------------------------------------

def test_push_then_pull_keeps_every_digest(cli: CLI, other_cli: CLI,
                                           registry: RegistryServer) -> None:
    ref = f"{registry.domain}/rt/busybox:1"
    pushed = push_busybox(cli, ref)
    assert pushed == manifest_digest(cli, ref)
    again = cli("push", ref, check=True).stdout
    assert "Layer already exists" in again and "Pushed" not in again

    out = other_cli("pull", ref, check=True).stdout.splitlines()
    assert out[0] == "1: Pulling from rt/busybox"
    assert any(line.endswith(": Pull complete") for line in out)
    assert out[-3:] == [f"Digest: {pushed}", f"Status: Downloaded newer image for {ref}", ref]
    assert inspect_id(other_cli, ref) == inspect_id(cli, ref)
    assert manifest_digest(other_cli, ref) == pushed
    assert other_cli("run", "--rm", ref, "echo", "pulled").stdout == "pulled\n"

    up_to_date = other_cli("pull", ref, check=True).stdout
    assert f"Status: Image is up to date for {ref}" in up_to_date
    assert other_cli("pull", "-q", ref, check=True).stdout == ref + "\n"


def test_pull_by_digest_and_unknown_tag(other_cli: CLI, cli: CLI,
                                        registry: RegistryServer) -> None:
    pushed = push_busybox(cli, f"{registry.domain}/bydigest:1")
    out = other_cli("pull", f"{registry.domain}/bydigest@{pushed}", check=True).stdout
    assert f"Digest: {pushed}" in out
    assert other_cli("images", "-q", check=True).stdout.strip() == \
        inspect_id(cli, "busybox").removeprefix("sha256:")[:12]
    missing = other_cli("pull", f"{registry.domain}/bydigest:nope")
    assert_one_line_error(missing, 125, f"{registry.domain}/bydigest:nope", "not found")


def test_an_index_is_resolved_to_this_machines_platform(cli: CLI, other_cli: CLI,
                                                       registry: RegistryServer) -> None:
    from minidocker.store import host_architecture

    pushed = push_busybox(cli, f"{registry.domain}/multi:1")
    size = len(cli.root.joinpath("images", "blobs", "sha256",
                                 pushed.removeprefix("sha256:")).read_bytes())

    def entry(os_: str, arch: str) -> dict[str, object]:
        return {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": pushed,
                "size": size, "platform": {"os": os_, "architecture": arch}}

    # Every entry points at the one image: which entry was chosen shows in what fails.
    index = json.dumps({"schemaVersion": 2,
                        "mediaType": "application/vnd.oci.image.index.v1+json",
                        "manifests": [entry("unknown", "unknown"), entry("linux", "s390x"),
                                      entry("linux", host_architecture())]}).encode()
    request = urllib.request.Request(
        f"http://{registry.domain}/v2/multi/manifests/all", data=index, method="PUT",
        headers={"Content-Type": "application/vnd.oci.image.index.v1+json"})
    urllib.request.urlopen(request, timeout=10).close()
    index_digest = "sha256:" + hashlib.sha256(index).hexdigest()

    ref = f"{registry.domain}/multi:all"
    out = other_cli("pull", ref, check=True).stdout
    assert f"Digest: {index_digest}" in out  # the index's, as docker prints it
    assert manifest_digest(other_cli, ref) == pushed  # the image's own manifest is stored
    assert inspect_id(other_cli, ref) == inspect_id(cli, "busybox")
    wrong = other_cli("pull", "--platform", "linux/s390x", ref)
    assert_one_line_error(wrong, 125, "does not match the specified platform", "linux/s390x")
    none = other_cli("pull", "--platform", "linux/riscv64", ref)
    assert_one_line_error(none, 125, "no matching manifest for linux/riscv64", ref)


def test_run_pulls_a_missing_image_first(cli: CLI, other_cli: CLI,
                                         registry: RegistryServer) -> None:
    ref = f"{registry.domain}/autopull/busybox:1"
    pushed = push_busybox(cli, ref)
    result = other_cli("run", "--rm", ref, "echo", "pulled by run")
    assert (result.returncode, result.stdout) == (0, "pulled by run\n"), result.stderr
    lines = result.stderr.splitlines()  # Docker's order, all on stderr
    assert lines[:2] == [f"Unable to find image '{ref}' locally",
                         "1: Pulling from autopull/busybox"]
    assert lines[-2:] == [f"Digest: {pushed}", f"Status: Downloaded newer image for {ref}"]
    assert manifest_digest(other_cli, ref) == pushed
    again = other_cli("run", "--rm", ref, "true")
    assert (again.returncode, again.stderr) == (0, "")  # present now: no pull


def test_search_lists_a_private_registrys_catalog(cli: CLI, registry: RegistryServer) -> None:
    for name in ("findme/alpha", "findme-beta", "hidden"):
        push_busybox(cli, f"{registry.domain}/{name}:1")
    out = cli("search", f"{registry.domain}/FINDME", check=True).stdout.splitlines()
    assert out[0].split() == ["NAME", "DESCRIPTION", "STARS", "OFFICIAL"]
    found = [f"{registry.domain}/findme/alpha", f"{registry.domain}/findme-beta"]
    assert sorted(line.split() for line in out[1:]) == [[found[1], "0"], [found[0], "0"]]
    limited = cli("search", "--limit", "1", "--format", "{{.Name}}", f"{registry.domain}/find",
                  check=True)
    assert limited.stdout in (found[0] + "\n", found[1] + "\n")
    everything = cli("search", "--format", "{{.Name}}", f"{registry.domain}/", check=True)
    assert f"{registry.domain}/hidden" in everything.stdout.splitlines()
    # What search prints, pull takes.
    assert cli("pull", "-q", f"{registry.domain}/findme/alpha:1", check=True).returncode == 0


# -- skopeo interop ------------------------------------------------------------------------------

def skopeo(*args: str, policy: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["skopeo", "--policy", str(policy), *args], capture_output=True,
                          text=True, timeout=120, check=True)


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    path = tmp_path / "policy.json"
    path.write_text('{"default": [{"type": "insecureAcceptAnything"}]}')
    return path


@pytest.mark.parametrize(("form", "media_type"), [
    ("oci", "application/vnd.oci.image.manifest.v1+json"),
    ("v2s2", "application/vnd.docker.distribution.manifest.v2+json"),  # and a gzip layer
])
def test_skopeo_pushes_minidocker_pulls(cli: CLI, other_cli: CLI, registry: RegistryServer,
                                        policy: Path, form: str, media_type: str) -> None:
    busybox_id = inspect_id(cli, "busybox")  # builds the built-in image in cli's store
    ref = f"{registry.domain}/from-skopeo-{form}:1"
    skopeo("copy", "--format", form, "--dest-tls-verify=false",
           f"oci:{cli.root / 'images'}:busybox:latest", f"docker://{ref}", policy=policy)
    other_cli("pull", ref, check=True)
    index = json.loads((other_cli.root / "images" / "index.json").read_text())
    assert [m["mediaType"] for m in index["manifests"]] == [media_type]
    assert inspect_id(other_cli, ref) == busybox_id
    assert other_cli("run", "--rm", ref, "echo", "ok").stdout == "ok\n"


def test_minidocker_pushes_skopeo_reads(cli: CLI, registry: RegistryServer,
                                        policy: Path, tmp_path: Path) -> None:
    ref = f"{registry.domain}/for-skopeo:2"
    pushed = push_busybox(cli, ref)
    info = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{ref}",
                             policy=policy).stdout)
    assert info["Digest"] == pushed
    skopeo("copy", "--src-tls-verify=false", f"docker://{ref}", f"oci:{tmp_path / 'oci'}:x",
           policy=policy)
    # skopeo may write the manifest anew (it does for an uncompressed layer); the config, and
    # so the image ID, is what it read from the registry, byte for byte.
    [entry] = json.loads((tmp_path / "oci" / "index.json").read_text())["manifests"]
    blobs = tmp_path / "oci" / "blobs" / "sha256"
    manifest = json.loads((blobs / entry["digest"].removeprefix("sha256:")).read_text())
    assert manifest["config"]["digest"] == inspect_id(cli, ref)


# -- basic auth (htpasswd) -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def locked_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    import bcrypt

    hashed = bcrypt.hashpw(b"right horse", bcrypt.gensalt(rounds=4, prefix=b"2a")).decode()
    server = RegistryServer(tmp_path_factory.mktemp(TEST_ROOT_MARK + "registry"),
                            htpasswd=f"alice:{hashed}\n")
    yield server
    server.stop()


def test_htpasswd_login_push_pull_logout(cli: CLI, other_cli: CLI, tmp_path: Path,
                                         locked_registry: RegistryServer) -> None:
    domain = locked_registry.domain
    config = tmp_path / "dockercfg" / "config.json"  # own_docker_config's, for both CLIs
    assert cli.env["DOCKER_CONFIG"] == other_cli.env["DOCKER_CONFIG"] == str(config.parent)
    ref = f"{domain}/private:1"
    cli("tag", "busybox", ref, check=True)
    anonymous = cli("push", ref)
    assert_one_line_error(anonymous, 125, domain, "minidocker login")

    wrong = cli("login", "-u", "alice", "--password-stdin", domain, input="wrong horse\n")
    assert_one_line_error(wrong, 125, f"login to {domain} failed", "unauthorized")
    assert not config.exists()

    good = cli("login", "-u", "alice", "--password-stdin", domain, input="right horse\n")
    assert good.returncode == 0 and good.stdout == "Login Succeeded\n", good.stderr
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert domain in json.loads(config.read_text())["auths"]
    pushed = push_busybox(cli, ref)
    other_cli("pull", ref, check=True)
    assert manifest_digest(other_cli, ref) == pushed

    assert cli("logout", domain, check=True).stdout == f"Removing login credentials for {domain}\n"
    assert cli("logout", domain, check=True).stdout == f"Not logged in to {domain}\n"
    after = other_cli("pull", f"{domain}/private:nope")
    assert_one_line_error(after, 125, domain, "login")


# -- bearer tokens (the token dance, against a real registry) -----------------------------------

@pytest.fixture(scope="module", params=["ES256", "RS256"])
def token_registry(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                   ) -> Iterator[tuple[RegistryServer, TokenIssuer]]:
    """A registry that trusts only tokens signed by its issuer: alice may push, bob may only
    pull, anonymous users may pull."""
    home = tmp_path_factory.mktemp(TEST_ROOT_MARK + "registry")
    issuer = TokenIssuer(home, {"alice": ("right horse", ["pull", "push"]),
                                "bob": ("bob's horse", ["pull"])}, algorithm=request.param)
    try:
        server = RegistryServer(home, token=issuer)
    except BaseException:
        issuer.close()
        raise
    yield server, issuer
    server.stop()
    issuer.close()


def login(cli: CLI, domain: str, user: str, password: str) -> None:
    result = cli("login", "-u", user, "--password-stdin", domain, input=password + "\n")
    assert result.returncode == 0 and result.stdout == "Login Succeeded\n", result.stderr


def test_anonymous_pull_with_a_pull_scoped_token(
        cli: CLI, other_cli: CLI, tmp_path: Path,
        token_registry: tuple[RegistryServer, TokenIssuer]) -> None:
    server, issuer = token_registry
    ref = f"{server.domain}/tok/busybox:1"
    anonymous = urllib.request.Request(f"http://{server.domain}/v2/tok/busybox/manifests/1")
    with pytest.raises(urllib.error.HTTPError) as refused:  # no token: no manifest
        urllib.request.urlopen(anonymous, timeout=10)
    assert refused.value.code == 401
    assert f'realm="{issuer.realm}"' in refused.value.headers["WWW-Authenticate"]

    login(cli, server.domain, "alice", "right horse")
    pushed = push_busybox(cli, ref)
    assert ("alice", ["repository:tok/busybox:pull,push"]) in issuer.asked

    # other_cli has no credentials (its own DOCKER_CONFIG): the anonymous token dance.
    other_cli.env["DOCKER_CONFIG"] = str(tmp_path / "nobody")
    issuer.asked.clear()
    other_cli("pull", ref, check=True)
    assert issuer.asked == [(None, ["repository:tok/busybox:pull"])]  # one token, pull only
    assert manifest_digest(other_cli, ref) == pushed
    assert inspect_id(other_cli, ref) == inspect_id(cli, ref)


def test_push_with_a_pull_only_token_names_the_scope(
        cli: CLI, tmp_path: Path, token_registry: tuple[RegistryServer, TokenIssuer]) -> None:
    server, _ = token_registry
    ref = f"{server.domain}/tok/readonly:1"
    cli("tag", "busybox", ref, check=True)
    login(cli, server.domain, "bob", "bob's horse")  # bob's tokens never grant push
    refused = cli("push", ref)
    # The registry names the scope it wanted; its actions' order varies (a Go map).
    assert_one_line_error(refused, 125, "insufficient scope", "repository:tok/readonly:",
                          "push", "as bob")
    cli.env["DOCKER_CONFIG"] = str(tmp_path / "nobody")
    anonymous = cli("push", ref)
    assert_one_line_error(anonymous, 125, "insufficient scope", "repository:tok/readonly:",
                          "push", "minidocker login")
    # Nothing was tagged: the registry has no manifest for it (alice may look).
    cli.env["DOCKER_CONFIG"] = str(tmp_path / "alice")
    login(cli, server.domain, "alice", "right horse")
    missing = cli("pull", ref)
    assert_one_line_error(missing, 125, ref, "not found")


def test_a_wrong_password_at_the_issuer_is_one_line(
        cli: CLI, tmp_path: Path, token_registry: tuple[RegistryServer, TokenIssuer]) -> None:
    server, issuer = token_registry
    wrong = cli("login", "-u", "alice", "--password-stdin", server.domain, input="wrong horse\n")
    assert_one_line_error(wrong, 125, f"login to {server.domain} failed", issuer.realm,
                          "incorrect username or password")
    assert not (tmp_path / "dockercfg" / "config.json").exists()
