#!/bin/bash
# Broken images and odd trees. Every case gets a fresh root with two good
# extensions (a directory and an erofs image) plus the bad thing, then:
#   skip          merge exits 0, the good ones (and nothing else) merge, exactly
#                 one stderr line names the bad image and gives a reason
#                 matching the case's pattern, status --json reports it as
#                 skipped with a reason; unmerge restores the snapshot;
#   skip-or-fail  as skip, or the merge fails (exit 1) with a message naming
#                 the culprit and leaves the state exactly as before;
#   merged        the odd-but-valid image merges along with the good ones;
#   skip-or-merged  either of those.
# Plus: a missing or non-directory root, usage errors.
# hostile.sh continues this catalogue with deliberately hostile inputs
# (magic links, FIFOs and devices, setuid, lying and corrupt images, GPT
# tricks, 1,000 extensions, swap races).
#
# CASES=name1,name2 runs only those cases.
source "$(dirname "$0")/lib.sh"
require_root_env

B=$TEST_DIR/build
T=usr/share/rdext-test
GOOD=(good-dir good-raw)

make_ext_tree "$B/good-dir" good-dir sysext -- "$T/good-dir=good-dir"
make_ext_tree "$B/good-raw" good-raw sysext -- "$T/good-raw=good-raw"
make_erofs "$B/good-raw" "$B/good-raw.raw"

# new_root CASE: $R is a fresh root with the good extensions
new_root() {
    R=$TEST_DIR/cases/$1/root
    make_root "$R"
    cp -a "$B/good-dir" "$R/etc/extensions/good-dir"
    cp "$B/good-raw.raw" "$R/var/lib/extensions/good-raw.raw"
}

# ext_tree DIR NAME [release lines...]: a valid sysext tree shipping $T/NAME
ext_tree() {
    local dir=$1 name=$2; shift 2
    rm -rf "$dir"
    make_ext_tree "$dir" "$name" sysext "$@" -- "$T/$name=$name"
}

selected() {
    [[ -z ${CASES:-} ]] && return 0
    [[ ,$CASES, == *",$1,"* ]]
}

# count_lines_naming ERE: stderr lines of the last command matching ERE
count_lines_naming() {
    grep -ciE -- "$1" "$TEST_DIR/last.err" || true
}

# expect_no_repeated_path: no stderr line of the last command names one path
# twice (a message built from an error that already named it)
expect_no_repeated_path() {
    local line dup
    while IFS= read -r line; do
        dup=$(grep -oE '/[^ :()]+' <<<"$line" | sort | uniq -d | head -1)
        [[ -z $dup ]] || fail "$LAST_CMD: '$dup' twice in: $line"
    done <"$TEST_DIR/last.err"
}
# expect_stderr_exactly LINE...: stderr is exactly these lines
expect_stderr_exactly() {
    local want
    want=$(printf '%s\n' "$@")
    [[ $(last_err) == "$want" ]] || fail "$LAST_CMD: stderr is:
$(last_err)
expected:
$want"
}

# verify MODE CASE NAME-ERE REASON-ERE [extra merged names...]
verify() {
    local mode=$1 case=$2 name_re=$3 reason_re=$4; shift 4
    local extra=("$@")
    bind_root "$R"
    snapshot_state "$R" "$case.before"
    run_rdext --root="$R" merge
    expect_no_repeated_path
    if [[ $mode == skip-or-fail && $LAST_RC != 0 ]]; then
        check "$case: merge failed (exit $LAST_RC) with a message naming it, state unchanged"
        expect_rc 1
        expect_stderr_line "$name_re"
        snapshot_state "$R" "$case.failed"
        assert_same_state "$case.before" "$case.failed"
        unmount_all_under "$R"
        return 0
    fi
    if [[ $mode == skip-or-merged ]]; then
        # extra names the bad image: merged is fine, skipped needs a message
        if grep -qxF -- "${extra[0]}" "$R/usr/.systemd-sysext/extensions" 2>/dev/null; then
            mode=merged
            log "note: $case: ${extra[0]} was accepted"
        else
            mode=skip
            extra=()
        fi
    fi
    check "$case: merge exits 0 and merges exactly: ${GOOD[*]} ${extra[*]}"
    expect_rc 0
    assert_merged "$R" /usr "${GOOD[@]}" "${extra[@]}"
    assert_file_content "$R/$T/good-dir" good-dir
    assert_file_content "$R/$T/good-raw" good-raw
    assert_no_staging "$R"
    if [[ $mode != merged ]]; then
        check "$case: one stderr line names the image and the reason"
        local n
        n=$(count_lines_naming "$name_re")
        [[ $n == 1 ]] || fail "$n stderr lines match '$name_re', expected exactly one"
        expect_stderr_line "$name_re" "$reason_re"
    fi
    if [[ $mode == skip ]]; then
        run_rdext --root="$R" --json status
        expect_rc 0
        local res
        res=$(json_query "$TEST_DIR/last.out" "[(e['result'], bool(e.get('reason'))) for e in d['extensions'] if not e['name'].startswith('good-')]")
        [[ $res == '[["skipped", true]]' ]] ||
            fail "status --json: expected the bad image as [skipped, with a reason], got $res"
    fi
    check "$case: unmerge restores the state"
    run_rdext --root="$R" unmerge
    expect_rc 0
    snapshot_state "$R" "$case.after"
    assert_same_state "$case.before" "$case.after"
    unmount_all_under "$R"
}

