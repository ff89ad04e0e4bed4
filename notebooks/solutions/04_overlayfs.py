"""Solutions to lesson 04's exercises (overlayfs), for instructors."""

# Exercise 04.1: make a whiteout by hand
import stat


def hide(upper, rel):
    path = os.path.join(upper, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    os.mknod(path, stat.S_IFCHR | 0o000, os.makedev(0, 0))  # overlayfs's whiteout: a 0/0 device


# Exercise 04.2: which layer does a path come from?
def layer_of(lowers, rel):
    sources = list(lowers)  # the layers that still take part at this depth
    parts = rel.split("/")
    for depth, part in enumerate(parts):
        found = []
        for top in sources:
            path = os.path.join(top, *parts[:depth + 1])
            if os.path.lexists(path):
                found.append((top, path))
                if not os.path.isdir(path) or os.path.islink(path):
                    break  # a non-directory hides everything below it
        if not found:
            return None
        if depth == len(parts) - 1:
            return found[0][0]
        # only directories let the walk go deeper, and only the ones above the first file
        sources = [top for top, path in found if os.path.isdir(path)
                   and not os.path.islink(path)]
        if not sources or sources[0] != found[0][0]:
            return None  # the topmost entry is a file: nothing is under it
    return None


# Exercise 04.3: copy up by writing
bench.run("""
with open(merged + "/bin/tool", "w") as f:
    f.write("#!/bin/sh\\necho tool v3\\n")
""")
