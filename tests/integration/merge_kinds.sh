#!/bin/bash
# Every image kind merged together: a directory, erofs, squashfs and ext4 raw
# images, GPT disk images with a root and with a usr partition, into /usr and
# /opt, and two confexts (directory, erofs) into /etc. Checks file contents
# through the overlays, the layer order (name sorting last is on top, with
# version-aware sorting), the metadata files, status/list --json, that no
# staging is left under ROOT/run/rdext, that a second merge does not stack,
# and that unmerge restores the state from before the merge. (refresh.sh
# covers refresh.)
source "$(dirname "$0")/lib.sh"
require_root_env

R=$TEST_DIR/root
B=$TEST_DIR/build
make_root "$R" ID=debian VERSION_ID=12
T=usr/share/rdext-test

check "building images"
# a sysext's /etc content is not merged anywhere
make_ext_tree "$B/a-dir" a-dir sysext -- "$T/a-dir=a-dir" "usr/bin/a-dir=#!/bin/sh" "opt/a-dir/file=a-dir opt" \
    "etc/from-sysext.conf=wrong"
cp -a "$B/a-dir" "$R/etc/extensions/a-dir"

make_ext_tree "$B/b-erofs" b-erofs sysext -- "$T/b-erofs=b-erofs" "opt/b-erofs/file=b-erofs opt"
make_erofs "$B/b-erofs" "$R/run/extensions/b-erofs.raw"

make_ext_tree "$B/c-squashfs" c-squashfs sysext -- "$T/c-squashfs=c-squashfs"
make_squashfs "$B/c-squashfs" "$R/var/lib/extensions/c-squashfs.raw"

make_ext_tree "$B/d-ext4" d-ext4 sysext -- "$T/d-ext4=d-ext4" "opt/d-ext4/file=d-ext4 opt"
make_ext4 "$B/d-ext4" "$R/etc/extensions/d-ext4.raw"

make_ext_tree "$B/e-gptroot" e-gptroot sysext -- "$T/e-gptroot=e-gptroot" "opt/e-gptroot/file=e-gptroot opt"
make_gpt "$B/e-gptroot" "$R/var/lib/extensions/e-gptroot.raw" root erofs

# A usr partition holds the /usr tree at its top, so it has no /opt.
make_ext_tree "$B/f-gptusr" f-gptusr sysext -- "$T/f-gptusr=f-gptusr"
make_gpt "$B/f-gptusr" "$R/etc/extensions/f-gptusr.raw" usr ext4

# Layer order: layer-10 must win over layer-9 (version-aware, not strcmp),
# even though layer-9 sits in the higher-precedence search directory; both
# also cover a file of the base /usr.
make_ext_tree "$B/layer-9" layer-9 sysext -- "$T/layer=layer-9" "opt/layer=layer-9" "usr/share/base-file=layer-9"
cp -a "$B/layer-9" "$R/etc/extensions/layer-9"
make_ext_tree "$B/layer-10" layer-10 sysext -- "$T/layer=layer-10" "opt/layer=layer-10" "usr/share/base-file=layer-10"
make_erofs "$B/layer-10" "$R/var/lib/extensions/layer-10.raw"

SYSEXTS=(a-dir b-erofs c-squashfs d-ext4 e-gptroot f-gptusr layer-9 layer-10)

