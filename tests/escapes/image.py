"""Build ``probe.c`` (``gcc -static``) and import it as the ``escape-probe`` image.

Used by tests/kernel/test_escapes.py and test_security.py. The build runs in the test, so CI
builds it too; without gcc or a static C library the tests that need it skip, saying why.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from minidocker import escapes
from tests.conftest import CLI, TEST_ROOT_MARK

SOURCE = Path(__file__).with_name("probe.c")


def probe_cli(tmp_path_factory: pytest.TempPathFactory, name: str) -> CLI:
    """A CLI on a state root of its own that holds the ``escape-probe`` image."""
    cli = CLI(tmp_path_factory.mktemp(TEST_ROOT_MARK + name))

    def run(*args: str) -> tuple[int, str, str]:
        done = cli(*args)
        return done.returncode, done.stdout, done.stderr

    try:
        escapes.make_probe_image(run, str(cli.root), str(SOURCE))
    except RuntimeError as exc:
        if "gcc" in str(exc):
            pytest.skip(f"cannot build the escape probe: {exc}")
        raise
    return cli
