#!/bin/bash
# Kernel modules shipped by extensions, and module loading faults.
#   - Two sysexts each ship a module for the running kernel plus a
#     modules.dep* of their own that knows only that module; b's module
#     needs a's, a's needs the root's. After the merge the root's
#     /usr/lib/modules/KVER index covers all three (modprobe --show-depends
#     resolves b to base, a, b; aliases from a are found), the extensions'
#     own indexes are hidden, directories keep the root's owner and mode.
#     A refresh builds it again (over the root's /usr beneath the merge).
#   - Links leading out of an image (KVER itself: the image is skipped;
#     a module or a subdirectory in KVER: left out of the index): nothing
#     is written or read outside the root.
#   - Without extension modules the root's index is left as it is.
#   - depmod failing (injected, or a depmod that exits 1): the extensions
#     with modules are skipped with the reason, the rest merges, the root's
#     index stays, and unmerge leaves the root as it was.
#   - A module that fails to load (RDEXT_FAULT=module-load:N, every N a
#     merge passes): the image needing it is skipped naming the module (the
#     view for the index needs overlayfs first: then the extensions with
#     modules are); overlayfs itself failing fails the whole merge; either
#     way nothing is left behind.
# The modules are tiny ELF objects built here with cc: depmod reads only
# their symbol tables and .modinfo, and nothing loads them on the host.
source "$(dirname "$0")/lib.sh"
require_root_env

command -v cc >/dev/null || skip "no C compiler to build test modules"
DEPMOD=$(command -v depmod || echo /usr/sbin/depmod)
[[ -x $DEPMOD ]] || skip "no depmod"
command -v modprobe >/dev/null || [[ -x /usr/sbin/modprobe ]] || skip "no modprobe"
export PATH=$PATH:/usr/sbin:/sbin

KVER=$(uname -r)
R=$TEST_DIR/root
B=$TEST_DIR/build
M=usr/lib/modules/$KVER
make_root "$R"

# make_module OUT NAME [EXPORT] [USES]: a relocatable object depmod takes
# for module NAME, exporting symbol EXPORT and needing symbol USES.
make_module() {
    local out=$1 name=$2 export=${3:-} uses=${4:-} src=$TEST_DIR/$2.c
    {
        [[ -n $uses ]] && echo "extern int $uses(void);"
        echo "int ${name}_func(void) { return ${uses:+$uses() + }1; }"
        [[ -n $export ]] && echo "static const char ks[] __attribute__((section(\"__ksymtab_strings\"), used)) = \"$export\";"
        echo "static const char mi[] __attribute__((section(\".modinfo\"), used)) = \"license=GPL\\0alias=${name//_/-}-alias\\0name=$name\";"
    } >"$src"
    mkdir -p "$(dirname "$out")"
    cc -c -O2 -o "$out" "$src" || fail "cannot build test module $name"
}

check "building the root's modules and index, and two extensions with modules"
make_module "$R/$M/kernel/rdext/rdext_base.ko" rdext_base rdext_base_func
"$DEPMOD" -b "$R/usr" "$KVER" 2>/dev/null
root_dep=$(sha256sum <"$R/$M/modules.dep")
make_ext_tree "$B/a" a sysext -- usr/share/t/a=a
make_module "$B/a/$M/extra/rdext_a.ko" rdext_a rdext_a_func rdext_base_func
"$DEPMOD" -b "$B/a/usr" "$KVER" 2>/dev/null  # an index of its own: only rdext_a
make_erofs "$B/a" "$R/var/lib/extensions/a.raw"
make_ext_tree "$B/b" b sysext -- usr/share/t/b=b
make_module "$B/b/$M/updates/rdext_b.ko" rdext_b "" rdext_a_func
"$DEPMOD" -b "$B/b/usr" "$KVER" 2>/dev/null
make_squashfs "$B/b" "$R/var/lib/extensions/b.raw"
make_ext_tree "$B/c" c sysext -- usr/share/t/c=c opt/t/c=c
cp -a "$B/c" "$R/etc/extensions/c"
grep -q rdext_base "$B/b/$M/modules.dep" && fail "the test extension's own index should not know the root's module"
bind_root "$R"
snapshot_state "$R" before

# show_depends NAME: the modules modprobe would load for NAME from the
# merged root, in order, as names.
show_depends() {
    modprobe -d "$R/usr" -S "$KVER" --show-depends "$1" 2>&1 | sed -n 's|^insmod .*/\([^/]*\)\.ko .*|\1|p' |
        tr '\n' ' '
}