FS_REASON='file ?system|unknown|unrecogni|signature|probe|detect|format|superblock|not a|invalid|unsupported|mount|image'

# --- images that are not usable file systems -------------------------------

if selected garbage; then
    new_root garbage
    head -c 1048576 /dev/urandom >"$R/etc/extensions/garbage.raw"
    verify skip garbage 'garbage' "$FS_REASON"
fi

if selected zero-length; then
    new_root zero-length
    : >"$R/etc/extensions/zero.raw"
    verify skip zero-length 'zero\.raw|/zero|zero:' "empty|zero|size|small|$FS_REASON"
fi

if selected zeros; then
    new_root zeros
    truncate -s 4M "$R/run/extensions/zeros.raw"
    verify skip zeros 'zeros' "$FS_REASON"
fi

if selected swap; then
    new_root swap
    truncate -s 1M "$R/etc/extensions/swapimg.raw"
    mkswap -q "$R/etc/extensions/swapimg.raw" >/dev/null 2>&1 || mkswap "$R/etc/extensions/swapimg.raw" >/dev/null 2>&1
    verify skip swap 'swapimg' "swap|not allowed|$FS_REASON"
fi

if selected luks; then
    new_root luks
    # a LUKS1 header (blkid: crypto_LUKS) with no key material behind it
    python3 - "$R/etc/extensions/luks.raw" <<'EOF'
import struct, sys
h = bytearray(2 * 1024 * 1024)
h[0:6] = b'LUKS\xba\xbe'; h[6:8] = struct.pack('>H', 1)
h[8:11] = b'aes'; h[40:51] = b'xts-plain64'; h[72:78] = b'sha256'
h[104:108] = struct.pack('>I', 4096); h[108:112] = struct.pack('>I', 64)
h[168:204] = b'00000000-0000-4000-8000-000000000001'
open(sys.argv[1], 'wb').write(h)
EOF
    verify skip luks 'luks' "luks|crypt|encrypt|key|policy|not allowed|$FS_REASON"
fi

if selected truncated; then
    new_root truncated
    ext_tree "$B/trunc" trunc
    head -c 300000 /dev/urandom >"$B/trunc/usr/share/filler"
    make_squashfs "$B/trunc" "$B/trunc.raw"
    head -c $(( $(stat -c %s "$B/trunc.raw") / 2 )) "$B/trunc.raw" >"$R/etc/extensions/trunc.raw"
    verify skip truncated 'trunc' "$FS_REASON|short|truncat|size|read|release"
fi

if selected gpt-no-root; then
    new_root gpt-no-root
    ext_tree "$B/gptdata" gptdata
    make_gpt "$B/gptdata" "$R/etc/extensions/gptdata.raw" root erofs
    # retype the partition as generic Linux data: nothing to mount for a sysext
    sfdisk -q --part-type "$R/etc/extensions/gptdata.raw" 1 0fc63daf-8483-4772-8e3d-3d69d8477de4
    verify skip gpt-no-root 'gptdata' "partition|root|usr|DDI|GPT|nothing|no .*found|$FS_REASON"
