"""The OCI image layout: blobs named by their digest, ``index.json``, and the locks around them.

The bottom of the image store (:mod:`minidocker.store` stands on it; :mod:`minidocker.layerstore`
between them adds the unpacked layers)::

    images/                  an OCI image layout (image-spec ``image-layout.md``), readable by
      oci-layout             skopeo, umoci and plain ``json.load``
      index.json             one descriptor per image: manifest digest + name annotations
      blobs/sha256/<hex>     manifests, configs and layer tars, named by their sha256
      .lock                  flock(2)ed exclusively for every read-modify-write of index.json
      .gc-lock               shared by every writer, exclusive for the garbage collector
    tmp/                     staging: same filesystem, so rename(2) can publish atomically

**Nothing half-written is visible.** A blob is written to ``tmp/``, fsynced, checked against its
digest and renamed into ``blobs/``; ``index.json`` is replaced by rename under an exclusive
``flock(2)`` on ``images/.lock``. Readers take no lock: rename(2) gives them the old file or the
new one.

**Garbage is collected under a lock.** Every writer holds a shared flock(2) on
``images/.gc-lock`` from its first staged byte to its index entry (:meth:`OciLayout.writing`);
``rmi`` and ``image prune`` take it exclusively (:meth:`OciLayout.collecting`), so they never
delete a blob that a ``load`` has published but not yet named, and everything left in ``tmp/``
then belongs to a writer that died (``kill -9``) and can go.

Notebook: ``05_images``. Man pages: rename(2), flock(2), fsync(2).
"""

from __future__ import annotations

import io
import json
import os
import re
from contextlib import contextmanager
from pathlib import Path

from minidocker import layers
from minidocker.errors import CorruptBlob, ImageError
from minidocker.ocispec import LAYOUT_VERSION, MEDIA_INDEX

# Not `from typing import TYPE_CHECKING`: importing typing alone costs ~2 ms of the start-up
# budget. Type checkers treat any name TYPE_CHECKING as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any, BinaryIO

    from minidocker.layers import Readable

DEFAULT_ROOT = Path("/var/lib/minidocker")

DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


