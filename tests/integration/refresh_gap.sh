#!/bin/bash
# refresh_gap: a refresh must never show the bare hierarchy. While a refresh
# swaps between two extension sets (A and B, both shipping the same paths),
# reader processes open, in a tight loop, a file of the root's own /usr, a
# file both sets ship in /usr, and (rdext) one both confext sets ship in
# /etc. Counted: lookups and failed lookups.
#  - rdext (mount beneath): zero failures, on a private and on a shared root;
#  - the readers saw both sets' content (the swaps really happened);
#  - rdext with mount beneath disabled (the 6.1 fallback): the readers must
#    see its gap (or they could not see one above); every refresh's stderr
#    says whether it fell back (the fallback only, all of its refreshes);
#  - the stock systemd-sysext refresh on the same setup, for comparison:
#    its failures are printed next to rdext's (not asserted: that gap is
#    what rdext closes).
# GAP_REFRESHES (default 20) and GAP_READERS (default 4) tune the run.
source "$(dirname "$0")/lib.sh"
require_root_env

B=$TEST_DIR/build
N=${GAP_REFRESHES:-20}
READERS=${GAP_READERS:-4}

make_ext_tree "$B/gapa" gapa sysext -- "usr/share/gap/both=A" "usr/bin/gap-tool=A"
make_ext_tree "$B/gapb" gapb sysext -- "usr/share/gap/both=B" "usr/bin/gap-tool=B"
make_ext_tree "$B/cgapa" cgapa confext -- "etc/gap/both.conf=A"
make_ext_tree "$B/cgapb" cgapb confext -- "etc/gap/both.conf=B"
make_erofs "$B/gapa" "$B/gapa.raw"
make_erofs "$B/gapb" "$B/gapb.raw"
make_erofs "$B/cgapa" "$B/cgapa.raw"
make_erofs "$B/cgapb" "$B/cgapb.raw"

cat >"$TEST_DIR/reader.py" <<'PYEOF'
import os, sys
stop, out, paths = sys.argv[1], sys.argv[2], sys.argv[3:]
ok = failed = 0
seen = set()
while not os.path.exists(stop):
    for p in paths:
        try:
            fd = os.open(p, os.O_RDONLY)
            data = os.read(fd, 16)
            os.close(fd)
            ok += 1
            seen.add(data.strip().decode())
        except OSError:
            failed += 1
with open(out, "w") as f:
    f.write(f"{ok} {failed} {' '.join(sorted(seen))}\n")
PYEOF

# populate ROOT: set A in place (sysext and, for rdext, confext)
populate() {
    local r=$1 with_confext=$2
    make_root "$r"
    cp "$B/gapa.raw" "$r/var/lib/extensions/gapa.raw"
    [[ $with_confext == 0 ]] || cp "$B/cgapa.raw" "$r/var/lib/confexts/cgapa.raw"
}

# swap_set ROOT I: set A for odd I, set B for even I
swap_set() {
    local r=$1 i=$2 from=b to=a
    (( i % 2 == 0 )) && { from=a; to=b; }
    rm -f "$r/var/lib/extensions/gap$from.raw"
    cp "$B/gap$to.raw" "$r/var/lib/extensions/gap$to.raw"
    if [[ -e $r/var/lib/confexts/cgap$from.raw ]]; then
        rm -f "$r/var/lib/confexts/cgap$from.raw"
        cp "$B/cgap$to.raw" "$r/var/lib/confexts/cgap$to.raw"
    fi
}

# gap_run LABEL ROOT PATHS -- REFRESH-COMMAND...: readers on PATHS while
# the command refreshes N times; sets GAP_OK GAP_FAILED GAP_SEEN. With
# GAP_FALLBACK=yes (or no), every refresh's stderr must (must not) report
# the fallback from mount beneath.
gap_run() {
    local label=$1 r=$2; shift 2
    local paths=() i
    while [[ $1 != -- ]]; do paths+=("$1"); shift; done
    shift
    local stop=$TEST_DIR/stop.$label
    rm -f "$stop"
    for (( i = 0; i < READERS; i++ )); do
        python3 "$TEST_DIR/reader.py" "$stop" "$TEST_DIR/reader.$label.$i" "${paths[@]}" &
    done
    sleep 0.3
    local refresh_failures=0 wrong_path=0 said
    for (( i = 2; i <= N + 1; i++ )); do
        swap_set "$r" "$i"
        run_cmd "$@"
        [[ $LAST_RC == 0 ]] || { refresh_failures=$((refresh_failures + 1)); sed 's/^/    | /' "$TEST_DIR/last.err" >&2; }
        said=no
        grep -q 'mount beneath not supported' "$TEST_DIR/last.err" && said=yes
        [[ -z ${GAP_FALLBACK:-} || $said == "$GAP_FALLBACK" ]] || wrong_path=$((wrong_path + 1))
    done
    sleep 0.3
    touch "$stop"
    wait
    GAP_OK=0 GAP_FAILED=0 GAP_SEEN=""
    local ok failed seen
    for (( i = 0; i < READERS; i++ )); do
        read -r ok failed seen <"$TEST_DIR/reader.$label.$i"
        GAP_OK=$((GAP_OK + ok)) GAP_FAILED=$((GAP_FAILED + failed))
        GAP_SEEN="$GAP_SEEN $seen"
    done
    GAP_SEEN=$(tr ' ' '\n' <<<"$GAP_SEEN" | sort -u | tr '\n' ' ')
    (( refresh_failures == 0 )) || defer_fail "$label: $refresh_failures of $N refreshes failed"
    (( wrong_path == 0 )) ||
        defer_fail "$label: $wrong_path of $N refreshes did not match GAP_FALLBACK=$GAP_FALLBACK (reported the fallback: yes/no)"
    log "$label: $N refreshes, $READERS readers: $GAP_OK lookups, $GAP_FAILED failed (content seen: $GAP_SEEN)"
}

