#!/bin/bash
# Every command's --json document against its schema (doc/json, JSON Schema
# draft 2020-12, "additionalProperties": false), with --json=short (one
# line) and --json=pretty (indented; a bare --json too), on a small corpus:
# merge, refresh, status, list, inspect, mark-good, count-tries and unmerge, a failing
# merge (its record carries "failure") and status after it. A renamed field
# (merged_at for time) fails validation.
source "$(dirname "$0")/lib.sh"
require_root_env
[[ -x /usr/bin/python3 ]] && /usr/bin/python3 -c 'import jsonschema' 2>/dev/null ||
    skip "/usr/bin/python3 with jsonschema (Debian: python3-jsonschema) is not installed"


# json_ok SCHEMA_FILE MODE: the last command's stdout is one document in MODE, valid
json_ok() {
    local lines
    lines=$(wc -l <"$TEST_DIR/last.out")
    case $2 in
        short) [[ $lines == 1 ]] || fail "$LAST_CMD: --json=short printed $lines lines" ;;
        pretty) (( lines > 1 )) || fail "$LAST_CMD: --json=pretty printed $lines line(s)" ;;
    esac
    json_schema_check "$1" <"$TEST_DIR/last.out" || fail "$LAST_CMD: output does not match $1: $(last_out)"
}

R=$TEST_DIR/root
B=$TEST_DIR/build
V=$R/var/lib/extensions
T=usr/share/rdext-test
make_root "$R"
make_ext_tree "$V/a" a sysext -- "$T/a=a"
make_ext_tree "$B/b" b sysext -- "$T/b=b"
make_erofs "$B/b" "$V/b.raw"
echo "not an image" >"$V/broken.raw"
make_ext_tree "$R/var/lib/confexts/c" c confext -- etc/rdext-test/c=c
mkdir -p "$V/foo.raw.v"
make_ext_tree "$B/foo1" foo sysext -- "$T/foo=1"
make_erofs "$B/foo1" "$V/foo.raw.v/foo_1.raw"
make_ext_tree "$B/foo2" foo sysext -- "$T/foo=2"
make_erofs "$B/foo2" "$B/foo_2.raw"
bind_root "$R"
# /var/lib/extensions on a mount of its own: read-only, a trial's rename waits for count-tries
mount --bind "$V" "$V"
snapshot_state "$R" before
printf 'rd.sysext.require=a,missing\n' >"$TEST_DIR/cmdline-fail"
: >"$TEST_DIR/cmdline"

