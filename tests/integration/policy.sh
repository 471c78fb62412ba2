#!/bin/bash
# Image policy (systemd.image-policy(7) syntax) against what images offer.
# Until dm-verity lands every image offers an unprotected root (or usr):
#   - the default policy merges them;
#   - rd.sysext.image_policy= demanding signatures refuses every sysext
#     (named, with the reason), confexts still merge;
#   - an invalid rd.sysext.image_policy= refuses every sysext (fails closed);
#   - --image-policy= overrides the command line;
#   - the root's own /etc/rdext/policy.conf may tighten (per extension
#     pattern), never loosen: an attempt is ignored with a warning; a broken
#     one refuses every image (ignoring it would loosen what it said);
#   - policies that use nothing ("-", "", unused+absent, a bare
#     rd.sysext.image_policy) refuse every image, and inspect agrees.
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

check "a refusal by --image-policy= names --image-policy= as its source"
merge_with "rd.sysext.image_policy=*" --image-policy="$signed_only"
expect_stderr_line "ext-a" "image policy" "\(from --image-policy=\)"
! grep -q "from rd\." "$TEST_DIR/last.err" || fail "a refusal names rd.*.image_policy=: $(last_err)"
assert_not_merged "$R" /usr
unmerge_clean cli-source

check "an invalid --image-policy= is a usage error (exit 2)"
run_rdext --root="$R" --image-policy='root=nope' merge
expect_rc 2
expect_stderr_line "^rdext: error: --image-policy= is not a valid image policy"

# inspect_refuses IMAGE ARGS...: inspect reaches the merge's verdict (exit 1)
inspect_refuses() {
    local image=$1; shift
    run_rdext --root="$R" --cmdline-file="$CMDLINE" "$@" inspect "$image"
    expect_rc 1
    grep -q '^verdict: *refuse' "$TEST_DIR/last.out" || fail "inspect $image: $(last_out)"
}
# nothing_merged: every image of both classes was refused by the policy
nothing_merged() {
    expect_stderr_line "ext-a" "image policy"
    expect_stderr_line "ext-b" "image policy"
    expect_stderr_line "conf" "image policy"
    assert_not_merged "$R" /usr
    assert_not_merged "$R" /etc
}

# systemd.image-policy(7): "-" and "" are "=unused+absent" (use nothing);
# a root or usr the image has is then unused, so the image is refused.
n=0
for pol in '-' '' 'root=unused+absent:usr=unused+absent'; do
    n=$((n + 1))
    check "--image-policy='$pol' uses nothing: every image is refused, inspect agrees"
    merge_with "" --image-policy="$pol"
    nothing_merged
    expect_stderr_line "ext-a" "image policy" "unused"
    unmerge_clean "use-nothing-$n"
    inspect_refuses "$R/var/lib/extensions/ext-a.raw" --image-policy="$pol"
    inspect_refuses "$R/var/lib/confexts/conf.raw" --image-policy="$pol"
done

check "rd.sysext.image_policy without '=' refuses every sysext, inspect agrees"
merge_with "rd.sysext.image_policy"
expect_stderr_line "rd.sysext.image_policy" "refusing every"
assert_not_merged "$R" /usr
assert_merged "$R" /etc conf
unmerge_clean bare-sysext
inspect_refuses "$R/var/lib/extensions/ext-a.raw"

check "rd.confext.image_policy without '=' refuses every confext"
merge_with "rd.confext.image_policy"
expect_stderr_line "rd.confext.image_policy" "refusing every"
assert_merged "$R" /usr ext-a ext-b
assert_not_merged "$R" /etc
unmerge_clean bare-confext
: >"$CMDLINE"

# The running system's /etc/rdext/policy.conf (trusted), on an overlay of
# /etc inside this test's mount namespace.
mkdir -p "$TEST_DIR/etc-upper" "$TEST_DIR/etc-work"
mount -t overlay rdext-test-etc -o "lowerdir=/etc,upperdir=$TEST_DIR/etc-upper,workdir=$TEST_DIR/etc-work" /etc
mkdir -p /etc/rdext
snapshot_state "$R" before   # the overlay is part of the state now

