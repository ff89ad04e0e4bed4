"""Networking against the real kernel, each test on a sandbox host of its own.

Every test here makes a network namespace (``ip netns add mdtest<pid>-...``), its *sandbox
host*, and runs ``minidocker`` inside it (``nsenter --net=/run/netns/<name>``): the bridge,
veths, nft table and ``ip_forward`` minidocker makes belong to that namespace and vanish with
it, so this machine's own interfaces and firewall are never touched, and all traffic stays
inside namespaces the test made. The sandbox also gets an interface of its own, ``uplink0``
10.200.0.1/24 (a bridge with nothing on it: the dummy driver is not in every kernel), to play
the host's "real" address.

Where a container needs a program busybox lacks (a UDP server), the test runs one from the
host in the *container's* network namespace (``nsenter --net=/proc/<pid>/ns/net``): the packet
path under test, DNAT to bridge to veth to a socket in that namespace, is the same.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import CLI, TEST_ROOT_MARK, needs_root

pytestmark = [needs_root, pytest.mark.kernel, pytest.mark.nb06]

HOST_IP = "10.200.0.1"
UDP_ECHO = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[1])))
print("ready", flush=True)
while True:
    data, peer = s.recvfrom(2048)
    s.sendto(b"echo:" + data, peer)
"""
CLIENT = """
import socket, sys
proto, host, port, payload = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4].encode()
kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
family = socket.AF_INET6 if ":" in host else socket.AF_INET
for attempt in range(50):
    s = socket.socket(family, kind)
    s.settimeout(1)
    try:
        s.connect((host, port))
        s.send(payload)
        if kind == socket.SOCK_STREAM:
            s.shutdown(socket.SHUT_WR)
        print(s.recv(2048).decode().strip())
        sys.exit(0)
    except OSError:
        s.close()
        __import__("time").sleep(0.1)
sys.exit(1)
"""


