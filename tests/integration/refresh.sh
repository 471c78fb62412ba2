#!/bin/bash
# refresh: "merge again, replacing the current merge". Checks that
#  - refresh with nothing merged merges;
#  - refresh several times in a row keeps working and gives the same trees
#    as a fresh merge (one mount per hierarchy, no staging left);
#  - added, removed and newly broken images are picked up;
#  - images under /etc/extensions keep working while a confext overlay
#    (nodev) covers /etc, including a block device entry;
#  - refresh with every image gone unmerges;
#  - unmerge afterwards restores the state from before.
# Findings are collected (defer_fail) so one does not hide the others.
source "$(dirname "$0")/lib.sh"
require_root_env

R=$TEST_DIR/root
B=$TEST_DIR/build
T=usr/share/rdext-test
make_root "$R"

make_ext_tree "$B/one" one sysext -- "$T/one=one" "opt/one=one"
cp -a "$B/one" "$R/etc/extensions/one"
make_ext_tree "$B/two" two sysext -- "$T/two=two"
make_erofs "$B/two" "$R/run/extensions/two.raw"
make_ext_tree "$B/three" three sysext -- "$T/three=three"
make_squashfs "$B/three" "$R/var/lib/extensions/three.raw"
make_ext_tree "$B/cx" cx confext -- "etc/rdext-test/cx=cx"
cp -a "$B/cx" "$R/var/lib/confexts/cx"
# a block device entry in /etc/extensions
make_ext_tree "$B/blk" blk sysext -- "$T/blk=blk"
make_erofs "$B/blk" "$B/blk.raw"
BLOCK_LOOP=$(losetup --find --show --read-only "$B/blk.raw")
mknod "$R/etc/extensions/blk" b "$(( 0x$(stat -c %t "$BLOCK_LOOP") ))" "$(( 0x$(stat -c %T "$BLOCK_LOOP") ))"
SYS=(blk one three two)

bind_root "$R"
snapshot_state "$R" before

one_mount_each() {
    local h n
    for h in usr opt etc; do
        n=$(awk -v m="$R/$h" '$5 == m' /proc/self/mountinfo | wc -l)
        (( n <= 1 )) || defer_fail "$n mounts stacked on $R/$h after $1"
    done
}

# expect_set WHAT HIER NAMES...: soft version of assert_merged's name check
expect_set() {
    local what=$1 hier=$2; shift 2
    local got want
    got=$(merged_names "$R" "$hier" | tr '\n' ' ')
    want=$(printf '%s\n' "$@" | sort | tr '\n' ' ')
    [[ $got == "$want" ]] || defer_fail "$what: $hier has '$got', expected '$want'"
}

check "refresh with nothing merged merges"
run_refresh "$R"
expect_rc 0
assert_merged "$R" /usr "${SYS[@]}"
assert_merged "$R" /opt "${SYS[@]}"
assert_merged "$R" /etc cx
tree_digest "$R" usr opt etc >"$TEST_DIR/digest.first"
assert_no_staging "$R"

for i in 2 3 4; do
    check "refresh number $i in a row succeeds and gives the same trees"
    run_refresh "$R"
    if [[ $LAST_RC != 0 ]]; then
        defer_fail "refresh number $i in a row exited $LAST_RC"
        continue
    fi
    expect_set "refresh $i" /usr "${SYS[@]}"
    expect_set "refresh $i" /etc cx
    one_mount_each "refresh $i"
    tree_digest "$R" usr opt etc >"$TEST_DIR/digest.$i"
    diff -u "$TEST_DIR/digest.first" "$TEST_DIR/digest.$i" >&2 ||
        defer_fail "trees after refresh $i differ from the first merge"
    assert_no_staging "$R"
done

check "refresh picks up an added and a removed image"
make_ext_tree "$B/four" four sysext -- "$T/four=four"
cp -a "$B/four" "$R/run/extensions/four"
mv "$R/run/extensions/two.raw" "$B/two.away"
make_ext_tree "$B/cy" cy confext -- "etc/rdext-test/cy=cy"
make_erofs "$B/cy" "$R/var/lib/confexts/cy.raw"
run_refresh "$R"
if [[ $LAST_RC == 0 ]]; then
    expect_set "refresh after changes" /usr blk one three four
    expect_set "refresh after changes" /etc cx cy
    [[ ! -e $R/$T/two ]] || defer_fail "removed image two is still visible after refresh"
    [[ -f $R/$T/four ]] || defer_fail "added image four not visible after refresh"
    [[ -f $R/etc/rdext-test/cy ]] || defer_fail "added confext cy not visible after refresh"
    one_mount_each "refresh after changes"
else
    defer_fail "refresh after adding/removing images exited $LAST_RC"
fi

check "refresh with a newly broken image skips it, keeps the rest"
mv "$B/two.away" "$R/run/extensions/two.raw"
head -c 65536 /dev/urandom >"$R/var/lib/extensions/three.raw"
run_refresh "$R"
if [[ $LAST_RC == 0 ]]; then
    expect_set "refresh with a broken image" /usr blk one two four
    grep -q three "$TEST_DIR/last.err" || defer_fail "refresh did not report the broken image three"
else
    defer_fail "refresh with one broken image exited $LAST_RC"
fi

check "unmerge restores the state from before"
run_unmerge "$R"
expect_rc 0
rm -rf "$R/run/extensions/four"
snapshot_state "$R" after
assert_same_state before after
losetup -d "$BLOCK_LOOP"

check "refresh with every image gone unmerges"
R=$TEST_DIR/root2
make_root "$R"
cp -a "$B/one" "$R/var/lib/extensions/one"
cp -a "$B/cx" "$R/var/lib/confexts/cx"
bind_root "$R"
snapshot_state "$R" before2
run_rdext --root="$R" merge
expect_rc 0
assert_merged "$R" /usr one
assert_merged "$R" /etc cx
rm -rf "$R/var/lib/extensions/one" "$R/var/lib/confexts/cx"
run_refresh "$R"
expect_rc 0
assert_not_merged "$R" /usr
assert_not_merged "$R" /opt
assert_not_merged "$R" /etc
snapshot_state "$R" after2
assert_same_state before2 after2

finish
