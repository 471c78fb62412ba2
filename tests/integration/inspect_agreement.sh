#!/bin/bash
# `inspect` and `list` say what a merge does (issue 20): on one root, every
# image is inspected and listed, the root merged with the same settings, and
# the verdicts must agree, image by image (inspect accepts ⇔ merged, list's
# result ⇔ the merge's record). The corpus:
#   plain.raw and dirext/        plain images that fit: merged
#   foo.raw.v/foo_{11,12,13}.raw the newest (13) does not fit the OS (12):
#                                foo_12 is merged, and inspect of foo.raw.v
#                                reports version 12
#   guarded.raw.v/guarded_1.raw  a trusted policy.conf pattern "guarded"
#                                (signed only) refuses it: the name is
#                                "guarded", not "guarded_1"
#   pin.raw.v/pin_{1,2}.raw     both fit: 2 is merged, 1 with rd.sysext.pin=pin=1
#   incompat.raw                 VERSION_ID=13: refused, not "available"
#   null.raw -> /dev/null        masks /var/lib/extensions/null.raw: kind masked
# Run twice: with the default policy, and with --image-policy= asking for
# signatures (refusing what the trusted file's "plain *" and "foo *" do not
# allow). list's text shows the reason of each entry not merged, and
# whether it is merged now; list and inspect JSON validate against
# doc/json/{list,inspect}.schema.json.
source "$(dirname "$0")/lib.sh"
require_root_env
/usr/bin/python3 -c 'import jsonschema' 2>/dev/null || skip "python3-jsonschema missing"

R=$TEST_DIR/root
B=$TEST_DIR/build
T=usr/share/rdext-test
V=$R/var/lib/extensions
CMDLINE=$TEST_DIR/cmdline
: >"$CMDLINE"
signed_only='root=signed+absent:usr=signed+absent'
make_root "$R"

sysext_raw() {  # sysext_raw NAME DEST VERSION_ID
    rm -rf "$B/tmp"
    make_ext_tree "$B/tmp" "$1" sysext ID=debian "VERSION_ID=$3" -- "$T/$1=$3"
    make_erofs "$B/tmp" "$2"
}
sysext_raw plain "$V/plain.raw" 12
make_ext_tree "$R/etc/extensions/dirext" dirext sysext -- "$T/dirext=dir"
mkdir -p "$V/foo.raw.v" "$V/guarded.raw.v"
for v in 11 12 13; do sysext_raw foo "$V/foo.raw.v/foo_$v.raw" "$v"; done
sysext_raw guarded "$V/guarded.raw.v/guarded_1.raw" 12
mkdir -p "$V/pin.raw.v"
for v in 1 2; do sysext_raw pin "$V/pin.raw.v/pin_$v.raw" 12; done
sysext_raw incompat "$V/incompat.raw" 13
sysext_raw null "$V/null.raw" 12
ln -s /dev/null "$R/etc/extensions/null.raw"
make_ext_tree "$B/conf" conf confext -- etc/rdext-test/conf=conf
make_erofs "$B/conf" "$R/var/lib/confexts/conf.raw"

# Images inspected one by one, as an image builder would: every entry.
IMAGES=("$V/plain.raw" "$R/etc/extensions/dirext" "$V/foo.raw.v" "$V/foo.raw.v/foo_11.raw"
        "$V/foo.raw.v/foo_12.raw" "$V/foo.raw.v/foo_13.raw" "$V/guarded.raw.v"
        "$V/guarded.raw.v/guarded_1.raw" "$V/pin.raw.v" "$V/incompat.raw" "$R/var/lib/confexts/conf.raw")

# The trusted policy.conf of the running system, on an overlay of /etc in
# this test's mount namespace (as policy.sh).
mkdir -p "$TEST_DIR/etc-upper" "$TEST_DIR/etc-work"
mount -t overlay rdext-test-etc -o "lowerdir=/etc,upperdir=$TEST_DIR/etc-upper,workdir=$TEST_DIR/etc-work" /etc
mkdir -p /etc/rdext
printf 'guarded %s\nplain *\nfoo *\n' "$signed_only" >/etc/rdext/policy.conf
bind_root "$R"
snapshot_state "$R" before

validate() {  # validate SCHEMA FILE
    json_schema_check "$1.schema.json" <"$2" || defer_fail "$2 does not validate against $1.schema.json"
}

# The merge's verdict for an image path: "merged" when the record of the
# merge has it (or, for a versioned directory, its chosen entry) merged.
merged_paths() {
    json_query "$TEST_DIR/status.json" \
        "' '.join(sorted(e['path'] for e in d['extensions'] if e['result'] == 'merged'))"
}

