#!/usr/bin/env bash
# Boot counting of extension images across real boots of one persistent disk
# (no snapshot: each boot sees what the one before did), through the given
# initrd (default busybox):
#   rdtrial.raw.v/ holds rdtrial_1.raw (good) and rdtrial_2+2-0.raw, a trial
#   whose health check (a unit RequiredBy=boot-complete.target) fails.
#   Boot 0 with `ro` and an fstab that keeps the root read-only: the try
#   cannot be counted; rdext-count-tries.service fails saying so, the boot
#   goes on with the trial merged, nothing is renamed. fstab then says rw.
#   Boots 1-3 with `ro`: /sysroot is read-only in the initrd, so the merge
#   records the decrement as pending and rdext-count-tries.service does it once
#   systemd-remount-fs.service made the root writable:
#     boot 1 merges rdtrial_2 -> rdtrial_2+1-1.raw, boot-complete.target fails,
#            rdext-mark-good.service does not run;
#     boot 2 merges rdtrial_2 -> rdtrial_2+0-2.raw, same;
#     boot 3 merges rdtrial_1 (the trial has no tries left), boot-complete.target
#            is reached, mark-good has nothing to mark, rdtrial_2+0-2.raw stays.
#   Then rdtrial_3+2-0.raw, a trial that boots fine, is added. Boot 4 with `rw`:
#   the merge in the initrd counts it (rdtrial_3+1-1.raw) and
#   rdext-mark-good.service renames it to rdtrial_3.raw.
# After each boot the host reads the directory from the disk (debugfs) and the
# guest's checker reports rdext status, the units' results and the version
# merged (/etc/rdext-check.d/boot-counting.sh, per-boot expectations in
# /etc/rdext-check-boot.conf, rewritten between boots).
source "$(dirname "$0")/../lib.sh"
kind=${1:-busybox}
new_scenario
command -v debugfs >/dev/null || skip "debugfs (e2fsprogs) missing"

DIR=/var/lib/extensions/rdtrial.raw.v

# The booted-system units as installed (units/), enabled as their [Install]
# sections say; the units run /usr/bin/rdext.
install_units() {
    local u
    for u in rdext-count-tries rdext-mark-good; do
        put "/usr/lib/systemd/system/$u.service" <"$SRC_DIR/units/$u.service"
    done
    mkdir -p "$OVERLAY/etc/systemd/system/sysinit.target.wants" "$OVERLAY/etc/systemd/system/basic.target.wants" \
        "$OVERLAY/usr/bin"
    ln -sfn /usr/lib/systemd/system/rdext-count-tries.service \
        "$OVERLAY/etc/systemd/system/sysinit.target.wants/rdext-count-tries.service"
    ln -sfn /usr/lib/systemd/system/rdext-mark-good.service \
        "$OVERLAY/etc/systemd/system/basic.target.wants/rdext-mark-good.service"
    ln -sfn ../local/bin/rdext "$OVERLAY/usr/bin/rdext"
}

# trial_image VERSION HEALTH(true|false) DEST: the sysext rdtrial, whose
# /usr/share/rdtrial/version says VERSION and whose health check runs HEALTH.
trial_image() {
    local t=$IMAGES/rdtrial-$1
    marker_sysext "$t" rdtrial
    ext_file "$t" /usr/share/rdtrial/version <<<"$1"
    ext_file "$t" /usr/lib/systemd/system/rdtrial-health.service <<EOF
[Unit]
Description=Health check of the rdtrial extension (version $1)
Before=boot-complete.target
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/$2
EOF
    mkdir -p "$t/usr/lib/systemd/system/boot-complete.target.requires"
    ln -s ../rdtrial-health.service "$t/usr/lib/systemd/system/boot-complete.target.requires/rdtrial-health.service"
    make_erofs "$t" "$3"
}

