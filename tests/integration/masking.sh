#!/bin/bash
# Masking and shadowing across the search directories:
#  - an empty directory in a higher-precedence dir masks a same-named image;
#  - a symlink to /dev/null masks (even though ROOT/dev/null does not exist);
#  - the first directory holding a name owns it: a later entry is shadowed,
#    also when the owner is then refused (incompatible release);
#  - the same for confext search directories;
#  - list --json and status --json report masked/shadowed entries; list
#    says what a merge would do (an incompatible owner is skipped, a
#    /dev/null link has kind masked), why, and what is merged now.
source "$(dirname "$0")/lib.sh"
require_root_env

R=$TEST_DIR/root
B=$TEST_DIR/build
T=usr/share/rdext-test
make_root "$R"
[[ ! -e $R/dev/null ]] || fail "test root unexpectedly has dev/null"

ext() {   # ext NAME CONTENT DEST [release lines...]
    local name=$1 content=$2 dest=$3; shift 3
    rm -rf "$B/tmp"
    make_ext_tree "$B/tmp" "$name" sysext "$@" -- "$T/$name=$content"
    case $dest in
        *.raw) make_erofs "$B/tmp" "$dest" ;;
        *) cp -a "$B/tmp" "$dest" ;;
    esac
}
confext() {   # confext NAME CONTENT DEST
    rm -rf "$B/tmp"
    make_ext_tree "$B/tmp" "$1" confext -- "etc/rdext-test/$1=$2"
    case $3 in
        *.raw) make_erofs "$B/tmp" "$3" ;;
        *) cp -a "$B/tmp" "$3" ;;
    esac
}

# always merged, so /usr is an overlay in every run
ext keep keep "$R/var/lib/extensions/keep.raw"

# masked by an empty directory in /etc/extensions
ext m-dir m-dir "$R/var/lib/extensions/m-dir.raw"
mkdir "$R/etc/extensions/m-dir"
# masked by a link to /dev/null, image in /run/extensions
ext m-null m-null "$R/run/extensions/m-null.raw"
ln -s /dev/null "$R/etc/extensions/m-null.raw"
# masking dir in /run/extensions, image (a directory) in /var/lib/extensions
ext m-run m-run "$R/var/lib/extensions/m-run"
mkdir "$R/run/extensions/m-run"
# shadowed: the /etc one wins over the /var/lib one
ext s-win etc "$R/etc/extensions/s-win"
ext s-win var "$R/var/lib/extensions/s-win.raw"
# shadowed: /run wins over /var/lib although the /run one is incompatible
ext s-bad run-bad "$R/run/extensions/s-bad" ID=fedora VERSION_ID=39
ext s-bad var-ok "$R/var/lib/extensions/s-bad.raw"
# confext: /run/confexts masks /usr/lib/confexts, /var/lib/confexts shadows /usr/local/lib/confexts
confext c-keep keep "$R/usr/lib/confexts/c-keep"
confext c-mask c-mask "$R/usr/lib/confexts/c-mask.raw"
mkdir "$R/run/confexts/c-mask"
confext c-win var "$R/var/lib/confexts/c-win"
confext c-win local "$R/usr/local/lib/confexts/c-win.raw"

bind_root "$R"
snapshot_state "$R" before

check "merge: only keep and s-win merge into /usr, c-keep and c-win into /etc"
run_rdext --root="$R" merge
expect_rc 0
assert_merged "$R" /usr keep s-win
assert_merged "$R" /etc c-keep c-win
assert_file_content "$R/$T/keep" keep
assert_file_content "$R/$T/s-win" etc
for n in m-dir m-null m-run s-bad; do assert_absent "$R/$T/$n"; done
assert_file_content "$R/etc/rdext-test/c-win" var
assert_absent "$R/etc/rdext-test/c-mask"
assert_no_staging "$R"

