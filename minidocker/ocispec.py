"""The OCI image format's names: media types, annotations, and the host's platform.

An image is JSON and tars, each named by a media type (image-spec ``media-types.md``), listed
in an index whose entries carry annotations (``annotations.md``). These names are shared by the
store, ``save``/``load``, the registry client and the built-in image, so they live here, below
all of them: a module that only needs a name need not import the store.

Notebook: ``05_images``. See the OCI image-spec, and Docker's image manifest v2 schema 2.
"""

from __future__ import annotations

import os

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar"
MEDIA_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
# Docker's own schema-2 names for the same things, as a registry may serve them.
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
PLAIN_LAYERS = (MEDIA_LAYER, DOCKER_LAYER)
GZIP_LAYERS = (MEDIA_LAYER_GZIP, DOCKER_LAYER_GZIP)

ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"  # familiar: busybox:latest
ANNOTATION_IMAGE_NAME = "io.containerd.image.name"  # canonical: docker.io/library/busybox:latest
LAYOUT_VERSION = "1.0.0"

DEFAULT_PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# The fields of an image config's "config" object (image-spec config.md) a caller may set.
CONFIG_FIELDS = ("User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Volumes", "WorkingDir",
                 "Labels", "StopSignal")
# uname -m -> the GOARCH names OCI uses for "architecture".
_GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "armv6l": "arm",
           "i686": "386", "i386": "386", "ppc64le": "ppc64le", "s390x": "s390x",
           "riscv64": "riscv64"}


def host_architecture() -> str:
    machine = os.uname().machine
    return _GOARCH.get(machine, machine)
