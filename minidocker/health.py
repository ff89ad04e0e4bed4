"""Health checks: Docker's ``HEALTHCHECK``, decided here, run by the supervisor.

A container can run and still be useless: a web server stuck in a loop answers nothing, yet
its process is there. A health check is a command run *inside* the container, every so
often, whose exit code says how it is doing: 0 healthy, anything else a failure (Docker
reserves 1 for "unhealthy" and tells image authors not to use 2; every other code counts as
a failure too). ``ps`` shows the verdict next to the uptime (``Up 3 seconds (healthy)``), and
``inspect`` shows ``State.Health``: the ``Status`` (``starting``, ``healthy``, ``unhealthy``),
the ``FailingStreak``, and the last five results (``Log``: ``Start``, ``End``, ``ExitCode``,
``Output``).

**Where it is configured.** The image's config carries a ``Healthcheck`` (the builder writes
it from ``HEALTHCHECK``, see :mod:`minidocker.buildconfig`): ``Test`` (``["CMD", argv...]``,
``["CMD-SHELL", "text"]`` run by ``/bin/sh -c``, or ``["NONE"]``), ``Interval``,
``Timeout``, ``StartPeriod``, ``StartInterval`` in nanoseconds (Go's ``time.Duration``) and
``Retries``; 0 means "inherit". ``run``'s ``--health-*`` flags override field by field, and
``--no-healthcheck`` (``Test: ["NONE"]``) switches an image's off (:func:`from_flags`,
:func:`merge`). Durations below 1 ms are refused, as Docker's daemon refuses them
(:func:`validate`).

**The rules the monitor follows** (moby's ``daemon/health.go``; :func:`next_delay`,
:func:`record`):

- the first check runs one interval after the start, each next one an interval after the
  previous one ended;
- during the *start period*, checks run every *start interval* while the container is still
  ``starting``, and a failure there does not count; a success makes it ``healthy`` at once;
- a check that outlives its *timeout* is killed and recorded as failed (exit code -1, "Health
  check exceeded timeout (30s)");
- ``Retries`` failures in a row make it ``unhealthy``; one success makes it ``healthy`` again.

The check itself runs through the engine's ``exec`` (:func:`minidocker.engine.exec`, the
same path as ``minidocker exec``) in a process the supervisor forks and watches: see
:mod:`minidocker.supervisor_health`. Everything in this module is pure, so every rule above is
unit-tested without a container.

Notebook: ``09_lifecycle``. Reference: Docker's ``HEALTHCHECK`` (Dockerfile reference), the
``docker run --health-*`` options, and ``HealthConfig`` in the Engine API.
"""

from __future__ import annotations

from minidocker.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SECOND = 1_000_000_000  # Go's time.Second, in nanoseconds
MINIMUM_DURATION = 1_000_000  # 1 ms: Docker's containertypes.MinimumDuration
DEFAULT_INTERVAL = 30 * SECOND
DEFAULT_TIMEOUT = 30 * SECOND
DEFAULT_START_PERIOD = 0
DEFAULT_START_INTERVAL = 5 * SECOND
DEFAULT_RETRIES = 3
START_TIMEOUT = 30 * SECOND  # how long starting the check itself may take (not its timeout)
MAX_OUTPUT = 4096  # bytes of a check's output kept; more is cut, and "..." appended
MAX_LOG = 5  # results kept in State.Health.Log

STARTING, HEALTHY, UNHEALTHY, NONE = "starting", "healthy", "unhealthy", "none"
STATUSES = (STARTING, HEALTHY, UNHEALTHY, NONE)  # the values of ps -f health=
FIELDS = ("Interval", "Timeout", "StartPeriod", "StartInterval")  # the durations, in ns


# -- configuration --------------------------------------------------------------------------------

