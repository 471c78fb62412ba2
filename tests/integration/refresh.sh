#!/bin/bash
# refresh: "merge again, replacing the current merge". Checks that
#  - refresh with nothing merged merges;
#  - refresh several times in a row keeps working and gives the same trees
#    as a fresh merge (one mount per hierarchy, no staging left);
#  - added, removed and newly broken images are picked up (a removed
#    image's loop device goes with the old overlay, one that stays keeps
#    its loop device);
#  - images under /etc/extensions keep working while a confext overlay
#    (nodev) covers /etc, including a block device entry;
#  - refresh with every image gone unmerges;
#  - unmerge afterwards restores the state from before;
#  - a refresh with nothing changed does nothing (same mounts, a message),
#    the first one after a merge with a directory image included (a
#    directory image's identity is a few stat calls, the merge records it);
#    one after each change a user makes does refresh: an image added,
#    removed or replaced (raw and directory), a directory image's
#    extension-release edited in place, an entry added at the top of its
#    hierarchy (usr/); a file added deeper inside a directory image is
#    what it does not notice (documented; --always-refresh=yes);
#  - a mount below a merged hierarchy (/usr/share/sub) survives a refresh;
#  - the swap uses mount beneath (no fallback message on this kernel), and
#    with it disabled (RDEXT_TEST_NO_BENEATH=1, test builds: as on 6.1) the
#    refresh gives the same tree and says it fell back;
#  - a fault at any step of a refresh (staging, overlays, metadata, the swap
#    of the 1st, 2nd or 3rd hierarchy, with and without mount beneath)
#    exits 1 and leaves the previous merge exactly as it was.
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
make_squashfs "$B/two" "$R/run/extensions/two.raw"
make_ext_tree "$B/three" three sysext -- "$T/three=three"
make_squashfs "$B/three" "$R/var/lib/extensions/three.raw"
make_ext_tree "$B/five" five sysext -- "$T/five=five"
make_squashfs "$B/five" "$R/etc/extensions/five.raw"
make_ext_tree "$B/cx" cx confext -- "etc/rdext-test/cx=cx"
cp -a "$B/cx" "$R/var/lib/confexts/cx"
# a block device entry in /etc/extensions
make_ext_tree "$B/blk" blk sysext -- "$T/blk=blk"
make_erofs "$B/blk" "$B/blk.raw"
BLOCK_LOOP=$(losetup --find --show --read-only "$B/blk.raw")
mknod "$R/etc/extensions/blk" b "$(( 0x$(stat -c %t "$BLOCK_LOOP") ))" "$(( 0x$(stat -c %T "$BLOCK_LOOP") ))"
# block device entries are merged only when the kernel command line allows it
echo 'rd.sysext.block_devices=1' >"$TEST_DIR/cmdline"
run_rdext() { run_cmd "$RDEXT" --cmdline-file="$TEST_DIR/cmdline" "$@"; }
SYS=(blk five one three two)

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
# two.raw needs a loop device (squashfs: erofs is mounted from the file on
# 6.12+), so that the check below that it goes away can fail.
# (captured first: grep -q stops reading at its match, and with pipefail the
# writer's broken pipe would fail the whole check)
loops=$(loops_under "$TEST_DIR")
grep -q '/two\.raw$' <<<"$loops" ||
    defer_fail "two.raw has no loop device before the refresh: its release cannot be checked" \
        "(loop devices: $(losetup --list --noheadings --output NAME,BACK-FILE,BACK-INO 2>&1 | tr '\n' ';'))"
