#!/bin/bash
# Every failure path leaves the root as it was. The test build compiles in
# fault points (RDEXT_FAULT=NAME:N fails the Nth pass through NAME):
#   - a fault that stops the whole run (staging, overlay, metadata, the
#     commit of the 1st, 2nd or 3rd hierarchy) exits 1, names the step, and
#     leaves mounts, loop devices and run/ exactly as before: in particular
#     a commit failing on /opt or /etc takes back the /usr already attached;
#   - a fault staging one image (per-image mount) skips only that image;
#   - a fault writing state.json warns but keeps the merge;
#   - rd.sysext.require= of an image that would not be merged exits 1 and
#     merges nothing (so a retry from the emergency shell starts clean).
source "$(dirname "$0")/lib.sh"
require_root_env

R=$TEST_DIR/root
B=$TEST_DIR/build
make_root "$R"
make_ext_tree "$B/a" a sysext -- usr/share/t/a=a opt/t/a=a
make_erofs "$B/a" "$R/var/lib/extensions/a.raw"
make_ext_tree "$B/b" b sysext -- usr/share/t/b=b
make_squashfs "$B/b" "$R/var/lib/extensions/b.raw"
make_ext_tree "$B/d" d sysext -- usr/share/t/d=d
cp -a "$B/d" "$R/etc/extensions/d"
make_ext_tree "$B/c" c confext -- etc/t/c=c
make_erofs "$B/c" "$R/var/lib/confexts/c.raw"
bind_root "$R"
snapshot_state "$R" before

# whole_run_fails POINT: merge with the fault exits 1, says where, changes nothing
whole_run_fails() {
    check "fault $1 fails the merge and leaves nothing behind"
    RDEXT_FAULT=$1 run_rdext --root="$R" merge
    expect_rc 1
    expect_stderr_line "injected fault at ${1%:*}"
    assert_not_merged "$R" /usr
    assert_not_merged "$R" /opt
    assert_not_merged "$R" /etc
    assert_no_staging "$R"
    snapshot_state "$R" "after-$1"
    assert_same_state before "after-$1"
}

for point in staging:1 staging-tmpfs:1 overlay:1 overlay:2 overlay:3 metadata:1 metadata:3 commit:1 commit:2 commit:3; do
    whole_run_fails "$point"
done

check "a fault mounting one image skips that image, the rest merges"
RDEXT_FAULT=image-mount:2 run_rdext --root="$R" merge
expect_rc 0
expect_stderr_line "b\.raw" "injected fault"
assert_merged "$R" /usr a d
assert_merged "$R" /etc c
run_rdext --root="$R" --json status
json_query "$TEST_DIR/last.out" "[e['result'] for e in d['extensions'] if e['name'] == 'b'][0]" | grep -qx skipped ||
    fail "status does not report b as skipped"
run_rdext --root="$R" unmerge
expect_rc 0
snapshot_state "$R" after-image-mount
assert_same_state before after-image-mount

check "a fault writing state.json warns, the merge stays"
RDEXT_FAULT=state-file:1 run_rdext --root="$R" merge
expect_rc 0
expect_stderr_line "state.json"
assert_merged "$R" /usr a b d
run_rdext --root="$R" unmerge
expect_rc 0

check "rd.sysext.require= of an image that is not merged fails the merge"
printf 'rd.sysext.require=a,missing rd.sysext.exclude=b\n' >"$TEST_DIR/cmdline"
run_rdext --root="$R" --cmdline-file="$TEST_DIR/cmdline" merge
expect_rc 1
expect_stderr_line "required" "missing"
assert_not_merged "$R" /usr
assert_not_merged "$R" /etc
snapshot_state "$R" after-required-failure
assert_same_state before after-required-failure
printf 'rd.sysext.require=a rd.sysext.require=b rd.sysext.exclude=b\n' >"$TEST_DIR/cmdline"
run_rdext --root="$R" --cmdline-file="$TEST_DIR/cmdline" refresh
expect_rc 1
expect_stderr_line "required" "b" "excluded"
printf 'rd.sysext.require=a,b,d rd.confext.require=c\n' >"$TEST_DIR/cmdline"
run_rdext --root="$R" --cmdline-file="$TEST_DIR/cmdline" refresh
expect_rc 0
assert_merged "$R" /usr a b d
run_rdext --root="$R" unmerge
snapshot_state "$R" after-require
assert_same_state before after-require
finish
