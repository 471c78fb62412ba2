// floor: the least work a merge of N extension images into one hierarchy
// can do, used by bench.sh as the lower bound rdext is held against.
//
//   floor MODE TARGET IMAGE...
//
// MODE: loop  attach each image file to a loop device (LOOP_CTL_GET_FREE +
//             one LOOP_CONFIGURE: read-only, autoclear, direct I/O) and mount
//             its file system (erofs, squashfs, ... named by FSTYPE=) from it
//       file  mount the file system straight from the file (erofs, 6.12+)
//       dir   clone the directory as a detached mount (open_tree)
// An IMAGE may carry a byte range, PATH@OFFSET@SIZE (a GPT partition).
// SUBDIR=usr takes that directory of each mounted image as its layer (an
// image holding the whole tree, usr/ included), as a merge of /usr must.
// IMAGEs are given top layer first. TARGET (e.g. ROOT/usr) is the bottom
// layer and where the read-only overlay is attached. No release files are
// read, nothing is checked: only the syscalls a merge cannot avoid.
// Exit 0 on success; 1 with a message on the first failure.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <linux/mount.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static int sys_fsopen(const char *fs, unsigned flags) { return (int)syscall(SYS_fsopen, fs, flags); }
static int sys_fsconfig(int fd, unsigned cmd, const char *key, const void *val, int aux) {
    return (int)syscall(SYS_fsconfig, fd, cmd, key, val, aux);
}
static int sys_fsmount(int fd, unsigned flags, unsigned attrs) { return (int)syscall(SYS_fsmount, fd, flags, attrs); }
static int sys_move_mount(int from, const char *fp, int to, const char *tp, unsigned flags) {
    return (int)syscall(SYS_move_mount, from, fp, to, tp, flags);
}
static int sys_open_tree(int dfd, const char *p, unsigned flags) { return (int)syscall(SYS_open_tree, dfd, p, flags); }

static void die(const char *what, const char *arg) {
    fprintf(stderr, "floor: %s %s: %s\n", what, arg ? arg : "", strerror(errno));
    exit(1);
}

static int ctl = -1;

// Attach PATH (byte range OFF/SIZE, 0 = whole file) read-only; returns the
// loop device's fd and its name in DEV.
static int loop_attach(const char *path, unsigned long long off, unsigned long long size, char *dev, size_t devlen) {
    int bfd = open(path, O_RDONLY | O_CLOEXEC);
    if (bfd < 0) die("open", path);
    if (ctl < 0 && (ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC)) < 0) die("open", "/dev/loop-control");
    for (int attempt = 0; attempt < 64; attempt++) {
        int n = ioctl(ctl, LOOP_CTL_GET_FREE);
        if (n < 0) die("LOOP_CTL_GET_FREE", NULL);
        snprintf(dev, devlen, "/dev/loop%d", n);
        int lfd = open(dev, O_RDONLY | O_CLOEXEC);
        if (lfd < 0) die("open", dev);
        struct loop_config cfg;
        memset(&cfg, 0, sizeof cfg);
        cfg.fd = (unsigned)bfd;
        cfg.info.lo_offset = off;
        cfg.info.lo_sizelimit = size;
        cfg.info.lo_flags = LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR | LO_FLAGS_DIRECT_IO;
        if (ioctl(lfd, LOOP_CONFIGURE, &cfg) == 0) { close(bfd); return lfd; }
        if (errno == EINVAL) {  // direct I/O refused by the backing file system
            cfg.info.lo_flags &= ~(unsigned)LO_FLAGS_DIRECT_IO;
            if (ioctl(lfd, LOOP_CONFIGURE, &cfg) == 0) { close(bfd); return lfd; }
        }
        int e = errno;
        close(lfd);
        if (e != EBUSY) { errno = e; die("LOOP_CONFIGURE", dev); }
        // raced with another attacher: ask for another free device
    }
    die("no free loop device for", path);
    return -1;
}

static int mount_fs(const char *fstype, const char *source) {
    int fs = sys_fsopen(fstype, FSOPEN_CLOEXEC);
    if (fs < 0) die("fsopen", fstype);
    if (sys_fsconfig(fs, FSCONFIG_SET_STRING, "source", source, 0) < 0) die("fsconfig source", source);
    if (sys_fsconfig(fs, FSCONFIG_SET_FLAG, "ro", NULL, 0) < 0) die("fsconfig ro", source);
    if (sys_fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0) die("mount", source);
    int m = sys_fsmount(fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NODEV);
    if (m < 0) die("fsmount", source);
    close(fs);
    return m;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: [FSTYPE=erofs] floor loop|file|dir TARGET IMAGE...\n");
        return 2;
    }
    const char *mode = argv[1], *target = argv[2];
    const char *fstype = getenv("FSTYPE") ? getenv("FSTYPE") : "erofs";
    int n = argc - 3;
    const char *subdir = getenv("SUBDIR");
    int *fds = calloc((size_t)n, sizeof(int));
    if (!fds) die("calloc", NULL);

    for (int i = 0; i < n; i++) {
        char path[4096], dev[64];
        unsigned long long off = 0, size = 0;
        snprintf(path, sizeof path, "%s", argv[3 + i]);
        char *at = strchr(path, '@');
        if (at) {
            *at = 0;
            off = strtoull(at + 1, &at, 10);
            if (*at == '@') size = strtoull(at + 1, NULL, 10);
        }
        if (strcmp(mode, "loop") == 0) {
            int lfd = loop_attach(path, off, size, dev, sizeof dev);
            fds[i] = mount_fs(fstype, dev);
            close(lfd);  // autoclear: the device goes when its mount goes
        } else if (strcmp(mode, "file") == 0) {
            fds[i] = mount_fs(fstype, path);
        } else if (strcmp(mode, "dir") == 0) {
            fds[i] = sys_open_tree(AT_FDCWD, path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
            if (fds[i] < 0) die("open_tree", path);
        } else {
            fprintf(stderr, "floor: unknown mode %s\n", mode);
            return 2;
        }
        if (subdir && *subdir) {  // the mount's fd stays open: it keeps the mount alive
            int s = openat(fds[i], subdir, O_PATH | O_DIRECTORY | O_CLOEXEC);
            if (s < 0) die("open subdir of", path);
            fds[i] = s;
        }
    }

    // One overlay, one lowerdir+ per layer, top first. The detached mounts
    // go in by fd (6.13+), or as /proc/self/fd/N paths on older kernels.
    int ov = sys_fsopen("overlay", FSOPEN_CLOEXEC);
    if (ov < 0) die("fsopen", "overlay");
    for (int i = 0; i < n; i++) {
        if (sys_fsconfig(ov, FSCONFIG_SET_FD, "lowerdir+", NULL, fds[i]) < 0) {
            char p[64];
            snprintf(p, sizeof p, "/proc/self/fd/%d", fds[i]);
            if (sys_fsconfig(ov, FSCONFIG_SET_STRING, "lowerdir+", p, 0) < 0) die("fsconfig lowerdir+", argv[3 + i]);
        }
    }
    if (sys_fsconfig(ov, FSCONFIG_SET_STRING, "lowerdir+", target, 0) < 0) die("fsconfig lowerdir+", target);
    if (sys_fsconfig(ov, FSCONFIG_SET_STRING, "source", "floor", 0) < 0) die("fsconfig source", "floor");
    if (sys_fsconfig(ov, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0) die("overlay create on", target);
    int m = sys_fsmount(ov, FSMOUNT_CLOEXEC, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NODEV);
    if (m < 0) die("fsmount overlay", target);
    if (sys_move_mount(m, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) < 0) die("move_mount", target);
    return 0;
}
