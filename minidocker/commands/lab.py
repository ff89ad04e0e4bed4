"""``minidocker lab``: JupyterLab on the lessons, and a reset of what the lessons left behind.

``minidocker lab`` starts the venv's JupyterLab (the one ``scripts/setup.sh`` installed) on the
repository's ``notebooks/``. It execs it, so the process that prints the URL is the server: a
terminal's ctrl-c, ``kill PID`` and systemd's stop all reach JupyterLab itself. It listens on
127.0.0.1 unless ``--ip`` says otherwise; anything else gets a warning, because whoever reaches
the port with the token runs code as this user (root, on a lesson machine).

The token is kept in a file (``~/.config/minidocker/lab-token``, mode 0600, made on first use)
and handed over through ``JUPYTER_TOKEN_FILE``, never on the command line, where ``ps`` would
show it to every user. The same token survives restarts of the service, so the URL that
``minidocker lab url`` prints stays valid.

The lessons as shipped are *trusted* before the server starts (signed with this user's Jupyter
notebook secret, as ``jupyter trust`` does): JupyterLab renders an untrusted notebook's saved
widgets as their text fallback (``VBox(children=...)``), because a widget's renderer is not
"safe", so without it a lesson opened without running it shows no widget. Only the repository's
own lessons are signed, by their content: a copy with the same bytes is trusted too, a notebook
from elsewhere in ``--notebook-dir`` is not.

``minidocker lab reset`` (or ``--reset``) removes what lessons made and did not clean up -- a
kernel killed mid-lesson never runs its clean-up cell. Every lesson keeps its containers,
images, volumes and networks in a state root of its own, a temporary directory
(:class:`minidocker.lab.Lab`: ``mdlab-*`` with a ``lab/`` directory inside;
:class:`minidocker.overlaylab.OverlayLab`: ``mdlab-ovl-*`` with ``upper``, ``work`` and
``merged``), and lesson 06 has a network namespace named after its root. A reset stops each
such root's containers and supervisor by PID (:func:`minidocker.client.stop_everything`), deletes
its network namespace and the directory, and says so. It touches nothing else: not
``/var/lib/minidocker``, not a directory of that prefix without the shape a lab gives it, not
another user's, and not one with something mounted below it (deleting through a mount could
delete the mounted files).
"""

from __future__ import annotations

import os
import re
import signal
import sys
import tempfile
import time

from minidocker.cli import COMMANDS, parser
from minidocker.errors import UsageError

# minidocker.lab.STATE_ROOT_PREFIX, and the start of minidocker.overlaylab.PREFIX. The notebook
# helpers sit above this command in the layers, so it names the prefix itself; a unit test
# checks the three agree.
LESSON_ROOT_PREFIX = "mdlab-"
OVERLAY_ROOT_PREFIX = "mdlab-ovl-"
NETNS_DIR = "/run/netns"
DEFAULT_PORT = 8888
DEFAULT_IP = "127.0.0.1"

_USAGE = """minidocker lab [--ip ADDR] [--port N] [--notebook-dir DIR]
       minidocker lab url [--port N]
       minidocker lab reset      (or: minidocker lab --reset)"""