check "the merged index covers the root's and both extensions' modules"
run_rdext --root="$R" --log-level=info merge
expect_rc 0
assert_merged "$R" /usr a b c
expect_stderr_line "merged module index for $KVER" "2 extension"
got=$(show_depends rdext_b)
[[ $got == "rdext_base rdext_a rdext_b " ]] || fail "modprobe --show-depends rdext_b gives '$got' (expected rdext_base rdext_a rdext_b)"
got=$(show_depends rdext-a-alias)
[[ $got == "rdext_base rdext_a " ]] || fail "the alias of rdext_a resolves to '$got'"
got=$(show_depends rdext_base)
[[ $got == "rdext_base " ]] || fail "the root's own module resolves to '$got'"
grep -qx "updates/rdext_b.ko: extra/rdext_a.ko kernel/rdext/rdext_base.ko" "$R/$M/modules.dep" ||
    fail "modules.dep lacks b's line: $(cat "$R/$M/modules.dep")"
[[ -f $R/$M/modules.dep.bin && -f $R/$M/modules.alias.bin && -f $R/$M/modules.symbols.bin ]] ||
    fail "binary indexes missing: $(ls "$R/$M")"
assert_file_content "$R/usr/share/t/a" a
for d in usr/lib usr/lib/modules "$M"; do
    [[ $(stat -c %a:%u:%g "$R/$d") == 755:0:0 ]] || fail "$d is $(stat -c %a:%u:%g "$R/$d") in the merged root"
done

check "a refresh (with one more extension) builds the index again over the root's own modules"
make_ext_tree "$B/d" d sysext -- usr/share/t/d=d
cp -a "$B/d" "$R/run/extensions/d"
run_rdext --root="$R" --log-level=info refresh
expect_rc 0
assert_merged "$R" /usr a b c d
expect_stderr_line "merged module index for $KVER" "2 extension"
got=$(show_depends rdext_b)
[[ $got == "rdext_base rdext_a rdext_b " ]] || fail "after refresh, rdext_b resolves to '$got'"
run_rdext --root="$R" unmerge
rm -rf "$R/run/extensions/d"
expect_rc 0
[[ $(sha256sum <"$R/$M/modules.dep") == "$root_dep" ]] || fail "the root's modules.dep changed"
snapshot_state "$R" after-merge
assert_same_state before after-merge

check "module directories leading out of the image: nothing written or read there"
# zz-link: usr/lib/modules/KVER is a link to a writable host directory
# holding a module (on top of a and b, which ship modules: the view's KVER
# would be the link); zz-inner: a real KVER directory whose module and
# subdirectory are links out. zz-link is skipped naming the link, zz-inner
# merges with its links left out of the index.
OUT=$TEST_DIR/outside-modules
make_module "$OUT/kver/kernel/rdext_outside.ko" rdext_outside
make_module "$OUT/loose/rdext_loose.ko" rdext_loose
make_module "$OUT/subdir/rdext_subdir.ko" rdext_subdir
out_before=$(cd "$OUT" && find . -printf '%p %s %T@\n' | sort)
make_ext_tree "$R/etc/extensions/zz-link" zz-link sysext -- usr/share/t/zz-link=zz-link
mkdir -p "$R/etc/extensions/zz-link/usr/lib/modules"
ln -s "$OUT/kver" "$R/etc/extensions/zz-link/$M"
make_ext_tree "$R/etc/extensions/zz-inner" zz-inner sysext -- usr/share/t/zz-inner=zz-inner
mkdir -p "$R/etc/extensions/zz-inner/$M/extra"
ln -s "$OUT/loose/rdext_loose.ko" "$R/etc/extensions/zz-inner/$M/extra/rdext_loose.ko"
ln -s "$OUT/subdir" "$R/etc/extensions/zz-inner/$M/extra/subdir"
run_rdext --root="$R" --log-level=info merge
expect_rc 0
assert_merged "$R" /usr a b c zz-inner
expect_stderr_line "zz-link" "modules/$KVER" "link"
[[ $(cd "$OUT" && find . -printf '%p %s %T@\n' | sort) == "$out_before" ]] ||
    fail "the module index step wrote outside the root: $(cd "$OUT" && find . -newer "$OUT/subdir/rdext_subdir.ko")"
for m in rdext_outside rdext_loose rdext_subdir; do
    ! grep -q "$m" "$R/$M/modules.dep" || fail "a module from outside the root ($m) is in the merged index"
