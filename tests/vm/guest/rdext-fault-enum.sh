#!/bin/bash
# Runs in the booted VM guest (rdext-fault-enum.service, before the checker),
# for scenarios/fault_verity.sh: every fault point of a merge, a refresh and
# an unmerge of a root that carries dm-verity images, enumerated with the
# fault-injection build of rdext (/usr/local/bin/rdext-fault). The same
# method as tests/integration/fault_enum.sh on the host (one copy of it:
# tests/integration/fault_enum_lib.sh, installed as
# /usr/local/lib/rdext/fault-enum-lib.sh) (which has no device
# mapper, so it never reaches verity-activate), plus the dm devices:
#
#   trace    the run with RDEXT_FAULT_TRACE=1 lists every (point, N) it passes;
#   then for each of them the same run with RDEXT_FAULT=point:N must end
#   failed   exit 1, a stderr line names the injected step, and the mount
#            table, loop devices (losetup), dm devices and the root's run/
#            are exactly as before the run;
#   skipped  exit 0, a stderr line names the fault and each missing image
#            (or its search directory), and the merged trees, the loop
#            devices and the dm devices are exactly those of a merge that
#            excluded those images (rd.sysext.exclude=/rd.confext.exclude=);
#            after an unmerge, everything is as before;
#   warned   exit 0, everything merged, a stderr line names the fault.
# refresh: from a merge of the original set to a changed root (fvsig gone,
# fvnew, another signed sidecar image, added): a failure leaves the previous
# merge exactly as it was, dm devices included (the kept images' devices are
# reused, the new one's must be gone); unmerge: a failure leaves each
# hierarchy merged as before or not at all, a plain unmerge then restores
# the state from before the merge.
#
# The run happens in a private mount namespace on a test root below
# /var/lib/rdext-fault (settings in /etc/rdext-fault-enum.conf); loop and dm
# devices are global, and the guest has none of its own. After every rdext
# run the state is read once udev has settled; loop devices with autoclear
# and deferred dm removals go away when udev's probes close them (and, after
# a refresh, when the old merge's detached mounts are released), so a state
# that differs is read again for up to 10 s before it counts as a leak.
# The merge must hit verity-activate once per verity image.
#
# Output: "FAULT-ENUM: ..." lines on the console; the last ones are
# "FAULT-ENUM: fault points covered: N (...)", "FAULT-ENUM: verity-activate
# occurrences: K (...)" and "FAULT-ENUM: PASS" or "FAULT-ENUM: FAIL (n)".
set -Eeuo pipefail
shopt -s nullglob

if [[ -z ${FAULT_ENUM_INNER:-} ]]; then
    FAULT_ENUM_INNER=1 exec unshare -m --propagation private -- "$BASH" "$0" "$@"
fi