fi

# --- release files ----------------------------------------------------------

if selected no-release; then
    new_root no-release
    ext_tree "$R/etc/extensions/norel" norel @none
    verify skip no-release 'norel' 'release'
fi

if selected incompatible; then
    new_root incompatible
    ext_tree "$B/incompat" incompat ID=fedora VERSION_ID=39
    make_erofs "$B/incompat" "$R/run/extensions/incompat.raw"
    verify skip incompatible 'incompat' 'fedora|ID|match|compatib'
fi

if selected malformed-release; then
    new_root malformed-release
    ext_tree "$R/etc/extensions/malformed" malformed 'ID debian' 'VERSION_ID 12' '=' '"unterminated'
    verify skip malformed-release 'malformed' 'release|ID|parse|malformed|invalid|syntax'
fi

if selected binary-release; then
    new_root binary-release
    ext_tree "$R/etc/extensions/binrel" binrel
    head -c 4096 /dev/urandom >"$R/etc/extensions/binrel/usr/lib/extension-release.d/extension-release.binrel"
    verify skip binary-release 'binrel' 'release|binary|NUL|zero byte|parse|invalid|control|ID|utf'
fi

if selected binary-release-with-id; then
    # valid keys, but a NUL byte in the middle
    new_root binary-release-with-id
    ext_tree "$R/etc/extensions/nulrel" nulrel
    printf 'ID=debian\nVERSION_ID=12\nFOO=a\0b\n' >"$R/etc/extensions/nulrel/usr/lib/extension-release.d/extension-release.nulrel"
    verify skip-or-merged binary-release-with-id 'nulrel' 'release|binary|NUL|zero byte|parse|invalid|control' nulrel
fi

if selected huge-release; then
    # 10 MB: either parsed (it is valid) or refused as too large, never a hang
    # or a failed merge
    new_root huge-release
    ext_tree "$B/huge" huge
    python3 - "$B/huge/usr/lib/extension-release.d/extension-release.huge" <<'EOF'
import sys
with open(sys.argv[1], "w") as f:
    f.write("ID=debian\nVERSION_ID=12\n")
    line = "# " + "x" * 98 + "\n"
    for _ in range(100000):
        f.write(line)
EOF
    make_erofs "$B/huge" "$R/etc/extensions/huge.raw"
    bind_root "$R"
    snapshot_state "$R" huge.before
    check "huge-release: merge exits 0 within the time limit, good ones merged"
    run_cmd timeout 60 "$RDEXT" --root="$R" merge
    expect_rc 0
    if grep -qx huge "$R/usr/.systemd-sysext/extensions" 2>/dev/null; then
        assert_merged "$R" /usr "${GOOD[@]}" huge
        log "note: the 10 MB release file was accepted"
    else
        assert_merged "$R" /usr "${GOOD[@]}"
        expect_stderr_line 'huge' 'release|large|size|big|limit|long'
        log "note: the 10 MB release file was refused: $(grep -i huge "$TEST_DIR/last.err")"
    fi
    run_rdext --root="$R" unmerge
    expect_rc 0
    snapshot_state "$R" huge.after
    assert_same_state huge.before huge.after
    unmount_all_under "$R"
fi

if selected ships-os-release; then
    new_root ships-os-release
    ext_tree "$B/osrel" osrel
    printf 'ID=debian\nVERSION_ID=12\n' >"$B/osrel/usr/lib/os-release"
    make_squashfs "$B/osrel" "$R/var/lib/extensions/osrel.raw"
    verify skip ships-os-release 'osrel' 'os-release'
fi

# --- names --------------------------------------------------------------------

if selected name-space; then
    new_root name-space
    ext_tree "$R/etc/extensions/sp ace" "sp ace"
    verify merged name-space 'sp ace' '' "sp ace"
fi

if selected name-leading-dot; then
    new_root name-leading-dot
    ext_tree "$B/dot" .dotted
    make_erofs "$B/dot" "$R/etc/extensions/.dotted.raw"
    verify merged name-leading-dot '\.dotted' '' .dotted
fi

