"""nftables: the host firewall rules behind ``-p`` and a bridge's way out.

minidocker keeps every rule it makes in **one table it owns**, ``table ip minidocker``, so it
never edits anyone else's rules and can drop the table when nothing is left in it::

    table ip minidocker {
        chain prerouting  { type nat hook prerouting priority dstnat;   # from other hosts
                            fib daddr type local jump published }
        chain output      { type nat hook output priority -100;         # from this host
                            ip daddr != 127.0.0.0/8 fib daddr type local jump published }
        chain published   { iifname != "minidocker0" tcp dport 8080
                            dnat to 172.17.0.2:80 comment "c=<container id>" ... }
        chain postrouting { type nat hook postrouting priority srcnat;
                            ip saddr 172.17.0.0/16 oifname != "minidocker0" masquerade
                            comment "n=bridge" ... }
        chain forward     { type filter hook forward priority filter;
                            (drops for --internal networks, and between networks) }
    }

- **DNAT** (destination NAT) rewrites where a packet goes: a packet for any local address,
  port 8080, is sent to the container's 172.17.0.2:80 instead; conntrack rewrites the answers
  back. Packets for 127.0.0.0/8 are left alone: the kernel will not route a loopback address
  out of a bridge, so those reach the userland proxy (:mod:`minidocker.proxy`) instead, as
  Docker's OUTPUT rule (``! -d 127.0.0.0/8``) leaves them to docker-proxy.
- **Masquerade** rewrites where a packet comes from: containers' private addresses leave the
  host as the host's own address, so the answers find their way back.

Each rule carries a comment naming its owner (``c=<container id>`` or ``n=<network>``), which
is how one container's rules are found again and deleted (by their ``handle``) on ``rm``.

``nft`` is the one command-line tool minidocker runs: nftables' netlink protocol is large and
``nft`` is its reference client. It is run from :func:`nft` only, and its errors become ours.

Notebook: ``06_networking``. Man pages: nft(8), ip-sysctl (``ip_forward``).
"""

from __future__ import annotations

import time

from minidocker import trace
from minidocker.errors import MinidockerError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

TABLE = "minidocker"
FAMILY = "ip"
CHAINS = (
    ("prerouting", "type nat hook prerouting priority dstnat; policy accept;"),
    ("output", "type nat hook output priority -100; policy accept;"),  # dstnat's value
    ("published", ""),
    ("postrouting", "type nat hook postrouting priority srcnat; policy accept;"),
    ("forward", "type filter hook forward priority filter; policy accept;"),
)
JUMPS = (
    ("prerouting", "fib daddr type local jump published"),
    ("output", "ip daddr != 127.0.0.0/8 fib daddr type local jump published"),
)
OWNED_CHAINS = ("published", "postrouting", "forward")  # where owners' rules live


class NftError(MinidockerError):
    """``nft`` failed or is missing."""


def nft(args: list[str], script: str = "") -> str:
    """Run ``nft ARGS`` (with ``script`` on stdin for ``-f -``); its stdout, or NftError."""
    import subprocess

    t0 = time.monotonic_ns()
    try:
        proc = subprocess.run(["nft", *args], input=script, capture_output=True, text=True,
                              check=False, preexec_fn=_die_with_parent)
    except FileNotFoundError:
        raise NftError("nft: command not found (install the nftables package)") from None
    if trace.enabled():
        shown = [*args, *(repr(line.strip()) for line in script.splitlines() if line.strip())]
        trace.emit("syscall", "nft", shown, str(proc.returncode), time.monotonic_ns() - t0)
    if proc.returncode != 0:
        first = next((line for line in proc.stderr.splitlines() if line.strip()), "")
        raise NftError(f"nft {' '.join(args)}: {first.strip() or f'exit {proc.returncode}'}")
    return proc.stdout


def _die_with_parent() -> None:
    """In the nft child: be killed if minidocker is (``kill -9`` mid-start), so no rule can
    land after its container's clean-up ran. (A transaction is atomic: all or nothing.)"""
    import signal

    from minidocker import syscalls

    trace.set_sink(None)  # the child's copy: nothing to print from here
    syscalls.prctl(syscalls.PR.SET_PDEATHSIG, signal.SIGKILL)


