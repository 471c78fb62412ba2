#!/bin/bash
# A separate /var: the root's fstab lists /var on its own file system, which
# nobody mounted yet (as in an initrd). rdext mounts it on ROOT/var as the
# fstab says, finds the extensions in /var/lib/extensions and merges them;
# /var stays mounted for the booted system. When the merge fails, /var is
# unmounted again and the root is as before.
source "$(dirname "$0")/lib.sh"
require_root_env

R=$TEST_DIR/root
B=$TEST_DIR/build
make_root "$R"
make_ext_tree "$B/onvar" onvar sysext -- usr/share/t/onvar=from-var
make_ext_tree "$B/onetc" onetc sysext -- usr/share/t/onetc=from-etc
cp -a "$B/onetc" "$R/etc/extensions/onetc"

# The /var file system, with the extension image inside.
mkdir -p "$B/var/lib/extensions"
make_erofs "$B/onvar" "$B/var/lib/extensions/onvar.raw"
make_ext4 "$B/var" "$TEST_DIR/var.img"
vardev=$(losetup --find --show "$TEST_DIR/var.img")
trap 'losetup -d "$vardev" 2>/dev/null || true' EXIT
printf '%s /var ext4 defaults 0 2\n' "$vardev" >"$R/etc/fstab"
bind_root "$R"
snapshot_state "$R" before

check "a failed merge unmounts /var again"
RDEXT_FAULT=commit:1 run_rdext --root="$R" merge
expect_rc 1
mountpoint -q "$R/var" && fail "$R/var is still mounted after a failed merge"
snapshot_state "$R" after-fail
assert_same_state before after-fail

check "merge mounts /var from the fstab and merges the image found there"
run_rdext --root="$R" merge
expect_rc 0
expect_stderr_line "mounted /var"
mountpoint -q "$R/var" || fail "$R/var is not mounted"
assert_merged "$R" /usr onetc onvar
assert_file_content "$R/usr/share/t/onvar" from-var
assert_file_content "$R/usr/share/t/onetc" from-etc

check "unmerge leaves /var mounted (it belongs to the booted system)"
run_rdext --root="$R" unmerge
expect_rc 0
assert_not_merged "$R" /usr
mountpoint -q "$R/var" || fail "$R/var was unmounted by unmerge"

check "a second merge does not mount /var twice"
run_rdext --root="$R" merge
expect_rc 0
[[ $(awk -v m="$R/var" '$5 == m' /proc/self/mountinfo | wc -l) == 1 ]] || fail "/var mounted more than once"
run_rdext --root="$R" unmerge
umount "$R/var"
snapshot_state "$R" after
assert_same_state before after
finish