if selected name-colon-comma; then
    # overlay option separators: must merge (or be refused cleanly), never
    # break the overlay for the others
    new_root name-colon-comma
    ext_tree "$R/etc/extensions/co:lon" "co:lon"
    ext_tree "$B/comma" "com,ma"
    make_erofs "$B/comma" "$R/var/lib/extensions/com,ma.raw"
    bind_root "$R"
    snapshot_state "$R" colon.before
    check "name-colon-comma: merge exits 0, good ones merged, odd ones merged or reported"
    run_rdext --root="$R" merge
    expect_rc 0
    names=("${GOOD[@]}")
    for n in co:lon com,ma; do
        if grep -qxF "$n" "$R/usr/.systemd-sysext/extensions" 2>/dev/null; then
            names+=("$n")
        else
            expect_stderr_line "$n"
        fi
    done
    assert_merged "$R" /usr "${names[@]}"
    for n in "${names[@]}"; do assert_file_content "$R/$T/$n" "$n"; done
    run_rdext --root="$R" unmerge
    expect_rc 0
    snapshot_state "$R" colon.after
    assert_same_state colon.before colon.after
    unmount_all_under "$R"
fi

if selected name-newline; then
    # a newline cannot go into the newline-separated metadata: skipped, and the
    # log line must stay one line (a raw newline would let a name forge log
    # records)
    new_root name-newline
    ext_tree "$R/etc/extensions/new"$'\n'"line" "new"$'\n'"line"
    verify skip name-newline 'new' 'name|valid|character'
fi

if selected name-unicode; then
    new_root name-unicode
    ext_tree "$R/etc/extensions/ünï-ext" "ünï-ext"
    verify merged name-unicode 'ünï' '' "ünï-ext"
fi

# --- links ----------------------------------------------------------------------

if selected symlink-loop; then
    new_root symlink-loop
    ln -s loop-b.raw "$R/etc/extensions/loop-a.raw"
    ln -s loop-a.raw "$R/etc/extensions/loop-b.raw"
    ln -s self.raw "$R/var/lib/extensions/self.raw"
    bind_root "$R"
    snapshot_state "$R" loop.before
    check "symlink-loop: merge exits 0, good ones merged, each looping link reported"
    run_rdext --root="$R" merge
    expect_rc 0
    assert_merged "$R" /usr "${GOOD[@]}"
    for n in loop-a loop-b self; do expect_stderr_line "$n" 'loop|symbolic|symlink|links|resolve'; done
    run_rdext --root="$R" unmerge
    snapshot_state "$R" loop.after
    assert_same_state loop.before loop.after
    unmount_all_under "$R"
fi

if selected symlink-outside; then
    # Links must resolve inside the root. $TEST_DIR/outside holds a valid
    # extension on the host; ROOT$TEST_DIR/outside does not exist.
    new_root symlink-outside
    OUT=$TEST_DIR/outside
    ext_tree "$OUT/escape-abs" escape-abs
    ext_tree "$OUT/escape-rel" escape-rel
    ln -s "$OUT/escape-abs" "$R/etc/extensions/escape-abs"
    ups=$(printf '../%.0s' {1..40})
    ln -s "$ups${OUT#/}/escape-rel" "$R/etc/extensions/escape-rel"
    [[ -d $R/etc/extensions/escape-abs/usr && -d $R/etc/extensions/escape-rel/usr ]] ||
        fail "test setup: the links do not reach the outside extensions from the host's view"
    # ...and one that resolves inside the root, named after the link
    ext_tree "$R/store/linked-1.0" linked
    ln -s /store/linked-1.0 "$R/run/extensions/linked"
    bind_root "$R"
    snapshot_state "$R" outside.before
    check "symlink-outside: links are resolved inside the root"
    run_rdext --root="$R" merge
    expect_rc 0
    assert_merged "$R" /usr "${GOOD[@]}" linked
    assert_file_content "$R/$T/linked" linked
    assert_absent "$R/$T/escape-abs"
    assert_absent "$R/$T/escape-rel"
    expect_stderr_line 'escape-abs'
    expect_stderr_line 'escape-rel'
    run_rdext --root="$R" --json list
    [[ $(json_query "$TEST_DIR/last.out" "[e['path'] for e in d['extensions'] if e['name'] == 'linked']") == '["/run/extensions/linked"]' ]] ||
        fail "list: the linked image should be listed under its link path /run/extensions/linked: $(last_out)"
    run_rdext --root="$R" unmerge
    snapshot_state "$R" outside.after
    assert_same_state outside.before outside.after
    unmount_all_under "$R"
