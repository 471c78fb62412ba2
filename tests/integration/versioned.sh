#!/bin/bash
# Versioned directories (NAME.raw.v/, NAME.v/, systemd.v(7)) and what rdext
# adds to them:
#  - OS-bound selection: of foo_11/12/13.raw (VERSION_ID 11, 12, 13) the one
#    for the booted OS is merged, not the newest; after a simulated A/B
#    rollback (os-release says 11) a refresh merges foo_11;
#  - boot counting: a merged foo_14+3-0.raw becomes foo_14+2-1.raw (once per
#    boot, a refresh does not count again), `mark-good` makes it foo_14.raw;
#    on a read-only /var/lib/extensions the rename is recorded as pending and
#    done by `count-tries` (rdext-count-tries.service) once writable (still
#    read-only: exit 1, nothing renamed); an entry whose tries run out
#    ranks last, so the previous good version comes back;
#  - +0-N entries are not chosen while another entry is usable;
#  - rd.sysext.pin=foo=VERSION (honoured, absent, unusable);
#  - malformed names, foreign architectures, unparsable counters and two
#    entries claiming one version are ignored with messages; a .v directory
#    with nothing usable is skipped;
#  - status --json lists every candidate with its verdict and reason;
#  - nothing stays mounted after unmerge.
# Findings are collected (defer_fail) so one does not hide the others.
source "$(dirname "$0")/lib.sh"
require_root_env

R=$TEST_DIR/root
B=$TEST_DIR/build
T=usr/share/rdext-test
V=$R/var/lib/extensions
D=$V/foo.raw.v
S=$TEST_DIR/status.json
make_root "$R"

case $(uname -m) in
    x86_64) NATIVE=x86-64; FOREIGN=arm64 ;;
    aarch64) NATIVE=arm64; FOREIGN=x86-64 ;;
    *) NATIVE=""; FOREIGN=x86-64 ;;
esac

# foo_image CONTENT DEST VERSION_ID: an erofs sysext "foo" for that OS release
foo_image() {
    rm -rf "$B/tmp"
    make_ext_tree "$B/tmp" foo sysext ID=debian "VERSION_ID=$3" -- "$T/foo=$1"
    make_erofs "$B/tmp" "$2"
}

mkdir -p "$D"
foo_image 11 "$D/foo_11.raw" 11
foo_image 12 "$D/foo_12.raw" 12
foo_image 13 "$D/foo_13.raw" 13
# a NAME.v directory holds directory trees
make_ext_tree "$V/dirv.v/dirv_1" dirv sysext -- "$T/dirv=1"
make_ext_tree "$V/dirv.v/dirv_2" dirv sysext -- "$T/dirv=2"

set_os_version() {
    rm -f "$R/etc/os-release"
    printf 'ID=debian\nVERSION_ID=%s\n' "$1" >"$R/etc/os-release"
}

bind_root "$R"
# /var/lib/extensions on a mount of its own, to make it read-only later
mount --bind "$V" "$V"
snapshot_state "$R" before

status_json() {
    run_rdext --root="$R" --json status
    expect_rc 0
    cp "$TEST_DIR/last.out" "$S"
}
# candidate FIELD FILE: that field of the candidate entry FILE (of any versioned directory)
candidate() {
    json_query "$S" "[c.get('$1', '') for e in d['extensions'] for c in e.get('candidates', []) if c['path'].endswith('/$2')]"
}
expect_verdict() {   # expect_verdict FILE VERDICT [REASON-ERE]
    local got reason
    got=$(candidate verdict "$1")
    [[ $got == "[\"$2\"]" ]] || defer_fail "status: $1 is $got, expected $2"
    if [[ -n ${3:-} ]]; then
        reason=$(candidate reason "$1")
        grep -qE -- "$3" <<<"$reason" || defer_fail "status: reason for $1 is $reason, expected /$3/"
    fi
}
trial() { json_query "$S" "[e['trial'].get('$1') for e in d['extensions'] if e['name'] == 'foo' and 'trial' in e]"; }
expect_foo() {   # expect_foo CONTENT WHAT
    local got
    got=$(cat "$R/$T/foo" 2>/dev/null || echo "(none)")
    [[ $got == "$1" ]] || defer_fail "$2: /$T/foo says '$got', expected '$1'"
}
expect_files() {   # expect_files PREFIX: the entries of $D starting with PREFIX are exactly ${EXPECT[@]}
    local got want f
    got=$(for f in "$D/$1"*; do basename "$f"; done | sort | tr '\n' ' ')
    want=$(printf '%s\n' "${EXPECT[@]}" | sort | tr '\n' ' ')
    [[ $got == "$want" ]] || defer_fail "$WHAT: $D holds '$got', expected '$want'"
}

