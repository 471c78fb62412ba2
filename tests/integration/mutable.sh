#!/bin/bash
# mutable: systemd-sysext's mutable modes (--mutable=, rd.sysext.mutable=,
# rd.confext.mutable=), with its directories:
#  - no: read-only; yes: writes land in /var/lib/extensions.mutable/usr (work
#    dir .systemd-usr-workdir beside it) and survive unmerge + merge; the
#    metadata directory stays read-only;
#  - auto: writable only when extensions.mutable/usr exists;
#  - import: that directory's files shown, read-only;
#  - ephemeral / ephemeral-import: writable, writes gone after unmerge + merge;
#  - extensions.mutable/usr linked to /usr: the hierarchy is its own upper;
#  - linked anywhere else (/, or climbing out with ..): refused with a
#    warning, /usr merged read-only, nothing created outside the root;
#  - rd.confext.mutable=yes makes /etc writable, leaves /usr alone;
#  - refresh keeps a persistent merge's writes; systemd-sysext unmerges it;
#  - unknown modes are refused (CLI) or warned about (kernel command line);
#  - unmerge leaves no mount, loop device or staging behind.
source "$(dirname "$0")/lib.sh"
require_root_env

R=$TEST_DIR/root
B=$TEST_DIR/build
T=usr/share/rdext-test
M=$R/var/lib/extensions.mutable
make_root "$R"
make_ext_tree "$B/one" one sysext -- "$T/one=one" "opt/one/file=one"
cp -a "$B/one" "$R/var/lib/extensions/one"
make_ext_tree "$B/cx" cx confext -- "etc/rdext-test/cx=cx"
cp -a "$B/cx" "$R/var/lib/confexts/cx"
bind_root "$R"
snapshot_state "$R" before

writable() { ( echo "$2" >"$1" ) 2>/dev/null; }
expect_writable() { writable "$1" "$2" || fail "cannot write $1 (${3:-})"; }
expect_readonly() { ! writable "$1" x || fail "$1 is writable, expected a read-only merge (${2:-})"; }
merge_mode() {
    run_rdext --root="$R" --mutable="$1" merge
    expect_rc 0
}
unmerge() { run_rdext --root="$R" unmerge; expect_rc 0; assert_not_merged "$R" /usr; }

check "no: the merge is read-only"
merge_mode no
assert_merged "$R" /usr one
expect_readonly "$R/usr/share/w-no" "mode no"
[[ ! -e $M ]] || fail "mode no created $M"
unmerge

check "yes: writes land in extensions.mutable/usr and survive unmerge + merge"
merge_mode yes
mountpoint -q "$R/usr" || fail "/usr is not merged"
[[ -f $R/$T/one ]] || fail "extension file missing in a mutable merge"
expect_writable "$R/usr/share/w-yes" yes "mode yes"
assert_file_content "$M/usr/share/w-yes" yes
[[ -d $M/.systemd-usr-workdir ]] || fail "work dir $M/.systemd-usr-workdir missing"
[[ $(cat "$R/usr/.systemd-sysext/work_dir") == /var/lib/extensions.mutable/.systemd-usr-workdir ]] ||
    fail "work_dir metadata says '$(cat "$R/usr/.systemd-sysext/work_dir")'"
grep -q '"mutable":"yes"' "$R/usr/.systemd-sysext/rdext" || fail "rdext's record does not say mode yes"
grep -q '"mode":"yes"' <(tr -d ' \t\n' <"$R/usr/.systemd-sysext/origin") || fail "origin does not record mode yes"
expect_readonly "$R/usr/.systemd-sysext/extensions" "the metadata must stay read-only"
expect_writable "$R/opt/w-yes" yes "/opt in mode yes"
assert_file_content "$M/opt/w-yes" yes
[[ ,$(mount_opts "$R/usr"), == *,rw,* ]] || fail "/usr not mounted rw: $(mount_opts "$R/usr")"
check "rdext status shows the mutable merge"
run_rdext --root="$R" --json status
expect_rc 0
unmerge
[[ ! -e $R/usr/share/w-yes ]] || fail "w-yes visible in the root's own /usr after unmerge"
merge_mode yes
assert_file_content "$R/usr/share/w-yes" yes