fi

if selected duplicate-name; then
    new_root duplicate-name
    ext_tree "$B/dup" dup
    echo from-etc >"$B/dup/$T/dup"
    cp -a "$B/dup" "$R/etc/extensions/dup"
    echo from-var >"$B/dup/$T/dup"
    make_erofs "$B/dup" "$R/var/lib/extensions/dup.raw"
    bind_root "$R"
    snapshot_state "$R" dup.before
    check "duplicate-name: /etc/extensions/dup wins over /var/lib/extensions/dup.raw"
    run_rdext --root="$R" merge
    expect_rc 0
    assert_merged "$R" /usr "${GOOD[@]}" dup
    assert_file_content "$R/$T/dup" from-etc
    [[ $(grep -cx dup "$R/usr/.systemd-sysext/extensions") == 1 ]] || fail "dup listed more than once"
    run_rdext --root="$R" unmerge
    snapshot_state "$R" dup.after
    assert_same_state dup.before dup.after
    unmount_all_under "$R"
fi

if selected messages-once; then
    # Every message names the image once: errors of the file system helpers
    # already name the path they could not open.
    new_root messages-once
    ln -s /nowhere "$R/etc/extensions/dangling"
    mkdir "$R/var/lib/extensions/foo.raw.v"
    ln -s /nowhere.raw "$R/var/lib/extensions/foo.raw.v/foo_1.raw"
    bind_root "$R"
    check "messages-once: a dangling link and a dangling .v entry, each named once"
    run_rdext --root="$R" merge
    expect_rc 0
    expect_no_repeated_path
    expect_stderr_line '^rdext: warning: skipping /etc/extensions/dangling: cannot resolve it: No such file or directory$'
    expect_stderr_line '^rdext: foo: ignoring /var/lib/extensions/foo\.raw\.v/foo_1\.raw: cannot resolve it: No such file or directory$'
    run_rdext --root="$R" --json list
    expect_rc 0
    [[ $(json_query "$TEST_DIR/last.out" "[e['reason'] for e in d['extensions'] if e['name'] == 'dangling']") == '["cannot resolve it: No such file or directory"]' ]] ||
        fail "list: the reason for dangling repeats its path or is wrong: $(last_out)"
    run_rdext --root="$R" unmerge
    expect_rc 0
    unmount_all_under "$R"
    check "messages-once: inspect names a missing image or certificate once"
    run_rdext --root="$R" inspect "$TEST_DIR/no-such.raw"
    expect_rc 2
    expect_stderr_exactly "rdext: error: inspect: image $TEST_DIR/no-such.raw: No such file or directory"
    run_rdext --root="$R" --certificate="$TEST_DIR/no-such.crt" inspect "$R/etc/extensions/good-dir"
    expect_rc 2
    expect_stderr_exactly "rdext: error: inspect: certificate $TEST_DIR/no-such.crt: No such file or directory"
fi

# --- search directories -----------------------------------------------------

if selected unreadable-dir; then
    # root without CAP_DAC_OVERRIDE/READ_SEARCH cannot read a mode 000 dir
    new_root unreadable-dir
    ext_tree "$R/run/extensions/hidden" hidden
    chmod 000 "$R/run/extensions"
    bind_root "$R"
    snapshot_state "$R" unreadable.before
    check "unreadable-dir: /run/extensions unreadable: reported, the rest merges (or a clean failure)"
    run_cmd setpriv --bounding-set -dac_override,-dac_read_search -- "$RDEXT" --root="$R" merge
    if [[ $LAST_RC == 0 ]]; then
        assert_merged "$R" /usr "${GOOD[@]}"
        expect_stderr_line 'run/extensions' 'permission|denied|access|read'
        run_rdext --root="$R" unmerge
    else
        expect_rc 1
        expect_stderr_line 'run/extensions'
    fi
    chmod 755 "$R/run/extensions"
    snapshot_state "$R" unreadable.after
    assert_same_state unreadable.before unreadable.after
    unmount_all_under "$R"
fi

