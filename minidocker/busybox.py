"""The built-in ``busybox`` image, made from the host's static busybox: no network needed.

**What an image is.** Nothing more than files and JSON, addressed by digest (OCI image-spec):

- one or more *layers*, each a tar of a filesystem (or of the changes to the one below);
- a *config*: how to run it (``Env``, ``Cmd``, ``WorkingDir``...) and, in ``rootfs.diff_ids``,
  the sha256 of each layer tar, so the config pins the exact filesystem;
- a *manifest* pointing at the config and the layer blobs by digest. The image ID Docker shows
  is the config's digest.

So building an image needs no registry and no daemon: make a tar, write a config, store both.
Here the tar holds ``/bin/busybox`` (one static binary containing ``sh``, ``ls``, ``ps``... as
"applets"), one symlink per applet pointing at it (busybox looks at ``argv[0]`` to know which
applet it is), the usual top-level directories, and ``/etc/passwd`` and ``/etc/group`` like
Docker Hub's busybox image.

**Reproducible.** Every entry has the same owner (0:0) and mtime (that of the host's binary),
entries come in sorted order, and the config's timestamps are that same mtime: two builds on
the same host give the same digests, byte for byte. The binary must be static (``busybox-static``
on Debian), because the container will have no ``/lib`` to load a dynamic one from.
"""

from __future__ import annotations

import io
import os
import re
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any

from minidocker.errors import HostError
from minidocker.ocispec import DEFAULT_PATH_ENV, host_architecture

# The store builds this image on first use (ImageStore.resolve calls install), so this module
# must not import the store at run time: it is handed one, and names its types only for mypy.
if TYPE_CHECKING:
    import tarfile

    from minidocker.store import Image, ImageStore

BUSYBOX = Path("/bin/busybox")
IMAGE_NAME = "busybox:latest"
INSTALL_HINT = "apt-get install busybox-static"

# Directory -> mode. /tmp is sticky and world-writable; /root is private, as on any distro.
DIRECTORIES = {
    "bin": 0o755, "dev": 0o755, "etc": 0o755, "home": 0o755, "proc": 0o755,
    "root": 0o700, "sbin": 0o755, "sys": 0o755, "tmp": 0o1777, "usr": 0o755,
    "usr/bin": 0o755, "usr/sbin": 0o755, "var": 0o755, "var/spool": 0o755,
    "var/spool/mail": 0o755, "var/www": 0o755,
}

PASSWD = """\
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
"""

GROUP = """\
root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
lp:x:7:
mail:x:8:
kmem:x:9:
wheel:x:10:root
cdrom:x:11:
dialout:x:18:
floppy:x:19:
video:x:28:
audio:x:29:
tape:x:32:
www-data:x:33:
operator:x:37:
staff:x:50:
netdev:x:82:
users:x:100:
nogroup:x:65534:
"""

_PT_INTERP = 3  # ELF program header naming the dynamic loader (elf(5))


def install(store: ImageStore, binary: Path = BUSYBOX) -> Image:
    """Build the image and save it as ``busybox:latest`` through the store's write path."""
    data = check_static(binary)
    mtime = int(os.stat(binary).st_mtime)
    tar = build_rootfs(data, applets(binary), mtime)
    layer = store.add_layer(io.BytesIO(tar), label="busybox rootfs")
    return store.write_image(image_config(binary, mtime), [layer], IMAGE_NAME)


def check_static(binary: Path = BUSYBOX) -> bytes:
    """Return the binary's bytes if it is a statically linked ELF, else raise ``HostError``."""
    try:
        data = binary.read_bytes()
    except FileNotFoundError:
        raise HostError(f"{binary} not found: the built-in busybox image needs it "
                        f"({INSTALL_HINT})") from None
    if not data.startswith(b"\x7fELF"):
        raise HostError(f"{binary} is not an ELF executable ({INSTALL_HINT})")
    if _has_interpreter(data):
        raise HostError(f"{binary} is dynamically linked and would not run in an empty rootfs "
                        f"({INSTALL_HINT})")
    return data


