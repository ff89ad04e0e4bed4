"""A container's changes become a layer: what ``commit`` and the builder's RUN both do.

``docker commit`` and a Dockerfile's ``RUN`` are one mechanism: a container ran, everything it
wrote is in its own top directory (the overlay upper dir, or the full copy under ``vfs``), and
those changes, read against the image it started from, become one more layer tar in OCI form
(:mod:`minidocker.diff` writes it: whiteouts as ``.wh.`` files, opaque directories with
``.wh..wh..opq``). The layer is staged in the store's ``tmp/``, hashed, and published under
its chain ID above the image's layers (:meth:`minidocker.layerstore.LayerStore.add_staged_layer`).

The init layer's mount points (``/proc``, ``/etc/hostname``...) that the start sequence made
are left out, as Docker keeps them in a layer of their own.

:func:`changes_layer` is the shared step; :func:`commit` adds ``commit``'s image config (the
container's command, env, workdir and user, then ``-c`` instructions); the builder
(:mod:`minidocker.builder`) adds a history entry for its RUN instead.

Notebooks: ``05_images``, ``07_dockerfiles``.
"""

from __future__ import annotations

import os

from minidocker.errors import ImageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from minidocker.diff import Change
    from minidocker.layers import Stack
    from minidocker.lifecycle import Container
    from minidocker.store import Image, ImageStore, Layer


class Files:
    """A container's files as its storage driver recorded them: its own over its image's."""

    def __init__(self, cid: str, cdir: str, image_id: object, store: ImageStore) -> None:
        from minidocker import graphdriver

        self.id = cid
        self.driver, self.lowers = graphdriver.recorded(cdir)
        if not self.lowers:  # a container made before the storage record existed
            if not isinstance(image_id, str):
                raise ImageError(f"container {cid[:12]} records no image")
            self.lowers = [str(p) for p in store.layer_dirs(store.lookup(image_id))]
        # Its own files: the upper dir (overlay) or the full copy (vfs).
        self.top = os.path.join(cdir, "merged" if self.driver == "vfs" else "upper")

    @classmethod
    def of(cls, c: Container, store: ImageStore) -> Files:
        return cls(c.id, c.dir, c.config.get("image_id"), store)

    def image_stack(self) -> Stack:
        from minidocker.layers import Stack

        missing = [d for d in self.lowers if not os.path.isdir(d)]
        if missing:
            raise ImageError(f"container {self.id[:12]}: its image layer {missing[0]} is gone")
        return Stack(self.lowers, whiteouts="oci" if self.driver == "vfs" else "overlay")

    def ignore(self) -> set[str]:
        from minidocker import diff, rootfs

        return diff.init_placeholders(self.top, rootfs.INIT_DIRS, rootfs.INIT_FILES)

    def changes(self) -> list[Change]:
        from minidocker import diff

        if self.driver == "vfs":
            return diff.tree_changes(self.top, self.image_stack(), self.ignore())
        return diff.upper_changes(self.top, self.image_stack(), self.ignore())


def changes_layer(files: Files, store: ImageStore, base: Image) -> Layer:
    """The container's changes as a new layer above ``base``'s, published in ``store``."""
    import tempfile
    from pathlib import Path

    from minidocker import diff

    stack = files.image_stack()
    with store.writing():
        fd, name = tempfile.mkstemp(prefix=f"commit-{os.getpid()}-", suffix=".tar",
                                    dir=store.tmp_dir)
        staged = Path(name)
        try:
            with open(fd, "wb") as out:
                if files.driver == "vfs":
                    found = diff.tree_changes(files.top, stack, files.ignore())
                    diff.write_changes_layer(files.top, found, out)
                else:
                    diff.write_upper_layer(files.top, out, files.ignore())
        except BaseException:
            staged.unlink(missing_ok=True)
            raise
        chains = base.chain_ids()
        return store.add_staged_layer(staged, parent=chains[-1] if chains else None,
                                      label=f"container {files.id[:12]}")


def commit(c: Container, store: ImageStore, ref: str | None, *, author: str | None = None,
           message: str | None = None, changes: list[str] | tuple[str, ...] = ()) -> Image:
    """A new image: the container's image plus one layer of its changes (``docker commit``)."""
    from minidocker import instructions
    from minidocker.store import timestamp

    image_id = c.config.get("image_id")
    try:
        base = store.lookup(str(image_id))
    except ImageError:
        raise ImageError(f"container {c.id[:12]}: its image {image_id} was removed, so there is "
                         "nothing to commit onto") from None
    run_config = instructions.apply(container_run_config(c.config, base), list(changes))
    with store.writing():
        layer = changes_layer(Files.of(c, store), store, base)
        created = timestamp()
        entry: dict[str, Any] = {"created": created}
        if author:
            entry["author"] = author
        entry["created_by"] = " ".join(c.config.get("argv") or [])
        if message:
            entry["comment"] = message
        config = {k: v for k, v in base.config.items() if k not in ("rootfs", "history")}
        config.update({"created": created, "config": run_config,
                       "history": [*base.history, entry]})
        if author:
            config["author"] = author
        return store.write_image(config, [*base.layers(), layer], ref)


def container_run_config(spec: dict[str, Any], image: Image) -> dict[str, Any]:
    """The image config's ``config`` object as the container ran it: Docker commits the
    container's command, environment, working directory and user, not the image's."""
    config = dict(image.config.get("config") or {})
    argv = [str(a) for a in spec.get("argv") or []]
    entrypoint = list(config.get("Entrypoint") or [])
    if entrypoint and argv[:len(entrypoint)] == entrypoint:
        config["Cmd"] = argv[len(entrypoint):] or None
    elif argv:
        config["Entrypoint"], config["Cmd"] = None, argv
    env = spec.get("env")
    if isinstance(env, dict):
        # HOSTNAME and TERM are the runtime's, not the image's (Docker adds them at start).
        config["Env"] = [f"{k}={v}" for k, v in env.items() if k not in ("HOSTNAME", "TERM")]
    if spec.get("workdir"):
        config["WorkingDir"] = spec["workdir"]
    user = spec.get("user")
    if isinstance(user, str) and not (user == "0" and not config.get("User")):
        config["User"] = user
    return {k: v for k, v in config.items() if v is not None}
