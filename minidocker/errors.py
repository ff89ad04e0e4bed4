"""The error tree.

Every failure minidocker reports to a user is a ``MinidockerError``: one line, naming the bad
value, path or syscall, with the exit code Docker would give. Kernel failures stay ``OSError``
(the syscall layer adds a note naming the call and its symbolic flags); the CLI turns them into
one line too.

Exit codes follow ``docker run``:

- 125: the runtime itself failed (bad flag, unknown image, a mount that failed);
- 126: the command was found but could not be invoked (permission denied, not a program);
- 127: the command was not found;
- anything else is the container's own status (128 + N when killed by signal N).
"""

from __future__ import annotations

EXIT_RUNTIME = 125
EXIT_CANNOT_INVOKE = 126
EXIT_NOT_FOUND = 127


class MinidockerError(Exception):
    """Base of every error minidocker reports: one line of text and an exit code."""

    exit_code = EXIT_RUNTIME


class UsageError(MinidockerError):
    """A flag or argument that cannot be understood (a bad ``-e``, ``-u``, name...)."""


class ImageError(MinidockerError):
    """Anything wrong with an image or the image store."""


class InvalidReference(ImageError):
    """An image reference that does not parse (``Busybox``, ``a:b:c``...)."""


class ImageNotFound(ImageError):
    """No image with that name, tag or ID in the store."""


class UnsafeArchive(ImageError):
    """A tar entry that would land outside the layer (``../``, absolute, through a symlink)."""


class CorruptBlob(ImageError):
    """A blob whose content does not match its digest, or that is missing or unreadable."""


class RegistryError(ImageError):
    """A registry refused or failed a request, or served something that does not check out."""


class Unauthorized(RegistryError):
    """The registry wants credentials we do not have, or refused the ones we sent."""


class DockerfileError(UsageError):
    """A Dockerfile that does not parse: one line, ``Dockerfile:LINE: INSTRUCTION: why``."""


class ContainerError(MinidockerError):
    """Anything wrong with a container record."""


class ContainerNotFound(ContainerError):
    """No container with that name or ID."""


class NameConflict(ContainerError):
    """The container name is already taken."""


class RootfsError(MinidockerError):
    """Setting up the container's root filesystem failed in a way we can explain."""


class HostError(MinidockerError):
    """The host cannot run containers (not root, no overlayfs...). ``doctor`` says why."""


class ExecError(MinidockerError):
    """The container's command could not be started; carries 126 or 127."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code
