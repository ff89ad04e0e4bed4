"""Image references: how ``busybox`` becomes ``docker.io/library/busybox:latest``.

A reference names an image the way a user types it. Docker's grammar (from the distribution
project's ``reference`` package, which every Docker-compatible tool shares) is::

    reference := [domain[:port] "/"] path [":" tag] ["@" digest]
    path      := component ("/" component)*        component: [a-z0-9]+ joined by . _ __ or -+
    tag       := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
    digest    := "sha256:" 64 lowercase hex digits

What a learner should take away:

- **Normalisation.** A name without a domain lives on Docker Hub (``docker.io``), and a one-part
  Hub name is an "official" image under ``library/``. So ``busybox``, ``library/busybox`` and
  ``docker.io/library/busybox:latest`` are the same image. The first component is a domain only
  if it looks like one: it contains ``.`` or ``:``, is ``localhost``, or has capitals (which a
  path may not have).
- **Two spellings.** The *canonical* form is fully qualified and is what a store keys on; the
  *familiar* form is what ``docker images`` prints (domain and ``library/`` dropped on Hub).
- **Tag vs digest.** A tag is a movable label (``latest`` is the default, not "the newest"); a
  digest pins exact content. The ``:`` before a tag is the last one after the last ``/``, which
  is how ``localhost:5000/app`` keeps its port.

Nothing here touches the disk or the network: parsing is pure, so notebooks and tests can try
any string.
"""

from __future__ import annotations

import re

from minidocker.errors import InvalidReference

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
MAX_TAG_LENGTH = 128
MAX_NAME_LENGTH = 255

_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(
    rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_IMAGE_ID = re.compile(r"[0-9a-f]{64}")


class Reference:
    """A parsed, normalised reference. ``tag`` is ``None`` only when a digest pins the image.

    Immutable and hashable. (A plain class rather than a dataclass: importing ``dataclasses``
    costs milliseconds that ``minidocker run`` does not have.)
    """

    __slots__ = ("domain", "path", "tag", "digest")
    domain: str
    path: str
    tag: str | None
    digest: str | None

    def __init__(self, domain: str, path: str, tag: str | None = DEFAULT_TAG,
                 digest: str | None = None) -> None:
        for field, value in (("domain", domain), ("path", path), ("tag", tag),
                             ("digest", digest)):
            object.__setattr__(self, field, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"a Reference is immutable: cannot set {name}")

    def _key(self) -> tuple[str, str, str | None, str | None]:
        return (self.domain, self.path, self.tag, self.digest)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Reference) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (f"Reference(domain={self.domain!r}, path={self.path!r}, tag={self.tag!r}, "
                f"digest={self.digest!r})")

    @property
    def name(self) -> str:
        """The canonical repository, without tag: ``docker.io/library/busybox``."""
        return f"{self.domain}/{self.path}"

    @property
    def familiar_name(self) -> str:
        """The repository as Docker prints it: ``busybox``, ``myrepo/app``, ``localhost:5000/x``."""
        if self.domain != DEFAULT_DOMAIN:
            return self.name
        rest = self.path.removeprefix(OFFICIAL_REPO_PREFIX)
        # Only one level is dropped: "library/a/b" stays as it is, as in Docker.
        return self.path if "/" in rest else rest

    @property
    def familiar(self) -> str:
        """``busybox:latest``, ``myrepo/app:v1``, ``localhost:5000/x:1``."""
        return self.familiar_name + self._suffix()

    @property
    def canonical(self) -> str:
        """``docker.io/library/busybox:latest``: the form an image store keys on."""
        return self.name + self._suffix()

    def with_tag(self, tag: str) -> Reference:
        """The same repository under another tag (and no digest)."""
        return Reference(self.domain, self.path, validate_tag(tag), None)

    def _suffix(self) -> str:
        return (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")

    def __str__(self) -> str:
        return self.familiar


def _bad(detail: str) -> InvalidReference:
    return InvalidReference(f"invalid reference format: {detail}")


def validate_tag(tag: str) -> str:
    """Return ``tag`` if it is a valid tag, else raise :class:`InvalidReference` naming it."""
    if not tag:
        raise _bad("tag is empty")
    if len(tag) > MAX_TAG_LENGTH:
        raise _bad(f"tag ({tag}) is {len(tag)} characters long, more than {MAX_TAG_LENGTH}")
    if not _TAG.fullmatch(tag):
        raise _bad(f"tag ({tag}) may only contain letters, digits, '_', '.' and '-', "
                   "and may not start with '.' or '-'")
    return tag


def split_domain(name: str) -> tuple[str, str]:
    """``busybox`` -> (``docker.io``, ``library/busybox``); ``localhost:5000/x`` -> its parts."""
    first, slash, rest = name.partition("/")
    looks_like_host = ("." in first or ":" in first or first == "localhost"
                       or first != first.lower())
    if not slash or not looks_like_host:
        domain, remainder = DEFAULT_DOMAIN, name
    else:
        domain, remainder = first, rest
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_REPO_PREFIX + remainder
    return domain, remainder


def parse(ref: str) -> Reference:
    """Parse and normalise a reference as ``docker pull`` would; raise :class:`InvalidReference`."""
    if not ref:
        raise _bad("image name is empty")
    if _IMAGE_ID.fullmatch(ref):
        # Docker refuses these as names so that an image ID can never be shadowed by a tag.
        raise InvalidReference(
            f"invalid repository name ({ref}), cannot specify 64-byte hexadecimal strings")
    name, at, digest = ref.partition("@")
    if at and not _DIGEST.fullmatch(digest):
        raise _bad(f"digest ({digest}) must be 'sha256:' followed by 64 lowercase hex digits")
    tag: str | None = None
    colon = name.rfind(":")
    if colon > name.rfind("/"):
        name, tag = name[:colon], name[colon + 1:]
        if not tag:
            raise _bad(f"tag is empty in '{ref}'")
        validate_tag(tag)
    if not name:
        raise _bad(f"repository name is empty in '{ref}'")
    domain, path = split_domain(name)
    if path != path.lower():
        raise _bad(f"repository name ({path}) must be lowercase")
    if domain != DEFAULT_DOMAIN and not _DOMAIN.fullmatch(domain):
        raise _bad(f"registry ({domain}) is not a valid host[:port]")
    for component in path.split("/"):
        if not _PATH_COMPONENT.fullmatch(component):
            raise _bad(f"repository name ({path}) has an invalid component '{component}': "
                       "use lowercase letters and digits separated by '.', '_', '__' or '-'")
    if len(domain) + 1 + len(path) > MAX_NAME_LENGTH:
        raise _bad(f"repository name ({domain}/{path}) is longer than {MAX_NAME_LENGTH} "
                   "characters")
    if tag is None and not digest:
        tag = DEFAULT_TAG
    return Reference(domain, path, tag, digest or None)
