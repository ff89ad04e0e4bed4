"""Solutions to lesson 09's exercises (the lifecycle), for instructors."""

# Exercise 09.1: pause a container, and find it frozen
ex_pause = bench.cli("run", "-d", "busybox", "sleep", "600").check().stdout.strip()
bench.cli("pause", ex_pause).check()


# Exercise 09.2: what a signal does to PID 1
def outcome(signal_number, init):
    if init or signal_number == signal.SIGKILL:
        return 128 + signal_number  # the init passes it on; sleep dies of it
    return None  # PID 1 without a handler: the kernel forces only SIGKILL (and SIGSTOP) on it


# Exercise 09.3: read a container's log without `logs`
def stdout_lines(root, name):
    cid = os.readlink(os.path.join(root, "names", name))
    with open(os.path.join(root, "containers", cid, f"{cid}-json.log")) as f:
        entries = [json.loads(line) for line in f if line.strip()]
    return [e["log"].removesuffix("\n") for e in entries if e["stream"] == "stdout"]
