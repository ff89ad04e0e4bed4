"""``RUN --mount``: what a build step sees besides its image, and never keeps.

BuildKit lets one RUN mount things for the length of the command only; none of it becomes
part of the layer the step makes:

- ``type=bind`` (the default): a file or directory of the build context, or of a stage or
  image (``from=``), at ``target``; ``source`` is the path in it (default its root).
  Read-only, unless ``rw`` (``readwrite``): then the step writes to a throwaway copy, so
  neither the context nor the image sees the writes;
- ``type=cache``: a directory kept by minidocker per ``id`` (default: the target) under
  ``<root>/build-mounts/``, that persists from build to build (compilers' and package
  managers' caches). Made empty (``mode``, ``uid``, ``gid``: 0755, 0, 0) or seeded from
  ``from``/``source`` the first time. ``sharing``: ``shared`` (the default: steps use it at
  once), ``locked`` (one step at a time: the others wait), ``private`` (a busy cache gives
  a step an empty one of its own);
- ``type=tmpfs``: memory at ``target`` (``size`` in bytes or with a unit).

``type=secret`` and ``type=ssh`` are refused: minidocker has no secrets store and forwards no
SSH agent.

No new kernel path: each mount becomes a :class:`minidocker.mounts.Mount` in the step's
:class:`~minidocker.config.ContainerConfig`, mounted by the same code as ``run -v`` and
``--tmpfs`` (:mod:`minidocker.container_mounts`). What a mount point adds to the image (a
directory made for a target the image lacks) is taken out of the layer
(:meth:`Prepared.remove_stubs`), as BuildKit's stub cleaner does.

**The cache key** of a RUN with mounts includes each mount's spec, and the content hash of
what a bind from the context shows (:func:`digests`): a changed file there runs the step
again. A cache mount's contents are never part of the key.

Notebook: ``07_dockerfiles``. Reference: the Dockerfile reference, ``RUN --mount``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re

from minidocker.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from minidocker.buildcontext import Context
    from minidocker.layers import Stack
    from minidocker.mounts import Mount

TYPES = ("bind", "cache", "tmpfs", "secret", "ssh")
SHARING = ("shared", "private", "locked")
# which keys each type takes (BuildKit's parseMount, less secret/ssh, which are refused)
KEYS = {"bind": {"from", "source", "target", "readonly", "rw"},
        "cache": {"from", "source", "target", "readonly", "rw", "id", "sharing", "mode", "uid",
                  "gid"},
        "tmpfs": {"target", "size"}}
ALIASES = {"src": "source", "dst": "target", "destination": "target", "ro": "readonly",
           "readwrite": "rw"}
REFUSED = {"secret": "build secrets are not supported: minidocker has no secrets store",
           "ssh": "SSH agent forwarding is not supported by minidocker"}
CACHE_DIR = "build-mounts"  # under the state root: one directory per cache id


class MountError(ValueError):
    """A ``--mount`` that cannot be read (the caller names the Dockerfile line)."""


class RunMount(Record):
    """One ``RUN --mount``, as written (``from_stage``: ``from=``; "" the build context)."""

    __slots__ = ("type", "target", "source", "from_stage", "readonly", "id", "sharing",
                 "mode", "uid", "gid", "size")

    def __init__(self, type: str = "bind", target: str = "", source: str = "",
                 from_stage: str = "", readonly: bool = True, id: str = "",
                 sharing: str = "shared", mode: int = 0o755, uid: int = 0, gid: int = 0,
                 size: int = 0) -> None:
        self.type = type
        self.target = target
        self.source = source
        self.from_stage = from_stage
        self.readonly = readonly
        self.id = id
        self.sharing = sharing
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.size = size


def parse_mount(text: str) -> RunMount:
    """One ``--mount`` value: ``key=value`` fields, comma separated (CSV, as BuildKit)."""
    import csv

    try:
        fields = next(csv.reader([text]))
    except (csv.Error, StopIteration):
        raise MountError(f"--mount: cannot read {text!r}") from None
    pairs = []
    kind = "bind"
    for field in fields:
        key, eq, value = field.partition("=")
        key = ALIASES.get(key.strip().lower(), key.strip().lower())
        if key == "type":
            kind = value.lower()
            continue
        pairs.append((key, eq, value, field))
    if kind not in TYPES:
        raise MountError(f"--mount: unsupported mount type {kind!r}: bind, cache or tmpfs")
    if kind in REFUSED:
        raise MountError(f"--mount=type={kind}: {REFUSED[kind]}")
    m = RunMount(kind, readonly=kind == "bind")
    for key, eq, value, field in pairs:
        if key not in KEYS[kind]:
            raise MountError(f"--mount: unexpected key {key!r} in {field!r} for type={kind}")
        if key in ("readonly", "rw"):
            on = _bool(key, value, bool(eq))
            m.readonly = on if key == "readonly" else not on
            continue
        if not eq:
            raise MountError(f"--mount: {field!r} needs a value (key=value)")
        if key in ("mode", "uid", "gid", "size"):
            setattr(m, key, _number(key, value))
        elif key == "sharing":
            if value.lower() not in SHARING:
                raise MountError(f"--mount: unsupported sharing value {value!r}: "
                                 "shared, private or locked")
            m.sharing = value.lower()
        elif key == "from":
            m.from_stage = value
        else:
            setattr(m, key, value)
    if not m.target:
        raise MountError(f"--mount=type={kind}: a target is required")
    if kind == "cache" and not m.id:
        m.id = os.path.normpath(m.target)
    return m


def mount_stages(ins: object) -> list[str]:
    """The ``from=`` of a RUN's mounts (a stage the build needs, or an image)."""
    found = []
    for text in getattr(ins, "mounts", None) or []:
        with contextlib.suppress(MountError):
            m = parse_mount(text)
            if m.from_stage and m.type in ("bind", "cache"):
                found.append(m.from_stage)
    return found


