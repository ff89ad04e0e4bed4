"""The ``minidocker`` commands, one module per area (run, images, containers, resources,
networks). :data:`minidocker.commands.table.COMMANDS` says which module holds each command's
``cmd_<name>(argv) -> int``; a module is imported only when one of its commands runs."""
