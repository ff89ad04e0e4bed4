"""Digests, and the streams that compute them while the bytes go by.

Content is addressed by ``sha256:<hex>``. The *diff ID* of a layer is the digest of its
uncompressed tar; the *chain ID* names a layer together with everything below it (the
image-spec's ``config.md``, "Layer ChainID"), so the same tar on two different bases gets two
directories. A layer is hashed as it is read (:class:`HashingReader`), decompressed in a thread
ahead of the unpacker (:class:`ReadAhead`), and its compression told by its first bytes
(:func:`compression`), as Docker does.

:mod:`minidocker.layers` re-exports every name here. Notebook: ``05_images``.
"""

from __future__ import annotations

# Not `from typing import TYPE_CHECKING`: importing typing alone costs ~2 ms of the start-up
# budget. Type checkers treat any name TYPE_CHECKING as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    # hashlib, threading and the decompressors are imported inside the functions that need
    # them: ``minidocker run`` of an image already unpacked needs none of them.
    from typing import BinaryIO, Protocol

    class Readable(Protocol):
        """Anything with ``read(n) -> bytes``: a file, stdin, a gzip stream, a hasher."""

        def read(self, n: int = -1, /) -> bytes: ...

_CHUNK = 1 << 20


class HashingReader:
    """A read-only stream that hashes (sha256) and counts every byte read through it."""

    def __init__(self, raw: Readable) -> None:
        import hashlib

        self._raw = raw
        self._hash = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self._hash.update(data)
        self.size += len(data)
        return data

    def drain(self) -> None:
        """Read to the end, so that the digest covers the whole stream."""
        while self.read(_CHUNK):
            pass

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()


class ReadAhead:
    """Reads ``raw`` in a thread of its own, a few chunks ahead of the consumer.

    Decompressing (zlib) and hashing (hashlib) release the GIL, and so do the syscalls that
    create a layer's files: with the reading in another thread, the two overlap. The thread
    ends at the end of the stream (or on the first error, raised again in the consumer), and
    :meth:`close` waits for it, so no thread outlives an unpack (``run`` forks afterwards).
    """

    def __init__(self, raw: Readable, depth: int = 8) -> None:
        import queue
        import threading

        self._queue: queue.Queue[bytes | BaseException] = queue.Queue(depth)
        self._buffer = b""
        self._offset = 0  # where the unread part of _buffer starts
        self._done = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._fill, args=(raw,), daemon=True)
        self._thread.start()

    def _fill(self, raw: Readable) -> None:
        try:
            while not self._stop.is_set():
                chunk = raw.read(_CHUNK)
                self._queue.put(chunk)
                if not chunk:
                    return
        except BaseException as exc:  # handed to the consumer, who raises it
            self._queue.put(exc)

    def read(self, n: int = -1) -> bytes:
        # A tar reader asks for 10 KiB at a time out of 1 MiB chunks: hand out slices from an
        # offset, since slicing the rest off each time would copy the chunk a hundred times.
        while not self._done and (n < 0 or len(self._buffer) - self._offset < n):
            item = self._queue.get()
            if isinstance(item, BaseException):
                self._done = True
                self.close()
                raise item
            if not item:
                self._done = True
            self._buffer = self._buffer[self._offset:] + item
            self._offset = 0
        end = len(self._buffer) if n < 0 else self._offset + n
        data = self._buffer[self._offset:end]
        self._offset = min(end, len(self._buffer))
        return data

    def close(self) -> None:
        """Stop reading ahead and wait for the thread."""
        import contextlib
        import queue

        self._stop.set()
        while self._thread.is_alive():
            with contextlib.suppress(queue.Empty):  # unblock a put() on a full queue
                self._queue.get_nowait()
            self._thread.join(0.01)


def copy_hashed(src: Readable, dst: BinaryIO) -> tuple[str, int]:
    """Copy ``src`` to ``dst``; return the ``sha256:<hex>`` digest and size of what was copied."""
    reader = HashingReader(src)
    while chunk := reader.read(_CHUNK):
        dst.write(chunk)
    return reader.digest, reader.size



