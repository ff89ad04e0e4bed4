"""Who may pull and push: auth challenges, and credentials kept as Docker keeps them.

A registry answers a request it will not serve anonymously with ``401 Unauthorized`` and a
``WWW-Authenticate`` header naming the scheme it wants (RFC 7235):

- ``Basic realm="..."``: send ``Authorization: Basic base64(user:password)`` on every request
  (a registry behind an htpasswd file does this);
- ``Bearer realm="https://auth.example/token",service="registry.example",
  scope="repository:library/busybox:pull"``: first ask the *realm* (a token server) for a token
  for that *service* and *scope*, anonymously or with basic credentials, then send
  ``Authorization: Bearer <token>`` (Docker Hub does this even for anonymous pulls; the
  distribution spec's ``docs/spec/auth/token.md``).

Credentials live where the ``docker`` client keeps them, so ``docker login`` and ``minidocker
login`` share them: ``$DOCKER_CONFIG/config.json`` or ``~/.docker/config.json``, a JSON object
whose ``auths`` maps a server (``https://index.docker.io/v1/`` for Docker Hub, else
``host[:port]``) to ``{"auth": base64("user:password")}``. The file is written atomically with
mode 0600: base64 is an encoding, not a cipher. Credential helpers (``credsStore``,
``credHelpers``) are not supported; their keys are kept untouched.
"""

from __future__ import annotations

import base64
import json
import os
import re
from pathlib import Path

from minidocker.errors import RegistryError

DOCKER_HUB_AUTH_KEY = "https://index.docker.io/v1/"  # the key docker login uses for Hub

# RFC 7235 auth-param: token "=" ( token / quoted-string ), comma separated.
_PARAM = re.compile(r'\s*([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^",\s]*))\s*(?:,|$)')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="r",service="s"`` -> (``"bearer"``, {realm: r, service: s}).

    The scheme is lowercased (schemes are case-insensitive); quoted values may hold commas
    (``scope="repository:a:pull,push"``) and backslash escapes.
    """
    scheme, _, rest = header.strip().partition(" ")
    if not scheme:
        raise RegistryError(f"empty WWW-Authenticate challenge: {header!r}")
    params: dict[str, str] = {}
    pos, rest = 0, rest.strip()
    while pos < len(rest):
        match = _PARAM.match(rest, pos)
        if match is None or match.end() == pos:
            raise RegistryError(f"malformed WWW-Authenticate challenge: {header!r}")
        name, quoted, bare = match.groups()
        params[name.lower()] = (re.sub(r"\\(.)", r"\1", quoted) if quoted is not None
                                else bare)
        pos = match.end()
    return scheme.lower(), params


def basic_header(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


# -- credentials in config.json -------------------------------------------------------------

def config_path() -> Path:
    """``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json`` (as the docker CLI)."""
    directory = os.environ.get("DOCKER_CONFIG") or os.path.join(
        os.path.expanduser("~"), ".docker")
    return Path(directory) / "config.json"


def auth_key(domain: str) -> str:
    """The ``auths`` key for a registry domain: Docker Hub's legacy URL, else the host."""
    return DOCKER_HUB_AUTH_KEY if domain == "docker.io" else domain


def _host_of(key: str) -> str:
    """``https://host:5000/v1/`` -> ``host:5000``: keys written by old clients carry URLs."""
    key = re.sub(r"^[a-z]+://", "", key)
    return key.split("/", 1)[0]


def _read_config(path: Path) -> dict[str, object]:
    try:
        value = json.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    except ValueError as exc:
        raise RegistryError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise RegistryError(f"{path} is not a JSON object")
    return value


def _auths(config: dict[str, object], path: Path) -> dict[str, object]:
    auths = config.get("auths", {})
    if not isinstance(auths, dict):
        raise RegistryError(f"{path}: 'auths' is not a JSON object")
    return auths


def load_credentials(domain: str, path: Path | None = None) -> tuple[str, str] | None:
    """The (username, password) stored for ``domain``, or None."""
    path = path or config_path()
    auths = _auths(_read_config(path), path)
    wanted = _host_of(auth_key(domain))
    for key, entry in auths.items():
        if _host_of(key) != wanted or not isinstance(entry, dict):
            continue
        if isinstance(entry.get("auth"), str) and entry["auth"]:
            try:
                user, sep, password = base64.b64decode(entry["auth"]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                raise RegistryError(f"{path}: the auth of {key} is not base64 of "
                                    "user:password") from None
            if sep:
                return user, password
        if isinstance(entry.get("username"), str) and isinstance(entry.get("password"), str):
            return entry["username"], entry["password"]
    return None


def store_credentials(domain: str, username: str, password: str,
                      path: Path | None = None) -> Path:
    """Record credentials for ``domain``, keeping every other key of the file."""
    path = path or config_path()
    config = _read_config(path)
    auths = _auths(config, path)
    wanted = _host_of(auth_key(domain))
    auths = {k: v for k, v in auths.items() if _host_of(k) != wanted}
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    auths[auth_key(domain)] = {"auth": token}
    config["auths"] = auths
    _write_config(path, config)
    return path


def erase_credentials(domain: str, path: Path | None = None) -> bool:
    """Forget ``domain``'s credentials; False if there were none."""
    path = path or config_path()
    config = _read_config(path)
    auths = _auths(config, path)
    wanted = _host_of(auth_key(domain))
    kept = {k: v for k, v in auths.items() if _host_of(k) != wanted}
    if len(kept) == len(auths):
        return False
    config["auths"] = kept
    _write_config(path, config)
    return True


def _write_config(path: Path, config: dict[str, object]) -> None:
    """Temp file (0600 from its first byte), fsync, rename: a reader never sees half a file,
    and a password is never readable by others, not even for a moment."""
    import tempfile

    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=".config.json.", dir=path.parent)  # mode 0600
    try:
        with open(fd, "w") as f:
            json.dump(config, f, indent="\t")
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.rename(name, path)
    except BaseException:
        os.unlink(name)
        raise
