"""PID 1: signals, zombies, and ``--init``.

The first process in a PID namespace is special, in two ways that surprise people:

- **Signals.** The kernel does not apply a *default* action to PID 1 for signals sent from
  inside its namespace, and from outside only SIGKILL and SIGSTOP are forced. A program that
  installs no SIGTERM handler (``sleep``, most shells) therefore ignores ``docker stop``'s
  SIGTERM and is killed by SIGKILL ten seconds later.
- **Zombies.** Orphaned processes in the namespace are re-parented to PID 1, which must wait(2)
  for them, or they stay as zombies, each holding a PID, until the container exits.

``--init`` puts a minimal init in front of the command: PID 1 is a small process that forwards
every catchable signal to the command (so SIGTERM behaves as it does on the host) and reaps every
zombie, and exits with the command's status when it ends. Docker uses tini for this; here it is
:func:`run_init`, a forked copy of minidocker itself that never execs.

The CLI side of the same idea is :func:`proxy_signals`: ``minidocker run`` (without ``-t``)
forwards the signals it receives to the container, as Docker's ``--sig-proxy`` does.

Man pages: pid_namespaces(7) ("The namespace init process"), wait(2), signal(7).
"""

from __future__ import annotations

import os
import signal

# Signals forwarded to the container. SIGCHLD/SIGKILL/SIGSTOP/SIGWINCH are not: the first is
# ours, the next two can't be caught, and the terminal handles the last.
FORWARDED = (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGUSR1,
             signal.SIGUSR2, signal.SIGCONT, signal.SIGALRM, signal.SIGPIPE)


def exit_code(status: int) -> int:
    """A wait status as a shell sees it: the exit code, or 128 + the signal number."""
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def proxy_signals(pid: int) -> None:
    """Forward every signal in ``FORWARDED`` that this process receives to ``pid``."""
    def forward(signum: int, _frame: object) -> None:
        try:  # noqa: SIM105 -- contextlib costs start-up time
            os.kill(pid, signum)
        except ProcessLookupError:
            pass  # already gone: its exit is being collected

    for sig in FORWARDED:
        signal.signal(sig, forward)


def run_init(child: int) -> int:
    """PID 1's loop for ``--init``: forward signals to ``child``, reap every zombie.

    Returns ``child``'s exit code once it has exited; the caller exits with it, and the kernel
    then kills whatever is left in the namespace.
    """
    proxy_signals(child)  # (PID 1 was named "init" before it forked: see container.start_init)
    while True:
        pid, status = os.wait()  # any child: ours, or an orphan re-parented to PID 1
        if pid == child:
            return exit_code(status)
