#!/usr/bin/env bash
# refresh in the booted guest (kernel 6.12: mount beneath): while
# `rdext refresh` swaps between two extension sets 10 times (set A: sysext
# rdgapa + confext rdcgapa; set B: rdgapb + rdcgapb, both shipping
# /usr/share/rdgap/both and /etc/rdgap/both.conf), three reader processes
# read the root's own /usr/lib/os-release and those two files in a tight
# loop. rdext: zero failed lookups, and the readers saw both sets. Then the
# stock systemd-sysext (252) refreshes the same way (sysext only), and its
# failures are printed beside rdext's (expected: the gap rdext closes).
#
# With "old-kernel" as the second argument (assets built with the bookworm
# 6.1 kernel: RDEXT_VM_KERNEL_DEB=.../linux-image-6.1.0-*.deb, its own
# RDEXT_VM_OUT_DIR), the kernel has no mount beneath: every refresh must
# still succeed, end on the right tree and report the fallback; the
# lookups that failed are printed, not asserted. NOT YET PROVEN: with the
# 6.1 assets neither initrd finds /dev/vda (assets.sh preloads no
# virtio_pci, built in on 6.12, and expects .ko.xz where 6.1 ships .ko),
# so this variant has never booted; the fallback is tested on the host
# instead (refresh.sh, refresh_gap.sh with RDEXT_TEST_NO_BENEATH=1).
source "$(dirname "$0")/../lib.sh"
kind=${1:-busybox}
# The gap test runs 20 refreshes against readers inside the TCG guest: minutes
# on a loaded 2-core host (about 4 measured), beyond the default per-boot limit.
VM_TIMEOUT=${RDEXT_VM_TIMEOUT:-600}
old_kernel=${2:-}
new_scenario
standard_extensions
mkdir -p "$OVERLAY/var/lib/rdgap-stash"
for set in a b; do
    ext_tree "$IMAGES/rdgap$set" "rdgap$set" sysext
    ext_file "$IMAGES/rdgap$set" /usr/share/rdgap/both <<<"$set"
    ext_file "$IMAGES/rdgap$set" "/usr/share/rdgap$set/marker" <<<"rdgap$set"
    make_erofs "$IMAGES/rdgap$set" "$OVERLAY/var/lib/rdgap-stash/rdgap$set.raw"
    ext_tree "$IMAGES/rdcgap$set" "rdcgap$set" confext
    ext_file "$IMAGES/rdcgap$set" /etc/rdgap/both.conf <<<"$set"
    ext_file "$IMAGES/rdcgap$set" "/etc/rdcgap$set.conf" <<<"rdcgap$set"
    make_erofs "$IMAGES/rdcgap$set" "$OVERLAY/var/lib/rdgap-stash/rdcgap$set.raw"