def cmd_lab(argv: list[str]) -> int:
    if argv[:1] == ["reset"]:
        return _reset_command(argv[1:])
    if argv[:1] == ["url"]:
        return _url_command(argv[1:])
    p = parser("minidocker lab", COMMANDS["lab"][1], _USAGE)
    p.add_argument("--ip", default=DEFAULT_IP,
                   help=f"the address to listen on (default {DEFAULT_IP}; anything else is "
                        "reachable from other machines, and gets a warning)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help=f"the port (default {DEFAULT_PORT}); taken means an error, never "
                        "another port")
    p.add_argument("--notebook-dir", help="the lessons (default: the repository's notebooks/)")
    p.add_argument("--token-file", help="where the token is kept "
                                        "(default ~/.config/minidocker/lab-token)")
    p.add_argument("--reset", action="store_true",
                   help="remove what lessons left behind, then exit (see `minidocker lab reset`)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the JupyterLab command line instead of running it")
    args = p.parse_args(argv)
    if args.reset:
        return reset()
    _check_port(args.port)
    loopback = _check_ip(args.ip)
    notebooks = os.path.abspath(args.notebook_dir or default_notebook_dir())
    if not os.path.isdir(notebooks):
        raise UsageError(f"no notebook directory {notebooks}: pass --notebook-dir DIR")
    token_file = args.token_file or default_token_file()
    argv_lab = jupyter_argv(args.ip, args.port, notebooks)
    if args.dry_run:
        print(" ".join(argv_lab))
        return 0
    _require_jupyterlab()
    trust_lessons(lesson_files())
    token = ensure_token(token_file)
    if not loopback:
        print(f"minidocker lab: warning: listening on {args.ip}, not only on this machine: "
              f"anyone who reaches port {args.port} with the token runs code as uid "
              f"{os.geteuid()}", file=sys.stderr)
    print(f"JupyterLab for the minidocker lessons in {notebooks}:\n"
          f"    {url(args.port, token)}\n"
          f"(`minidocker lab url` prints it again; the token is kept in {token_file})",
          flush=True)
    env = {**os.environ, "JUPYTER_TOKEN_FILE": token_file,
           "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}
    env.pop("JUPYTER_TOKEN", None)  # the file is the one source of the token
    os.execve(sys.executable, argv_lab, env)


def jupyter_argv(ip: str, port: int, notebooks: str) -> list[str]:
    """The JupyterLab command line: this venv's interpreter, never a ``jupyter`` from PATH
    (the launcher runs with ``-I -S``, but the server needs its site-packages)."""
    argv = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--ip={ip}", f"--port={port}",
            "--ServerApp.port_retries=0",  # a fixed port: Vagrant forwards exactly this one
            f"--ServerApp.root_dir={notebooks}",
            # Offline classrooms and VMs: no news feed, no update checks over the network.
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if os.geteuid() == 0:
        argv.append("--allow-root")  # the lessons run containers: they need root
    return argv


def default_notebook_dir() -> str:
    """``notebooks/`` beside the package, in the repository ``setup.sh`` installed from."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.path.join(os.path.dirname(package), "notebooks")


def lesson_files() -> list[str]:
    """The repository's lessons, as shipped."""
    lessons = default_notebook_dir()
    return sorted(os.path.join(lessons, name) for name in os.listdir(lessons)
                  if name.endswith(".ipynb")) if os.path.isdir(lessons) else []


# Signs in the server's own interpreter and environment (the launcher runs with -I -S, without
# the venv's site-packages), so the signatures land in the notary database the server reads.
_TRUST = """
import sys
import nbformat
from nbformat.sign import NotebookNotary
notary = NotebookNotary()
for path in sys.argv[1:]:
    notary.sign(nbformat.read(path, as_version=4))
"""


def trust_lessons(paths: list[str]) -> None:
    """Sign ``paths`` as trusted, as ``jupyter trust`` does, so their saved widgets render."""
    import subprocess

    if not paths:
        return
    done = subprocess.run([sys.executable, "-c", _TRUST, *paths], capture_output=True,
                          text=True)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or [f"exit {done.returncode}"]
        print(f"minidocker lab: warning: could not mark the lessons trusted ({lines[-1]}): "
              "their saved widgets show as text until each lesson runs", file=sys.stderr)


def default_token_file() -> str:
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"),
                                                               ".config")
    return os.path.join(config, "minidocker", "lab-token")


def ensure_token(path: str) -> str:
    """The token kept in ``path``; a new random one (0600) if there is none yet."""
    try:
        with open(path) as f:
            token = f.read().strip()
        if token:
            return token
    except FileNotFoundError:
        pass
    import secrets

    token = secrets.token_hex(24)
    os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
    fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token)  # no newline: jupyter_server reads the file's bytes as they are
    os.replace(path + ".tmp", path)
    return token


def url(port: int, token: str, host: str = "127.0.0.1") -> str:
    return f"http://{host}:{port}/lab?token={token}"


def _url_command(argv: list[str]) -> int:
    p = parser("minidocker lab url", "print the URL of the lessons' JupyterLab, with its token",
               "minidocker lab url [--port N] [--token-file FILE]")
    p.add_argument("--port", type=int, default=DEFAULT_PORT)
    p.add_argument("--token-file")
    args = p.parse_args(argv)
    _check_port(args.port)
    path = args.token_file or default_token_file()
    try:
        with open(path) as f:
            token = f.read().strip()
    except FileNotFoundError:
        raise UsageError(f"no token in {path}: start the lab first (minidocker lab)") from None
    print(url(args.port, token))
    return 0


def _check_port(port: int) -> None:
    if not 0 < port < 65536:
        raise UsageError(f"invalid port {port}: it must be 1-65535")


def _check_ip(ip: str) -> bool:
    """Is ``ip`` a loopback address? Refuses what is not an address at all."""
    import ipaddress

    if ip == "localhost":
        return True
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        raise UsageError(f"invalid --ip {ip!r}: give an address such as 127.0.0.1 or "
                         "0.0.0.0") from None


def _require_jupyterlab() -> None:
    import subprocess

    done = subprocess.run([sys.executable, "-c", "import jupyterlab"], capture_output=True)
    if done.returncode != 0:
        raise UsageError(f"JupyterLab is not installed for {sys.executable}: run "
                         "`sudo bash scripts/setup.sh` (it installs the notebooks extra)")


# -- reset ------------------------------------------------------------------------------------

