"""Resource commands, on running containers: ``update``, ``pause``, ``unpause``, ``stats``.

Each finds the container by name or ID (:meth:`minidocker.state.Layout.resolve`), its process
in ``state.json`` (``Pid``) and its cgroup (``Cgroup``), then reads or writes cgroup files
through :mod:`minidocker.cgroups`. Every container gets its cgroup at start, so each of these
works on any running container, with or without limits.

Notebook: ``02_cgroups``.
"""

from __future__ import annotations

import os
import sys
import time

from minidocker import cgroups, lifecycle
from minidocker.commands.run import resource_flags
from minidocker.commands.table import COMMANDS, parser
from minidocker.errors import ContainerError, ContainerNotFound, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from minidocker.state import Layout


def running(layout: Layout, ref: str) -> lifecycle.Container:
    """The container ``ref`` names (:class:`minidocker.lifecycle.Container`), if it runs or is
    paused. Its errors are this module's own (exit 125): no such container, not running."""
    try:
        c = lifecycle.Container(layout, ref)
    except lifecycle.LifecycleError as exc:
        found = str(exc).startswith("no such container")
        raise (ContainerNotFound if found else ContainerError)(str(exc)) from None
    # is_running checks the recorded start time too: a PID freed at the container's end may
    # be another process's by now, with another cgroup.
    if c.state.get("Status") not in ("running", "paused") or not c.running():
        raise ContainerError(f"container {c.id[:12]} is not running")
    return c


def cgroup_of(c: lifecycle.Container) -> cgroups.Cgroup:
    """Its cgroup: every container gets one at start."""
    found: cgroups.Cgroup | None = c.cgroup()
    if found is None:
        raise ContainerError(f"container {c.id[:12]} has no cgroup (it was started by an "
                             "older minidocker): restart it")
    return found


def _layout() -> Layout:
    from minidocker.state import Layout

    return Layout()


# -- update ---------------------------------------------------------------------------------

def cmd_update(argv: list[str]) -> int:
    from minidocker import flags

    table = resource_flags()
    args = flags.parse_command(table, argv, "update", COMMANDS["update"][1], ("CONTAINER",),
                               "CONTAINER [CONTAINER...]")
    if args is None:
        return 0
    given = cgroups.parse_flags(args)
    if not given.changed():
        raise UsageError("you must provide one or more flags when using this command")
    layout = _layout()
    for name in args.positional:
        container = running(layout, name)
        stored = cgroups.CgroupLimits.from_dict(container.config.get("resources"))
        merged, warnings = apply_update(cgroup_of(container), stored, given)
        for warning in warnings:
            print(f"WARNING: {warning}", file=sys.stderr)
        container.config["resources"] = merged.as_dict()
        lifecycle.write(container.dir, "config", container.config)
        print(name)
    return 0


def apply_update(cgroup: cgroups.Cgroup, stored: cgroups.CgroupLimits,
                 given: cgroups.CgroupLimits) -> tuple[cgroups.CgroupLimits, list[str]]:
    """Write ``update``'s new limits into a container's group: (all its limits now, Docker's
    warnings for what this kernel cannot honour and was dropped)."""
    merged, delta = merge_update(stored, given)
    warnings = cgroups.discard_unsupported(delta, cgroup=cgroup)
    if warnings:  # as in Docker, a discarded weight leaves the one recorded before
        merged.blkio_weight = stored.blkio_weight
    cgroup.set_limits(delta)
    return merged, warnings