check "merge picks the entry for the booted OS (12), not the newest (13)"
run_rdext --root="$R" merge
expect_rc 0
assert_merged "$R" /usr dirv foo
expect_foo 12 "merge with VERSION_ID=12"
assert_file_content "$R/$T/dirv" 2
assert_no_staging "$R"
expect_stderr_line "foo" "passing over" "foo_13.raw" "VERSION_ID=13"
status_json
expect_verdict foo_13.raw "passed over" "VERSION_ID=13 does not match"
expect_verdict foo_12.raw chosen "can be used"
expect_verdict foo_11.raw "passed over" "older than foo_12.raw"
[[ $(json_query "$S" "[e['versioned_dir'] for e in d['extensions'] if e['name'] == 'foo']") == '["/var/lib/extensions/foo.raw.v"]' ]] ||
    defer_fail "status: foo's versioned_dir is missing or wrong"
[[ $(json_query "$S" "[e['path'] for e in d['extensions'] if e['name'] == 'foo']") == '["/var/lib/extensions/foo.raw.v/foo_12.raw"]' ]] ||
    defer_fail "status: foo's path is not the chosen entry"
expect_verdict dirv_2 chosen

check "after a rollback to release 11, refresh merges foo_11"
set_os_version 11
run_rdext --root="$R" refresh
expect_rc 0
expect_foo 11 "refresh with VERSION_ID=11"
status_json
expect_verdict foo_13.raw "passed over" "VERSION_ID=13"
expect_verdict foo_12.raw "passed over" "VERSION_ID=12"
expect_verdict foo_11.raw chosen

check "boot counting: merging foo_14+3-0.raw renames it to foo_14+2-1.raw"
set_os_version 12
foo_image 14 "$D/foo_14+3-0.raw" 12
run_rdext --root="$R" refresh
expect_rc 0
expect_foo 14 "refresh with a trial entry"
EXPECT=("foo_14+2-1.raw"); WHAT="after the first merge of the trial"; expect_files foo_14
expect_stderr_line "boot counting" "renamed" "foo_14\+3-0.raw" "foo_14\+2-1.raw"
status_json
[[ $(trial status) == '["counted"]' ]] || defer_fail "status: trial status is $(trial status), expected counted"
[[ $(json_query "$S" "[e['path'] for e in d['extensions'] if e['name'] == 'foo']") == '["/var/lib/extensions/foo.raw.v/foo_14+2-1.raw"]' ]] ||
    defer_fail "status: foo's path does not follow the rename"

check "a refresh in the same boot does not count again"
run_rdext --root="$R" refresh
expect_rc 0
expect_foo 14 "second refresh"
EXPECT=("foo_14+2-1.raw"); WHAT="after a second refresh"; expect_files foo_14

check "mark-good renames the trial to foo_14.raw"
run_rdext --root="$R" mark-good
expect_rc 0
EXPECT=("foo_14.raw"); WHAT="after mark-good"; expect_files foo_14
status_json
[[ $(trial status) == '["good"]' ]] || defer_fail "status: trial status after mark-good is $(trial status)"
run_rdext --root="$R" mark-good
expect_rc 0
expect_stderr_line "nothing to mark"

check "an entry with no tries left (+0-3) is not chosen while another one is usable"
foo_image 15 "$D/foo_15+0-3.raw" 12
run_rdext --root="$R" refresh
expect_rc 0
expect_foo 14 "refresh with foo_15+0-3.raw"
[[ -e $D/foo_15+0-3.raw ]] || defer_fail "foo_15+0-3.raw was renamed"
status_json
expect_verdict "foo_15+0-3.raw" "passed over" "no tries left"
expect_verdict foo_14.raw chosen

check "read-only /var/lib/extensions: the rename is recorded as pending"
foo_image 16 "$D/foo_16+2-0.raw" 12
mount -o remount,bind,ro "$V"
run_rdext --root="$R" refresh
expect_rc 0
expect_foo 16 "refresh on a read-only /var/lib/extensions"
EXPECT=("foo_16+2-0.raw"); WHAT="read-only"; expect_files foo_16
expect_stderr_line "boot counting" "read-only" "pending"
status_json
[[ $(trial status) == '["pending"]' ]] || defer_fail "status: trial status on a read-only root is $(trial status)"

check "count-tries on a root that is still read-only: exit 1, a message, nothing renamed"
run_rdext --root="$R" count-tries
expect_rc 1
expect_stderr_line "foo" "still read-only" "not counted"
EXPECT=("foo_16+2-0.raw"); WHAT="count-tries while read-only"; expect_files foo_16
status_json
[[ $(trial status) == '["pending"]' ]] || defer_fail "status: after a failed count-tries the trial is $(trial status)"

