#!/bin/bash
# Kernel command line switches, read from --cmdline-file:
#   rd.sysext=0 / rd.confext=0 leave that class unmerged (the other merges),
#   systemd.sysext=0, rd.systemd.sysext=0 and the confext twins do the same,
#   rd.sysext.exclude= / rd.confext.exclude= drop exactly the named images
#   (no prefix match), an unknown rd.sysext.* option warns but merges,
#   and every run leaves the state as before after unmerge.
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

log "PASS"
