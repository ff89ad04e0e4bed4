"""The ``minidocker`` commands other than ``run``, one module per area (images, containers,
resources, networks). :data:`minidocker.cli.COMMANDS` says which module holds each command's
``cmd_<name>(argv) -> int``; a module is imported only when one of its commands runs."""
