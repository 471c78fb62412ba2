#!/bin/bash
# Kernel command line switches, read from --cmdline-file:
#   rd.sysext=0 / rd.confext=0 leave that class unmerged (the other merges),
#   systemd.sysext=0, rd.systemd.sysext=0 and the confext twins do the same,
#   rd.sysext.exclude= / rd.confext.exclude= drop exactly the named images
#   (no prefix match), an unknown rd.sysext.* option warns but merges,
#   and every run leaves the state as before after unmerge;
#   status says which switch turned a class off, and what the last operation
#   was and why it failed: a failed rd.sysext.require= records no extension
#   as merged (nothing is), a failed refresh keeps the records of the merge
#   that stays mounted; a refresh of an unmerged root is a merge.
source "$(dirname "$0")/lib.sh"
require_root_env

R=$TEST_DIR/root
B=$TEST_DIR/build
make_root "$R"
for n in a ab b; do
    make_ext_tree "$B/$n" "$n" sysext -- "usr/share/rdext-test/$n=$n"
    make_erofs "$B/$n" "$R/var/lib/extensions/$n.raw"
done
for n in x xy; do
    make_ext_tree "$B/$n" "$n" confext -- "etc/rdext-test/$n=$n"
    cp -a "$B/$n" "$R/var/lib/confexts/$n"
done
bind_root "$R"
snapshot_state "$R" before

CMDLINE=$TEST_DIR/cmdline
step=0

# scenario "KERNEL COMMAND LINE" "SYSEXTS MERGED" "CONFEXTS MERGED" [STDERR-ERE]
scenario() {
    local cmdline=$1 sys=$2 conf=$3 warn=${4:-}
    step=$((step + 1))
    check "cmdline '$cmdline' -> sysext: ${sys:-none}, confext: ${conf:-none}"
    printf '%s\n' "$cmdline" >"$CMDLINE"
    run_rdext --root="$R" --cmdline-file="$CMDLINE" merge
    expect_rc 0
    # shellcheck disable=SC2086
    if [[ -n $sys ]]; then assert_merged "$R" /usr $sys; else assert_not_merged "$R" /usr; fi
    # shellcheck disable=SC2086
    if [[ -n $conf ]]; then assert_merged "$R" /etc $conf; else assert_not_merged "$R" /etc; fi
    local n
    for n in a ab b; do
        if [[ " $sys " == *" $n "* ]]; then assert_file_content "$R/usr/share/rdext-test/$n" "$n"
        else assert_absent "$R/usr/share/rdext-test/$n"; fi
    done
    [[ -z $warn ]] || expect_stderr_line "$warn"
    assert_no_staging "$R"

    if [[ $cmdline == *exclude=* ]]; then
        run_rdext --root="$R" --cmdline-file="$CMDLINE" --json status
        expect_rc 0
        local excluded want
        excluded=$(json_query "$TEST_DIR/last.out" "' '.join(sorted(e['name'] for e in d['extensions'] if e['result'] == 'excluded'))")
        want=$(for n in a ab b x xy; do [[ " $sys $conf " == *" $n "* ]] || echo "$n"; done | sort | tr '\n' ' ' | sed 's/ $//')
        [[ $excluded == "$want" ]] || fail "status: excluded images '$excluded', expected '$want'"
    fi

    run_rdext --root="$R" --cmdline-file="$CMDLINE" unmerge
    expect_rc 0
    snapshot_state "$R" "after-$step"
    assert_same_state before "after-$step"
}

scenario "" "a ab b" "x xy"
scenario "quiet root=/dev/vda ro rd.sysext=1 rd.confext=1 splash" "a ab b" "x xy"
scenario "rd.sysext=0" "" "x xy"
scenario "rd.confext=0" "a ab b" ""
scenario "rd.sysext=0 rd.confext=0" "" ""
scenario "systemd.sysext=0" "" "x xy"
scenario "rd.systemd.sysext=0" "" "x xy"
scenario "systemd.confext=0" "a ab b" ""
scenario "rd.systemd.confext=0" "a ab b" ""
scenario "quiet rd.sysext.exclude=a" "ab b" "x xy"
scenario "rd.sysext.exclude=a,b console=ttyS0" "ab" "x xy"
scenario "rd.sysext.exclude=nonexistent" "a ab b" "x xy"
scenario "rd.confext.exclude=x" "a ab b" "xy"
scenario "rd.sysext.exclude=ab rd.confext.exclude=xy" "a b" "x"
scenario 'rd.sysext.exclude="a,b"' "ab" "x xy"
scenario "rd.sysext.exclude= rd.confext.exclude=" "a ab b" "x xy"
scenario "rd.sysext.foo=bar" "a ab b" "x xy" 'rd\.sysext\.foo'