check "refresh of a mutable merge keeps the writes and adds the new image"
make_ext_tree "$B/two" two sysext -- "$T/two=two"
cp -a "$B/two" "$R/var/lib/extensions/two"
run_rdext --root="$R" --mutable=yes refresh
expect_rc 0
assert_file_content "$R/$T/two" two
assert_file_content "$R/usr/share/w-yes" yes
expect_writable "$R/usr/share/w-after-refresh" x "after refresh"
assert_file_content "$M/usr/share/w-after-refresh" x
n=$(awk -v m="$R/usr" '$5 == m' /proc/self/mountinfo | wc -l)
(( n == 1 )) || fail "$n mounts on $R/usr after a mutable refresh"
rm -rf "$R/var/lib/extensions/two"
unmerge

check "auto: read-only without extensions.mutable/usr, writable with it"
mv "$M" "$B/mutable.away"
merge_mode auto
expect_readonly "$R/usr/share/w-auto" "auto without the directory"
unmerge
mv "$B/mutable.away" "$M"
merge_mode auto
expect_writable "$R/usr/share/w-auto" auto "auto with the directory"
assert_file_content "$M/usr/share/w-auto" auto
unmerge

check "import: extensions.mutable/usr is shown, read-only"
merge_mode import
assert_file_content "$R/usr/share/w-yes" yes
[[ -f $R/$T/one ]] || fail "extension file missing in import mode"
expect_readonly "$R/usr/share/w-import" "import"
unmerge

for mode in ephemeral ephemeral-import; do
    check "$mode: writable, the writes are gone after unmerge + merge"
    merge_mode "$mode"
    expect_writable "$R/usr/share/w-eph" eph "$mode"
    [[ ! -e $M/usr/share/w-eph ]] || fail "$mode wrote into $M"
    if [[ $mode == ephemeral-import ]]; then
        assert_file_content "$R/usr/share/w-yes" yes
    elif [[ -e $R/usr/share/w-yes ]]; then
        fail "ephemeral shows extensions.mutable's w-yes (only the import modes do)"
    fi
    unmerge
    merge_mode "$mode"
    [[ ! -e $R/usr/share/w-eph ]] || fail "$mode: w-eph survived unmerge + merge"
    unmerge
done

check "extensions.mutable/usr linked to /usr: the hierarchy itself takes the writes"
mv "$M/usr" "$B/mutable-usr.away"
ln -s /usr "$M/usr"
merge_mode yes
[[ -f $R/$T/one ]] || fail "extension file missing"
expect_writable "$R/usr/share/w-direct" direct "linked upper"
[[ -d $R/.systemd-usr-workdir ]] || fail "work dir $R/.systemd-usr-workdir missing"
unmerge
assert_file_content "$R/usr/share/w-direct" direct
rm -f "$R/usr/share/w-direct" "$M/usr"
mv "$B/mutable-usr.away" "$M/usr"

rm -rf "$R/.systemd-usr-workdir"  # the linked case's, so a new one shows
for link in / ../../../../../.. /usr/bin; do
    for mode in auto yes import; do
        if [[ $mode == import ]]; then
            # import reads the link's target inside the root, as systemd-sysext
            # 257 does; these targets overlap /usr, which overlayfs refuses
            check "extensions.mutable/usr -> $link, mode import: the merge fails, nothing merged or created"
        else
            check "extensions.mutable/usr -> $link, mode $mode: refused, read-only, nothing created outside the root"
        fi
        mv "$M/usr" "$B/mutable-usr.away"
        ln -s "$link" "$M/usr"
        before_outside=$(ls -A "$TEST_DIR" /)
        run_rdext --root="$R" --mutable="$mode" merge
        for d in "$TEST_DIR" / "$R" "$R/usr"; do
            [[ ! -e $d/.systemd-usr-workdir ]] || fail "work dir created in $d for a link to $link"
        done
        if [[ $mode == import ]]; then
            expect_rc 1
            assert_not_merged "$R" /usr
            assert_not_merged "$R" /opt
        else
            expect_rc 0
            expect_stderr_line 'extensions\.mutable/usr' 'symlink'
            assert_merged "$R" /usr one
            expect_readonly "$R/usr/share/w-link" "extensions.mutable/usr -> $link"
            unmerge
        fi
        [[ ! -e $R/usr/share/base-file/w-link && ! -e $R/w-link ]] || fail "a write went through the link"
        [[ $(ls -A "$TEST_DIR" /) == "$before_outside" ]] || fail "the merge created files outside the root"
        rm -f "$M/usr"
        mv "$B/mutable-usr.away" "$M/usr"
    done