def _bool(key: str, value: str, has_value: bool) -> bool:
    if not has_value or value.lower() in ("true", "1"):
        return True
    if value.lower() in ("false", "0"):
        return False
    raise MountError(f"--mount: invalid value for {key}: {value!r} (true or false)")


def _number(key: str, value: str) -> int:
    if key == "mode":
        if not re.fullmatch(r"0?[0-7]{1,4}", value):
            raise MountError(f"--mount: invalid mode {value!r}: an octal mode such as 0755")
        return int(value, 8)
    if key == "size":
        match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?", value, re.IGNORECASE)
        if not match:
            raise MountError(f"--mount: invalid size {value!r}")
        return int(float(match[1]) * 1024 ** " kmgtp".index(match[2].lower() or " "))
    if not value.isdigit():
        raise MountError(f"--mount: invalid {key} {value!r}: a number")
    return int(value)


def target_in(m: RunMount, workdir: str) -> str:
    """The mount's target in the container: a relative one is under WORKDIR, as BuildKit."""
    import posixpath

    return posixpath.normpath(posixpath.join("/", workdir or "/", m.target))


def check_context_source(m: RunMount, context: Context | None, line: int) -> None:
    """A bind from the build context names something there (checked before anything runs,
    as a COPY source is)."""
    from minidocker import dockerfile as df
    from minidocker.buildcontext import BuildContextError

    if m.type != "bind" or m.from_stage:
        return
    if context is None:
        raise df.error(line, "--mount: a bind from the build context, but there is none "
                             "(the Dockerfile came from STDIN)", "RUN")
    try:
        context.resolve(m.source or ".", "RUN --mount")
    except BuildContextError as exc:
        raise df.error(line, str(exc), "RUN") from None