class OciLayout:
    """The blobs and the index under ``root``; see the module docstring for the layout."""

    def __init__(self, root: Path | str = DEFAULT_ROOT) -> None:
        self.root = Path(root)
        self.images_dir = self.root / "images"  # the OCI image layout
        self.blobs_dir = self.images_dir / "blobs" / "sha256"
        self.layers_dir = self.root / "layers"
        self.tmp_dir = self.root / "tmp"
        self._layout_ready = False
        self._writers = 0  # depth of nested _writing() blocks in this process
        self._gc_fd: int | None = None
        self._whiteouts: str | None = None

    # -- blobs ----------------------------------------------------------------------------------

    def blob_path(self, digest: str) -> Path:
        if not DIGEST.fullmatch(digest):
            # Digests come from manifests, which may come from elsewhere: never a path.
            raise ImageError(f"invalid digest '{digest}': want sha256: and 64 lowercase hex")
        return self.blobs_dir / digest.removeprefix("sha256:")

    def open_blob(self, digest: str) -> BinaryIO:
        """The blob's content as a stream (not verified: for large blobs, hash as you read)."""
        try:
            return open(self.blob_path(digest), "rb")
        except FileNotFoundError:
            raise CorruptBlob(f"blob {digest} is missing from {self.blobs_dir}") from None

    def read_blob(self, digest: str, verify: bool = True) -> bytes:
        with self.open_blob(digest) as f:
            data = f.read()
        if verify and layers.sha256_digest(data) != digest:
            raise CorruptBlob(f"blob {digest} does not match its digest (changed on disk)")
        return data

    def write_blob(self, data: bytes | Readable, media_type: str | None = None,
                   digest: str | None = None) -> dict[str, Any]:
        """Store a blob; return its descriptor. If ``digest`` is given the content must match."""
        self._ensure_layout()
        with self.writing():
            return self._write_blob(data, media_type, digest)

    def _write_blob(self, data: bytes | Readable, media_type: str | None,
                    digest: str | None) -> dict[str, Any]:
        staged, actual, size = self._stage_blob(io.BytesIO(data) if isinstance(data, bytes)
                                                else data)
        try:
            if digest is not None and actual != digest:
                raise CorruptBlob(f"blob {digest} does not match its content ({actual})")
            self._publish_blob(staged, actual)
        except BaseException:
            staged.unlink(missing_ok=True)
            raise
        descriptor: dict[str, Any] = {"mediaType": media_type} if media_type else {}
        return {**descriptor, "digest": actual, "size": size}

    def stage_file(self, src: Readable) -> tuple[Path, str, int]:
        """Copy ``src`` into ``tmp/`` (fsynced): its path, sha256 digest and size. Call inside
        :meth:`writing`; publish it with :meth:`publish_blob`, or unlink it."""
        if not self._writers:
            raise RuntimeError("stage_file() outside writing(): a collector could take it")
        return self._stage_blob(src)

    def publish_blob(self, staged: Path, digest: str) -> None:
        """Rename a file staged by :meth:`stage_file` (whose digest is ``digest``) into blobs/."""
        self._publish_blob(staged, digest)

    def _stage_blob(self, src: Readable) -> tuple[Path, str, int]:
        """Copy ``src`` to a new file in ``tmp/``, fsynced; return it, its digest and size."""
        import tempfile

        fd, name = tempfile.mkstemp(prefix=f"blob-{os.getpid()}-", dir=self.tmp_dir)
        staged = Path(name)
        try:
            with open(fd, "wb") as out:
                digest, size = layers.copy_hashed(src, out)
                out.flush()
                os.fsync(out.fileno())  # the data is on disk before its name is
        except BaseException:
            staged.unlink()
            raise
        return staged, digest, size

    def _publish_blob(self, staged: Path, digest: str) -> None:
        # rename(2) over an existing blob is harmless (same name, same bytes), and repairs one
        # that was damaged on disk.
        os.rename(staged, self.blob_path(digest))
        fsync_dir(self.blobs_dir)

    def _replace_file(self, path: Path, data: bytes) -> None:
        """Write ``data`` to ``path`` atomically: temp file, fsync, rename, fsync directory."""
        staged, _, _ = self._stage_blob(io.BytesIO(data))
        try:
            os.rename(staged, path)
        except BaseException:
            staged.unlink(missing_ok=True)
            raise
        fsync_dir(path.parent)

    # -- the layout and its index ---------------------------------------------------------------

    def _ensure_layout(self) -> None:
        if self._layout_ready:
            return
        self._make_dirs()
        layout = self.images_dir / "oci-layout"
        index = self.images_dir / "index.json"
        if not (layout.exists() and index.exists()):
            with self.writing():  # staged in tmp/: a collector must not take them
                if not layout.exists():
                    self._replace_file(layout,
                                       json_bytes({"imageLayoutVersion": LAYOUT_VERSION}))
                with self._index_lock():
                    if not index.exists():
                        self._write_index(empty_index())
        self._layout_ready = True

    def _make_dirs(self) -> None:
        # 0700: layers hold the setuid binaries of images; a world-traversable store lets any
        # host user run them as root (CVE-2021-41091 in Docker). The root itself is shared
        # with container state, so its mode is not ours to choose.
        self.root.mkdir(parents=True, exist_ok=True)
        for path in (self.images_dir, self.blobs_dir.parent, self.blobs_dir, self.layers_dir,
                     self.tmp_dir):
            path.mkdir(mode=0o700, exist_ok=True)
        for lock in (self.images_dir / ".lock", self.images_dir / ".gc-lock"):
            if not lock.exists():  # made now, so that no later command adds a file
                os.close(os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600))

    def _read_index(self) -> dict[str, Any]:
        path = self.images_dir / "index.json"
        try:
            index = json.loads(path.read_bytes())
        except FileNotFoundError:
            return empty_index()
        except ValueError as exc:
            raise ImageError(f"{path} is not valid JSON: {exc}") from None
        if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
            raise ImageError(f"{path} is not an OCI image index")
        return index

    def _write_index(self, index: dict[str, Any]) -> None:
        self._replace_file(self.images_dir / "index.json", json.dumps(index, indent=2).encode())

    # -- locks ----------------------------------------------------------------------------------

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the shared lock every writer holds (see "Garbage is collected under a lock")."""
        import fcntl

        if self._writers == 0:
            self._make_dirs()
            fd = os.open(self.images_dir / ".gc-lock",
                         os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            fcntl.flock(fd, fcntl.LOCK_SH)
            self._gc_fd = fd
        self._writers += 1
        try:
            yield
        finally:
            self._writers -= 1
            if self._writers == 0 and self._gc_fd is not None:
                os.close(self._gc_fd)
                self._gc_fd = None

    @contextmanager
    def collecting(self) -> Iterator[None]:
        """Hold the lock exclusively: no writer is between staging and naming anything."""
        import fcntl

        if self._writers:
            raise RuntimeError("collecting() inside writing(): it would wait for itself")
        self._make_dirs()
        fd = os.open(self.images_dir / ".gc-lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._writers += 1  # writing() inside collecting() holds this lock already
            try:
                yield
            finally:
                self._writers -= 1
        finally:
            os.close(fd)

    @contextmanager
    def _index_lock(self) -> Iterator[None]:
        import fcntl

        fd = os.open(self.images_dir / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the last fd releases the flock


def empty_index() -> dict[str, Any]:
    return {"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": []}


def json_bytes(value: Any) -> bytes:
    # Compact and in insertion order, so that the same image gives the same digest.
    return json.dumps(value, separators=(",", ":")).encode()


def list_dir(path: Path) -> list[str]:
    """The names in ``path``, sorted; none if it does not exist."""
    try:
        return sorted(os.listdir(path))
    except FileNotFoundError:
        return []


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)  # makes the rename itself durable
    finally:
        os.close(fd)

