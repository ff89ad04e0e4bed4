"""One blob from a registry, streamed: hashed, written to its temp file, and unpacked as it comes.

``docker pull`` does not download a layer and then read it back to unpack it: each byte that
arrives is hashed, written to the blob's temp file and handed to the unpacker in one pass
(:class:`BlobDownload` is the stream the unpacker reads). The layer directory is still made in
the store's ``tmp/`` and renamed into place only once every layer has matched its digest and
diff ID (:mod:`minidocker.registry.pull`), so a corrupt blob leaves nothing visible.

**A dropped connection resumes.** When the connection breaks in the middle of a blob, the
download asks again for the rest only: ``Range: bytes=<received>-``. A registry that honours
it answers ``206 Partial Content`` with ``Content-Range: bytes <received>-...`` and the stream
goes on where it stopped, the hash none the wiser. One that answers ``200`` with the whole blob
again cannot be spliced: :class:`Restart` is raised, the half-made layer directory and the temp
file are thrown away, and the blob starts over. After :data:`ATTEMPTS` tries (dockerd's
``maxDownloadAttempts``) the error is the pull's. A blob that does not match its digest is not
retried: the registry served what it has.

Notebook: ``05b_registries``. Specs: the OCI distribution spec's "Pulling blobs"; RFC 9110
section 14 (range requests).
"""

from __future__ import annotations

import time
from typing import IO, TYPE_CHECKING, Any

from minidocker.digests import HashingReader, read_rest
from minidocker.errors import CorruptBlob, RegistryError
from minidocker.registry.client import Registry, one_line, pull_scope, requests_module

if TYPE_CHECKING:
    from collections.abc import Callable

    import requests

ATTEMPTS = 5  # dockerd's maxDownloadAttempts: the first try and four more


class Restart(RegistryError):  # noqa: N818 -- a signal to the caller, as StopIteration is
    """The registry would not resume a blob (no ``206`` to a ``Range`` request): start over."""


class BlobDownload(HashingReader):
    """``read(n)``: the next bytes of the blob ``descriptor`` names, each hashed, counted and
    written to ``out`` on the way; at the end of the blob, :class:`CorruptBlob` unless it has
    the descriptor's digest and size. ``progress`` is called with the byte count so far after
    each read; ``attempt`` counts connections, across restarts too."""

    def __init__(self, reg: Registry, repo: str, descriptor: dict[str, Any], out: IO[bytes],
                 progress: Callable[[int], None] | None = None, attempt: int = 0) -> None:
        import hashlib

        self.reg, self.repo, self.out, self.progress = reg, repo, out, progress
        self.digest_wanted = descriptor["digest"]
        self.expected = int(descriptor.get("size", -1))
        self.url = reg.url(f"/v2/{repo}/blobs/{self.digest_wanted}")
        self._hash = hashlib.sha256()
        self.size = 0
        self.attempt = attempt
        self._response: requests.Response | None = None
        self._done = False

    def read(self, n: int = -1) -> bytes:
        if n < 0:
            return read_rest(self)
        if self._done or n == 0:
            return b""
        data = self._read_some(n)
        if not data:
            self._finish()
            return b""
        if 0 <= self.expected < self.size + len(data):
            raise CorruptBlob(f"blob {self.digest_wanted} from {self.url} is larger than its "
                              f"descriptor's {self.expected} bytes")
        self._hash.update(data)
        self.out.write(data)
        self.size += len(data)
        if self.progress:
            self.progress(self.size)
        return data

    def _read_some(self, n: int) -> bytes:
        """Up to ``n`` bytes from the connection, reconnecting (with a Range) as often as
        :data:`ATTEMPTS` allows; ``b""`` only at the true end of the blob."""
        import urllib3

        requests = requests_module()
        while True:
            try:
                if self._response is None:
                    self._response = self._open()
                # read1: what has arrived (up to n), so that the bytes before a break are
                # kept; read(n) would drop a partly filled n with the connection.
                data: bytes = self._response.raw.read1(n, decode_content=True)
                if data or self.expected < 0 or self.size >= self.expected:
                    return data
                failure = f"the connection closed after {self.size} bytes"
            except (urllib3.exceptions.HTTPError, requests.RequestException, OSError) as exc:
                failure = f"{one_line(exc)} after {self.size} bytes"
            self.close()
            if self.attempt >= ATTEMPTS:
                raise RegistryError(f"blob {self.digest_wanted} from {self.url}: {failure} "
                                    f"({self.attempt} attempts)")
            time.sleep(0.1 * self.attempt)  # a registry restarting gets a moment

    def _open(self) -> requests.Response:
        self.attempt += 1
        headers = {"Range": f"bytes={self.size}-"} if self.size else None
        response = self.reg.request("GET", self.url, pull_scope(self.repo), stream=True,
                                    ok=(200, 206), headers=headers)
        if self.size:
            ranged = response.headers.get("Content-Range", "")
            if response.status_code != 206 or not ranged.startswith(f"bytes {self.size}-"):
                response.close()
                raise Restart(f"blob {self.digest_wanted} from {self.url}: the registry "
                              f"would not resume at byte {self.size}")
        return response

    def _finish(self) -> None:
        self._done = True
        self.close()
        if 0 <= self.expected != self.size:
            raise CorruptBlob(f"blob {self.digest_wanted} from {self.url} is {self.size} bytes, "
                              f"its descriptor says {self.expected}")
        if self.digest != self.digest_wanted:
            raise CorruptBlob(f"blob {self.digest_wanted} from {self.url} does not match its "
                              f"digest ({self.digest})")

    def close(self) -> None:
        if self._response is not None:
            self._response.close()
            self._response = None


def fetch_blob(reg: Registry, repo: str, descriptor: dict[str, Any], out: IO[bytes],
               progress: Callable[[int], None] | None = None) -> None:
    """Download a blob into ``out`` (a file opened ``wb``), verified, resuming or restarting
    it after a dropped connection."""
    attempt = 0
    while True:
        download = BlobDownload(reg, repo, descriptor, out, progress, attempt)
        try:
            download.drain()
            return
        except Restart:
            attempt = download.attempt
            out.seek(0)
            out.truncate()
        finally:
            download.close()