done

check "import and ephemeral-import with extensions.mutable/usr -> /srv/imp: its files are one more layer"
mv "$M/usr" "$B/mutable-usr.away"
mkdir -p "$R/srv/imp"
echo imp >"$R/srv/imp/imported"
ln -s /srv/imp "$M/usr"
for mode in import ephemeral-import; do
    merge_mode "$mode"
    [[ -f $R/$T/one ]] || fail "$mode: extension file missing"
    assert_file_content "$R/usr/imported" imp
    if [[ $mode == import ]]; then
        expect_readonly "$R/usr/share/w-imp" "import through a link"
    else
        expect_writable "$R/usr/share/w-imp" x "ephemeral-import through a link"
    fi
    unmerge
    [[ ! -e $R/srv/imp/share ]] || fail "$mode: a write reached the link's target"
done
rm -rf "$M/usr" "$R/srv/imp"
mv "$B/mutable-usr.away" "$M/usr"

check "rd.confext.mutable=yes: /etc writable into extensions.mutable/etc, /usr stays read-only"
echo "rd.confext.mutable=yes" >"$TEST_DIR/cmdline"
run_rdext --root="$R" --cmdline-file="$TEST_DIR/cmdline" merge
expect_rc 0
expect_writable "$R/etc/w-conf" conf "confext yes"
assert_file_content "$M/etc/w-conf" conf
expect_readonly "$R/usr/share/w-usr" "sysext untouched by rd.confext.mutable"
unmerge
echo "rd.sysext.mutable=ephemeral" >"$TEST_DIR/cmdline"
run_rdext --root="$R" --cmdline-file="$TEST_DIR/cmdline" merge
expect_rc 0
expect_writable "$R/usr/share/w-cmd" x "rd.sysext.mutable=ephemeral"
expect_readonly "$R/etc/w-conf2" "confext untouched by rd.sysext.mutable"
unmerge

check "unknown modes: refused on the command line, a warning on the kernel command line"
run_rdext --root="$R" --mutable=sometimes merge
expect_rc 2
echo "rd.sysext.mutable=sometimes" >"$TEST_DIR/cmdline"
run_rdext --root="$R" --cmdline-file="$TEST_DIR/cmdline" merge
expect_rc 0
expect_stderr_line 'rd\.sysext\.mutable' 'mutable mode'
expect_readonly "$R/usr/share/w-bad" "an unknown mode means no"
unmerge

check "SYSTEMD_SYSEXT_MUTABLE_MODE / SYSTEMD_CONFEXT_MUTABLE_MODE: each class's default, --mutable= overrides"
run_cmd env SYSTEMD_SYSEXT_MUTABLE_MODE=ephemeral "$RDEXT" --root="$R" merge
expect_rc 0
expect_writable "$R/usr/share/w-env" x "SYSTEMD_SYSEXT_MUTABLE_MODE=ephemeral"
expect_readonly "$R/etc/w-env" "confext untouched by SYSTEMD_SYSEXT_MUTABLE_MODE"
unmerge
run_cmd env SYSTEMD_CONFEXT_MUTABLE_MODE=ephemeral "$RDEXT" --root="$R" merge
expect_rc 0
expect_writable "$R/etc/w-env" x "SYSTEMD_CONFEXT_MUTABLE_MODE=ephemeral"
expect_readonly "$R/usr/share/w-env" "sysext untouched by SYSTEMD_CONFEXT_MUTABLE_MODE"
unmerge
run_cmd env SYSTEMD_SYSEXT_MUTABLE_MODE=ephemeral "$RDEXT" --root="$R" --mutable=no merge
expect_rc 0
expect_readonly "$R/usr/share/w-env" "--mutable=no over the environment"
unmerge
check "the environment over rd.sysext.mutable= (the kernel command line is the machine's default)"
echo "rd.sysext.mutable=no" >"$TEST_DIR/cmdline"
run_cmd env SYSTEMD_SYSEXT_MUTABLE_MODE=ephemeral "$RDEXT" --root="$R" --cmdline-file="$TEST_DIR/cmdline" merge
expect_rc 0
expect_writable "$R/usr/share/w-env" x "the environment over rd.sysext.mutable=no"
unmerge
check "an unknown SYSTEMD_SYSEXT_MUTABLE_MODE is warned about and ignored"
run_cmd env SYSTEMD_SYSEXT_MUTABLE_MODE=sometimes "$RDEXT" --root="$R" merge
expect_rc 0
expect_stderr_line 'SYSTEMD_SYSEXT_MUTABLE_MODE' 'sometimes'
expect_readonly "$R/usr/share/w-env" "an unknown mode in the environment means the default"
unmerge