def _reset_command(argv: list[str]) -> int:
    p = parser("minidocker lab reset", "remove the state lessons left behind (containers, "
               "images, networks), and nothing else", "minidocker lab reset")
    p.parse_args(argv)
    return reset()


def is_lesson_root(path: str) -> bool:
    """Does ``path`` have the shape a lesson's lab gives its state root (see the docstring)?"""
    name = os.path.basename(path)
    if not name.startswith(LESSON_ROOT_PREFIX) or os.path.islink(path) or \
            not os.path.isdir(path):
        return False
    if os.stat(path).st_uid != os.geteuid():  # another user's lesson is theirs to reset
        return False
    if name.startswith(OVERLAY_ROOT_PREFIX):
        return all(os.path.isdir(os.path.join(path, d)) for d in ("upper", "work", "merged"))
    return os.path.isdir(os.path.join(path, "lab"))


def lesson_roots(tmp: str) -> list[str]:
    """The lessons' state roots directly in ``tmp`` (where :func:`tempfile.mkdtemp` made them)."""
    try:
        names = sorted(os.listdir(tmp))
    except FileNotFoundError:
        return []
    return [os.path.join(tmp, n) for n in names if is_lesson_root(os.path.join(tmp, n))]


def mounts_below(path: str, mountinfo: str) -> list[str]:
    from minidocker.mountinfo import parse_mountinfo

    prefix = path.rstrip("/") + "/"
    return [m.mount_point for m in parse_mountinfo(mountinfo)
            if m.mount_point == path or m.mount_point.startswith(prefix)]


def netns_of(root: str) -> str:
    """The network namespace :class:`minidocker.lab.Lab` names after a sandboxed root."""
    return os.path.basename(root) + "-net"


def reset(tmp: str | None = None) -> int:
    """Remove every lesson state root in ``tmp`` (default: the temporary directory the
    lessons' kernels use) and what runs from it; print what went. Exit status 0, or 1 if
    something had to be left (it says what and why)."""
    tmp = tmp or tempfile.gettempdir()
    roots = lesson_roots(tmp)
    if not roots:
        print(f"nothing to reset: no lesson state in {tmp}")
        return 0
    left = 0
    for root in roots:
        for line in reset_root(root):
            print(line)
            left += line.startswith("left ")
    return 1 if left else 0


def reset_root(root: str) -> list[str]:
    """Stop, unlink and delete one lesson state root; one line per thing done or left."""
    import shutil

    lines = []
    done: list[str] = []
    if os.path.isdir(os.path.join(root, "containers")) or \
            os.path.isdir(os.path.join(root, "supervisor")):
        from minidocker import client, state

        done += client.stop_everything(state.Layout(root))
    done += _end_processes_of(root)
    netns = netns_of(root)
    if os.path.exists(os.path.join(NETNS_DIR, netns)):
        import subprocess

        gone = subprocess.run(["ip", "netns", "del", netns], capture_output=True, text=True)
        if gone.returncode == 0:
            lines.append(f"removed network namespace {netns}")
        else:
            lines.append(f"left network namespace {netns}: {gone.stderr.strip()}")
    with open("/proc/self/mountinfo") as f:
        mounted = mounts_below(root, f.read())
    if mounted:
        lines.append(f"left {root}: {mounted[0]} is mounted (umount it, then reset again)")
        return lines
    shutil.rmtree(root, ignore_errors=True)
    if os.path.exists(root):
        lines.append(f"left {root}: it could not be deleted entirely")
        return lines
    kind = "an overlay lesson's" if os.path.basename(root).startswith(OVERLAY_ROOT_PREFIX) \
        else "a lesson's"
    lines.insert(0, f"removed {root} ({kind} state root" +
                 (f"; stopped {', '.join(done)}" if done else "") + ")")
    return lines


_ENV_ROOT = re.compile(rb"(?:^|\0)MINIDOCKER_ROOT=([^\0]*)")


def processes_of(root: str) -> list[int]:
    """PIDs of the ``minidocker`` commands working on ``root``: ``$MINIDOCKER_ROOT`` in their
    environment is ``root`` (a :class:`minidocker.lab.Lab` sets it for every command)."""
    wanted = os.fsencode(root)
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                m = _ENV_ROOT.search(f.read())
        except OSError:  # exited, or not ours to read
            continue
        if m and m.group(1) == wanted:
            pids.append(int(name))
    return pids


def _end_processes_of(root: str, grace: float = 5) -> list[str]:
    """A ``minidocker run`` whose kernel died goes on after its container was killed, to
    record the exit: let it finish, then end what is left by PID, so nothing writes into the
    root while it is deleted."""
    deadline = time.monotonic() + grace
    while (pids := processes_of(root)) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
        for _ in range(100):  # reap-free wait: it is not our child
            if not os.path.exists(f"/proc/{pid}"):
                break
            time.sleep(0.02)
    return [f"process {pid}" for pid in pids]
