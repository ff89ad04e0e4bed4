"""The plan of a container: ``run``'s options merged with the image's config, decided up front.

Nothing here touches the kernel, so every rule can be unit-tested without root, and a
notebook can print a plan before running it. The rules are Docker's:

- **Command.** ``argv = Entrypoint + Cmd``. Arguments after the image replace the image's Cmd.
  ``--entrypoint`` replaces the image's Entrypoint *and* drops its Cmd (``--entrypoint ""``
  clears it). Nothing left to run is an error (exit 125).
- **Environment.** The image's Env, then ``--env-file`` files, then ``-e``, later ones winning.
  ``-e NAME`` (no ``=``) copies NAME from the caller's environment, or drops it if unset.
  ``PATH`` gets Docker's default if the image has none, ``HOSTNAME`` is the container's
  hostname, ``TERM=xterm`` comes with ``-t``; ``HOME`` is filled in later from the image's
  passwd file (see :mod:`minidocker.users`).
- **Working directory.** ``-w``, else the image's WorkingDir, else ``/``; it must be absolute.
- **User.** ``-u``, else the image's User, else root.
- **Hostname.** ``--hostname``, else the first 12 digits of the container ID.
"""

from __future__ import annotations

import os

from minidocker import users
from minidocker.errors import UsageError
from minidocker.namespaces import DEFAULT_KINDS

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
HOSTNAME_MAX = 64  # HOST_NAME_MAX in the kernel's sethostname(2)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

    from minidocker.runtimespec import OciSpec
    from minidocker.security import SecurityPlan


_OPTIONAL: dict[str, Any] = {"security": None, "stop_signal": "", "mounts": [],
                             "read_only": False, "cgroup_name": "", "oci": None,
                             "healthcheck": None, "shell": None}


class Spec:
    """Everything the start sequence needs to know, decided before anything is created."""

    __slots__ = ("id", "name", "image", "image_id", "argv", "env", "workdir", "user",
                 "hostname", "tty", "interactive", "init", "remove", "namespaces", "resources",
                 "cgroup_parent", "network", "security", "stop_signal", "mounts",
                 "read_only", "cgroup_name", "oci", "healthcheck", "shell")
    id: str
    name: str
    image: str
    image_id: str
    argv: list[str]
    env: dict[str, str]
    workdir: str
    user: str
    hostname: str
    tty: bool
    interactive: bool
    init: bool
    remove: bool
    namespaces: list[str]
    resources: dict[str, Any]  # cgroup limits, Docker's HostConfig names (see minidocker.cgroups)
    cgroup_parent: str  # "" for minidocker's default
    network: dict[str, Any]  # mode, networks, ports... (see minidocker.networking.make_plan)
    security: SecurityPlan | None  # caps, seccomp, devices... (None: Docker's defaults)
    stop_signal: str  # what `stop` sends first: --stop-signal, else the image's STOPSIGNAL
    mounts: list[dict[str, Any]]  # -v, --mount, --tmpfs as host paths (container_mounts)
    read_only: bool  # --read-only: the root filesystem's own mount read-only
    cgroup_name: str  # the group's own name under cgroup_parent ("": the ID)
    oci: OciSpec | None  # a bundle's container (minidocker-runtime): what only it says
    healthcheck: dict[str, Any] | None  # Docker's HealthConfig, run's over the image's
    shell: list[str] | None  # the image's SHELL, for a CMD-SHELL check (None: /bin/sh -c)

    def __init__(self, **fields: Any) -> None:
        for key in self.__slots__:
            # Records older than a field read as its default.
            setattr(self, key, fields.pop(key, _OPTIONAL[key]) if key in _OPTIONAL
                    else fields.pop(key))
        if fields:
            raise TypeError(f"unknown fields: {sorted(fields)}")

    def as_dict(self) -> dict[str, Any]:
        return {key: getattr(value, "as_dict", getattr(value, "to_dict", lambda v=value: v))()
                for key in self.__slots__ for value in (getattr(self, key),)}  # plans: their own

    def __repr__(self) -> str:
        return "Spec(" + ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__) + ")"


def parse_env_line(item: str, host_env: Mapping[str, str], where: str) -> tuple[str, str] | None:
    """``NAME=value`` -> (NAME, value); ``NAME`` -> the caller's value, or None if unset."""
    name, sep, value = item.partition("=")
    if not name:
        raise UsageError(f"invalid environment variable: {item!r}{where}")
    if any(c.isspace() for c in name):
        raise UsageError(f"invalid environment variable {name!r}: contains whitespace{where}")
    if sep:
        return name, value
    return (name, host_env[name]) if name in host_env else None