if is_rdext; then
    # ".sysext" infix before .raw is not part of the name
    make_ext_tree "$B/g-infix" g-infix sysext -- "$T/g-infix=g-infix"
    make_squashfs "$B/g-infix" "$R/run/extensions/g-infix.sysext.raw"
    SYSEXTS+=(g-infix)

    # a confext's /usr content is not merged anywhere
    make_ext_tree "$B/conf-a" conf-a confext ID=debian VERSION_ID=12 -- "etc/conf-a.conf=conf-a" "etc/layer.conf=conf-a" \
        "$T/from-confext=wrong"
    cp -a "$B/conf-a" "$R/run/confexts/conf-a"
    make_ext_tree "$B/conf-b" conf-b confext ID=debian VERSION_ID=12 -- "etc/conf-b.conf=conf-b" "etc/layer.conf=conf-b"
    make_erofs "$B/conf-b" "$R/var/lib/confexts/conf-b.raw"
    CONFEXTS=(conf-a conf-b)

    # a block device entry: a loop device over an erofs image, as a node
    make_ext_tree "$B/h-block" h-block sysext -- "$T/h-block=h-block"
    make_erofs "$B/h-block" "$B/h-block.raw"
    BLOCK_LOOP=$(losetup --find --show --read-only "$B/h-block.raw")
    mknod "$R/etc/extensions/h-block" b "$(( 0x$(stat -c %t "$BLOCK_LOOP") ))" "$(( 0x$(stat -c %T "$BLOCK_LOOP") ))"
    SYSEXTS+=(h-block)
    # block device entries are merged only when the kernel command line allows it
    echo 'rd.sysext.block_devices=1' >"$TEST_DIR/cmdline"
    run_rdext() { run_cmd "$RDEXT" --cmdline-file="$TEST_DIR/cmdline" "$@"; }
fi

bind_root "$R"
snapshot_state "$R" before

check "merge succeeds"
run_merge "$R"
expect_rc 0

assert_merged "$R" /usr "${SYSEXTS[@]}"
assert_merged "$R" /opt "${SYSEXTS[@]}"

check "file contents through the /usr and /opt overlays"
for n in "${SYSEXTS[@]}"; do
    [[ $n == layer-* ]] && continue
    assert_file_content "$R/$T/$n" "$n"
done
assert_file_content "$R/usr/bin/a-dir" "#!/bin/sh"
for n in a-dir b-erofs d-ext4 e-gptroot; do
    assert_file_content "$R/opt/$n/file" "$n opt"
done
assert_file_content "$R/usr/bin/base-tool" base
assert_file_content "$R/opt/base-file" base

check "layer order: layer-10 sorts after layer-9 and is on top"
assert_file_content "$R/$T/layer" layer-10
assert_file_content "$R/opt/layer" layer-10
assert_file_content "$R/usr/share/base-file" layer-10

check "release files of every extension are visible"
for n in "${SYSEXTS[@]}"; do
    [[ -f $R/usr/lib/extension-release.d/extension-release.$n ]] ||
        fail "extension-release.$n not visible in merged /usr"
done

assert_absent "$R/etc/from-sysext.conf"
assert_absent "$R/$T/from-confext"

check "merged hierarchies are read-only"
if touch "$R/usr/share/rdext-test/new" 2>/dev/null; then fail "could write into merged /usr"; fi
if touch "$R/opt/new" 2>/dev/null; then fail "could write into merged /opt"; fi

