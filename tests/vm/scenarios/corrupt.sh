#!/usr/bin/env bash
# Broken images are skipped, the rest apply, the boot goes on: random bytes
# (no file system), a squashfs cut in half (mount fails), an erofs whose
# superblock is zeroed.
source "$(dirname "$0")/../lib.sh"
kind=${1:-busybox}
new_scenario
standard_extensions
ext=$OVERLAY/var/lib/extensions
head -c 1M /dev/urandom >"$ext/rdgarbage.raw"
marker_sysext "$IMAGES/rdtrunc" rdtrunc
head -c 512K /dev/urandom >"$IMAGES/rdtrunc/usr/share/rdtrunc/filler"
make_squashfs "$IMAGES/rdtrunc" "$IMAGES/rdtrunc.raw"
head -c $(( $(stat -c %s "$IMAGES/rdtrunc.raw") / 2 )) "$IMAGES/rdtrunc.raw" >"$ext/rdtrunc.raw"
marker_sysext "$IMAGES/rdzero" rdzero
make_erofs "$IMAGES/rdzero" "$ext/rdzero.raw"
dd if=/dev/zero of="$ext/rdzero.raw" bs=1024 seek=1 count=1 conv=notrunc status=none
expect EXPECT_SYSEXT="'rdfeature rdtools'" EXPECT_CONFEXT=rdconf FEATURES=present CHECK_HANDOFF=1 \
    EXPECT_NOT_MERGED="'rdgarbage rdtrunc rdzero'"
root_disk
boot_vm "$(initrd_for "$kind")" "" "$WORK/root.img"
expect_check_pass
