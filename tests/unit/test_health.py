"""Health checks without a container: run's flags, their merge with the image's HEALTHCHECK,
the daemon's limits, and every status transition of moby's ``handleProbeResult``."""

from __future__ import annotations

import pytest

from minidocker import config, flags, health, lifecycle
from minidocker.commands import listing, run
from minidocker.errors import UsageError

pytestmark = pytest.mark.nb09

MS = 1_000_000
S = health.SECOND


def parse(*argv: str) -> config.ContainerConfig:
    args = flags.parse(run.run_flags(), [*argv, "busybox"], "run")
    return run.config_from_flags(args, {}, "/")


# -- flags and merging --------------------------------------------------------------------------

def test_no_health_flag_leaves_the_image_in_charge():
    assert parse().healthcheck is None
    assert health.from_flags() is None
    assert health.from_flags(interval="0") is None  # zero values are no settings (Docker)


def test_health_flags_become_a_health_config_in_nanoseconds():
    hc = parse("--health-cmd", "curl -f localhost", "--health-interval", "1m30s",
               "--health-timeout", "500ms", "--health-start-period", "2s",
               "--health-start-interval", "1.5s", "--health-retries", "4").healthcheck
    assert hc == config.Healthcheck(test=["CMD-SHELL", "curl -f localhost"], interval=90 * S,
                                    timeout=500 * MS, start_period=2 * S,
                                    start_interval=1500 * MS, retries=4)
    again = config.ContainerConfig.from_dict(config.ContainerConfig("x", healthcheck=hc)
                                             .to_dict())
    assert again.healthcheck == hc  # it crosses the supervisor's socket unchanged


def test_no_healthcheck_is_test_none_and_conflicts_with_the_options():
    assert parse("--no-healthcheck").healthcheck == config.Healthcheck(test=["NONE"])
    with pytest.raises(UsageError, match="--no-healthcheck conflicts with --health-"):
        parse("--no-healthcheck", "--health-cmd", "true")


@pytest.mark.parametrize(("argv", "message"), [
    (["--health-interval", "-1s"], "--health-interval cannot be negative"),
    (["--health-retries", "-1"], "--health-retries cannot be negative"),
    (["--health-timeout", "1x"], 'time: invalid duration "1x"'),
    (["--health-retries", "three"], 'parsing "three": invalid syntax'),
])
def test_bad_health_flags_are_refused(argv: list[str], message: str):
    with pytest.raises(UsageError, match=message):
        parse(*argv)


def test_flags_override_the_images_fields_one_by_one():
    image = {"Test": ["CMD", "true"], "Interval": 5 * S, "Timeout": 3 * S, "Retries": 2}
    asked = health.from_flags(interval="1s")
    assert health.merge(asked, image) == {"Test": ["CMD", "true"], "Interval": S,
                                          "Timeout": 3 * S, "Retries": 2}
    assert health.merge(health.from_flags(cmd="false"), image)["Test"] == \
        ["CMD-SHELL", "false"]
    assert health.merge(None, image) == image
    assert health.merge(None, None) is None
    assert health.merge({"Test": ["NONE"]}, image)["Test"] == ["NONE"]  # --no-healthcheck


def test_durations_below_one_millisecond_are_refused_as_dockers_daemon_does():
    health.validate({"Interval": MS, "Timeout": 0})  # 0 inherits; 1 ms is the minimum
    for field in health.FIELDS:
        with pytest.raises(UsageError, match=f"{field} in Healthcheck cannot be less than 1ms"):
            health.validate({field: MS - 1})


def test_what_a_check_runs():
    assert health.probe_argv({"Test": ["CMD", "cat", "/x"]}) == ["cat", "/x"]
    assert health.probe_argv({"Test": ["CMD-SHELL", "a | b"]}) == ["/bin/sh", "-c", "a | b"]
    assert health.probe_argv({"Test": ["CMD-SHELL", "x"]}, ["/bin/bash", "-ec"]) == \
        ["/bin/bash", "-ec", "x"]  # the image's SHELL
    for off in (None, {}, {"Test": []}, {"Test": ["NONE"]}, {"Test": ["HTTP", "x"]}):
        assert health.probe_argv(off) is None


@pytest.mark.parametrize(("ns", "text"), [
    (0, "0s"), (30 * S, "30s"), (90 * S, "1m30s"), (3600 * S, "1h0m0s"), (500 * MS, "500ms"),
    (1500 * MS, "1.5s"), (1500, "1.5µs"), (7, "7ns")])
def test_durations_print_as_go_prints_them(ns: int, text: str):
    assert health.go_duration(ns) == text
    assert health.parse_duration(text, "x") == ns


# -- the monitor's rules ------------------------------------------------------------------------

