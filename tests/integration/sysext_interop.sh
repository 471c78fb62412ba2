#!/bin/bash
# rdext and the stock systemd-sysext (252) on the same root and images:
#  1. both merge the same images into identical /usr and /opt trees;
#  2. systemd-sysext recognises an rdext merge (refuses to merge on top of
#     it, refresh replaces it, unmerge removes it) and the state afterwards
#     equals the one before the merge;
#  3. rdext recognises a systemd-sysext merge (status, unmerge), and a state
#     file left stale by systemd-sysext's unmerge does not confuse rdext;
#  4. rdext refresh replaces a systemd-sysext merge (swapped in with mount
#     beneath, one overlay left), systemd-sysext unmerges rdext's refreshed
#     merge, and refresh in both directions in a row keeps one overlay.
source "$(dirname "$0")/lib.sh"
require_root_env
command -v systemd-sysext >/dev/null || skip "no systemd-sysext"

B=$TEST_DIR/build
T=usr/share/rdext-test

# populate ROOT: the same images every time
populate() {
    local r=$1
    make_root "$r"
    make_ext_tree "$B/one" one sysext -- "$T/one=one" "$T/shared=one" "opt/one/file=one" "usr/bin/one=one"
    cp -a "$B/one" "$r/etc/extensions/one"
    make_ext_tree "$B/two-2" two-2 sysext -- "$T/two=two" "$T/shared=two-2" "usr/share/base-file=two-2"
    make_erofs "$B/two-2" "$r/var/lib/extensions/two-2.raw"
    make_ext_tree "$B/two-10" two-10 sysext -- "$T/two10=two-10" "$T/shared=two-10" "opt/two10=two-10"
    make_squashfs "$B/two-10" "$r/run/extensions/two-10.raw"
    make_ext_tree "$B/three" three sysext -- "$T/three=three"
    make_gpt "$B/three" "$r/etc/extensions/three.raw" usr erofs
    share_root "$r"
}
NAMES=(one two-2 two-10 three)

check "rdext and systemd-sysext produce the same merged tree"
RA=$TEST_DIR/root-rdext RS=$TEST_DIR/root-systemd
populate "$RA"
populate "$RS"
run_rdext --root="$RA" merge
expect_rc 0
assert_merged "$RA" /usr "${NAMES[@]}"
run_cmd systemd-sysext --root="$RS" merge
expect_rc 0
assert_merged "$RS" /usr "${NAMES[@]}"
assert_merged "$RS" /opt "${NAMES[@]}"
assert_merged "$RA" /opt "${NAMES[@]}"
tree_digest "$RA" usr opt >"$TEST_DIR/digest.rdext"
tree_digest "$RS" usr opt >"$TEST_DIR/digest.systemd"
diff -u "$TEST_DIR/digest.systemd" "$TEST_DIR/digest.rdext" >&2 ||
    fail "merged /usr and /opt differ between systemd-sysext (---) and rdext (+++)"
assert_file_content "$RA/$T/shared" two-10
check "extensions file order matches systemd-sysext's"
cmp -s "$RA/usr/.systemd-sysext/extensions" "$RS/usr/.systemd-sysext/extensions" ||
    fail "extensions file: rdext '$(tr '\n' ' ' <"$RA/usr/.systemd-sysext/extensions")' vs systemd-sysext '$(tr '\n' ' ' <"$RS/usr/.systemd-sysext/extensions")'"
run_cmd systemd-sysext --root="$RS" unmerge
unmount_all_under "$RA"

check "systemd-sysext recognises an rdext merge"
R=$TEST_DIR/root
populate "$R"
snapshot_state "$R" before
run_rdext --root="$R" merge
expect_rc 0
assert_merged "$R" /usr "${NAMES[@]}"

check "systemd-sysext merge refuses to merge on top of rdext's merge"
run_cmd systemd-sysext --root="$R" merge
expect_rc_nonzero
grep -qi 'already merged' "$TEST_DIR/last.err" || fail "systemd-sysext did not say 'already merged'"
assert_merged "$R" /usr "${NAMES[@]}"

check "systemd-sysext refresh replaces rdext's merge"
run_cmd systemd-sysext --root="$R" refresh
expect_rc 0
assert_merged "$R" /usr "${NAMES[@]}"
assert_merged "$R" /opt "${NAMES[@]}"
[[ $(mountpoint -q "$R/usr" && awk -v m="$R/usr" '$5 == m' /proc/self/mountinfo | wc -l) == 1 ]] ||
    fail "more than one mount stacked on $R/usr after refresh"
run_cmd systemd-sysext --root="$R" unmerge
expect_rc 0
assert_not_merged "$R" /usr

