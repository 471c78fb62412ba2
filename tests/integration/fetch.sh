#!/bin/bash
# rdext fetch: extensions from an update source named by systemd-sysupdate
# transfer files, verified, with retraction and downgrade. No network: a
# file:// source and a local directory source (both inside the root).
#  - the newest version compatible with the OS is chosen; a newer one whose
#    extension-release does not fit is downloaded, refused, removed, and the
#    next older one taken; CurrentSymlink= points at it;
#  - a checksum mismatch is refused and leaves nothing behind;
#  - a bad, missing or wrongly keyed signature of SHA256SUMS is refused;
#  - a retracted version is removed and an older one fetched (a downgrade);
#    an unsigned retraction list is refused;
#  - a full disk (a small tmpfs) leaves nothing behind;
#  - an unsupported key is refused with the file and line, the rest goes on;
#  - --json validates against doc/json/fetch.schema.json, status shows the
#    record, and `rdext merge` merges what was fetched.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fetch_lib.sh"
require_root_env

command -v gpg >/dev/null || skip "no gpg (scripts/setup-debian.sh installs it)"
command -v gpgv >/dev/null || skip "no gpgv (scripts/setup-debian.sh installs it)"

R=$TEST_DIR/root
B=$TEST_DIR/build
T=usr/share/rdext-test
WEB=$R/srv/web
UPD=$R/srv/upd
make_root "$R"
mkdir -p "$WEB" "$UPD" "$B"
fetch_setup

# publish DIR [KEY]: SHA256SUMS of DIR's images, signed by KEY (default good)
publish() {
    (cd "$1" && rm -f SHA256SUMS SHA256SUMS.gpg && sha256sum -- *.raw >SHA256SUMS)
    sign "$1/SHA256SUMS" "${2:-good}"
}
sign() { rm -f "$1.gpg"; gpg --batch --quiet --local-user "$2@example.org" --detach-sign -o "$1.gpg" "$1"; }
fetch() { run_rdext --root="$R" --keyring="$KEYRING" --json=short "$@" fetch; }
# listing DIR: the names in DIR, partial downloads included
listing() { ls -A "$1" 2>/dev/null | sort | tr '\n' ' '; }
jq_out() { json_query "$TEST_DIR/last.out" "$1"; }
transfer_field() { jq_out "[t for t in d['transfers'] if t['name'] == '$1'][0]['$2']"; }

mkdir -p "$R/etc/sysupdate.d"
# sysext-bakery's file, its Path= pointing at the file:// source and
# Verify= left at sysupdate's default (yes).
cat >"$R/etc/sysupdate.d/foo.transfer" <<EOT
[Source]
Type=url-file
Path=file:///srv/web/
MatchPattern=foo-@v-%a.raw

[Target]
InstancesMax=3
Type=regular-file
Path=/opt/extensions/foo
CurrentSymlink=/etc/extensions/foo.raw
EOT
# A local directory source (an update partition) into a versioned directory.
cat >"$R/etc/sysupdate.d/bar.transfer" <<EOT
[Source]
Type=regular-file
Path=/srv/upd
MatchPattern=bar_@v.raw

[Target]
Type=regular-file
Path=/var/lib/extensions/bar.raw.v
MatchPattern=bar_@v.raw
EOT

image foo 1 "$WEB/foo-1-$ARCH.raw"
image foo 2 "$WEB/foo-2-$ARCH.raw"
# looks newest and compatible by its name; its release says VERSION_ID=11
image foo 3 "$WEB/foo-3-$ARCH.raw" 11
publish "$WEB"
image bar 2 "$UPD/bar_2.raw"
publish "$UPD"

check "the newest compatible version is fetched; the incompatible newer one is removed"
fetch
expect_rc 0
json_schema_check fetch.schema.json <"$TEST_DIR/last.out" || fail "fetch --json does not match fetch.schema.json"
[[ $(listing "$R/opt/extensions/foo") == "foo-2-$ARCH.raw " ]] ||
    fail "target holds: $(listing "$R/opt/extensions/foo")"
[[ $(readlink "$R/etc/extensions/foo.raw") == "../../opt/extensions/foo/foo-2-$ARCH.raw" ]] ||
    fail "CurrentSymlink is $(readlink "$R/etc/extensions/foo.raw")"
[[ $(transfer_field foo version) == 2 && $(transfer_field foo result) == fetched ]] || fail "foo's record: $(last_out)"
[[ $(jq_out "[t for t in d['transfers'] if t['name'] == 'foo'][0]['refused'][0]['version']") == 3 ]] ||
    fail "foo-3's refusal is not recorded: $(last_out)"
expect_stderr_line "foo-3" "VERSION_ID|compatib"
[[ $(listing "$R/var/lib/extensions/bar.raw.v") == "bar_2.raw " ]] || fail "bar: $(listing "$R/var/lib/extensions/bar.raw.v")"

check "a second fetch changes nothing"
fetch
expect_rc 0
[[ $(transfer_field foo result) == unchanged ]] || fail "second fetch: $(last_out)"