def setup_script() -> str:
    """Create the table, its chains and the jumps into ``published`` (``add`` is idempotent
    for tables and chains; the jumps are added only if the table is new: see :func:`apply`)."""
    lines = [f"add table {FAMILY} {TABLE}"]
    for chain, spec in CHAINS:
        lines.append(f"add chain {FAMILY} {TABLE} {chain}" + (f" {{ {spec} }}" if spec else ""))
    return "\n".join(lines) + "\n"


def jumps_script() -> str:
    return "".join(f"add rule {FAMILY} {TABLE} {chain} {rule}\n" for chain, rule in JUMPS)


def dnat_rule(owner: str, bridge: str, proto: str, host_ip: str, host_port: int,
              address: str, port: int) -> str:
    """The rule that sends ``[host_ip:]host_port`` to ``address:port``. Packets from the
    bridge itself (containers reaching a published port) go through the proxy, as in Docker."""
    match = f"ip daddr {host_ip} " if host_ip not in ("", "0.0.0.0") else ""
    return (f'{match}iifname != "{bridge}" {proto} dport {host_port} '
            f'dnat to {address}:{port} comment "c={owner}"')


def masquerade_rule(network: str, subnet: str, bridge: str) -> str:
    return f'ip saddr {subnet} oifname != "{bridge}" masquerade comment "n={network}"'


def isolation_rules(network: str, bridge: str, internal: bool) -> list[str]:
    """Forward-chain drops: an --internal network reaches nothing beyond its bridge; any bridge
    network is cut off from the others (Docker's DOCKER-ISOLATION chains)."""
    if internal:
        return [f'iifname "{bridge}" oifname != "{bridge}" drop comment "n={network}"',
                f'oifname "{bridge}" iifname != "{bridge}" drop comment "n={network}"']
    rules = [f'iifname "{bridge}" oifname "br-*" oifname != "{bridge}" drop comment '
             f'"n={network}"']
    if bridge != "minidocker0":
        rules.append(f'iifname "{bridge}" oifname "minidocker0" drop comment "n={network}"')
    return rules


def parse_rules(listing: str) -> list[tuple[str, str, int, str]]:
    """``nft -a list table`` output -> (chain, owner comment, handle, rule text) per rule."""
    rules = []
    chain = ""
    for line in listing.splitlines():
        text = line.strip()
        if text.startswith("chain "):
            chain = text.split()[1]
            continue
        if "# handle " not in text or text.startswith(("table ", "}")):
            continue
        body, _, handle = text.rpartition("# handle ")
        owner = ""
        if 'comment "' in body:
            owner = body.split('comment "', 1)[1].split('"', 1)[0]
        rules.append((chain, owner, int(handle), body.strip()))
    return rules


def listing() -> str | None:
    """The table with rule handles, or None if the table does not exist."""
    try:
        return nft(["-a", "list", "table", FAMILY, TABLE])
    except NftError as exc:
        if "No such file or directory" in str(exc):
            return None
        raise


def apply(rules: Iterable[tuple[str, str]]) -> None:
    """Add ``(chain, rule)`` pairs, creating the table first if needed: one nft transaction,
    so either all of them are in place or none is."""
    rules = list(rules)
    if not rules:
        return
    script = setup_script()
    if listing() is None:
        script += jumps_script()
    script += "".join(f"add rule {FAMILY} {TABLE} {chain} {rule}\n" for chain, rule in rules)
    nft(["-f", "-"], script)


def remove_owned(owners: Iterable[str]) -> int:
    """Delete every rule whose comment is one of ``owners`` (``c=<id>``, ``n=<name>``); drop
    the table if no owned rule is left. Returns how many rules were deleted. Idempotent."""
    wanted = set(owners)
    text = listing()
    if text is None:
        return 0
    rules = parse_rules(text)
    doomed = [(chain, handle) for chain, owner, handle, _ in rules if owner in wanted]
    left = [r for r in rules if r[0] in OWNED_CHAINS and r[1] not in wanted]
    if not left:
        nft(["delete", "table", FAMILY, TABLE])
    elif doomed:
        nft(["-f", "-"], "".join(f"delete rule {FAMILY} {TABLE} {chain} handle {handle}\n"
                                 for chain, handle in doomed))
    return len(doomed)


def owners() -> set[str]:
    """Every owner comment in the table (to find rules whose container is gone)."""
    text = listing()
    return {owner for _, owner, _, _ in parse_rules(text)} - {""} if text else set()
