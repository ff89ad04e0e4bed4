"""``minidocker volume ...`` as a user types it: output, exit codes, Docker's words."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from minidocker import cli, volumes

pytestmark = pytest.mark.nb08


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MINIDOCKER_ROOT", str(tmp_path))

    def run(*argv: str) -> tuple[int, str, str]:
        code = cli.main(["volume", *argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_create_ls_inspect_rm(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert run("create", "--label", "team=a", "db") == (0, "db\n", "")
    code, anon, _ = run("create")
    anon = anon.strip()
    assert code == 0 and re.fullmatch("[0-9a-f]{64}", anon)
    rows = "".join(f"local     {name}\n" for name in sorted([anon, "db"]))  # by name, as Docker
    assert run("ls")[1] == "DRIVER    VOLUME NAME\n" + rows
    # The anonymous name is random hex: it matches ^d one time in sixteen, as in Docker.
    wanted = "".join(f"{n}\n" for n in sorted([anon, "db"]) if n.startswith("d"))
    assert run("ls", "-q", "-f", "name=^d")[1] == wanted
    assert run("ls", "--format", "{{.Name}}\\t{{.Driver}}", "-f", "label=team")[1] == \
        "db\tlocal\n"
    code, out, _ = run("inspect", "db")
    [shown] = json.loads(out)
    assert shown["Labels"] == {"team": "a"} and shown["Options"] is None
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", shown["CreatedAt"])
    assert shown["Mountpoint"] == str(tmp_path / "volumes" / "db" / "_data")
    assert run("inspect", "-f", "{{.Name}} {{.Scope}}", "db") == (0, "db local\n", "")
    assert run("inspect", "nope") == (1, "[]\n", "minidocker: get nope: no such volume\n")
    assert run("rm", "db", "nope") == (1, "db\n", "minidocker: get nope: no such volume\n")
    assert run("rm", "-f", "nope") == (0, "nope\n", "")


def test_create_with_driver_options(run) -> None:  # type: ignore[no-untyped-def]
    assert run("create", "--opt", "type=tmpfs", "-o", "device=tmpfs", "--opt",
               "o=size=64m,uid=1000", "mem") == (0, "mem\n", "")
    [shown] = json.loads(run("inspect", "mem")[1])
    assert shown["Options"] == {"type": "tmpfs", "device": "tmpfs", "o": "size=64m,uid=1000"}
    assert run("inspect", "-f", "{{.Options.o}}", "mem") == (0, "size=64m,uid=1000\n", "")


def test_rm_in_use_and_prune(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cid = "b" * 64
    os.makedirs(tmp_path / "containers" / cid)
    volumes.use(str(tmp_path), "used", cid)
    volumes.create(str(tmp_path), "named")
    anon = volumes.create(str(tmp_path)).name
    assert run("rm", "used") == (1, "", f"minidocker: remove used: volume is in use - [{cid}]\n")
    assert run("prune", "-f") == (0, f"Deleted Volumes:\n{anon}\n\nTotal reclaimed space: 0B\n",
                                  "")
    assert run("prune", "-a", "-f") == (0, "Deleted Volumes:\nnamed\n\n"
                                           "Total reclaimed space: 0B\n", "")
    assert run("ls", "-q")[1] == "used\n"


def test_bad_input_is_refused_in_one_line(run) -> None:  # type: ignore[no-untyped-def]
    assert run("create", "a/b")[0] == 125
    assert run("create", "-o", "colour=red", "v") == (
        125, "", 'minidocker: invalid option: "colour"\n')
    assert run("create", "-o", "type=tmpfs", "v") == (
        125, "", 'minidocker: missing required option: "device"\n')
    assert run("create", "--opt", "o=size=1m", "--opt", "type=tmpfs", "v") == (
        125, "", 'minidocker: missing required option: "device"\n')
    assert run("create", "--opt", "size=10g", "v") == (
        125, "", "minidocker: quota size requested but no quota support\n")
    assert run("ls", "-f", "colour=red") == (125, "", "minidocker: invalid filter 'colour'\n")
    assert run("frobnicate")[0] == 125
    assert run("ls", "-q") == (0, "", "")  # nothing was made by the refusals