def read_rest(stream: Readable) -> bytes:
    """All that is left of ``stream``, read a MiB at a time (``read(-1)`` of the readers
    here, which each serve reads of a given size)."""
    parts = []
    while part := stream.read(_CHUNK):
        parts.append(part)
    return b"".join(parts)

class Gunzip:
    """``read(n)``: the bytes of the gzip stream ``raw`` (RFC 1952), decompressed.

    zlib checks the header, the CRC-32 and the length (``wbits=31``); members follow one
    another as ``gunzip`` reads them, and zeros may pad the end. Not :class:`gzip.GzipFile`:
    that reads its input 8 KiB at a time and inflates 8 KiB per call, six thousand calls per
    50 MB layer; this inflates a MiB of input at a time.
    """

    def __init__(self, raw: Readable) -> None:
        import zlib

        self._raw = raw
        self._inflate = zlib.decompressobj(31)
        self._input = b""  # read from raw, not yet inflated
        self._output = b""  # inflated, from _offset on not yet read
        self._offset = 0
        self._eof = False

    def read(self, n: int = -1) -> bytes:
        if n < 0:
            return read_rest(self)
        if self._offset >= len(self._output):
            # A MiB out per call: the input not yet used (unconsumed_tail) is copied each time.
            self._output, self._offset = self._inflate_some(max(n, _CHUNK)), 0
        data = self._output[self._offset:self._offset + n]
        self._offset += len(data)
        return data

    def _inflate_some(self, limit: int) -> bytes:
        while not self._eof:
            if self._inflate.eof:
                self._next_member()
                continue
            data = self._input or self._raw.read(_CHUNK)
            if not data:
                raise EOFError("compressed file ended before the end-of-stream marker was "
                               "reached")
            out = self._inflate.decompress(data, limit)
            self._input = self._inflate.unconsumed_tail
            if out:
                return out
        return b""

    def _next_member(self) -> None:
        import zlib

        rest = self._inflate.unused_data.lstrip(b"\0")
        while not rest:
            more = self._raw.read(_CHUNK)
            if not more:
                self._eof = True
                return
            rest = more.lstrip(b"\0")
        if not rest.startswith(b"\x1f\x8b"):
            raise zlib.error("not a gzip member after the end of the last one")
        self._inflate, self._input = zlib.decompressobj(31), rest


# -- compression ------------------------------------------------------------------------------

# Magic numbers of the compressions layer tars and image archives come in. Docker detects them
# the same way, by their first bytes, not by a file name or a media type.
COMPRESSIONS = {b"\x1f\x8b": "gzip", b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz",
                b"\x28\xb5\x2f\xfd": "zstd"}


def compression(head: bytes) -> str | None:
    """The compression of a stream starting with ``head`` (6 bytes will do), or None."""
    return next((name for magic, name in COMPRESSIONS.items() if head.startswith(magic)), None)


def decompressed(raw: BinaryIO, kind: str | None) -> Readable:
    """The bytes ``raw`` holds compressed with ``kind`` (gzip, bzip2, xz; None: as they are),
    read forward only, so a :class:`HashingReader` under it sees every byte once."""
    if kind is None:
        return raw
    if kind == "gzip":
        return Gunzip(raw)
    if kind == "bzip2":
        import bz2

        return bz2.BZ2File(raw)
    if kind == "xz":
        import lzma

        return lzma.LZMAFile(raw)
    raise ValueError(f"no decompressor for {kind}")  # zstd: the standard library has none


def sha256_digest(data: bytes) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(data).hexdigest()


def chain_ids(diff_ids: list[str]) -> list[str]:
    """The OCI chain IDs of a layer stack, base first.

    ``chain[0] = diff[0]``; ``chain[n] = sha256(chain[n-1] + " " + diff[n])``. A single-layer
    image's chain ID is its diff ID, so the common case costs no hashing.
    """
    chain: list[str] = []
    for diff_id in diff_ids:
        chain.append(chain_id(chain[-1], diff_id) if chain else diff_id)
    return chain


def chain_id(parent: str, diff_id: str) -> str:
    return sha256_digest(f"{parent} {diff_id}".encode())