done
cp "$OVERLAY/var/lib/rdgap-stash/rdgapa.raw" "$OVERLAY/var/lib/extensions/"
cp "$OVERLAY/var/lib/rdgap-stash/rdcgapa.raw" "$OVERLAY/var/lib/confexts/"
expect EXPECT_SYSEXT="'rdfeature rdtools rdgapa'" EXPECT_CONFEXT="'rdconf rdcgapa'" FEATURES=present
put /etc/rdext-check.d/refresh.sh <<'EOF'
# The refresh gap, measured in the booted system (sourced by rdext-check).
gap_reader() {  # STOP OUT
    local ok=0 failed=0 x p seen=""
    while [ ! -e "$1" ]; do
        for p in /usr/lib/os-release /usr/share/rdgap/both /etc/rdgap/both.conf; do
            if { read -r x <"$p"; } 2>/dev/null; then
                ok=$((ok + 1))
                case $x in a|b) case " $seen " in *" $x "*) ;; *) seen="$seen $x" ;; esac ;; esac
            else
                failed=$((failed + 1))
            fi
        done
    done
    echo "$ok $failed$seen" >"$2"
}
gap_swap() {  # a|b
    local to=$1 from=a
    [ "$to" = a ] && from=b
    rm -f /var/lib/extensions/rdgap$from.raw /var/lib/confexts/rdcgap$from.raw
    cp /var/lib/rdgap-stash/rdgap$to.raw /var/lib/extensions/
    cp /var/lib/rdgap-stash/rdcgap$to.raw /var/lib/confexts/
}
gap_run() {  # LABEL COMMAND...: sets GAP_OK GAP_FAILED GAP_SEEN GAP_RFAIL
    local label=$1 i r ok failed seen
    shift
    rm -f /run/gap-stop
    for r in 1 2 3; do gap_reader /run/gap-stop /run/gap.$label.$r & done
    sleep 1
    GAP_RFAIL=0
    for i in 1 2 3 4 5 6 7 8 9 10; do
        if [ $((i % 2)) = 1 ]; then gap_swap b; else gap_swap a; fi
        "$@" >>/run/gap.$label.log 2>&1 || GAP_RFAIL=$((GAP_RFAIL + 1))
    done
    sleep 1
    touch /run/gap-stop
    wait
    GAP_OK=0 GAP_FAILED=0 GAP_SEEN=""
    for r in 1 2 3; do
        read -r ok failed seen </run/gap.$label.$r
        GAP_OK=$((GAP_OK + ok)) GAP_FAILED=$((GAP_FAILED + failed)) GAP_SEEN="$GAP_SEEN $seen"
    done
    echo "RDEXT-CHECK: info $label: 10 refreshes, 3 readers: $GAP_OK lookups, $GAP_FAILED failed, content seen:$GAP_SEEN ($(uname -r))"
}
gap_run rdext /usr/local/bin/rdext refresh
check "rdext refresh: all 10 refreshes succeeded" [ "$GAP_RFAIL" = 0 ]
check "rdext refresh: thousands of lookups ($GAP_OK)" [ "$GAP_OK" -ge 1000 ]
check "rdext refresh: the readers saw set a and set b" sh -c 'case "$1" in *a*) case "$1" in *b*) exit 0 ;; esac ;; esac; exit 1' _ "$GAP_SEEN"
if [ -e /etc/rdext-old-kernel ]; then
    check "rdext refresh reported the fallback" grep -q "mount beneath not supported, refreshing with unmount and mount" /run/gap.rdext.log
    check "after the fallback refreshes /usr shows set a" content_is /usr/share/rdgap/both a
    check "after the fallback refreshes /etc shows set a" content_is /etc/rdgap/both.conf a
    check "after the fallback refreshes set b is gone" [ ! -e /usr/share/rdgapb/marker ]
else
    check "rdext refresh: no failed lookup ($GAP_FAILED of $((GAP_OK + GAP_FAILED)))" [ "$GAP_FAILED" = 0 ]
    check "rdext refresh used mount beneath" sh -c '! grep -q "mount beneath" /run/gap.rdext.log'
fi
check "the final merge lists rdgapa (10 swaps end on set a)" grep -qx rdgapa /usr/.systemd-sysext/extensions
RDEXT_GAP="$GAP_FAILED/$((GAP_OK + GAP_FAILED))"
gap_run systemd-sysext systemd-sysext refresh
echo "RDEXT-CHECK: info failed/total lookups during 10 refreshes: rdext $RDEXT_GAP, systemd-sysext $GAP_FAILED/$((GAP_OK + GAP_FAILED))"
EOF
[[ $old_kernel == old-kernel ]] && put /etc/rdext-old-kernel <<<"$VM_KVER"
root_disk
boot_vm "$(initrd_for "$kind")" "" "$WORK/root.img"
expect_check_pass
grep -a 'failed/total lookups' "$SERIAL_LOG" | tr -d '\r' | sed 's/^.*RDEXT-CHECK/RDEXT-CHECK/' >&2 || true
