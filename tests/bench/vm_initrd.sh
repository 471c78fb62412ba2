#!/usr/bin/env bash
# What rdext costs in the initrd stage of a real boot: the VM harness
# (tests/vm) boots the same kernel and the same dracut initrd against roots
# holding 0, 1 and 10 erofs extensions, REPS times each, interleaved
# (0 1 10 0 1 10 ...) so that drift on the host falls on every row alike.
# From the booted guest it reads:
#   initrd     the initrd stage, systemd's own account:
#              UserspaceTimestampMonotonic - InitRDTimestampMonotonic
#   service    rdext-merge.service from start to finish (journal, monotonic)
# and prints the medians and the difference to 0 extensions. QEMU runs
# under TCG (software emulation), so absolute numbers are several times
# those of real hardware; the differences are what this measures.
#
#   sudo tests/bench/vm_initrd.sh [--reps K] [--sizes "0 1 10"]
#
# Needs the VM assets (ctest -R vm_assets, or a run of the vm tests) in
# $RDEXT_CACHE_DIR/vm and $RDEXT_VM_OUT_DIR (default build/tests/vm).
set -Eeuo pipefail
TEST_NAME=${TEST_NAME:-bench_vm_initrd}
# shellcheck source=../vm/lib.sh
source "$(dirname "$0")/../vm/lib.sh"

reps=3
sizes="0 1 10"
while [ $# -gt 0 ]; do
    case $1 in
        --reps) reps=$2; shift 2 ;;
        --sizes) sizes=$2; shift 2 ;;
        *) echo "usage: $0 [--reps K] [--sizes \"0 1 10\"]" >&2; exit 2 ;;
    esac
done

# The guest's side: one line with both figures, from the checker's hook.
timing_hook() {
    cat <<'EOF'
initrd_us=$(( $(systemctl show -P UserspaceTimestampMonotonic) - $(systemctl show -P InitRDTimestampMonotonic) ))
# "Starting"/"Finished" of the initrd's rdext-merge.service, in the journal
# the initrd's journald handed over.
svc=$(journalctl -b -o short-monotonic --no-pager |
      awk '/(Starting|Finished) (rdext-merge.service|Merge system and configuration extensions)/ {
               match($0, /\[ *[0-9]+\.[0-9]+\]/); t = substr($0, RSTART + 1, RLENGTH - 2); gsub(/ /, "", t)
               if ($0 ~ /Starting/) s = t; else f = t }
           END { if (s != "" && f != "") printf "%d", (f - s) * 1000000; else print "?" }')
[ "$svc" != "?" ] || journalctl -b -o short-monotonic --no-pager | grep -iE 'rdext|merge system' | head -n 20 |
    sed 's/^/RDEXT-TIME: diag /'
echo "RDEXT-TIME: initrd_us=$initrd_us service_us=$svc merged=$(ls -d /usr/share/bench-* 2>/dev/null | wc -l)"
EOF
}

# boot_once N: boots a root with N extensions; sets INITRD_US and SERVICE_US.
boot_once() {
    local n=$1 i names=""
    new_scenario
    mkdir -p "$OVERLAY/var/lib/extensions"
    for ((i = 1; i <= n; i++)); do
        marker_sysext "$IMAGES/bench-$i" "bench-$i"
        make_erofs "$IMAGES/bench-$i" "$OVERLAY/var/lib/extensions/bench-$i.raw"
        names+=" bench-$i"
    done
    expect FEATURES=skip "EXPECT_SYSEXT=\"${names# }\""
    timing_hook | put /etc/rdext-check.d/timing.sh 0644
    root_disk
    boot_vm "$VM_DRACUT_INITRD" "" "$WORK/root.img"
    expect_check_pass
    local line
    line=$(grep -a 'RDEXT-TIME:' "$SERIAL_LOG" | tr -d '\r' | tail -n 1)
    [[ $line =~ initrd_us=([0-9]+)\ service_us=([0-9]+)\ merged=([0-9]+) ]] ||
        die "no timing line from the guest: '$line'"
    [ "${BASH_REMATCH[3]}" = "$n" ] || die "$n extensions on disk, ${BASH_REMATCH[3]} merged"
    INITRD_US=${BASH_REMATCH[1]}
    SERVICE_US=${BASH_REMATCH[2]}
    _scenario_cleanup
    trap - EXIT
}

declare -A initrd service
for ((r = 1; r <= reps; r++)); do
    for n in $sizes; do
        boot_once "$n"
        initrd[$n]+="$INITRD_US "
        service[$n]+="$SERVICE_US "
        log "rep $r, $n extensions: initrd $((INITRD_US / 1000)) ms, rdext-merge.service $((SERVICE_US / 1000)) ms"
    done
done

median() { tr ' ' '\n' | sed '/^$/d' | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
base_initrd=$(median <<<"${initrd[${sizes%% *}]}")
base_service=$(median <<<"${service[${sizes%% *}]}")
printf '\n%-12s %14s %14s %22s %14s\n' extensions "initrd (ms)" "vs ${sizes%% *} (ms)" "rdext-merge.svc (ms)" "vs ${sizes%% *} (ms)"
for n in $sizes; do
    i=$(median <<<"${initrd[$n]}")
    s=$(median <<<"${service[$n]}")
    printf '%-12s %14d %+14d %22d %+14d\n' "$n" $((i / 1000)) $(((i - base_initrd) / 1000)) \
        $((s / 1000)) $(((s - base_service) / 1000))
done
echo "(medians of $reps boots each; QEMU TCG, -smp 1, dracut initrd, erofs images)"