def _has_interpreter(elf: bytes) -> bool:
    """True if the ELF asks for a dynamic loader (a ``PT_INTERP`` program header)."""
    endian = "<" if elf[5] == 1 else ">"
    if elf[4] == 2:  # ELFCLASS64
        phoff, = struct.unpack_from(endian + "Q", elf, 0x20)
        phentsize, phnum = struct.unpack_from(endian + "HH", elf, 0x36)
    else:
        phoff, = struct.unpack_from(endian + "I", elf, 0x1C)
        phentsize, phnum = struct.unpack_from(endian + "HH", elf, 0x2A)
    return any(struct.unpack_from(endian + "I", elf, phoff + i * phentsize)[0] == _PT_INTERP
               for i in range(phnum))


def applets(binary: Path = BUSYBOX) -> list[str]:
    """The applet paths busybox installs itself as (``bin/sh``, ``usr/bin/[``...), sorted."""
    output = _run(binary, "--list-full")
    paths = {line.strip().lstrip("/") for line in output.splitlines()}
    return sorted(p for p in paths if p and p != "bin/busybox" and ".." not in p.split("/"))


def build_rootfs(busybox: bytes, applet_paths: list[str], mtime: int) -> bytes:
    """The rootfs as an uncompressed tar, the same bytes for the same inputs."""
    import tarfile

    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = dict(DIRECTORIES)
        for path in applet_paths:  # any directory an applet needs, even one we did not list
            parent = os.path.dirname(path)
            while parent and parent not in dirs:
                dirs[parent] = 0o755
                parent = os.path.dirname(parent)
        for path in sorted(dirs):  # sorted: a parent comes before its children
            tar.addfile(_entry(path, tarfile.DIRTYPE, dirs[path], mtime))
        binary = _entry("bin/busybox", tarfile.REGTYPE, 0o755, mtime)
        binary.size = len(busybox)
        tar.addfile(binary, io.BytesIO(busybox))
        for path in applet_paths:
            link = _entry(path, tarfile.SYMTYPE, 0o777, mtime)
            link.linkname = "/bin/busybox"  # resolved inside the container, where / is ours
            tar.addfile(link)
        for path, text in (("etc/group", GROUP), ("etc/passwd", PASSWD)):
            data = text.encode()
            entry = _entry(path, tarfile.REGTYPE, 0o644, mtime)
            entry.size = len(data)
            tar.addfile(entry, io.BytesIO(data))
    return out.getvalue()


def _entry(path: str, kind: bytes, mode: int, mtime: int) -> tarfile.TarInfo:
    import tarfile

    info = tarfile.TarInfo(path)
    info.type, info.mode, info.mtime = kind, mode, mtime
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def image_config(binary: Path, mtime: int) -> dict[str, Any]:
    """The OCI image config (image-spec ``config.md``); ``rootfs`` is filled in by the store."""
    from minidocker.timefmt import format_time

    created = format_time(mtime * 1_000_000_000)  # whole seconds: no fraction, as before
    version = _version(binary)
    return {
        "created": created,
        "architecture": host_architecture(),
        "os": "linux",
        "config": {
            "Env": [DEFAULT_PATH_ENV],
            "Cmd": ["sh"],
            "WorkingDir": "/",
            "Labels": {
                "org.opencontainers.image.title": "busybox",
                "org.opencontainers.image.version": version,
                "org.opencontainers.image.description":
                    f"built by minidocker from the host's static {binary} (busybox-static)",
            },
        },
        "history": [{
            "created": created,
            "created_by": f"minidocker: {binary} and a symlink per applet, /etc/passwd, "
                          "/etc/group",
            "comment": "built in: made from the host's busybox-static, no network needed",
        }],
    }


def _version(binary: Path) -> str:
    match = re.search(r"BusyBox v(\S+)", _run(binary, "--help"))
    return match.group(1) if match else "unknown"


def _run(binary: Path, arg: str) -> str:
    import subprocess

    try:
        result = subprocess.run([str(binary), arg], capture_output=True, text=True, check=False)
    except OSError as exc:
        raise HostError(f"cannot run {binary}: {exc.strerror} ({INSTALL_HINT})") from None
    if arg == "--list-full" and result.returncode != 0:
        raise HostError(f"{binary} --list-full failed with status {result.returncode}: "
                        f"{result.stderr.strip() or 'no message'}")
    return result.stdout + result.stderr
