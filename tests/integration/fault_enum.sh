#!/bin/bash
# Every fault point of a merge, a refresh and an unmerge, enumerated.
#
# A representative root (sysext: a directory, erofs, squashfs, ext4 and a GPT
# disk image, touching /usr and /opt; confext: a directory, erofs and
# squashfs) is merged once with RDEXT_FAULT_TRACE=1, which lists every
# (point, occurrence) the run passes. Then, for each of them, the same run
# with RDEXT_FAULT=point:N must end in one of three ways:
#   failed    exit 1, a stderr line names the injected step, and mounts, loop
#             devices and the root's run/ are exactly as before the run;
#   skipped   exit 0, the images the fault hit are missing and a stderr line
#             naming the fault names each of them (or its search directory),
#             and the merged trees are exactly those of a merge that excluded
#             those images (rd.sysext.exclude=/rd.confext.exclude=);
#   warned    exit 0, everything merged, and a stderr line names the fault
#             (the state file: the merge stands without it; or a search
#             directory that holds no image anyway).
# No point is named here: a point added to the code is covered by the trace.
# The method is fault_enum_lib.sh, shared with the VM guest's enumeration.
#
# refresh (from a merge, with one image removed and one added): a failure
# leaves the previous merge exactly as it was (mounts, loops, run/, trees);
# a skip gives the refreshed trees without the images it hit.
# unmerge: a failure names the step; every hierarchy is either still merged
# exactly as before or not merged at all, and a plain unmerge then restores
# the state from before the merge.
#
# verity-activate (dm-verity) is not on this list: the host has no device
# mapper, so the representative merge has no verity image; the VM test
# vm_fault_verity_busybox (tests/vm/scenarios/fault_verity.sh) enumerates
# the points of a merge, refresh and unmerge of signed verity images in
# the guest, with the same method.
#
# Prints "fault points covered: N (merge X, refresh Y, unmerge Z)".
# POINTS=merge|refresh|unmerge (comma-separated) runs only those phases.
source "$(dirname "$0")/lib.sh"
require_root_env

R=$TEST_DIR/root
B=$TEST_DIR/build
A=$TEST_DIR/aside   # images taken out of the root for the refresh phase
mkdir -p "$A"
make_root "$R"

# name -> the search directory it is in (a fault opening that directory
# names the directory, not the image)
declare -A DIR_OF
SYSEXTS=(s-dir s-erofs s-squash s-ext4 s-gpt)
CONFEXTS=(c-dir c-erofs c-squash)

add() { DIR_OF[$1]=$2; }
make_ext_tree "$B/s-dir" s-dir sysext -- usr/share/t/s-dir=s-dir opt/t/s-dir=s-dir
cp -a "$B/s-dir" "$R/etc/extensions/s-dir"; add s-dir etc/extensions
make_ext_tree "$B/s-erofs" s-erofs sysext -- usr/share/t/s-erofs=s-erofs opt/t/s-erofs=s-erofs
make_erofs "$B/s-erofs" "$R/var/lib/extensions/s-erofs.raw"; add s-erofs var/lib/extensions
make_ext_tree "$B/s-squash" s-squash sysext -- usr/share/t/s-squash=s-squash
make_squashfs "$B/s-squash" "$R/run/extensions/s-squash.raw"; add s-squash run/extensions
make_ext_tree "$B/s-ext4" s-ext4 sysext -- usr/share/t/s-ext4=s-ext4 usr/share/t/shared=s-ext4
make_ext4 "$B/s-ext4" "$R/var/lib/extensions/s-ext4.raw"; add s-ext4 var/lib/extensions
make_ext_tree "$B/s-gpt" s-gpt sysext -- usr/share/t/s-gpt=s-gpt usr/share/t/shared=s-gpt
make_gpt "$B/s-gpt" "$R/etc/extensions/s-gpt.raw" root erofs; add s-gpt etc/extensions
make_ext_tree "$B/c-dir" c-dir confext -- etc/t/c-dir=c-dir
cp -a "$B/c-dir" "$R/run/confexts/c-dir"; add c-dir run/confexts
make_ext_tree "$B/c-erofs" c-erofs confext -- etc/t/c-erofs=c-erofs etc/t/shared=c-erofs
make_erofs "$B/c-erofs" "$R/var/lib/confexts/c-erofs.raw"; add c-erofs var/lib/confexts
make_ext_tree "$B/c-squash" c-squash confext -- etc/t/c-squash=c-squash
make_squashfs "$B/c-squash" "$R/usr/lib/confexts/c-squash.raw"; add c-squash usr/lib/confexts
# for refresh: s-new comes in, s-squash goes
make_ext_tree "$B/s-new" s-new sysext -- usr/share/t/s-new=s-new opt/t/s-new=s-new
make_erofs "$B/s-new" "$A/s-new.raw"; add s-new run/extensions
bind_root "$R"
ALL=("${SYSEXTS[@]}" "${CONFEXTS[@]}")