check "list --json: masked and shadowed entries, what a merge would do, what is merged"
run_rdext --root="$R" --json list
expect_rc 0
L=$TEST_DIR/list.json
cp "$TEST_DIR/last.out" "$L"
# expect_state PATH RESULT KIND MERGED: the entry with this (root-relative) path
expect_state() {
    local got
    got=$(json_query "$L" "[[e['result'], e['kind'], e['merged']] for e in d['extensions'] if e['path'] == '$1']")
    [[ $got == "[[\"$2\", \"$3\", $4]]" ]] ||
        fail "list: $1 is $got, expected [$2, $3, $4] (entries: $(json_query "$L" "[(e['path'], e['result'], e['kind']) for e in d['extensions']]"))"
}
expect_state /etc/extensions/m-dir masked directory false
expect_state /var/lib/extensions/m-dir.raw shadowed raw false
# a link to /dev/null is no directory: kind masked
expect_state /etc/extensions/m-null.raw masked masked false
expect_state /run/extensions/m-null.raw shadowed raw false
expect_state /run/extensions/m-run masked directory false
expect_state /var/lib/extensions/m-run shadowed directory false
expect_state /etc/extensions/s-win merged directory true
expect_state /var/lib/extensions/s-win.raw shadowed raw false
# the owner of s-bad does not fit the OS: a merge skips it
expect_state /run/extensions/s-bad skipped directory false
expect_state /var/lib/extensions/s-bad.raw shadowed raw false
expect_state /run/confexts/c-mask masked directory false
expect_state /usr/lib/confexts/c-mask.raw shadowed raw false
expect_state /var/lib/confexts/c-win merged directory true
expect_state /usr/local/lib/confexts/c-win.raw shadowed raw false
expect_state /var/lib/extensions/keep.raw merged raw true
[[ $(json_query "$L" "[e['reason'] for e in d['extensions'] if e['path'] == '/run/extensions/s-bad']") == *"ID=fedora does not match"* ]] ||
    fail "list: s-bad's reason does not say why: $(json_query "$L" "[e['reason'] for e in d['extensions'] if e['name'] == 's-bad']")"

check "list's text: each entry not merged says why"
run_rdext --root="$R" list
expect_rc 0
grep -qE '^m-null +sysext +masked +masked +no +/etc/extensions/m-null.raw$' "$TEST_DIR/last.out" || fail "list: m-null: $(last_out)"
grep -A1 -E '^m-null .*/etc/extensions/m-null.raw$' "$TEST_DIR/last.out" | grep -qE '^ +reason: masked by a link to /dev/null$' ||
    fail "list: no reason under m-null: $(last_out)"
grep -A1 -E '^s-win .*/var/lib/extensions/s-win.raw$' "$TEST_DIR/last.out" | grep -qE '^ +reason: shadowed by /etc/extensions/s-win$' ||
    fail "list: no reason under the shadowed s-win: $(last_out)"
grep -qE '^keep +sysext +raw +merged +yes +/var/lib/extensions/keep.raw$' "$TEST_DIR/last.out" || fail "list: keep: $(last_out)"

check "status --json: results per name"
run_rdext --root="$R" --json status
expect_rc 0
S=$TEST_DIR/status.json
cp "$TEST_DIR/last.out" "$S"
result_of() { json_query "$S" "sorted(set(e['result'] for e in d['extensions'] if e['name'] == '$1' and e['path'] == '$2'))"; }
[[ $(result_of m-dir /etc/extensions/m-dir) == '["masked"]' ]] || fail "status: m-dir is $(result_of m-dir /etc/extensions/m-dir), expected masked"
[[ $(result_of m-null /etc/extensions/m-null.raw) == '["masked"]' ]] || fail "status: m-null is $(result_of m-null /etc/extensions/m-null.raw), expected masked"
[[ $(result_of s-win /etc/extensions/s-win) == '["merged"]' ]] || fail "status: s-win (etc) is $(result_of s-win /etc/extensions/s-win), expected merged"
[[ $(result_of s-win /var/lib/extensions/s-win.raw) =~ ^(\[\"shadowed\"\]|\[\])$ ]] || fail "status: shadowed s-win (var) is $(result_of s-win /var/lib/extensions/s-win.raw)"
[[ $(result_of s-bad /run/extensions/s-bad) == '["skipped"]' ]] || fail "status: s-bad (run, incompatible) is $(result_of s-bad /run/extensions/s-bad), expected skipped"
reason=$(json_query "$S" "[e.get('reason', '') for e in d['extensions'] if e['name'] == 's-bad' and e['result'] == 'skipped']")
[[ $reason != '[""]' && $reason != '[]' ]] || fail "status: skipped s-bad carries no reason"

check "unmerge restores the state"
run_rdext --root="$R" unmerge
expect_rc 0
snapshot_state "$R" after
assert_same_state before after

if command -v systemd-sysext >/dev/null; then
    check "for comparison: what systemd-sysext 252 merges from the same root (notes only)"
    mount --make-rshared "$R"
    run_cmd systemd-sysext --root="$R" merge
    got=$(merged_names "$R" /usr | tr '\n' ' ')
    log "note: systemd-sysext 252 merged: $got(rdext: keep s-win)"
    [[ $got == "keep s-win " ]] ||
        log "note: systemd-sysext 252 differs here: it resolves the /dev/null link inside --root, finds nothing, and so does not mask m-null"
    unmount_all_under "$R/usr"; unmount_all_under "$R/opt"
fi

[[ -z ${DUMP:-} ]] || { cat "$S"; cat "$L"; }
log "PASS"
