#!/usr/bin/env bash
# The footprint budget of the static rdext: the stripped binary that goes
# into every initramfs stays under 4 MiB (doc/performance.md, "The static binary", lists
# its parts and what was done to get there). Checks the build the
# static_binary test made (fixture static_rdext).
#
#   RDEXT_STATIC_BUILD_DIR     that build (default: build-static in the CTest tree)
#   RDEXT_STATIC_SIZE_BUDGET   the limit in bytes (default 4194304, 4 MiB)
set -euo pipefail

build=${RDEXT_STATIC_BUILD_DIR:-${RDEXT_STATIC_DEFAULT_BUILD_DIR:?}}
budget=${RDEXT_STATIC_SIZE_BUDGET:-4194304}
stripped=$build/src/rdext.stripped

if [ ! -f "$stripped" ]; then
    if [ "${CI:-}" = true ]; then
        echo "FAIL: no $stripped (the static_binary test builds it), and CI=true" >&2
        exit 1
    fi
    echo "SKIP: no $stripped (run the static_binary test first)"
    exit 77
fi
size=$(stat -c %s "$stripped")
awk -v s="$size" -v b="$budget" 'BEGIN {
    printf "stripped static rdext: %d bytes (%.2f MiB), budget %d bytes (%.2f MiB), %d to spare\n",
           s, s / 1048576, b, b / 1048576, b - s }'
if [ "$size" -ge "$budget" ]; then
    echo "FAIL: $stripped is over its budget" >&2
    exit 1
fi
echo "PASS"
