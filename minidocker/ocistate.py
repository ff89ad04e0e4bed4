"""``minidocker-runtime``'s state: ``<root>/<id>/state.json``, the runtime-spec's state.

Every command of the runtime (:mod:`minidocker.ociruntime`, :mod:`minidocker.ocicommands`)
reads and writes it here: ``ociVersion``, ``id``, ``status``
(``creating|created|running|stopped|paused``), ``pid``, ``bundle``, ``annotations``, and
``created`` (RFC 3339). A ``created``, ``running`` or ``paused`` container whose process is
gone reads ``stopped``, as in runc. See the OCI runtime-spec ``runtime.md``.
"""

from __future__ import annotations

import os

from minidocker import procfs, state
from minidocker.errors import MinidockerError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

STATUSES = ("creating", "created", "running", "stopped", "paused")
# runc's rule for an ID: it names a directory under --root, so no "/" and no "..".
ID_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-."


class RuntimeError_(MinidockerError):  # noqa: N801 -- not the builtin RuntimeError
    """A refusal of the runtime's: runc's words where a caller matches on them."""


def now() -> str:
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def check_id(cid: str) -> str:
    if not cid or cid in (".", "..") or not set(cid) <= set(ID_CHARS):
        raise RuntimeError_(f"invalid container id {cid!r}: want letters, digits and _+-.")
    return cid


def state_path(root: str, cid: str) -> str:
    return os.path.join(root, check_id(cid), "state.json")


def write_state(root: str, record: dict[str, Any]) -> None:
    """Write ``<root>/<id>/state.json`` whole (a temporary file renamed over it)."""
    path = state_path(root, record["id"])
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write(state.dumps(record))  # json.dump's text, without json (and re): ~6 ms
    os.replace(path + ".tmp", path)


def read_state(root: str, cid: str) -> dict[str, Any]:
    """The spec's state of ``cid``; its status as the process is now."""
    try:
        with open(state_path(root, cid), "rb") as f:
            record = state.loads(f.read().decode())
    except FileNotFoundError:
        raise RuntimeError_("container does not exist") from None  # runc's words: podman
    except ValueError as exc:  # and containerd match "does not exist"
        raise RuntimeError_(f"state of {cid}: not JSON: {exc}") from None
    pid = record.get("pid") or 0
    if record.get("status") in ("created", "running", "paused") and not procfs.process_alive(
            pid, record.get("start_time")):  # a zombie has stopped; a reused PID is not ours
        record["status"] = "stopped"
    if record.get("status") == "stopped":
        record["pid"] = 0
    return record


def list_states(root: str) -> list[dict[str, Any]]:
    try:
        names = sorted(os.listdir(root))
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        try:
            found.append(read_state(root, name))
        except RuntimeError_:  # not a container's directory, or one going away
            continue
    return found


