"""Summarise pytest's JUnit XML reports: counts per report, and time per file.

    python tools/junitsummary.py results/kernel.xml results/notebooks.xml

For each report: passed, failed, errors and skipped, and the wall time pytest measured. With
``--per-file``, the time each test file took, summed over its items: for nbval, one file is one
lesson and each item one cell, so this is the time per lesson. ``scripts/vm-test.sh`` prints it
for the VM lane's stages; docs/vm-lane.md records the figures.
"""

from __future__ import annotations

import argparse
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict


def summarise(path: str) -> tuple[dict[str, float], dict[str, float]]:
    """(counts and time of the report, {file: seconds})."""
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    counts: dict[str, float] = defaultdict(float)
    per_file: dict[str, float] = defaultdict(float)
    for suite in suites:
        counts["time"] += float(suite.get("time", 0))
        for case in suite.iter("testcase"):
            outcome = "passed"
            for child in case:
                if child.tag in ("failure", "error", "skipped"):
                    outcome = {"failure": "failed", "error": "errors"}.get(child.tag, child.tag)
            counts[outcome] += 1
            where = case.get("file") or case.get("classname", "?")
            per_file[where] += float(case.get("time", 0))
    return counts, per_file


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("reports", nargs="+")
    ap.add_argument("--per-file", action="store_true", help="time per test file (per lesson)")
    args = ap.parse_args(argv)
    for path in args.reports:
        try:
            counts, per_file = summarise(path)
        except (OSError, ET.ParseError) as exc:
            print(f"{path}: no report ({exc})")
            continue
        shown = ", ".join(f"{int(counts[k])} {k}" for k in ("passed", "failed", "errors",
                                                             "skipped") if counts[k])
        print(f"{path}: {shown or 'nothing ran'} in {counts['time']:.0f} s")
        if args.per_file:
            for where, secs in sorted(per_file.items()):
                print(f"  {secs:7.1f} s  {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