# The checker's own part: run after the boot counting units are done.
checker_part() {
    put /etc/systemd/system/rdext-check.service.d/50-boot-counting.conf <<'EOF'
[Unit]
After=rdext-count-tries.service rdext-mark-good.service boot-complete.target
EOF
    put /etc/rdext-check.d/boot-counting.sh <<'EOF'
# Boot counting checks; the expectations of this boot are in
# /etc/rdext-check-boot.conf: BOOT, VERSION (merged), TRIAL (trial status or
# "none"), LATE (1: renamed by rdext-count-tries.service), COMPLETE (1:
# boot-complete.target reached and mark-good ran), PASSED_OVER (entry), RO (1:
# the root stays read-only after boot).
. /etc/rdext-check-boot.conf
echo "RDEXT-CHECK: info boot $BOOT"
json=$(rdext --json status | tr -d '\n' | tr -s ' ')
# The flat JSON object of the extension record's trial, or of one candidate.
trial_json=$(grep -oE '"trial": ?\{[^{}]*\}' <<<"$json")
candidate_json() { grep -oE "\{[^{}]*\"path\": ?\"[^\"]*/$1\"[^{}]*\}" <<<"$json"; }
echo "RDEXT-CHECK: info trial: ${trial_json:-none}"
unit_prop() { systemctl show -P "$2" "$1"; }
started() { [ "$(unit_prop "$1" ExecMainStartTimestampMonotonic)" != 0 ]; }
succeeded() { started "$1" && [ "$(unit_prop "$1" Result)" = success ] && [ "$(unit_prop "$1" ExecMainStatus)" = 0 ]; }
for u in rdext-count-tries.service rdext-mark-good.service rdtrial-health.service boot-complete.target; do
    echo "RDEXT-CHECK: info $u: $(systemctl show -p ActiveState -p Result -p ExecMainStatus "$u" | tr '\n' ' ')"
done

check "boot $BOOT: rdtrial version $VERSION is merged" content_is /usr/share/rdtrial/version "$VERSION"
if [ "$RO" = 1 ]; then
    # fstab keeps the root read-only: the try cannot be counted, and is not.
    check "boot $BOOT: the root stays read-only in the booted system" test ! -w /var/lib/extensions/rdtrial.raw.v
    check "boot $BOOT: rdext-count-tries.service failed" test "$(unit_prop rdext-count-tries.service Result)" = exit-code
    check "boot $BOOT: rdext-count-tries.service said why" \
        sh -c 'journalctl -b -u rdext-count-tries.service | grep -q "cannot be renamed, the root is still read-only"'
else
    check "boot $BOOT: the root is writable in the booted system" test -w /var/lib/extensions/rdtrial.raw.v
fi
if [ "$TRIAL" = none ]; then
    check "boot $BOOT: the merged entry is no trial" test -z "$trial_json"
else
    check "boot $BOOT: rdext status: trial status $TRIAL" grep -qE "\"status\": ?\"$TRIAL\"" <<<"$trial_json"
fi
if [ "$LATE" = 1 ]; then
    # Read-only /sysroot: the merge left the rename to the booted system.
    check "boot $BOOT: the try was counted by rdext-count-tries.service (root read-only in the initrd)" \
        grep -q 'renamed late' <<<"$trial_json"
    check "boot $BOOT: rdext-count-tries.service succeeded" succeeded rdext-count-tries.service
fi
if [ "$COMPLETE" = 1 ]; then
    check "boot $BOOT: boot-complete.target reached" systemctl -q is-active boot-complete.target
    check "boot $BOOT: rdext-mark-good.service ran and succeeded" succeeded rdext-mark-good.service
else
    check "boot $BOOT: the trial's health check failed" systemctl -q is-failed rdtrial-health.service
    check "boot $BOOT: boot-complete.target not reached" test "$(unit_prop boot-complete.target ActiveState)" != active
    check "boot $BOOT: rdext-mark-good.service did not run" test "$(unit_prop rdext-mark-good.service ExecMainStartTimestampMonotonic)" = 0
fi
if [ -n "${PASSED_OVER:-}" ]; then
    c=$(candidate_json "$(printf '%s' "$PASSED_OVER" | sed 's/[+.]/\\&/g')")
    echo "RDEXT-CHECK: info $PASSED_OVER: $c"
    check "boot $BOOT: rdext status: $PASSED_OVER passed over" grep -qE '"verdict": ?"passed over"' <<<"$c"
    check "boot $BOOT: rdext status: $PASSED_OVER has no tries left" grep -q 'no tries left' <<<"$c"
fi
EOF
}

