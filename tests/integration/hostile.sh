#!/bin/bash
# Hostile inputs (issue #8's catalogue), beyond bad_input.sh, which already
# covers: symlink loops, absolute and relative (../) links out of the root,
# a name collision between /etc/extensions and /var/lib/extensions, newlines,
# spaces, ':' and ',' in names, binary and NUL-containing release files, a
# 10 MB release file, usr/lib/os-release in a squashfs, garbage, truncated,
# zero-length, swap and LUKS images, a GPT without a usable partition.
#
# Every case gets a fresh root with two good extensions (a directory and an
# erofs image) plus the hostile thing, runs the merge with a time limit (a
# FIFO or a device must never block it) and asserts the result: which
# extensions merged, which were skipped with which message, and that an
# unmerge leaves mounts, loop devices and run/ exactly as before.
#
# CASES=name1,name2 runs only those cases. Prints the number of cases run.
source "$(dirname "$0")/lib.sh"
require_root_env

B=$TEST_DIR/build
T=usr/share/rdext-test
GOOD=(good-dir good-raw)
CASES_RUN=()

make_ext_tree "$B/good-dir" good-dir sysext -- "$T/good-dir=good-dir"
make_ext_tree "$B/good-raw" good-raw sysext -- "$T/good-raw=good-raw"
make_erofs "$B/good-raw" "$B/good-raw.raw"

selected() {
    [[ -z ${CASES:-} || ,$CASES, == *",$1,"* ]] || return 1
    CASES_RUN+=("$1")
    check "case $1"
}

# new_root CASE: $R is a fresh root with the good extensions
new_root() {
    R=$TEST_DIR/cases/$1/root
    CASE=$1
    make_root "$R"
    cp -a "$B/good-dir" "$R/etc/extensions/good-dir"
    cp "$B/good-raw.raw" "$R/var/lib/extensions/good-raw.raw"
}

# sys_tree DIR NAME [release lines...]: a valid sysext tree shipping $T/NAME
sys_tree() {
    local dir=$1 name=$2; shift 2
    rm -rf "$dir"
    make_ext_tree "$dir" "$name" sysext "$@" -- "$T/$name=$name"
}

# merge_case: bind the root, snapshot, merge with a time limit
merge_case() {
    mountpoint -q "$R" || bind_root "$R"
    snapshot_state "$R" "$CASE.before"
    run_cmd timeout 120 "$RDEXT" --root="$R" "$@" merge
    [[ $LAST_RC != 124 ]] || fail "$CASE: the merge did not finish within 120 s"
    cp "$TEST_DIR/last.err" "$TEST_DIR/merge.err"
}

# expect_merged NAMES...: exit 0, /usr merged with the good ones and NAMES
expect_merged() {
    expect_rc 0
    assert_merged "$R" /usr "${GOOD[@]}" "$@"
    assert_file_content "$R/$T/good-dir" good-dir
    assert_file_content "$R/$T/good-raw" good-raw
    assert_no_staging "$R"
}

# expect_skipped NAME REASON-ERE: NAME is reported skipped (stderr line with
# its name and the reason; status --json says skipped with a reason)
expect_skipped() {
    local name=$1 reason=$2 res
    cp "$TEST_DIR/merge.err" "$TEST_DIR/last.err"   # the merge's, not the last status'
    expect_stderr_line "$name" "$reason"
    run_rdext --root="$R" --json status
    expect_rc 0
    res=$(json_query "$TEST_DIR/last.out" "[(e['result'], bool(e.get('reason'))) for e in d['extensions'] if e['name'] == '$name']")
    [[ $res == '[["skipped", true]]' ]] || fail "$CASE: status --json: $name should be [skipped, with a reason], got $res"
}

# done_case: unmerge and compare with the snapshot from before the merge
done_case() {
    run_rdext --root="$R" unmerge
    expect_rc 0
    snapshot_state "$R" "$CASE.after"
    assert_same_state "$CASE.before" "$CASE.after"
    unmount_all_under "$R"
}

# ===========================================================================
# Links

if selected symlink-proc; then
    # With a procfs inside the root, /proc/self/root and /proc/1/cwd are magic
    # links to the host's root: openat2(RESOLVE_NO_MAGICLINKS) refuses them.
    new_root symlink-proc
    OUT=$TEST_DIR/outside-proc
    sys_tree "$OUT/escape-proc" escape-proc
    mkdir -p "$R/proc"
    bind_root "$R"
    mount -t proc proc "$R/proc"   # stays until done_case: part of the snapshots
    ln -s "/proc/self/root$OUT/escape-proc" "$R/etc/extensions/escape-proc"
    ln -s "/proc/1/root$OUT/escape-proc" "$R/run/extensions/escape-proc1"
    ln -s /proc/self/fd/0 "$R/var/lib/extensions/stdin.raw"
    merge_case
    expect_merged
    assert_absent "$R/$T/escape-proc"
    for n in escape-proc escape-proc1 stdin; do expect_stderr_line "$n" 'resolve|link|loop|cross|permitted|denied'; done
    done_case
fi

