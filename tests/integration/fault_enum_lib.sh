# shellcheck shell=bash
# Fault-point enumeration of a merge, a refresh and an unmerge: the method
# shared by tests/integration/fault_enum.sh (on the host) and the VM guest's
# tests/vm/guest/rdext-fault-enum.sh (a root with dm-verity images; the
# scenario tests/vm/scenarios/fault_verity.sh installs this file into the
# guest). Sourced, never run. See fault_enum.sh for what each outcome means.
#
# The sourcing script sets:
#   R                  the test root; W  a work directory
#   SYSEXTS, CONFEXTS  arrays of the image names; ALL  both
#   DIR_OF             assoc: name -> its search directory, inside the root
#   ASIDE              where images out of the root wait (refresh)
#   REFRESH_GONE REFRESH_GONE_DIR REFRESH_NEW REFRESH_NEW_DIR
#                      the refresh takes REFRESH_GONE out, brings REFRESH_NEW in
#   REFRESHED          array: the names merged after that refresh
#   POINTS             "" or merge,refresh,unmerge: only those phases
# and provides run_rdext (stderr in $W/last.err, exit status in LAST_RC),
# expect_rc, fail, and these hooks:
#   fe_say MSG...                 a line of output
#   fe_show_stderr                the end of the last run's stderr
#   fe_snap NAME                  snapshot of the state (mounts, devices, run/)
#   fe_expect_state REF NAME WHAT [KIND...]
#                                 snapshot NAME equals REF, else fail with WHAT
#   fe_reference_taken KEY        the reference merge KEY is mounted now
#   fe_merged_devices PHASE POINT KEY
#                                 the run with the fault is merged now
#   fe_check_devices PHASE POINT KEY
#                                 after the reference KEY: compare devices
#   fe_unmerged_after_failure     a failed merge left nothing (extra checks)
#   recover                       the root as before, after a failed check

phase_selected() { [[ -z ${POINTS:-} || ,$POINTS, == *",$1,"* ]]; }

# fe_indent: stdin as output lines, indented
fe_indent() {
    local line
    while IFS= read -r line; do fe_say "  $line"; done
}

# digest: the merged (or not) trees: types, modes, owners, link targets,
# contents; not the metadata files that name the mount
digest() {
    (cd "$R" && find usr opt etc -printf '%p %y %m %U %G %l\n' | sort |
        grep -vE '/\.systemd-(sysext|confext)/(dev|backing|origin|rdext) ') || true
    (cd "$R" && find usr opt etc -type f ! -path '*/.systemd-*/dev' ! -path '*/.systemd-*/backing' \
        ! -path '*/.systemd-*/origin' ! -path '*/.systemd-*/rdext' -exec md5sum {} + | sort -k2) || true
}

# merged_set: the names merged now, one line each, sorted
fe_merged_names() { # HIERARCHY META
    mountpoint -q "$R$1" && [[ -f $R$2 ]] && sort "$R$2"
    return 0
}
merged_set() {
    { fe_merged_names /usr /usr/.systemd-sysext/extensions; fe_merged_names /opt /opt/.systemd-sysext/extensions
      fe_merged_names /etc /etc/.systemd-confext/confexts; } | sort -u
}