if is_rdext; then
    assert_merged "$R" /etc "${CONFEXTS[@]}"
    check "confext contents and order in /etc"
    assert_file_content "$R/etc/conf-a.conf" conf-a
    assert_file_content "$R/etc/conf-b.conf" conf-b
    assert_file_content "$R/etc/layer.conf" conf-b
    assert_file_content "$R/etc/base.conf" base
    if touch "$R/etc/new" 2>/dev/null; then fail "could write into merged /etc"; fi

    check "staging under run/rdext is gone, state.json is there"
    assert_no_staging "$R"
    [[ -s $R/run/rdext/state.json ]] || fail "$R/run/rdext/state.json missing or empty"
    json_query "$R/run/rdext/state.json" 'type(d).__name__' >/dev/null ||
        fail "state.json is not JSON"

    check "status --json describes the merge"
    run_rdext --root="$R" --json status
    expect_rc 0
    S=$TEST_DIR/status.json
    cp "$TEST_DIR/last.out" "$S"
    json_query "$S" 'd["root"]' >/dev/null || fail "status --json is not JSON with a root: $(cat "$S")"
    [[ $(json_query "$S" 'd["root"].rstrip("/")') == "$R" ]] || fail "status root is $(json_query "$S" 'd["root"]'), expected $R"
    for h in /usr /opt /etc; do
        if [[ $h == /etc ]]; then names=("${CONFEXTS[@]}"); class=confext; else names=("${SYSEXTS[@]}"); class=sysext; fi
        want=$(printf '%s\n' "${names[@]}" | sort | tr '\n' ' ')
        got=$(json_query "$S" "[(x['class'], x['merged'], ' '.join(sorted(x['extensions'])) + ' ') for x in d['hierarchies'] if x['path'] == '$h']")
        [[ $got == "$(python3 -c 'import json,sys; print(json.dumps([[sys.argv[1], True, sys.argv[2]]]))' "$class" "$want")" ]] ||
            fail "status: hierarchy $h is $got, expected class $class, merged, extensions '$want'"
    done
    for n in "${SYSEXTS[@]}" "${CONFEXTS[@]}"; do
        [[ $(json_query "$S" "[e['result'] for e in d['extensions'] if e['name'] == '$n']") == '["merged"]' ]] ||
            fail "status: extension $n is not reported merged once: $(json_query "$S" "[e for e in d['extensions'] if e['name'] == '$n']")"
    done
    [[ $(json_query "$S" "[e['kind'] for e in d['extensions'] if e['name'] == 'a-dir']") == '["directory"]' ]] ||
        fail "status: a-dir kind is not directory"
    [[ $(json_query "$S" "[e['kind'] for e in d['extensions'] if e['name'] == 'b-erofs']") == '["raw"]' ]] ||
        fail "status: b-erofs kind is not raw"
    [[ $(json_query "$S" "[e['path'] for e in d['extensions'] if e['name'] == 'b-erofs']") == '["/run/extensions/b-erofs.raw"]' ]] ||
        fail "status: b-erofs path is not /run/extensions/b-erofs.raw (root-relative)"
    [[ $(json_query "$S" "[e['class'] for e in d['extensions'] if e['name'] == 'conf-b']") == '["confext"]' ]] ||
        fail "status: conf-b class is not confext"
    [[ $(json_query "$S" "[e['kind'] for e in d['extensions'] if e['name'] == 'h-block']") == '["block"]' ]] ||
        fail "status: h-block kind is not block"

    check "status and list without --json work"
    run_rdext --root="$R" status
    expect_rc 0
    grep -q layer-10 "$TEST_DIR/last.out" || fail "plain status does not mention layer-10"
    run_rdext --root="$R" list
    expect_rc 0
    grep -q conf-b "$TEST_DIR/last.out" || fail "plain list does not mention conf-b"
    run_rdext --version
    expect_rc 0
    [[ -s $TEST_DIR/last.out ]] || fail "--version prints nothing"

    check "a second merge does not stack overlays"
    run_merge "$R"
    for h in usr opt etc; do
        n=$(awk -v m="$R/$h" '$5 == m' /proc/self/mountinfo | wc -l)
        (( n == 1 )) || fail "$n mounts on $R/$h after merging twice (second merge exit $LAST_RC)"
    done
    assert_merged "$R" /usr "${SYSEXTS[@]}"
    assert_no_staging "$R"

    check "list --json shows every image as one a merge merges, and merged now"
    run_rdext --root="$R" --json list
    expect_rc 0
    cp "$TEST_DIR/last.out" "$TEST_DIR/list.json"
    got=$(json_query "$TEST_DIR/list.json" "' '.join(sorted(e['name'] for e in d['extensions'] if e['result'] == 'merged' and e['merged']))")
    want=$(printf '%s\n' "${SYSEXTS[@]}" "${CONFEXTS[@]}" | sort | tr '\n' ' ' | sed 's/ $//')
    [[ $got == "$want" ]] || fail "list: merged images '$got', expected '$want'"
fi

check "unmerge restores the state from before the merge"
run_unmerge "$R"
expect_rc 0
assert_not_merged "$R" /usr
assert_not_merged "$R" /opt
assert_not_merged "$R" /etc
assert_file_content "$R/usr/share/base-file" base
assert_absent "$R/$T"
snapshot_state "$R" after
assert_same_state before after

if is_rdext; then
    check "status after unmerge reports nothing merged"
    run_rdext --root="$R" --json status
    expect_rc 0
    [[ $(json_query "$TEST_DIR/last.out" "[h['path'] for h in d['hierarchies'] if h['merged']]") == '[]' ]] ||
        fail "status after unmerge still reports merged hierarchies"

    check "unmerge when nothing is merged is fine"
    run_unmerge "$R"
    expect_rc 0
    losetup -d "$BLOCK_LOOP"
fi

finish
