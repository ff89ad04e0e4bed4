"""State on disk: where containers live, their IDs and names.

Everything minidocker keeps is under one root (``--root``, ``$MINIDOCKER_ROOT``, default
``/var/lib/minidocker``), so a test or a notebook can use a throwaway one::

    ROOT/images/            the OCI image layout (see :mod:`minidocker.store`)
    ROOT/layers/<chainid>/  unpacked image layers, the overlay's lower dirs
    ROOT/containers/<id>/   one directory per container:
        config.json         what was asked for (image, command, env, ...)
        hostconfig.json     what the host was asked for (restart policy, --rm, stop signal)
        state.json          what happened (status, pid + its start time, exit code, times);
                            see minidocker.lifecycle, which also explains the lock (flock(2)
                            on this directory) that every read-modify-write holds
        <id>-json.log       a detached container's output, Docker's json-file format
        upper/ work/        the container's writable overlay layer and overlayfs's scratch dir
        merged/             where the overlay is mounted (inside the container's mount ns only)
        hostname hosts resolv.conf   bind-mounted over the image's /etc files
    ROOT/names/<name>       a symlink to the container's ID: creating it is the atomic "claim"
                            of a name, so two racing ``run --name x`` cannot both win.

IDs are 64 hex digits from the kernel's random pool, shown shortened to 12 as Docker does.
Every JSON file is written to a temporary file and renamed over the old one, so a reader never
sees half a record.
"""

from __future__ import annotations

import os

from minidocker.errors import ContainerNotFound, NameConflict, UsageError
from minidocker.procfs import process_start_time  # noqa: F401 -- its old home, kept for callers

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DEFAULT_ROOT = "/var/lib/minidocker"
NAME_PATTERN = r"[a-zA-Z0-9][a-zA-Z0-9_.-]+"  # Docker's; compiled only when a name is given

_ADJECTIVES = ("admiring", "brave", "clever", "dazzling", "eager", "focused", "gentle",
               "happy", "jolly", "keen", "lucid", "modest", "nifty", "quirky", "serene", "vivid")
_SCIENTISTS = ("allen", "babbage", "curie", "dijkstra", "euler", "hopper", "kernighan",
               "lamport", "liskov", "lovelace", "noether", "ritchie", "shannon", "thompson",
               "torvalds", "turing")


SUPERVISOR_DIR = "supervisor"  # ROOT/supervisor: its socket, pid file and log


def root_dir() -> str:
    return os.environ.get("MINIDOCKER_ROOT") or DEFAULT_ROOT


def new_id() -> str:
    return os.urandom(32).hex()


def random_name(names_dir: str | None = None) -> str:
    """A Docker-style name (``jolly_turing3``), one not taken in ``names_dir`` when given.

    Only 2,560 names exist, so a state root with a few containers would soon draw a taken
    one, and the start would fail on a name nobody asked for. (Two starts racing for the same
    free name still meet at the atomic claim, as with --name.)
    """
    for _ in range(64):
        a, b, n = os.urandom(3)
        name = f"{_ADJECTIVES[a % len(_ADJECTIVES)]}_{_SCIENTISTS[b % len(_SCIENTISTS)]}{n % 10}"
        if names_dir is None or not os.path.lexists(os.path.join(names_dir, name)):
            return name
    return f"{name}_{os.urandom(3).hex()}"  # a crowded root: still a valid, unused name


def validate_name(name: str) -> str:
    import re

    name = name.removeprefix("/")
    if not re.fullmatch(NAME_PATTERN, name):
        raise UsageError(f"invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] "
                         "are allowed")
    return name