# agree ARGS...: inspect, list, merge with ARGS; compare.
agree() {
    local img verdict path merged n=0 want got
    check "list before the merge ($*): results, kinds, reasons; valid JSON"
    run_rdext --root="$R" --cmdline-file="$CMDLINE" "$@" --json list
    expect_rc 0
    cp "$TEST_DIR/last.out" "$TEST_DIR/list.json"
    validate list "$TEST_DIR/list.json"
    run_rdext --root="$R" --cmdline-file="$CMDLINE" "$@" list
    expect_rc 0
    cp "$TEST_DIR/last.out" "$TEST_DIR/list.txt"

    check "inspect every image ($*)"
    declare -gA VERDICT=() INSPECTED=()
    for img in "${IMAGES[@]}"; do
        n=$((n + 1))
        run_rdext --root="$R" --cmdline-file="$CMDLINE" "$@" --json inspect "$img"
        [[ $LAST_RC == 0 || $LAST_RC == 1 ]] || { defer_fail "inspect $img: exit $LAST_RC"; continue; }
        cp "$TEST_DIR/last.out" "$TEST_DIR/inspect-$n.json"
        validate inspect "$TEST_DIR/inspect-$n.json"
        VERDICT[$img]=$(json_query "$TEST_DIR/inspect-$n.json" 'd["verdict"]')
        INSPECTED[$img]=$(json_query "$TEST_DIR/inspect-$n.json" 'd.get("path")')
        [[ ${VERDICT[$img]} == accept && $LAST_RC == 0 || ${VERDICT[$img]} == refuse && $LAST_RC == 1 ]] ||
            defer_fail "inspect $img: verdict ${VERDICT[$img]} but exit $LAST_RC"
    done

    check "merge ($*)"
    run_rdext --root="$R" --cmdline-file="$CMDLINE" "$@" merge
    expect_rc 0
    run_rdext --root="$R" --json status
    expect_rc 0
    cp "$TEST_DIR/last.out" "$TEST_DIR/status.json"
    merged=" $(merged_paths) "
    log "merged: $merged"

    check "inspect's verdict is the merge's, image by image ($*)"
    for img in "${IMAGES[@]}"; do
        path=/${img#"$R"/}
        # A versioned directory: the entry inspect says a merge picks.
        [[ $img != *.v ]] || path=/${INSPECTED[$img]#"$R"/}
        want=refuse
        [[ $merged == *" $path "* ]] && want=accept
        [[ ${VERDICT[$img]:-} == "$want" ]] ||
            defer_fail "inspect ${img#"$R"} says '${VERDICT[$img]:-}', the merge $([[ $want == accept ]] && echo merged || echo did not merge) $path"
    done

    check "list before the merge predicted the merge's record, name by name ($*)"
    want=$(json_query "$TEST_DIR/status.json" "sorted([e['name'], e['class'], e['path'], e['result']] for e in d['extensions'])")
    got=$(json_query "$TEST_DIR/list.json" "sorted([e['name'], e['class'], e['path'], e['result']] for e in d['extensions'])")
    [[ $got == "$want" ]] || defer_fail "list predicted $got, the merge recorded $want"

    check "list after the merge: merged flags ($*)"
    run_rdext --root="$R" --cmdline-file="$CMDLINE" "$@" --json list
    expect_rc 0
    cp "$TEST_DIR/last.out" "$TEST_DIR/list-after.json"
    validate list "$TEST_DIR/list-after.json"
    got=$(json_query "$TEST_DIR/list-after.json" "' '.join(sorted(e['path'] for e in d['extensions'] if e['merged']))")
    [[ " $got " == "$merged" ]] || defer_fail "list after the merge: merged '$got', the merge merged '$merged'"
    run_rdext --root="$R" --cmdline-file="$CMDLINE" "$@" list
    cp "$TEST_DIR/last.out" "$TEST_DIR/list-after.txt"

    run_rdext --root="$R" unmerge
    expect_rc 0
    snapshot_state "$R" after
    assert_same_state before after
}

agree
check "default policy: the expected verdicts"
[[ ${VERDICT[$V/foo.raw.v]} == accept ]] || defer_fail "inspect foo.raw.v: ${VERDICT[$V/foo.raw.v]}"
[[ ${INSPECTED[$V/foo.raw.v]} == "$V/foo.raw.v/foo_12.raw" ]] ||
    defer_fail "inspect foo.raw.v reports ${INSPECTED[$V/foo.raw.v]}, a merge picks foo_12.raw"
[[ $(json_query "$TEST_DIR/inspect-3.json" 'd.get("version")') == 12 ]] ||
    defer_fail "inspect foo.raw.v: version $(json_query "$TEST_DIR/inspect-3.json" 'd.get("version")'), expected 12"
[[ ${VERDICT[$V/guarded.raw.v/guarded_1.raw]} == refuse ]] ||
    defer_fail "inspect guarded.raw.v/guarded_1.raw: ${VERDICT[$V/guarded.raw.v/guarded_1.raw]}, the trusted pattern 'guarded' refuses it"
[[ $(json_query "$TEST_DIR/inspect-8.json" 'd.get("name")') == guarded ]] ||
    defer_fail "inspect guarded.raw.v/guarded_1.raw names it $(json_query "$TEST_DIR/inspect-8.json" 'd.get("name")')"
L=$TEST_DIR/list.json
entry() { json_query "$L" "[e.get('$2') for e in d['extensions'] if e['path'] == '$1']"; }
[[ $(entry /var/lib/extensions/foo.raw.v/foo_12.raw result) == '["merged"]' ]] ||
    defer_fail "list: foo shows $(json_query "$L" "[(e['path'], e['result']) for e in d['extensions'] if e['name'] == 'foo']"), a merge picks foo_12.raw"
[[ $(entry /var/lib/extensions/incompat.raw result) == '["skipped"]' ]] ||
    defer_fail "list: incompat.raw is $(entry /var/lib/extensions/incompat.raw result), it does not fit the OS"
[[ $(entry /var/lib/extensions/incompat.raw reason) == *VERSION_ID* ]] ||
    defer_fail "list: incompat.raw's reason does not say why: $(entry /var/lib/extensions/incompat.raw reason)"
[[ $(entry /etc/extensions/null.raw kind) == '["masked"]' ]] ||
    defer_fail "list: null.raw (link to /dev/null) has kind $(entry /etc/extensions/null.raw kind), expected masked"
[[ $(entry /etc/extensions/null.raw result) == '["masked"]' ]] || defer_fail "list: null.raw is not masked"

check "list's text: a RESULT and MERGED column, the reason under each entry not merged"
grep -qE '^NAME +CLASS +KIND +RESULT +MERGED +PATH$' "$TEST_DIR/list.txt" || defer_fail "list: header: $(head -1 "$TEST_DIR/list.txt")"
grep -qE '^foo +sysext +raw +merged +no +/var/lib/extensions/foo.raw.v/foo_12.raw$' "$TEST_DIR/list.txt" ||
    defer_fail "list: no line for foo_12: $(cat "$TEST_DIR/list.txt")"
grep -qE '^incompat +sysext +raw +skipped +no +/var/lib/extensions/incompat.raw$' "$TEST_DIR/list.txt" ||
    defer_fail "list: no skipped line for incompat: $(cat "$TEST_DIR/list.txt")"
grep -A1 -E '^incompat ' "$TEST_DIR/list.txt" | grep -qE '^ +reason: .*VERSION_ID' ||
    defer_fail "list: no reason line under incompat: $(cat "$TEST_DIR/list.txt")"
grep -A1 -E '^guarded ' "$TEST_DIR/list.txt" | grep -qE '^ +reason: .*image policy' ||
    defer_fail "list: no policy reason under guarded: $(cat "$TEST_DIR/list.txt")"
grep -qE '^null +sysext +masked +masked +no +/etc/extensions/null.raw$' "$TEST_DIR/list.txt" ||
    defer_fail "list: null.raw not shown as masked: $(cat "$TEST_DIR/list.txt")"
grep -qE '^foo +sysext +raw +merged +yes ' "$TEST_DIR/list-after.txt" ||
    defer_fail "list after the merge: foo not shown merged: $(cat "$TEST_DIR/list-after.txt")"

check "inspect foo.raw.v's text names the version and each entry's verdict"
run_rdext --root="$R" --cmdline-file="$CMDLINE" inspect "$V/foo.raw.v"
expect_rc 0
grep -qE '^version: +12$' "$TEST_DIR/last.out" || defer_fail "inspect foo.raw.v: no version line: $(last_out)"
grep -qE '^candidate: +.*foo_13.raw.*passed over.*VERSION_ID' "$TEST_DIR/last.out" ||
    defer_fail "inspect foo.raw.v: foo_13 not passed over with its reason: $(last_out)"

agree --image-policy="$signed_only"
check "--image-policy asking for signatures: the trusted patterns still decide plain and foo"
[[ ${VERDICT[$V/plain.raw]} == accept && ${VERDICT[$V/foo.raw.v/foo_12.raw]} == accept ]] ||
    defer_fail "inspect under --image-policy: plain ${VERDICT[$V/plain.raw]}, foo_12 ${VERDICT[$V/foo.raw.v/foo_12.raw]} (the trusted 'plain *' and 'foo *' apply)"
[[ ${VERDICT[$R/etc/extensions/dirext]} == refuse ]] || defer_fail "inspect dirext under --image-policy: ${VERDICT[$R/etc/extensions/dirext]}"

check "a pin on the kernel command line (--cmdline-file): inspect and list pick it as a merge does"
printf 'rd.sysext.pin=pin=1\n' >"$CMDLINE"
agree
[[ ${INSPECTED[$V/pin.raw.v]} == "$V/pin.raw.v/pin_1.raw" ]] ||
    defer_fail "inspect pin.raw.v with rd.sysext.pin=pin=1 reports ${INSPECTED[$V/pin.raw.v]}"
: >"$CMDLINE"

[[ -z $(loops_under "$TEST_DIR") ]] || fail "loop devices left: $(loops_under "$TEST_DIR")"
umount /etc
finish
