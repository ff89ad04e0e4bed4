"""Solutions to lesson 06's exercises (networking), for instructors."""

# Exercise 06.1: publish a port, and fetch through it
ex_web = bench.start("-p", "8081:80", "busybox", "sh", "-c",
                     "while true; do nc -l -p 80 -e echo hi from ex-web; done", name="ex-web")


# Exercise 06.2: find a container's veth
def host_end(pid):
    eth0 = next(l for l in links_in(f"/proc/{pid}/ns/net") if l["name"] == "eth0")
    return next(l["name"] for l in links_in(f"/run/netns/{bench.netns}")
                if l["index"] == eth0["peer"])


# Exercise 06.3: a network of your own
bench.cli("network", "create", "--subnet", "10.77.0.0/24", "ex-net").check()
ex_c = bench.start("--network", "ex-net", "--ip", "10.77.0.50", "busybox", "sleep", "3600",
                   name="ex-c")