if selected symlink-dev; then
    # a ".raw" that is a link to a character device (an endless /dev/zero):
    # not an image (systemd ignores anything but files, directories and
    # block devices), never read
    new_root symlink-dev
    mkdir -p "$R/dev"
    mknod "$R/dev/zero" c 1 5
    ln -s /dev/zero "$R/etc/extensions/zero.raw"
    ln -s ../../dev/zero "$R/run/extensions/zero-rel.raw"
    merge_case
    expect_merged
    run_rdext --root="$R" --json status
    [[ $(json_query "$TEST_DIR/last.out" "[e['name'] for e in d['extensions'] if 'zero' in e['name']]") == '[]' ]] ||
        fail "$CASE: a character device was taken for an image: $(last_out)"
    done_case
fi

if selected release-link-escape; then
    # the release file is a link (absolute, and via ..) to a valid release
    # file outside the image: resolved inside the image, so not found
    new_root release-link-escape
    OUT=$TEST_DIR/outside-release
    mkdir -p "$OUT"
    printf 'ID=debian\nVERSION_ID=12\n' >"$OUT/extension-release.rel-abs"
    cp "$OUT/extension-release.rel-abs" "$OUT/extension-release.rel-up"
    for n in rel-abs rel-up; do
        sys_tree "$R/etc/extensions/$n" "$n" @none
        mkdir -p "$R/etc/extensions/$n/usr/lib/extension-release.d"
    done
    ln -s "$OUT/extension-release.rel-abs" "$R/etc/extensions/rel-abs/usr/lib/extension-release.d/extension-release.rel-abs"
    ln -s "$(printf '../%.0s' {1..30})${OUT#/}/extension-release.rel-up" \
        "$R/etc/extensions/rel-up/usr/lib/extension-release.d/extension-release.rel-up"
    merge_case
    expect_merged
    expect_skipped rel-abs 'release'
    expect_skipped rel-up 'release'
    done_case
fi

if selected usr-link-escape; then
    # the extension's usr is a link to a /usr outside the image: resolved in
    # the image, the layer is not the outside tree
    new_root usr-link-escape
    OUT=$TEST_DIR/outside-usr
    sys_tree "$OUT" usrlink
    echo secret >"$OUT/usr/share/rdext-test/secret"
    mkdir -p "$R/etc/extensions/usrlink"
    ln -s "$OUT/usr" "$R/etc/extensions/usrlink/usr"
    merge_case
    expect_merged
    assert_absent "$R/$T/secret"
    expect_skipped usrlink 'release'
    done_case
fi

# ===========================================================================
# Odd files where images and release files should be

if selected image-fifo; then
    # a FIFO named like an image: not an image, and nothing may open it
    # (an open would block until a writer comes)
    new_root image-fifo
    mkfifo "$R/etc/extensions/fifo.raw" "$R/run/extensions/fifo2.raw"
    merge_case
    expect_merged
    done_case
fi

if selected release-fifo; then
    # the release file is a FIFO: opened non-blocking, refused as not regular
    new_root release-fifo
    sys_tree "$R/etc/extensions/relfifo" relfifo @none
    mkdir -p "$R/etc/extensions/relfifo/usr/lib/extension-release.d"
    mkfifo "$R/etc/extensions/relfifo/usr/lib/extension-release.d/extension-release.relfifo"
    merge_case
    expect_merged
    expect_skipped relfifo 'regular|release'
    done_case
fi

if selected release-device; then
    # the release file is a character device node (/dev/zero, endless): the
    # image is mounted nodev, so it cannot even be opened; never read
    new_root release-device
    sys_tree "$R/etc/extensions/reldev" reldev @none
    mkdir -p "$R/etc/extensions/reldev/usr/lib/extension-release.d"
    mknod "$R/etc/extensions/reldev/usr/lib/extension-release.d/extension-release.reldev" c 1 5
    merge_case
    expect_merged
    expect_skipped reldev 'release|regular|denied'
    done_case
fi

if selected release-100mb; then
    # 100 MB of release file (sparse, valid first lines): refused by its
    # size before a byte is read
    new_root release-100mb
    sys_tree "$R/etc/extensions/big" big
    truncate -s 100M "$R/etc/extensions/big/usr/lib/extension-release.d/extension-release.big"
    printf 'ID=debian\nVERSION_ID=12\n' |
        dd of="$R/etc/extensions/big/usr/lib/extension-release.d/extension-release.big" conv=notrunc status=none
    start=$SECONDS
    merge_case
    (( SECONDS - start < 30 )) || fail "$CASE: the merge took $((SECONDS - start)) s"
    expect_merged
    expect_skipped big 'too large|limit|bytes'
    done_case
fi

if selected state-tmp-fifo; then
    # a FIFO where rdext writes its record before renaming it to state.json:
    # an open for writing would wait for a reader forever, after the commit
    new_root state-tmp-fifo
    bind_root "$R"
    snapshot_state "$R" "$CASE.before"
    mkdir -p "$R/run/rdext"
    mkfifo "$R/run/rdext/.state.json.tmp"
    run_cmd timeout 20 "$RDEXT" --root="$R" merge
    [[ $LAST_RC != 124 ]] || fail "$CASE: the merge did not finish within 20 s"
    expect_merged
    [[ -f $R/run/rdext/state.json && ! -L $R/run/rdext/state.json ]] || fail "$CASE: no state.json written"
    json_query "$R/run/rdext/state.json" "sorted(e['name'] for e in d['extensions'])" | grep -qF '["good-dir", "good-raw"]' ||
        fail "$CASE: state.json: $(cat "$R/run/rdext/state.json")"
    rm -f "$R/run/rdext/.state.json.tmp"
    done_case