# boot_conf N VERSION TRIAL LATE COMPLETE PASSED_OVER RO: this boot's expectations.
boot_conf() {
    printf 'BOOT=%s\nVERSION=%s\nTRIAL=%s\nLATE=%s\nCOMPLETE=%s\nPASSED_OVER=%s\nRO=%s\n' "$@" >"$WORK/boot.conf"
}

# disk_write GUEST-PATH LOCAL-FILE: replaces a file in the root disk, unmounted.
disk_write() {
    debugfs -w -R "rm $1" "$WORK/root.img" >/dev/null 2>&1 || true
    debugfs -w -R "write $2 $1" "$WORK/root.img" >/dev/null 2>&1
    debugfs -R "cat $1" "$WORK/root.img" 2>/dev/null | cmp -s - "$2" || die "could not write $1 into the root disk"
}

# expect_dir NAME...: the versioned directory on the disk holds exactly these.
expect_dir() {
    local got want
    got=$(debugfs -R "ls -p $DIR" "$WORK/root.img" 2>/dev/null | awk -F/ 'NF > 5 && $6 != "." && $6 != ".." { print $6 }' |
        sort | tr '\n' ' ')
    want=$(printf '%s\n' "$@" | sort | tr '\n' ' ')
    [[ $got == "$want" ]] || die "after boot $BOOT_N: $DIR holds '$got', expected '$want'"
    log "after boot $BOOT_N: $DIR holds $got"
}

# boot N CMDLINE: boots the persistent root disk.
boot() {
    BOOT_N=$1
    disk_write /etc/rdext-check-boot.conf "$WORK/boot.conf"
    boot_persistent "$1" "$INITRD" "$2" "$WORK/root.img"
    expect_check_pass
}

INITRD=$(initrd_for "$kind")
install_units
checker_part
mkdir -p "$OVERLAY$DIR"
trial_image 1 true "$OVERLAY$DIR/rdtrial_1.raw"
trial_image 2 false "$OVERLAY$DIR/rdtrial_2+2-0.raw"
trial_image 3 true "$IMAGES/rdtrial_3+2-0.raw"
expect EXPECT_SYSEXT=rdtrial CHECK_HANDOFF=1
root_disk

# Boot 0: the root stays read-only (fstab says ro): count-tries fails with a
# message, the boot goes on with the trial, nothing is renamed.
printf '/dev/vda / ext4 ro 0 0\n' >"$WORK/fstab"
disk_write /etc/fstab "$WORK/fstab"
boot_conf 0 2 pending 0 0 "" 1
boot 0 ro
expect_dir rdtrial_1.raw rdtrial_2+2-0.raw
printf '/dev/vda / ext4 rw 0 0\n' >"$WORK/fstab"
disk_write /etc/fstab "$WORK/fstab"

boot_conf 1 2 counted 1 0 "" 0
boot 1 ro
# The initrd could not rename (read-only /sysroot); the booted system did.
expect_log 'rdtrial: boot counting: cannot rename rdtrial_2\+2-0\.raw to rdtrial_2\+1-1\.raw yet, the root is read-only'
expect_dir rdtrial_1.raw rdtrial_2+1-1.raw
boot_conf 2 2 counted 1 0 "" 0
boot 2 ro
expect_dir rdtrial_1.raw rdtrial_2+0-2.raw
boot_conf 3 1 none 0 1 rdtrial_2+0-2.raw 0
boot 3 ro
expect_dir rdtrial_1.raw rdtrial_2+0-2.raw

# An update that boots fine, on a root the initrd mounts writable.
disk_write "$DIR/rdtrial_3+2-0.raw" "$IMAGES/rdtrial_3+2-0.raw"
boot_conf 4 3 good 0 1 "" 0
boot 4 rw
expect_log 'boot counting: renamed .*rdtrial_3\+2-0\.raw to rdtrial_3\+1-1\.raw'
expect_dir rdtrial_1.raw rdtrial_2+0-2.raw rdtrial_3.raw
log "PASS: 5 boots, scenario $(elapsed "$SCENARIO_START")s"
