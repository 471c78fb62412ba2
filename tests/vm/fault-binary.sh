#!/usr/bin/env bash
# The static rdext with fault injection compiled in, for the VM fault test
# only (scenarios/fault_verity.sh copies it into that scenario's root disk as
# /usr/local/bin/rdext-fault; it never goes into an initrd). It is the
# static build configured a second time with -DRDEXT_FAULT_INJECTION=ON, in
# a build directory of its own; the static C libraries come from the cache
# scripts/static-deps.sh keeps, so only rdext itself compiles.
#
# Also checks the split the CMake option promises: the fault build carries
# the RDEXT_FAULT hooks, the release static binary (the static_binary test's,
# which CTest builds first) carries none of them.
#
#   RDEXT_STATIC_FAULT_BUILD_DIR  build directory (CMake passes
#                                 <build>/build-static-fault)
#   RDEXT_STATIC_BUILD_DIR        the release static build to check
#   CI=true                       a missing release binary fails instead of
#                                 being left unchecked; no root fails instead
#                                 of skipping
set -euo pipefail

fail() { echo "FAIL: $*" >&2; exit 1; }
if [ "$(id -u)" != 0 ]; then
    # static-deps.sh installs build dependencies and writes /var/cache/rdext.
    [ "${CI:-}" = true ] && fail "needs root (static-deps.sh), and CI=true"
    echo "SKIP: needs root"
    exit 77
fi

src=$(cd "$(dirname "$0")/../.." && pwd)
build=${RDEXT_STATIC_FAULT_BUILD_DIR:-$src/build-static-fault}
release=${RDEXT_STATIC_BUILD_DIR:-$src/build-static}
cmake=${RDEXT_CMAKE:-cmake}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

start=$SECONDS
if ! "$cmake" -S "$src" -B "$build" -G Ninja -DRDEXT_STATIC=ON -DRDEXT_TESTS=OFF \
        -DRDEXT_FAULT_INJECTION=ON >"$tmp/configure.log" 2>&1; then
    tail -n 40 "$tmp/configure.log" >&2
    fail "configure of the fault-injection static build failed"
fi
if ! "$cmake" --build "$build" --target rdext >"$tmp/build.log" 2>&1; then
    tail -n 40 "$tmp/build.log" >&2
    fail "fault-injection static build failed"
fi
bin=$build/src/rdext
[ -x "$bin" ] || fail "no $bin"
echo "fault-injection static rdext: $bin, configured and built in $((SECONDS - start)) s" >&2

# Static, as the guest has none of the build's libraries.
[[ $(LC_ALL=C ldd "$bin" 2>&1) == *"not a dynamic executable"* ]] || fail "$bin is not static"
# The hooks are there (the environment variable names are string literals).
strings -a "$bin" >"$tmp/strings"   # into a file: grep -q would cut the pipe
grep -qx 'RDEXT_FAULT' "$tmp/strings" || fail "$bin has no RDEXT_FAULT hook: not a fault-injection build?"

# ... and absent from the release build.
checked=0
for r in "$release/src/rdext" "$release/src/rdext.stripped"; do
    [ -x "$r" ] || continue
    strings -a "$r" >"$tmp/strings"
    if grep -E 'RDEXT_FAULT|RDEXT_TEST_NO_BENEATH|injected fault' "$tmp/strings" >"$tmp/hits"; then
        fail "the release static binary $r carries fault-injection code: $(tr '\n' ' ' <"$tmp/hits")"
    fi
    echo "release static binary $r: no fault-injection strings" >&2
    checked=$((checked + 1))
done
if [ "$checked" = 0 ]; then
    [ "${CI:-}" = true ] && fail "no release static binary in $release to check (CI=true)"
    echo "note: no release static binary in $release, its check left out" >&2
fi
echo "PASS"