fi

# ===========================================================================
# What extensions contain

if selected device-nodes; then
    # device nodes in a directory extension are merged as entries, but every
    # layer and the overlay are nodev: they cannot be opened
    new_root device-nodes
    sys_tree "$R/etc/extensions/devs" devs
    mknod "$R/etc/extensions/devs/$T/mem" c 1 1
    mknod "$R/etc/extensions/devs/$T/null" c 1 3
    merge_case
    expect_merged devs
    [[ -c $R/$T/null ]] || fail "$CASE: the device node is not in the merged tree"
    [[ ,$(mount_opts "$R/usr"), == *,nodev,* ]] || fail "$CASE: /usr is not nodev: $(mount_opts "$R/usr")"
    for n in mem null; do
        if head -c 1 "$R/$T/$n" >/dev/null 2>&1; then fail "$CASE: the device node $n from an extension could be opened"; fi
    done
    done_case
fi

if selected block-device; then
    # a block device node in /etc/extensions names any device of the
    # machine: refused unless the initrd's command line allows block device
    # images (rd.sysext.block_devices=1). Allowed, the device is never
    # written to, not even to replay the journal of an ext4 that needs
    # recovery (which a plain read-only mount of a writable device does).
    new_root block-device
    sys_tree "$B/blkdev" blkdev
    make_ext4 "$B/blkdev" "$B/blkdev.img"
    debugfs -w -R "feature needs_recovery" "$B/blkdev.img" >/dev/null 2>&1
    blk_sum=$(sha256sum <"$B/blkdev.img")
    BLK=$(losetup --find --show "$B/blkdev.img")   # writable, as a disk is
    mknod "$R/etc/extensions/blkdev" b "$(( 0x$(stat -c %t "$BLK") ))" "$(( 0x$(stat -c %T "$BLK") ))"
    merge_case
    expect_merged
    expect_skipped blkdev 'block device images are not allowed'
    done_case
    echo 'rd.sysext.block_devices=1' >"$TEST_DIR/cmdline.block-device"
    merge_case --cmdline-file="$TEST_DIR/cmdline.block-device"
    expect_merged blkdev
    assert_file_content "$R/$T/blkdev" blkdev
    # the file system sits on a read-only device stacked on the node's device
    blk_ro=
    for f in /sys/block/loop*/loop/backing_file; do
        [[ $(cat "$f") == "$BLK" ]] && blk_ro=$(cat "${f%/loop/backing_file}/ro")
    done
    [[ $blk_ro == 1 ]] || fail "$CASE: no read-only device over $BLK (ro='$blk_ro')"
    done_case
    losetup -d "$BLK"
    [[ $(sha256sum <"$B/blkdev.img") == "$blk_sum" ]] || fail "$CASE: the block device was written to"
fi

if selected confext-setuid; then
    # a setuid-root binary in a confext is inert: /etc is nosuid and noexec
    new_root confext-setuid
    make_ext_tree "$R/run/confexts/suid" suid confext -- etc/rdext-test/conf=suid
    cp /usr/bin/id "$R/run/confexts/suid/etc/rdext-test/id"
    chmod 4755 "$R/run/confexts/suid/etc/rdext-test/id"
    merge_case
    expect_merged
    assert_merged "$R" /etc suid
    opts=,$(mount_opts "$R/etc"),
    [[ $opts == *,nosuid,* && $opts == *,noexec,* && $opts == *,nodev,* ]] ||
        fail "$CASE: /etc is not nosuid,noexec,nodev: $opts"
    [[ -u $R/etc/rdext-test/id ]] || fail "$CASE: test setup: the setuid bit is not visible"
    # as an unprivileged user (the test dir is 0700: open it for the run)
    chmod 755 "$TEST_DIR"
    run_cmd setpriv --reuid=65534 --regid=65534 --clear-groups "$R/etc/rdext-test/id" -u
    [[ $LAST_RC != 0 ]] || fail "$CASE: the confext's setuid binary ran (printed $(last_out))"
    expect_stderr_line 'denied'
    # control: the same file on the root's own file system does run setuid
    cp -p "$R/run/confexts/suid/etc/rdext-test/id" "$R/var/lib/id-control"
    run_cmd setpriv --reuid=65534 --regid=65534 --clear-groups "$R/var/lib/id-control" -u
    [[ $(last_out) == 0 ]] || fail "$CASE: control: the setuid copy on the root's own file system printed '$(last_out)', expected 0"
    rm "$R/var/lib/id-control"
    chmod 700 "$TEST_DIR"
    done_case
fi