make_ext_tree "$B/four" four sysext -- "$T/four=four"
cp -a "$B/four" "$R/run/extensions/four"
mv "$R/run/extensions/two.raw" "$B/two.away"
make_ext_tree "$B/cy" cy confext -- "etc/rdext-test/cy=cy"
make_erofs "$B/cy" "$R/var/lib/confexts/cy.raw"
three_loops() { losetup --noheadings --output NAME --associated "$R/var/lib/extensions/three.raw" | sort | tr '\n' ' '; }
three_before=$(three_loops)
run_refresh "$R"
if [[ $LAST_RC == 0 ]]; then
    # The image that stays keeps its loop device (and so its mounted file
    # system): reused, not set up again.
    if is_rdext; then
        three_after=$(three_loops)
        [[ -n $three_before && $three_after == "$three_before" ]] ||
            defer_fail "three.raw (stays merged) had loop device(s) '$three_before' before the refresh and '$three_after' after: not reused"
    fi
    expect_set "refresh after changes" /usr blk five one three four
    expect_set "refresh after changes" /etc cx cy
    [[ ! -e $R/$T/two ]] || defer_fail "removed image two is still visible after refresh"
    [[ -f $R/$T/four ]] || defer_fail "added image four not visible after refresh"
    [[ -f $R/etc/rdext-test/cy ]] || defer_fail "added confext cy not visible after refresh"
    one_mount_each "refresh after changes"
    # five.raw is reached through the merged /etc: the refresh must open it
    # beneath the merge, or its loop device keeps the old /etc overlay
    # (and that one's loop devices) alive; the loop would then read
    # /extensions/five.raw of the detached old /etc.
    five_back=$(losetup --noheadings --output BACK-FILE --list | grep 'five.raw' | sort -u | tr '\n' ' ')
    [[ $five_back == "$R/etc/extensions/five.raw " ]] ||
        defer_fail "five.raw's loop device reads '$five_back', not the root's own $R/etc/extensions/five.raw"
    # The image that left is released with the old overlay (loop autoclear).
    for _ in $(seq 20); do loops=$(loops_under "$TEST_DIR"); grep -q two <<<"$loops" || break; sleep 0.1; done
    ! grep -q two <<<"$loops" || defer_fail "the loop device of the removed image two.raw outlived the refresh"
else
    defer_fail "refresh after adding/removing images exited $LAST_RC"
fi

check "refresh with a newly broken image skips it, keeps the rest"
mv "$B/two.away" "$R/run/extensions/two.raw"
head -c 65536 /dev/urandom >"$R/var/lib/extensions/three.raw"
run_refresh "$R"
if [[ $LAST_RC == 0 ]]; then
    expect_set "refresh with a broken image" /usr blk five one two four
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

R=$TEST_DIR/root3
make_root "$R"
make_ext_tree "$B/d1" d1 sysext -- "$T/d1=d1" "opt/d1=d1"
cp -a "$B/d1" "$R/var/lib/extensions/d1"
make_ext_tree "$B/r1" r1 sysext -- "$T/r1=r1"
make_erofs "$B/r1" "$R/var/lib/extensions/r1.raw"
make_ext_tree "$B/c1" c1 confext -- "etc/rdext-test/c1=c1"
make_erofs "$B/c1" "$R/var/lib/confexts/c1.raw"
mkdir -p "$R/usr/share/sub"
bind_root "$R"
snapshot_state "$R" before3
run_rdext --root="$R" merge
expect_rc 0
mount_ids() { awk -v r="$R" '$5 == r "/usr" || $5 == r "/opt" || $5 == r "/etc" { print $5, $1 }' /proc/self/mountinfo | sort; }

check "the first refresh after a merge with a directory image does nothing"
mount_ids >"$TEST_DIR/ids.merge"
run_refresh "$R"
expect_rc 0
grep -q "nothing changed" "$TEST_DIR/last.err" || defer_fail "the first refresh after a merge with directory image d1 rebuilt: $(last_err)"
mount_ids >"$TEST_DIR/ids.first"
cmp -s "$TEST_DIR/ids.merge" "$TEST_DIR/ids.first" || defer_fail "the first refresh after a merge replaced the merge's mounts"

check "refresh with nothing changed does nothing"
mount_ids >"$TEST_DIR/ids.before"
run_refresh "$R" --json
expect_rc 0
expect_stderr_line "nothing changed"
[[ $(json_query "$TEST_DIR/last.out" 'd["operation"]') == unchanged ]] ||
    defer_fail "refresh --json with nothing changed does not say operation unchanged: $(last_out)"
mount_ids >"$TEST_DIR/ids.after"
diff -u "$TEST_DIR/ids.before" "$TEST_DIR/ids.after" >&2 || defer_fail "a refresh with nothing changed replaced mounts"