def read_env_file(path: str, host_env: Mapping[str, str],
                  where: str | None = None) -> list[tuple[str, str]]:
    """Docker's ``--env-file``: NAME=value lines; ``#`` comments and blank lines skipped.
    ``where``: the file to open, when ``path`` (as typed, for messages) is relative to
    another directory than ours."""
    try:
        with open(where or path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as exc:
        raise UsageError(f"open {path}: {exc.strerror.lower() if exc.strerror else exc}") from None
    pairs = []
    for number, line in enumerate(lines, 1):
        line = line.lstrip()
        if not line or line.startswith("#"):
            continue
        pair = parse_env_line(line, host_env, f" in {path} line {number}")
        if pair:
            pairs.append(pair)
    return pairs


def build_env(image_env: Sequence[str], env_files: Sequence[str], env: Sequence[str],
              host_env: Mapping[str, str]) -> dict[str, str]:
    merged: dict[str, str] = {}
    for item in image_env:
        name, _, value = item.partition("=")
        merged[name] = value
    for path in env_files:
        merged.update(read_env_file(path, host_env))
    for item in env:
        pair = parse_env_line(item, host_env, "")
        if pair:
            merged[pair[0]] = pair[1]
    return merged


def command(image_config: Mapping[str, Any], args: Sequence[str],
            entrypoint: str | None) -> list[str]:
    if entrypoint is not None:
        ep = [entrypoint] if entrypoint else []
        cmd = list(args)
    else:
        ep = list(image_config.get("Entrypoint") or [])
        cmd = list(args) or list(image_config.get("Cmd") or [])
    argv = ep + cmd
    if not argv:
        raise UsageError("no command specified")
    return argv


def validate_hostname(name: str) -> str:
    if not name or len(name) > HOSTNAME_MAX or any(c.isspace() or c == "/" for c in name):
        raise UsageError(f"invalid hostname: {name!r}")
    return name


def make_spec(*, cid: str, name: str, image_ref: str, image_id: str,
              image_config: Mapping[str, Any], args: Sequence[str] = (),
              entrypoint: str | None = None, env: Sequence[str] = (),
              env_files: Sequence[str] = (), workdir: str | None = None,
              user: str | None = None, hostname: str | None = None, tty: bool = False,
              interactive: bool = False, init: bool = False, remove: bool = False,
              namespaces: Sequence[str] = DEFAULT_KINDS,
              host_env: Mapping[str, str] | None = None,
              resources: Mapping[str, Any] | None = None, cgroup_parent: str = "",
              network: Mapping[str, Any] | None = None,
              security: SecurityPlan | None = None, stop_signal: str = "",
              mounts: Sequence[Mapping[str, Any]] = (), read_only: bool = False) -> Spec:
    """Merge ``run``'s options with the image's config (the ``config`` object of the OCI
    image config: Env, Cmd, Entrypoint, WorkingDir, User)."""
    if "uts" not in namespaces:
        if hostname is not None:
            raise UsageError("conflicting options: hostname and the UTS mode")
        hostname = os.uname().nodename
    hostname = validate_hostname(hostname) if hostname is not None else cid[:12]
    environ = build_env(image_config.get("Env") or [], env_files, env,
                        os.environ if host_env is None else host_env)
    environ.setdefault("PATH", DEFAULT_PATH)
    environ["HOSTNAME"] = hostname
    if tty:
        environ.setdefault("TERM", "xterm")
    workdir = workdir or image_config.get("WorkingDir") or "/"
    if not workdir.startswith("/"):
        raise UsageError(f"the working directory {workdir!r} is invalid, it needs to be an "
                         "absolute path")
    user = user or image_config.get("User") or "0"
    users.parse_spec(user)  # a syntax error is caught now, before anything is created
    return Spec(id=cid, name=name, image=image_ref, image_id=image_id,
                argv=command(image_config, args, entrypoint), env=environ, workdir=workdir,
                user=user, hostname=hostname, tty=tty, interactive=interactive, init=init,
                remove=remove, namespaces=list(namespaces), resources=dict(resources or {}),
                cgroup_parent=cgroup_parent, network=dict(network or {"mode": "none"}),
                security=security,
                stop_signal=stop_signal or str(image_config.get("StopSignal") or ""),
                mounts=[dict(m) for m in mounts], read_only=read_only)
