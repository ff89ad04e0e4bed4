"""The table of ``minidocker`` commands: which module of :mod:`minidocker.commands` holds each,
its one-line help, and the argparse builder they share.

It sits below both the dispatcher (:mod:`minidocker.cli`) and the command modules, so a command
that runs another (``container ls`` is ``ps``) finds it here, without importing the CLI.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable

# Each command: the module of minidocker.commands that holds its ``cmd_<name>`` function
# (None: minidocker.cli itself), and its one-line help. Modules are imported only for their
# command.
COMMANDS: dict[str, tuple[str | None, str]] = {
    "run": ("run", "Create and run a new container from an image"),
    "import": ("images", "Import the contents from a tarball to create a filesystem image"),
    "images": ("images", "List images"),
    "image": ("images", "Manage images (inspect, prune, ls, rm, tag, history, save, load)"),
    "tag": ("images", "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE"),
    "rmi": ("images", "Remove one or more images"),
    "history": ("images", "Show the history of an image"),
    "save": ("images", "Save one or more images to a tar archive (streamed to STDOUT by default)"),
    "load": ("images", "Load an image from a tar archive or STDIN"),
    "commit": ("images", "Create a new image from a container's changes"),
    "diff": ("images", "Inspect changes to files or directories on a container's filesystem"),
    "export": ("images", "Export a container's filesystem as a tar archive"),
    "pull": ("registry", "Download an image from a registry"),
    "push": ("registry", "Upload an image to a registry"),
    "login": ("registry", "Log in to a registry"),
    "logout": ("registry", "Log out from a registry"),
    "search": ("registry", "Search Docker Hub, or a registry's catalog, for images"),
    "update": ("resources", "Update configuration of one or more containers"),
    "pause": ("resources", "Pause all processes within one or more containers"),
    "unpause": ("resources", "Unpause all processes within one or more containers"),
    "stats": ("resources", "Display a live stream of container(s) resource usage statistics"),
    "network": ("network", "Manage networks (create, ls, inspect, rm, connect, disconnect, "
                           "prune)"),
    "port": ("network", "List port mappings or a specific mapping for the container"),
    "volume": ("volumes", "Manage volumes (create, ls, inspect, rm, prune)"),
    "build": ("build", "Build an image from a Dockerfile"),
    "create": ("run", "Create a new container"),
    "ps": ("listing", "List containers"),
    "logs": ("attaching", "Fetch the logs of a container"),
    "start": ("containers", "Start one or more stopped containers"),
    "stop": ("containers", "Stop one or more running containers"),
    "kill": ("containers", "Kill one or more running containers"),
    "restart": ("containers", "Restart one or more containers"),
    "rm": ("containers", "Remove one or more containers"),
    "wait": ("containers", "Block until one or more containers stop, then print their exit "
                           "codes"),
    "attach": ("attaching", "Attach local standard input, output, and error streams to a "
                             "running container"),
    "exec": ("attaching", "Execute a command in a running container"),
    "inspect": ("listing", "Return low-level information on containers"),
    "top": ("listing", "Display the running processes of a container"),
    "rename": ("containers", "Rename a container"),
    "container": ("containers", "Manage containers (ls, prune, and the commands above)"),
    "system": ("containers", "Manage minidocker (prune: reconcile records with the kernel)"),
    "lab": ("lab", "Start JupyterLab on the lessons (url: its address; reset: remove what "
                   "lessons left)"),
    "doctor": (None, "Check that this host can run containers, with a fix for each problem"),
    "version": (None, "Show the minidocker version"),
}


def parser(prog: str, description: str, usage: str | None = None) -> argparse.ArgumentParser:
    """argparse for the commands off the start-up path (see :func:`minidocker.flags.argparser`)."""
    from minidocker.flags import argparser

    return argparser(prog, description, usage)


def function(name: str) -> Callable[[list[str]], int] | None:
    """The ``cmd_<name>`` function of a command held in :mod:`minidocker.commands`, importing
    its module only now; None for an unknown command or one :mod:`minidocker.cli` holds."""
    module = COMMANDS[name][0] if name in COMMANDS else None
    if module is None:
        return None
    function = "cmd_" + name.replace("-", "_")
    mod = __import__(f"minidocker.commands.{module}", fromlist=[function])
    return getattr(mod, function)  # type: ignore[no-any-return,unused-ignore]