if selected ships-metadata; then
    # an extension shipping usr/.systemd-sysext/ (forged metadata): rdext's
    # own metadata layer is on top, so the metadata tells the truth
    new_root ships-metadata
    sys_tree "$R/etc/extensions/forger" forger
    mkdir -p "$R/etc/extensions/forger/usr/.systemd-sysext"
    printf 'forged\nnames\n' >"$R/etc/extensions/forger/usr/.systemd-sysext/extensions"
    echo 0:0 >"$R/etc/extensions/forger/usr/.systemd-sysext/dev"
    merge_case
    expect_merged forger   # assert_merged checks extensions and dev
    run_rdext --root="$R" --json status
    json_query "$TEST_DIR/last.out" "sorted(e['name'] for e in d['extensions'] if e['result'] == 'merged')" |
        grep -qx '\["forger", "good-dir", "good-raw"\]' || fail "$CASE: status: $(last_out)"
    done_case
fi

if selected ships-os-release-dir; then
    # bad_input.sh has it for a squashfs image; a directory extension too
    new_root ships-os-release-dir
    sys_tree "$R/etc/extensions/osreldir" osreldir
    printf 'ID=evil\nVERSION_ID=1\n' >"$R/etc/extensions/osreldir/usr/lib/os-release"
    merge_case
    expect_merged
    expect_skipped osreldir 'os-release'
    assert_file_content "$R/usr/lib/os-release" "$(printf 'ID=debian\nVERSION_ID=12')"
    done_case
fi

# ===========================================================================
# Images that lie

if selected lying-fstype; then
    # an erofs image whose first bytes are a squashfs superblock (erofs
    # leaves its first 1 KiB unused): the probe believes the header, the
    # squashfs driver finds no squashfs behind it; skipped, not half-mounted
    new_root lying-fstype
    sys_tree "$B/liar" liar
    make_erofs "$B/liar" "$R/etc/extensions/liar.raw"
    make_squashfs "$B/liar" "$B/liar.squashfs"
    dd if="$B/liar.squashfs" of="$R/etc/extensions/liar.raw" bs=96 count=1 conv=notrunc status=none
    merge_case
    expect_merged
    expect_skipped liar 'squashfs|mount|file ?system|superblock|release|read'
    # regression: the kernel's message ended in a newline, logged as \x0a
    if grep -qF '\x0a' "$TEST_DIR/merge.err"; then fail "$CASE: a log line carries an escaped newline"; fi
    done_case
fi

if selected ext4-named-erofs; then
    # the kind is taken from the content, never from a name: an ext4 image
    # named like an erofs one merges as ext4
    new_root ext4-named-erofs
    sys_tree "$B/named" named
    make_ext4 "$B/named" "$R/etc/extensions/named.raw"
    merge_case
    expect_merged named
    run_rdext --root="$R" --json status
    [[ $(json_query "$TEST_DIR/last.out" "[e.get('fstype') for e in d['extensions'] if e['name'] == 'named']") == '["ext4"]' ]] ||
        fail "$CASE: status does not say ext4: $(last_out)"
    done_case
fi

# gpt_patch FILE ENTRY FIRST LAST: rewrite GPT entry ENTRY (0-based) of both
# tables to FIRST..LAST (LBAs) and fix the CRCs, as a hostile tool would
gpt_patch() {
    python3 - "$@" <<'EOF'
import struct, sys, zlib
path, idx, first, last = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
f = open(path, "r+b")
def fix(hdr_lba):
    f.seek(hdr_lba * 512); h = bytearray(f.read(92))
    assert h[:8] == b"EFI PART"
    ent_lba, n, size = struct.unpack_from("<QII", h, 72)
    f.seek(ent_lba * 512); ents = bytearray(f.read(n * size))
    struct.pack_into("<QQ", ents, idx * size + 32, first, last)
    f.seek(ent_lba * 512); f.write(ents)
    struct.pack_into("<I", h, 88, zlib.crc32(ents) & 0xffffffff)
    struct.pack_into("<I", h, 16, 0)
    struct.pack_into("<I", h, 16, zlib.crc32(bytes(h)) & 0xffffffff)
    f.seek(hdr_lba * 512); f.write(h)
    return struct.unpack_from("<Q", h, 32)[0]   # the other header
backup = fix(1)
fix(backup)
EOF
}

# two_partition_gpt OUT: a DDI with the root partition (erofs) and a second,
# generic data partition behind it
two_partition_gpt() {
    local out=$1
    make_gpt "$B/gpt-src" "$out" root erofs
    truncate -s +2M "$out"
    sfdisk -q --relocate gpt-bak-std "$out" >/dev/null 2>&1
    printf 'size=2048, type=0fc63daf-8483-4772-8e3d-3d69d8477de4\n' | sfdisk -q --append "$out" >/dev/null
}

if selected gpt-overlap; then
    new_root gpt-overlap
    sys_tree "$B/gpt-src" gptover
    two_partition_gpt "$R/etc/extensions/gptover.raw"
    gpt_patch "$R/etc/extensions/gptover.raw" 1 2100 6000   # inside partition 1
    merge_case
    expect_merged
    expect_skipped gptover 'overlap|partition'
    done_case
fi

if selected gpt-out-of-range; then
    new_root gpt-out-of-range
    sys_tree "$B/gpt-src" gptrange
    make_gpt "$B/gpt-src" "$R/etc/extensions/gptrange.raw" root erofs
    # the root partition claims to run 1 TiB past the end of the image
    gpt_patch "$R/etc/extensions/gptrange.raw" 0 2048 $(( 2 * 1024 * 1024 * 1024 ))
    merge_case
    expect_merged
    expect_skipped gptrange 'outside|beyond|past|end|range|partition|size'
    done_case