# Each change a user makes to the images is a change: the refresh rebuilds
# (no "nothing changed") and the next one, with nothing changed, does not.
expect_refreshed() {
    run_refresh "$R"
    expect_rc 0
    grep -q "nothing changed" "$TEST_DIR/last.err" && defer_fail "$1 went unnoticed"
    run_refresh "$R"
    expect_rc 0
    grep -q "nothing changed" "$TEST_DIR/last.err" || defer_fail "the refresh after the one that saw that $1 rebuilt again: $(last_err)"
}
D1=$R/var/lib/extensions/d1
check "a change inside a directory image's own top is a change"
echo d1-top >"$D1/usr/d1-top"
expect_refreshed "a new entry at the top of directory image d1's usr/"
[[ -f $R/usr/d1-top ]] || defer_fail "the new entry of d1 is not visible after refresh"
check "an in-place edit of a directory image's extension-release is a change"
echo "# edited" >>"$D1/usr/lib/extension-release.d/extension-release.d1"
expect_refreshed "an in-place edit of d1's extension-release"
check "a directory image replaced by another is a change"
cp -a "$D1" "$R/var/lib/extensions/.d1.new"
echo replaced >"$R/var/lib/extensions/.d1.new/$T/d1"
mv "$D1" "$TEST_DIR/d1.old" && mv "$R/var/lib/extensions/.d1.new" "$D1"
expect_refreshed "directory image d1 replaced"
[[ $(cat "$R/$T/d1" 2>/dev/null) == replaced ]] || defer_fail "replaced d1 not visible after refresh"
check "a raw image replaced in place (a new inode) is a change"
make_ext_tree "$B/r1b" r1 sysext -- "$T/r1=r1b"
make_erofs "$B/r1b" "$R/var/lib/extensions/.r1.new"
mv "$R/var/lib/extensions/.r1.new" "$R/var/lib/extensions/r1.raw"
expect_refreshed "raw image r1 replaced"
[[ $(cat "$R/$T/r1" 2>/dev/null) == r1b ]] || defer_fail "replaced r1 not visible after refresh"
check "a directory image added and removed is a change"
make_ext_tree "$R/var/lib/extensions/d2" d2 sysext -- "$T/d2=d2"
expect_refreshed "directory image d2 added"
[[ -f $R/$T/d2 ]] || defer_fail "d2 not visible after refresh"
rm -rf "$R/var/lib/extensions/d2"
expect_refreshed "directory image d2 removed"
[[ -e $R/$T/d2 ]] && defer_fail "d2 still visible after its removal and a refresh"
check "a file added deep inside a directory image is not noticed (documented: --always-refresh=yes)"
echo d1-deep >"$D1/$T/d1-deep"
run_refresh "$R"
expect_rc 0
grep -q "nothing changed" "$TEST_DIR/last.err" || defer_fail "a file deep in d1 was noticed: the documented limit is wrong ($(last_err))"
rm -f "$D1/$T/d1-deep"

check "a mount below /usr survives a refresh, and the swap uses mount beneath"
mount -t tmpfs rdext-test-sub "$R/usr/share/sub"
echo sub >"$R/usr/share/sub/file"
make_ext_tree "$B/r2" r2 sysext -- "$T/r2=r2"
make_erofs "$B/r2" "$R/var/lib/extensions/r2.raw"
run_refresh "$R"
expect_rc 0
grep -qi "mount beneath" "$TEST_DIR/last.err" && defer_fail "refresh fell back on this kernel: $(last_err)"
expect_set "refresh with a submount" /usr d1 r1 r2
[[ $(cat "$R/usr/share/sub/file" 2>/dev/null) == sub ]] || defer_fail "the tmpfs on /usr/share/sub did not survive the refresh"
[[ -f $R/$T/r2 ]] || defer_fail "r2 not visible after refresh"
one_mount_each "refresh with a submount"

check "without mount beneath (as on 6.1) the refresh gives the same tree and says so"
rm -f "$R/var/lib/extensions/r2.raw"
RDEXT_TEST_NO_BENEATH=1 run_refresh "$R" --json
expect_rc 0
expect_stderr_line "mount beneath not supported" "unmount and mount"
[[ $(json_query "$TEST_DIR/last.out" 'd["operation"]') == refresh-fallback ]] ||
    defer_fail "refresh --json does not say operation refresh-fallback: $(last_out)"