check "count-tries once writable (rdext-count-tries.service) does the pending rename, once"
mount -o remount,bind,rw "$V"
run_rdext --root="$R" count-tries
expect_rc 0
expect_stderr_line "boot counting" "renamed" "foo_16\+2-0.raw" "foo_16\+1-1.raw" "pending"
EXPECT=("foo_16+1-1.raw"); WHAT="after count-tries"; expect_files foo_16
status_json
[[ $(trial status) == '["counted"]' ]] || defer_fail "status: trial status after count-tries is $(trial status)"
[[ $(json_query "$S" "[e['path'] for e in d['extensions'] if e['name'] == 'foo']") == '["/var/lib/extensions/foo.raw.v/foo_16+1-1.raw"]' ]] ||
    defer_fail "status: foo's path does not follow the late rename"
run_rdext --root="$R" count-tries
expect_rc 0
expect_stderr_line "no try is pending"
EXPECT=("foo_16+1-1.raw"); WHAT="after a second count-tries"; expect_files foo_16
expect_foo 16 "after count-tries"

check "mark-good on a read-only /var/lib/extensions: exit 1, the error said once, nothing renamed"
mount -o remount,bind,ro "$V"
run_rdext --root="$R" mark-good
mount -o remount,bind,rw "$V"
expect_rc 1
want="rdext: error: mark-good failed: foo: cannot mark /var/lib/extensions/foo.raw.v/foo_16+1-1.raw good: rename foo_16+1-1.raw to foo_16.raw: Read-only file system"
[[ $(last_err) == "$want" ]] || defer_fail "mark-good on a read-only root: stderr is '$(last_err)', expected '$want'"
EXPECT=("foo_16+1-1.raw"); WHAT="after a failed mark-good"; expect_files foo_16

check "a refresh later in the same boot does not count again"
run_rdext --root="$R" refresh
expect_rc 0
expect_foo 16 "refresh once writable"
EXPECT=("foo_16+1-1.raw"); WHAT="after the pending rename"; expect_files foo_16
status_json
[[ $(trial status) == '["counted"]' ]] || defer_fail "status: trial status after the pending rename is $(trial status)"

check "the next boot (unmerge, merge) uses the last try; the one after rolls back to foo_14"
run_rdext --root="$R" unmerge
expect_rc 0
run_rdext --root="$R" merge
expect_rc 0
expect_foo 16 "second boot of the trial"
EXPECT=("foo_16+0-2.raw"); WHAT="after the last try"; expect_files foo_16
run_rdext --root="$R" unmerge
expect_rc 0
run_rdext --root="$R" merge
expect_rc 0
expect_foo 14 "boot after the tries ran out"
EXPECT=("foo_16+0-2.raw"); WHAT="after the rollback"; expect_files foo_16
status_json
expect_verdict "foo_16+0-2.raw" "passed over" "no tries left"

check "rd.sysext.pin=foo=12 merges foo_12 although foo_14 is newer"
printf 'quiet rd.sysext.pin=foo=12\n' >"$TEST_DIR/cmdline"
run_rdext --root="$R" --cmdline-file="$TEST_DIR/cmdline" refresh
expect_rc 0
expect_foo 12 "pinned to 12"
status_json
expect_verdict foo_12.raw chosen "version 12 is pinned"
expect_verdict foo_14.raw "passed over" "version 12 is pinned"

check "a pin that cannot be honoured falls back to the usual choice, with a message"
printf 'rd.sysext.pin=foo=13\n' >"$TEST_DIR/cmdline"
run_rdext --root="$R" --cmdline-file="$TEST_DIR/cmdline" refresh
expect_rc 0
expect_foo 14 "pinned to the incompatible 13"
expect_stderr_line "rd.sysext.pin=foo=13" "can be used"
printf 'rd.sysext.pin=foo=99\n' >"$TEST_DIR/cmdline"
run_rdext --root="$R" --cmdline-file="$TEST_DIR/cmdline" refresh
expect_rc 0
expect_foo 14 "pinned to the absent 99"
expect_stderr_line "rd.sysext.pin=foo=99" "no entry has the pinned version"

check "malformed names, foreign architectures and duplicate versions are ignored with messages"
# Each of these is a real image for this OS: picked, it would win.
foo_image foreign "$D/foo_17_$FOREIGN.raw" 12
foo_image counter "$D/foo_18+3-x.raw" 12
foo_image dash "$D/foo-19.raw" 12
foo_image empty "$D/foo_.raw" 12
foo_image other "$D/foo_20.img" 12
cp "$D/foo_14.raw" "$D/foo_014.raw"
if [[ -n $NATIVE ]]; then foo_image native "$D/foo_14_$NATIVE.raw" 12; fi
mkdir -p "$V/bar.raw.v"
rm -rf "$B/tmp"; make_ext_tree "$B/tmp" bar sysext -- "$T/bar=bar"
make_erofs "$B/tmp" "$V/bar.raw.v/bar_1_$FOREIGN.raw"
run_rdext --root="$R" refresh
expect_rc 0
if [[ -n $NATIVE ]]; then
    expect_foo native "with an entry naming this machine's architecture"
