#!/usr/bin/env bash
# The root's fstab is untrusted: its /var line must never make rdext mount
# the initrd's files, or anything through a symlinked /var.
#
#   bind      /etc /var none bind: in the initrd that is the INITRD's /etc
#             (it carries a marker, appended as a second cpio archive).
#   symlink   the root's /var is a symlink to /usr/lib/rdext-var, and the line
#             is `tmpfs /var tmpfs suid,dev,exec,mode=777`.
#
# rdext skips the line with a warning and merges the extensions it finds on
# the root's own /var. The initrd records its mount table after the merge
# (a replaced /init for busybox, a unit for dracut), and the checker in the
# booted system asserts that the initrd mounted nothing on /sysroot/var or
# under /sysroot/usr, and that the initrd's marker appears nowhere. (The
# booted system's systemd may then mount the line itself: that is the root's
# own business, in its own namespace, and not the initrd's files.) The
# legitimate separate /var is vm_separate_var_*.
source "$(dirname "$0")/../lib.sh"
kind=${1:?usage: hostile_var.sh busybox|dracut|dracutng bind|symlink}
variant=${2:?usage: hostile_var.sh KIND bind|symlink}
new_scenario
standard_extensions
expect EXPECT_SYSEXT="'rdfeature rdtools'" EXPECT_CONFEXT=rdconf FEATURES=present CHECK_HANDOFF=1
case $variant in
    bind) line='/etc /var none bind 0 0' reason='a bind mount' ;;
    symlink) line='tmpfs /var tmpfs suid,dev,exec,mode=777 0 0' reason='/var is a symlink' ;;
    *) die "unknown variant '$variant' (bind or symlink)" ;;
esac
printf '/dev/vda / ext4 rw 0 0\n%s\n' "$line" | put /etc/fstab

put /etc/rdext-check.d/hostile-var.sh <<'EOF'
# What the initrd had mounted after rdext (recorded before switch-root).
rec=/run/rdext-vmtest/initrd.mountinfo
initrd_unmounted() { [ -s $rec ] && ! awk -v m="$1" '$5 == m { found = 1 } END { exit !found }' $rec; }
for p in /sysroot/var /sysroot/usr/bin /sysroot/usr/lib /sysroot/usr/lib/systemd /sysroot/usr/lib/rdext-var; do
    check "the initrd mounted nothing on $p" initrd_unmounted "$p"
done
no_marker() { ! find /var/ /usr/ /etc/ -name rdext-initrd-marker 2>/dev/null | grep -q .; }
check "the initrd's marker file appears nowhere in /var, /usr or /etc" no_marker
check "/usr/bin is the root's own (base tools present)" test -x /usr/bin/ls
EOF

build_tree "$WORK/tree"
if [[ $variant == symlink ]]; then
    mv "$WORK/tree/var" "$WORK/tree/usr/lib/rdext-var"
    ln -s /usr/lib/rdext-var "$WORK/tree/var"
fi
mkfs_dir "$WORK/tree" "$WORK/root.img" 1G
rm -rf "$WORK/tree"

# The initrd: the standard one plus a marker in its /etc and a recorder of
# its mount table after the merge.
x=$WORK/initrd-extra
mkdir -p "$x/etc"
echo "the initrd's own file" >"$x/etc/rdext-initrd-marker"
record='mkdir -p /run/rdext-vmtest && cat /proc/self/mountinfo >/run/rdext-vmtest/initrd.mountinfo'
if [[ $kind == busybox ]]; then
    # Before switch_root; after the hook, /proc and /run are in /sysroot.
    sed "/^exec switch_root/i mkdir -p /sysroot/run/rdext-vmtest; cat /sysroot/proc/self/mountinfo >/sysroot/run/rdext-vmtest/initrd.mountinfo" \
        "$VM_DIR/busybox-init.sh" >"$x/init"
    chmod 0755 "$x/init"
    grep -q 'initrd.mountinfo' "$x/init" || die "cannot add the recorder to the busybox /init"
else
    mkdir -p "$x/etc/systemd/system/initrd.target.wants"
    cat >"$x/etc/systemd/system/rdext-vmtest-mounts.service" <<EOF
[Unit]
Description=rdext VM test: record the initrd's mounts after the merge
DefaultDependencies=no
After=rdext-merge.service
Before=initrd.target dracut-pre-pivot.service initrd-cleanup.service
[Service]
Type=oneshot
ExecStart=/bin/sh -c '$record'
EOF
    ln -s ../rdext-vmtest-mounts.service "$x/etc/systemd/system/initrd.target.wants/"
fi
(cd "$x" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) | gzip -1 >"$WORK/extra.cpio.gz"
cat "$(initrd_for "$kind")" "$WORK/extra.cpio.gz" >"$WORK/initrd.img"

boot_vm "$WORK/initrd.img" "" "$WORK/root.img"
expect_check_pass
expect_log "rdext: (warning: )?/etc/fstab: not mounting /var .*$reason"