check "'default -' in the trusted policy.conf uses nothing, inspect agrees"
printf 'default -\n' >/etc/rdext/policy.conf
merge_with ""
nothing_merged
expect_stderr_line "ext-a" "\(from trusted policy file /etc/rdext/policy\.conf:1 \(default\)\)"
unmerge_clean trusted-dash
inspect_refuses "$R/var/lib/extensions/ext-a.raw"

check "a FIFO as the trusted policy.conf fails the merge at once, naming it"
rm /etc/rdext/policy.conf
mkfifo /etc/rdext/policy.conf
printf '\n' >"$CMDLINE"
run_cmd timeout 20 "$RDEXT" --root="$R" --cmdline-file="$CMDLINE" merge
[[ $LAST_RC != 124 ]] || fail "the merge did not finish within 20 s"
expect_rc 1
expect_stderr_line "trusted policy file /etc/rdext/policy\.conf: not a regular file"
assert_not_merged "$R" /usr

check "a broken trusted policy.conf: merge fails, status and list warn and still show (exit 0)"
rm /etc/rdext/policy.conf
printf 'ext-* root=bogus\n' >/etc/rdext/policy.conf
run_rdext --root="$R" merge
expect_rc 1
expect_stderr_line "^rdext: error: image policy: trusted policy file /etc/rdext/policy\.conf:1: "
assert_not_merged "$R" /usr
for cmd in status list; do
    run_rdext --root="$R" "$cmd"
    expect_rc 0
    expect_stderr_line "^rdext: warning: image policy: trusted policy file /etc/rdext/policy\.conf:1: .*; merge, refresh and inspect refuse to run with it$"
    [[ -s $TEST_DIR/last.out ]] || fail "$cmd with a broken trusted policy.conf printed nothing"
done
grep -q "ext-a" "$TEST_DIR/last.out" || fail "list with a broken trusted policy.conf: $(last_out)"
grep -q "reason: a merge refuses to run: image policy: trusted policy file" "$TEST_DIR/last.out" ||
    fail "list with a broken trusted policy.conf forecasts a merge: $(last_out)"
run_rdext --root="$R" inspect "$R/var/lib/extensions/ext-a.raw"
expect_rc 2
umount /etc
snapshot_state "$R" before

check "the root's policy.conf tightens one extension by pattern"
mkdir -p "$R/etc/rdext"
printf '# tighten\next-b %s\n' "$signed_only" >"$R/etc/rdext/policy.conf"
merge_with ""
expect_stderr_line "ext-b" "image policy" "tightened by root's policy file /etc/rdext/policy\.conf:2 \(ext-b\)"
assert_merged "$R" /usr ext-a
unmerge_clean tighten

check "the root's policy.conf cannot loosen the command line's policy"
printf 'default *\next-* *\n' >"$R/etc/rdext/policy.conf"
merge_with "rd.sysext.image_policy=$signed_only"
expect_stderr_line "loosen|ignored|dropped"
assert_not_merged "$R" /usr
unmerge_clean loosen

check "a root rule with nothing in common with the trusted one refuses, it is not set aside"
# trusted: unprotected only; the root asks ext-b to be signed: no image can
# be both, so ext-b is refused (the trusted rule alone would merge it)
printf 'ext-b root=signed:usr=signed\n' >"$R/etc/rdext/policy.conf"
merge_with "rd.sysext.image_policy=root=unprotected+absent:usr=unprotected+absent"
expect_stderr_line "nothing in common"
expect_stderr_line "ext-b" "image policy"
assert_merged "$R" /usr ext-a
unmerge_clean disjoint

check "a broken policy.conf on the root refuses every image (it could only tighten)"
printf 'this is not a rule line with too many fields\n' >"$R/etc/rdext/policy.conf"
merge_with ""
expect_stderr_line "root's policy file /etc/rdext/policy\.conf:1: expected 'PATTERN POLICY'"
nothing_merged
expect_stderr_line "ext-a" "root's policy file /etc/rdext/policy\.conf" "unusable"
unmerge_clean broken
inspect_refuses "$R/var/lib/extensions/ext-a.raw"
rm -rf "$R/etc/rdext"
finish