EMPTY=$TEST_DIR/empty-cmdline
: >"$EMPTY"

# status_json EXPR: evaluate EXPR over `status --json`
status_json() {
    run_rdext --root="$R" --json status
    expect_rc 0
    json_query "$TEST_DIR/last.out" "$1"
}

for sw in rd.sysext=0 systemd.sysext=0 rd.confext=false; do
    check "status names the switch of '$sw'"
    printf '%s\n' "$sw" >"$CMDLINE"
    run_rdext --root="$R" --cmdline-file="$CMDLINE" merge
    expect_rc 0
    cls=${sw%%=*}; cls=${cls##*.}
    got=$(status_json "[(c['enabled'], c['reason']) for c in d['classes'] if c['class'] == '$cls']")
    [[ $got == "[[false, \"switched off by $sw\"]]" ]] || fail "status --json classes for $sw: $got"
    run_rdext --root="$R" status
    grep -q "switched off by $sw" "$TEST_DIR/last.out" || fail "status does not say '$sw' switched $cls off: $(last_out)"
    run_rdext --root="$R" unmerge
    expect_rc 0
done

check "a failed rd.sysext.require= records the failure and no extension as merged"
printf 'rd.sysext.require=a,missing\n' >"$CMDLINE"
run_rdext --root="$R" --cmdline-file="$CMDLINE" merge
expect_rc 1
assert_not_merged "$R" /usr
assert_not_merged "$R" /etc
got=$(status_json "[e['name'] for e in d['extensions'] if e['result'] == 'merged']")
[[ $got == '[]' ]] || fail "status --json after a failed merge records as merged: $got"
got=$(json_query "$TEST_DIR/last.out" "(d['operation'], 'missing' in d.get('failure', ''), bool(d['time']), 'boot_id' in d)")
[[ $got == '["merge", true, true, true]' ]] || fail "status --json after a failed merge: operation, failure, time, boot_id: $got"
run_rdext --root="$R" status
grep -E "merge.*failed.*missing" "$TEST_DIR/last.out" >/dev/null || fail "status does not show the failed merge and why: $(last_out)"
snapshot_state "$R" after-required
assert_same_state before after-required

check "a failed refresh keeps the records of the merge that stays mounted"
run_rdext --root="$R" --cmdline-file="$EMPTY" merge
expect_rc 0
run_rdext --root="$R" --cmdline-file="$CMDLINE" refresh
expect_rc 1
assert_merged "$R" /usr a ab b
got=$(status_json "sorted(e['name'] for e in d['extensions'] if e['result'] == 'merged')")
[[ $got == '["a", "ab", "b", "x", "xy"]' ]] || fail "status --json after a failed refresh records as merged: $got"
got=$(json_query "$TEST_DIR/last.out" "(d['operation'], 'missing' in d.get('failure', ''))")
[[ $got == '["refresh", true]' ]] || fail "status --json after a failed refresh: operation, failure: $got"
run_rdext --root="$R" --cmdline-file="$EMPTY" refresh
expect_rc 0
got=$(status_json "'failure' in d")
[[ $got == false ]] || fail "status --json still shows a failure after a good refresh"
run_rdext --root="$R" unmerge
expect_rc 0

check "a refresh of an unmerged root is a merge, and says so"
run_rdext --root="$R" --cmdline-file="$EMPTY" --json refresh
expect_rc 0
assert_merged "$R" /usr a ab b
[[ $(json_query "$TEST_DIR/last.out" "d['operation']") == merge ]] || fail "refresh of an unmerged root: $(last_out)"
expect_stderr_line "nothing is merged"
[[ $(status_json "d['operation']") == merge ]] || fail "status after a refresh of an unmerged root: $(last_out)"
run_rdext --root="$R" unmerge
expect_rc 0
snapshot_state "$R" after-refresh-merge
assert_same_state before after-refresh-merge

log "PASS"