expect_set "fallback refresh" /usr d1 r1
expect_set "fallback refresh" /etc c1
[[ ! -e $R/$T/r2 ]] || defer_fail "r2 still visible after the fallback refresh"
[[ $(cat "$R/usr/share/sub/file" 2>/dev/null) == sub ]] || defer_fail "the submount did not survive the fallback refresh"
one_mount_each "fallback refresh"
umount "$R/usr/share/sub"
tree_digest "$R" usr opt etc >"$TEST_DIR/digest.fallback"
run_rdext --root="$R" unmerge
run_rdext --root="$R" merge
tree_digest "$R" usr opt etc >"$TEST_DIR/digest.fresh"
diff -u "$TEST_DIR/digest.fresh" "$TEST_DIR/digest.fallback" >&2 || defer_fail "fallback refresh tree differs from a fresh merge"

# Faults: each refresh has a change to make (r3 comes and goes).
make_ext_tree "$B/r3" r3 sysext -- "$T/r3=r3" "opt/r3=r3"
make_erofs "$B/r3" "$B/r3.raw"
make_ext_tree "$B/c2" c2 confext -- "etc/rdext-test/c2=c2"
for beneath in 1 0; do
    for point in staging:1 overlay:1 overlay:3 metadata:1 swap:1 swap:2 swap:3; do
        check "fault $point in a refresh (mount beneath: $beneath) keeps the previous merge"
        cp "$B/r3.raw" "$R/var/lib/extensions/r3.raw"
        cp -a "$B/c2" "$R/var/lib/confexts/c2"
        tree_digest "$R" usr opt etc >"$TEST_DIR/digest.pre"
        snapshot_state "$R" "pre-$point-$beneath"
        if [[ $beneath == 1 ]]; then
            RDEXT_FAULT=$point run_refresh "$R"
        else
            RDEXT_TEST_NO_BENEATH=1 RDEXT_FAULT=$point run_refresh "$R"
        fi
        if [[ $LAST_RC != 1 ]]; then
            defer_fail "refresh with fault $point exited $LAST_RC, expected 1"
        else
            grep -q "injected fault at ${point%:*}" "$TEST_DIR/last.err" || defer_fail "fault $point: not reported"
        fi
        tree_digest "$R" usr opt etc >"$TEST_DIR/digest.post"
        diff -u "$TEST_DIR/digest.pre" "$TEST_DIR/digest.post" >&2 || defer_fail "fault $point changed the merged trees"
        snapshot_state "$R" "post-$point-$beneath"
        # a hierarchy put back is a new mount: it comes last in mountinfo
        sort -o "$TEST_DIR/state/pre-$point-$beneath.mounts" "$TEST_DIR/state/pre-$point-$beneath.mounts"
        sort -o "$TEST_DIR/state/post-$point-$beneath.mounts" "$TEST_DIR/state/post-$point-$beneath.mounts"
        assert_same_state "pre-$point-$beneath" "post-$point-$beneath"
        assert_no_staging "$R"
        one_mount_each "fault $point"
        rm -rf "$R/var/lib/extensions/r3.raw" "$R/var/lib/confexts/c2"
    done
done

run_rdext --root="$R" unmerge
expect_rc 0
snapshot_state "$R" after3
assert_same_state before3 after3