check "systemd-sysext unmerge removes rdext's merge"
run_rdext --root="$R" merge
expect_rc 0
assert_merged "$R" /usr "${NAMES[@]}"
run_cmd systemd-sysext --root="$R" unmerge
expect_rc 0
grep -q "Unmerged '$R/usr'" "$TEST_DIR/last.err" || fail "systemd-sysext did not unmerge $R/usr"
grep -q "Unmerged '$R/opt'" "$TEST_DIR/last.err" || fail "systemd-sysext did not unmerge $R/opt"
assert_not_merged "$R" /usr
assert_not_merged "$R" /opt
snapshot_state "$R" after-systemd-unmerge
assert_same_state before after-systemd-unmerge

check "rdext status is not fooled by the state file left by systemd-sysext's unmerge"
run_rdext --root="$R" --json status
expect_rc 0
[[ $(json_query "$TEST_DIR/last.out" "[h['path'] for h in d['hierarchies'] if h['merged']]") == '[]' ]] ||
    fail "rdext status reports merged hierarchies after systemd-sysext unmerged them: $(last_out)"
run_rdext --root="$R" merge
expect_rc 0
assert_merged "$R" /usr "${NAMES[@]}"
run_rdext --root="$R" unmerge
expect_rc 0
snapshot_state "$R" after-rdext-unmerge
assert_same_state before after-rdext-unmerge

check "rdext recognises a systemd-sysext merge"
run_cmd systemd-sysext --root="$R" merge
expect_rc 0
assert_merged "$R" /usr "${NAMES[@]}"
run_rdext --root="$R" --json status
expect_rc 0
got=$(json_query "$TEST_DIR/last.out" "sorted([h['path'] for h in d['hierarchies'] if h['merged']])")
[[ $got == '["/opt", "/usr"]' ]] || fail "rdext status on a systemd-sysext merge: merged hierarchies $got"
got=$(json_query "$TEST_DIR/last.out" "sorted([h for h in d['hierarchies'] if h['path'] == '/usr'][0]['extensions'])")
want=$(python3 -c 'import json,sys; print(json.dumps(sorted(sys.argv[1:])))' "${NAMES[@]}")
[[ $got == "$want" ]] || fail "rdext status on a systemd-sysext merge lists $got for /usr, expected $want"

check "rdext unmerge removes a systemd-sysext merge"
run_rdext --root="$R" unmerge
expect_rc 0
assert_not_merged "$R" /usr
assert_not_merged "$R" /opt
snapshot_state "$R" after-systemd-merge-rdext-unmerge
assert_same_state before after-systemd-merge-rdext-unmerge

check "rdext merge over a systemd-sysext merge does not stack overlays"
run_cmd systemd-sysext --root="$R" merge
expect_rc 0
run_rdext --root="$R" merge
n=$(awk -v m="$R/usr" '$5 == m' /proc/self/mountinfo | wc -l)
(( n == 1 )) || fail "$n overlays stacked on $R/usr after rdext merge over a systemd-sysext merge (rdext exit $LAST_RC)"
run_rdext --root="$R" unmerge
expect_rc 0
assert_not_merged "$R" /usr
snapshot_state "$R" end
assert_same_state before end

check "rdext refresh replaces a systemd-sysext merge"
run_cmd systemd-sysext --root="$R" merge
expect_rc 0
make_ext_tree "$B/four" four sysext -- "$T/four=four"
cp -a "$B/four" "$R/etc/extensions/four"
run_rdext --root="$R" refresh
expect_rc 0
grep -qi 'mount beneath' "$TEST_DIR/last.err" && fail "rdext refresh fell back: $(last_err)"
assert_merged "$R" /usr "${NAMES[@]}" four
assert_merged "$R" /opt "${NAMES[@]}" four
assert_file_content "$R/$T/four" four
for h in usr opt; do
    n=$(awk -v m="$R/$h" '$5 == m' /proc/self/mountinfo | wc -l)
    (( n == 1 )) || fail "$n overlays on $R/$h after rdext refresh of a systemd-sysext merge"
done

check "systemd-sysext refresh and unmerge work on rdext's refreshed merge"
rm -rf "$R/etc/extensions/four"
run_cmd systemd-sysext --root="$R" refresh
expect_rc 0
assert_merged "$R" /usr "${NAMES[@]}"
run_rdext --root="$R" refresh
expect_rc 0
assert_merged "$R" /usr "${NAMES[@]}"
run_rdext --root="$R" refresh
expect_rc 0
expect_stderr_line "nothing changed"
run_cmd systemd-sysext --root="$R" unmerge
expect_rc 0
assert_not_merged "$R" /usr
assert_not_merged "$R" /opt
snapshot_state "$R" end2
assert_same_state before end2

log "PASS"
