"""minidocker-runtime's command line: spec, features, state, list, the log, and what waits."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from minidocker import ocibundle, ociruntime, runtimespec


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = ociruntime.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_spec_writes_a_bundle_minidocker_translates_whole(tmp_path, capsys) -> None:
    assert run(capsys, "spec", "--bundle", str(tmp_path)) == (0, "", "")
    written = json.loads((tmp_path / "config.json").read_text())
    assert written == runtimespec.default_config()
    (tmp_path / "rootfs").mkdir()
    _, spec = ocibundle.read_bundle(str(tmp_path))
    assert spec.ignored == []
    code, _, err = run(capsys, "spec", "-b", str(tmp_path))
    assert code == 1 and err == "minidocker-runtime: File config.json exists. Remove it first\n"


def test_spec_rootless_is_refused(tmp_path, capsys) -> None:
    code, _, err = run(capsys, "spec", "--rootless", "-b", str(tmp_path))
    assert code == 1 and "rootless containers are not supported" in err
    assert not (tmp_path / "config.json").exists()


def test_features_says_what_the_translation_accepts(capsys) -> None:
    code, out, _ = run(capsys, "features")
    doc = json.loads(out)
    assert code == 0 and doc["ociVersionMin"] == "1.0.0"
    assert doc["hooks"] == list(runtimespec.HOOKS)
    assert doc["linux"]["namespaces"] == ["cgroup", "ipc", "mount", "network", "pid", "user",
                                          "uts"]
    assert doc["linux"]["cgroup"] == {"v1": True, "v2": True, "systemd": False,
                                      "systemdUser": False}
    assert doc["linux"]["selinux"] == {"enabled": False}
    assert "CAP_CHECKPOINT_RESTORE" in doc["linux"]["capabilities"]
    assert "tmpcopyup" not in doc["mountOptions"] and "rbind" in doc["mountOptions"]
    # every mount option it lists, the translation takes
    config = runtimespec.default_config()
    config["mounts"] = [{"destination": "/m", "type": "tmpfs", "options": [option]}
                        for option in doc["mountOptions"] if "bind" not in option]
    ocibundle.translate(config, "/b")


def test_state_reads_the_spec_fields(tmp_path, capsys) -> None:
    record = {"ociVersion": "1.0.2", "id": "c1", "status": "running", "pid": os.getpid(),
              "bundle": "/bundles/c1", "annotations": {"a": "b"},
              "created": "2026-01-01T00:00:00Z"}
    ociruntime.write_state(str(tmp_path), record)
    assert os.listdir(tmp_path / "c1") == ["state.json"]
    code, out, _ = run(capsys, "--root", str(tmp_path), "state", "c1")
    assert code == 0 and json.loads(out) == record


def test_a_container_whose_process_is_gone_is_stopped(tmp_path, capsys) -> None:
    child = subprocess.Popen(["true"])
    child.wait()  # reaped: its pid names nobody now
    ociruntime.write_state(str(tmp_path), {"ociVersion": "1.0.2", "id": "gone",
                                           "status": "running", "pid": child.pid,
                                           "bundle": "/b"})
    code, out, _ = run(capsys, "--root", str(tmp_path), "state", "gone")
    assert json.loads(out)["status"] == "stopped" and json.loads(out)["pid"] == 0


def test_state_of_nothing_and_of_a_bad_id(tmp_path, capsys) -> None:
    code, out, err = run(capsys, "--root", str(tmp_path), "state", "nope")
    assert (code, out, err) == (1, "", "minidocker-runtime: container does not exist\n")
    code, _, err = run(capsys, "--root", str(tmp_path), "state", "../etc")
    assert code == 1 and "invalid container id '../etc'" in err


def test_list_as_a_table_quietly_and_as_json(tmp_path, capsys) -> None:
    assert run(capsys, "--root", str(tmp_path / "none"), "list", "--format", "json") == \
        (0, "[]\n", "")
    for cid in ("b", "a"):
        ociruntime.write_state(str(tmp_path), {"ociVersion": "1.0.2", "id": cid,
                                               "status": "created", "pid": os.getpid(),
                                               "bundle": f"/bundles/{cid}"})
    (tmp_path / "not-a-container").mkdir()
    assert run(capsys, "--root", str(tmp_path), "list", "-q") == (0, "a\nb\n", "")
    _, out, _ = run(capsys, "--root", str(tmp_path), "list")
    header, first, second = out.splitlines()
    assert header.split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    assert first.split()[:4] == ["a", str(os.getpid()), "created", "/bundles/a"]
    _, out, _ = run(capsys, "--root", str(tmp_path), "list", "-f", "json")
    listed = json.loads(out)
    assert [c["id"] for c in listed] == ["a", "b"] and listed[0]["status"] == "created"


def test_errors_go_to_the_json_log_podman_reads(tmp_path, capsys) -> None:
    log = tmp_path / "log.json"
    run(capsys, "--root", str(tmp_path), "--log", str(log), "--log-format", "json",
        "state", "nope")
    run(capsys, "--log-format=json", f"--log={log}", "--root", str(tmp_path), "bogus")
    run(capsys, "--log", str(log), "--log-format", "json", "--root", str(tmp_path),
        "create", "--bundle", str(tmp_path / "nowhere"), "c1")
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["level"] for r in records] == ["error"] * 3
    assert records[0]["msg"] == "container does not exist"
    assert "invalid choice: 'bogus'" in records[1]["msg"]
    assert records[2]["msg"].startswith("config.json: cannot open ")
    assert all(set(r) == {"level", "msg", "time"} and r["time"].endswith("Z") for r in records)
    assert log.read_text().startswith('{"level":"error","msg":')  # logrus' compact form


def test_the_text_log_and_debug_records(tmp_path, capsys) -> None:
    log = tmp_path / "log.txt"
    run(capsys, "--debug", "--log", str(log), "--root", str(tmp_path), "state", "nope")
    debug, error = log.read_text().splitlines()
    assert " level=debug msg=" in debug
    assert error.startswith('time="') and error.endswith(
        ' level=error msg="container does not exist"')
    assert ociruntime.log_line("error", 'say "hi"', "json", "T") == \
        '{"level":"error","msg":"say \\"hi\\"","time":"T"}\n'


def test_global_flags_are_accepted_and_version(tmp_path, capsys) -> None:
    code, out, _ = run(capsys, "--root", str(tmp_path), "--systemd-cgroup", "--debug", "list",
                       "-q")
    assert code == 0 and out == ""
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.startswith("minidocker-runtime version ")


def test_the_console_script(tmp_path) -> None:
    script = shutil.which("minidocker-runtime",
                          path=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    if script is None:
        pytest.skip("minidocker-runtime is not installed: run scripts/setup.sh")
    done = subprocess.run([script, "--root", str(tmp_path), "features"], capture_output=True,
                          text=True, check=True)
    assert json.loads(done.stdout)["linux"]["cgroup"]["v1"] is True


def test_a_create_that_fails_leaves_nothing(tmp_path, capsys) -> None:
    """A bundle refused before anything starts: one line naming the field, no state left."""
    bundle = tmp_path / "bundle"
    (bundle / "rootfs").mkdir(parents=True)
    (bundle / "config.json").write_text('{"ociVersion": "1.0.2", "root": {"path": "rootfs"}, '
                                        '"process": {"args": ["true"]}, "linux": {"namespaces": '
                                        '[{"type": "mount"}, {"type": "time"}]}}')
    root = tmp_path / "root"
    code, out, err = run(capsys, "--root", str(root), "create", "--bundle", str(bundle), "c1")
    assert (code, out) == (1, "")
    assert err == ("minidocker-runtime: config.json: linux.namespaces[1].type: the time "
                   "namespace is not supported\n")
    assert not root.exists() or os.listdir(root) == []


def test_the_command_line_is_parsed_as_runc_parses_it() -> None:
    """urfave/cli's rules: a command's flags may follow its arguments, except for exec and ps,
    whose words after the ID belong to the process (or to ps)."""
    args = ociruntime.parse(["--root", "/r", "--log-format=json", "delete", "c1", "--force"])
    assert (args.command, args.id, args.force, args.root, args.log_format) == \
        ("delete", "c1", True, "/r", "json")
    args = ociruntime.parse(["exec", "-e", "A=1", "--tty", "c1", "sh", "-c", "ls -l", "-e"])
    assert (args.id, args.env, args.tty, args.process_args) == \
        ("c1", ["A=1"], True, ["sh", "-c", "ls -l", "-e"])
    args = ociruntime.parse(["ps", "c1", "--", "-ef"])
    assert (args.id, args.ps_args, args.format) == ("c1", ["-ef"], "table")
    args = ociruntime.parse(["kill", "c1"])
    assert (args.signal, args.all) == ("SIGTERM", False)
    args = ociruntime.parse(["run", "-b", "/b", "-d", "--pid-file=/p", "c1"])
    assert (args.bundle, args.detach, args.pid_file, args.console_socket, args.preserve_fds) == \
        ("/b", True, "/p", "", 0)
    assert ociruntime.parse(["ls", "-q"]).command == "list"


@pytest.mark.parametrize(("argv", "message"), [
    (["kill"], '"kill" requires a minimum of 1 and a maximum of 2 argument(s)'),
    (["kill", "a", "b", "c"], '"kill" requires a minimum of 1 and a maximum of 2 argument(s)'),
    (["start"], '"start" requires exactly 1 argument(s)'),
    (["state", "a", "b"], '"state" requires exactly 1 argument(s)'),
    (["delete", "--nope", "c1"], "unknown flag: --nope (see 'minidocker-runtime delete --help')"),
    (["create", "--preserve-fds", "x", "c1"], "invalid value 'x' for --preserve-fds"),
    (["list", "--format", "yaml"], 'invalid argument "yaml" for --format'),
])
def test_a_command_line_that_does_not_parse_is_one_line(capsys, argv, message) -> None:
    code, out, err = run(capsys, *argv)
    assert (code, out) == (1, "")
    assert err.startswith(f"minidocker-runtime: {message}") and err.count("\n") == 1, err


def test_help_lists_the_commands_and_a_command_its_flags(capsys) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "Commands:" in out and "  exec " in out
    code, out, _ = run(capsys, "exec", "--help")
    assert code == 0 and "--console-socket" in out and "exec [OPTIONS] ID [PROCESS_ARGS...]" in out
    code, out, _ = run(capsys)
    assert code == 1 and out.startswith("Usage:  minidocker-runtime [OPTIONS] COMMAND")


def test_a_state_command_does_not_load_the_engine(tmp_path) -> None:
    """Only the commands that start or change a container import the engine (and ctypes)."""
    repo = os.path.dirname(os.path.dirname(ociruntime.__file__))
    code = (f"import sys; sys.path.insert(0, {repo!r}); from minidocker import ociruntime; "
            f"ociruntime.run_command(['--root', {str(tmp_path)!r}, 'list', '-q']); "
            "print(sorted(m for m in ('minidocker.engine', 'ctypes', 'argparse') "
            "if m in sys.modules))")
    done = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True,
                          text=True, check=True)  # -S: as the launcher runs it, no site hooks
    assert done.stdout == "[]\n", done.stdout
