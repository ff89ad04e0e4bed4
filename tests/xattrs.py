"""What xattrs the filesystem under a test offers, and a stand-in for one that lacks some.

tmpfs holds ``user.*`` xattrs only from Linux 6.6 (Debian 12's 6.1 refuses them with
EOPNOTSUPP), so a test that round-trips one first asks the filesystem it writes to, and tests
the fallback on every machine by making ``setxattr`` refuse a namespace, deterministically.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest


def supports(directory: Path, attr: str = "user.minidocker-probe") -> bool:
    """Whether files in ``directory`` can carry the xattr ``attr`` (so its namespace)."""
    probe = directory / f".xattr-probe-{os.getpid()}"
    probe.touch()
    try:
        os.setxattr(probe, attr, b"1")
    except OSError as exc:
        if exc.errno != errno.EOPNOTSUPP:
            raise
        return False
    finally:
        probe.unlink()
    return True


def refuse(monkeypatch: pytest.MonkeyPatch, *prefixes: str) -> None:
    """Make setxattr of names starting with ``prefixes`` fail as a filesystem without them does."""
    real = os.setxattr

    def setxattr(path: str | os.PathLike[str] | int, attr: str, value: bytes, flags: int = 0,
                 *, follow_symlinks: bool = True) -> None:
        if attr.startswith(prefixes):
            raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP), str(path))
        real(path, attr, value, flags, follow_symlinks=follow_symlinks)

    monkeypatch.setattr(os, "setxattr", setxattr)