done
got=$(show_depends rdext_b)
[[ $got == "rdext_base rdext_a rdext_b " ]] || fail "with hostile links, rdext_b resolves to '$got'"
run_rdext --root="$R" unmerge
expect_rc 0
rm -rf "$R/etc/extensions/zz-link" "$R/etc/extensions/zz-inner"
[[ $(sha256sum <"$R/$M/modules.dep") == "$root_dep" ]] || fail "the root's modules.dep changed"

check "without extension modules the root's index is untouched"
printf 'rd.sysext.exclude=a,b\n' >"$TEST_DIR/cmdline"
run_rdext --root="$R" --cmdline-file="$TEST_DIR/cmdline" --log-level=debug merge
expect_rc 0
assert_merged "$R" /usr c
grep -q "module index" "$TEST_DIR/last.err" && fail "a module index was built without extension modules"
[[ $(sha256sum <"$R/$M/modules.dep") == "$root_dep" ]] || fail "the root's modules.dep changed"
run_rdext --root="$R" unmerge
expect_rc 0

# index_fails WHAT WHY ENV...: merging with ENV, the extensions with
# modules are skipped naming the index and WHY, c merges, the root keeps its
# index.
index_fails() {
    local what=$1 why=$2; shift 2
    check "$what: extensions with modules are skipped, the rest merges"
    env "$@" "$RDEXT" --root="$R" merge >"$TEST_DIR/last.out" 2>"$TEST_DIR/last.err" && LAST_RC=0 || LAST_RC=$?
    LAST_CMD="env $* rdext merge"
    expect_rc 0
    expect_stderr_line "a\.raw" "ships kernel modules" "module index cannot be built" "$why"
    expect_stderr_line "b\.raw" "ships kernel modules"
    assert_merged "$R" /usr c
    [[ $(sha256sum <"$R/$M/modules.dep") == "$root_dep" ]] || fail "the root's modules.dep changed"
    [[ ! -e $R/$M/extra ]] || fail "a's modules are visible although a was skipped"
    run_rdext --root="$R" --json status
    [[ $(json_query "$TEST_DIR/last.out" "sorted(e['name'] for e in d['extensions'] if e['result'] == 'skipped')") == '["a", "b"]' ]] ||
        fail "status does not report a and b as skipped: $(last_out)"
    run_rdext --root="$R" unmerge
    expect_rc 0
    snapshot_state "$R" "after-$what"
    assert_same_state before "after-$what"
}
index_fails injected "injected fault at module-index" RDEXT_FAULT=module-index:1
index_fails failing-depmod "/bin/false exited with status 1" RDEXT_DEPMOD=/bin/false
index_fails no-depmod "RDEXT_DEPMOD=/nonexistent is not an executable" RDEXT_DEPMOD=/nonexistent

check "every module load can fail: the image is skipped naming the module, or the merge fails; nothing is left"
RDEXT_FAULT_TRACE=1 run_rdext --root="$R" merge
expect_rc 0
mapfile -t points < <(grep -o 'fault point module-load:[0-9]*' "$TEST_DIR/last.err" | cut -d' ' -f3)
run_rdext --root="$R" unmerge
(( ${#points[@]} >= 3 )) || fail "expected module loads for erofs, squashfs and overlay, saw: ${points[*]}"
log "module loads of a merge: ${points[*]}"
for p in "${points[@]}"; do
    check "fault at $p"
    RDEXT_FAULT=$p run_rdext --root="$R" merge
    expect_stderr_line "kernel module [a-z_-]+: injected fault at module-load"
    if [[ $LAST_RC == 0 ]]; then
        expect_stderr_line "skipping sysext" "kernel module"
        run_rdext --root="$R" unmerge
        expect_rc 0
    else
        expect_rc 1
        assert_not_merged "$R" /usr
        assert_no_staging "$R"
    fi
    snapshot_state "$R" "after-$p"
    assert_same_state before "after-$p"
done

check "overlayfs failing to load fails the whole merge, leaving nothing"
printf 'rd.sysext.exclude=a,b\n' >"$TEST_DIR/cmdline"
RDEXT_FAULT=module-load:1 run_rdext --root="$R" --cmdline-file="$TEST_DIR/cmdline" merge
expect_rc 1
expect_stderr_line "overlay for /usr" "kernel module fs-overlay: injected fault"
assert_not_merged "$R" /usr
assert_not_merged "$R" /opt
assert_no_staging "$R"
snapshot_state "$R" after-overlay-module
assert_same_state before after-overlay-module
finish