def digests(texts: list[str], context: Context | None,
            image_id: Callable[[str], str]) -> list[dict[str, object]]:
    """What the cache key adds for these mounts: each spec, with the content hash of a bind
    from the context, or the ID of the stage or image a bind or cache seeds from."""
    from minidocker.buildcontext import content_hash

    found: list[dict[str, object]] = []
    for text in texts:
        m = parse_mount(text)
        entry: dict[str, object] = {"spec": m.to_dict()}
        if m.type == "bind" and not m.from_stage and context is not None:
            rel = context.resolve(m.source or ".", "RUN --mount")[0]
            entry["content"] = content_hash(context.entries(rel))
        elif m.from_stage:
            entry["content"] = image_id(m.from_stage)
        found.append(entry)
    return found


# -- taking them for one step ------------------------------------------------------------------

class Prepared:
    """The step's mounts (for its ContainerConfig) and the mount points to take out of its
    layer: ``(target, the first directory on its way the image lacked)``."""

    def __init__(self) -> None:
        self.mounts: list[Mount] = []
        self.stubs: list[tuple[str, str]] = []

    def remove_stubs(self, top: str) -> None:
        """Take out of the container's own files (``top``) each mount point the start made
        for a target the image lacked, and the directories made on its way, if still empty."""
        for target, first in self.stubs:
            path = os.path.join(top, target)
            stop = os.path.join(top, first)
            while True:
                try:
                    if os.path.isdir(path) and not os.path.islink(path):
                        os.rmdir(path)
                    elif os.path.isfile(path) and os.path.getsize(path) == 0:
                        os.unlink(path)
                except OSError:
                    break  # not empty: the step wrote there, and that is its change
                if path == stop:
                    break
                path = os.path.dirname(path)


@contextlib.contextmanager
def prepared(texts: list[str], *, workdir: str, root: str, tmp_dir: str,
             image: Stack, context: Context | None,
             stack_of: Callable[[str], Stack]) -> Iterator[Prepared]:
    """The mounts ``texts`` asked for, ready for the step: throwaway copies made, caches
    made (and locked, with ``sharing=locked``); all given back when the step is done,
    whatever happened."""
    from minidocker import mounts

    result = Prepared()
    with contextlib.ExitStack() as undo:
        def scratch(label: str) -> str:
            import tempfile

            from minidocker.state import remove_tree

            where = tempfile.mkdtemp(prefix=f"build-{os.getpid()}-{label}-", dir=tmp_dir)
            undo.callback(remove_tree, where)
            return where

        for text in texts:
            m = parse_mount(text)
            target = target_in(m, workdir)
            if m.type == "tmpfs":
                options = "exec" + (f",size={m.size}" if m.size else "")
                result.mounts.append(mounts.Mount("", target, type="tmpfs",
                                                  tmpfs_options=options))
            elif m.type == "cache":
                source = _cache(m, root, undo, scratch, stack_of)
                result.mounts.append(mounts.Mount(source, target, m.readonly, "bind",
                                                  mounts.DEFAULT_PROPAGATION))
            else:
                source = _bind_source(m, context, scratch, stack_of)
                result.mounts.append(mounts.Mount(source, target, m.readonly, "bind",
                                                  mounts.DEFAULT_PROPAGATION))
            first = _first_missing(image, target.lstrip("/"))
            if first is not None:
                result.stubs.append((target.lstrip("/"), first))
        yield result


def _first_missing(image: Stack, rel: str) -> str | None:
    """The first directory (or the target itself) on the way to ``rel`` the image lacks."""
    parts = rel.split("/")
    for i in range(1, len(parts) + 1):
        here = "/".join(parts[:i])
        if image.lookup(here) is None:
            return here
    return None


def _bind_source(m: RunMount, context: Context | None, scratch: Callable[[str], str],
                 stack_of: Callable[[str], Stack]) -> str:
    """The host path a bind shows: the context's own file (read-only, when nothing in it is
    left out by .dockerignore), else a copy (a stage's or an image's files, or ``rw``)."""
    if m.from_stage:
        entries = _stack_entries(stack_of(m.from_stage), m.source, m.from_stage)
    else:
        if context is None:
            raise MountError("--mount: a bind from the build context, but there is none")
        rel = context.resolve(m.source or ".", "RUN --mount")[0]
        if m.readonly and not context.ignore.rules:
            return context.path(rel)
        entries = list(context.entries(rel))
    where = os.path.join(scratch("bind"), "src")
    copy_tree(entries, where)
    return where