if selected search-dir-is-file; then
    # "cp foo.raw /etc/extensions" without the directory makes a file of it
    new_root search-dir-is-file
    rmdir "$R/run/extensions"
    cp "$B/good-raw.raw" "$R/run/extensions"
    verify skip-or-fail search-dir-is-file 'run/extensions' 'directory|not a'
fi

if selected search-dir-loop; then
    new_root search-dir-loop
    rmdir "$R/run/extensions"
    ln -s extensions "$R/run/extensions"
    verify skip-or-fail search-dir-loop 'run/extensions' 'loop|symbolic|links'
fi

# --- the root itself ------------------------------------------------------------

if selected bad-root; then
    check "missing root: exit 2 (a usage error) with a message naming it"
    run_rdext --root="$TEST_DIR/no-such-root" merge
    expect_rc 2
    expect_stderr_exactly "rdext: error: root directory $TEST_DIR/no-such-root: No such file or directory"
    check "root is a file: exit 2 with a message naming it"
    touch "$TEST_DIR/a-file"
    run_rdext --root="$TEST_DIR/a-file" merge
    expect_rc 2
    expect_stderr_exactly "rdext: error: root directory $TEST_DIR/a-file: Not a directory"
    check "usage errors exit 2"
    run_rdext --root="$TEST_DIR" frobnicate
    expect_rc 2
    run_rdext --no-such-option merge
    expect_rc 2
    run_rdext
    expect_rc 2
    run_rdext --log-level=loud merge
    expect_rc 2
fi

if selected exit-codes; then
    # One rule: 2 when what was asked is wrong (an unknown command, option or
    # value, a file or root that is not there), 1 when the operation failed
    # (inspect: the image would be refused), 0 on success.
    new_root exit-codes
    bind_root "$R"
    snapshot_state "$R" exit-codes.before
    # rc_of WANT ARGS...: rdext ARGS exits WANT, and a usage error says why
    rc_of() {
        local want=$1; shift
        run_rdext "$@"
        [[ $LAST_RC == "$want" ]] || fail "rdext $*: exit $LAST_RC, expected $want; stderr: $(last_err)"
        [[ $want != 2 || -s $TEST_DIR/last.err ]] || fail "rdext $*: exit $want without a message"
    }
    check "exit-codes: 2 for what the user asked wrongly"
    for cmd in merge refresh unmerge status list mark-good count-tries; do
        rc_of 2 --root="$R" --log-level=bogus "$cmd"
        rc_of 2 --root="$R" --mutable=bogus "$cmd"
        rc_of 2 --root="$R" --cmdline-file="$TEST_DIR/no-such-cmdline" "$cmd"
        rc_of 2 --root="$TEST_DIR/no-such-root" "$cmd"
        rc_of 2 --root="$R" --os-release="$TEST_DIR/no-such" "$cmd"
    done
    for cmd in merge refresh; do
        rc_of 2 --root="$R" --image-policy=bogus "$cmd"
        expect_stderr_exactly "rdext: error: --image-policy= is not a valid image policy (image policy: rule 'bogus' has no '=')"
    done
    rc_of 2 --root="$R" --image-policy=bogus inspect "$R/etc/extensions/good-dir"
    rc_of 2 --root="$R" inspect "$TEST_DIR/no-such.raw"
    rc_of 2 --root="$R" --os-release="$TEST_DIR/no-such" inspect "$R/etc/extensions/good-dir"
    rc_of 2 --root="$R" --certificate="$TEST_DIR/no-such" inspect "$R/etc/extensions/good-dir"
    rc_of 2 --root="$TEST_DIR/no-such-root" inspect "$R/etc/extensions/good-dir"
    rc_of 2 --root="$R" inspect
    rc_of 2 --root="$R" status extra-argument
    snapshot_state "$R" exit-codes.usage
    assert_same_state exit-codes.before exit-codes.usage
    check "exit-codes: 1 for a refusal, 0 for success"
    ext_tree "$R/etc/extensions/other-os" other-os ID=fedora VERSION_ID=39
    rc_of 1 --root="$R" inspect "$R/etc/extensions/other-os"
    grep -q '^verdict: *refuse' "$TEST_DIR/last.out" || fail "inspect other-os: no refusal: $(last_out)"
    rc_of 0 --root="$R" inspect "$R/etc/extensions/good-dir"
    rc_of 0 --root="$R" merge
    rc_of 0 --root="$R" status
    rc_of 0 --root="$R" unmerge
    rc_of 0 --help
    rc_of 0 --version