class Sandbox:
    """A network namespace standing in for the host, and minidocker run inside it."""

    def __init__(self, cli: CLI) -> None:
        self.name = f"{TEST_ROOT_MARK}net-{uuid.uuid4().hex[:8]}"
        self.cli = cli
        self.root = cli.root
        self.env = {**cli.env, "MINIDOCKER_DEFAULT_NETWORK": "bridge"}
        self.background: list[subprocess.Popen[str]] = []
        self.host_links_before = host_links()
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        try:
            for cmd in ("link set lo up", "link add uplink0 type bridge",
                        f"addr add {HOST_IP}/24 dev uplink0", "link set uplink0 up"):
                self.ip(*cmd.split())
        except BaseException:
            subprocess.run(["ip", "netns", "del", self.name], check=True)
            raise

    @property
    def enter(self) -> list[str]:
        return ["nsenter", f"--net=/run/netns/{self.name}"]

    def ip(self, *args: str) -> str:
        return subprocess.run(["ip", "-n", self.name, *args], check=True, text=True,
                              capture_output=True).stdout

    def sh(self, command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """A shell command on the sandbox host."""
        return subprocess.run([*self.enter, "sh", "-c", command], text=True, capture_output=True,
                              check=check, timeout=30)

    def md(self, *args: str, timeout: float = 60, check: bool = False
           ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([*self.enter, sys.executable, "-m", "minidocker", *args],
                                env=self.env, text=True, capture_output=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"minidocker {' '.join(args)}: {result.stderr}")
        return result

    def start(self, *args: str, stderr: int = subprocess.PIPE) -> subprocess.Popen[str]:
        """``minidocker ARGS`` in the background (foreground ``run`` held open)."""
        proc = subprocess.Popen([*self.enter, sys.executable, "-m", "minidocker", *args],
                                env=self.env, text=True, stdout=subprocess.PIPE, stderr=stderr)
        self.background.append(proc)
        return proc

    def container(self, name: str, timeout: float = 15) -> tuple[str, int]:
        """The ID and host PID of the running container called ``name``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            link = self.root / "names" / name
            if link.is_symlink():
                cid = os.readlink(link)
                state = self.root / "containers" / cid / "state.json"
                if state.exists() and (self.root / "containers" / cid / "network.json").exists() \
                        or state.exists() and '"running"' in state.read_text():
                    pid = json.loads(state.read_text()).get("Pid")
                    if pid:
                        return cid, int(pid)
            time.sleep(0.05)
        raise AssertionError(f"container {name} never started")

    def python(self, script: str, *args: str, netns: str | None = None, background: bool = False
               ) -> subprocess.CompletedProcess[str] | subprocess.Popen[str]:
        enter = ["nsenter", f"--net={netns}"] if netns else self.enter
        argv = [*enter, sys.executable, "-c", script, *args]
        if background:
            proc = subprocess.Popen(argv, text=True, stdout=subprocess.PIPE)
            self.background.append(proc)
            return proc
        return subprocess.run(argv, text=True, capture_output=True, timeout=30)

    def links(self) -> list[str]:
        return re.findall(r"^\d+: ([^:@]+)", self.ip("-o", "link"), re.M)

    def rules(self) -> str:
        return self.sh("nft list ruleset").stdout

    def proxies(self) -> list[int]:
        """md-proxy processes in this sandbox."""
        mine = os.stat(f"/run/netns/{self.name}").st_ino
        found = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                comm = Path(f"/proc/{pid}/comm").read_text().strip()
                if comm == "md-proxy" and os.stat(f"/proc/{pid}/ns/net").st_ino == mine:
                    found.append(int(pid))
            except OSError:
                continue
        return found

    def close(self) -> None:
        for proc in self.background:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.background:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        deadline = time.monotonic() + 5
        while self.proxies() and time.monotonic() < deadline:
            time.sleep(0.05)
        for pid in self.proxies():  # started (indirectly) by this test: end them by pid
            os.kill(pid, signal.SIGKILL)
        subprocess.run(["ip", "netns", "del", self.name], check=True)

    def ours_on_the_host(self) -> list[str]:
        """Links on this machine's own namespace named after this test's containers or
        networks: there must never be any (everything happens in the sandbox)."""
        names = set()
        for d in (self.root / "containers").glob("*"):
            names.add("veth" + d.name.lstrip(".")[:7])
        for record in (self.root / "networks").glob("*.json"):
            names.add(json.loads(record.read_text()).get("Bridge", ""))
        for leases in (self.root / "networks").glob("*.leases"):
            names |= {"veth" + line.split()[1][:7] for line in leases.read_text().splitlines()}
        new = host_links() - self.host_links_before
        return sorted(n for n in new if n in names or n[:-1] in names)  # eth1+: vethXXXXXXX1


def host_links() -> set[str]:
    return set(os.listdir("/sys/class/net"))


@pytest.fixture
def sandbox(cli: CLI):
    box = Sandbox(cli)
    try:
        yield box
    finally:
        box.close()
    assert box.ours_on_the_host() == [], "a test made links in this machine's own namespace"


def wait_gone(check, timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def addresses(text: str) -> list[str]:
    return re.findall(r"inet (\d+\.\d+\.\d+\.\d+)/", text)


# -- the default bridge ---------------------------------------------------------------------------

def test_default_bridge_is_made_on_first_use_with_a_free_subnet(sandbox: Sandbox) -> None:
    sandbox.ip("route", "add", "172.17.0.0/16", "dev", "uplink0")  # 172.17 is taken here
    out = sandbox.md("run", "--rm", "busybox", "sh", "-c",
                     "ip -4 addr show eth0; ip route; ls /sys/class/net", check=True).stdout
    assert addresses(out) == ["172.18.0.2"]
    assert "default via 172.18.0.1 dev eth0" in out
    assert sorted(out.split()[-2:]) == ["eth0", "lo"]
    assert "172.18.0.1/16" in sandbox.ip("-4", "addr", "show", "minidocker0")
    assert 'ip saddr 172.18.0.0/16 oifname != "minidocker0" masquerade' in sandbox.rules()
    assert wait_gone(lambda: [n for n in sandbox.links() if n.startswith("veth")] == [])


def test_trace_shows_every_netlink_message(sandbox: Sandbox) -> None:
    err = sandbox.md("run", "--rm", "--trace", "busybox", "true", check=True).stderr
    assert re.search(r'netlink\(RTM_NEWLINK, NLM_F_CREATE\|NLM_F_EXCL, ifname="minidocker0", '
                     r'kind="bridge"\)', err)
    assert re.search(r'netlink\(RTM_NEWLINK, .*kind="veth", peer=\{ifname="eth0", '
                     r'net_ns_fd=/proc/\d+/ns/net\}\) = 0', err)
    assert re.search(r"netlink\(RTM_NEWADDR, .*172\.17\.0\.2/16", err)
    assert re.search(r"netlink\(RTM_NEWROUTE, .*default, via 172\.17\.0\.1", err)
    assert "nft(-f, -" in err


def test_containers_talk_over_the_bridge_tcp_and_icmp(sandbox: Sandbox) -> None:
    sandbox.start("run", "--rm", "--name", "srv", "busybox", "sh", "-c",
                  "ip -4 addr show eth0; nc -l -p 80 -e echo hello-tcp; sleep 1")
    sandbox.container("srv")
    srv_ip = json.loads((sandbox.root / "containers" / sandbox.container("srv")[0]
                         / "network.json").read_text())["Interfaces"][0]["address"]
    out = sandbox.md("run", "--rm", "busybox", "sh", "-c",
                     f"for i in $(seq 50); do nc {srv_ip} 80 && break; sleep 0.1; done; "
                     f"ping -c1 -W2 {srv_ip} >/dev/null 2>&1; echo ping=$?",
                     check=True).stdout
    assert "hello-tcp" in out
    if "ping=0" not in out:
        pytest.skip("ICMP unavailable in the container (no CAP_NET_RAW); TCP passed")


def test_user_network_containers_reach_each_other_by_name(sandbox: Sandbox) -> None:
    sandbox.md("network", "create", "web", check=True)
    sandbox.start("run", "--rm", "--network", "web", "--name", "srv", "--network-alias", "api",
                  "busybox", "sh", "-c", "nc -l -p 80 -e echo by-name; sleep 1")
    sandbox.container("srv")
    out = sandbox.md("run", "--rm", "--network", "web", "--name", "cli", "busybox", "sh", "-c",
                     "cat /etc/hosts; for i in $(seq 50); do nc api 80 && break; sleep 0.1; "
                     "done", check=True).stdout
    assert re.search(r"^172\.\d+\.0\.2\tsrv api [0-9a-f]{12}$", out, re.M)
    assert "by-name" in out
    # the default bridge is another network: no route between them
    other = sandbox.md("run", "--rm", "busybox", "sh", "-c", "grep -c srv /etc/hosts || true")
    assert other.stdout.strip() == "0"


# -- publishing -------------------------------------------------------------------------------

def test_published_tcp_port_via_dnat_and_via_the_proxy(sandbox: Sandbox) -> None:
    sandbox.start("run", "--rm", "--name", "web", "-p", "8080:80", "busybox", "sh", "-c",
                  "while true; do nc -l -p 80 -e echo tcp-ok; done")
    cid, _ = sandbox.container("web")
    rules = sandbox.rules()
    assert f'tcp dport 8080 dnat to 172.17.0.2:80 comment "c={cid}"' in rules
    for host in (HOST_IP, "172.17.0.1", "127.0.0.1", "::1"):  # DNAT, DNAT, proxy, proxy
        got = sandbox.python(CLIENT, "tcp", host, "8080", "x")
        assert got.stdout.strip() == "tcp-ok", (host, got.stderr)
    assert sandbox.md("port", "web").stdout.splitlines() == [
        "80/tcp -> 0.0.0.0:8080", "80/tcp -> [::]:8080"]
    assert sandbox.md("port", "web", "80").stdout.splitlines() == ["0.0.0.0:8080", "[::]:8080"]
    assert "no public port '81/tcp'" in sandbox.md("port", "web", "81").stderr


def test_published_udp_port_via_dnat_and_via_the_proxy(sandbox: Sandbox) -> None:
    sandbox.start("run", "--rm", "--name", "dns", "-p", "5353:53/udp", "busybox", "sleep", "60")
    _, pid = sandbox.container("dns")
    server = sandbox.python(UDP_ECHO, "53", netns=f"/proc/{pid}/ns/net", background=True)
    assert server.stdout.readline().strip() == "ready"  # type: ignore[union-attr]
    for host in (HOST_IP, "127.0.0.1"):  # DNAT, then the proxy
        got = sandbox.python(CLIENT, "udp", host, "5353", "hi")
        assert got.stdout.strip() == "echo:hi", (host, got.stderr)


def test_exit_removes_rules_lease_proxy_and_veth(sandbox: Sandbox, state_root: Path) -> None:
    sandbox.md("run", "-p", "8080:80", "-p", "9000-9001:90-91/udp", "--name", "gone", "busybox",
               "true", check=True)
    rules = sandbox.rules()
    assert "dnat" not in rules and "masquerade" in rules  # the bridge's rule stays
    assert sandbox.proxies() == []
    assert (state_root / "networks" / "bridge.leases").read_text() == ""
    assert wait_gone(lambda: [n for n in sandbox.links() if n.startswith("veth")] == [])
    inspect = json.loads(sandbox.md("network", "inspect", "bridge", check=True).stdout)
    assert inspect[0]["Containers"] == {}


def test_rm_of_a_detached_container_removes_veth_lease_rules_proxy(sandbox: Sandbox) -> None:
    cid = sandbox.md("run", "-d", "--name", "det", "-p", "8080:80", "busybox", "sleep", "60",
                     check=True).stdout.strip()
    assert f"veth{cid[:7]}" in sandbox.links()
    assert f'comment "c={cid}"' in sandbox.rules() and len(sandbox.proxies()) == 1
    assert cid in (sandbox.root / "networks" / "bridge.leases").read_text()
    sandbox.md("rm", "-f", "det", check=True)
    assert (sandbox.root / "networks" / "bridge.leases").read_text() == ""
    assert "dnat" not in sandbox.rules()
    assert wait_gone(lambda: sandbox.proxies() == [] and f"veth{cid[:7]}" not in sandbox.links())


def test_publish_all_uses_random_ports(sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox.start("run", "--rm", "--name", "pa", "-P", "--expose", "80", "--expose", "53/udp",
                  "busybox", "sleep", "60")
    sandbox.container("pa")
    lines = sandbox.md("port", "pa", check=True).stdout.splitlines()
    ports = {line.split(" -> ")[0]: int(line.rsplit(":", 1)[1]) for line in lines}
    assert set(ports) == {"80/tcp", "53/udp"}
    low, high = map(int, sandbox.sh("cat /proc/sys/net/ipv4/ip_local_port_range").stdout.split())
    assert all(low <= p <= high for p in ports.values())


# -- the other modes ------------------------------------------------------------------------------

def test_none_has_only_lo(sandbox: Sandbox) -> None:
    out = sandbox.md("run", "--rm", "--network", "none", "busybox", "sh", "-c",
                     "ls /sys/class/net; ip route", check=True).stdout
    assert out.split() == ["lo"]
    assert "minidocker0" not in sandbox.links()  # nothing made on the host


def test_host_sees_the_sandbox_hosts_links(sandbox: Sandbox) -> None:
    out = sandbox.md("run", "--rm", "--network", "host", "busybox", "sh", "-c",
                     "ls /sys/class/net; hostname; ip -4 addr show uplink0", check=True).stdout
    assert {"lo", "uplink0"} <= set(out.split())
    assert HOST_IP in out
    assert os.uname().nodename in out.split()


def test_container_mode_shares_lo_and_the_namespace(sandbox: Sandbox) -> None:
    sandbox.start("run", "--rm", "--name", "first", "busybox", "sh", "-c",
                  "while true; do nc -l -p 9000 -e echo over-lo; done")
    _, pid = sandbox.container("first")
    out = sandbox.md("run", "--rm", "--network", "container:first", "busybox", "sh", "-c",
                     "readlink /proc/self/ns/net; hostname; ls /sys/class/net; "
                     "for i in $(seq 50); do nc 127.0.0.1 9000 && break; sleep 0.1; done",
                     check=True).stdout.split()
    assert out[0] == os.readlink(f"/proc/{pid}/ns/net")
    assert "over-lo" in out and "eth0" in out
    bad = sandbox.md("run", "--rm", "--network", "container:first", "-p", "80", "busybox", "true")
    assert bad.returncode == 125 and "conflicting options: port publishing" in bad.stderr


def test_twenty_parallel_containers_get_twenty_addresses(sandbox: Sandbox, tmp_path: Path
                                                         ) -> None:
    """Twenty containers alive at once hold twenty addresses. Each waits for the test's "go"
    before it exits: a slow machine (a VM under emulation) starts them seconds apart, and an
    address given back by an exited container may rightly be handed out again."""
    sync = tmp_path / "sync"
    sync.mkdir()
    procs = [sandbox.start("run", "--rm", "--name", f"par{i}", "-v", f"{sync}:/sync", "busybox",
                           "sh", "-c", "ip -4 addr show eth0; echo ready; "
                           "until [ -e /sync/go ]; do sleep 0.1; done") for i in range(20)]
    printed = []
    try:
        for p in procs:  # every one is up, with its address printed, before any may leave
            assert p.stdout is not None
            lines: list[str] = []
            while not lines or lines[-1] != "ready\n":
                line = p.stdout.readline()
                assert line, f"a container ended before it was ready: {p.args}"
                lines.append(line)
            printed.append("".join(lines))
    finally:
        (sync / "go").touch()
    outs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e for _, e in outs]
    got = [a for out in printed for a in addresses(out)]
    assert len(got) == 20 and len(set(got)) == 20, got


def test_dns_add_host_and_hostname(sandbox: Sandbox) -> None:
    out = sandbox.md("run", "--rm", "-h", "box", "--dns", "10.200.0.53", "--add-host",
                     "db:10.200.0.9", "--add-host", "gw:host-gateway", "busybox", "sh", "-c",
                     "cat /etc/resolv.conf /etc/hosts; hostname", check=False)
    assert "host-gateway" in out.stderr  # the default bridge does not exist yet
    sandbox.md("run", "--rm", "busybox", "true", check=True)
    out = sandbox.md("run", "--rm", "-h", "box", "--dns", "10.200.0.53", "--add-host",
                     "db:10.200.0.9", "--add-host", "gw:host-gateway", "busybox", "sh", "-c",
                     "cat /etc/resolv.conf /etc/hosts; hostname", check=True).stdout
    assert "nameserver 10.200.0.53" in out
    assert "10.200.0.9\tdb" in out and "172.17.0.1\tgw" in out
    assert re.search(r"^172\.17\.0\.\d+\tbox$", out, re.M)
    assert out.split()[-1] == "box"


def test_ip_on_a_user_network_and_connect_disconnect(sandbox: Sandbox) -> None:
    sandbox.md("network", "create", "--subnet", "10.44.0.0/24", "lan", check=True)
    sandbox.md("network", "create", "--subnet", "10.45.0.0/24", "--internal", "back",
               check=True)
    sandbox.start("run", "--rm", "--name", "multi", "--network", "lan", "--ip", "10.44.0.77",
                  "busybox", "sleep", "60")
    cid, pid = sandbox.container("multi")
    sandbox.md("network", "connect", "back", "multi", check=True)
    inside = subprocess.run(["nsenter", f"--net=/proc/{pid}/ns/net", "ip", "-4", "-o", "addr"],
                            text=True, capture_output=True, check=True).stdout
    assert "eth0    inet 10.44.0.77/24" in inside and "eth1    inet 10.45.0.2/24" in inside
    inspect = json.loads(sandbox.md("network", "inspect", "back", check=True).stdout)[0]
    assert inspect["Internal"] is True
    assert inspect["Containers"][cid]["IPv4Address"] == "10.45.0.2/24"
    refused = sandbox.md("network", "rm", "back")
    assert refused.returncode == 1 and "has active endpoints" in refused.stderr
    sandbox.md("network", "disconnect", "back", "multi", check=True)
    inside = subprocess.run(["nsenter", f"--net=/proc/{pid}/ns/net", "ls", "/sys/class/net"],
                            text=True, capture_output=True).stdout
    assert json.loads(sandbox.md("network", "inspect", "back").stdout)[0]["Containers"] == {}
    assert sandbox.md("network", "rm", "back").returncode == 0
    assert "10.45.0.1" not in sandbox.ip("-4", "addr")
    del inside


def test_connecting_a_second_routed_network_keeps_the_first_default_route(sandbox: Sandbox
                                                                          ) -> None:
    """Docker keeps a container's default route when it joins another network; the second
    network's gateway must not make `network connect` fail (it used to: EEXIST)."""
    sandbox.md("network", "create", "--subnet", "10.46.0.0/24", "front", check=True)
    sandbox.md("network", "create", "--subnet", "10.47.0.0/24", "side", check=True)
    sandbox.start("run", "--rm", "--name", "two", "--network", "front", "busybox",
                  "sleep", "60")
    _, pid = sandbox.container("two")
    connected = sandbox.md("network", "connect", "side", "two")
    assert connected.returncode == 0, connected.stderr
    routes = subprocess.run(["nsenter", f"--net=/proc/{pid}/ns/net", "ip", "-4", "route"],
                            text=True, capture_output=True, check=True).stdout
    assert re.search(r"^default via 10\.46\.0\.1 dev eth0", routes, re.M), routes
    assert "default via 10.47.0.1" not in routes
    assert re.search(r"^10\.47\.0\.0/24 dev eth1", routes, re.M), routes
    sandbox.md("network", "disconnect", "side", "two", check=True)


# -- failures leave nothing ---------------------------------------------------------------------

def settled(sandbox: Sandbox) -> tuple[list[str], str, str, list[str]]:
    """A snapshot once the veths of containers that just exited are gone (the kernel deletes
    them asynchronously, with their namespace)."""
    last = snapshot(sandbox)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = snapshot(sandbox)
        if now == last:
            return now
        last = now
    return last


def snapshot(sandbox: Sandbox) -> tuple[list[str], str, str, list[str]]:
    root = sandbox.root
    leases = "".join(p.read_text() for p in sorted((root / "networks").glob("*.leases")))
    containers = sorted(os.listdir(root / "containers")) if (root / "containers").exists() \
        else []
    return ([n for n in sandbox.links() if n.startswith("veth")], sandbox.rules(), leases,
            containers)


def test_published_port_in_use_fails_and_leaves_nothing(sandbox: Sandbox) -> None:
    sandbox.start("run", "--rm", "--name", "holder", "-p", "8080:80", "busybox", "sleep", "60")
    sandbox.container("holder")
    before = settled(sandbox)
    bad = sandbox.md("run", "--rm", "-p", "8080:80", "busybox", "true")
    assert bad.returncode == 125
    assert bad.stderr.strip() == ("minidocker: Bind for 0.0.0.0:8080 failed: port is already "
                                  "allocated")
    assert snapshot(sandbox) == before
    listener = sandbox.python("import socket,time; s=socket.socket(); s.bind(('127.0.0.1', "
                              "7070)); s.listen(); print('ok', flush=True); time.sleep(30)",
                              background=True)
    assert listener.stdout.readline().strip() == "ok"  # type: ignore[union-attr]
    bad = sandbox.md("run", "-p", "127.0.0.1:7070:80", "busybox", "true")
    assert bad.returncode == 125 and "127.0.0.1:7070" in bad.stderr
    assert snapshot(sandbox) == before


@pytest.mark.parametrize("args, message", [
    (["run", "--rm", "--network", "nosuch", "busybox", "true"], "network nosuch not found"),
    (["run", "--rm", "-p", "80/icmp", "busybox", "true"], "invalid proto: icmp"),
    (["run", "--rm", "--ip", "172.17.0.9", "busybox", "true"],
     "user specified IP address is supported on user defined networks only"),
    (["run", "--rm", "--network", "container:nosuch", "busybox", "true"],
     "no such container: nosuch"),
    (["network", "rm", "bridge"], "bridge is a pre-defined network and cannot be removed"),
    (["network", "create", "--gateway", "10.1.0.1", "x1"],
     "every ip-range or gateway must have a corresponding subnet"),
    (["network", "create", "--subnet", "10.1.0.0/24", "--gateway", "10.2.0.1", "x2"],
     "no matching subnet for gateway 10.2.0.1"),
    (["network", "inspect", "nosuch"], "network nosuch not found"),
    (["network", "connect", "nosuch", "x"], "network nosuch not found"),
])
def test_bad_input_is_refused_in_one_line(sandbox: Sandbox, args: list[str],
                                          message: str) -> None:
    result = sandbox.md(*args)
    assert result.returncode != 0
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert sandbox.links() == ["lo", "uplink0"]
    assert not (sandbox.root / "containers").exists() or \
        os.listdir(sandbox.root / "containers") == []


def test_overlapping_subnets_and_exhausted_pools(sandbox: Sandbox) -> None:
    sandbox.ip("route", "add", "10.50.0.0/16", "dev", "uplink0")
    bad = sandbox.md("network", "create", "--subnet", "10.50.3.0/24", "a1")
    assert bad.returncode == 125
    assert "invalid subnet 10.50.3.0/24: it overlaps with the route to 10.50.0.0/16" in bad.stderr
    bad = sandbox.md("network", "create", "--subnet", "10.200.0.128/25", "a2")
    assert "overlaps with the route to 10.200.0.0/24" in bad.stderr
    sandbox.md("network", "create", "--subnet", "10.60.0.0/30", "tiny", check=True)
    bad = sandbox.md("network", "create", "--subnet", "10.60.0.0/16", "a3")
    assert 'overlaps with network "tiny" (10.60.0.0/30)' in bad.stderr
    assert sandbox.md("network", "ls", "-q").stdout.count("\n") == 4
    sandbox.start("run", "--rm", "--name", "only", "--network", "tiny", "busybox", "sleep", "60")
    sandbox.container("only")
    before = settled(sandbox)
    full = sandbox.md("run", "--rm", "--network", "tiny", "busybox", "true")
    assert full.returncode == 125 and "10.60.0.0/30 is exhausted" in full.stderr
    assert snapshot(sandbox) == before


@pytest.mark.parametrize("point", ["address", "veth", "inside", "publish"])
def test_kill_9_in_the_middle_of_network_setup_leaves_nothing(sandbox: Sandbox,
                                                              point: str) -> None:
    sandbox.md("run", "--rm", "busybox", "true", check=True)  # the bridge exists: it stays
    assert wait_gone(lambda: snapshot(sandbox)[0] == [])  # its veth goes asynchronously
    proc = sandbox.start("run", "--trace", "-p", "8080:80", "--name", "victim", "busybox",
                         "sleep", "60")
    assert proc.stderr is not None
    for line in proc.stderr:
        if f"== {point}" in line:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL

    def clean() -> bool:
        now = snapshot(sandbox)
        return now[0] == [] and "dnat" not in now[1] and sandbox.proxies() == []

    assert wait_gone(clean), (snapshot(sandbox), sandbox.proxies())
    inspect = json.loads(sandbox.md("network", "inspect", "bridge", check=True).stdout)
    assert inspect[0]["Containers"] == {}  # the dead run's lease is not in use...
    out = sandbox.md("run", "--rm", "busybox", "ip", "-4", "addr", "show", "eth0",
                     check=True).stdout
    assert addresses(out) == ["172.17.0.2"]  # ...and is handed out again
    assert "dnat" not in sandbox.rules()


# -- what minidocker did not make, it leaves alone --------------------------------------------

def test_hand_made_bridge_and_rules_are_never_removed(sandbox: Sandbox) -> None:
    sandbox.sh("echo 0 > /proc/sys/net/ipv4/ip_forward")
    sandbox.ip("link", "add", "minidocker0", "type", "bridge")
    sandbox.ip("addr", "add", "10.123.0.1/24", "dev", "minidocker0")
    sandbox.sh("nft add table ip mine; nft add chain ip mine c; nft add rule ip mine c accept")
    out = sandbox.md("run", "--rm", "busybox", "ip", "-4", "addr", "show", "eth0",
                     check=True).stdout
    assert addresses(out) == ["10.123.0.2"]
    assert sandbox.sh("cat /proc/sys/net/ipv4/ip_forward").stdout.strip() == "1"
    sandbox.md("network", "prune", "-f", check=True)
    assert "minidocker0" in sandbox.links()  # not ours: kept
    assert "table ip mine" in sandbox.rules() and "minidocker" not in sandbox.rules()
    assert sandbox.sh("cat /proc/sys/net/ipv4/ip_forward").stdout.strip() == "0"  # restored


def test_prune_puts_the_host_back(sandbox: Sandbox) -> None:
    sandbox.sh("echo 0 > /proc/sys/net/ipv4/ip_forward")
    sandbox.md("network", "create", "spare", check=True)
    sandbox.md("run", "--rm", "busybox", "true", check=True)
    assert sandbox.sh("cat /proc/sys/net/ipv4/ip_forward").stdout.strip() == "1"
    assert sandbox.md("network", "prune", "-f", check=True).stdout == "Deleted Networks:\nspare\n"
    assert sandbox.links() == ["lo", "uplink0"]
    assert sandbox.rules().strip() == ""
    assert sandbox.sh("cat /proc/sys/net/ipv4/ip_forward").stdout.strip() == "0"
