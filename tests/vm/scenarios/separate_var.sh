#!/usr/bin/env bash
# /var on its own disk (vdb), listed in the root's fstab and not mounted by
# the initrd: the extensions in /var/lib/extensions and /var/lib/confexts on
# it are still merged on the first boot.
source "$(dirname "$0")/../lib.sh"
kind=${1:?usage: separate_var.sh busybox|dracut|dracutng}
new_scenario
mkdir -p "$WORK/var-extra"
standard_extensions "$WORK/var-extra"
printf '/dev/vda / ext4 rw 0 0\n/dev/vdb /var ext4 rw 0 0\n' | put /etc/fstab
expect EXPECT_SYSEXT="'rdfeature rdtools'" EXPECT_CONFEXT=rdconf FEATURES=present CHECK_HANDOFF=1 \
    EXPECT_VAR_DEVICE=/dev/vdb
# The root's /var moves to the second disk, with the extensions added.
build_tree "$WORK/tree"
mv "$WORK/tree/var" "$WORK/var"
mkdir -m 0755 "$WORK/tree/var"
cp -a "$WORK/var-extra/." "$WORK/var/"
mkfs_dir "$WORK/tree" "$WORK/root.img" 1G
mkfs_dir "$WORK/var" "$WORK/var.img" 256M
rm -rf "$WORK/tree" "$WORK/var"
boot_vm "$(initrd_for "$kind")" "" "$WORK/root.img" "$WORK/var.img"
expect_check_pass
# rdext mounted it, not the initrd.
expect_log 'rdext: mounted /var from /dev/vdb'
