"""Lesson 00's exercise, solved: the section replaces the exercise cell of the same number.

The names it uses (os) come from the lesson's cells.
"""

# Exercise 00.1: a container's processes, seen from the host
def processes_of(pid):
    pidns = os.readlink(f"/proc/{pid}/ns/pid")
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/ns/pid") == pidns:
                    found.add(int(entry))
            except OSError:  # it exited while we looked
                pass
    return found
