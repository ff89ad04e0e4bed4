"""One registry, spoken to over the OCI distribution API (``/v2/``), as ``docker pull`` does.

Every request of a pull or a push, in order (lesson ``05b_registries`` traces a pull)::

    GET  /v2/                                    is this a registry? which auth? (200 or 401)
    GET  /v2/<repo>/manifests/<tag|digest>       Accept: the OCI and Docker media types
    GET  /v2/<repo>/blobs/<digest>               the config, then each layer (may redirect)
    HEAD /v2/<repo>/blobs/<digest>               push: does the registry have it already?
    POST /v2/<repo>/blobs/uploads/               push: open an upload (or ?mount=&from=)
    PUT  <Location>?digest=<digest>              push: the whole blob in one request
    PATCH <Location>                             push, chunked: a chunk (Content-Range)
    PUT  /v2/<repo>/manifests/<tag>              push: last, once every blob is there

**Nothing is trusted.** A manifest fetched by digest must hash to that digest, and one fetched
by tag to the ``Docker-Content-Digest`` the registry sends; a blob is hashed as it streams in
and must match its descriptor's digest and size (:mod:`minidocker.registry.download`, which
also resumes a dropped blob with a ``Range`` request). A failure names the digest and the
URL.

**Plain HTTP only where no one can listen.** A registry is spoken to over HTTPS, but for
loopback addresses (``localhost``, ``127.0.0.0/8``, ``::1``) and the hosts listed in
``$MINIDOCKER_INSECURE_REGISTRIES`` (comma separated, ``host`` or ``host:port``), which get
plain HTTP, as dockerd's ``insecure-registries``. Pulls from docker.io try the mirrors of
``$MINIDOCKER_REGISTRY_MIRRORS`` first (:func:`mirrors`; docs/registry-cache.md).

The HTTP library (``requests``) is imported by the first :class:`Registry` made, never by
``minidocker run`` of an image already present: its start-up is measured against runc's.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from typing import TYPE_CHECKING, Any

from minidocker.errors import CorruptBlob, RegistryError, Unauthorized
from minidocker.registry import auth

if TYPE_CHECKING:

    import requests

    from minidocker.digests import Readable

MEDIA_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MEDIA_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MEDIA_SCHEMA1 = ("application/vnd.docker.distribution.manifest.v1+json",
                 "application/vnd.docker.distribution.manifest.v1+prettyjws")
MANIFESTS = (MEDIA_OCI_MANIFEST, MEDIA_DOCKER_MANIFEST)
INDEXES = (MEDIA_OCI_INDEX, MEDIA_DOCKER_LIST)
ACCEPT = ", ".join(MANIFESTS + INDEXES)

DOCKER_HUB_HOST = "registry-1.docker.io"  # where docker.io's API lives
INSECURE_ENV = "MINIDOCKER_INSECURE_REGISTRIES"
MIRRORS_ENV = "MINIDOCKER_REGISTRY_MIRRORS"
MAX_MANIFEST = 4 << 20  # the distribution project's own limit: refuse a memory bomb
TIMEOUT = (15.0, 60.0)  # connect, then between two reads: a stalled registry fails, not hangs


def requests_module() -> Any:
    """``import requests``, even under the launcher's ``python -I -S`` (no site-packages on
    sys.path, to keep ``run`` fast): then the venv's site-packages are added now."""
    try:
        import requests
    except ImportError:
        import site

        site.main()
        import requests
    return requests


def api_host(domain: str) -> str:
    return DOCKER_HUB_HOST if domain == "docker.io" else domain


def is_insecure(domain: str) -> bool:
    """Plain HTTP for this registry? Loopback, or listed in $MINIDOCKER_INSECURE_REGISTRIES."""
    import ipaddress

    host = domain.rsplit(":", 1)[0] if not domain.endswith("]") else domain
    if domain.startswith("["):
        host = domain[1:].split("]", 1)[0]
    listed = {e.strip() for e in os.environ.get(INSECURE_ENV, "").split(",") if e.strip()}
    if domain in listed or host in listed or host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def mirrors() -> list[str]:
    """``$MINIDOCKER_REGISTRY_MIRRORS``: base URLs (``http://127.0.0.1:5000``, comma
    separated) that docker.io pulls try, in order, before docker.io itself, as dockerd's
    ``registry-mirrors``. The scheme is the instructor's explicit choice, so ``http://`` is
    allowed here for any host, as dockerd allows it."""
    found = []
    for entry in os.environ.get(MIRRORS_ENV, "").split(","):
        entry = entry.strip().rstrip("/")
        if not entry:
            continue
        if not entry.startswith(("http://", "https://")) or "/" in entry.split("://", 1)[1]:
            raise RegistryError(f"${MIRRORS_ENV}: {entry!r} is not a registry URL "
                                "(http[s]://host[:port])")
        found.append(entry)
    return found