check "/usr as a file system of its own: refresh unmerges first, says so, and gets the tree right"
R=$TEST_DIR/root4
make_root "$R"
cp "$B/r3.raw" "$R/var/lib/extensions/r3.raw"
bind_root "$R"
mount -t tmpfs rdext-test-usr "$R/usr"
mkdir -p "$R/usr/lib" "$R/usr/share"
cp "$TEST_DIR/root3/usr/lib/os-release" "$R/usr/lib/os-release"
echo base-usr-fs >"$R/usr/share/base-file"
run_rdext --root="$R" merge
expect_rc 0
expect_set "usr partition" /usr r3
cp "$TEST_DIR/root3/var/lib/extensions/r1.raw" "$R/var/lib/extensions/r1.raw"
run_refresh "$R"
expect_rc 0
expect_stderr_line "covers a mount of its own" "unmerging first"
expect_set "usr partition, refreshed" /usr r1 r3
[[ $(cat "$R/usr/share/base-file") == base-usr-fs ]] || defer_fail "the /usr file system's own file is not visible after refresh"
n=$(awk -v m="$R/usr" '$5 == m' /proc/self/mountinfo | wc -l)
(( n == 2 )) || defer_fail "expected the /usr tmpfs and one overlay on $R/usr, found $n mounts"
run_rdext --root="$R" unmerge
expect_rc 0

check "a confext shipping etc/os-release is refused, and a refresh keeps the OS's identity"
R=$TEST_DIR/root5
make_root "$R"
cp -a "$B/one" "$R/var/lib/extensions/one"
cp -a "$B/cx" "$R/var/lib/confexts/cx"
make_ext_tree "$R/var/lib/confexts/osconf" osconf confext -- "etc/os-release=ID=evil" "etc/rdext-test/osconf=osconf"
bind_root "$R"
snapshot_state "$R" before5
run_rdext --root="$R" merge
expect_rc 0
expect_stderr_line "osconf" "os-release"
assert_merged "$R" /usr one
assert_merged "$R" /etc cx
cp "$B/r3.raw" "$R/var/lib/extensions/r3.raw"
run_refresh "$R"
expect_rc 0
assert_merged "$R" /usr one r3
assert_merged "$R" /etc cx
run_rdext --root="$R" unmerge
expect_rc 0

check "refresh reads the OS's identity beneath the merge, not through it (a mutable /etc shows another os-release)"
rm -rf "$R/var/lib/confexts/osconf" "$R/var/lib/extensions/r3.raw"
mkdir -p "$R/var/lib/extensions.mutable/etc"
printf 'ID=evil\n' >"$R/var/lib/extensions.mutable/etc/os-release"
printf 'rd.confext.mutable=yes\n' >"$TEST_DIR/cmdline5"
run_rdext --root="$R" --cmdline-file="$TEST_DIR/cmdline5" merge
expect_rc 0
assert_merged "$R" /usr one
[[ $(cat "$R/etc/os-release") == ID=evil ]] || fail "the mutable /etc does not show its own os-release"
cp "$B/r3.raw" "$R/var/lib/extensions/r3.raw"
run_rdext --root="$R" --cmdline-file="$TEST_DIR/cmdline5" refresh
expect_rc 0
assert_merged "$R" /usr one r3
[[ $(merged_names "$R" /etc) == cx ]] || fail "after the refresh /etc is merged with '$(merged_names "$R" /etc)', expected cx"
run_rdext --root="$R" unmerge
expect_rc 0
rm -rf "$R/var/lib/extensions.mutable"
snapshot_state "$R" after5
assert_same_state before5 after5

check "an image linked into a merged hierarchy is found, with its sidecars' directory, beneath the merge"
# Flatcar links /etc/extensions/NAME.raw into /opt/extensions; with /opt
# merged, a refresh reopens the image beneath the merge, and the directory
# beside it (sidecars) is looked up there too, not through the old overlay
R=$TEST_DIR/root6
make_root "$R"
make_ext_tree "$R/etc/extensions/optx" optx sysext -- "opt/optx/f=optx"
make_ext_tree "$B/linked" linked sysext -- "$T/linked=linked"
mkdir -p "$R/opt/extensions"
make_erofs "$B/linked" "$R/opt/extensions/linked.raw"
ln -s /opt/extensions/linked.raw "$R/etc/extensions/linked.raw"
bind_root "$R"
run_rdext --root="$R" merge
expect_rc 0
expect_set "linked, merged" /usr linked optx
echo g >"$R/etc/extensions/optx/opt/optx/g"
run_refresh "$R"
expect_rc 0
expect_set "linked, refreshed" /usr linked optx
[[ $(cat "$R/$T/linked") == linked ]] || defer_fail "the linked image's file is missing after refresh"
run_rdext --root="$R" unmerge
expect_rc 0

finish