fi

if selected corrupt-erofs; then
    # metadata after the superblock overwritten: refused at mount or when
    # the release file is read; either way skipped, nothing left mounted
    new_root corrupt-erofs
    sys_tree "$B/cerofs" cerofs
    for i in $(seq 1 40); do echo "$i" >"$B/cerofs/usr/share/rdext-test/f$i"; done
    make_erofs "$B/cerofs" "$R/etc/extensions/cerofs.raw"
    size=$(stat -c %s "$R/etc/extensions/cerofs.raw")
    head -c $(( size - 1152 )) /dev/urandom | dd of="$R/etc/extensions/cerofs.raw" bs=1 seek=1152 conv=notrunc status=none
    merge_case
    expect_merged
    expect_skipped cerofs 'mount|release|erofs|corrupt|structure|invalid|read|error'
    done_case
fi

if selected corrupt-squashfs; then
    new_root corrupt-squashfs
    sys_tree "$B/csquash" csquash
    for i in $(seq 1 40); do echo "$i" >"$B/csquash/usr/share/rdext-test/f$i"; done
    make_squashfs "$B/csquash" "$R/etc/extensions/csquash.raw"
    size=$(stat -c %s "$R/etc/extensions/csquash.raw")
    # keep the 96-byte superblock, scramble the tables behind it
    head -c $(( size - 96 )) /dev/urandom | dd of="$R/etc/extensions/csquash.raw" bs=1 seek=96 conv=notrunc status=none
    merge_case
    expect_merged
    expect_skipped csquash 'mount|release|squashfs|corrupt|invalid|read|error'
    done_case
fi

# ===========================================================================
# Names

if selected name-non-utf8; then
    new_root name-non-utf8
    sys_tree "$R/etc/extensions/bad"$'\xff'"name" "bad"$'\xff'"name"
    merge_case
    expect_merged
    expect_stderr_line 'bad' 'name|valid|UTF'
    done_case
fi

if selected name-dotdot; then
    # "..raw" and "...raw" would name the images "." and "..": invalid
    new_root name-dotdot
    cp "$B/good-raw.raw" "$R/etc/extensions/..raw"
    cp "$B/good-raw.raw" "$R/etc/extensions/...raw"
    merge_case
    expect_merged
    expect_stderr_line '\.\.?\.raw|name' 'name|valid'
    done_case
fi

if selected name-controls; then
    # control characters in names would forge lines (or terminal escape
    # sequences) in the text of status and list: printed escaped, as
    # systemd's cescape does; JSON keeps the names as they are (escaped by
    # JSON's rules), except a name that is not UTF-8, given as its escaped text
    new_root name-controls
    for n in $'nl\nfake-line' $'cr\rx' $'esc\e[2Jx' $'tab\tx' $'del\x7fx' $'back\\x' $'c1\xc2\x9bx' $'bad\xffx'; do
        sys_tree "$R/etc/extensions/$n" "$n"
    done
    merge_case
    expect_merged $'back\\x' $'c1\xc2\x9bx'
    for verb in status list; do
        run_rdext --root="$R" "$verb"
        expect_rc 0
        if LC_ALL=C grep -q $'[\x01-\x09\x0b-\x1f\x7f]' "$TEST_DIR/last.out"; then
            fail "$CASE: $verb prints a raw control character: $(cat -A "$TEST_DIR/last.out")"
        fi
        ! grep -q '^fake-line' "$TEST_DIR/last.out" || fail "$CASE: $verb: a name forged a line: $(last_out)"
        # status reads the names from state.json, where one that is not UTF-8
        # is kept as its escaped text (JSON is UTF-8): that text, escaped
        bad='bad\xffx'
        [[ $verb == list ]] || bad='bad\\xffx'
        for want in 'nl\nfake-line' 'cr\rx' 'esc\x1b[2Jx' 'tab\tx' 'del\x7fx' 'back\\x' 'c1\xc2\x9bx' "$bad"; do
            grep -qF -- "$want" "$TEST_DIR/last.out" || fail "$CASE: $verb does not show '$want': $(cat -A "$TEST_DIR/last.out")"
        done
        run_rdext --root="$R" --json "$verb"
        expect_rc 0
        names=$(json_query "$TEST_DIR/last.out" "sorted(e['name'] for e in (d if isinstance(d, list) else d['extensions']) if e['name'] not in ('good-dir', 'good-raw'))")
        # JSON strings are UTF-8: a name that is not is given as its escaped text
        [[ $names == '["back\\x", "bad\\xffx", "c1\u009bx", "cr\rx", "del\u007fx", "esc\u001b[2Jx", "nl\nfake-line", "tab\tx"]' ]] ||
            fail "$CASE: $verb --json names: $names"
    done
    done_case
fi

