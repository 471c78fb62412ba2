#!/bin/bash
# Where rdext's merge time goes: builds erofs roots with bench.sh (KEEP=1,
# one rep, no systemd-sysext), then, in a private mount namespace, runs
# `rdext merge` under `strace -f -c` (syscall summary) and `strace -f -T`
# (the slowest single calls), and `perf stat` when perf is there.
#
#   tests/bench/profile.sh [SIZES]      (default "10 498 499"; erofs)
# Output goes to stdout; the scratch dir is removed at the end.
set -Eeuo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SIZES=${1:-10 498 499}
[[ $(id -u) == 0 ]] || { echo "profile: needs root" >&2; exit 77; }
command -v strace >/dev/null || { echo "profile: needs strace" >&2; exit 77; }

if [[ -z ${PROFILE_INNER:-} ]]; then
    log=$(mktemp)
    KEEP=1 "$HERE/bench.sh" --kinds erofs --sizes "$SIZES" --reps 1 --no-sysext >/dev/null 2>"$log" || true
    dir=$(sed -n 's/^bench: kept //p' "$log")
    rm -f "$log"
    [[ -d $dir ]] || { echo "profile: bench.sh left no scratch dir" >&2; exit 1; }
    rc=0
    PROFILE_INNER=1 PROFILE_DIR=$dir SIZES=$SIZES unshare -m --propagation private -- "$BASH" "$0" || rc=$?
    rm -rf "$dir"
    exit "$rc"
fi

set +o pipefail   # head closes its pipe early
mount -t tmpfs -o mode=0755 tmpfs /run
RDEXT=$PROFILE_DIR/rdext
for n in $SIZES; do
    R=$PROFILE_DIR/roots/erofs-$n
    mount --bind "$R" "$R"
    echo "===== N=$n: strace -f -c rdext merge (then unmerge)"
    strace -f -c -S time -o "$PROFILE_DIR/c.$n" "$RDEXT" --root="$R" merge >/dev/null 2>&1 || echo "(merge failed)"
    head -n 18 "$PROFILE_DIR/c.$n"
    "$RDEXT" --root="$R" unmerge >/dev/null 2>&1 || true
    echo "===== N=$n: slowest calls (strace -f -T)"
    strace -f -T -o "$PROFILE_DIR/t.$n" "$RDEXT" --root="$R" merge >/dev/null 2>&1 || true
    sed -n 's/.*<\([0-9.]*\)>$/\1 &/p' "$PROFILE_DIR/t.$n" | sort -rn | head -n 12 | cut -c1-220
    echo "calls: $(wc -l <"$PROFILE_DIR/t.$n"); by name:"
    sed -n 's/^[0-9]* *\([a-z_0-9]*\)(.*<\([0-9.]*\)>$/\1 \2/p' "$PROFILE_DIR/t.$n" |
        awk '{n[$1]++; t[$1]+=$2} END {for (k in n) printf "  %-18s %6d calls %9.2f ms\n", k, n[k], t[k]*1000}' |
        sort -k4 -rn | head -n 12
    "$RDEXT" --root="$R" unmerge >/dev/null 2>&1 || true
    if command -v perf >/dev/null; then
        echo "===== N=$n: perf stat"
        perf stat -e task-clock,context-switches,page-faults -- "$RDEXT" --root="$R" merge 2>&1 >/dev/null | grep -E "task-clock|context|faults|elapsed|user|sys" || true
        "$RDEXT" --root="$R" unmerge >/dev/null 2>&1 || true
    fi
done