def merge_update(stored: cgroups.CgroupLimits,
                 given: cgroups.CgroupLimits) -> tuple[cgroups.CgroupLimits, cgroups.CgroupLimits]:
    """``update``'s new limits on top of the container's: (all of them, what to write now).

    As in Docker, raising ``--memory`` past the swap limit set before needs ``--memory-swap``
    too; the memory pair is always written together, in the order the kernel accepts.
    """
    changed = given.changed()
    merged = cgroups.CgroupLimits(**{name: getattr(stored, name) for name, _, _ in cgroups.FIELDS})
    for name in changed:
        setattr(merged, name, getattr(given, name))
    if "nano_cpus" in changed:  # --cpus replaces a period/quota set before, and vice versa
        merged.cpu_period = merged.cpu_quota = 0
    elif {"cpu_period", "cpu_quota"} & set(changed):
        merged.nano_cpus = 0
    if "memory" in changed and "memory_swap" not in changed and \
            0 < stored.memory_swap < given.memory:
        raise UsageError("memory limit should be smaller than already set memoryswap limit, "
                         "update the memoryswap at the same time")
    cgroups.validate(merged, defaults=False)
    delta = cgroups.CgroupLimits(**{name: getattr(merged, name) for name in changed})
    if {"memory", "memory_swap"} & set(changed):
        delta.memory, delta.memory_swap = merged.memory, merged.memory_swap
    if "cpu_period" in changed or "cpu_quota" in changed:
        delta.cpu_period, delta.cpu_quota = merged.cpu_period, merged.cpu_quota or -1
    return merged, delta


# -- pause, unpause -------------------------------------------------------------------------

def cmd_pause(argv: list[str]) -> int:
    p = parser("minidocker pause", COMMANDS["pause"][1])
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    layout = _layout()
    for name in p.parse_args(argv).containers:
        container = running(layout, name)
        cgroup = cgroup_of(container)
        if cgroup.frozen():
            raise ContainerError(f"container {container.id[:12]} is already paused")
        cgroup.freeze()
        lifecycle.update_state(container.dir, Status="paused", Paused=True)
        print(name)
    return 0


def cmd_unpause(argv: list[str]) -> int:
    p = parser("minidocker unpause", COMMANDS["unpause"][1])
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    layout = _layout()
    for name in p.parse_args(argv).containers:
        container = running(layout, name)
        record = container.state.get("Cgroup")
        cgroup = cgroups.Cgroup.from_dict(record) if isinstance(record, dict) else None
        if cgroup is None or not cgroup.frozen():
            raise ContainerError(f"container {container.id[:12]} is not paused")
        cgroup.thaw()
        lifecycle.update_state(container.dir, Status="running", Paused=False)
        print(name)
    return 0


# -- stats ----------------------------------------------------------------------------------

def cmd_stats(argv: list[str]) -> int:
    p = parser("minidocker stats", COMMANDS["stats"][1])
    p.add_argument("containers", nargs="*", metavar="CONTAINER")
    p.add_argument("--no-stream", action="store_true",
                   help="print one sample and exit instead of refreshing")
    p.add_argument("--format", choices=("table", "json"), default="table",
                   help="table (default), or one JSON object per container and line")
    p.add_argument("--interval", type=float, default=1.0,
                   help="seconds between the two samples a CPU %% needs (default 1)")
    args = p.parse_args(argv)
    layout = _layout()
    names = args.containers or _running_names(layout)
    containers = [running(layout, name) for name in names]
    groups = [cgroup_of(c) for c in containers]
    before = [_sample(c, g) for c, g in zip(containers, groups, strict=True)]
    while True:
        time.sleep(args.interval)
        after = [_sample(c, g) for c, g in zip(containers, groups, strict=True)]
        rows = [row(c, b, a) for c, b, a in zip(containers, before, after, strict=True)]
        if not args.no_stream and args.format == "table" and sys.stdout.isatty():
            print("\033[2J\033[H", end="")
        print(format_rows(rows, args.format))
        sys.stdout.flush()
        if args.no_stream:
            return 0
        before = after


def _running_names(layout: Layout) -> list[str]:
    try:
        ids = sorted(os.listdir(layout.containers))
    except FileNotFoundError:
        return []
    names = []
    for cid in ids:
        try:
            running(layout, cid)
        except (ContainerError, OSError, ValueError):
            continue
        names.append(cid)
    return names