fi

if selected bad-policy-looking; then
    # status and list use no image policy: a bad one is a warning there, and
    # they still show what they show
    new_root bad-policy-looking
    bind_root "$R"
    check "bad-policy-looking: --image-policy=bogus: status and list warn and show (exit 0)"
    run_rdext --root="$R" --image-policy=bogus merge
    expect_rc 2
    for cmd in status list; do
        run_rdext --root="$R" --image-policy=bogus "$cmd"
        expect_rc 0
        expect_stderr_exactly "rdext: warning: --image-policy= is not a valid image policy (image policy: rule 'bogus' has no '='); merge, refresh and inspect refuse to run with it"
        [[ -s $TEST_DIR/last.out ]] || fail "$cmd with a bad --image-policy= printed nothing"
    done
    grep -q good-dir "$TEST_DIR/last.out" || fail "list with a bad --image-policy= does not list good-dir: $(last_out)"
    run_rdext --root="$R" --image-policy=bogus --json list
    expect_rc 0
    [[ $(json_query "$TEST_DIR/last.out" "sorted(e['name'] for e in d['extensions'])") == '["good-dir", "good-raw"]' ]] ||
        fail "list --json with a bad --image-policy=: $(last_out)"
    # A merge would refuse to run: list must not forecast a merge.
    [[ $(json_query "$TEST_DIR/last.out" "sorted(set((e['result'], e['reason'].startswith('a merge refuses to run: ')) for e in d['extensions']))") == '[["skipped", true]]' ]] ||
        fail "list --json with a bad --image-policy= forecasts a merge: $(last_out)"
    unmount_all_under "$R"
fi

if selected initrd-log-sink; then
    # In an initrd with stderr not a terminal, the commands the units run log
    # to the kernel log; status, list and inspect are run by whoever looks:
    # their messages stay on stderr, their output on stdout.
    new_root initrd-log-sink
    tag=kmsg-probe-$$-$RANDOM
    head -c 65536 /dev/urandom >"$R/etc/extensions/$tag.raw"
    bind_root "$R"
    mkdir -p "$TEST_DIR/initrd-etc-upper" "$TEST_DIR/initrd-etc-work"
    mount -t overlay rdext-test-initrd-etc \
        -o "lowerdir=/etc,upperdir=$TEST_DIR/initrd-etc-upper,workdir=$TEST_DIR/initrd-etc-work" /etc
    : >/etc/initrd-release
    check "initrd-log-sink: status, list and inspect warn and fail on stderr, print on stdout"
    for cmd in status list; do
        run_rdext --root="$R" --image-policy=bogus "$cmd"
        expect_rc 0
        expect_stderr_line "^rdext: warning: --image-policy= is not a valid image policy"
        [[ -s $TEST_DIR/last.out ]] || fail "$cmd in an initrd printed nothing on stdout"
        run_rdext --root="$R" --json "$cmd"
        expect_rc 0
        json_query "$TEST_DIR/last.out" 'True' >/dev/null || fail "$cmd --json in an initrd: not JSON: $(last_out)"
    done
    run_rdext --root="$R" inspect "$TEST_DIR/no-such.raw"
    expect_rc 2
    expect_stderr_line "^rdext: error: inspect: image $TEST_DIR/no-such\.raw: No such file or directory$"
    run_rdext --root="$R" --json inspect "$R/etc/extensions/good-dir"
    expect_rc 0
    json_query "$TEST_DIR/last.out" 'd["verdict"]' | grep -qx accept || fail "inspect --json in an initrd: $(last_out)"
    check "initrd-log-sink: merge (as its unit runs it) logs to the kernel log"
    run_rdext --root="$R" merge
    expect_rc 0
    assert_merged "$R" /usr "${GOOD[@]}"
    ! grep -q "$tag" "$TEST_DIR/last.err" || fail "merge in an initrd logged to stderr: $(last_err)"
    dmesg | grep -q "rdext: skipping .*$tag" || fail "merge in an initrd: no kernel log record names $tag"
    run_rdext --root="$R" unmerge
    expect_rc 0
    umount /etc
    unmount_all_under "$R"
fi

log "PASS"