def test_when_the_next_check_runs():
    cfg = {"Interval": 10 * S, "StartPeriod": 30 * S, "StartInterval": 2 * S}
    assert health.next_delay({}, 0, health.STARTING) == health.DEFAULT_INTERVAL
    assert health.next_delay(cfg, 0, health.STARTING) == 2 * S  # starting: the start interval
    assert health.next_delay(cfg, 0, health.HEALTHY) == 10 * S
    assert health.next_delay(cfg, 29 * S, health.STARTING) == S  # not past the period's end
    assert health.next_delay(cfg, 31 * S, health.STARTING) == 10 * S


def result(code: int) -> dict[str, object]:
    return {"Start": "", "End": "", "ExitCode": code, "Output": ""}


def test_a_success_makes_it_healthy_and_retries_failures_unhealthy():
    cfg = {"Retries": 2}
    h = health.initial(None)
    h = health.record(h, result(1), cfg, 0)
    assert (h["Status"], h["FailingStreak"]) == ("starting", 1)
    h = health.record(h, result(0), cfg, 0)
    assert (h["Status"], h["FailingStreak"]) == ("healthy", 0)
    h = health.record(h, result(1), cfg, 0)
    assert (h["Status"], h["FailingStreak"]) == ("healthy", 1)
    h = health.record(h, result(2), cfg, 0)  # any code but 0 is a failure
    assert (h["Status"], h["FailingStreak"]) == ("unhealthy", 2)
    h = health.record(h, result(-1), cfg, 0)  # a timeout too
    assert (h["Status"], h["FailingStreak"]) == ("unhealthy", 3)
    h = health.record(h, result(0), cfg, 0)
    assert (h["Status"], h["FailingStreak"]) == ("healthy", 0)


def test_failures_in_the_start_period_do_not_count_while_starting():
    cfg = {"Retries": 1, "StartPeriod": 10 * S}
    h = health.record(health.initial(None), result(1), cfg, 5 * S)
    assert (h["Status"], h["FailingStreak"]) == ("starting", 0)
    h = health.record(h, result(1), cfg, 11 * S)
    assert (h["Status"], h["FailingStreak"]) == ("unhealthy", 1)
    healthy = {"Status": "healthy", "FailingStreak": 0, "Log": []}
    assert health.record(healthy, result(1), cfg, 5 * S)["FailingStreak"] == 1


def test_the_log_keeps_the_last_five_and_a_restart_keeps_the_log():
    h = health.initial(None)
    for code in range(7):
        h = health.record(h, result(code), {}, 0)
    assert [r["ExitCode"] for r in h["Log"]] == [2, 3, 4, 5, 6]
    again = health.initial(h)
    assert (again["Status"], again["FailingStreak"], again["Log"]) == ("starting", 0, h["Log"])


def test_output_is_cut_at_4096_bytes_as_docker_cuts_it():
    assert health.output_text(b"ok\n", False) == "ok\n"
    assert health.output_text(b"x" * 5000, True) == "x" * 4096 + "..."
    assert health.timeout_output({"Timeout": 300 * MS}, "") == \
        "Health check exceeded timeout (300ms)"
    assert health.timeout_output({}, "half") == "Health check exceeded timeout (30s): half"


# -- ps and inspect -----------------------------------------------------------------------------

def test_ps_shows_the_health_next_to_the_uptime():
    now = lifecycle.parse_time("2024-01-01T00:00:04Z")
    record = {"Status": "running", "StartedAt": "2024-01-01T00:00:01Z"}
    assert lifecycle.status_text(record, "running", now) == "Up 3 seconds"
    for status, shown in (("starting", "(health: starting)"), ("healthy", "(healthy)"),
                          ("unhealthy", "(unhealthy)")):
        with_health = {**record, "Health": {"Status": status}}
        assert lifecycle.status_text(with_health, "running", now) == f"Up 3 seconds {shown}"
    stopped = {**record, "Status": "exited", "FinishedAt": "2024-01-01T00:00:02Z",
               "Health": {"Status": "healthy"}}
    assert "health" not in lifecycle.status_text(stopped, "exited", now)


def test_ps_filters_on_health():
    f = listing.parse_filters(["health=healthy", "health=none"])
    assert listing.matches(f, "abc", "web", "running", "healthy")
    assert listing.matches(f, "abc", "web", "running", "none")
    assert not listing.matches(f, "abc", "web", "running", "starting")
    assert not listing.matches({"health": ["starting"]}, "abc", "web", "running")
    with pytest.raises(lifecycle.LifecycleError, match="Unrecognised filter value for health"):
        listing.parse_filters(["health=sick"])
    assert health.status_of(None) == "none"
    assert health.status_of({"Status": ""}) == "unhealthy"  # Docker's reading of no status
