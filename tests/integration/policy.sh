#!/bin/bash
# Image policy (systemd.image-policy(7) syntax) against what images offer.
# Until dm-verity lands every image offers an unprotected root (or usr):
#   - the default policy merges them;
#   - rd.sysext.image_policy= demanding signatures refuses every sysext
#     (named, with the reason), confexts still merge;
#   - an invalid rd.sysext.image_policy= refuses every sysext (fails closed);
#   - --image-policy= overrides the command line;
#   - the root's own /etc/rdext/policy.conf may tighten (per extension
#     pattern), never loosen: an attempt is ignored with a warning.
source "$(dirname "$0")/lib.sh"
require_root_env

R=$TEST_DIR/root
B=$TEST_DIR/build
make_root "$R"
make_ext_tree "$B/ext-a" ext-a sysext -- usr/share/t/a=a
make_erofs "$B/ext-a" "$R/var/lib/extensions/ext-a.raw"
make_ext_tree "$B/ext-b" ext-b sysext -- usr/share/t/b=b
cp -a "$B/ext-b" "$R/etc/extensions/ext-b"
make_ext_tree "$B/conf" conf confext -- etc/t/c=c
make_erofs "$B/conf" "$R/var/lib/confexts/conf.raw"
bind_root "$R"
snapshot_state "$R" before
CMDLINE=$TEST_DIR/cmdline
signed_only='root=signed+absent:usr=signed+absent'

merge_with() {  # merge_with CMDLINE [ARGS...]
    printf '%s\n' "$1" >"$CMDLINE"; shift
    run_rdext --root="$R" --cmdline-file="$CMDLINE" "$@" merge
    expect_rc 0
}
unmerge_clean() {
    run_rdext --root="$R" unmerge
    expect_rc 0
    snapshot_state "$R" "after-$1"
    assert_same_state before "after-$1"
}

check "the default policy merges unprotected images"
merge_with ""
assert_merged "$R" /usr ext-a ext-b
assert_merged "$R" /etc conf
unmerge_clean default

check "rd.sysext.image_policy= asking for signatures refuses every sysext"
merge_with "rd.sysext.image_policy=$signed_only"
expect_stderr_line "ext-a\.raw" "image policy" "unprotected"
expect_stderr_line "ext-b" "image policy" "unprotected"
assert_not_merged "$R" /usr
assert_merged "$R" /etc conf
unmerge_clean signed

check "an invalid rd.sysext.image_policy= fails closed"
merge_with "rd.sysext.image_policy=root=bogus"
expect_stderr_line "rd.sysext.image_policy" "not a valid image policy"
assert_not_merged "$R" /usr
assert_merged "$R" /etc conf
unmerge_clean invalid

check "--image-policy= overrides the command line"
merge_with "rd.sysext.image_policy=$signed_only" --image-policy='*'
assert_merged "$R" /usr ext-a ext-b
unmerge_clean cli

check "an invalid --image-policy= is an error"
run_rdext --root="$R" --image-policy='root=nope' merge
expect_rc 1

check "the root's policy.conf tightens one extension by pattern"
mkdir -p "$R/etc/rdext"
printf '# tighten\next-b %s\n' "$signed_only" >"$R/etc/rdext/policy.conf"
merge_with ""
expect_stderr_line "ext-b" "image policy"
assert_merged "$R" /usr ext-a
unmerge_clean tighten

check "the root's policy.conf cannot loosen the command line's policy"
printf 'default *\next-* *\n' >"$R/etc/rdext/policy.conf"
merge_with "rd.sysext.image_policy=$signed_only"
expect_stderr_line "loosen|ignored|dropped"
assert_not_merged "$R" /usr
unmerge_clean loosen

check "a broken policy.conf on the root is ignored with a warning"
printf 'this is not a rule line with too many fields\n' >"$R/etc/rdext/policy.conf"
merge_with ""
expect_stderr_line "policy.conf" "ignored"
assert_merged "$R" /usr ext-a ext-b
unmerge_clean broken
rm -rf "$R/etc/rdext"
finish
