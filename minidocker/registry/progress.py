"""What ``pull`` and ``push`` say as they go: a line per layer, as ``docker pull`` prints them.

On a terminal, each layer has one line, redrawn in place while the layers download side by
side (rich's live display)::

    3f4ca61aafcd: Downloading [=============>                                    ]  2.88MB/10.5MB
    8a1d0c2e1b22: Download complete
    91c54e1d0b55: Verifying Checksum

and then ``Pull complete`` for each, once the image is in the store. Anywhere else (a pipe, a
log file, a notebook, ``run`` pulling a missing image onto stderr) each status is printed once,
on a line of its own, and the bytes are not counted out: what Docker prints when its output is
not a terminal. ``push`` says ``Preparing``, ``Pushing [==>  ]``, ``Pushed``, ``Layer already
exists`` or ``Mounted from <repo>``.

``rich`` is imported here, only for a terminal: ``run`` of an image already present never
imports it, nor does a pull into a pipe.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from rich.console import Console, RenderableType
    from rich.live import Live

BAR_WIDTH = 50  # docker's progress bar: [====>    ], 50 cells between the brackets


def short(digest: str) -> str:
    """A layer's name in the progress lines: 12 hex digits, as Docker shows it."""
    return digest.removeprefix("sha256:")[:12]


def human_size(size: float) -> str:
    """Docker's ``units.HumanSize``: decimal units, four significant digits (``10.49MB``)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.4g}{unit}"
        size /= 1000
    raise AssertionError("unreachable")


def bar(done: int, total: int) -> str:
    """``[=====>      ]``, as Docker's ``jsonmessage.JSONProgress`` draws it."""
    filled = min(BAR_WIDTH, BAR_WIDTH * done // total) if total > 0 else 0
    arrow = ">" if filled < BAR_WIDTH else ""
    return "[" + "=" * filled + arrow + " " * (BAR_WIDTH - filled - len(arrow)) + "]"


def progress_line(layer: str, status: str, done: int = 0, total: int = 0) -> str:
    if total <= 0:
        return f"{short(layer)}: {status}"
    return (f"{short(layer)}: {status} {bar(done, total)} {human_size(done):>8}/"
            f"{human_size(total)}")


class Lines:
    """Each status on a line of its own, through ``out``; byte counts are not shown."""

    def __init__(self, out: Callable[[str], None]) -> None:
        self.out = out

    def say(self, line: str) -> None:
        """A line about the whole image (``Pulling from``, ``Digest:``)."""
        self.out(line)

    def status(self, layer: str, status: str) -> None:
        self.out(f"{short(layer)}: {status}")

    def advance(self, layer: str, verb: str, done: int, total: int) -> None:
        """``done`` of ``total`` bytes of ``layer`` moved (``verb``: Downloading, Pushing)."""

    def close(self) -> None:
        pass

    def __enter__(self) -> Lines:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Bars(Lines):
    """One line per layer on the terminal, redrawn in place a few times a second."""

    def __init__(self, console: Console | None = None) -> None:
        from rich.console import Console
        from rich.live import Live

        self.console = console or Console(highlight=False)
        super().__init__(self.console.print)
        self._rows: dict[str, tuple[str, int, int]] = {}  # layer -> status, done, total
        self._lock = threading.Lock()
        self._live: Live = Live(console=self.console, get_renderable=self._render,
                                refresh_per_second=8, transient=False)
        self._live.start()

    def say(self, line: str) -> None:
        self.console.print(line, markup=False)

    def status(self, layer: str, status: str) -> None:
        with self._lock:
            self._rows[layer] = (status, 0, 0)

    def advance(self, layer: str, verb: str, done: int, total: int) -> None:
        with self._lock:
            self._rows[layer] = (verb, done, total)

    def _render(self) -> RenderableType:
        from rich.text import Text

        with self._lock:
            rows = list(self._rows.items())
        return Text("\n".join(progress_line(layer, *row) for layer, row in rows))

    def close(self) -> None:
        self._live.stop()  # draws the last state: every line's final status stays


def for_output(quiet: bool, out: Callable[[str], None]) -> Lines:
    """Bars on a terminal; plain lines through ``out`` elsewhere; nothing with ``quiet``."""
    import sys

    if quiet:
        return Lines(lambda line: None)
    if sys.stdout.isatty():
        return Bars()
    return Lines(out)
