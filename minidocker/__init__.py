"""minidocker: a small, real container runtime, written to teach how containers work.

Every mechanism lives in its own module, and each module's docstring is the lesson summary:

- :mod:`minidocker.syscalls`   the one seam into the kernel (ctypes), traced
- :mod:`minidocker.trace`      the record of every kernel-facing step (``run --trace``)
- :mod:`minidocker.procfs`     a process's start time, and whether it still runs (PID reuse)
- :mod:`minidocker.timefmt`    RFC 3339 times, as every record writes and reads them
- :mod:`minidocker.namespaces` pid, mount, uts, ipc, net and cgroup namespaces
- :mod:`minidocker.overlay`    the union filesystem under each container
- :mod:`minidocker.rootfs`     private propagation, /proc, /sys, /dev, masked paths, pivot_root
- :mod:`minidocker.netlink`    the seam for rtnetlink messages (``ip link/addr/route``), traced
- :mod:`minidocker.network`    the container's network: lo, veth pair, bridge, address, route
- :mod:`minidocker.ipam`       networks and the addresses leased on them, on disk, locked
- :mod:`minidocker.ports`      ``-p``/``-P`` parsed as Docker parses them
- :mod:`minidocker.nftables`   DNAT and masquerade rules, in one table minidocker owns
- :mod:`minidocker.proxy`      the userland proxy for published ports (docker-proxy's job)
- :mod:`minidocker.cgroups`    cgroup v1 and v2: limits, priorities, accounting, freezing
- :mod:`minidocker.users`      ``-u``, /etc/passwd and /etc/group inside the image
- :mod:`minidocker.capabilities` Docker's 14 capabilities, --cap-add/--cap-drop, the five sets
- :mod:`minidocker.seccomp`    the system-call filter: Docker's profile, libseccomp, a cache
- :mod:`minidocker.devices`    which device nodes open: nodev, devices cgroup, eBPF filter
- :mod:`minidocker.rlimits`    ``--ulimit``
- :mod:`minidocker.userns`     ``--userns private``: subuid ranges, uid maps, idmapped mounts
- :mod:`minidocker.lsm`        AppArmor and SELinux: state, a default AppArmor profile
- :mod:`minidocker.security`   the confinement steps before execve, composed (``exec`` too)
- :mod:`minidocker.escapes`    the escape suite: known breakouts, tried from inside
- :mod:`minidocker.tty`        ``-t``: a real pseudo-terminal, raw mode, window size
- :mod:`minidocker.init`       PID 1: signals, zombies, and ``--init``
- :mod:`minidocker.store`      the OCI image layout on disk: blobs, names, layers, removal
- :mod:`minidocker.layers`     layer tars unpacked safely, whiteouts both ways, a stack read back
- :mod:`minidocker.graphdriver` which storage driver a state root uses (overlay or vfs), and why
- :mod:`minidocker.vfs`        the copy-based driver, where overlayfs cannot be used
- :mod:`minidocker.diff`       a container's changes: ``diff``, ``commit``'s layer, ``export``
- :mod:`minidocker.archive`    ``save``/``load``: docker-archive and oci-archive, all or nothing
- :mod:`minidocker.container`  the start sequence that composes them all, and teardown
- :mod:`minidocker.lifecycle`  container states, the record, status from the kernel, --restart
- :mod:`minidocker.supervisor` the parent of detached containers: logs, exits, restarts
- :mod:`minidocker.keeper`     holds their pipes and terminals, so they outlive the supervisor
- :mod:`minidocker.client`     the CLI's side of the supervisor's socket (JSON lines)
- :mod:`minidocker.logs`       Docker's json-file logs, written and read back
- :mod:`minidocker.enter`      ``exec``: a new process in a running container's namespaces
- :mod:`minidocker.attach`     the client's side of ``attach``: frames, detach keys, signals
- :mod:`minidocker.gotemplate` the Go-template subset behind ``--format``
- :mod:`minidocker.networking` a container's networking, composed (``--network``, ``-p``)
- :mod:`minidocker.cli`        the ``minidocker`` command

Importing the package imports nothing else: ``minidocker run`` must start fast.
"""

__version__ = "0.1.0"