for mode in short pretty; do
    check "--json=$mode: every operation's record and status match the schemas"
    rm -f "$V"/foo.raw.v/foo_2*
    cp "$B/foo_2.raw" "$V/foo.raw.v/foo_2+3-0.raw"
    mount -o remount,bind,ro "$V"
    run_rdext --root="$R" --cmdline-file="$TEST_DIR/cmdline" --json="$mode" merge
    expect_rc 0
    json_ok operation.schema.json "$mode"
    [[ $(json_query "$TEST_DIR/last.out" "[e['trial']['status'] for e in d['extensions'] if e['name'] == 'foo']") == '["pending"]' ]] ||
        fail "merge on a read-only /var/lib/extensions: the trial is not pending: $(last_out)"
    run_rdext --root="$R" --json="$mode" status
    expect_rc 0
    json_ok status.schema.json "$mode"
    mount -o remount,bind,rw "$V"
    run_rdext --root="$R" --json="$mode" count-tries
    expect_rc 0
    json_ok operation.schema.json "$mode"
    [[ $(json_query "$TEST_DIR/last.out" "(d['operation'], [e['trial']['status'] for e in d['extensions']])") == '["count-tries", ["counted"]]' ]] ||
        fail "count-tries --json does not record the counted try: $(last_out)"
    run_rdext --root="$R" --cmdline-file="$TEST_DIR/cmdline" --json="$mode" refresh
    expect_rc 0
    json_ok operation.schema.json "$mode"
    run_rdext --root="$R" --json="$mode" mark-good
    expect_rc 0
    json_ok operation.schema.json "$mode"
    [[ $(json_query "$TEST_DIR/last.out" "(d['operation'], [(e['name'], e['trial']['status']) for e in d['extensions']])") == '["mark-good", [["foo", "good"]]]' ]] ||
        fail "mark-good --json does not record what it marked good: $(last_out)"
    run_rdext --root="$R" --json="$mode" mark-good
    expect_rc 0
    json_ok operation.schema.json "$mode"
    run_rdext --root="$R" --json="$mode" list
    expect_rc 0
    json_ok list.schema.json "$mode"
    [[ $(json_query "$TEST_DIR/last.out" "sorted((e['name'], e['result'], e['merged']) for e in d['extensions'])") == '[["a", "merged", true], ["b", "merged", true], ["broken", "skipped", false], ["c", "merged", true], ["foo", "merged", true]]' ]] ||
        fail "list --json does not match the merge: $(last_out)"
    for img in "$V/b.raw" "$V/foo.raw.v" "$V/broken.raw"; do
        run_rdext --root="$R" --json="$mode" inspect "$img"
        [[ $LAST_RC == 0 || $LAST_RC == 1 ]] || fail "$LAST_CMD: exit $LAST_RC"
        json_ok inspect.schema.json "$mode"
    done
    run_rdext --root="$R" --json="$mode" unmerge
    expect_rc 0
    json_ok operation.schema.json "$mode"
    [[ $(json_query "$TEST_DIR/last.out" "(d['operation'], sorted(e['name'] for e in d['extensions']))") == '["unmerge", ["a", "b", "c", "foo"]]' ]] ||
        fail "unmerge --json does not record what it unmerged: $(last_out)"
    run_rdext --root="$R" --json="$mode" status
    expect_rc 0
    json_ok status.schema.json "$mode"
    run_rdext --root="$R" --json="$mode" count-tries
    expect_rc 0
    json_ok operation.schema.json "$mode"

    check "--json=$mode: a failing merge prints its record with the failure"
    run_rdext --root="$R" --cmdline-file="$TEST_DIR/cmdline-fail" --json="$mode" merge
    expect_rc 1
    json_ok operation.schema.json "$mode"
    [[ $(json_query "$TEST_DIR/last.out" "'missing' in d['failure']") == true ]] ||
        fail "a failing merge's record does not say why: $(last_out)"
    run_rdext --root="$R" --json="$mode" status
    expect_rc 0
    json_ok status.schema.json "$mode"
    snapshot_state "$R" "after-$mode"
    assert_same_state before "after-$mode"
done

check "a bare --json is pretty"
run_rdext --root="$R" --json status
expect_rc 0
json_ok status.schema.json pretty

check "a renamed field fails validation"
/usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d["merged_at"]=d.pop("time"); print(json.dumps(d))' \
    "$TEST_DIR/last.out" >"$TEST_DIR/renamed.json"
grep -q merged_at "$TEST_DIR/renamed.json" || fail "could not rename time to merged_at"
if json_schema_check status.schema.json <"$TEST_DIR/renamed.json" 2>"$TEST_DIR/renamed.err"; then
    fail "status.schema.json accepts merged_at for time"
fi
grep -q merged_at "$TEST_DIR/renamed.err" || fail "the rejection does not name merged_at: $(cat "$TEST_DIR/renamed.err")"
/usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d["extensions"][0]["image"]=d["extensions"][0].pop("path"); print(json.dumps(d))' \
    "$TEST_DIR/last.out" >"$TEST_DIR/renamed-ext.json"
if json_schema_check status.schema.json <"$TEST_DIR/renamed-ext.json" 2>/dev/null; then
    fail "extension.schema.json accepts image for path"
fi

finish