def pull_scope(repo: str) -> str:
    return f"repository:{repo}:pull"


def push_scope(repo: str) -> str:
    return f"repository:{repo}:pull,push"


class Manifest:
    """A manifest or index as served: its exact bytes (which its digest covers), parsed."""

    __slots__ = ("data", "media_type", "digest", "json")

    def __init__(self, data: bytes, media_type: str, digest: str, value: dict[str, Any]) -> None:
        self.data, self.media_type, self.digest, self.json = data, media_type, digest, value


class Registry:
    """A session with one registry: its base URL, its auth scheme and the tokens it gave."""

    def __init__(self, domain: str, credentials: tuple[str, str] | None = None,
                 base: str | None = None) -> None:
        self.domain = domain
        scheme = "http" if is_insecure(domain) else "https"
        self.base = base or f"{scheme}://{api_host(domain)}"
        self.credentials = credentials
        self.session: requests.Session = requests_module().Session()
        from minidocker import __version__

        self.session.headers["User-Agent"] = f"minidocker/{__version__}"
        self._basic = False  # the registry asked for basic auth
        self._tokens: dict[str | None, str] = {}  # scope -> bearer token
        self._lock = threading.Lock()  # layers download in threads; tokens are shared

    # -- requests ---------------------------------------------------------------------------

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    def request(self, method: str, url: str, scope: str | None, *, ok: tuple[int, ...] = (200,),
                headers: dict[str, str] | None = None, **kw: Any) -> requests.Response:
        """One request, authenticating on a 401 challenge and sending it again once."""
        requests = requests_module()
        for attempt in (1, 2):
            try:
                response = self.session.request(method, url, timeout=TIMEOUT,
                                                headers={**(headers or {}),
                                                         **self._auth_header(scope)}, **kw)
            except requests.RequestException as exc:
                raise RegistryError(f"{method} {url}: {one_line(exc)}") from None
            if response.status_code != 401 or attempt == 2:
                break
            challenge = response.headers.get("WWW-Authenticate")
            if not challenge:
                break
            response.close()
            self._authenticate(challenge, scope)
            seek = getattr(kw.get("data"), "seek", None)
            if seek is not None:
                seek(0)  # a file body: the first attempt read it
        if response.status_code == 401:
            raise Unauthorized(self._refusal(method, url, scope, response))
        if response.status_code not in ok:
            raise RegistryError(f"{method} {url}: {response.status_code} "
                                f"{error_text(response)}")
        return response

    def _refusal(self, method: str, url: str, scope: str | None,
                 response: requests.Response) -> str:
        """Why a request stayed unauthorized, in one line. A token that is valid but grants
        less than the request needs (a pull-only token on a push) comes back as a 401 whose
        challenge says ``error="insufficient_scope"`` and names the scope it wanted."""
        hint = f" (as {self.credentials[0]})" if self.credentials else \
            f" (run 'minidocker login {self.domain}')"
        try:
            _, params = auth.parse_challenge(response.headers.get("WWW-Authenticate") or "x")
        except RegistryError:
            params = {}
        if params.get("error") == "insufficient_scope":
            return (f"{method} {url}: insufficient scope: the token server did not grant "
                    f"{params.get('scope') or scope}{hint}")
        return (f"{method} {url}: unauthorized: {error_text(response)}"
                + ("" if self.credentials else hint))

    def _auth_header(self, scope: str | None) -> dict[str, str]:
        with self._lock:
            token = self._tokens.get(scope)
        if token:
            return {"Authorization": f"Bearer {token}"}
        if self._basic and self.credentials:
            return {"Authorization": auth.basic_header(*self.credentials)}
        return {}

    def _authenticate(self, challenge: str, scope: str | None) -> None:
        scheme, params = auth.parse_challenge(challenge)
        if scheme == "basic":
            if not self.credentials:
                raise Unauthorized(f"{self.domain} wants a username and password: run "
                                   f"'minidocker login {self.domain}'")
            self._basic = True
        elif scheme == "bearer":
            token = self.fetch_token(params, scope)
            with self._lock:
                self._tokens[scope] = token
        else:
            raise Unauthorized(f"{self.domain} asks for {scheme} auth, which minidocker "
                               "does not speak (basic or bearer)")

    def fetch_token(self, params: dict[str, str], scope: str | None) -> str:
        """The token dance: ask the realm for a token for ``scope`` (with the stored basic
        credentials, if any; anonymously otherwise)."""
        realm = params.get("realm")
        if not realm:
            raise RegistryError(f"{self.domain}: bearer challenge without a realm")
        query: dict[str, str | list[str]] = {}
        if params.get("service"):
            query["service"] = params["service"]
        if scope:
            query["scope"] = scope.split()  # one scope= per repository, as docker asks
        headers = {"Authorization": auth.basic_header(*self.credentials)} \
            if self.credentials else {}
        requests = requests_module()
        try:
            response = self.session.get(realm, params=query, headers=headers, timeout=TIMEOUT)
        except requests.RequestException as exc:
            raise RegistryError(f"GET {realm}: {one_line(exc)}") from None
        if response.status_code in (401, 403):
            raise Unauthorized(f"GET {realm}: the token server refused "
                               f"{'the credentials' if self.credentials else 'anonymous access'}"
                               f" for {scope or 'login'}: {error_text(response)}")
        if response.status_code != 200:
            raise RegistryError(f"GET {realm}: {response.status_code} {error_text(response)}")
        try:
            body = response.json()
            token = body.get("token") or body.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise RegistryError(f"GET {realm}: the token server's answer holds no token")
        return token

    # -- the API ----------------------------------------------------------------------------

    def ping(self) -> None:
        """``GET /v2/``, authenticating as the registry asks: what ``login`` checks."""
        self.request("GET", self.url("/v2/"), None)

    def get_manifest(self, repo: str, reference: str) -> Manifest:
        """The manifest or index ``reference`` (a tag or a digest) names, verified."""
        url = self.url(f"/v2/{repo}/manifests/{reference}")
        response = self.request("GET", url, pull_scope(repo), headers={"Accept": ACCEPT},
                                ok=(200, 404))
        if response.status_code == 404:
            sep = "@" if reference.startswith("sha256:") else ":"
            raise RegistryError(f"manifest for {self.domain}/{repo}{sep}{reference} not found: "
                                f"{error_text(response)}")
        data = response.content
        if len(data) > MAX_MANIFEST:
            raise RegistryError(f"GET {url}: a manifest of {len(data)} bytes is too large")
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if reference.startswith("sha256:") and digest != reference:
            raise CorruptBlob(f"manifest {reference} from {url} does not match its digest "
                              f"({digest})")
        served = response.headers.get("Docker-Content-Digest", "")
        if served.startswith("sha256:") and served != digest:
            raise CorruptBlob(f"manifest {served} from {url} does not match its digest "
                              f"({digest})")
        try:
            value = json.loads(data)
        except ValueError:
            raise RegistryError(f"GET {url}: the manifest is not valid JSON") from None
        if not isinstance(value, dict):
            raise RegistryError(f"GET {url}: the manifest is not a JSON object")
        media = value.get("mediaType") or response.headers.get("Content-Type", "").split(";")[0]
        if media in MEDIA_SCHEMA1 or value.get("schemaVersion") == 1:
            raise RegistryError(f"{self.domain}/{repo}:{reference} is a Docker schema 1 image, "
                                "which Docker itself no longer pulls; push it again as "
                                "schema 2 or OCI")
        if media not in MANIFESTS + INDEXES:
            raise RegistryError(f"GET {url}: unsupported manifest media type {media!r}")
        return Manifest(data, media, digest, value)

    def blob_exists(self, repo: str, digest: str) -> bool:
        url = self.url(f"/v2/{repo}/blobs/{digest}")
        response = self.request("HEAD", url, push_scope(repo), ok=(200, 404))
        return response.status_code == 200

    def upload_blob(self, repo: str, digest: str, size: int, data: Readable,
                    mount_from: str | None = None, chunk_size: int | None = None) -> str:
        """Upload a blob: a POST opens the upload, then one PUT sends it all (*monolithic*),
        or, with ``chunk_size``, PATCHes send it a chunk at a time and an empty PUT closes it.
        If ``mount_from`` names another repository of this registry that has the blob, the
        POST asks to mount it from there (``?mount=<digest>&from=<repo>``): a ``201`` means
        done without sending a byte; a registry that will not (a ``202``) has opened an upload
        instead, and the blob is sent. Returns ``"mounted"`` or ``"pushed"``."""
        url = self.url(f"/v2/{repo}/blobs/uploads/")
        scope = push_scope(repo)
        params = None
        if mount_from:
            params = {"mount": digest, "from": mount_from}
            scope = f"{scope} {pull_scope(mount_from)}"  # the token must cover both
        response = self.request("POST", url, scope, params=params, ok=(201, 202))
        if response.status_code == 201:
            return "mounted"
        location = self._location(response, "POST", url)
        if chunk_size:
            location = self._patch_chunks(repo, location, size, data, chunk_size)
            body: Readable | bytes = b""
            length = 0
        else:
            body, length = data, size
        from urllib.parse import urlencode

        target = location + ("&" if "?" in location else "?") + urlencode({"digest": digest})
        self.request("PUT", target, push_scope(repo), ok=(201,), data=body,
                     headers={"Content-Type": "application/octet-stream",
                              "Content-Length": str(length)})
        return "pushed"

    def _patch_chunks(self, repo: str, location: str, size: int, data: Readable,
                      chunk_size: int) -> str:
        """``PATCH`` each chunk with ``Content-Range: <first>-<last>`` (bytes, inclusive); the
        registry answers ``202`` with the next ``Location`` and ``Range: 0-<last>``, the bytes
        it holds so far. The last ``Location``, for the closing PUT."""
        sent = 0
        while sent < size:
            chunk = data.read(min(chunk_size, size - sent))
            if not chunk:
                raise RegistryError(f"blob upload to {location}: the data ended at byte {sent} "
                                    f"of {size}")
            last = sent + len(chunk) - 1
            response = self.request("PATCH", location, push_scope(repo), ok=(202,), data=chunk,
                                    headers={"Content-Type": "application/octet-stream",
                                             "Content-Range": f"{sent}-{last}",
                                             "Content-Length": str(len(chunk))})
            held = response.headers.get("Range", "")
            if held and held != f"0-{last}":
                raise RegistryError(f"PATCH {location}: the registry holds bytes {held}, "
                                    f"not 0-{last}")
            location = self._location(response, "PATCH", location)
            sent = last + 1
        return location

    def _location(self, response: requests.Response, method: str, url: str) -> str:
        from urllib.parse import urljoin

        location = response.headers.get("Location")
        if not location:
            raise RegistryError(f"{method} {url}: the registry gave no upload Location")
        return urljoin(self.base + "/", location)

    def put_manifest(self, repo: str, tag: str, data: bytes, media_type: str) -> str:
        """PUT the manifest under ``tag``; the digest the registry stored it under."""
        url = self.url(f"/v2/{repo}/manifests/{tag}")
        response = self.request("PUT", url, push_scope(repo), ok=(201,), data=data,
                                headers={"Content-Type": media_type})
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        served = response.headers.get("Docker-Content-Digest", digest)
        if served != digest:
            raise RegistryError(f"PUT {url}: the registry stored the manifest as {served}, "
                                f"not {digest}")
        return digest