if selected collision-confext; then
    # one name in two confext search directories: the first directory wins
    # (run/confexts before usr/lib/confexts), the other is shadowed
    new_root collision-confext
    make_ext_tree "$B/cdup" cdup confext -- etc/rdext-test/who=run
    cp -a "$B/cdup" "$R/run/confexts/cdup"
    echo usr-lib >"$B/cdup/etc/rdext-test/who"
    make_squashfs "$B/cdup" "$R/usr/lib/confexts/cdup.raw"
    merge_case
    expect_merged
    assert_merged "$R" /etc cdup
    assert_file_content "$R/etc/rdext-test/who" run
    run_rdext --root="$R" --json status
    json_query "$TEST_DIR/last.out" "sorted((e['path'], e['result']) for e in d['extensions'] if e['name'] == 'cdup')" |
        grep -qF '[["/run/confexts/cdup", "merged"], ["/usr/lib/confexts/cdup.raw", "shadowed"]]' ||
        fail "$CASE: status: $(last_out)"
    done_case
fi

# ===========================================================================
# Scale

if selected thousand; then
    # 1,000 extensions are more than overlayfs takes (500 layers): the 499
    # that sort last (the top layers) merge, the others are skipped by name
    # with the reason, and the merge as a whole succeeds
    new_root thousand
    for i in $(seq -w 1 998); do
        d=$R/run/extensions/k-$i
        mkdir -p "$d/usr/lib/extension-release.d" "$d/$T"
        printf 'ID=debian\nVERSION_ID=12\n' >"$d/usr/lib/extension-release.d/extension-release.k-$i"
        echo "$i" >"$d/$T/k-$i"
    done
    merge_case
    expect_rc 0
    assert_file_content "$R/$T/k-998" 998
    assert_file_content "$R/$T/k-500" 500
    assert_absent "$R/$T/k-499"
    assert_absent "$R/$T/good-dir"
    expect_stderr_line 'k-499' 'layer|limit|500'
    run_rdext --root="$R" --json status
    n=$(json_query "$TEST_DIR/last.out" "sum(1 for e in d['extensions'] if e['result'] == 'merged')")
    [[ $n == 499 ]] || fail "$CASE: $n extensions merged, wanted 499"
    done_case
fi

# ===========================================================================
# The OS's identity and the merge metadata (issue 21 #8, #9, #11)

if selected os-release-sysext; then
    # Anything at usr/lib/os-release (a dangling link, a FIFO, a directory,
    # a whiteout), usr/lib as a link, and an opaque usr or usr/lib (either
    # xattr namespace, "y" or "x") would replace or hide the OS's
    # os-release: each such sysext is skipped naming os-release, and the
    # merged /usr shows the root's own file
    new_root os-release-sysext
    E=$R/etc/extensions
    for n in osr-dangling osr-fifo osr-dir osr-whiteout osr-liblink osr-libopaque osr-usropaque-x osr-useropaque; do
        sys_tree "$E/$n" "$n"
    done
    ln -s /nonexistent/os-release "$E/osr-dangling/usr/lib/os-release"
    mkfifo "$E/osr-fifo/usr/lib/os-release"
    mkdir "$E/osr-dir/usr/lib/os-release"
    mknod "$E/osr-whiteout/usr/lib/os-release" c 0 0
    mv "$E/osr-liblink/usr/lib" "$E/osr-liblink/usr/lib.real"
    ln -s lib.real "$E/osr-liblink/usr/lib"
    setfattr -n trusted.overlay.opaque -v y "$E/osr-libopaque/usr/lib"
    setfattr -n trusted.overlay.opaque -v x "$E/osr-usropaque-x/usr"
    setfattr -n user.overlay.opaque -v y "$E/osr-useropaque/usr/lib"
    merge_case
    expect_merged
    for n in osr-dangling osr-fifo osr-dir osr-whiteout osr-liblink osr-libopaque osr-usropaque-x osr-useropaque; do
        expect_skipped "$n" 'os-release'
    done
    [[ $(cat "$R/usr/lib/os-release") == $'ID=debian\nVERSION_ID=12' ]] ||
        fail "$CASE: the merged /usr/lib/os-release is not the OS's: $(cat "$R/usr/lib/os-release" 2>&1)"
    done_case
fi

if selected os-release-confext; then
    # a confext's etc/os-release (a file, a dangling link, a whiteout) or an
    # opaque etc would replace or hide the OS's /etc/os-release: skipped;
    # a good confext merges and /etc/os-release stays the OS's
    new_root os-release-confext
    C=$R/run/confexts
    for n in cx-good cx-osr cx-osr-link cx-osr-whiteout cx-etc-opaque; do
        make_ext_tree "$C/$n" "$n" confext -- "etc/rdext-test/$n=$n"
    done
    printf 'ID=evil\n' >"$C/cx-osr/etc/os-release"
    ln -s /nonexistent/os-release "$C/cx-osr-link/etc/os-release"
    mknod "$C/cx-osr-whiteout/etc/os-release" c 0 0
    setfattr -n trusted.overlay.opaque -v y "$C/cx-etc-opaque/etc"
    merge_case
    expect_merged
    assert_merged "$R" /etc cx-good
    for n in cx-osr cx-osr-link cx-osr-whiteout cx-etc-opaque; do expect_skipped "$n" 'os-release'; done
    [[ $(cat "$R/etc/os-release") == $'ID=debian\nVERSION_ID=12' ]] ||
        fail "$CASE: the merged /etc/os-release is not the OS's: $(cat "$R/etc/os-release" 2>&1)"
    done_case