# snap NAME / same_state A B: snapshot_state/assert_same_state from lib.sh,
# cheaper (no Python: about 200 of them run here) and blind to the order of
# mounts (a refresh that puts a merge back changes the order, not the state):
# mounts in this namespace (lib.sh namespace_mounts), loop devices backed by a file under the test
# dir (matched by device and inode), the root's run/ minus state.json.
snap() {
    local f=$TEST_DIR/state/$1
    namespace_mounts | sort >"$f.mounts"
    awk 'NR == FNR { files[$1 " " $2] = $3; next }
         { split($2, mm, ":"); k = mm[1] * 256 + mm[2] " " $3; if (k in files) print files[k] }' \
        <(find "$TEST_DIR" -xdev -type f -printf '%D %i %P\n') \
        <(losetup -ln -O NAME,BACK-MAJ:MIN,BACK-INO 2>/dev/null) | sort >"$f.loops"
    find "$R/run" -mindepth 1 -printf '%y ./%P\n' | sort |
        { grep -vE '^(d \./rdext|f \./rdext/state\.json)$' || true; } >"$f.run"
}
same_state() {
    local kind bad=0
    for kind in mounts loops run; do
        if ! diff -u "$TEST_DIR/state/$1.$kind" "$TEST_DIR/state/$2.$kind" >&2; then
            printf '%s: %s differ between %s and %s (diff above)\n' "$TEST_NAME" "$kind" "$1" "$2" >&2
            bad=1
        fi
    done
    [[ $bad == 0 ]] || fail "state after '$2' differs from '$1'"
}

mkdir -p "$TEST_DIR/state"
snap before

# The method (fault_enum_lib.sh) with the host's state: no dm devices, and
# the snapshot is read at once (the host's loop devices go synchronously).
W=$TEST_DIR
ASIDE=$A
REFRESH_GONE=s-squash REFRESH_GONE_DIR=run/extensions
REFRESH_NEW=s-new REFRESH_NEW_DIR=run/extensions
# the root as the refresh finds it: s-squash gone, s-new there
REFRESHED=(s-dir s-erofs s-ext4 s-gpt s-new "${CONFEXTS[@]}")
fe_say() { log "$*"; }
fe_show_stderr() { tail -n 15 "$W/last.err" | sed 's/^/  stderr| /' >&2; }
fe_snap() { snap "$1"; }
fe_expect_state() { snap "$2"; same_state "$1" "$2"; }
fe_reference_taken() { :; }
fe_merged_devices() { :; }
fe_check_devices() { :; }
fe_unmerged_after_failure() { assert_no_staging "$R"; }
# recover: after a point whose checks failed, put the root back as it was
# before the test (so the next points are judged on their own)
recover() {
    local h
    for h in usr opt etc run; do unmount_all_under "$R/$h"; done
    rm -rf "$R/run/rdext"
    to_original_root 2>/dev/null || true
    return 0
}
source "$(dirname "$0")/fault_enum_lib.sh"

# --- merge --------------------------------------------------------------------

check "merge: the full merge, traced"
trace_points merge
MERGE_POINTS=("${TRACE[@]}")
assert_merged "$R" /usr "${SYSEXTS[@]}"
assert_merged "$R" /opt "${SYSEXTS[@]}"   # the metadata lists the whole class
assert_merged "$R" /etc "${CONFEXTS[@]}"
run_rdext --root="$R" unmerge
expect_rc 0
log "merge passes ${#MERGE_POINTS[@]} points: ${MERGE_POINTS[*]}"
if phase_selected merge; then
    for p in "${MERGE_POINTS[@]}"; do run_point merge "$p"; done
fi

# --- refresh --------------------------------------------------------------------

if phase_selected refresh; then
    check "refresh: from a merge of the original set to the changed set, traced"
    merged_then_changed
    trace_points refresh
    REFRESH_POINTS=("${TRACE[@]}")
    [[ $(merged_set | tr '\n' ' ') == "$(printf '%s\n' "${REFRESHED[@]}" | sort | tr '\n' ' ')" ]] ||
        fail "the traced refresh merged $(merged_set | tr '\n' ' '), expected ${REFRESHED[*]}"
    run_rdext --root="$R" unmerge
    expect_rc 0
    to_original_root
    log "refresh passes ${#REFRESH_POINTS[@]} points: ${REFRESH_POINTS[*]}"
    for p in "${REFRESH_POINTS[@]}"; do run_point refresh "$p"; done
fi

# --- unmerge ------------------------------------------------------------------------

if phase_selected unmerge; then
    check "unmerge: from the full merge, traced"
    run_rdext --root="$R" merge
    expect_rc 0
    merged_trees
    trace_points unmerge
    UNMERGE_POINTS=("${TRACE[@]}")
    snap after-unmerge
    same_state before after-unmerge
    log "unmerge passes ${#UNMERGE_POINTS[@]} points: ${UNMERGE_POINTS[*]}"
    for p in "${UNMERGE_POINTS[@]}"; do run_point unmerge "$p"; done
fi

DEFERRED_FAILURES+=("${FE_FAILED[@]}")
total=$(( COUNT[merge] + COUNT[refresh] + COUNT[unmerge] ))
log "outcomes: $(outcomes_summary)"
log "fault points covered: $total (merge ${COUNT[merge]}, refresh ${COUNT[refresh]}, unmerge ${COUNT[unmerge]})"
echo "fault points covered: $total (merge ${COUNT[merge]}, refresh ${COUNT[refresh]}, unmerge ${COUNT[unmerge]})"
finish
