#!/bin/bash
# Images are staged on several threads (src/base/parallel.h); the outcome
# must not show it. A mix of good and broken sysexts and confexts (wrong
# OS, corrupt file system, an os-release of its own, a versioned directory
# whose best entry does not fit) is merged on all CPUs, several times, and
# once on one thread. Every run must give the same records in the same
# order, the same warnings in the same order, the same merged trees, and
# leave nothing behind after unmerge.
source "$(dirname "$0")/lib.sh"
require_root_env

R=$TEST_DIR/root
B=$TEST_DIR/build
make_root "$R" ID=debian VERSION_ID=12
T=usr/share/rdext-test
E=$R/var/lib/extensions

check "building images"
for i in 1 2 3 4 5 6; do
    make_ext_tree "$B/e$i" "good-erofs-$i" sysext -- "$T/e$i=e$i" "$T/top=e$i" "opt/e$i=e$i"
    make_erofs "$B/e$i" "$E/good-erofs-$i.raw"
done
make_ext_tree "$B/s1" good-squashfs sysext -- "$T/s1=s1" "$T/top=s1"
make_squashfs "$B/s1" "$R/run/extensions/good-squashfs.raw"
make_ext_tree "$B/x1" good-ext4 sysext -- "$T/x1=x1"
make_ext4 "$B/x1" "$R/etc/extensions/good-ext4.raw"
make_ext_tree "$B/d1" good-dir sysext -- "$T/d1=d1" "$T/top=d1"
cp -a "$B/d1" "$E/good-dir"

make_ext_tree "$B/foreign" bad-foreign sysext ID=fedora VERSION_ID=40 -- "$T/foreign=wrong"
make_erofs "$B/foreign" "$E/bad-foreign.raw"
head -c 1048576 /dev/urandom >"$E/bad-corrupt.raw"
make_ext_tree "$B/osrel" bad-osrel sysext -- "$T/osrel=wrong" "usr/lib/os-release=ID=evil"
make_erofs "$B/osrel" "$E/bad-osrel.raw"

# Versioned: the newest entry is for another OS, the next one fits.
mkdir -p "$E/ver.raw.v"
make_ext_tree "$B/ver2" ver sysext ID=fedora VERSION_ID=40 -- "$T/ver=2"
make_erofs "$B/ver2" "$E/ver.raw.v/ver_2.raw"
make_ext_tree "$B/ver1" ver sysext -- "$T/ver=1"
make_erofs "$B/ver1" "$E/ver.raw.v/ver_1.raw"

for c in 1 2; do
    make_ext_tree "$B/c$c" "conf-$c" confext -- "etc/conf-$c.conf=c$c" "etc/top.conf=c$c"
    make_erofs "$B/c$c" "$R/var/lib/confexts/conf-$c.raw"
done
make_ext_tree "$B/cbad" conf-bad confext ID=fedora VERSION_ID=40 -- "etc/conf-bad.conf=wrong"
make_erofs "$B/cbad" "$R/var/lib/confexts/conf-bad.raw"

bind_root "$R"
snapshot_state "$R" before

CPUS=$(nproc)
(( CPUS >= 2 )) || log "only $CPUS CPU here: the 'parallel' runs use one thread too"

# outcome NAME: what a user sees of the merge, kept as $TEST_DIR/NAME.*
outcome() {
    local name=$1
    grep -E '^rdext: (warning|error): ' "$TEST_DIR/last.err" >"$TEST_DIR/$name.warnings" || true
    run_rdext --root="$R" status --json
    expect_rc 0
    json_query "$TEST_DIR/last.out" \
        "[(e['class'], e['name'], e['result'], e.get('reason', ''), e['path'], e.get('hierarchies', []))
          for e in d['extensions']]" >"$TEST_DIR/$name.records"
    tree_digest "$R" usr opt etc >"$TEST_DIR/$name.tree"
}

# same_outcome A B: every part of the two outcomes is identical.
same_outcome() {
    local part
    for part in warnings records tree; do
        diff -u "$TEST_DIR/$1.$part" "$TEST_DIR/$2.$part" >&2 ||
            fail "$part of run '$2' differ from run '$1'"
    done
}

