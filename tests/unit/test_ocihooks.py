"""minidocker.ocihooks: a hook's argv, env, stdin, timeout and failure, with /bin/sh, no root."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from minidocker import ocihooks
from minidocker.runtimespec import OciSpec


def sh(script: str, **extra: object) -> dict:
    return {"path": "/bin/sh", "args": ["sh", "-c", script, "zeroth"], "env": ["A=1"], **extra}


def test_the_hook_gets_exactly_its_args_env_and_the_state(tmp_path: Path) -> None:
    out = tmp_path / "out"
    state = ocihooks.state_of(OciSpec(bundle="/b", annotations={"k": "v"}, container_id="c1"),
                              42, "created")
    ocihooks.run("prestart", [sh(f'echo "$0|$A|$(env | grep -c =)|$(cat)" > {out}')], state)
    argv0, a, count, stdin = out.read_text().rstrip("\n").split("|", 3)
    assert (argv0, a) == ("zeroth", "1")
    assert int(count) <= 3  # A, and what sh itself sets (PWD, SHLVL): nothing of ours
    assert json.loads(stdin) == {"ociVersion": "1.0.2", "id": "c1", "status": "created",
                                 "pid": 42, "bundle": "/b", "annotations": {"k": "v"}}


def test_a_failure_names_the_hook_and_quotes_its_output() -> None:
    with pytest.raises(ocihooks.HookError) as failed:
        ocihooks.run("createRuntime", [sh("true"), sh("echo no  way >&2; exit 7")], b"{}")
    assert str(failed.value) == ("hooks.createRuntime[1]: /bin/sh exited with status 7: "
                                 "no way")


def test_a_hook_that_does_not_exist() -> None:
    with pytest.raises(ocihooks.HookError, match=r"hooks.prestart\[0\]: /nonexistent exited "
                       r"with status 127: exec: No such file"):
        ocihooks.run("prestart", [{"path": "/nonexistent"}], b"{}")


def test_the_timeout_kills_it() -> None:
    started = time.monotonic()
    with pytest.raises(ocihooks.HookError, match="timed out after 1s"):
        ocihooks.run("poststart", [sh("sleep 20", timeout=1)], b"{}")
    assert time.monotonic() - started < 15


def test_a_hook_that_ignores_a_large_stdin_does_not_hang() -> None:
    ocihooks.run("prestart", [sh("exit 0", timeout=10)], b"x" * (1 << 20))


def test_poststop_failures_only_warn_and_the_rest_run(tmp_path: Path) -> None:
    out = tmp_path / "out"
    record = {"id": "c1", "bundle": "/b", "hooks": {"poststop": [sh("exit 1"),
                                                                  sh(f"cat > {out}")]}}
    warnings: list[str] = []
    ocihooks.run_recorded("poststop", record, "stopped", warnings.append)
    assert warnings == ["hooks.poststop[0]: /bin/sh exited with status 1"]
    assert json.loads(out.read_text())["status"] == "stopped"