def dumps(value: object) -> str:
    """JSON text for the plain records minidocker keeps (dicts, lists, str, int, bool, None).

    The ``json`` module would do, but importing it (and the ``re`` module it pulls in) costs
    ~5 ms of every ``minidocker run``; strings go through the same C escaper it uses.
    """
    from _json import encode_basestring_ascii as quote

    if isinstance(value, str):
        return str(quote(value))
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{quote(str(k))}: {dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(dumps(v) for v in value) + "]"
    raise TypeError(f"cannot record {type(value).__name__} as JSON")


def write_json(path: str, data: object) -> None:
    """Replace ``path`` atomically: a reader sees the old record or the new one, never half."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(dumps(data) + "\n")
    os.replace(tmp, path)


def read_json(path: str) -> dict[str, object]:
    """A record, through :func:`loads`: ``rm`` (and a runtime's ``delete``) read config.json,
    and importing ``json`` would cost them ~5 ms."""
    with open(path, "rb") as f:
        return loads(f.read().decode())


class _JSONContext:
    """What the C scanner of the ``json`` package needs, without importing the package (and
    the ``re`` module it pulls in, ~5 ms): ``ps`` and ``run -d`` read JSON on every call."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = float
    memo: dict[str, str] = {}


_scanner: Any = None


def loads(text: str) -> Any:
    """``json.loads`` for the records minidocker writes, through the same C scanner."""
    global _scanner
    if _scanner is None:
        import _json

        _scanner = _json.make_scanner(_JSONContext())  # type: ignore[arg-type]
    start = len(text) - len(text.lstrip())
    try:
        value, end = _scanner(text, start)
    except (StopIteration, SystemError):
        # Not JSON. Past the first character the scanner raises json's JSONDecodeError, which
        # it finds only once json.decoder is loaded (else a SystemError): json says where.
        import json

        json.loads(text)
        raise ValueError(f"not JSON: {text[:40]!r}") from None
    if text[end:].strip():
        raise ValueError(f"extra data after JSON: {text[end:end + 40]!r}")
    return value


def read_state(cdir: str) -> dict[str, Any]:
    """A container's ``state.json`` ({} before its first start), without importing json."""
    try:
        with open(os.path.join(cdir, "state.json"), "rb") as f:
            return loads(f.read().decode())
    except FileNotFoundError:
        return {}


_held: dict[str, list[int]] = {}  # container dir -> [fd, depth]: locks this process holds


def lock_container(cdir: str) -> bool:
    """Take the container's own lock (flock(2) on its directory), waiting for its holder.

    Returns False if the container is gone, or was renamed away to be removed while we waited:
    the caller must then leave it alone. Re-entrant within a process; each True needs one
    :func:`unlock_container`. (See :mod:`minidocker.lifecycle` for who takes it and why.)
    The directory itself is locked, not a file in it: nothing to create, so taking the lock
    never changes what is stored.
    """
    held = _held.get(cdir)
    if held is not None:
        held[1] += 1
        return True
    import fcntl

    try:
        fd = os.open(cdir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return False
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        same = os.stat(cdir).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        same = False
    if not same:
        os.close(fd)
        return False
    _held[cdir] = [fd, 1]
    return True


def unlock_container(cdir: str) -> None:
    held = _held[cdir]
    held[1] -= 1
    if held[1] == 0:
        del _held[cdir]
        os.close(held[0])  # closing the last fd of the open file releases the flock


class Layout:
    """Paths under one state root."""

    def __init__(self, root: str | None = None) -> None:
        self.root = root or root_dir()
        self.containers = os.path.join(self.root, "containers")
        self.names = os.path.join(self.root, "names")

    def container(self, cid: str, *parts: str) -> str:
        return os.path.join(self.containers, cid, *parts)

    def claim_name(self, name: str, cid: str) -> None:
        """Reserve ``name`` for ``cid``; exactly one of two racing claims succeeds.

        A link left pointing at a container that no longer exists (a removal that died
        half-way) is taken over: unlinking it is a race only one claimer can win too.
        """
        os.makedirs(self.names, exist_ok=True)
        link = os.path.join(self.names, name)
        for _ in range(3):
            try:
                os.symlink(cid, link)
                return
            except FileExistsError:
                pass
            try:
                owner = os.readlink(link)
            except FileNotFoundError:  # released while we looked: try again
                continue
            if os.path.isdir(self.container(owner)):
                raise NameConflict(f'conflict: the container name "/{name}" is already in use '
                                   f'by container "{owner}"')
            self.release_name(name, owner)  # dangling: its container is gone
        raise NameConflict(f'conflict: the container name "/{name}" is already in use')

    def release_name(self, name: str, cid: str) -> None:
        link = os.path.join(self.names, name)
        try:
            if os.readlink(link) == cid:
                os.unlink(link)
        except FileNotFoundError:
            pass

    def resolve(self, name_or_id: str) -> str:
        """A container ID from a name, a full ID, or an unambiguous ID prefix."""
        try:
            return os.readlink(os.path.join(self.names, name_or_id.removeprefix("/")))
        except (FileNotFoundError, OSError):
            pass
        try:
            ids = os.listdir(self.containers)
        except FileNotFoundError:
            ids = []
        matches = [cid for cid in ids if cid.startswith(name_or_id.lower())] if name_or_id else []
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise UsageError(f"multiple containers match {name_or_id!r}: "
                             + ", ".join(sorted(m[:12] for m in matches)))
        raise ContainerNotFound(f"no such container: {name_or_id}")

    def remove_container(self, cid: str, name: str | None) -> None:
        """Delete everything recorded for ``cid``. Idempotent."""
        if name:
            self.release_name(name, cid)
        remove_tree(self.container(cid))


def remove_tree(path: str) -> None:
    """``rm -rf path`` without following symlinks; a missing path is fine.

    (shutil.rmtree does the same, but importing shutil costs ~2 ms of ``run --rm``.) The
    container's upper dir may hold anything the container made, including whiteout devices
    and directories it chmod'ed to 000: as root, neither stops us.
    """
    try:
        entries = list(os.scandir(path))
    except FileNotFoundError:
        return
    except NotADirectoryError:
        os.unlink(path)
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            remove_tree(entry.path)
        else:
            try:  # noqa: SIM105 -- contextlib costs start-up time
                os.unlink(entry.path)
            except FileNotFoundError:
                pass
    try:  # noqa: SIM105
        os.rmdir(path)
    except FileNotFoundError:
        pass
