// beneath-probe: does the running kernel do move_mount(MOVE_MOUNT_BENEATH)?
// Asks the kernel by trying, as rdext does, never by its version: in a
// private mount namespace (nothing shows outside, nothing stays), a tmpfs
// goes on /mnt and a clone of it is moved beneath it.
//
// Prints one line; exit 0: supported, 1: EINVAL (a kernel before 6.5
// refuses the unknown flag so), 2: any other failure (the probe's own setup
// or another errno), which proves nothing either way.
//
// Built static by the VM scenarios (tests/vm/scenarios/refresh.sh) and run
// in the guest.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef MOVE_MOUNT_BENEATH
#define MOVE_MOUNT_BENEATH 0x00000200
#endif

static int fail(const char* what) {
    printf("beneath-probe: %s: %s\n", what, strerror(errno));
    return 2;
}

int main(void) {
    const char* at = "/mnt";
    if (unshare(CLONE_NEWNS) < 0) return fail("unshare(CLONE_NEWNS)");
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) return fail("making / private");
    if (mount("beneath-probe", at, "tmpfs", 0, "size=64k") < 0) return fail("tmpfs on /mnt");
    int top = open(at, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (top < 0) return fail("opening /mnt");
    int clone = (int)syscall(SYS_open_tree, top, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
    if (clone < 0) return fail("open_tree(OPEN_TREE_CLONE)");
    if (syscall(SYS_move_mount, clone, "", top, "",
                MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH | MOVE_MOUNT_BENEATH) == 0) {
        printf("beneath-probe: move_mount(MOVE_MOUNT_BENEATH) works\n");
        return 0;
    }
    int e = errno;
    printf("beneath-probe: move_mount(MOVE_MOUNT_BENEATH) failed: %s (%s)\n", strerror(e),
           e == EINVAL ? "EINVAL" : "not EINVAL");
    return e == EINVAL ? 1 : 2;
}
