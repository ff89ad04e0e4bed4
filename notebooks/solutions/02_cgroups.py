"""Lesson 02's exercises, solved: each section replaces the exercise cell of the same number.

The names they use (os) come from the lesson's cells. Each answer reads the files of the
cgroup version the group has: v1 keeps one directory per controller, v2 one directory in all.
"""

# Exercise 02.1: set limits with run's flags, then see them in the kernel's files
options = ("-m", "48m", "--pids-limit", "12")

# Exercise 02.2: how much memory does a container use? Ask its cgroup
def memory_used(cg):
    if cg.version == 2:
        path = os.path.join(cg.paths["unified"], "memory.current")
    else:
        path = os.path.join(cg.paths["memory"], "memory.usage_in_bytes")
    with open(path) as f:
        return int(f.read())

# Exercise 02.3: is a container paused? Ask the freezer
def is_frozen(cg):
    if cg.version == 2:
        with open(os.path.join(cg.paths["unified"], "cgroup.events")) as f:
            return "frozen 1" in f.read().splitlines()
    with open(os.path.join(cg.paths["freezer"], "freezer.state")) as f:
        return f.read().strip() == "FROZEN"