def _stack_entries(stack: Stack, source: str, where: str
                   ) -> list[tuple[str, str, os.stat_result]]:
    from minidocker.buildfiles import stack_sources

    found = stack_sources(stack, [source or "/"], "RUN --mount", f"stage or image {where}")
    return found[0].entries


def _cache(m: RunMount, root: str, undo: contextlib.ExitStack,
           scratch: Callable[[str], str], stack_of: Callable[[str], Stack]) -> str:
    """The cache's directory, made (and seeded) the first time; locked as ``sharing`` says."""
    import fcntl

    base = os.path.join(root, CACHE_DIR, hashlib.sha256(m.id.encode()).hexdigest()[:32])
    os.makedirs(base, mode=0o700, exist_ok=True)
    lock = os.open(os.path.join(base, "lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    undo.callback(os.close, lock)
    data = os.path.join(base, "data")
    fcntl.flock(lock, fcntl.LOCK_EX)  # one maker at a time
    try:
        if not os.path.isdir(data):
            with open(os.path.join(base, "id"), "w") as f:
                f.write(m.id + "\n")
            _make_cache(m, data + ".new", stack_of)
            os.replace(data + ".new", data)
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
    if m.sharing == "locked":
        fcntl.flock(lock, fcntl.LOCK_EX)  # given back when the lock's fd is closed
    elif m.sharing == "private":
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # another step has it: this one gets its own, empty
            own = os.path.join(scratch("cache"), "data")
            _make_cache(m, own, stack_of)
            return own
    return data


def _make_cache(m: RunMount, where: str, stack_of: Callable[[str], Stack]) -> None:
    from minidocker.state import remove_tree

    if os.path.lexists(where):
        remove_tree(where)  # a maker killed half way
    if m.from_stage:
        copy_tree(_stack_entries(stack_of(m.from_stage), m.source, m.from_stage), where)
    else:
        os.mkdir(where)
    os.chmod(where, m.mode)
    os.chown(where, m.uid, m.gid)


def copy_tree(entries: list[tuple[str, str, os.stat_result]], dest: str) -> None:
    """``entries`` (``(path below, host path, lstat)``, the top first) copied to ``dest``,
    keeping modes and owners; symlinks stay links; devices and sockets are left out."""
    import shutil
    import stat

    for below, host, st in entries:
        path = os.path.join(dest, below) if below else dest
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            os.mkdir(path)
        elif stat.S_ISLNK(mode):
            os.symlink(os.readlink(host), path)
        elif stat.S_ISREG(mode):
            shutil.copyfile(host, path)
        else:
            continue
        os.lchown(path, st.st_uid, st.st_gid)
        if not stat.S_ISLNK(mode):
            os.chmod(path, stat.S_IMODE(mode))


def script_mounts(script: tuple[str, str] | None, target: str,
                  tmpdir: Callable[[], str]) -> list[Mount]:
    """``RUN <<EOF`` whose body starts with ``#!`` (``script``: its name and text): that file
    (0755) in a directory mounted read-only at ``target`` (``/dev/pipes``, on the container's
    /dev tmpfs): never in a layer, as BuildKit does."""
    import tempfile

    from minidocker.mounts import Mount

    if script is None:
        return []
    pipes = tempfile.mkdtemp(dir=tmpdir())
    os.chmod(pipes, 0o755)  # a RUN as USER nobody goes through it too
    with open(os.path.join(pipes, script[0]), "x") as f:
        f.write(script[1])
    os.chmod(f.name, 0o755)
    return [Mount(pipes, target, readonly=True)]
