#!/bin/bash
# A separate /var: the root's fstab lists /var on its own file system, which
# nobody mounted yet (as in an initrd). rdext mounts it on ROOT/var as the
# fstab says, finds the extensions in /var/lib/extensions and merges them;
# /var stays mounted for the booted system. When the merge fails, /var is
# unmounted again and the root is as before.
# The fstab is the root's, so untrusted: only a block device (a /dev path,
# UUID=, LABEL=, PARTUUID=, PARTLABEL=) with a local file system is mounted,
# nosuid,nodev, on the root's real /var (never through a symlink). Bind,
# tmpfs, network, nofail lines and sources that are not block devices are
# skipped with a warning, and the merge goes on.
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
label=rdv-${TEST_DIR##*.}
tune2fs -L "$label" "$TEST_DIR/var.img" >/dev/null
uuid=$(blkid -c /dev/null -s UUID -o value "$TEST_DIR/var.img")
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
[[ ,$(mount_opts "$R/var"), == *,nosuid,*nodev,* ]] || fail "/var not mounted nosuid,nodev: $(mount_opts "$R/var")"
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

# The legitimate forms systemd's fstab generator knows, and options that try
# to widen what /var may do (suid, dev) are overridden.
legit_var() {
    local line=$1 opts
    check "fstab line '$line' mounts /var"
    printf '%s\n' "$line" >"$R/etc/fstab"
    run_rdext --root="$R" merge
    expect_rc 0
    expect_stderr_line "mounted /var"
    mountpoint -q "$R/var" || fail "$R/var is not mounted for '$line'"
    opts=$(mount_opts "$R/var")
    [[ ,$opts, == *,nosuid,* && ,$opts, == *,nodev,* ]] || fail "/var not nosuid,nodev for '$line': $opts"
    [[ -z ${2:-} || ,$opts, == *,$2,* ]] || fail "/var not mounted $2 for '$line': $opts"
    assert_merged "$R" /usr onetc onvar
    run_rdext --root="$R" unmerge
    expect_rc 0
    umount "$R/var"
}
legit_var "UUID=$uuid /var auto defaults 0 2"
legit_var "LABEL=$label /var ext4 defaults,x-systemd.device-timeout=0 0 2"
legit_var "$vardev /var ext4 suid,dev,exec,noatime,errors=remount-ro 0 2" noatime
snapshot_state "$R" after-legit
assert_same_state before after-legit

# hostile_var ROOT REASON LINE: the line is not mounted, a warning names
# /var and REASON, the merge succeeds, nothing is mounted on the root's /var
# or where a symlinked /var points, and the initrd's /etc never shows.
hostile_var() {
    local root=$1 reason=$2 line=$3 m before after
    check "fstab line '$line' ($reason): nothing mounted, the merge goes on"
    printf '%s\n' "$line" >"$root/etc/fstab"
    before=$(mounts_under "$TEST_DIR")
    run_rdext --root="$root" merge
    [[ $LAST_RC == 0 ]] || defer_fail "merge failed on the fstab line '$line' (exit $LAST_RC)"
    grep -qiE "/var.*($reason)" "$TEST_DIR/last.err" ||
        defer_fail "no warning naming /var and '$reason' for '$line'"
    for m in usr/bin usr/lib usr/lib/systemd; do
        ! mountpoint -q "$root/$m" || defer_fail "'$line' mounted $(mount_field "$root/$m" 1) on $root/$m"
    done
    if [[ ! -L $root/var ]]; then
        ! mountpoint -q "$root/var" || defer_fail "'$line' mounted $(mount_field "$root/var" 1) on $root/var"
        [[ ! -e $root/var/passwd ]] || defer_fail "'$line' shows the initrd's /etc under $root/var"
    fi
    [[ ! -e $root/usr/lib/systemd/planted ]] || defer_fail "'$line' put the planted tree in /usr/lib/systemd"
    run_rdext --root="$root" unmerge
    # What the unfixed code mounts, cleared so the next case starts clean.
    for m in var usr/bin usr/lib/systemd; do
        [[ -L $root/$m ]] && continue
        while mountpoint -q "$root/$m"; do umount -l "$root/$m"; done
    done
    after=$(mounts_under "$TEST_DIR")
    [[ $before == "$after" ]] || defer_fail "'$line' left mounts: $(diff <(echo "$before") <(echo "$after") | grep '^>')"
}

mkdir -p "$R/home/x" "$R/usr/lib/systemd"
echo planted >"$R/home/x/planted"
hostile_var "$R" bind "/etc /var none bind 0 0"
hostile_var "$R" "bind|nofail" "/etc /var auto rbind,nofail 0 0"
hostile_var "$R" bind "$R/home/x /var none bind 0 0"
hostile_var "$R" tmpfs "tmpfs /var tmpfs suid,dev,exec,mode=777 0 0"
hostile_var "$R" "nofail|network|nfs" "srv:/export /var nfs defaults,nofail 0 0"
hostile_var "$R" "network|_netdev|cifs" "//srv/share /var cifs _netdev 0 0"
hostile_var "$R" "nofail" "$vardev /var ext4 defaults,nofail 0 2"
hostile_var "$R" "block device" "/dev/null /var ext4 defaults 0 2"
hostile_var "$R" "block device" "$TEST_DIR/var.img /var ext4 loop 0 2"

# /var a symlink into /usr: never mounted through it.
S=$TEST_DIR/symroot
make_root "$S"
mkdir -p "$S/home/x" "$S/usr/lib/systemd"
echo planted >"$S/home/x/planted"
rmdir "$S/var/lib/extensions" "$S/var/lib/confexts" 2>/dev/null || true
rm -rf "$S/var"
ln -s /usr/bin "$S/var"
bind_root "$S"
hostile_var "$S" "tmpfs|symlink" "tmpfs /var tmpfs suid,dev,exec,mode=777 0 0"
hostile_var "$S" symlink "$vardev /var ext4 defaults 0 2"
ln -sfn /usr/lib/systemd "$S/var"
hostile_var "$S" "bind|symlink" "$S/home/x /var none bind 0 0"
hostile_var "$S" symlink "UUID=$uuid /var auto defaults 0 2"
[[ -f $S/usr/bin/base-tool ]] || fail "$S/usr/bin lost its files"
umount "$S"

snapshot_state "$R" after-hostile
assert_same_state before after-hostile
finish
