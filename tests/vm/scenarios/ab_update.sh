#!/usr/bin/env bash
# OS-bound selection across an A/B rollback, through the given initrd
# (default dracut), with `ro` on the kernel command line as usual: one
# persistent root disk (no snapshot) whose os-release says VERSION_ID=12 holds
# rdab.raw.v/ with rdab_11.raw, rdab_12.raw and rdab_13.raw, each built for
# that release. Boot 1 merges rdab_12 (rdab_13 is newer but for another
# release; rdab_11 is older). The host then rewrites the disk's os-release to
# VERSION_ID=11 (what a rollback to the previous OS slot looks like to rdext)
# and boot 2 merges rdab_11. Nothing is renamed. The guest's checker reads
# the version merged and rdext status's verdicts
# (/etc/rdext-check.d/ab-update.sh).
source "$(dirname "$0")/../lib.sh"
kind=${1:-dracut}
new_scenario
command -v debugfs >/dev/null || skip "debugfs (e2fsprogs) missing"

DIR=/var/lib/extensions/rdab.raw.v

# The guest's os-release as a file of its own (/etc/os-release is a link to
# /usr/lib/os-release), with VERSION_ID=$1.
os_release() {
    sed -e "s/^VERSION_ID=.*/VERSION_ID=\"$1\"/" -e "s/^VERSION=.*/VERSION=\"$1\"/" \
        "$VM_ROOT_TREE/usr/lib/os-release" >"$WORK/os-release"
}

# ab_image VERSION: rdab for OS release VERSION, as rdab_VERSION.raw.
ab_image() {
    local t=$IMAGES/rdab-$1
    ext_tree "$t" rdab sysext ID=debian "VERSION_ID=$1"
    ext_file "$t" /usr/share/rdab/marker <<<rdab
    ext_file "$t" /usr/share/rdab/version <<<"$1"
    make_erofs "$t" "$OVERLAY$DIR/rdab_$1.raw"
}

put /etc/rdext-check.d/ab-update.sh <<'EOF'
# A/B: the rdab entry merged is the one for the booted OS's VERSION_ID.
want=$(. /etc/os-release && echo "$VERSION_ID")
json=$(rdext --json status | tr -d '\n' | tr -s ' ')
candidate_json() { grep -oE "\{[^{}]*\"path\": ?\"[^\"]*/$1\"[^{}]*\}" <<<"$json"; }
for v in 11 12 13; do echo "RDEXT-CHECK: info rdab_$v.raw: $(candidate_json "rdab_$v.raw")"; done
check "os-release says VERSION_ID=$want; rdab_$want is merged" content_is /usr/share/rdab/version "$want"
check "rdext status: rdab_$want.raw chosen" grep -qE '"verdict": ?"chosen"' <<<"$(candidate_json "rdab_$want.raw")"
for v in 11 12 13; do
    [ "$v" = "$want" ] && continue
    check "rdext status: rdab_$v.raw passed over" grep -qE '"verdict": ?"passed over"' <<<"$(candidate_json "rdab_$v.raw")"
done
# The newer entry is for another release, and status says so.
newer=$((want + 1))
check "rdext status: rdab_$newer.raw: VERSION_ID=$newer does not match" \
    grep -q "VERSION_ID=$newer does not match" <<<"$(candidate_json "rdab_$newer.raw")"
EOF

# disk_write GUEST-PATH LOCAL-FILE: replaces a file in the root disk, unmounted.
disk_write() {
    debugfs -w -R "rm $1" "$WORK/root.img" >/dev/null 2>&1 || true
    debugfs -w -R "write $2 $1" "$WORK/root.img" >/dev/null 2>&1
    debugfs -R "cat $1" "$WORK/root.img" 2>/dev/null | cmp -s - "$2" || die "could not write $1 into the root disk"
}

# dir_listing: the entries of the versioned directory on the disk.
dir_listing() {
    debugfs -R "ls -p $DIR" "$WORK/root.img" 2>/dev/null | awk -F/ 'NF > 5 && $6 != "." && $6 != ".." { print $6 }' |
        sort | tr '\n' ' '
}

# boot N CMDLINE: boots the persistent root disk.
boot() {
    boot_persistent "$1" "$INITRD" "$2" "$WORK/root.img"
    expect_check_pass
}

INITRD=$(initrd_for "$kind")
mkdir -p "$OVERLAY$DIR"
for v in 11 12 13; do ab_image "$v"; done
os_release 12
put /etc/os-release <"$WORK/os-release"
expect EXPECT_SYSEXT=rdab CHECK_HANDOFF=1
root_disk
before=$(dir_listing)

boot 1 ro
expect_log 'RDEXT-CHECK: ok +os-release says VERSION_ID=12; rdab_12 is merged'

# The rollback: the other slot's OS is release 11.
os_release 11
disk_write /etc/os-release "$WORK/os-release"
boot 2 ro
expect_log 'RDEXT-CHECK: ok +os-release says VERSION_ID=11; rdab_11 is merged'
[[ $(dir_listing) == "$before" ]] || die "$DIR changed: '$before' -> '$(dir_listing)'"
log "PASS: 2 boots, $DIR unchanged ($before), scenario $(elapsed "$SCENARIO_START")s"