else
    expect_foo 14 "with odd entries"
fi
assert_absent "$R/$T/bar"
expect_stderr_line "ignoring" "foo_17_$FOREIGN.raw" "built for $FOREIGN"
expect_stderr_line "ignoring" "foo_18\+3-x.raw" "boot counter" "does not parse"
expect_stderr_line "ignoring" "foo-19.raw" "does not start with 'foo_'"
expect_stderr_line "ignoring" "foo_.raw" "no version"
expect_stderr_line "ignoring" "foo_20.img" "does not end in '.raw'"
expect_stderr_line "and foo_014.raw claim the same version \(14 = 014\)"
expect_stderr_line "skipping" "bar.raw.v" "no usable entry" "built for $FOREIGN"
status_json
for f in "foo_17_$FOREIGN.raw" "foo_18+3-x.raw" foo-19.raw foo_.raw foo_20.img; do expect_verdict "$f" ignored; done
expect_verdict foo_014.raw "passed over" "same version as foo_14"
[[ $(json_query "$S" "[e['result'] for e in d['extensions'] if e['name'] == 'bar']") == '["skipped"]' ]] ||
    defer_fail "status: bar (only foreign entries) is not recorded as skipped"
[[ $(json_query "$S" "[c['verdict'] for e in d['extensions'] if e['name'] == 'bar' for c in e['candidates']]") == '["ignored"]' ]] ||
    defer_fail "status: bar's foreign entry is not listed as ignored"

check "unmerge leaves nothing mounted"
run_rdext --root="$R" unmerge
expect_rc 0
assert_not_merged "$R" /usr
snapshot_state "$R" after
assert_same_state before after

check "a .v directory of 20,000 entries that do not fit the OS: the work is bounded"
# Every entry's name fits, each one's release file is for another OS
# release: finding that out takes a mount per entry (a bind mount for a
# directory tree, a loop device and a mount for an image file). wide.v is
# a tmpfs: creating and removing 20,000 trees on a disk mounted with
# `discard` takes minutes.
mkdir "$V/wide.v"
mount -t tmpfs -o mode=755 tmpfs "$V/wide.v"
python3 - "$V/wide.v" <<'PYEOF'
import os, sys
for i in range(1, 20001):
    d = f"{sys.argv[1]}/wide_{i}/usr/lib/extension-release.d"
    os.makedirs(d)
    with open(f"{d}/extension-release.wide", "w") as f:
        f.write("ID=debian\nVERSION_ID=99\n")
PYEOF
rm -rf "$B/tmp"
make_ext_tree "$B/tmp" wraw sysext ID=debian VERSION_ID=99 -- "$T/wraw=99"
make_erofs "$B/tmp" "$B/wraw.raw"
mkdir "$V/wraw.raw.v"
for i in $(seq 1 40); do cp "$B/wraw.raw" "$V/wraw.raw.v/wraw_$i.raw"; done
start=$(date +%s%N)
run_rdext --root="$R" merge
elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))
log "merge with wide.v (20,000 entries) and wraw.raw.v (40): $elapsed_ms ms"
expect_rc 0
(( elapsed_ms < 15000 )) || defer_fail "the merge took $elapsed_ms ms"
expect_stderr_line "wide.v" "more than 4096 entries"
status_json
# [tried, listed, not tried] for one versioned directory
counts() {
    json_query "$S" "[(sum(1 for c in e['candidates'] if c['verdict'] == 'passed over' and not c['reason'].startswith('not tried')), len(e['candidates']), sum(1 for c in e['candidates'] if c['reason'].startswith('not tried'))) for e in d['extensions'] if e['name'] == '$1']"
}
[[ $(counts wide) == '[[16, 4096, 4080]]' ]] || defer_fail "wide.v: [tried, listed, not tried] is $(counts wide), expected [[16, 4096, 4080]]"
[[ $(counts wraw) == '[[16, 40, 24]]' ]] || defer_fail "wraw.raw.v: [tried, listed, not tried] is $(counts wraw), expected [[16, 40, 24]]"
for n in wide wraw; do
    json_query "$S" "[e['result'] + ': ' + e['reason'] for e in d['extensions'] if e['name'] == '$n']" | grep -q 'skipped: .*not tried' ||
        defer_fail "status: $n is not skipped with the untried entries named: $(json_query "$S" "[e['reason'] for e in d['extensions'] if e['name'] == '$n']")"
done
run_rdext --root="$R" unmerge
expect_rc 0
umount "$V/wide.v"
rm -rf "$V/wide.v" "$V/wraw.raw.v"
snapshot_state "$R" after-wide
assert_same_state before after-wide

finish