def error_text(response: requests.Response) -> str:
    """The registry's own words: ``MANIFEST_UNKNOWN: manifest unknown``, on one line."""
    try:
        errors = response.json().get("errors") or []
        text = "; ".join(f"{e.get('code', '').lower().replace('_', ' ')}: {e.get('message')}"
                         for e in errors if isinstance(e, dict))
    except (ValueError, AttributeError):
        text = ""
    return text or response.reason or f"HTTP {response.status_code}"


def one_line(exc: BaseException) -> str:
    """requests' errors wrap urllib3's, which wrap the socket's: the innermost says most
    (``connection refused``, ``failed to resolve 'host'``), without the pool's preamble."""
    import re

    reason: BaseException = exc
    while True:
        inner = getattr(reason, "reason", None)
        if not isinstance(inner, BaseException) and reason.args \
                and isinstance(reason.args[0], BaseException):
            inner = reason.args[0]
        if not isinstance(inner, BaseException) or inner is reason:
            break
        reason = inner
    # urllib3's ProtocolError carries (message, cause): its str() is the tuple's repr.
    first = reason.args[0] if reason.args and isinstance(reason.args[0], str) else str(reason)
    text = " ".join(first.split()) or type(reason).__name__
    text = re.sub(r"^<?\w*Connection\w*(?: object at 0x[0-9a-f]+>|\([^)]*\))?: ", "", text)
    text = text[:1].lower() + text[1:]
    return text if len(text) < 300 else text[:297] + "..."
