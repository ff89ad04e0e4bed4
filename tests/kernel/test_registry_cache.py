"""A classroom cache: docker-registry in proxy mode in front of another registry (both on
127.0.0.1) serves a second pull after the upstream is gone; docker.io pulls go to it first
through ``$MINIDOCKER_REGISTRY_MIRRORS``. The recipe: docs/registry-cache.md.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import CLI, TEST_ROOT_MARK, needs_root, stop_minidocker
from tests.kernel.test_bad_input import assert_one_line_error
from tests.registry_server import RegistryServer, free_port

pytestmark = [needs_root, pytest.mark.kernel, pytest.mark.nb05,
              pytest.mark.usefixtures("own_docker_config")]


@pytest.fixture
def fresh_cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[], CLI]]:
    """Makes CLIs each on an empty state root of its own (a student's machine)."""
    roots: list[Path] = []

    def make() -> CLI:
        roots.append(tmp_path_factory.mktemp(TEST_ROOT_MARK + "root"))
        return CLI(roots[-1])

    yield make
    for root in roots:
        stop_minidocker(root)


def manifest_digests(cli: CLI) -> dict[str, str]:
    index = json.loads((cli.root / "images" / "index.json").read_text())
    return {e["annotations"]["org.opencontainers.image.ref.name"]: e["digest"]
            for e in index["manifests"]}


def test_a_pull_through_cache_serves_after_upstream_is_gone(
        cli: CLI, fresh_cli: Callable[[], CLI],
        tmp_path_factory: pytest.TempPathFactory) -> None:
    upstream = RegistryServer(tmp_path_factory.mktemp(TEST_ROOT_MARK + "upstream"))
    try:
        cache = RegistryServer(tmp_path_factory.mktemp(TEST_ROOT_MARK + "cache"),
                               proxy=f"http://{upstream.domain}")
    except BaseException:
        upstream.stop()
        raise
    try:
        # The instructor's image, on "Docker Hub" (the upstream), as library/busybox:class.
        cli("tag", "busybox", f"{upstream.domain}/library/busybox:class", check=True)
        pushed = cli("push", f"{upstream.domain}/library/busybox:class",
                     check=True).stdout.splitlines()[-1].split()[2]
        first = fresh_cli()
        via_cache = f"{cache.domain}/library/busybox:class"
        first("pull", via_cache, check=True)
        assert manifest_digests(first)[f"{via_cache}"] == pushed

        upstream.stop()  # the NAT's uplink is down: only the cache answers now
        assert_one_line_error(fresh_cli()("pull", f"{upstream.domain}/library/busybox:class"),
                              125, upstream.domain, "connection refused")
        second = fresh_cli()
        out = second("pull", via_cache, check=True).stdout
        assert f"Digest: {pushed}" in out and "Pull complete" in out
        assert second("run", "--rm", via_cache, "echo", "from the cache").stdout == \
            "from the cache\n"

        # And docker.io names, through the mirror list: a dead mirror first is skipped.
        dead = f"http://127.0.0.1:{free_port()}"
        student = fresh_cli()
        student.env["MINIDOCKER_REGISTRY_MIRRORS"] = f"{dead}, http://{cache.domain}"
        result = student("pull", "busybox:class", check=True)
        assert f"Digest: {pushed}" in result.stdout
        assert result.stdout.splitlines()[-1] == "docker.io/library/busybox:class"
        assert f"mirror {dead}: " in result.stderr and "connection refused" in result.stderr.lower()
        assert manifest_digests(student) == {"busybox:class": pushed}  # a Hub image, named so
    finally:
        cache.stop()
        upstream.stop()


def test_a_bad_mirror_setting_is_one_line(fresh_cli: Callable[[], CLI]) -> None:
    student = fresh_cli()
    student.env["MINIDOCKER_REGISTRY_MIRRORS"] = "127.0.0.1:5000"
    assert_one_line_error(student("pull", "busybox:class"), 125,
                          "MINIDOCKER_REGISTRY_MIRRORS", "'127.0.0.1:5000'", "registry url")