def _sample(container: lifecycle.Container, cgroup: cgroups.Cgroup) -> dict[str, Any]:
    sample: dict[str, Any] = dict(cgroup.stats())
    sample["t_ns"] = time.monotonic_ns()
    sample["net_rx_bytes"], sample["net_tx_bytes"] = _net_bytes(int(container.state["Pid"]))
    return sample


def _net_bytes(pid: int) -> tuple[int, int]:
    """Bytes received and sent on the container's interfaces but ``lo`` (its netns, seen
    through its first process's /proc/<pid>/net/dev)."""
    rx = tx = 0
    try:
        with open(f"/proc/{pid}/net/dev") as f:
            lines = f.read().splitlines()[2:]
    except OSError:
        return 0, 0
    for line in lines:
        name, _, fields = line.partition(":")
        if name.strip() != "lo":
            numbers = fields.split()
            rx += int(numbers[0])
            tx += int(numbers[8])
    return rx, tx


def _host_memory() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def row(container: lifecycle.Container, before: dict[str, Any],
        after: dict[str, Any]) -> dict[str, Any]:
    """One container's figures, as Docker's CLI computes them from two samples.

    CPU % is CPU time used over wall time passed (100% = one CPU busy). Memory usage leaves
    out the inactive page cache (``total_inactive_file``), which the kernel can drop at once;
    the limit is the host's memory when the group has none.
    """
    wall = max(after["t_ns"] - before["t_ns"], 1)
    cpu = max((after.get("cpu_usage_ns") or 0) - (before.get("cpu_usage_ns") or 0), 0)
    usage = max((after.get("memory_usage") or 0) - (after.get("memory_inactive_file") or 0), 0)
    limit = after.get("memory_limit") or _host_memory()
    return {
        "id": container.id, "name": container.name,
        "cpu_percent": 100.0 * cpu / wall,
        "memory_usage": usage, "memory_limit": limit,
        "memory_percent": 100.0 * usage / limit if limit else 0.0,
        "net_rx_bytes": after["net_rx_bytes"], "net_tx_bytes": after["net_tx_bytes"],
        "io_read_bytes": after.get("io_read_bytes") or 0,
        "io_write_bytes": after.get("io_write_bytes") or 0,
        "pids": after.get("pids_current") or 0,
        "raw": after,
    }


def binary_size(n: float) -> str:
    """Docker's units.BytesSize: ``1.5MiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.4g}{unit}"
        n /= 1024
    return f"{n}B"  # not reached


def decimal_size(n: float) -> str:
    """Docker's units.HumanSizeWithPrecision(n, 3): ``1.23kB``."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.3g}{unit}"
        n /= 1000
    return f"{n}B"  # not reached


def format_rows(rows: list[dict[str, Any]], fmt: str = "table") -> str:
    cells = [{
        "ID": r["id"][:12], "Name": r["name"], "CPUPerc": f"{r['cpu_percent']:.2f}%",
        "MemUsage": f"{binary_size(r['memory_usage'])} / {binary_size(r['memory_limit'])}",
        "MemPerc": f"{r['memory_percent']:.2f}%",
        "NetIO": f"{decimal_size(r['net_rx_bytes'])} / {decimal_size(r['net_tx_bytes'])}",
        "BlockIO": f"{decimal_size(r['io_read_bytes'])} / {decimal_size(r['io_write_bytes'])}",
        "PIDs": str(r["pids"]),
    } for r in rows]
    if fmt == "json":
        import json

        return "\n".join(json.dumps({**c, "Container": r["id"][:12], "Raw": {
            k: v for k, v in r.items() if k not in ("id", "name", "raw")} | r["raw"]})
            for c, r in zip(cells, rows, strict=True))
    header = {"ID": "CONTAINER ID", "Name": "NAME", "CPUPerc": "CPU %",
              "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O",
              "BlockIO": "BLOCK I/O", "PIDs": "PIDS"}
    widths = {k: max(len(v), *(len(c[k]) for c in cells)) for k, v in header.items()}
    return "\n".join("   ".join(line[k].ljust(widths[k]) for k in header).rstrip()
                     for line in [header, *cells])