# trace_points VERB [ARGS]: the points VERB passes, "name:N", into TRACE; a
# run that passed no point fails (every verb passes some)
trace_points() {
    RDEXT_FAULT_TRACE=1 run_rdext --root="$R" "$@"
    expect_rc 0
    mapfile -t TRACE < <(sed -n 's/.*fault point \([^ ]*:[0-9]*\)$/\1/p' "$W/last.err")
    (( ${#TRACE[@]} )) || fail "the traced $1 passed no fault point (not a fault-injection build?)"
}

# reference KEY NAMES...: the trees of a merge of the current root without
# NAMES (cached by KEY); REF=$W/ref/KEY, the trees in $REF.digest
reference() {
    local key=$1 n sys=() conf=(); shift
    REF=$W/ref/$key
    mkdir -p "$W/ref"
    [[ -f $REF.digest ]] && return 0
    for n in "$@"; do
        case " ${CONFEXTS[*]} " in *" $n "*) conf+=("$n") ;; *) sys+=("$n") ;; esac
    done
    : >"$W/ref-cmdline"
    (( ${#sys[@]} )) && printf 'rd.sysext.exclude=%s ' "$(IFS=,; echo "${sys[*]}")" >>"$W/ref-cmdline"
    (( ${#conf[@]} )) && printf 'rd.confext.exclude=%s ' "$(IFS=,; echo "${conf[*]}")" >>"$W/ref-cmdline"
    run_rdext --root="$R" --cmdline-file="$W/ref-cmdline" merge
    expect_rc 0
    fe_reference_taken "$key"
    digest >"$REF.digest"
    run_rdext --root="$R" unmerge
    expect_rc 0
}

# stderr_names_fault POINT NAME: a stderr line names the injected POINT and
# NAME (the image) or its search directory
stderr_names_fault() {
    grep -F "injected fault at $1" "$W/last.err" |
        grep -qE -- "(/|^| )($2(\.raw)?|${DIR_OF[$2]})([:/ ,]|$)"
}

# judge_success PHASE POINT EXPECTED-NAMES...: after a run with the fault
# that exited 0: which images were skipped, and are the trees (and devices)
# those of a merge without them? Sets OUTCOME, leaves the root unmerged.
judge_success() {
    local phase=$1 point=$2 got n key missing=(); shift 2
    got=$(merged_set)
    for n in "$@"; do grep -qxF -- "$n" <<<"$got" || missing+=("$n"); done
    for n in $got; do
        [[ " $* " == *" $n "* ]] || fail "$phase $point: $n merged but was not expected"
    done
    grep -qF "injected fault at $point" "$W/last.err" ||
        fail "$phase $point: exit 0 but no stderr line names the injected fault (swallowed silently)"
    for n in "${missing[@]}"; do
        stderr_names_fault "$point" "$n" || { fe_show_stderr
            fail "$phase $point: $n was not merged, but no stderr line names it (or ${DIR_OF[$n]}) with the fault"; }
    done
    key=$phase-$(IFS=+; echo "${missing[*]:-all}")
    digest >"$W/got.digest"
    fe_merged_devices "$phase" "$point" "$key"
    # the reference is taken on the same root: put the merge away first
    run_rdext --root="$R" unmerge
    expect_rc 0
    reference "$key" "${missing[@]}"
    if ! diff -u "$REF.digest" "$W/got.digest" >"$W/digest.diff"; then
        head -40 "$W/digest.diff" | fe_indent
        fail "$phase $point: the merged trees differ from a merge without: ${missing[*]:-(nothing)}"
    fi
    fe_check_devices "$phase" "$point" "$key"
    if (( ${#missing[@]} )); then OUTCOME="skipped ${missing[*]}"; else OUTCOME=warned; fi
}

# judge_failure PHASE POINT SNAPSHOT [DIGEST-FILE]: exit 1, the step named,
# the state as in SNAPSHOT (and the trees as in DIGEST-FILE, else unmerged)
judge_failure() {
    local phase=$1 point=$2 ref=$3 tree=${4:-} h
    [[ $LAST_RC == 1 ]] || { fe_show_stderr; fail "$phase $point: exit $LAST_RC, expected 0 or 1"; }
    grep -qF "injected fault at $point" "$W/last.err" ||
        { fe_show_stderr; fail "$phase $point: failed, but no stderr line names the injected step"; }
    fe_expect_state "$ref" "$phase.$point" "$phase $point: mounts, loop or dm devices, or run/ are not as before the run"
    if [[ -n $tree ]]; then
        digest >"$W/got.digest"
        if ! cmp -s "$tree" "$W/got.digest"; then
            { diff -u "$tree" "$W/got.digest" || true; } | head -30 | fe_indent
            fail "$phase $point: the trees are not those from before the run"
        fi
    else
        for h in usr opt etc; do
            if mountpoint -q "$R/$h"; then fail "$phase $point: /$h is mounted after the failure"; fi
        done
        fe_unmerged_after_failure
    fi
    OUTCOME=failed
}

declare -A COUNT=([merge]=0 [refresh]=0 [unmerge]=0) OUTCOMES VERITY_HITS=([merge]=0 [refresh]=0 [unmerge]=0)
FE_FAILED=()
record() { # PHASE POINT OUTCOME
    COUNT[$1]=$(( COUNT[$1] + 1 ))
    [[ $2 != verity-activate:* ]] || VERITY_HITS[$1]=$(( VERITY_HITS[$1] + 1 ))
    fe_say "$(printf '%-8s %-22s %s' "$1" "$2" "$3")"
    OUTCOMES[$1:${3%% *}]=$(( ${OUTCOMES[$1:${3%% *}]:-0} + 1 ))
}

# run_point PHASE POINT: check_PHASE POINT in a subshell, so that a failed
# check is recorded (FE_FAILED) and the enumeration goes on with the next point
run_point() {
    local phase=$1 point=$2 rc
    rm -f "$W/outcome"
    trap - ERR
    set +e
    (
        set -e
        trap '_on_error $LINENO' ERR
        "check_$phase" "$point"
        echo "$OUTCOME" >"$W/outcome"
    )
    rc=$?
    set -e
    trap '_on_error $LINENO' ERR
    if (( rc )); then
        FE_FAILED+=("$phase $point")
        record "$phase" "$point" "FAILED (see above)"
        recover
    else
        record "$phase" "$point" "$(cat "$W/outcome")"
    fi
}

# outcomes_summary: "merge:failed=N merge:skipped=M ..."
outcomes_summary() {
    local k summary=""
    for k in $(printf '%s\n' "${!OUTCOMES[@]}" | sort); do summary+=" $k=${OUTCOMES[$k]}"; done
    echo "${summary# }"
}

# --- merge --------------------------------------------------------------------

check_merge() {
    local p=$1
    RDEXT_FAULT=$p run_rdext --root="$R" merge
    if [[ $LAST_RC == 0 ]]; then
        judge_success merge "$p" "${ALL[@]}"   # unmerges
        fe_expect_state before "merge.$p.after" "merge $p: not as before after the unmerge"
    else
        judge_failure merge "$p" before
    fi
}

# --- refresh ------------------------------------------------------------------

to_refreshed_root() {
    mv "$R/$REFRESH_GONE_DIR/$REFRESH_GONE".* "$ASIDE/"
    mv "$ASIDE/$REFRESH_NEW".* "$R/$REFRESH_NEW_DIR/"
}
to_original_root() {
    local f
    for f in "$R/$REFRESH_NEW_DIR/$REFRESH_NEW".*; do mv "$f" "$ASIDE/"; done
    for f in "$ASIDE/$REFRESH_GONE".*; do mv "$f" "$R/$REFRESH_GONE_DIR/"; done
}

# merged_then_changed: merge the original set, then change the root; the
# first time, record the state and trees a failed refresh must leave
merged_then_changed() {
    run_rdext --root="$R" merge
    expect_rc 0
    to_refreshed_root
    if [[ ! -f $W/pre-refresh.digest ]]; then
        fe_snap pre-refresh
        digest >"$W/pre-refresh.digest"
    fi
}

check_refresh() {
    local p=$1
    merged_then_changed
    RDEXT_FAULT=$p run_rdext --root="$R" refresh
    if [[ $LAST_RC == 0 ]]; then
        judge_success refresh "$p" "${REFRESHED[@]}"   # unmerges
    else
        judge_failure refresh "$p" pre-refresh "$W/pre-refresh.digest"
        run_rdext --root="$R" unmerge
        expect_rc 0
    fi
    to_original_root
    fe_expect_state before "refresh.$p.after" "refresh $p: not as before after the unmerge"
}

# --- unmerge ------------------------------------------------------------------

# merged_trees: what a merge shows, for check_unmerge ($W/merged.HIERARCHY)
merged_trees() {
    local h
    for h in usr opt etc; do (cd "$R" && find "$h" -printf '%p %y %m %l\n' | sort) >"$W/merged.$h"; done
}

check_unmerge() {
    local p=$1 h still=()
    run_rdext --root="$R" merge
    expect_rc 0
    RDEXT_FAULT=$p run_rdext --root="$R" unmerge
    grep -qF "injected fault at $p" "$W/last.err" ||
        { fe_show_stderr; fail "unmerge $p: exit $LAST_RC but no stderr line names the injected fault"; }
    if [[ $LAST_RC == 0 ]]; then
        OUTCOME=warned
    else
        [[ $LAST_RC == 1 ]] || fail "unmerge $p: exit $LAST_RC"
        # no half-taken-down hierarchy: each is merged as before or not at all
        for h in usr opt etc; do
            if mountpoint -q "$R/$h"; then
                if ! (cd "$R" && find "$h" -printf '%p %y %m %l\n' | sort) | cmp -s "$W/merged.$h" -; then
                    { (cd "$R" && find "$h" -printf '%p %y %m %l\n' | sort) | diff -u "$W/merged.$h" - || true; } |
                        head -20 | fe_indent
                    fail "unmerge $p: /$h is still mounted but not the merge it was"
                fi
                still+=("/$h")
            fi
        done
        OUTCOME="failed (still merged: ${still[*]:-none})"
        run_rdext --root="$R" unmerge
        expect_rc 0
    fi
    fe_expect_state before "unmerge.$p.after" "unmerge $p: not as before after a plain unmerge"
}