check "rdext refresh on a private root: no lookup fails"
RP=$TEST_DIR/root-private
populate "$RP" 1
bind_root "$RP"
run_rdext --root="$RP" merge
expect_rc 0
assert_merged "$RP" /usr gapa
assert_merged "$RP" /etc cgapa
GAP_FALLBACK=no gap_run rdext-private "$RP" "$RP/usr/share/base-file" "$RP/usr/share/gap/both" "$RP/etc/gap/both.conf" \
    -- "$RDEXT" --root="$RP" refresh
(( GAP_FAILED == 0 )) || defer_fail "rdext (private root): $GAP_FAILED of $((GAP_OK + GAP_FAILED)) lookups failed"
(( GAP_OK >= 1000 )) || defer_fail "rdext (private root): only $GAP_OK lookups, the readers did not run"
[[ $GAP_SEEN == *A*B* ]] || defer_fail "rdext (private root): readers saw '$GAP_SEEN', not both sets A and B"
RDEXT_PRIVATE="$GAP_FAILED/$((GAP_OK + GAP_FAILED))"
run_rdext --root="$RP" unmerge
expect_rc 0

check "rdext refresh on a shared root (as systemd sets up /): no lookup fails"
RS=$TEST_DIR/root-shared
populate "$RS" 1
share_root "$RS"
run_rdext --root="$RS" merge
expect_rc 0
GAP_FALLBACK=no gap_run rdext-shared "$RS" "$RS/usr/share/base-file" "$RS/usr/share/gap/both" "$RS/etc/gap/both.conf" \
    -- "$RDEXT" --root="$RS" refresh
(( GAP_FAILED == 0 )) || defer_fail "rdext (shared root): $GAP_FAILED of $((GAP_OK + GAP_FAILED)) lookups failed"
(( GAP_OK >= 1000 )) || defer_fail "rdext (shared root): only $GAP_OK lookups"
[[ $GAP_SEEN == *A*B* ]] || defer_fail "rdext (shared root): readers saw '$GAP_SEEN', not both sets A and B"
RDEXT_SHARED="$GAP_FAILED/$((GAP_OK + GAP_FAILED))"
run_rdext --root="$RS" unmerge

check "rdext without mount beneath (RDEXT_TEST_NO_BENEATH=1, as on 6.1): the short gap, which the readers must see"
RF=$TEST_DIR/root-fallback
populate "$RF" 1
bind_root "$RF"
run_rdext --root="$RF" merge
expect_rc 0
GAP_FALLBACK=yes gap_run rdext-fallback "$RF" "$RF/usr/share/base-file" "$RF/usr/share/gap/both" "$RF/etc/gap/both.conf" \
    -- env RDEXT_TEST_NO_BENEATH=1 "$RDEXT" --root="$RF" refresh
# The fallback has a gap: readers that miss it could not see one in the
# checks above either.
(( GAP_FAILED > 0 )) || defer_fail "the readers saw no gap in the fallback ($GAP_OK lookups): they cannot detect one"
RDEXT_FALLBACK="$GAP_FAILED/$((GAP_OK + GAP_FAILED))"
run_rdext --root="$RF" unmerge

SYSTEMD="not run (no systemd-sysext)"
if command -v systemd-sysext >/dev/null; then
    check "systemd-sysext refresh on the same setup, for comparison (sysext only: 252 has no confext)"
    RY=$TEST_DIR/root-systemd
    populate "$RY" 0
    share_root "$RY"
    run_cmd systemd-sysext --root="$RY" merge
    expect_rc 0
    gap_run systemd-sysext "$RY" "$RY/usr/share/base-file" "$RY/usr/share/gap/both" \
        -- systemd-sysext --root="$RY" refresh
    SYSTEMD="$GAP_FAILED/$((GAP_OK + GAP_FAILED))"
    run_cmd systemd-sysext --root="$RY" unmerge
fi

log "failed/total lookups during $N refreshes: rdext private root $RDEXT_PRIVATE, rdext shared root $RDEXT_SHARED, rdext without mount beneath $RDEXT_FALLBACK, systemd-sysext $SYSTEMD"
finish