check "a checksum mismatch is refused and leaves nothing behind"
image foo 4 "$WEB/foo-4-$ARCH.raw"
publish "$WEB"
echo tampered >>"$WEB/foo-4-$ARCH.raw"
before=$(listing "$R/opt/extensions/foo")
fetch
[[ $(listing "$R/opt/extensions/foo") == "$before" ]] || fail "after a checksum mismatch: $(listing "$R/opt/extensions/foo")"
expect_stderr_line "foo-4" "SHA-256|checksum"
[[ $(transfer_field foo version) == 2 ]] || fail "checksum mismatch: $(last_out)"

check "a bad, a missing and a wrongly keyed signature are refused"
image foo 4 "$WEB/foo-4-$ARCH.raw"
publish "$WEB"
echo "$(sha256sum <"$WEB/foo-1-$ARCH.raw" | cut -d' ' -f1)  foo-9-$ARCH.raw" >>"$WEB/SHA256SUMS"
fetch
expect_rc 1
expect_stderr_line "SHA256SUMS" "signature"
[[ $(listing "$R/opt/extensions/foo") == "$before" ]] || fail "bad signature: $(listing "$R/opt/extensions/foo")"
publish "$WEB"
rm "$WEB/SHA256SUMS.gpg"
fetch
expect_rc 1
expect_stderr_line "SHA256SUMS.gpg"
publish "$WEB" evil
fetch
expect_rc 1
expect_stderr_line "SHA256SUMS" "signature"
[[ $(transfer_field foo result) == failed ]] || fail "wrong key: $(last_out)"
[[ $(listing "$R/opt/extensions/foo") == "$before" ]] || fail "wrong key: $(listing "$R/opt/extensions/foo")"

check "with a good signature the new version comes"
publish "$WEB"
fetch
expect_rc 0
[[ $(transfer_field foo version) == 4 ]] || fail "foo-4 not fetched: $(last_out)"

check "retraction: the retracted version is removed, an older one fetched (a downgrade)"
image bar 1 "$UPD/bar_1.raw"
publish "$UPD"
echo bar_2.raw >"$UPD/SHA256SUMS.retracted"
fetch
expect_rc 1
expect_stderr_line "SHA256SUMS.retracted"
[[ $(listing "$R/var/lib/extensions/bar.raw.v") == "bar_2.raw " ]] || fail "unsigned retraction acted on"
sign "$UPD/SHA256SUMS.retracted" good
fetch
expect_rc 0
[[ $(listing "$R/var/lib/extensions/bar.raw.v") == "bar_1.raw " ]] ||
    fail "after retraction: $(listing "$R/var/lib/extensions/bar.raw.v")"
[[ $(transfer_field bar version) == 1 && $(transfer_field bar previous_version) == 2 ]] || fail "bar: $(last_out)"
[[ $(jq_out "[t for t in d['transfers'] if t['name'] == 'bar'][0]['removed'][0]['reason']") == *retracted* ]] ||
    fail "bar_2's removal is not recorded as a retraction: $(last_out)"

check "status shows the fetch record"
run_rdext --root="$R" --json=short status
expect_rc 0
json_schema_check status.schema.json <"$TEST_DIR/last.out" || fail "status --json does not match its schema"
[[ $(jq_out "d['fetch']['transfers'][1]['name']") == foo ]] || fail "status: $(last_out)"
run_rdext --root="$R" status
grep -q "bar.*1.*retracted\|retracted.*bar" "$TEST_DIR/last.out" || fail "status text does not say what was retracted: $(last_out)"

check "rdext merge merges what was fetched"
bind_root "$R"
run_merge "$R"
expect_rc 0
assert_merged "$R" /usr bar foo
assert_file_content "$R/$T/foo" 4
assert_file_content "$R/$T/bar" 1
run_unmerge "$R"
expect_rc 0

check "a full disk leaves nothing behind"
mkdir -p "$R/var/lib/extensions/big.raw.v" "$R/srv/big"
rm -rf "$B/tree"
make_ext_tree "$B/tree" big sysext -- "$T/big=1"
head -c 3M /dev/urandom >"$B/tree/$T/noise"
make_erofs "$B/tree" "$R/srv/big/big_1.raw"
publish "$R/srv/big"
cat >"$R/etc/sysupdate.d/big.transfer" <<EOT
[Source]
Type=regular-file
Path=/srv/big
MatchPattern=big_@v.raw
[Target]
Path=/var/lib/extensions/big.raw.v
EOT
mount -t tmpfs -o size=1M tmpfs "$R/var/lib/extensions/big.raw.v"
fetch
expect_rc 1
expect_stderr_line "big" "space"
[[ -z $(listing "$R/var/lib/extensions/big.raw.v") ]] || fail "full disk left: $(listing "$R/var/lib/extensions/big.raw.v")"
[[ $(transfer_field foo result) == unchanged ]] || fail "the other transfers did not run: $(last_out)"
umount "$R/var/lib/extensions/big.raw.v"
rm "$R/etc/sysupdate.d/big.transfer"

check "an unsupported key is refused with the file and line; the other transfers run"
printf 'RemoveTemporary=no\n' >>"$R/etc/sysupdate.d/bar.transfer"
fetch
expect_rc 1
expect_stderr_line "/etc/sysupdate.d/bar.transfer:10" "RemoveTemporary"
[[ $(transfer_field foo result) == unchanged ]] || fail "foo did not run: $(last_out)"
json_schema_check fetch.schema.json <"$TEST_DIR/last.out" || fail "fetch --json (refused file) does not match"

finish