merge_and_record() {
    local name=$1; shift
    run_cmd env "$@" "$RDEXT" --root="$R" --log-level=debug merge
    expect_rc 0
    outcome "$name"
    assert_no_staging "$R"
    run_unmerge "$R"
    expect_rc 0
    snapshot_state "$R" "after-$name"
    assert_same_state before "after-$name"
}

check "merge on all CPUs: good images merged in order, broken ones skipped with their reasons"
merge_and_record parallel-1
records=$TEST_DIR/parallel-1.records
for n in good-erofs-1 good-erofs-6 good-squashfs good-ext4 good-dir ver; do
    grep -q "\"sysext\", \"$n\", \"merged\"" "$records" || fail "sysext $n not merged: $(cat "$records")"
done
for n in conf-1 conf-2; do
    grep -q "\"confext\", \"$n\", \"merged\"" "$records" || fail "confext $n not merged: $(cat "$records")"
done
for n in bad-foreign bad-corrupt bad-osrel; do
    grep -q "\"sysext\", \"$n\", \"skipped\"" "$records" || fail "sysext $n not skipped: $(cat "$records")"
done
grep -q '"confext", "conf-bad", "skipped"' "$records" || fail "confext conf-bad not skipped"
grep -q 'ver.raw.v/ver_1.raw' "$records" || fail "ver: the fitting entry ver_1 was not chosen"
# good-squashfs (run/extensions) sorts after good-erofs-6: it is the top layer
grep -q "^usr/share/rdext-test/top .* $(printf 's1\n' | sha256sum | cut -c1-16)\$" "$TEST_DIR/parallel-1.tree" ||
    fail "top layer: usr/share/rdext-test/top is not good-squashfs's"
[[ $(wc -l <"$TEST_DIR/parallel-1.warnings") -ge 4 ]] ||
    fail "expected a warning per skipped image, got: $(cat "$TEST_DIR/parallel-1.warnings")"

# 12 sysext image files (the versioned directory is one; good-dir is staged apart), 3 confexts
want_threads=$(( CPUS < 4 ? CPUS : 4 ))
check "it was staged on $want_threads thread(s)"
run_cmd env "$RDEXT" --root="$R" --log-level=debug merge
expect_rc 0
expect_stderr_line "staging [0-9]+ sysext image file\(s\) on $want_threads thread"
expect_stderr_line "staging [0-9]+ confext image file\(s\) on $(( CPUS < 3 ? CPUS : 3 )) thread"
run_unmerge "$R"
expect_rc 0

check "the same outcome, run after run"
for k in 2 3 4; do
    merge_and_record "parallel-$k"
    same_outcome parallel-1 "parallel-$k"
done

check "a merge that fails after staging on all CPUs leaves nothing behind"
# Every image is staged (side by side) before a required one is found missing.
printf 'rd.sysext.require=no-such-extension\n' >"$TEST_DIR/cmdline"
run_rdext --root="$R" --cmdline-file="$TEST_DIR/cmdline" --log-level=debug merge
expect_rc_nonzero
expect_stderr_line "staging [0-9]+ sysext image file\(s\) on $want_threads thread"
expect_stderr_line "required" "no-such-extension"
assert_no_staging "$R"
snapshot_state "$R" after-failed
assert_same_state before after-failed

check "the same outcome as on one thread"
if grep -qa "injected fault" "$RDEXT"; then
    # A fault-injection build keeps a traced run on one thread (base/fault.h).
    merge_and_record serial RDEXT_FAULT_TRACE=0
    grep -q . "$TEST_DIR/serial.records" || fail "no records from the serial run"
    run_cmd env RDEXT_FAULT_TRACE=0 "$RDEXT" --root="$R" --log-level=debug merge
    expect_stderr_line "staging [0-9]+ sysext image file\(s\) on 1 thread"
    run_unmerge "$R"
    same_outcome parallel-1 serial
else
    log "release build (no fault injection): one thread cannot be forced; parallel runs compared only"
fi

finish