check "--mutable=help lists the modes and exits 0"
run_rdext --mutable=help
expect_rc 0
[[ $(cat "$TEST_DIR/last.out") == $'no\nyes\nauto\nimport\nephemeral\nephemeral-import' ]] ||
    fail "--mutable=help printed: $(tr '\n' ' ' <"$TEST_DIR/last.out")"

check "auto with extensions.mutable/usr a dangling symlink: merged read-only"
mv "$M/usr" "$B/mutable-usr.away"
ln -s /nonexistent "$M/usr"
merge_mode auto
assert_merged "$R" /usr one
expect_readonly "$R/usr/share/w-dangling" "auto, dangling link"
[[ ! -e $R/nonexistent && ! -e $R/.systemd-usr-workdir ]] || fail "auto created something for a dangling link"
unmerge
rm -f "$M/usr"

check "import and ephemeral-import with extensions.mutable/usr linked to /usr: refused, nothing merged"
ln -s /usr "$M/usr"
for mode in import ephemeral-import; do
    run_rdext --root="$R" --mutable="$mode" merge
    expect_rc 1
    expect_stderr_line 'extensions\.mutable/usr' 'hierarchy itself'
    assert_not_merged "$R" /usr
    assert_not_merged "$R" /opt
done
rm -f "$M/usr"
mv "$B/mutable-usr.away" "$M/usr"

check "yes and auto with extensions.mutable/usr's mode not the hierarchy's: refused, nothing merged"
chmod 0700 "$M/usr"
for mode in yes auto; do
    run_rdext --root="$R" --mutable="$mode" merge
    expect_rc 1
    expect_stderr_line 'extensions\.mutable/usr' '0700' '0755'
    assert_not_merged "$R" /usr
done
check "ephemeral and import do not compare the mode"
merge_mode import
assert_merged "$R" /usr one
unmerge
chmod 0755 "$M/usr"

check "a hierarchy missing from the root: created (0755) and merged when an extension has files for it"
R2=$TEST_DIR/root-noopt
make_root "$R2"
rmdir "$R2/opt" 2>/dev/null || rm -rf "$R2/opt"
cp -a "$B/one" "$R2/var/lib/extensions/one"
bind_root "$R2"
run_rdext --root="$R2" merge
expect_rc 0
assert_merged "$R2" /opt one
assert_file_content "$R2/opt/one/file" one
[[ $(stat -c %a "$R2/opt") == 755 ]] || fail "merged /opt has mode $(stat -c %a "$R2/opt")"
run_rdext --root="$R2" unmerge
expect_rc 0
assert_not_merged "$R2" /opt
[[ -d $R2/opt && ! -L $R2/opt && -z $(ls -A "$R2/opt") ]] || fail "the created /opt is not left as an empty directory"
check "a hierarchy missing from the root: not created when no extension has files for it"
rmdir "$R2/opt"
rm -rf "$R2/var/lib/extensions/one/opt"
run_rdext --root="$R2" merge
expect_rc 0
[[ ! -e $R2/opt ]] || fail "/opt created with no extension carrying files for it"
run_rdext --root="$R2" unmerge
umount "$R2"

if command -v systemd-sysext >/dev/null; then
    check "systemd-sysext unmerges a mutable rdext merge"
    merge_mode yes
    run_cmd systemd-sysext --root="$R" unmerge
    expect_rc 0
    assert_not_merged "$R" /usr
    assert_not_merged "$R" /opt
    # 252 knows no confext: /etc is rdext's to unmerge
    leftover=$(mounts_under "$R/usr"; mounts_under "$R/opt")
    [[ -z $leftover ]] || fail "mounts left after systemd-sysext unmerge: $leftover"
    run_rdext --root="$R" unmerge
fi

check "after all that, the state equals the one before"
snapshot_state "$R" after
assert_same_state before after
finish