# shellcheck source=/dev/null
. "${FAULT_ENUM_CONF:-/etc/rdext-fault-enum.conf}"
: "${R:?}" "${ASIDE:?}" "${W:?}" "${SYSEXTS:?}" "${CONFEXTS:?}" "${VERITY_NAMES:?}"
RDEXT_FAULT_BIN=${RDEXT_FAULT_BIN:-/usr/local/bin/rdext-fault}
declare -A DIR_OF
for kv in $DIRS; do DIR_OF[${kv%%=*}]=${kv#*=}; done
read -ra SYSEXTS <<<"$SYSEXTS"
read -ra CONFEXTS <<<"$CONFEXTS"
read -ra REFRESHED <<<"$REFRESHED"
ALL=("${SYSEXTS[@]}" "${CONFEXTS[@]}")
START=$SECONDS

say() { echo "FAULT-ENUM: $*"; }
fail() { say "FAIL $*"; exit 1; }
_on_error() { say "FAIL line $1: a command failed"; exit 1; }
trap '_on_error $LINENO' ERR

rm -rf "$W"
mkdir -p "$W/state" "$W/ref"
mount --bind "$R" "$R"

# run_rdext ARGS...: the fault build, stdout and stderr kept in $W/last.*
run_rdext() {
    LAST_RC=0
    "$RDEXT_FAULT_BIN" "$@" >"$W/last.out" 2>"$W/last.err" || LAST_RC=$?
    return 0
}
show_stderr() {
    tail -n 15 "$W/last.err" | sed 's/^/FAULT-ENUM: stderr| /'
    say "info: /dev/mapper: $(find /dev/mapper -mindepth 1 -printf '%f (%y%l) ' 2>&1)"
}
expect_rc() {
    [[ $LAST_RC == "$1" ]] && return 0
    show_stderr
    fail "expected exit $1, got $LAST_RC"
}

# --- state ------------------------------------------------------------------

# snap NAME: the mount table of this namespace (mount point, type, source,
# super options with the layers; order-blind: a refresh that keeps a merge changes the
# order, not the state), loop devices (backing file, offset, size limit),
# dm devices (name, uuid prefix) and the root's run/ minus state.json.
snap() {
    local f=$W/state/$1 d name uuid
    # (staging directories have random names: each merge of the refresh
    # phase makes new ones, so only the layer structure is compared)
    awk '{ n = 7; while ($n != "-") n++; print $5, $(n+1), $(n+2), $(n+3) }' /proc/self/mountinfo |
        sed 's/\.staging-[A-Za-z0-9]*/.staging-X/g' | sort >"$f.mounts"
    # (every loop device rdext makes is backed by a file of the test root;
    # the checker makes sure none at all is left at the end)
    losetup -ln -O BACK-FILE,OFFSET,SIZELIMIT |
        awk -v r="$R/" -v a="$ASIDE/" 'index($1, r) == 1 || index($1, a) == 1' | sort >"$f.loops"
    # (a device may go while it is read: a deferred removal)
    for d in /sys/block/dm-*/dm; do
        read -r name <"$d/name" 2>/dev/null || continue
        read -r uuid <"$d/uuid" 2>/dev/null || continue
        echo "$name ${uuid%%-*}-$(cut -d- -f2 <<<"$uuid")"
    done | sort >"$f.dm"
    find "$R/run" -mindepth 1 -printf '%y ./%P\n' | sort |
        { grep -vE '^(d \./rdext|f \./rdext/state\.json)$' || true; } >"$f.run"
}
KINDS=(mounts loops dm run)
state_differs() { # A B [KIND...]
    local a=$1 b=$2 k kinds; shift 2
    kinds=("$@"); (( ${#kinds[@]} )) || kinds=("${KINDS[@]}")
    for k in "${kinds[@]}"; do cmp -s "$W/state/$a.$k" "$W/state/$b.$k" || return 0; done
    return 1
}
show_diff() { # A B [KIND...]
    local a=$1 b=$2 k kinds; shift 2
    kinds=("$@"); (( ${#kinds[@]} )) || kinds=("${KINDS[@]}")
    for k in "${kinds[@]}"; do
        cmp -s "$W/state/$a.$k" "$W/state/$b.$k" && continue
        say "$k differ between $a and $b:"
        { diff -u "$W/state/$a.$k" "$W/state/$b.$k" || true; } | tail -n +3 | head -30 | sed 's/^/FAULT-ENUM:   /'
    done
    return 0
}
# expect_state REF NAME WHAT [KIND...]: snapshot NAME equals REF once udev
# has settled (read again for up to 10 s: see above), else fail with WHAT.
expect_state() {
    local ref=$1 name=$2 what=$3 i; shift 3
    udevadm settle -t 10 2>/dev/null || true
    for i in $(seq 1 40); do
        snap "$name"
        if ! state_differs "$ref" "$name" "$@"; then
            (( i == 1 )) || say "info: $name: the state settled after $(( (i - 1) * 250 )) ms"
            return 0
        fi
        sleep 0.25
    done
    show_diff "$ref" "$name" "$@"
    fail "$what"
}
settled_snap() { udevadm settle -t 10 2>/dev/null || true; snap "$1"; }
# stable_snap NAME: a snapshot once it has stopped changing (three reads
# 250 ms apart agree, at most 10 s): mounts taken off by a refresh release
# their loop and dm devices a little after rdext has exited.
stable_snap() {
    local i k same=0
    settled_snap "$1"
    for i in $(seq 1 40); do
        sleep 0.25
        snap "$1.next"
        if state_differs "$1" "$1.next"; then
            same=0
            for k in "${KINDS[@]}"; do mv "$W/state/$1.next.$k" "$W/state/$1.$k"; done
        else
            same=$((same + 1))
            (( same < 2 )) || return 0
        fi
    done
}

dm_count() { local d n=0; for d in /sys/block/dm-*; do n=$((n + 1)); done; echo $n; }

# The method (fault_enum_lib.sh, installed by the scenario) with the dm
# devices and the settling described above.
fe_say() { say "$@"; }
fe_show_stderr() { show_stderr; }
fe_snap() { settled_snap "$1"; }
fe_expect_state() { expect_state "$@"; }
fe_reference_taken() { stable_snap "ref-$1"; }
# The devices of that merge, no more (nothing of a skipped image left
# behind while the rest stays merged). The references of one image
# skipped are made in advance, so the comparison can wait for devices
# still going away; any other is made after this merge is taken down.
fe_merged_devices() { # PHASE POINT KEY
    if [[ -f $W/ref/$3.digest ]]; then
        expect_state "ref-$3" "$1.$2.merged" "$1 $2: loop or dm devices differ from a merge without: ${3#*-}" loops dm
    else
        stable_snap "$1.$2.merged"
    fi
}
fe_check_devices() { # PHASE POINT KEY
    if state_differs "ref-$3" "$1.$2.merged" loops dm; then
        show_diff "ref-$3" "$1.$2.merged" loops dm
        fail "$1 $2: loop or dm devices differ from a merge without: ${3#*-}"
    fi
}
fe_unmerged_after_failure() { :; }
# shellcheck source=../../integration/fault_enum_lib.sh
. "${FAULT_ENUM_LIB:-/usr/local/lib/rdext/fault-enum-lib.sh}"

# recover: after a point whose checks failed, the root (and the devices) as
# before the test, so the next points are judged on their own
recover() {
    local h mp d n
    for h in usr opt etc run; do
        awk -v d="$R/$h" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo |
            sort -r | while read -r mp; do umount -l "$mp" 2>/dev/null || true; done
    done
    rm -rf "$R/run/rdext"
    for d in /sys/block/dm-*/dm/name; do
        read -r n <"$d" 2>/dev/null || continue
        [[ $n != rdext-* ]] || dmsetup remove --deferred "$n" 2>/dev/null || true
    done
    losetup -ln -O NAME,BACK-FILE | awk -v r="$R/" -v a="$ASIDE/" 'index($2, r) == 1 || index($2, a) == 1 { print $1 }' |
        while read -r d; do losetup -d "$d" 2>/dev/null || true; done
    udevadm settle -t 10 2>/dev/null || true
    to_original_root 2>/dev/null || true
    return 0
}

# --- merge ------------------------------------------------------------------

settled_snap before
[[ $(dm_count) == 0 ]] || fail "dm devices exist before the test: $(tr '\n' ' ' <"$W/state/before.dm")"
say "before: $(wc -l <"$W/state/before.mounts") mounts, $(wc -l <"$W/state/before.loops") loop devices, $(dm_count) dm devices"

trace_points merge
MERGE_POINTS=("${TRACE[@]}")
[[ $(merged_set | tr '\n' ' ') == "$(printf '%s\n' "${ALL[@]}" | sort | tr '\n' ' ')" ]] ||
    { show_stderr; fail "the traced merge merged '$(merged_set | tr '\n' ' ')', expected ${ALL[*]}"; }
settled_snap traced-merge
[[ $(awk '$2 == "CRYPT-VERITY"' "$W/state/traced-merge.dm" | wc -l) == "$(wc -w <<<"$VERITY_NAMES")" ]] ||
    { show_stderr; fail "the traced merge has dm devices '$(tr '\n' ' ' <"$W/state/traced-merge.dm")', expected one dm-verity device for each of: $VERITY_NAMES"; }
say "the traced merge: ${ALL[*]} merged, dm devices: $(awk '{ print $1 }' "$W/state/traced-merge.dm" | tr '\n' ' ')"
run_rdext --root="$R" unmerge
expect_rc 0
expect_state before after-traced-merge "the traced merge and unmerge did not restore the state"
say "merge passes ${#MERGE_POINTS[@]} points: ${MERGE_POINTS[*]}"
# references in advance: everything, and each image left out
reference merge-all
for n in "${ALL[@]}"; do reference "merge-$n" "$n"; done
expect_state before after-merge-references "the reference merges did not restore the state"
if phase_selected merge; then
    for p in "${MERGE_POINTS[@]}"; do run_point merge "$p"; done
    say "merge phase done at $((SECONDS - START)) s"
fi

# --- refresh ----------------------------------------------------------------

if phase_selected refresh; then
    merged_then_changed
    trace_points refresh
    REFRESH_POINTS=("${TRACE[@]}")
    [[ $(merged_set | tr '\n' ' ') == "$(printf '%s\n' "${REFRESHED[@]}" | sort | tr '\n' ' ')" ]] ||
        fail "the traced refresh merged '$(merged_set | tr '\n' ' ')', expected ${REFRESHED[*]}"
    settled_snap traced-refresh
    say "the traced refresh: ${REFRESHED[*]} merged, dm devices: $(awk '{ print $1 }' "$W/state/traced-refresh.dm" | tr '\n' ' ')"
    run_rdext --root="$R" unmerge
    expect_rc 0
    # references in advance, on the changed root: everything, each image left out
    reference refresh-all
    for n in "${REFRESHED[@]}"; do reference "refresh-$n" "$n"; done
    to_original_root
    expect_state before after-traced-refresh "the traced refresh and unmerge did not restore the state"
    say "refresh passes ${#REFRESH_POINTS[@]} points: ${REFRESH_POINTS[*]}"
    for p in "${REFRESH_POINTS[@]}"; do run_point refresh "$p"; done
    say "refresh phase done at $((SECONDS - START)) s"
fi

# --- unmerge ----------------------------------------------------------------

if phase_selected unmerge; then
    run_rdext --root="$R" merge
    expect_rc 0
    merged_trees
    trace_points unmerge
    UNMERGE_POINTS=("${TRACE[@]}")
    expect_state before after-traced-unmerge "the traced unmerge did not restore the state"
    say "unmerge passes ${#UNMERGE_POINTS[@]} points: ${UNMERGE_POINTS[*]}"
    for p in "${UNMERGE_POINTS[@]}"; do run_point unmerge "$p"; done
fi

total=$(( COUNT[merge] + COUNT[refresh] + COUNT[unmerge] ))
verity=$(( VERITY_HITS[merge] + VERITY_HITS[refresh] + VERITY_HITS[unmerge] ))
say "outcomes: $(outcomes_summary)"
say "fault points covered: $total (merge ${COUNT[merge]}, refresh ${COUNT[refresh]}, unmerge ${COUNT[unmerge]}) in $((SECONDS - START)) s"
say "verity-activate occurrences: $verity (merge ${VERITY_HITS[merge]}, refresh ${VERITY_HITS[refresh]})"
# Each verity image of the merge activates once: that many verity-activate
# points, or the enumeration missed the step this test exists for.
if phase_selected merge && (( VERITY_HITS[merge] != $(wc -w <<<"$VERITY_NAMES") )); then
    FE_FAILED+=("merge: verity-activate hit ${VERITY_HITS[merge]} times, expected once for each of $VERITY_NAMES")
fi
if (( ${#FE_FAILED[@]} )); then
    say "failed points: $(printf '%s; ' "${FE_FAILED[@]}")"
    say "FAIL (${#FE_FAILED[@]})"
    exit 1
fi
say PASS
