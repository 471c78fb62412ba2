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

phase_selected() { [[ -z ${POINTS:-} || ,$POINTS, == *",$1,"* ]]; }

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

# digest: the merged (or not) trees, as tree_digest in lib.sh lists them
# (types, modes, owners, link targets, contents; not the metadata files that
# name the mount), cheaper
digest() {
    (cd "$R" && find usr opt etc -printf '%p %y %m %U %G %l\n' | sort |
        grep -vE '/\.systemd-(sysext|confext)/(dev|backing|origin) ') || true
    (cd "$R" && find usr opt etc -type f ! -path '*/.systemd-*/dev' ! -path '*/.systemd-*/backing' \
        ! -path '*/.systemd-*/origin' -exec md5sum {} + | sort -k2) || true
}

mkdir -p "$TEST_DIR/state"
snap before

# merged_set: the names merged now, one line each, sorted
merged_set() {
    { merged_names "$R" /usr; merged_names "$R" /opt; merged_names "$R" /etc; } | sort -u
}


# trace_points ARRAY VERB [ARGS]: the points VERB passes, "name:N", into
# ARRAY. Not in a subshell, so that a failed traced run fails the test; and
# a run that passed no point fails it too (every verb passes some).
trace_points() {
    local -n points_=$1; shift
    RDEXT_FAULT_TRACE=1 run_rdext --root="$R" "$@"
    expect_rc 0
    mapfile -t points_ < <(sed -n 's/.*fault point \([^ ]*:[0-9]*\)$/\1/p' "$TEST_DIR/last.err")
    (( ${#points_[@]} )) || fail "the traced $1 passed no fault point (not a fault-injection build?)"
}

# reference KEY NAMES...: the trees of a merge of the current root without
# NAMES (cached by KEY): sets REF_FILE to $TEST_DIR/ref/KEY
reference() {
    local key=$1; shift
    local f=$TEST_DIR/ref/$key
    mkdir -p "$TEST_DIR/ref"
    REF_FILE=$f
    [[ -f $f ]] && return 0
    local n sys=() conf=()
    for n in "$@"; do
        if [[ $n == c-* ]]; then conf+=("$n"); else sys+=("$n"); fi
    done
    : >"$TEST_DIR/ref-cmdline"
    (( ${#sys[@]} )) && printf 'rd.sysext.exclude=%s ' "$(IFS=,; echo "${sys[*]}")" >>"$TEST_DIR/ref-cmdline"
    (( ${#conf[@]} )) && printf 'rd.confext.exclude=%s ' "$(IFS=,; echo "${conf[*]}")" >>"$TEST_DIR/ref-cmdline"
    run_rdext --root="$R" --cmdline-file="$TEST_DIR/ref-cmdline" merge
    expect_rc 0
    digest >"$f"
    run_rdext --root="$R" unmerge
    expect_rc 0
}

# stderr_names_fault POINT NAME: a stderr line names the injected POINT and
# NAME (the image) or the search directory NAME is in
stderr_names_fault() {
    local point=$1 name=$2
    grep -F "injected fault at $point" "$TEST_DIR/last.err" |
        grep -qE -- "(/|^| )($name(\.raw)?|${DIR_OF[$name]})([:/ ,]|$)"
}

# judge_success PHASE POINT EXPECTED-NAMES...: after a run with the fault
# that exited 0: which images were skipped, and are the trees right? Sets
# OUTCOME ("skipped a b" or "warned") and leaves the root unmerged.
judge_success() {
    local phase=$1 point=$2; shift 2
    local want=("$@") got missing=() n
    got=$(merged_set)
    for n in "${want[@]}"; do grep -qxF -- "$n" <<<"$got" || missing+=("$n"); done
    for n in $got; do
        [[ " ${want[*]} " == *" $n "* ]] || fail "$phase $point: $n merged but was not expected"
    done
    grep -qF "injected fault at $point" "$TEST_DIR/last.err" ||
        fail "$phase $point: exit 0 but no stderr line names the injected fault (swallowed silently)"
    local key
    if (( ${#missing[@]} )); then
        for n in "${missing[@]}"; do
            stderr_names_fault "$point" "$n" ||
                fail "$phase $point: $n was not merged, but no stderr line names it (or ${DIR_OF[$n]}) with the fault"
        done
        key=$phase-$(IFS=+; echo "${missing[*]}")
    else
        key=$phase-all
    fi
    digest >"$TEST_DIR/got.digest"
    # the reference is taken on the same root: put the merge away first
    run_rdext --root="$R" unmerge
    expect_rc 0
    reference "$key" "${missing[@]}"
    if ! diff -u "$REF_FILE" "$TEST_DIR/got.digest" >"$TEST_DIR/digest.diff"; then
        head -40 "$TEST_DIR/digest.diff" >&2
        fail "$phase $point: the merged trees differ from a merge without: ${missing[*]:-(nothing)}"
    fi
    if (( ${#missing[@]} )); then OUTCOME="skipped ${missing[*]}"; else OUTCOME=warned; fi
}

# judge_failure PHASE POINT SNAPSHOT [DIGEST-FILE]: exit 1, the step named,
# state as in SNAPSHOT (and the trees as in DIGEST-FILE, else none merged)
judge_failure() {
    local phase=$1 point=$2 snap=$3 ref=${4:-}
    [[ $LAST_RC == 1 ]] || fail "$phase $point: exit $LAST_RC, expected 0 or 1"
    grep -qF "injected fault at $point" "$TEST_DIR/last.err" ||
        fail "$phase $point: failed, but no stderr line names the injected step"
    snap "$phase.$point"
    same_state "$snap" "$phase.$point"
    if [[ -n $ref ]]; then
        digest >"$TEST_DIR/got.digest"
        diff -u "$ref" "$TEST_DIR/got.digest" >&2 ||
            fail "$phase $point: the trees are not those from before the run"
    else
        for h in usr opt etc; do
            if mountpoint -q "$R/$h"; then fail "$phase $point: /$h is mounted after the failure"; fi
        done
        assert_no_staging "$R"
    fi
    OUTCOME=failed
}

declare -A COUNT=([merge]=0 [refresh]=0 [unmerge]=0)
declare -A OUTCOMES
record() { # PHASE POINT OUTCOME
    COUNT[$1]=$(( COUNT[$1] + 1 ))
    printf '%s: %-8s %-22s %s\n' "$TEST_NAME" "$1" "$2" "$3" >&2
    OUTCOMES[$1:${3%% *}]=$(( ${OUTCOMES[$1:${3%% *}]:-0} + 1 ))
}

# recover: after a point whose checks failed, put the root back as it was
# before the test (so the next points are judged on their own)
recover() {
    local h
    for h in usr opt etc run; do unmount_all_under "$R/$h"; done
    rm -rf "$R/run/rdext"
    [[ -e $R/run/extensions/s-new.raw ]] && mv "$R/run/extensions/s-new.raw" "$A/s-new.raw"
    [[ -e $A/s-squash.raw ]] && mv "$A/s-squash.raw" "$R/run/extensions/s-squash.raw"
    return 0
}

# run_point PHASE POINT: check_PHASE POINT in a subshell, so that a failed
# check is recorded and the enumeration goes on with the next point
run_point() {
    local phase=$1 point=$2 rc
    rm -f "$TEST_DIR/outcome"
    trap - ERR
    set +e
    (
        set -e
        trap '_on_error $LINENO' ERR
        "check_$phase" "$point"
        echo "$OUTCOME" >"$TEST_DIR/outcome"
    )
    rc=$?
    set -e
    trap '_on_error $LINENO' ERR
    if (( rc )); then
        DEFERRED_FAILURES+=("$phase $point")
        record "$phase" "$point" "FAILED (see above)"
        recover
    else
        record "$phase" "$point" "$(cat "$TEST_DIR/outcome")"
    fi
}

# --- merge --------------------------------------------------------------------

check_merge() {
    local p=$1
    RDEXT_FAULT=$p run_rdext --root="$R" merge
    if [[ $LAST_RC == 0 ]]; then
        judge_success merge "$p" "${ALL[@]}"   # unmerges
        snap "merge.$p.after"
        same_state before "merge.$p.after"
    else
        judge_failure merge "$p" before
    fi
}

check "merge: the full merge, traced"
trace_points MERGE_POINTS merge
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

# the root as the refresh finds it: s-squash gone, s-new there
REFRESHED=(s-dir s-erofs s-ext4 s-gpt s-new "${CONFEXTS[@]}")
to_refreshed_root() {
    mv "$R/run/extensions/s-squash.raw" "$A/s-squash.raw"
    mv "$A/s-new.raw" "$R/run/extensions/s-new.raw"
}
to_original_root() {
    mv "$R/run/extensions/s-new.raw" "$A/s-new.raw"
    mv "$A/s-squash.raw" "$R/run/extensions/s-squash.raw"
}

# merged_then_changed: merge the original set, then change the root; the
# first time, record the state and trees a failed refresh must leave
merged_then_changed() {
    run_rdext --root="$R" merge
    expect_rc 0
    to_refreshed_root
    if [[ ! -f $TEST_DIR/pre-refresh.digest ]]; then
        snap pre-refresh
        digest >"$TEST_DIR/pre-refresh.digest"
    fi
}

check_refresh() {
    local p=$1
    merged_then_changed
    RDEXT_FAULT=$p run_rdext --root="$R" refresh
    if [[ $LAST_RC == 0 ]]; then
        judge_success refresh "$p" "${REFRESHED[@]}"   # unmerges
    else
        judge_failure refresh "$p" pre-refresh "$TEST_DIR/pre-refresh.digest"
        run_rdext --root="$R" unmerge
        expect_rc 0
    fi
    to_original_root
    snap "refresh.$p.after"
    same_state before "refresh.$p.after"
}

if phase_selected refresh; then
    check "refresh: from a merge of the original set to the changed set, traced"
    merged_then_changed
    trace_points REFRESH_POINTS refresh
    [[ $(merged_set | tr '\n' ' ') == "$(printf '%s\n' "${REFRESHED[@]}" | sort | tr '\n' ' ')" ]] ||
        fail "the traced refresh merged $(merged_set | tr '\n' ' '), expected ${REFRESHED[*]}"
    run_rdext --root="$R" unmerge
    expect_rc 0
    to_original_root
    log "refresh passes ${#REFRESH_POINTS[@]} points: ${REFRESH_POINTS[*]}"
    for p in "${REFRESH_POINTS[@]}"; do run_point refresh "$p"; done
fi

# --- unmerge ------------------------------------------------------------------------

check_unmerge() {
    local p=$1 h still=()
    run_rdext --root="$R" merge
    expect_rc 0
    RDEXT_FAULT=$p run_rdext --root="$R" unmerge
    grep -qF "injected fault at $p" "$TEST_DIR/last.err" ||
        fail "unmerge $p: exit $LAST_RC but no stderr line names the injected fault"
    if [[ $LAST_RC == 0 ]]; then
        OUTCOME=warned
    else
        [[ $LAST_RC == 1 ]] || fail "unmerge $p: exit $LAST_RC"
        # no half-taken-down hierarchy: each is merged as before or not at all
        for h in usr opt etc; do
            if mountpoint -q "$R/$h"; then
                (cd "$R" && find "$h" -printf '%p %y %m %l\n' | sort) | diff -u "$TEST_DIR/merged.$h" - >&2 ||
                    fail "unmerge $p: /$h is still mounted but not the merge it was"
                still+=("/$h")
            fi
        done
        OUTCOME="failed (still merged: ${still[*]:-none})"
        run_rdext --root="$R" unmerge
        expect_rc 0
    fi
    snap "unmerge.$p.after"
    same_state before "unmerge.$p.after"
}

if phase_selected unmerge; then
    check "unmerge: from the full merge, traced"
    run_rdext --root="$R" merge
    expect_rc 0
    for h in usr opt etc; do (cd "$R" && find "$h" -printf '%p %y %m %l\n' | sort) >"$TEST_DIR/merged.$h"; done
    trace_points UNMERGE_POINTS unmerge
    snap after-unmerge
    same_state before after-unmerge
    log "unmerge passes ${#UNMERGE_POINTS[@]} points: ${UNMERGE_POINTS[*]}"
    for p in "${UNMERGE_POINTS[@]}"; do run_point unmerge "$p"; done
fi

total=$(( COUNT[merge] + COUNT[refresh] + COUNT[unmerge] ))
summary=""
for k in $(printf '%s\n' "${!OUTCOMES[@]}" | sort); do summary+=" $k=${OUTCOMES[$k]}"; done
log "outcomes:$summary"
log "fault points covered: $total (merge ${COUNT[merge]}, refresh ${COUNT[refresh]}, unmerge ${COUNT[unmerge]})"
echo "fault points covered: $total (merge ${COUNT[merge]}, refresh ${COUNT[refresh]}, unmerge ${COUNT[unmerge]})"
finish