fi

if selected fake-merge-metadata; then
    # /usr is a bind mount whose .systemd-sysext/dev holds its own st_dev:
    # not an overlay, so not a merge. merge goes over it, unmerge takes off
    # the overlay only and leaves the bind mount
    new_root fake-merge-metadata
    bind_root "$R"
    mount --bind "$R/usr" "$R/usr"
    mkdir -p "$R/usr/.systemd-sysext"
    stat -c '%Hd:%Ld' "$R/usr" >"$R/usr/.systemd-sysext/dev"
    echo fake >"$R/usr/.systemd-sysext/extensions"
    merge_case
    expect_merged
    done_case
fi

if selected unmerge-covered; then
    # a tmpfs mounted over the merged /usr: unmerge refuses (exit 1, naming
    # what covers it) and leaves merge and state as they are; with the tmpfs
    # gone, unmerge works and a new merge too
    new_root unmerge-covered
    merge_case
    expect_merged
    mount -t tmpfs rdext-cover "$R/usr"
    run_rdext --root="$R" unmerge
    expect_rc 1
    expect_stderr_line '/usr' 'tmpfs' 'rdext-cover' 'mounted over'
    [[ -f $R/run/rdext/state.json ]] || fail "$CASE: the refused unmerge removed the state"
    # refresh and merge refuse too: a new merge on top would leave the old
    # one below the tmpfs
    for verb in refresh merge; do
        run_rdext --root="$R" "$verb"
        expect_rc 1
        expect_stderr_line '/usr' 'tmpfs' 'rdext-cover' 'mounted over'
    done
    [[ $(awk -v m="$R/usr" '$5 == m' /proc/self/mountinfo | wc -l) == 2 ]] ||
        fail "$CASE: /usr should carry the merge and the tmpfs, nothing more"
    umount "$R/usr"
    assert_merged "$R" /usr "${GOOD[@]}"
    done_case
    merge_case
    expect_merged
    done_case
fi

# ===========================================================================
# Races

# race CASE FORMAT POINT: an image named race.raw is paused at POINT (after
# rdext opened, probed and checked it, before it is mounted); the test then
# renames another image over race.raw and lets rdext go on. The merge must
# show the image that was checked, not the one now at the path.
race() {
    local case=$1 fs=$2 point=$3
    new_root "$case"
    rm -rf "$R/var/lib/extensions/good-raw.raw" "$R/etc/extensions/good-dir"
    make_ext_tree "$B/race-a" race sysext -- "$T/race=checked"
    make_ext_tree "$B/race-b" race sysext -- "$T/race=swapped-in" "$T/evil=evil"
    "make_$fs" "$B/race-a" "$R/var/lib/extensions/race.raw"
    "make_$fs" "$B/race-b" "$R/var/lib/swap.raw"   # same file system, not a search dir
    bind_root "$R"
    snapshot_state "$R" "$case.before"
    local flag=$TEST_DIR/$case.paused
    rm -f "$flag"
    RDEXT_FAULT_PAUSE="$point,$flag" "$RDEXT" --root="$R" merge >"$TEST_DIR/race.out" 2>"$TEST_DIR/race.err" &
    local pid=$! i
    for i in $(seq 1 600); do [[ -e $flag ]] && break; sleep 0.05; done
    [[ -e $flag ]] || { kill "$pid"; fail "$case: rdext never paused at $point"; }
    mv "$R/var/lib/swap.raw" "$R/var/lib/extensions/race.raw"
    rm "$flag"
    local rc=0
    wait "$pid" || rc=$?
    cp "$TEST_DIR/race.err" "$TEST_DIR/last.err"
    LAST_CMD="rdext merge (paused at $point)" LAST_RC=$rc
    expect_rc 0
    expect_stderr_line "paused at fault point $point"
    assert_merged "$R" /usr race
    assert_file_content "$R/$T/race" checked
    assert_absent "$R/$T/evil"
    CASE=$case
    done_case
}

if selected race-erofs; then
    # erofs straight from the file: the kernel gets /proc/self/fd/N of the
    # probed fd
    race race-erofs erofs image-mount:1
fi

if selected race-loop; then
    # squashfs through a loop device, backed by the probed fd
    race race-loop squashfs loop-attach:1
fi

if selected race-discovery; then
    # paused right after discovery (before the image is reopened and
    # probed): the reopen goes through the fd discovery took
    race race-discovery squashfs stage-image:1
fi

# ===========================================================================
# The root's /etc/rdext/policy.conf is a FIFO (an open would wait for a
# writer: a boot that never ends) or a character device (/dev/zero, endless).
# It is never opened for reading: merge, list and status finish and name
# the file and why; it could only have tightened the policy, so the merge
# refuses every image rather than ignore it.