def parse_duration(text: str, flag: str) -> int:
    """Go's ``time.ParseDuration`` (``1m30s``, ``500ms``, ``0``), in nanoseconds; as
    pflag reads a duration flag (``--health-interval`` and friends)."""
    import re

    sign, body = (-1, text[1:]) if text[:1] == "-" else (1, text.removeprefix("+"))
    if body == "0":
        return 0
    units = {"ns": 1, "us": 1000, "µs": 1000, "μs": 1000, "ms": 1_000_000, "s": SECOND,
             "m": 60 * SECOND, "h": 3600 * SECOND}
    parts = re.findall(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)", body)
    if not body or "".join(n + u for n, u in parts) != body:
        raise UsageError(f'invalid argument "{text}" for "--{flag}" flag: '
                         f'time: invalid duration "{text}"')
    total = 0
    for number, unit in parts:
        whole, _, frac = number.partition(".")
        total += int(whole or 0) * units[unit] + \
            (int(frac) * units[unit] // 10 ** len(frac) if frac else 0)
    return sign * total


def from_flags(cmd: str | None = None, interval: str | None = None,
               timeout: str | None = None, start_period: str | None = None,
               start_interval: str | None = None, retries: str | None = None,
               disable: bool = False) -> dict[str, Any] | None:
    """``run``'s ``--health-*`` flags as Docker's client turns them into a ``HealthConfig``:
    None if none was given (the image's holds); ``{"Test": ["NONE"]}`` for
    ``--no-healthcheck``; else the fields given, a ``Test`` only with ``--health-cmd``."""
    flag_names = {"Interval": "health-interval", "Timeout": "health-timeout",
                  "StartPeriod": "health-start-period", "StartInterval": "health-start-interval"}
    texts = {"Interval": interval, "Timeout": timeout, "StartPeriod": start_period,
             "StartInterval": start_interval}
    config: dict[str, Any] = {"Test": ["CMD-SHELL", cmd] if cmd else []}
    for field, text in texts.items():
        config[field] = parse_duration(text, flag_names[field]) if text is not None else 0
    count = 0
    if retries is not None:
        try:
            count = int(retries)
        except ValueError:
            raise UsageError(f'invalid argument "{retries}" for "--health-retries" flag: '
                             f'strconv.ParseInt: parsing "{retries}": invalid syntax') from None
    config["Retries"] = count
    if not any(config.values()):  # as Docker's client: zero values are no settings
        return {"Test": ["NONE"]} if disable else None
    if disable:
        raise UsageError("--no-healthcheck conflicts with --health-* options")
    for field in FIELDS:
        if config[field] < 0:
            raise UsageError(f"--{flag_names[field]} cannot be negative")
    if count < 0:
        raise UsageError("--health-retries cannot be negative")
    return config


def merge(asked: dict[str, Any] | None, image: dict[str, Any] | None) -> dict[str, Any] | None:
    """The container's ``Healthcheck``: what ``run`` asked, each field it left at zero taken
    from the image's (Docker's ``merge`` of a container config with its image's)."""
    if asked is None:
        return dict(image) if image else None
    merged = dict(asked)
    image = image or {}
    if not merged.get("Test"):
        merged["Test"] = list(image.get("Test") or [])
    for field in (*FIELDS, "Retries"):
        if not merged.get(field):
            merged[field] = int(image.get(field) or 0)
    return {k: v for k, v in merged.items() if v}  # Docker's JSON omits zero fields


def validate(config: dict[str, Any] | None) -> None:
    """The daemon's rules (moby's ``validateHealthCheck``): a duration is 0 (inherit) or at
    least 1 ms; retries are not negative."""
    if not config:
        return
    for field in FIELDS:
        value = int(config.get(field) or 0)
        if value != 0 and value < MINIMUM_DURATION:
            raise UsageError(f"{field} in Healthcheck cannot be less than 1ms")
    if int(config.get("Retries") or 0) < 0:
        raise UsageError("Retries in Healthcheck cannot be negative")


def probe_argv(config: dict[str, Any] | None, shell: list[str] | None = None
               ) -> list[str] | None:
    """The command a check runs, or None when there is no check to run (no ``Test``,
    ``NONE``, or a type Docker does not know, which it only warns about). ``CMD-SHELL`` runs
    through the image's ``SHELL`` (``/bin/sh -c`` by default)."""
    test = list((config or {}).get("Test") or [])
    if not test:
        return None
    if test[0] == "CMD" and len(test) > 1:
        return test[1:]
    if test[0] == "CMD-SHELL" and len(test) > 1:
        return [*(shell or ["/bin/sh", "-c"]), *test[1:]]
    return None


def setting(config: dict[str, Any], field: str) -> int:
    """A field's value, Docker's default if it is 0 (nanoseconds; a count for Retries)."""
    defaults = {"Interval": DEFAULT_INTERVAL, "Timeout": DEFAULT_TIMEOUT,
                "StartPeriod": DEFAULT_START_PERIOD, "StartInterval": DEFAULT_START_INTERVAL,
                "Retries": DEFAULT_RETRIES}
    value = int(config.get(field) or 0)
    return value if value > 0 else defaults[field]


# -- the monitor's rules --------------------------------------------------------------------------

def next_delay(config: dict[str, Any], elapsed_ns: int, status: str) -> int:
    """Nanoseconds until the next check, ``elapsed_ns`` after the container started: the
    interval; during the start period, the start interval while still ``starting``, and never
    past the period's end (a check runs as it ends: moby#46747)."""
    interval = setting(config, "Interval")
    remaining = setting(config, "StartPeriod") - elapsed_ns
    if remaining <= 0:
        return interval
    wanted = setting(config, "StartInterval") if status == STARTING else interval
    return min(wanted, remaining)


def initial(previous: dict[str, Any] | None) -> dict[str, Any]:
    """``State.Health`` as a (re)start sets it: ``starting``, no failures; the log of earlier
    runs is kept, as Docker keeps it."""
    return {"Status": STARTING, "FailingStreak": 0,
            "Log": list((previous or {}).get("Log") or [])}


def record(health: dict[str, Any], result: dict[str, Any], config: dict[str, Any],
           since_start_ns: int) -> dict[str, Any]:
    """The new ``State.Health`` after one check's ``result``, which started
    ``since_start_ns`` after the container did (moby's ``handleProbeResult``)."""
    status = str(health.get("Status") or STARTING)
    streak = int(health.get("FailingStreak") or 0)
    if result.get("ExitCode") == 0:
        status, streak = HEALTHY, 0
    elif not (status == STARTING and since_start_ns < setting(config, "StartPeriod")):
        streak += 1  # in the start period, a failure while still starting is free
        if streak >= setting(config, "Retries"):
            status = UNHEALTHY
    new = {"Status": status, "FailingStreak": streak,
           "Log": [*(health.get("Log") or []), result][-MAX_LOG:]}
    return new


def output_text(data: bytes, truncated: bool) -> str:
    """A check's output as recorded: at most :data:`MAX_OUTPUT` bytes, "..." if more came."""
    return data[:MAX_OUTPUT].decode(errors="replace") + ("..." if truncated else "")


def timeout_output(config: dict[str, Any], output: str) -> str:
    """Docker's words for a check killed at its timeout."""
    said = f"Health check exceeded timeout ({go_duration(setting(config, 'Timeout'))})"
    return f"{said}: {output}" if output else said


def go_duration(ns: int) -> str:
    """Go's ``time.Duration.String()``: ``30s``, ``1m30s``, ``500ms``, ``1h0m0s``."""
    if ns == 0:
        return "0s"
    sign, ns = ("-" if ns < 0 else ""), abs(ns)

    def frac(value: int, unit: int) -> str:
        whole, rest = divmod(value, unit)
        digits = f"{rest:0{len(str(unit)) - 1}d}".rstrip("0") if rest else ""
        return f"{whole}.{digits}" if digits else str(whole)

    if ns < 1000:
        return f"{sign}{ns}ns"
    if ns < 1_000_000:
        return f"{sign}{frac(ns, 1000)}µs"
    if ns < SECOND:
        return f"{sign}{frac(ns, 1_000_000)}ms"
    hours, rest = divmod(ns, 3600 * SECOND)
    minutes, rest = divmod(rest, 60 * SECOND)
    text = f"{frac(rest, SECOND)}s"
    if hours:
        return f"{sign}{hours}h{minutes}m{text}"
    return f"{sign}{minutes}m{text}" if minutes else sign + text


# -- what ps and inspect show ---------------------------------------------------------------------

def status_of(health: dict[str, Any] | None) -> str:
    """The health status ``ps -f health=`` compares: ``none`` without a check."""
    if not health:
        return NONE
    return str(health.get("Status") or UNHEALTHY)  # Docker's: no status yet reads unhealthy


def ps_suffix(health: dict[str, Any] | None) -> str:
    """What ``ps`` adds to ``Up 3 seconds``: `` (healthy)``, `` (health: starting)``..."""
    if not health:
        return ""
    status = status_of(health)
    return f" (health: {status})" if status == STARTING else f" ({status})"