mknod_zero() { mknod "$1" c 1 5; }
policy_conf_case() {  # policy_conf_case CASE MAKE-CMD
    new_root "$1"
    mkdir -p "$R/etc/rdext"
    "$2" "$R/etc/rdext/policy.conf"
    merge_case
    expect_rc 0
    assert_not_merged "$R" /usr
    assert_no_staging "$R"
    for n in "${GOOD[@]}"; do expect_skipped "$n" 'policy\.conf.*regular file'; done
    local cmd
    for cmd in list status; do
        run_cmd timeout 20 "$RDEXT" --root="$R" "$cmd"
        [[ $LAST_RC != 124 ]] || fail "$CASE: $cmd did not finish within 20 s"
        expect_rc 0
        expect_stderr_line 'policy\.conf' 'not a regular file'
    done
    done_case
}

if selected policy-conf-fifo; then
    policy_conf_case policy-conf-fifo mkfifo
fi

if selected policy-conf-device; then
    policy_conf_case policy-conf-device mknod_zero
fi

if selected alias-same-image; then
    # Two names for one image (issue 21, #4): a link in /etc/extensions to a
    # directory image in /var/lib/extensions, and one in /run/extensions to
    # an erofs image, each image shipping a release file for both names.
    # The same directory twice made overlayfs refuse the whole stack
    # ("overlapping lowerdir path"). Identity (device and inode) decides:
    # the entry first in the search order (/etc, /run, /var/lib) is merged,
    # the other skipped, naming it.
    new_root alias-same-image
    sys_tree "$R/var/lib/extensions/real" real
    cp "$R/var/lib/extensions/real/usr/lib/extension-release.d/extension-release."{real,alias}
    ln -s /var/lib/extensions/real "$R/etc/extensions/alias"
    sys_tree "$B/rawreal" rawreal
    cp "$B/rawreal/usr/lib/extension-release.d/extension-release."{rawreal,rawalias}
    make_erofs "$B/rawreal" "$R/var/lib/extensions/rawreal.raw"
    ln -s ../../var/lib/extensions/rawreal.raw "$R/run/extensions/rawalias.raw"
    merge_case
    expect_merged alias rawalias
    assert_file_content "$R/$T/real" real
    assert_file_content "$R/$T/rawreal" rawreal
    expect_skipped real 'same image as /etc/extensions/alias'
    expect_skipped rawreal 'same image as /run/extensions/rawalias.raw'
    done_case
fi

if selected toctou-usr-swap; then
    # Checked by fd, used by name (issue 21, #3): a directory image is a live
    # bind of the root's directory, so its `usr` can be exchanged for a
    # symlink to a host directory at any moment. The layer rdext checked
    # (inside the image) must be the one overlayfs mounts: the host
    # directory's marker may never show in the merged /usr. 200 merges with
    # a background process exchanging usr and the link (renameat2
    # RENAME_EXCHANGE, so there always is a usr) as fast as it can.
    new_root toctou-usr-swap
    HOST=$TEST_DIR/outside-toctou
    mkdir -p "$HOST/share/rdext-test"
    echo host >"$HOST/share/rdext-test/toctou-marker"
    sys_tree "$R/etc/extensions/swap" swap
    ln -s "$HOST" "$R/etc/extensions/swap/usr-host"
    bind_root "$R"
    snapshot_state "$R" "$CASE.before"
    python3 - "$R/etc/extensions/swap" <<'PY' &
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
os.chdir(sys.argv[1])
while True:
    libc.renameat2(-100, b"usr", -100, b"usr-host", 2)  # AT_FDCWD, RENAME_EXCHANGE
PY
    swapper=$!
    hits=0 failed=0 merged=0
    for i in $(seq 1 200); do
        rc=0
        timeout 60 "$RDEXT" --root="$R" merge >/dev/null 2>"$TEST_DIR/toctou.err" || rc=$?
        if (( rc != 0 )); then
            failed=$((failed + 1))
            log "$CASE: merge $i failed: $(tail -n 1 "$TEST_DIR/toctou.err")"
        fi
        [[ -e $R/$T/toctou-marker ]] && hits=$((hits + 1))
        merged_names "$R" /usr | grep -qx swap && merged=$((merged + 1))
        timeout 60 "$RDEXT" --root="$R" unmerge >/dev/null 2>&1 || fail "$CASE: unmerge $i failed"
    done
    kill "$swapper"
    wait "$swapper" 2>/dev/null || true
    # leave usr a directory again
    [[ -d $R/etc/extensions/swap/usr && ! -L $R/etc/extensions/swap/usr ]] ||
        python3 -c 'import ctypes,sys; ctypes.CDLL(None).renameat2(-100, sys.argv[1].encode(), -100, sys.argv[2].encode(), 2)' \
            "$R/etc/extensions/swap/usr" "$R/etc/extensions/swap/usr-host"
    log "$CASE: 200 merges, image merged with /usr in $merged, host directory in /usr in $hits, failed $failed"
    (( hits == 0 )) || fail "$CASE: the host directory became a layer of /usr in $hits of 200 merges"
    (( failed == 0 )) || fail "$CASE: $failed of 200 merges failed"
    snapshot_state "$R" "$CASE.after"
    assert_same_state "$CASE.before" "$CASE.after"
    unmount_all_under "$R"
fi

log "hostile cases: ${#CASES_RUN[@]} (${CASES_RUN[*]})"
echo "hostile cases: ${#CASES_RUN[@]}"
finish
